//! What the server answers: `/`, `/server-status`, the body generators `/bytes/SIZE` (built in
//! memory per request) and `/static/SIZE` (a shared, file-like body that the event MPM can set
//! aside for write completion), and `/fault/<fault>` (only with `--faults`).

use mpm_faults::Fault;

use crate::context::WorkerCtx;
use crate::fault::{self, Answer};
use crate::http::request::RequestHead;
use crate::status::{self, StatusInfo};

/// The largest body `/bytes/SIZE` builds in memory.
const MAX_MEMORY_BODY: u64 = 256 * 1024 * 1024;

/// A block of bytes that every body of `/bytes/SIZE` and `/static/SIZE` repeats: 64-byte lines
/// `abc…zabc…zabc…k\n`, the body the harness checks (and Apache's handler writes). Lives for the
/// whole process, so setting such a body aside costs nothing (as a file for sendfile does in
/// Apache).
pub static PATTERN: [u8; 64 * 1024] = pattern();

const fn pattern() -> [u8; 64 * 1024] {
    let mut block = [0u8; 64 * 1024];
    let mut i = 0;
    while i < block.len() {
        block[i] = if i % 64 == 63 {
            b'\n'
        } else {
            b'a' + (i % 64 % 26) as u8
        };
        i += 1;
    }
    block
}

/// A response body.
pub enum Body {
    Empty,
    /// Built in memory for this request.
    Bytes(Vec<u8>),
    /// `len` bytes of [`PATTERN`], repeated: file-like, cheap to set aside.
    Pattern(u64),
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Pattern(n) => *n,
        }
    }
}

/// What a handler produced.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Headers of the handler's own (the served-by and framing headers are added for all).
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// The handler wants the connection closed after this response.
    pub close: bool,
}

impl Response {
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Body::Bytes(text.into().into_bytes()),
            close: false,
        }
    }

    pub fn html(status: u16, html: String) -> Response {
        Response {
            status,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: Body::Bytes(html.into_bytes()),
            close: false,
        }
    }

    /// An error page like Apache's.
    pub fn error(status: u16) -> Response {
        Response::html(status, crate::http::response::error_body(status))
    }
}

/// The outcome of handling a request.
pub enum Handled {
    Respond(Response),
    /// Close the connection without any response (fault `close`).
    DropConnection,
}

/// Routes a request to its handler. Faults run here, on the worker that serves the request.
pub fn handle(head: &RequestHead, w: &WorkerCtx<'_>) -> Handled {
    let path = head.path();
    if !matches!(head.method.as_str(), "GET" | "HEAD" | "POST") {
        return Handled::Respond(Response::error(405));
    }
    if path == "/" {
        return Handled::Respond(Response::text(200, "refhttpd: it works\n"));
    }
    if path == "/server-status" || path == "/server-status/" {
        return Handled::Respond(server_status(head, w));
    }
    if let Some(size) = path.strip_prefix("/bytes/") {
        return Handled::Respond(sized_body(size, false));
    }
    if let Some(size) = path.strip_prefix("/static/") {
        return Handled::Respond(sized_body(size, true));
    }
    match Fault::from_request_path(path) {
        None => Handled::Respond(Response::error(404)),
        Some(_) if !w.child.faults.enabled() => Handled::Respond(Response::error(404)),
        Some(Err(e)) => Handled::Respond(Response::text(400, format!("{e}\n"))),
        Some(Ok(fault)) => match fault::in_request(&fault) {
            Answer::Text(status, text) => Handled::Respond(Response::text(status, text)),
            Answer::Shared(state) => Handled::Respond(shared_state(&state)),
            Answer::Close => Handled::DropConnection,
        },
    }
}

/// `shared:`'s answer (TS-1): `X-Shared-State: intact|clobbered`, with this request's token and
/// the one found in the slot.
fn shared_state(state: &fault::SharedState) -> Response {
    use mpm_faults::shared;
    let word = if state.intact() {
        shared::INTACT
    } else {
        shared::CLOBBERED
    };
    let mut response = Response::text(200, format!("shared state {word}\n"));
    response.headers = vec![
        (shared::STATE_HEADER, word.to_string()),
        // Unique across processes too: the process's pid before its own count.
        (
            shared::TOKEN_HEADER,
            format!("{}.{}", std::process::id(), state.mine),
        ),
        (
            shared::FOUND_HEADER,
            format!("{}.{}", std::process::id(), state.found),
        ),
    ];
    response
}

fn server_status(head: &RequestHead, w: &WorkerCtx<'_>) -> Response {
    let snapshot = w.child.scoreboard.snapshot();
    let info = StatusInfo {
        server_version: crate::SERVER_VERSION,
        uptime: w.child.server_started.elapsed(),
        total_kbytes: snapshot.total_kbytes(),
    };
    let auto = head
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "auto"));
    if auto {
        let mut r = Response::text(200, status::render_auto(&snapshot, &info));
        r.content_type = "text/plain; charset=ISO-8859-1";
        r
    } else {
        Response::html(200, status::render_html(&snapshot, &info))
    }
}

fn sized_body(size: &str, file_like: bool) -> Response {
    let len = match mpm_faults::size::parse(size) {
        Ok(len) => len,
        Err(e) => return Response::text(400, format!("{e}\n")),
    };
    let body = if file_like {
        Body::Pattern(len)
    } else if len > MAX_MEMORY_BODY {
        return Response::text(400, format!("at most {MAX_MEMORY_BODY} bytes in memory\n"));
    } else {
        Body::Bytes(PATTERN.iter().copied().cycle().take(len as usize).collect())
    };
    Response {
        status: 200,
        content_type: "application/octet-stream",
        headers: Vec::new(),
        body,
        close: false,
    }
}
