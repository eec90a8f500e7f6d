//! The fixture client: sends a [`Request`] over HTTP/1.1 from its `source`
//! address and turns the answer into an [`Outcome`].

use super::http::{self, Framing};
use crate::fixture::{EchoedRequest, Outcome, Request, ECHO_HEADER};
use socket2::{Domain, Socket, Type};
use std::fmt;
use std::io::{self, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long the client waits to connect, and for each read.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request could not be sent or its answer read.
#[derive(Debug)]
pub enum ClientError {
    /// The source address could not be bound (on Linux all of 127.0.0.0/8
    /// is local; other systems may need an alias on the loopback device).
    Bind {
        /// The requested source address.
        source_ip: IpAddr,
        /// The underlying error.
        error: io::Error,
    },
    /// Connecting to the proxy failed.
    Connect {
        /// The proxy address.
        addr: SocketAddr,
        /// The underlying error.
        error: io::Error,
    },
    /// Writing the request or reading the response failed (includes
    /// timeouts and malformed responses).
    Exchange(io::Error),
    /// The response claimed to come from the echo upstream but its body is
    /// not an echoed request.
    BadEcho(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Bind { source_ip, error } => write!(
                f,
                "cannot use {source_ip} as the client address ({error}); \
                 use a loopback address such as 127.0.0.7"
            ),
            ClientError::Connect { addr, error } => {
                write!(f, "cannot connect to the proxy at {addr}: {error}")
            }
            ClientError::Exchange(e) => write!(f, "the HTTP exchange failed: {e}"),
            ClientError::BadEcho(detail) => write!(
                f,
                "the response carries `{ECHO_HEADER}: 1` but its body is not an echoed request: {detail}"
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Bind { error, .. } | ClientError::Connect { error, .. } => Some(error),
            ClientError::Exchange(e) => Some(e),
            ClientError::BadEcho(_) => None,
        }
    }
}

/// Sends `request` to `addr` on a new connection bound to `request.source`
/// (if given) and reads the response.
///
/// The request carries `host: <authority>`, the fixture headers in order
/// with lower-cased names, and `content-length` when it has a body (unless
/// the fixture sets `content-length` or `transfer-encoding` itself). The
/// outcome's `upstream` is the parsed echo body when the response carries
/// `x-palisade-echo: 1`.
pub fn send(addr: SocketAddr, request: &Request) -> Result<Outcome, ClientError> {
    let mut stream = connect(addr, request.source)?;
    stream
        .write_all(&encode(request))
        .map_err(ClientError::Exchange)?;
    let mut reader = BufReader::new(stream);
    let head = http::read_head(&mut reader)
        .map_err(ClientError::Exchange)?
        .ok_or_else(|| {
            ClientError::Exchange(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the proxy closed the connection without a response",
            ))
        })?;
    let status: u16 = head
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ClientError::Exchange(http::invalid(format!("bad status line {:?}", head.start)))
        })?;
    let framing = if request.method.eq_ignore_ascii_case("HEAD")
        || status == 204
        || status == 304
        || (100..200).contains(&status)
    {
        Framing::Length(0)
    } else {
        head.framing().map_err(ClientError::Exchange)?
    };
    let body = http::read_body(&mut reader, framing).map_err(ClientError::Exchange)?;
    let upstream = if head.header(ECHO_HEADER) == Some("1") {
        Some(
            serde_json::from_slice::<EchoedRequest>(&body)
                .map_err(|e| ClientError::BadEcho(e.to_string()))?,
        )
    } else {
        None
    };
    Ok(Outcome {
        status,
        headers: head.headers,
        body,
        upstream,
    })
}

fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, ClientError> {
    let connect_err = |error| ClientError::Connect { addr, error };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(connect_err)?;
    if let Some(ip) = source {
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .map_err(|error| ClientError::Bind {
                source_ip: ip,
                error,
            })?;
    }
    socket
        .connect_timeout(&addr.into(), TIMEOUT)
        .map_err(connect_err)?;
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(connect_err)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(connect_err)?;
    stream.set_nodelay(true).map_err(connect_err)?;
    Ok(stream)
}

/// The request bytes.
fn encode(request: &Request) -> Vec<u8> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        request.method, request.path, request.authority
    );
    let mut framed = false;
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        framed |= name == "content-length" || name == "transfer-encoding";
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let (Some(body), false) = (&request.body, framed) {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(body) = &request.body {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::upstream::EchoUpstream;

    #[test]
    fn encodes_host_headers_and_body_length() {
        let request = Request {
            method: "POST".into(),
            path: "/p?x=1".into(),
            authority: "api.local".into(),
            headers: vec![("X-Team".into(), "ops".into())],
            body: Some("hi".into()),
            source: None,
        };
        assert_eq!(
            String::from_utf8(encode(&request)).unwrap(),
            "POST /p?x=1 HTTP/1.1\r\nhost: api.local\r\nx-team: ops\r\ncontent-length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn sends_from_the_source_address_to_the_echo_upstream() {
        let upstream = EchoUpstream::start().unwrap();
        let request = Request {
            method: "PUT".into(),
            path: "/items/1".into(),
            headers: vec![("x-a".into(), "1".into()), ("x-a".into(), "2".into())],
            body: Some("{\"k\":1}".into()),
            source: Some("127.0.0.7".parse().unwrap()),
            ..Request::default()
        };
        let outcome = send(upstream.addr(), &request).unwrap();
        assert_eq!(outcome.status, 200);
        assert_eq!(outcome.header("content-type"), Some("application/json"));
        let echoed = outcome.upstream.expect("the echo answered");
        assert_eq!(echoed.method, "PUT");
        assert_eq!(echoed.path, "/items/1");
        assert_eq!(echoed.body, "{\"k\":1}");
        assert_eq!(
            echoed.headers,
            [
                ("host", "example.com"),
                ("x-a", "1"),
                ("x-a", "2"),
                ("content-length", "7")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn a_source_that_is_not_local_is_a_bind_error() {
        let upstream = EchoUpstream::start().unwrap();
        let request = Request {
            source: Some("192.0.2.1".parse().unwrap()),
            ..Request::default()
        };
        let err = send(upstream.addr(), &request).unwrap_err();
        assert!(matches!(err, ClientError::Bind { .. }), "{err}");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
