//! Request-head parsing (RFC 9112 with Apache-like limits): owns [`Limits`],
//! [`RequestHead`], [`BodyKind`], the shared [`HttpError`] type and [`parse_head`].

/// Request size limits, mirroring Apache's `LimitRequest*` directives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum request-line length in bytes (`LimitRequestLine`).
    pub request_line: usize,
    /// Maximum length of one header field line (`LimitRequestFieldSize`).
    pub field_size: usize,
    /// Maximum number of header fields (`LimitRequestFields`).
    pub fields: usize,
    /// Maximum body size in bytes, 0 = unlimited (`LimitRequestBody`).
    pub body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line: 8190,
            field_size: 8190,
            fields: 100,
            body: 1 << 30,
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// Minor version: 0 = HTTP/1.0, 1 = HTTP/1.1.
    pub version: u8,
    /// The fields as sent; the server uses only what [`parse_head`] derives from them, the
    /// property tests check them.
    #[cfg(test)]
    pub headers: Vec<(String, String)>,
    pub body: BodyKind,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The client sent `Connection: close`.
    pub must_close: bool,
    /// The client sent a `keep-alive` connection token: a kept-alive response says so.
    pub asks_keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl RequestHead {
    /// The request target up to (not including) the first `?`.
    pub fn path(&self) -> &str {
        match self.target.find('?') {
            Some(i) => &self.target[..i],
            None => &self.target,
        }
    }

    /// The part of the target after the first `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.find('?').map(|i| &self.target[i + 1..])
    }

    /// The request line as sent, e.g. `GET /x HTTP/1.1`.
    pub fn request_line(&self) -> String {
        format!("{} {} HTTP/1.{}", self.method, self.target, self.version)
    }

    /// First header with this name (case-insensitive).
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Errors raised while parsing a request head or decoding a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request line too long")]
    RequestLineTooLong,
    #[error("header field line too long")]
    HeaderFieldTooLong,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("request head too large")]
    HeadTooLarge,
    #[error("malformed request: {0}")]
    Syntax(&'static str),
    #[error("obsolete line folding in header field")]
    ObsFold,
    #[error("missing Host header in HTTP/1.1 request")]
    MissingHost,
    #[error("multiple Host headers")]
    DuplicateHost,
    #[error("invalid Content-Length")]
    InvalidContentLength,
    #[error("multiple Content-Length headers")]
    DuplicateContentLength,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
    #[error("Transfer-Encoding without chunked as the final coding")]
    ChunkedNotFinal,
    #[error("Transfer-Encoding together with Content-Length")]
    TransferEncodingWithContentLength,
    #[error("Transfer-Encoding in HTTP/1.0 request")]
    TransferEncodingInHttp10,
    #[error("unsupported expectation")]
    ExpectationFailed,
    #[error("invalid chunk size")]
    InvalidChunkSize,
    #[error("chunk size line too long")]
    ChunkSizeLineTooLong,
    #[error("missing CRLF after chunk data")]
    ChunkMissingCrlf,
    #[error("chunked trailer section too large")]
    TrailersTooLarge,
    #[error("malformed chunked trailer")]
    InvalidTrailer,
}

impl HttpError {
    /// The HTTP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::RequestLineTooLong => 414,
            HttpError::BodyTooLarge => 413,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::ChunkedNotFinal => 400,
            HttpError::ExpectationFailed => 417,
            _ => 400,
        }
    }
}

/// Check line-based limits and obs-fold on the (possibly incomplete) head in `buf`.
fn check_lines(buf: &[u8], limits: &Limits) -> Result<(), HttpError> {
    let mut fields = 0usize;
    for (i, seg) in buf.split(|&b| b == b'\n').enumerate() {
        let line = seg.strip_suffix(b"\r").unwrap_or(seg);
        if i == 0 {
            if line.len() > limits.request_line {
                return Err(HttpError::RequestLineTooLong);
            }
            continue;
        }
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HttpError::ObsFold);
        }
        if line.len() > limits.field_size {
            return Err(HttpError::HeaderFieldTooLong);
        }
        fields += 1;
        if fields > limits.fields {
            return Err(HttpError::TooManyHeaders);
        }
    }
    Ok(())
}

fn syntax_message(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid new line",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

fn comma_tokens(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Parse a request head from the start of `buf`.
///
/// `Ok(None)`: incomplete, read more. `Ok(Some((head, n)))`: the first `n`
/// bytes (including skipped leading empty lines) were the head.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, HttpError> {
    // RFC 9112 §2.2: skip empty lines before the request line.
    let mut off = 0;
    loop {
        let rest = &buf[off..];
        if rest.starts_with(b"\r\n") {
            off += 2;
        } else if rest.starts_with(b"\n") {
            off += 1;
        } else {
            break;
        }
    }
    let data = &buf[off..];
    check_lines(data, limits)?;

    let mut headers = vec![httparse::EMPTY_HEADER; limits.fields + 1];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = match req.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            let cap = limits
                .request_line
                .saturating_add(limits.fields.saturating_mul(limits.field_size));
            if buf.len() > cap {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(e) => return Err(HttpError::Syntax(syntax_message(e))),
    };
    if req.headers.len() > limits.fields {
        return Err(HttpError::TooManyHeaders);
    }

    let version = req.version.unwrap_or(1);
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();

    let mut hosts = 0usize;
    let mut content_length: Option<u64> = None;
    let mut cl_count = 0usize;
    let mut te: Vec<&str> = Vec::new();
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    let mut expect_other = false;
    for (name, value) in &headers {
        let name = name.as_str();
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            cl_count += 1;
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::InvalidContentLength);
            }
            content_length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| HttpError::InvalidContentLength)?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te.push(value);
        } else if name.eq_ignore_ascii_case("connection") {
            for t in comma_tokens(value) {
                if t.eq_ignore_ascii_case("close") {
                    close = true;
                } else if t.eq_ignore_ascii_case("keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if value.eq_ignore_ascii_case("100-continue") {
                expect_continue = true;
            } else {
                expect_other = true;
            }
        }
    }

    if version == 1 && hosts == 0 {
        return Err(HttpError::MissingHost);
    }
    if hosts > 1 {
        return Err(HttpError::DuplicateHost);
    }
    if cl_count > 1 {
        return Err(HttpError::DuplicateContentLength);
    }
    let body = if !te.is_empty() {
        if version == 0 {
            return Err(HttpError::TransferEncodingInHttp10);
        }
        if cl_count > 0 {
            return Err(HttpError::TransferEncodingWithContentLength);
        }
        // RFC 9112 §6.3: chunked must be the final coding, else the length is unknown (400);
        // §6.1: a coding we do not implement in front of it is 501.
        let codings: Vec<&str> = te.iter().flat_map(|v| comma_tokens(v)).collect();
        match codings.split_last() {
            Some((last, rest)) if last.eq_ignore_ascii_case("chunked") => {
                if !rest.is_empty() {
                    return Err(HttpError::UnsupportedTransferEncoding);
                }
            }
            _ => return Err(HttpError::ChunkedNotFinal),
        }
        BodyKind::Chunked
    } else if let Some(n) = content_length {
        if limits.body > 0 && n > limits.body {
            return Err(HttpError::BodyTooLarge);
        }
        BodyKind::Length(n)
    } else {
        BodyKind::None
    };
    if version == 1 && expect_other {
        return Err(HttpError::ExpectationFailed);
    }

    let keep_alive = !close && (version == 1 || keep_alive_token);
    Ok(Some((
        RequestHead {
            method,
            target,
            version,
            #[cfg(test)]
            headers,
            body,
            keep_alive,
            must_close: close,
            asks_keep_alive: keep_alive_token,
            expect_continue: expect_continue && version == 1,
        },
        off + parsed,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<(RequestHead, usize)>, HttpError> {
        parse_head(s.as_bytes(), &Limits::default())
    }

    fn status(s: &str) -> u16 {
        parse(s).expect_err("expected error").status()
    }

    fn err(s: &str) -> HttpError {
        parse(s).expect_err("expected error")
    }

    fn ok(s: &str) -> RequestHead {
        parse(s).unwrap().unwrap().0
    }

    #[test]
    fn simple_get() {
        let s = "\r\n\r\nGET /a/b?x=1&y HTTP/1.1\r\nHost: ex\r\nX-A:  v  \r\n\r\nBODY";
        let (h, n) = parse(s).unwrap().unwrap();
        assert_eq!(n, s.len() - 4);
        assert_eq!(h.method, "GET");
        assert_eq!(h.path(), "/a/b");
        assert_eq!(h.query(), Some("x=1&y"));
        assert_eq!(h.request_line(), "GET /a/b?x=1&y HTTP/1.1");
        assert_eq!(h.header("x-a"), Some("v"));
        assert_eq!(h.header("HOST"), Some("ex"));
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive && !h.must_close && !h.expect_continue);
    }

    #[test]
    fn incomplete() {
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        assert!(parse("").unwrap().is_none());
        assert!(parse("\r\n").unwrap().is_none());
    }

    #[test]
    fn connection_semantics() {
        let h = ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, CLOSE\r\n\r\n");
        assert!(!h.keep_alive && h.must_close);
        let h = ok("GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive && !h.must_close);
        let h = ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive && h.version == 0);
        let h = ok("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n");
        assert!(h.expect_continue);
    }

    #[test]
    fn body_kinds() {
        let h = ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(12));
        let h = ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked \r\n\r\n");
        assert_eq!(h.body, BodyKind::Chunked);
    }

    #[test]
    fn request_line_too_long() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        assert_eq!(status(&long), 414);
        // Also while still incomplete.
        let partial = format!("GET /{}", "a".repeat(9000));
        assert_eq!(status(&partial), 414);
    }

    #[test]
    fn field_too_long() {
        let s = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert_eq!(status(&s), 400);
        let s = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(9000));
        assert_eq!(status(&s), 400);
    }

    #[test]
    fn too_many_fields() {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..100 {
            s.push_str(&format!("X-{i}: y\r\n"));
        }
        s.push_str("\r\n");
        assert_eq!(err(&s), HttpError::TooManyHeaders);
        let limits = Limits {
            fields: 3,
            ..Limits::default()
        };
        let s = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(parse_head(s.as_bytes(), &limits).unwrap().is_some());
        let s = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(parse_head(s.as_bytes(), &limits).unwrap_err().status(), 400);
    }

    #[test]
    fn head_buffer_cap() {
        let limits = Limits {
            request_line: 100,
            field_size: 100,
            fields: 2,
            body: 0,
        };
        // Each line is within limits but the endless stream of empty-ish lines is not.
        let s = "\r\n".repeat(200);
        assert_eq!(
            parse_head(s.as_bytes(), &limits).unwrap_err(),
            HttpError::HeadTooLarge
        );
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(status("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.2\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\rHost: x\r\n\r\n"), 400);
        assert_eq!(status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400);
    }

    #[test]
    fn obs_fold() {
        let s = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n";
        assert_eq!(err(s), HttpError::ObsFold);
        let s = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n";
        assert_eq!(status(s), 400);
    }

    #[test]
    fn content_length_rules() {
        let base = "POST / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(status(&format!("{base}Content-Length: 1a\r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: +5\r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: \r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: 5, 6\r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: 5, 5\r\n\r\n")), 400);
        assert_eq!(
            status(&format!(
                "{base}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status(&format!(
                "{base}Content-Length: 99999999999999999999999\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status(&format!("{base}Content-Length: 1073741825\r\n\r\n")),
            413
        );
        let limits = Limits {
            body: 0,
            ..Limits::default()
        };
        let s = format!("{base}Content-Length: 1073741825\r\n\r\n");
        assert!(parse_head(s.as_bytes(), &limits).unwrap().is_some());
    }

    #[test]
    fn transfer_encoding_rules() {
        let base = "POST / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(
            status(&format!("{base}Transfer-Encoding: gzip, chunked\r\n\r\n")),
            501
        );
        assert_eq!(
            status(&format!("{base}Transfer-Encoding: identity\r\n\r\n")),
            400
        );
        assert_eq!(
            status(&format!("{base}Transfer-Encoding: gzip\r\n\r\n")),
            400
        );
        assert_eq!(
            status(&format!(
                "{base}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            501
        );
        assert_eq!(
            status(&format!(
                "{base}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(err("GET / HTTP/1.1\r\n\r\n"), HttpError::MissingHost);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert!(parse("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn unknown_expectation() {
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n"),
            417
        );
    }
}
