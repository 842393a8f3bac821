//! Response-head writing: [`ResponseHead`] serialisation with `Date`/`Server`/
//! connection headers, status reason phrases and Apache-style error pages.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Parameters for the `Keep-Alive` response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAliveParams {
    pub timeout_secs: u64,
    pub max: Option<u32>,
}

/// Whether the connection stays open after a response, and whether the head says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// `Connection: close`.
    Close,
    /// Kept open without a connection header: HTTP/1.1's default, for a client that did not
    /// ask with a `keep-alive` token (Apache's `ap_set_keepalive` answers only a token).
    Implied,
    /// Kept open and announced: `Keep-Alive: timeout=…[, max=…]`, `Connection: Keep-Alive`.
    Announced(KeepAliveParams),
}

/// A response head to serialise.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    pub status: u16,
    pub headers: &'a [(&'a str, &'a str)],
    pub content_length: Option<u64>,
    pub persistence: Persistence,
}

impl ResponseHead<'_> {
    /// Append the serialised head (ending with the empty line) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "HTTP/1.1 {} {}\r\nDate: {}\r\nServer: refhttpd\r\n",
            self.status,
            reason(self.status),
            http_date(now)
        );
        for (name, value) in self.headers {
            let _ = write!(s, "{name}: {value}\r\n");
        }
        if let Some(n) = self.content_length {
            let _ = write!(s, "Content-Length: {n}\r\n");
        }
        match &self.persistence {
            Persistence::Announced(ka) => {
                let _ = write!(s, "Keep-Alive: timeout={}", ka.timeout_secs);
                if let Some(max) = ka.max {
                    let _ = write!(s, ", max={max}");
                }
                s.push_str("\r\nConnection: Keep-Alive\r\n");
            }
            Persistence::Implied => {}
            Persistence::Close => s.push_str("Connection: close\r\n"),
        }
        s.push_str("\r\n");
        out.extend_from_slice(s.as_bytes());
    }
}

/// Whether a response with this status ends the connection whatever keep-alive would allow
/// (KA-3): Apache's `ap_status_drops_connection` (httpd.h), which `ap_set_keepalive` consults.
pub fn status_drops_connection(status: u16) -> bool {
    matches!(status, 400 | 408 | 411 | 413 | 414 | 500 | 501 | 503)
}

/// The reason phrase for `status`, or `"Unknown"`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn error_message(status: u16) -> &'static str {
    match status {
        400 => "Your browser sent a request that this server could not understand.",
        403 => "You don't have permission to access this resource.",
        404 => "The requested URL was not found on this server.",
        405 => "The requested method is not allowed for this URL.",
        408 => "Server timeout waiting for the HTTP request from the client.",
        411 => "A request of the requested method requires a valid Content-length.",
        413 => {
            "The requested resource does not allow request data with this method, or the amount of data provided in the request exceeds the capacity limit."
        }
        414 => "The requested URL's length exceeds the capacity limit for this server.",
        417 => {
            "The expectation given in the Expect request-header field could not be met by this server."
        }
        431 => "Your browser sent a request with header fields that are too large.",
        501 => "The server does not support the action requested by the browser.",
        503 => "The server is temporarily unable to service your request.",
        505 => "The server does not support the HTTP protocol version used in the request.",
        _ => {
            "The server encountered an internal error or misconfiguration and was unable to complete your request."
        }
    }
}

/// A small Apache-style HTML error page for `status`.
pub fn error_body(status: u16) -> String {
    let reason = reason(status);
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n\
         <title>{status} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n\
         <p>{}</p>\n</body></html>\n",
        error_message(status)
    )
}

/// Convert days since 1970-01-01 to a (year, month, day) civil date
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Format seconds since the Unix epoch as an IMF-fixdate
/// (e.g. `Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn write_keep_alive() {
        let mut out = Vec::new();
        ResponseHead {
            status: 200,
            headers: &[("Content-Type", "text/plain")],
            content_length: Some(5),
            persistence: Persistence::Announced(KeepAliveParams {
                timeout_secs: 5,
                max: Some(100),
            }),
        }
        .write_to(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nDate: "));
        assert!(s.contains(" GMT\r\nServer: refhttpd\r\nContent-Type: text/plain\r\n"));
        assert!(s.ends_with(
            "Content-Length: 5\r\nKeep-Alive: timeout=5, max=100\r\nConnection: Keep-Alive\r\n\r\n"
        ));
    }

    #[test]
    fn write_close() {
        let mut out = Vec::new();
        ResponseHead {
            status: 404,
            headers: &[],
            content_length: None,
            persistence: Persistence::Close,
        }
        .write_to(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(s.ends_with("Server: refhttpd\r\nConnection: close\r\n\r\n"));
        assert!(!s.contains("Content-Length"));

        let mut out = Vec::new();
        ResponseHead {
            status: 299,
            headers: &[],
            content_length: Some(0),
            persistence: Persistence::Announced(KeepAliveParams {
                timeout_secs: 15,
                max: None,
            }),
        }
        .write_to(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 299 Unknown\r\n"));
        assert!(s.contains("Keep-Alive: timeout=15\r\nConnection: Keep-Alive\r\n"));

        let mut out = Vec::new();
        ResponseHead {
            status: 200,
            headers: &[],
            content_length: Some(0),
            persistence: Persistence::Implied,
        }
        .write_to(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.ends_with("Server: refhttpd\r\nContent-Length: 0\r\n\r\n"));
    }

    #[test]
    fn statuses_that_drop_the_connection() {
        let drops: Vec<u16> = (100..600).filter(|&s| status_drops_connection(s)).collect();
        assert_eq!(drops, [400, 408, 411, 413, 414, 500, 501, 503]);
    }

    #[test]
    fn error_pages() {
        let b = error_body(400);
        assert!(b.starts_with("<!DOCTYPE HTML PUBLIC"));
        assert!(b.contains("<title>400 Bad Request</title>"));
        assert!(b.contains("<h1>Bad Request</h1>"));
        assert!(error_body(414).contains("URI Too Long"));
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(999), "Unknown");
    }
}
