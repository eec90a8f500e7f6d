//! The server behind a fixture's `grpc_stream` callout in the Envoy runner:
//! a small HTTP/2 gRPC server that plays the fixture's answer
//! ([`GrpcStreamScript`]) on every stream it is asked to open, following
//! the same script the harness runner follows.
//!
//! Per stream: the initial metadata goes out as the response headers when
//! the stream opens; each complete gRPC message the client sends
//! (5-byte length-prefixed frame) counts, and the script's replies go out
//! as DATA frames; the close goes out as trailers (`grpc-status`,
//! `grpc-message`, the fixture's trailing metadata). After closing, the
//! rest of the client's stream is read and ignored.

use crate::fixture::GrpcStreamAnswer;
use crate::grpc_stream::{GrpcStreamEvent, GrpcStreamScript};
use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// A running gRPC stream server on 127.0.0.1; stopped when dropped.
#[derive(Debug)]
pub struct GrpcStreamServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GrpcStreamServer {
    /// Starts a server on a free port that answers every stream with
    /// `answer`.
    pub fn start(answer: &GrpcStreamAnswer) -> io::Result<GrpcStreamServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let script = Arc::new(GrpcStreamScript::new(answer));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("grpc-stream-{}", addr.port()))
            .spawn(move || runtime.block_on(serve(listener, script, stopped)))?;
        Ok(GrpcStreamServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for GrpcStreamServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until told to stop; dropping the runtime afterwards
/// ends every connection.
async fn serve(
    listener: TcpListener,
    script: Arc<GrpcStreamScript>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                if let Ok((tcp, _)) = accepted {
                    tokio::spawn(connection(tcp, Arc::clone(&script)));
                }
            }
        }
    }
}

async fn connection(tcp: tokio::net::TcpStream, script: Arc<GrpcStreamScript>) {
    let Ok(mut conn) = h2::server::handshake(tcp).await else {
        return;
    };
    while let Some(Ok((request, respond))) = conn.accept().await {
        tokio::spawn(stream(request.into_body(), respond, Arc::clone(&script)));
    }
}

/// Plays the script on one stream.
async fn stream(
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    script: Arc<GrpcStreamScript>,
) {
    let mut delivered: Vec<GrpcStreamEvent> = Vec::new();
    let mut send: Option<SendStream<Bytes>> = None;
    let mut received = 0usize;
    let mut half_closed = false;
    let mut pending = Vec::new();
    loop {
        for event in script.events(received, half_closed, &delivered) {
            if write(&mut respond, &mut send, &event).is_err() {
                return;
            }
            delivered.push(event);
        }
        let closed = delivered
            .iter()
            .any(|e| matches!(e, GrpcStreamEvent::Close { .. }));
        if closed && half_closed {
            return;
        }
        match body.data().await {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                pending.extend_from_slice(&chunk);
                received += take_messages(&mut pending);
            }
            Some(Err(_)) => return,
            None => half_closed = true,
        }
    }
}

/// Removes the complete gRPC messages from the front of `pending`; returns
/// how many there were.
fn take_messages(pending: &mut Vec<u8>) -> usize {
    let mut count = 0;
    loop {
        let Some(header) = pending.get(..5) else {
            return count;
        };
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if pending.len() < 5 + len {
            return count;
        }
        pending.drain(..5 + len);
        count += 1;
    }
}

/// Sends one event of the script on the wire.
fn write(
    respond: &mut SendResponse<Bytes>,
    send: &mut Option<SendStream<Bytes>>,
    event: &GrpcStreamEvent,
) -> Result<(), h2::Error> {
    match event {
        GrpcStreamEvent::InitialMetadata(pairs) => {
            let status = pairs
                .iter()
                .find(|(k, _)| k == ":status")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(200u16);
            let mut response = http::Response::builder().status(status);
            for (k, v) in pairs.iter().filter(|(k, _)| !k.starts_with(':')) {
                response = response.header(k.as_str(), v.as_str());
            }
            let response = response.body(()).map_err(|_| h2::Reason::INTERNAL_ERROR)?;
            *send = Some(respond.send_response(response, false)?);
        }
        GrpcStreamEvent::Message(message) => {
            let mut frame = Vec::with_capacity(5 + message.len());
            frame.push(0);
            frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
            frame.extend_from_slice(message);
            if let Some(s) = send.as_mut() {
                s.send_data(Bytes::from(frame), false)?;
            }
        }
        GrpcStreamEvent::TrailingMetadata(pairs) => {
            let mut trailers = http::HeaderMap::new();
            for (k, v) in pairs {
                let name = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| h2::Reason::INTERNAL_ERROR)?;
                let value =
                    http::HeaderValue::from_str(v).map_err(|_| h2::Reason::INTERNAL_ERROR)?;
                trailers.append(name, value);
            }
            if let Some(s) = send.as_mut() {
                s.send_trailers(trailers)?;
            }
        }
        // The trailers carried the status.
        GrpcStreamEvent::Close { .. } => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_messages_are_counted_and_partial_ones_kept() {
        let mut pending = vec![0, 0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(take_messages(&mut pending), 2);
        assert_eq!(pending, [0, 0, 0]);
        pending.extend_from_slice(&[0, 3, b'a']);
        assert_eq!(take_messages(&mut pending), 0);
        pending.extend_from_slice(b"bc");
        assert_eq!(take_messages(&mut pending), 1);
        assert!(pending.is_empty());
    }
}
