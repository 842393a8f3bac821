//! Property tests for the HTTP module: request-head parsing robustness and
//! round-trips, prefix incompleteness, and chunked decoding across split points.

use proptest::prelude::*;

use super::body::ChunkedDecoder;
use super::request::{parse_head, BodyKind, Limits};

#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, String)>,
}

impl Req {
    fn serialise(&self) -> Vec<u8> {
        let mut s = format!(
            "{} {} HTTP/1.{}\r\n",
            self.method, self.target, self.version
        );
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

fn req_strategy() -> impl Strategy<Value = Req> {
    let method = prop::sample::select(vec![
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND",
    ]);
    let target = (
        "/[a-zA-Z0-9._~/-]{0,30}",
        prop::option::of("[a-z0-9=&]{0,12}"),
    )
        .prop_map(|(p, q)| match q {
            Some(q) => format!("{p}?{q}"),
            None => p,
        });
    let header = ("X-[A-Za-z0-9-]{1,12}", "[!-~]([ !-~]{0,20}[!-~])?");
    (
        method,
        target,
        0u8..=1,
        "[a-z0-9.]{1,20}",
        prop::collection::vec(header, 0..10),
        prop::option::of(0u64..1_000_000),
    )
        .prop_map(|(method, target, version, host, extra, cl)| {
            let mut headers = vec![("Host".to_string(), host)];
            headers.extend(extra);
            if let Some(cl) = cl {
                headers.push(("Content-Length".to_string(), cl.to_string()));
            }
            Req {
                method: method.to_string(),
                target,
                version,
                headers,
            }
        })
}

fn chunk_encode(chunks: &[Vec<u8>], trailers: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:x};ext=1\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if trailers {
        out.extend_from_slice(b"X-Trailer: yes\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(Some((_, n))) = parse_head(&buf, &Limits::default()) {
            prop_assert!(n <= buf.len());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "[A-Za-z0-9 :/\r\n.-]{0,512}") {
        if let Ok(Some((_, n))) = parse_head(s.as_bytes(), &Limits::default()) {
            prop_assert!(n <= s.len());
        }
    }

    #[test]
    fn valid_request_round_trips(
        req in req_strategy(),
        extra in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let head = req.serialise();
        let mut buf = head.clone();
        buf.extend_from_slice(&extra);
        let (parsed, n) = parse_head(&buf, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(n, head.len());
        prop_assert_eq!(&parsed.method, &req.method);
        prop_assert_eq!(&parsed.target, &req.target);
        prop_assert_eq!(parsed.version, req.version);
        prop_assert_eq!(&parsed.headers, &req.headers);
        let expected_body = match parsed.header("content-length") {
            Some(v) => BodyKind::Length(v.parse().unwrap()),
            None => BodyKind::None,
        };
        prop_assert_eq!(parsed.body, expected_body);
    }

    #[test]
    fn proper_prefixes_are_incomplete(req in req_strategy()) {
        let head = req.serialise();
        for i in 0..head.len() {
            let r = parse_head(&head[..i], &Limits::default());
            prop_assert!(matches!(r, Ok(None)), "prefix {} gave {:?}", i, r);
        }
    }

    #[test]
    fn chunked_split_anywhere(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        trailers in any::<bool>(),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        tail in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let expected: Vec<u8> = chunks.concat();
        let mut stream = chunk_encode(&chunks, trailers);
        let encoded_len = stream.len();
        stream.extend_from_slice(&tail);

        let mut points: Vec<usize> = splits.iter().map(|ix| ix.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();

        let mut dec = ChunkedDecoder::new(0);
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut consumed_total = 0;
        for p in points {
            pending.extend_from_slice(&stream[fed..p]);
            fed = p;
            let n = dec.decode(&pending, &mut out).unwrap();
            prop_assert!(n <= pending.len());
            pending.drain(..n);
            consumed_total += n;
            if dec.is_done() {
                break;
            }
        }
        prop_assert!(dec.is_done());
        prop_assert_eq!(consumed_total, encoded_len);
        prop_assert_eq!(out, expected);
        // Nothing after the final CRLF is consumed.
        let mut rest = pending;
        rest.extend_from_slice(&stream[fed..]);
        prop_assert_eq!(rest, tail);
    }
}
