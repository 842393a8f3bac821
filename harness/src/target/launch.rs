//! What a target is handed to start a server: [`Launch`], whose [`Settings`] are the case's
//! directives for one MPM as written (the spec loader checked them against refhttpd's rules,
//! and refhttpd takes them so) with the values a target interprets typed once, when the
//! settings are collected: the durations, and ThreadsPerChild and ThreadLimit, from which
//! [`Launch::threads_per_child`] works out the workers per child as the MPMs correct them.

use std::time::Duration;

use refhttpd::Mpm;

/// How to start a server for one (case, MPM).
#[derive(Debug, Clone)]
pub struct Launch {
    pub mpm: Mpm,
    /// The case's directives for the MPM (collect them from `(name, value)` pairs).
    pub settings: Settings,
    pub faults: bool,
    /// Serve HTTPS, with a certificate made for the run.
    pub tls: bool,
    /// Directives for Apache only (no reference equivalent, e.g. EnableSendfile), written after
    /// the case's; not checked by the loader, so not typed.
    pub apache_only: Vec<(String, String)>,
}

/// The case's directives, in order, each with its typed value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings(Vec<Directive>);

/// One directive as written, with its value typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    /// As written; directive names are case-insensitive (see [`Directive::is`]).
    pub name: String,
    /// As written.
    pub value: String,
    pub typed: Typed,
}

/// A directive's value, typed by the directive.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// KeepAliveTimeout, Timeout, GracefulShutdownTimeout (`200ms`, `2s`, `0`).
    Duration(Duration),
    /// ThreadsPerChild, ThreadLimit.
    Count(u32),
    /// Any other directive: its value is taken as written.
    AsWritten,
    /// A value its directive does not take (settings the loader did not check): why.
    Invalid(String),
}

/// The directives whose values are durations.
const DURATIONS: [&str; 3] = ["KeepAliveTimeout", "Timeout", "GracefulShutdownTimeout"];
/// The directives whose values are counts.
const COUNTS: [&str; 2] = ["ThreadsPerChild", "ThreadLimit"];

/// Worker and event's defaults (DEFAULT_THREADS_PER_CHILD, DEFAULT_THREAD_LIMIT) and the most
/// ThreadLimit they accept (MAX_THREAD_LIMIT).
const DEFAULT_THREADS_PER_CHILD: u32 = 25;
const DEFAULT_THREAD_LIMIT: u32 = 64;
const MAX_THREAD_LIMIT: u32 = 100_000;

impl Directive {
    /// Types `value` by the directive `name`.
    pub fn new(name: String, value: String) -> Directive {
        let v = value.trim();
        let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(&name));
        let typed = if is(&DURATIONS) {
            mpm_faults::duration::parse(v).map_or_else(Typed::Invalid, Typed::Duration)
        } else if is(&COUNTS) {
            v.parse().map_or_else(
                |_| Typed::Invalid(format!("`{v}` is not a whole number")),
                Typed::Count,
            )
        } else {
            Typed::AsWritten
        };
        Directive { name, value, typed }
    }

    /// Whether this is directive `name` (case-insensitive, as Apache and refhttpd read names).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The count this directive sets, if it is `name` with a valid count.
    fn count(&self, name: &str) -> Option<u32> {
        match self.typed {
            Typed::Count(n) if self.is(name) => Some(n),
            _ => None,
        }
    }
}

impl Settings {
    pub fn iter(&self) -> std::slice::Iter<'_, Directive> {
        self.0.iter()
    }
}

impl FromIterator<(String, String)> for Settings {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Settings {
        Settings(
            pairs
                .into_iter()
                .map(|(name, value)| Directive::new(name, value))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Settings {
    type Item = &'a Directive;
    type IntoIter = std::slice::Iter<'a, Directive>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Launch {
    /// Worker threads per child as the server runs them, which is how many of a scoreboard
    /// row's worker slots count: 1 under prefork (it has no ThreadsPerChild); under worker and
    /// event ThreadsPerChild (25 when unset) decreased to ThreadLimit (64 when unset, at most
    /// 100000) and at least 1, as both MPMs' check_config corrects it. The last value read
    /// wins: the Apache-only directives come after the case's in httpd.conf (the reference
    /// server ignores them).
    pub fn threads_per_child(&self) -> usize {
        if !self.mpm.is_threaded() {
            return 1;
        }
        let apache_only: Vec<Directive> = self
            .apache_only
            .iter()
            .map(|(name, value)| Directive::new(name.clone(), value.clone()))
            .collect();
        let read = self.settings.iter().chain(&apache_only);
        let last = |name: &str| read.clone().rev().find_map(|d| d.count(name));
        let limit = last("ThreadLimit")
            .unwrap_or(DEFAULT_THREAD_LIMIT)
            .clamp(1, MAX_THREAD_LIMIT);
        let threads = last("ThreadsPerChild").unwrap_or(DEFAULT_THREADS_PER_CHILD);
        threads.clamp(1, limit) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(mpm: Mpm, settings: &[(&str, &str)], apache_only: &[(&str, &str)]) -> Launch {
        let pairs = |s: &[(&str, &str)]| -> Vec<(String, String)> {
            s.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Launch {
            mpm,
            settings: pairs(settings).into_iter().collect(),
            faults: false,
            tls: false,
            apache_only: pairs(apache_only),
        }
    }

    #[test]
    fn values_are_typed_by_their_directive() {
        let s: Settings = [
            ("keepalivetimeout", " 200ms"),
            ("Timeout", "2s"),
            ("ThreadsPerChild", "3"),
            ("ThreadLimit", "x"),
            ("Timeout", "soon"),
            ("EnableSendfile", "On"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let typed: Vec<&Typed> = s.iter().map(|d| &d.typed).collect();
        assert_eq!(typed[0], &Typed::Duration(Duration::from_millis(200)));
        assert_eq!(s.iter().next().unwrap().value, " 200ms");
        assert_eq!(typed[1], &Typed::Duration(Duration::from_secs(2)));
        assert_eq!(typed[2], &Typed::Count(3));
        assert!(matches!(typed[3], Typed::Invalid(_)));
        assert!(matches!(typed[4], Typed::Invalid(_)));
        assert_eq!(typed[5], &Typed::AsWritten);
    }

    #[test]
    fn threads_per_child_as_the_mpms_correct_it() {
        let t = |mpm, s: &[(&str, &str)]| launch(mpm, s, &[]).threads_per_child();
        assert_eq!(t(Mpm::Prefork, &[]), 1);
        assert_eq!(t(Mpm::Worker, &[]), 25);
        assert_eq!(t(Mpm::Event, &[("ThreadsPerChild", "3")]), 3);
        // Above ThreadLimit: decreased to it, the default one included.
        assert_eq!(t(Mpm::Event, &[("ThreadsPerChild", "100")]), 64);
        assert_eq!(
            t(
                Mpm::Worker,
                &[("ThreadLimit", "4"), ("threadsperchild", "8")]
            ),
            4
        );
        assert_eq!(t(Mpm::Worker, &[("ThreadsPerChild", "0")]), 1);
        // The Apache-only directives are read last.
        let l = launch(
            Mpm::Worker,
            &[("ThreadsPerChild", "3")],
            &[("ThreadsPerChild", "5")],
        );
        assert_eq!(l.threads_per_child(), 5);
    }
}
