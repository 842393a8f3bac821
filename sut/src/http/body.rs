//! Request-body decoders: [`LengthDecoder`] for `Content-Length` bodies and
//! [`ChunkedDecoder`] for `Transfer-Encoding: chunked` (RFC 9112 §7.1).
//! Both are incremental and accept input split at any byte boundary.

use super::request::HttpError;

/// Maximum length of a chunk-size line (size plus extensions).
const MAX_SIZE_LINE: usize = 4096;
/// Maximum total bytes of the trailer section.
const MAX_TRAILERS: usize = 8190;

/// Decoder for a body of known length.
#[derive(Debug, Clone)]
pub struct LengthDecoder {
    remaining: u64,
}

impl LengthDecoder {
    pub fn new(len: u64) -> Self {
        LengthDecoder { remaining: len }
    }

    /// Consume at most the remaining length from `input`, appending it to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        out.extend_from_slice(&input[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }

    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size {
        digits: usize,
    },
    /// After the size digits: optional whitespace before `;` or CR.
    Bws,
    /// Inside chunk extensions (ignored), up to CR.
    Ext,
    /// Saw CR of the size line, expecting LF.
    SizeLf,
    /// Reading chunk data.
    Data,
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// Inside the trailer section; `line` bytes of the current line so far.
    Trailer {
        line: usize,
    },
    /// Saw CR in the trailer section; `empty` if it ends an empty line.
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Incremental decoder for `Transfer-Encoding: chunked`.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    limit: u64,
    total: u64,
    /// Current chunk size while parsing the size line, then bytes left in the chunk.
    size: u64,
    size_line: usize,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    /// `limit` caps the decoded body size (0 = unlimited).
    pub fn new(limit: u64) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            limit,
            total: 0,
            size: 0,
            size_line: 0,
            trailer_bytes: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consume a prefix of `input`, appending decoded data to `out`.
    /// Never consumes bytes after the final CRLF.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => break,
                State::Data => {
                    let n = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out.extend_from_slice(&input[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Size { .. } | State::Bws | State::Ext | State::SizeLf => {
                    self.size_line += 1;
                    if self.size_line > MAX_SIZE_LINE {
                        return Err(HttpError::ChunkSizeLineTooLong);
                    }
                    self.size_byte(b)?;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(HttpError::ChunkMissingCrlf);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(HttpError::ChunkMissingCrlf);
                    }
                    self.start_size_line();
                }
                State::Trailer { line } => {
                    self.count_trailer()?;
                    self.state = match b {
                        b'\r' => State::TrailerLf { empty: line == 0 },
                        b'\n' => return Err(HttpError::InvalidTrailer),
                        _ => State::Trailer { line: line + 1 },
                    };
                }
                State::TrailerLf { empty } => {
                    self.count_trailer()?;
                    if b != b'\n' {
                        return Err(HttpError::InvalidTrailer);
                    }
                    self.state = if empty {
                        State::Done
                    } else {
                        State::Trailer { line: 0 }
                    };
                }
            }
            i += 1;
        }
        Ok(i)
    }

    fn start_size_line(&mut self) {
        self.state = State::Size { digits: 0 };
        self.size = 0;
        self.size_line = 0;
    }

    fn count_trailer(&mut self) -> Result<(), HttpError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILERS {
            return Err(HttpError::TrailersTooLarge);
        }
        Ok(())
    }

    fn size_byte(&mut self, b: u8) -> Result<(), HttpError> {
        match self.state {
            State::Size { digits } => {
                if let Some(d) = (b as char).to_digit(16) {
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(d)))
                        .ok_or(HttpError::InvalidChunkSize)?;
                    self.state = State::Size { digits: digits + 1 };
                } else if digits == 0 {
                    return Err(HttpError::InvalidChunkSize);
                } else {
                    self.state = State::Bws;
                    self.bws_byte(b)?;
                }
            }
            State::Bws => self.bws_byte(b)?,
            State::Ext => self.ext_byte(b)?,
            State::SizeLf => {
                if b != b'\n' {
                    return Err(HttpError::InvalidChunkSize);
                }
                self.end_size_line()?;
            }
            _ => unreachable!("size_byte called outside the size line"),
        }
        Ok(())
    }

    fn bws_byte(&mut self, b: u8) -> Result<(), HttpError> {
        match b {
            b' ' | b'\t' => {}
            b';' => self.state = State::Ext,
            b'\r' => self.state = State::SizeLf,
            _ => return Err(HttpError::InvalidChunkSize),
        }
        Ok(())
    }

    fn ext_byte(&mut self, b: u8) -> Result<(), HttpError> {
        match b {
            b'\r' => self.state = State::SizeLf,
            // Bare LF and other control characters are not allowed in the size line.
            0..=8 | 10..=31 | 127 => return Err(HttpError::InvalidChunkSize),
            _ => {}
        }
        Ok(())
    }

    fn end_size_line(&mut self) -> Result<(), HttpError> {
        if self.limit > 0 && self.total.saturating_add(self.size) > self.limit {
            return Err(HttpError::BodyTooLarge);
        }
        self.total += self.size;
        self.state = if self.size == 0 {
            State::Trailer { line: 0 }
        } else {
            State::Data
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], limit: u64) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = ChunkedDecoder::new(limit);
        let mut out = Vec::new();
        let n = d.decode(input, &mut out)?;
        Ok((out, n, d.is_done()))
    }

    #[test]
    fn length_decoder() {
        let mut d = LengthDecoder::new(5);
        let mut out = Vec::new();
        assert_eq!(d.decode(b"abc", &mut out).unwrap(), 3);
        assert!(!d.is_done());
        assert_eq!(d.decode(b"defgh", &mut out).unwrap(), 2);
        assert!(d.is_done());
        assert_eq!(out, b"abcde");
        assert_eq!(d.decode(b"xyz", &mut out).unwrap(), 0);
        assert!(LengthDecoder::new(0).is_done());
    }

    #[test]
    fn chunked_basic_with_ext_and_trailers() {
        let input = b"5;name=val\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\nGET /";
        let (out, n, done) = decode_all(input, 0).unwrap();
        assert_eq!(out, b"hello0123456789");
        assert!(done);
        assert_eq!(&input[n..], b"GET /");
    }

    #[test]
    fn chunked_incomplete() {
        let (out, n, done) = decode_all(b"5\r\nhel", 0).unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"hel"[..], 6, false));
    }

    #[test]
    fn chunked_errors() {
        let cases: &[(&[u8], u16)] = &[
            (b"g\r\n", 400),
            (b";x\r\n", 400),
            (b"11111111111111111\r\n", 400),
            (b"5\nhello\r\n", 400),
            (b"5x\r\nhello\r\n", 400),
            (b"5;a\nhello\r\n", 400),
            (b"5\r\nhelloX", 400),
            (b"5\r\nhello\rX", 400),
            (b"0\r\nX\nY", 400),
        ];
        for (input, status) in cases {
            let e = decode_all(input, 0).expect_err("expected error");
            assert_eq!(e.status(), *status, "{:?}", String::from_utf8_lossy(input));
        }
        let long = format!("1;{}\r\n", "x".repeat(5000));
        assert_eq!(
            decode_all(long.as_bytes(), 0).unwrap_err(),
            HttpError::ChunkSizeLineTooLong
        );
        let trailers = format!("0\r\nX: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(
            decode_all(trailers.as_bytes(), 0).unwrap_err(),
            HttpError::TrailersTooLarge
        );
    }

    #[test]
    fn chunked_limit() {
        let e = decode_all(b"5\r\nhello\r\n5\r\n", 8).unwrap_err();
        assert_eq!(e.status(), 413);
        assert!(
            decode_all(b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n", 8)
                .unwrap()
                .2
        );
    }
}
