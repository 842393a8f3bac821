//! `X-Served-By`: which worker answered a request — a contract shared with the harness, which
//! attributes every connection to the child that owns it (the crash oracle) by this header.

use std::fmt;

use serde::Serialize;

/// The header's name.
pub const SERVED_BY_HEADER: &str = "X-Served-By";

/// Who served a response: `pid=<child pid> slot=<process slot> thread=<worker index>`. Apache's
/// fault handler can only say `pid=…`, so slot and thread are optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServedBy {
    pub pid: i32,
    pub slot: Option<u32>,
    pub thread: Option<u32>,
}

impl ServedBy {
    /// Reads a header value; `None` without a `pid=`.
    pub fn parse(value: &str) -> Option<ServedBy> {
        let mut pid = None;
        let mut slot = None;
        let mut thread = None;
        for word in value.split_whitespace() {
            if let Some(v) = word.strip_prefix("pid=") {
                pid = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("slot=") {
                slot = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("thread=") {
                thread = v.parse().ok();
            }
        }
        Some(ServedBy {
            pid: pid?,
            slot,
            thread,
        })
    }
}

impl fmt::Display for ServedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid={}", self.pid)?;
        if let Some(s) = self.slot {
            write!(f, " slot={s}")?;
        }
        if let Some(t) = self.thread {
            write!(f, " thread={t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_apache_form() {
        let by = ServedBy {
            pid: 41,
            slot: Some(2),
            thread: Some(0),
        };
        assert_eq!(by.to_string(), "pid=41 slot=2 thread=0");
        assert_eq!(ServedBy::parse(&by.to_string()), Some(by));
        let apache = ServedBy::parse("pid=7").unwrap();
        assert_eq!((apache.pid, apache.slot, apache.thread), (7, None, None));
        assert_eq!(ServedBy::parse("slot=1"), None);
    }
}
