//! Minimal HTTP/1.1 message framing shared by the echo upstream, the client
//! and the admin queries: a head (start line + headers) and a body delimited
//! by content-length, chunked encoding or connection close.

use std::io::{self, BufRead, Read};

/// Upper bound on a head, so a broken peer cannot make us buffer forever.
const MAX_HEAD: usize = 64 * 1024;

/// A request or status line with its headers (names lower-cased, in order).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// How the body that follows this head is delimited. `Close` is only
    /// meaningful for responses; a request without framing has no body.
    pub fn framing(&self) -> io::Result<Framing> {
        let chunked = self
            .headers
            .iter()
            .filter(|(k, _)| k == "transfer-encoding")
            .any(|(_, v)| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            Some(v) => v
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| invalid(format!("bad content-length {v:?}"))),
            None => Ok(Framing::Close),
        }
    }
}

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    Close,
}

pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one line without its CRLF; `None` at end of stream.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(invalid("HTTP head too large"));
    }
    *budget -= n;
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of a line",
        ));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Reads a head; `None` when the stream ends cleanly before its first byte.
pub(crate) fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let mut budget = MAX_HEAD;
    let start = match read_line(r, &mut budget)? {
        Some(line) => line,
        None => return Ok(None),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget)?
            .ok_or_else(|| invalid("connection closed inside the HTTP head"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("malformed header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Some(Head { start, headers }))
}

/// Reads a body with the given framing.
pub(crate) fn read_body<R: BufRead>(r: &mut R, framing: Framing) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match framing {
        Framing::Length(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        Framing::Close => {
            r.read_to_end(&mut body)?;
        }
        Framing::Chunked => loop {
            let mut budget = MAX_HEAD;
            let line = read_line(r, &mut budget)?
                .ok_or_else(|| invalid("connection closed inside a chunked body"))?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while let Some(l) = read_line(r, &mut budget)? {
                    if l.is_empty() {
                        break;
                    }
                }
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        },
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn reads_head_and_chunked_body() {
        let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let mut r = BufReader::new(&raw[..]);
        let head = read_head(&mut r).unwrap().unwrap();
        assert_eq!(head.start, "POST /x HTTP/1.1");
        assert_eq!(head.header("host"), Some("a"));
        assert_eq!(head.framing().unwrap(), Framing::Chunked);
        assert_eq!(read_body(&mut r, Framing::Chunked).unwrap(), b"abcde");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
    }

    #[test]
    fn reads_content_length_and_close_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
        let mut r = BufReader::new(&raw[..]);
        let head = read_head(&mut r).unwrap().unwrap();
        assert_eq!(head.framing().unwrap(), Framing::Length(2));
        assert_eq!(read_body(&mut r, Framing::Length(2)).unwrap(), b"hi");
        assert!(read_head(&mut r).unwrap().is_none());

        let mut r = BufReader::new(&b"until the end"[..]);
        assert_eq!(read_body(&mut r, Framing::Close).unwrap(), b"until the end");
    }

    #[test]
    fn refuses_malformed_heads() {
        let mut r = BufReader::new(&b"GET / HTTP/1.1\r\nno colon\r\n\r\n"[..]);
        assert!(read_head(&mut r).is_err());
        let mut r = BufReader::new(&b"GET / HTTP/1.1\r\nhost: a\r\n"[..]);
        assert!(read_head(&mut r).is_err());
        let head = Head {
            start: String::new(),
            headers: vec![("content-length".into(), "x".into())],
        };
        assert!(head.framing().is_err());
    }
}
