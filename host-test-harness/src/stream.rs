//! One HTTP stream: the request and response as the filters see them, the
//! per-stream filter state, and the Envoy-like filter-chain iteration
//! (Continue / StopIteration, resuming, local replies).

use crate::headers::HeaderMap;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

/// Identifies a stream of a [`Host`](crate::Host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

/// Request (decoding) or response (encoding) direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream.
    Request,
    /// Upstream to client.
    Response,
}

/// A local reply asked for by `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalReply {
    pub status: u16,
    pub details: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Stream state the host calls read and write.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamData {
    pub request_headers: HeaderMap,
    pub request_body: Vec<u8>,
    pub request_trailers: HeaderMap,
    pub response_headers: HeaderMap,
    pub response_body: Vec<u8>,
    pub response_trailers: HeaderMap,
    /// The response direction has begun (response maps exist).
    pub response_started: bool,
    /// Envoy filter state written through `proxy_set_property`, keyed by
    /// `wasm.` + the NUL-joined path.
    pub filter_state: BTreeMap<Vec<u8>, Vec<u8>>,
    /// A local reply waiting to be applied after the current callback.
    pub local_reply: Option<LocalReply>,
    /// `proxy_continue_stream` calls waiting to be applied: (plugin, direction).
    pub continues: Vec<(usize, Direction)>,
    /// The module closed (reset) the stream.
    pub reset: bool,
    /// Downstream peer address.
    pub source: Option<SocketAddr>,
    /// Connection id (`connection.id`).
    pub connection_id: u64,
    /// Response code details (`response.code_details`).
    pub code_details: String,
}

/// One stream event a filter callback receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Headers; `end` = no body or trailers follow.
    Headers { end: bool },
    /// The (whole) body; `end` = no trailers follow.
    Body { end: bool },
    /// Trailers (always the end).
    Trailers,
}

impl Event {
    /// True when the event ends its direction.
    pub fn ends(self) -> bool {
        match self {
            Event::Headers { end } | Event::Body { end } => end,
            Event::Trailers => true,
        }
    }
}

/// The events of one direction travelling through the chain, the way
/// Envoy's filter manager iterates: a filter that stops keeps the events it
/// got (and still receives later ones); when it continues — from a later
/// callback returning Continue or from `proxy_continue_stream` — everything
/// it held goes on to the next filter.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    /// Filters in the order this direction visits them (plugin indexes).
    pub order: Vec<usize>,
    /// Events arrived at position i, not yet delivered.
    pub inbox: Vec<VecDeque<Event>>,
    /// Events delivered to position i but held because it stopped.
    pub held: Vec<Vec<Event>>,
    /// Position i returned StopIteration and has not continued.
    pub stopped: Vec<bool>,
    /// Events that went past the last filter.
    pub out: Vec<Event>,
}

impl Flow {
    /// A flow through `order` with `events` waiting at the first filter.
    pub fn new(order: Vec<usize>, events: Vec<Event>) -> Flow {
        let n = order.len();
        let mut inbox = vec![VecDeque::new(); n];
        let mut out = Vec::new();
        if n == 0 {
            out = events;
        } else {
            inbox[0] = events.into();
        }
        Flow {
            order,
            inbox,
            held: vec![Vec::new(); n],
            stopped: vec![false; n],
            out,
        }
    }

    /// The next (position, event) to deliver, if any.
    pub fn next_delivery(&mut self) -> Option<(usize, Event)> {
        let pos = self.inbox.iter().position(|q| !q.is_empty())?;
        let ev = self.inbox[pos].pop_front()?;
        Some((pos, ev))
    }

    /// Records a filter's answer to an event: `go_on` = Continue.
    pub fn answered(&mut self, pos: usize, ev: Event, go_on: bool) {
        self.held[pos].push(ev);
        self.stopped[pos] = !go_on;
        if go_on {
            self.release(pos);
        }
    }

    /// `proxy_continue_stream` for the filter at `pos`.
    pub fn resume(&mut self, pos: usize) {
        if self.stopped[pos] {
            self.stopped[pos] = false;
            self.release(pos);
        }
    }

    fn release(&mut self, pos: usize) {
        let held = std::mem::take(&mut self.held[pos]);
        match self.inbox.get_mut(pos + 1) {
            Some(next) => next.extend(held),
            None => self.out.extend(held),
        }
    }

    /// Position of a plugin in this flow.
    pub fn position(&self, plugin: usize) -> Option<usize> {
        self.order.iter().position(|p| *p == plugin)
    }

    /// Every event went through the whole chain.
    pub fn complete(&self) -> bool {
        self.out.last().is_some_and(|e| e.ends())
    }

    /// Plugins currently stopped (waiting for a continue).
    pub fn stopped_plugins(&self) -> Vec<usize> {
        self.order
            .iter()
            .zip(&self.stopped)
            .filter(|(_, s)| **s)
            .map(|(p, _)| *p)
            .collect()
    }
}

/// Events a request or response made of these parts produces.
pub(crate) fn events(has_body: bool, has_trailers: bool) -> Vec<Event> {
    let mut v = vec![Event::Headers {
        end: !has_body && !has_trailers,
    }];
    if has_body {
        v.push(Event::Body { end: !has_trailers });
    }
    if has_trailers {
        v.push(Event::Trailers);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_then_continue_from_body_releases_everything() {
        let mut f = Flow::new(vec![0, 1], events(true, false));
        let (pos, ev) = f.next_delivery().unwrap();
        assert_eq!((pos, ev), (0, Event::Headers { end: false }));
        f.answered(pos, ev, false);
        let (pos, ev) = f.next_delivery().unwrap();
        assert_eq!((pos, ev), (0, Event::Body { end: true }));
        f.answered(pos, ev, true);
        assert_eq!(f.next_delivery(), Some((1, Event::Headers { end: false })));
    }

    #[test]
    fn resume_releases_held_events() {
        let mut f = Flow::new(vec![3], events(false, false));
        let (pos, ev) = f.next_delivery().unwrap();
        f.answered(pos, ev, false);
        assert!(!f.complete());
        assert_eq!(f.stopped_plugins(), [3]);
        f.resume(f.position(3).unwrap());
        assert!(f.complete());
    }

    #[test]
    fn empty_chain_passes_through() {
        let f = Flow::new(vec![], events(true, true));
        assert!(f.complete());
    }
}
