//! `proxy_get_property` / `proxy_set_property` the way Envoy answers them.
//!
//! Lookup order for a path `[first, rest...]` (Envoy's `Context::getProperty`):
//! 1. filter state `wasm.<first>` of the stream (what `proxy_set_property`
//!    stored under `wasm.` + the whole NUL-joined path — so only a
//!    single-segment path written by any module on the stream reads back);
//! 2. properties the test set, by exact path;
//! 3. attributes Envoy derives from the stream and plugin (`request.*`,
//!    `response.*`, `source.*`, `destination.*`, `connection.*`,
//!    `plugin_name`, `plugin_root_id`, `plugin_vm_id`).
//!
//! Values are encoded like Envoy: strings as bytes, integers as 8-byte
//! little-endian, booleans as one byte, maps as Proxy-Wasm pairs.

use crate::headers::{encode_pairs, HeaderMap};
use crate::stream::StreamData;
use crate::world::World;

/// Envoy's filter-state key prefix for Wasm properties.
pub const FILTER_STATE_PREFIX: &[u8] = b"wasm.";

/// The filter-state key a `proxy_set_property` path is stored under.
pub(crate) fn filter_state_key(path: &[u8]) -> Vec<u8> {
    let mut key = FILTER_STATE_PREFIX.to_vec();
    key.extend_from_slice(path);
    key
}

/// Answers `proxy_get_property` for `path` (NUL-separated segments).
pub(crate) fn get(
    world: &World,
    plugin: usize,
    stream: Option<&StreamData>,
    path: &[u8],
) -> Option<Vec<u8>> {
    let segments: Vec<&[u8]> = path.split(|b| *b == 0).collect();
    let first = segments.first().copied().unwrap_or_default();
    if let Some(s) = stream {
        if let Some(v) = s.filter_state.get(&filter_state_key(first)) {
            // A stored value is opaque bytes: it has no fields.
            return (segments.len() == 1).then(|| v.clone());
        }
    }
    if let Some(v) = world.properties.get(path) {
        return Some(v.clone());
    }
    let names: Vec<String> = segments
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    derived(world, plugin, stream, &names)
}

fn int(v: i64) -> Option<Vec<u8>> {
    Some(v.to_le_bytes().to_vec())
}

fn text(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

fn map(m: &HeaderMap, rest: &[&str]) -> Option<Vec<u8>> {
    match rest {
        [] => Some(encode_pairs(m.pairs())),
        [name] => {
            let values = m.get_all(name);
            (!values.is_empty()).then(|| values.join(",").into_bytes())
        }
        _ => None,
    }
}

fn derived(world: &World, plugin: usize, s: Option<&StreamData>, path: &[&str]) -> Option<Vec<u8>> {
    let info = world.plugins.get(plugin)?;
    match path {
        ["plugin_name"] => return text(&info.name),
        ["plugin_root_id"] => return text(&info.root_id),
        ["plugin_vm_id"] => return text(&info.vm_id),
        _ => {}
    }
    let s = s?;
    let req = &s.request_headers;
    let path_header = req.get(":path").unwrap_or_default();
    match path {
        ["request", "path"] => text(path_header),
        ["request", "url_path"] => text(path_header.split('?').next().unwrap_or_default()),
        ["request", "query"] => text(path_header.split_once('?').map(|(_, q)| q).unwrap_or("")),
        ["request", "host"] => text(req.get(":authority")?),
        ["request", "scheme"] => text(req.get(":scheme").unwrap_or("http")),
        ["request", "method"] => text(req.get(":method")?),
        ["request", "headers", rest @ ..] => map(req, rest),
        ["request", "trailers", rest @ ..] => map(&s.request_trailers, rest),
        ["request", "referer"] => text(req.get("referer")?),
        ["request", "useragent"] => text(req.get("user-agent")?),
        ["request", "id"] => text(req.get("x-request-id")?),
        ["request", "protocol"] => text("HTTP/1.1"),
        ["request", "size"] => int(s.request_body.len() as i64),
        ["request", "time"] => int(world.clock.wall_nanos() as i64),
        ["response", "code"] if s.response_started => {
            int(s.response_headers.get(":status")?.parse().ok()?)
        }
        ["response", "code_details"] if s.response_started => text(&s.code_details),
        ["response", "headers", rest @ ..] if s.response_started => map(&s.response_headers, rest),
        ["response", "trailers", rest @ ..] if s.response_started => {
            map(&s.response_trailers, rest)
        }
        ["response", "size"] if s.response_started => int(s.response_body.len() as i64),
        ["source", "address"] => text(&s.source?.to_string()),
        ["source", "port"] => int(i64::from(s.source?.port())),
        ["destination", "address"] => text("127.0.0.1:10000"),
        ["destination", "port"] => int(10000),
        ["connection", "id"] => int(s.connection_id as i64),
        ["connection", "mtls"] => Some(vec![0]),
        ["connection", "requested_server_name"] => text(""),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::PluginInfo;

    fn world() -> World {
        let mut w = World::default();
        w.plugins.push(PluginInfo {
            name: "p".into(),
            root_id: "r".into(),
            vm_id: "v".into(),
            vm_config: vec![],
            plugin_config: vec![],
            root_context_id: 1,
            tick_period_ms: 0,
            next_tick_nanos: 0,
            contexts: Default::default(),
            done_called: false,
        });
        w
    }

    #[test]
    fn single_segment_filter_state_reads_back_two_segments_do_not() {
        let w = world();
        let mut s = StreamData::default();
        s.filter_state
            .insert(filter_state_key(b"palisade.identity"), b"a".to_vec());
        s.filter_state
            .insert(filter_state_key(b"palisade\0pair"), b"b".to_vec());
        assert_eq!(
            get(&w, 0, Some(&s), b"palisade.identity"),
            Some(b"a".to_vec())
        );
        assert_eq!(get(&w, 0, Some(&s), b"palisade\0pair"), None);
    }

    #[test]
    fn derived_request_attributes() {
        let w = world();
        let s = StreamData {
            request_headers: HeaderMap::from_pairs(&[
                (":path", "/a?b=1"),
                (":method", "GET"),
                ("x-a", "1"),
                ("x-a", "2"),
            ]),
            source: Some("127.0.0.7:4000".parse().unwrap()),
            ..Default::default()
        };
        let g = |p: &[u8]| get(&w, 0, Some(&s), p);
        assert_eq!(g(b"request\0url_path"), Some(b"/a".to_vec()));
        assert_eq!(g(b"request\0query"), Some(b"b=1".to_vec()));
        assert_eq!(g(b"request\0headers\0x-a"), Some(b"1,2".to_vec()));
        assert_eq!(g(b"source\0address"), Some(b"127.0.0.7:4000".to_vec()));
        assert_eq!(g(b"source\0port"), Some(4000i64.to_le_bytes().to_vec()));
        assert_eq!(g(b"plugin_name"), Some(b"p".to_vec()));
        assert_eq!(g(b"response\0code"), None);
        assert_eq!(g(b"nothing"), None);
    }
}
