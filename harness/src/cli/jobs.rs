//! The job scheduler of `run`: a fixed number of threads take the planned tests in order, each
//! test runs on one of them, and each result is handed on (printed, kept) as it finishes.

use std::sync::Mutex;

/// Runs `each` on every item of `work`, on `jobs` threads (at least one, at most one an item).
/// `finished` sees each result with the item's index, one at a time, in the order they finish;
/// the results are returned in that order too.
pub fn run_all<T, R>(
    work: Vec<T>,
    jobs: usize,
    each: impl Fn(T) -> R + Sync,
    finished: impl FnMut(usize, &R) + Send,
) -> Vec<R>
where
    T: Send,
    R: Send,
{
    let threads = jobs.clamp(1, work.len().max(1));
    let queue = Mutex::new(work.into_iter().enumerate());
    let done = Mutex::new((finished, Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some((i, item)) = next else {
                    return;
                };
                let result = each(item);
                let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                (done.0)(i, &result);
                done.1.push(result);
            });
        }
    });
    done.into_inner().unwrap_or_else(|e| e.into_inner()).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_once_and_is_reported() {
        let mut seen = Vec::new();
        let results = run_all(
            (0..20).collect(),
            3,
            |x: u32| x * 2,
            |i, r| seen.push((i, *r)),
        );
        let mut sorted = results.clone();
        sorted.sort();
        assert_eq!(sorted, (0..20).map(|x| x * 2).collect::<Vec<_>>());
        seen.sort();
        assert_eq!(seen, (0..20).map(|i| (i, i as u32 * 2)).collect::<Vec<_>>());
    }

    #[test]
    fn no_work_and_no_jobs_are_fine() {
        assert!(run_all(Vec::<u8>::new(), 0, |x| x, |_, _| {}).is_empty());
        assert_eq!(run_all(vec![1], 0, |x| x + 1, |_, _| {}), vec![2]);
    }
}
