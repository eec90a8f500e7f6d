//! The echo upstream: a small HTTP/1.1 server that answers every request
//! with 200, `content-type: application/json`, `x-palisade-echo: 1` and a
//! JSON [`EchoedRequest`] describing what it received.
//!
//! It serves keep-alive connections, each on its own thread, and reads
//! content-length and chunked request bodies. The same server can instead
//! answer every request with one fixed [`HttpAnswer`]
//! ([`EchoUpstream::start_canned`]): the callout clusters of a fixture file.

use super::http::{self, Framing};
use crate::fixture::{EchoedRequest, HttpAnswer, ECHO_HEADER};
use std::io::{self, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long an idle keep-alive connection is kept before the server drops it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A running echo upstream on 127.0.0.1; stopped when dropped.
#[derive(Debug)]
pub struct EchoUpstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl EchoUpstream {
    /// Starts an echo upstream on 127.0.0.1 on a free port.
    pub fn start() -> io::Result<EchoUpstream> {
        EchoUpstream::start_on(0)
    }

    /// Starts an echo upstream on 127.0.0.1:`port` (0 = a free port).
    pub fn start_on(port: u16) -> io::Result<EchoUpstream> {
        EchoUpstream::serve(port, None)
    }

    /// Starts a server on 127.0.0.1 on a free port that answers every
    /// request with `answer` (a fixture's http callout).
    pub fn start_canned(answer: HttpAnswer) -> io::Result<EchoUpstream> {
        EchoUpstream::serve(0, Some(Arc::new(answer)))
    }

    fn serve(port: u16, canned: Option<Arc<HttpAnswer>>) -> io::Result<EchoUpstream> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let accept = std::thread::Builder::new()
            .name(format!("echo-upstream-{}", addr.port()))
            .spawn(move || accept_loop(listener, &flag, canned))?;
        Ok(EchoUpstream {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// Runs an echo upstream on 127.0.0.1:`port` in the foreground, forever
/// (for demos: `palisade-harness echo-upstream --port N`). Returns only if
/// the port cannot be bound.
pub fn serve_echo(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    accept_loop(listener, &AtomicBool::new(false), None);
    Ok(())
}

fn accept_loop(listener: TcpListener, stop: &AtomicBool, canned: Option<Arc<HttpAnswer>>) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(conn) = conn else { continue };
        let canned = canned.clone();
        let _ = std::thread::Builder::new()
            .name("echo-upstream-conn".into())
            .spawn(move || {
                let _ = serve_connection(conn, canned.as_deref());
            });
    }
}

/// The status line, headers (without framing) and body of a response.
fn response_parts(
    canned: Option<&HttpAnswer>,
    echoed: &EchoedRequest,
) -> io::Result<(String, Vec<u8>)> {
    match canned {
        Some(a) => {
            let mut head = format!("HTTP/1.1 {} X\r\n", a.status);
            for (k, v) in &a.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            Ok((head, a.body.clone().into_bytes()))
        }
        None => {
            let json = serde_json::to_vec(echoed).map_err(io::Error::other)?;
            Ok((
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{ECHO_HEADER}: 1\r\n"
                ),
                json,
            ))
        }
    }
}

fn serve_connection(conn: TcpStream, canned: Option<&HttpAnswer>) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE_TIMEOUT))?;
    conn.set_nodelay(true)?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    while let Some(head) = http::read_head(&mut reader)? {
        let framing = match head.framing()? {
            // A request without content-length or chunked has no body.
            Framing::Close => Framing::Length(0),
            f => f,
        };
        let body = http::read_body(&mut reader, framing)?;
        let mut parts = head.start.split_whitespace();
        let echoed = EchoedRequest {
            method: parts.next().unwrap_or("").to_string(),
            path: parts.next().unwrap_or("").to_string(),
            headers: head.headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let (mut response, json) = response_parts(canned, &echoed)?;
        let close = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        response.push_str(&format!("content-length: {}\r\n", json.len()));
        if close {
            response.push_str("connection: close\r\n");
        }
        response.push_str("\r\n");
        let mut out = response.into_bytes();
        if echoed.method != "HEAD" {
            out.extend_from_slice(&json);
        }
        writer.write_all(&out)?;
        writer.flush()?;
        if close {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read};

    fn exchange(stream: &mut TcpStream, reader: &mut impl BufRead, raw: &str) -> EchoedRequest {
        stream.write_all(raw.as_bytes()).unwrap();
        let head = http::read_head(reader).unwrap().unwrap();
        assert_eq!(head.start, "HTTP/1.1 200 OK");
        assert_eq!(head.header(ECHO_HEADER), Some("1"));
        assert_eq!(head.header("content-type"), Some("application/json"));
        let body = http::read_body(reader, head.framing().unwrap()).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn echoes_requests_on_one_keep_alive_connection() {
        let upstream = EchoUpstream::start().unwrap();
        let mut stream = TcpStream::connect(upstream.addr()).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());

        let first = exchange(
            &mut stream,
            &mut reader,
            "POST /a?q=1 HTTP/1.1\r\nHost: api.local\r\nX-Team: ops\r\nX-Team: dev\r\ncontent-length: 5\r\n\r\nhello",
        );
        assert_eq!(first.method, "POST");
        assert_eq!(first.path, "/a?q=1");
        assert_eq!(first.body, "hello");
        assert_eq!(
            first.headers,
            vec![
                ("host".to_string(), "api.local".to_string()),
                ("x-team".to_string(), "ops".to_string()),
                ("x-team".to_string(), "dev".to_string()),
                ("content-length".to_string(), "5".to_string()),
            ]
        );

        let second = exchange(
            &mut stream,
            &mut reader,
            "PUT /b HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        );
        assert_eq!(
            (second.method.as_str(), second.body.as_str()),
            ("PUT", "abc")
        );

        let third = exchange(
            &mut stream,
            &mut reader,
            "GET / HTTP/1.1\r\nhost: h\r\n\r\n",
        );
        assert_eq!((third.path.as_str(), third.body.as_str()), ("/", ""));
    }

    #[test]
    fn closes_when_asked_and_stops_on_drop() {
        let upstream = EchoUpstream::start().unwrap();
        let addr = upstream.addr();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /x HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        stream.read_to_string(&mut all).unwrap();
        assert!(all.contains("\"path\":\"/x\""), "{all}");
        drop(upstream);
        assert!(
            TcpStream::connect(addr).is_err(),
            "port still accepts after drop"
        );
    }

    #[test]
    fn serve_echo_reports_a_port_in_use() {
        let upstream = EchoUpstream::start().unwrap();
        let err = serve_echo(upstream.port()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
