//! Judging a named request against its [`RequestExpect`]: the outcome, the status, the
//! latency, how the response left its connection, the body, the headers, and which child
//! served it. Every way it falls short is said, then what was observed.

use std::time::Duration;

use super::{describe_outcome, pid_text, Check};
use crate::observe::{Observation, RequestOutcome, State};
use crate::spec::{BodyShape, ExpectedOutcome, HeaderExpect, RequestExpect, SharedExpect};

/// The check of request `name` against `e`.
pub(super) fn check(name: &str, e: &RequestExpect, s: &State) -> Check {
    let outcome = s.outcomes.get(name);
    let problems = problems(name, e, outcome, s);
    let observed = describe_outcome(outcome);
    let headers = headers_expected(e);
    Check::new(
        format!("request {name}"),
        problems.is_empty(),
        if !problems.is_empty() {
            format!("{}; observed {observed}", problems.join(", "))
        } else if headers.is_empty() {
            observed
        } else {
            format!("{observed}; headers as expected: {}", headers.join(", "))
        },
    )
}

/// Everything wrong with the outcome of `name`, in the order `e`'s fields are judged.
fn problems(
    name: &str,
    e: &RequestExpect,
    outcome: Option<&RequestOutcome>,
    s: &State,
) -> Vec<String> {
    let mut problems: Vec<String> = [
        e.outcome.and_then(|want| outcome_problem(want, outcome)),
        e.status.and_then(|want| status_problem(want, outcome)),
        e.latency.at_least.and_then(|min| too_fast(min, outcome)),
        e.latency.at_most.and_then(|max| too_slow(max, outcome)),
        e.closes
            .and_then(|closes| closes_problem(name, closes, outcome, s)),
        e.bytes.and_then(|want| bytes_problem(want, outcome)),
        e.body.and_then(|want| body_problem(want, outcome)),
        e.shared.and_then(|want| shared_problem(want, outcome)),
    ]
    .into_iter()
    .flatten()
    .collect();
    problems.extend(
        e.headers
            .iter()
            .filter_map(|(header, want)| header_problem(header, want, outcome)),
    );
    problems.extend(child_problems(name, e, s));
    problems
}

/// The headers `e` expects, in words (what a passed check lists).
fn headers_expected(e: &RequestExpect) -> Vec<String> {
    e.headers
        .iter()
        .map(|(name, want)| match want {
            HeaderExpect::Value(v) => format!("{name}: {v:?}"),
            HeaderExpect::Present(true) => format!("{name} present"),
            HeaderExpect::Present(false) => format!("no {name}"),
        })
        .collect()
}

/// What is wrong with the outcome's kind, if anything.
fn outcome_problem(want: ExpectedOutcome, outcome: Option<&RequestOutcome>) -> Option<String> {
    (!outcome_matches(want, outcome)).then(|| {
        format!(
            "expected outcome {}",
            serde_json::to_value(want)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        )
    })
}

/// Whether the outcome is of the kind `want` (a cut connection may surface as EOF or RST).
fn outcome_matches(want: ExpectedOutcome, outcome: Option<&RequestOutcome>) -> bool {
    use crate::observe::ErrorClass as E;
    let class = match outcome {
        None => return want == ExpectedOutcome::Pending,
        Some(RequestOutcome::Response { .. }) => return want == ExpectedOutcome::Ok,
        Some(RequestOutcome::Failed { class, .. }) => *class,
    };
    match want {
        ExpectedOutcome::Ok | ExpectedOutcome::Pending => false,
        ExpectedOutcome::Failed => true,
        // A connection cut before the response may surface as EOF or RST.
        ExpectedOutcome::Closed | ExpectedOutcome::Reset => matches!(class, E::Closed | E::Reset),
        ExpectedOutcome::Refused => class == E::Refused,
        ExpectedOutcome::Timeout => class == E::Timeout,
    }
}

/// What is wrong with the response's status, if anything.
fn status_problem(want: u16, outcome: Option<&RequestOutcome>) -> Option<String> {
    match outcome {
        Some(RequestOutcome::Response { status, .. }) if *status == want => None,
        _ => Some(format!("expected status {want}")),
    }
}

/// The outcome came sooner than `min`, or never.
fn too_fast(min: Duration, outcome: Option<&RequestOutcome>) -> Option<String> {
    outcome
        .map(RequestOutcome::latency)
        .is_none_or(|l| l < min)
        .then(|| format!("expected latency ≥ {min:?}"))
}

/// The outcome came later than `max`, or never.
fn too_slow(max: Duration, outcome: Option<&RequestOutcome>) -> Option<String> {
    outcome
        .map(RequestOutcome::latency)
        .is_none_or(|l| l > max)
        .then(|| format!("expected latency ≤ {max:?}"))
}

/// What is wrong with the body's length, if anything.
fn bytes_problem(want: u64, outcome: Option<&RequestOutcome>) -> Option<String> {
    match outcome {
        Some(RequestOutcome::Response { bytes, .. }) if *bytes == want => None,
        _ => Some(format!("expected a body of {want} bytes")),
    }
}

/// What is wrong with what the body holds, if anything.
fn body_problem(want: BodyShape, outcome: Option<&RequestOutcome>) -> Option<String> {
    match outcome {
        Some(RequestOutcome::Response { body, .. }) if *body == want => None,
        _ => Some(format!("expected {} body", body_words(want))),
    }
}

fn shared_problem(want: SharedExpect, outcome: Option<&RequestOutcome>) -> Option<String> {
    match outcome {
        Some(RequestOutcome::Response {
            shared: Some(found),
            ..
        }) if found.intact == (want == SharedExpect::Intact) => None,
        Some(RequestOutcome::Response {
            shared: Some(found),
            ..
        }) => Some(format!(
            "expected shared state {}, found {}",
            want.as_str(),
            if found.intact { "intact" } else { "clobbered" }
        )),
        _ => Some(format!(
            "expected shared state {}, but no answer said (X-Shared-State)",
            want.as_str()
        )),
    }
}

/// What is wrong with which child served `name` (the same as another request's, or another),
/// if anything.
fn child_problems(name: &str, e: &RequestExpect, s: &State) -> impl Iterator<Item = String> {
    let pid_of = |r: &str| s.outcomes.get(r).and_then(RequestOutcome::pid);
    let own = pid_of(name);
    let same = e
        .same_child_as
        .as_deref()
        .filter(|other| own.is_none() || own != pid_of(other))
        .map(|other| {
            format!(
                "expected the same child as {other} ({})",
                pid_text(pid_of(other))
            )
        });
    let another = e
        .other_child_than
        .as_deref()
        .filter(|other| own.is_none() || own == pid_of(other))
        .map(|other| {
            format!(
                "expected another child than {other} ({})",
                pid_text(pid_of(other))
            )
        });
    same.into_iter().chain(another)
}

/// What is wrong with how the response to `name` left its connection, if anything: `closes`
/// asks that it said `Connection: close` (and the server closed), or that it did not.
fn closes_problem(
    name: &str,
    closes: bool,
    outcome: Option<&RequestOutcome>,
    s: &State,
) -> Option<String> {
    let said_close = match outcome {
        Some(RequestOutcome::Response { closes: c, .. }) => *c,
        _ => {
            return Some(if closes {
                "expected a response saying `Connection: close`".into()
            } else {
                "expected a response that keeps the connection open".into()
            })
        }
    };
    if said_close == closes {
        return None;
    }
    let conn = s.entries.iter().find_map(|e| match &e.what {
        Observation::Response { request, conn, .. } if request == name => Some(conn.as_str()),
        _ => None,
    });
    let server_closed = conn.is_some_and(|c| s.closed_conns.contains_key(c));
    Some(if closes {
        format!(
            "expected the response to say `Connection: close` and the server to close the \
             connection; the response did not say it{}",
            if server_closed {
                " (the server closed the connection later)"
            } else {
                ", and the connection stayed open"
            }
        )
    } else {
        format!(
            "expected the connection kept open after this response; the response said \
             `Connection: close`{}",
            if server_closed {
                " and the server closed the connection"
            } else {
                ""
            }
        )
    })
}

/// What the body holds, in words.
fn body_words(shape: BodyShape) -> &'static str {
    match shape {
        BodyShape::Empty => "an empty",
        BodyShape::Pattern => "the pattern's",
        BodyShape::Other => "another",
    }
}

/// What is wrong with header `name` of the response, if anything.
fn header_problem(
    name: &str,
    want: &HeaderExpect,
    outcome: Option<&RequestOutcome>,
) -> Option<String> {
    let Some(RequestOutcome::Response { headers, .. }) = outcome else {
        return Some(format!("expected a response with header {name}"));
    };
    let got = crate::drive::client::header(headers, name);
    let shown = |v: Option<&str>| v.map_or_else(|| "absent".to_string(), |v| format!("{v:?}"));
    match (want, got) {
        (HeaderExpect::Value(v), Some(g)) if g == v.trim() => None,
        (HeaderExpect::Present(true), Some(_)) | (HeaderExpect::Present(false), None) => None,
        (HeaderExpect::Value(v), g) => Some(format!("expected {name}: {v:?}, got {}", shown(g))),
        (HeaderExpect::Present(true), None) => Some(format!("expected a header {name}")),
        (HeaderExpect::Present(false), g) => {
            Some(format!("expected no header {name}, got {}", shown(g)))
        }
    }
}
