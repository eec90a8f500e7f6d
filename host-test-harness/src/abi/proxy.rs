//! The Proxy-Wasm ABI 0.2.1 host calls (module `env`), with Envoy's answers.
//!
//! Every call returns a [`Status`]; a pointer outside the module's memory is
//! `InvalidMemoryAccess`. Calls Envoy implements only for other kinds of
//! filters or services the harness has none of answer as Envoy does without
//! them (unknown foreign function: `NotFound`). gRPC calls and streams are
//! described in [`crate::grpc_call`] and [`crate::grpc_stream`].

use super::Ctx;
use crate::grpc_call::{service_target, GrpcCall, ServiceTarget};
use crate::grpc_stream::{self, Callout, GrpcStream};
use crate::headers::{decode_pairs, encode_pairs, HeaderMap};
use crate::http_call::HttpCall;
use crate::log::LogLevel;
use crate::memory::{self, Handoff};
use crate::properties;
use crate::status::Status;
use crate::stream::{Direction, LocalReply, StreamData};
use crate::world::{lock, OpenGrpcStream, PendingCall, PendingGrpcCall, World};
use wasmtime::{Caller, Linker};

type R = Result<(), Handoff>;

fn ret(r: R) -> wasmtime::Result<i32> {
    match r {
        Ok(()) => Ok(Status::Ok.code()),
        Err(Handoff::Status(s)) => Ok(s.code()),
        Err(Handoff::Trap(e)) => Err(e),
    }
}

fn status(r: Result<(), Status>) -> i32 {
    r.err().unwrap_or(Status::Ok).code()
}

/// The stream the effective context belongs to.
fn stream_id(world: &World, c: &Ctx) -> Result<u64, Status> {
    world
        .plugins
        .get(c.plugin)
        .and_then(|p| p.contexts.get(&c.effective))
        .copied()
        .ok_or(Status::NotFound)
}

/// Runs `f` on the effective context's stream.
fn on_stream<T>(
    c: &Caller<'_, Ctx>,
    f: impl FnOnce(&mut StreamData) -> Result<T, Status>,
) -> Result<T, Status> {
    let mut w = lock(&c.data().world);
    let id = stream_id(&w, c.data())?;
    let s = w.streams.get_mut(&id).ok_or(Status::NotFound)?;
    f(s)
}

fn stream_map(s: &mut StreamData, kind: i32) -> Result<&mut HeaderMap, Status> {
    match kind {
        0 => Ok(&mut s.request_headers),
        1 => Ok(&mut s.request_trailers),
        2 if s.response_started => Ok(&mut s.response_headers),
        3 if s.response_started => Ok(&mut s.response_trailers),
        _ => Err(Status::NotFound),
    }
}

/// A copy of the header map `kind` (stream maps or the http call response).
fn read_map(c: &Caller<'_, Ctx>, kind: i32) -> Result<HeaderMap, Status> {
    if kind == 6 || kind == 7 {
        let w = lock(&c.data().world);
        let r = w.call_response.as_ref().ok_or(Status::NotFound)?;
        let pairs = if kind == 6 { &r.headers } else { &r.trailers };
        return Ok(HeaderMap::from_pairs(pairs));
    }
    if kind == 4 || kind == 5 {
        // Envoy reads the stream metadata from the root context, so any
        // context of the plugin sees it while the callback runs.
        let w = lock(&c.data().world);
        return match &w.grpc_metadata {
            Some((k, map)) if *k == kind => Ok(map.clone()),
            _ => Err(Status::NotFound),
        };
    }
    on_stream(c, |s| stream_map(s, kind).cloned())
}

fn read_buffer(c: &Caller<'_, Ctx>, kind: i32) -> Result<Vec<u8>, Status> {
    let w = lock(&c.data().world);
    let plugin = w.plugins.get(c.data().plugin).ok_or(Status::NotFound)?;
    match kind {
        6 => return Ok(plugin.vm_config.clone()),
        7 => return Ok(plugin.plugin_config.clone()),
        4 => {
            let r = w.call_response.as_ref().ok_or(Status::NotFound)?;
            return Ok(r.body.clone());
        }
        5 => return w.grpc_receive.clone().ok_or(Status::NotFound),
        0 | 1 => {}
        _ => return Err(Status::NotFound),
    }
    let id = stream_id(&w, c.data())?;
    let s = w.streams.get(&id).ok_or(Status::NotFound)?;
    match kind {
        0 => Ok(s.request_body.clone()),
        _ if s.response_started => Ok(s.response_body.clone()),
        _ => Err(Status::NotFound),
    }
}

fn log(c: &mut Caller<'_, Ctx>, level: i32, ptr: i32, len: i32) -> Result<(), Status> {
    let level = LogLevel::from_abi(level).ok_or(Status::BadArgument)?;
    let msg = memory::read_string(c, ptr, len)?;
    let plugin = c.data().plugin;
    lock(&c.data().world).log(plugin, level, msg);
    Ok(())
}

fn get_buffer_bytes(
    c: &mut Caller<'_, Ctx>,
    kind: i32,
    start: i32,
    max: i32,
    rp: i32,
    rs: i32,
) -> R {
    let buf = read_buffer(c, kind)?;
    let start = start as u32 as usize;
    let max = max as u32 as usize;
    if start > buf.len() {
        return Err(Status::BadArgument.into());
    }
    let end = start.saturating_add(max).min(buf.len());
    if end == start {
        return Ok(());
    }
    memory::hand_over(c, &buf[start..end], rp, rs)
}

fn set_buffer_bytes(
    c: &mut Caller<'_, Ctx>,
    kind: i32,
    start: i32,
    len: i32,
    dp: i32,
    ds: i32,
) -> Result<(), Status> {
    let data = memory::read(c, dp, ds)?;
    let (start, len) = (start as u32 as usize, len as u32 as usize);
    on_stream(c, |s| {
        let buf = match kind {
            0 => &mut s.request_body,
            1 if s.response_started => &mut s.response_body,
            _ => return Err(Status::NotFound),
        };
        // Envoy's Buffer::copyFrom: prepend, replace all, or append.
        if start == 0 {
            if len == 0 {
                buf.splice(0..0, data);
            } else if len >= buf.len() {
                *buf = data;
            } else {
                return Err(Status::BadArgument);
            }
        } else if start >= buf.len() {
            buf.extend(data);
        } else {
            return Err(Status::BadArgument);
        }
        Ok(())
    })
}

fn set_property(c: &mut Caller<'_, Ctx>, pp: i32, ps: i32, vp: i32, vs: i32) -> Result<(), Status> {
    let path = memory::read(c, pp, ps)?;
    let value = memory::read(c, vp, vs)?;
    on_stream(c, |s| {
        s.filter_state
            .insert(properties::filter_state_key(&path), value);
        Ok(())
    })
}

fn get_property(c: &mut Caller<'_, Ctx>, pp: i32, ps: i32, rp: i32, rs: i32) -> R {
    let path = memory::read(c, pp, ps)?;
    let value = {
        let w = lock(&c.data().world);
        let stream = stream_id(&w, c.data())
            .ok()
            .and_then(|id| w.streams.get(&id));
        properties::get(&w, c.data().plugin, stream, &path)
    };
    let value = value.ok_or(Status::NotFound)?;
    memory::hand_over(c, &value, rp, rs)
}

fn send_local_response(c: &mut Caller<'_, Ctx>, args: [i32; 8]) -> Result<(), Status> {
    let [code, dp, ds, bp, bs, hp, hs, _grpc] = args;
    let details = memory::read_string(c, dp, ds)?;
    let body = memory::read(c, bp, bs)?;
    let headers = decode_pairs(&memory::read(c, hp, hs)?).ok_or(Status::ParseFailure)?;
    let status = u16::try_from(code).map_err(|_| Status::BadArgument)?;
    on_stream(c, |s| {
        s.local_reply = Some(LocalReply {
            status,
            details,
            body,
            headers,
        });
        Ok(())
    })
}

fn http_call(c: &mut Caller<'_, Ctx>, args: [i32; 10]) -> Result<(), Status> {
    let [up, us, hp, hs, bp, bs, tp, ts, timeout, token_ptr] = args;
    let cluster = memory::read_string(c, up, us)?;
    let headers = decode_pairs(&memory::read(c, hp, hs)?).ok_or(Status::ParseFailure)?;
    let body = memory::read(c, bp, bs)?;
    let trailers = decode_pairs(&memory::read(c, tp, ts)?).ok_or(Status::ParseFailure)?;
    let token = {
        let mut w = lock(&c.data().world);
        if !w.clusters.contains(&cluster) {
            return Err(Status::BadArgument);
        }
        let map = HeaderMap::from_pairs(&headers);
        if [":path", ":method", ":authority"]
            .iter()
            .any(|h| map.get(h).is_none())
        {
            return Err(Status::BadArgument);
        }
        w.next_token += 1;
        let token = w.next_token;
        let plugin = c.data().plugin;
        let (name, context_id) = caller(&w, plugin);
        w.calls.push(PendingCall {
            call: HttpCall {
                token,
                plugin: name,
                cluster,
                headers,
                body,
                trailers,
                timeout_ms: timeout as u32,
            },
            plugin,
            context_id,
        });
        token
    };
    memory::write_u32(c, token_ptr, token)
}

/// Name and root context of the calling plugin: Envoy makes callouts for
/// the root context and answers them there.
fn caller(w: &World, plugin: usize) -> (String, u32) {
    w.plugins
        .get(plugin)
        .map_or((String::new(), 0), |p| (p.name.clone(), p.root_context_id))
}

/// The cluster `grpc_service` names, or Envoy's refusal.
fn grpc_cluster(w: &World, service: &[u8]) -> Result<String, Status> {
    match service_target(service) {
        ServiceTarget::ClusterName(name) if w.clusters.contains(&name) => Ok(name),
        // Envoy: "keep the return status as BadArgument"... returns
        // ParseFailure for a name that is no cluster.
        ServiceTarget::ClusterName(_) => Err(Status::ParseFailure),
        ServiceTarget::EnvoyGrpc(name) => Ok(name),
        // Envoy cannot build a client without a target.
        ServiceTarget::Other => Err(Status::BadArgument),
    }
}

/// What `proxy_grpc_call` and `proxy_grpc_stream` both read: the
/// `grpc_service` bytes, service, method and initial metadata.
struct GrpcTarget {
    service_bytes: Vec<u8>,
    service: String,
    method: String,
    metadata: Vec<(String, String)>,
}

fn read_grpc_target(c: &mut Caller<'_, Ctx>, args: [i32; 8]) -> Result<GrpcTarget, Status> {
    let [sp, ss, np, ns, mp, ms, ip, is] = args;
    Ok(GrpcTarget {
        service_bytes: memory::read(c, sp, ss)?,
        service: memory::read_string(c, np, ns)?,
        method: memory::read_string(c, mp, ms)?,
        metadata: decode_pairs(&memory::read(c, ip, is)?).ok_or(Status::ParseFailure)?,
    })
}

/// A gRPC call or stream the calling plugin may open.
struct NewCallout {
    token: u32,
    cluster: String,
    plugin_name: String,
    plugin: usize,
    /// The root context its answers go to.
    context_id: u32,
}

/// Checks the cluster as Envoy does and hands out the next id of `kind`.
fn new_callout(
    w: &mut World,
    plugin: usize,
    service_bytes: &[u8],
    kind: Callout,
) -> Result<NewCallout, Status> {
    let cluster = grpc_cluster(w, service_bytes)?;
    let last = match kind {
        Callout::GrpcCall => &mut w.next_grpc_token,
        Callout::GrpcStream => &mut w.next_grpc_stream_token,
    };
    *last = grpc_stream::next_id(*last, kind);
    let token = *last;
    let (plugin_name, context_id) = caller(w, plugin);
    Ok(NewCallout {
        token,
        cluster,
        plugin_name,
        plugin,
        context_id,
    })
}

fn grpc_call(c: &mut Caller<'_, Ctx>, args: [i32; 12]) -> Result<(), Status> {
    let [sp, ss, np, ns, mp, ms, ip, is, rp, rs, timeout, token_ptr] = args;
    let target = read_grpc_target(c, [sp, ss, np, ns, mp, ms, ip, is])?;
    let message = memory::read(c, rp, rs)?;
    let token = {
        let mut w = lock(&c.data().world);
        let n = new_callout(
            &mut w,
            c.data().plugin,
            &target.service_bytes,
            Callout::GrpcCall,
        )?;
        w.grpc_calls.push(PendingGrpcCall {
            call: GrpcCall {
                token: n.token,
                plugin: n.plugin_name,
                cluster: n.cluster,
                service: target.service,
                method: target.method,
                initial_metadata: target.metadata,
                message,
                timeout_ms: timeout as u32,
            },
            plugin: n.plugin,
            context_id: n.context_id,
        });
        n.token
    };
    memory::write_u32(c, token_ptr, token)
}

/// `proxy_grpc_stream`: opens a stream for the plugin's root context.
fn grpc_stream(c: &mut Caller<'_, Ctx>, args: [i32; 9]) -> Result<(), Status> {
    let [sp, ss, np, ns, mp, ms, ip, is, token_ptr] = args;
    let target = read_grpc_target(c, [sp, ss, np, ns, mp, ms, ip, is])?;
    let token = {
        let mut w = lock(&c.data().world);
        let n = new_callout(
            &mut w,
            c.data().plugin,
            &target.service_bytes,
            Callout::GrpcStream,
        )?;
        w.grpc_streams.push(OpenGrpcStream {
            stream: GrpcStream {
                token: n.token,
                plugin: n.plugin_name,
                cluster: n.cluster,
                service: target.service,
                method: target.method,
                initial_metadata: target.metadata,
                messages: Vec::new(),
                local_closed: false,
                remote_closed: false,
                delivered: Vec::new(),
            },
            plugin: n.plugin,
            context_id: n.context_id,
        });
        n.token
    };
    memory::write_u32(c, token_ptr, token)
}

/// The index of the calling plugin's stream `token` (`NotFound` when it
/// has none).
fn find_stream(w: &World, plugin: usize, token: u32) -> Result<usize, Status> {
    w.grpc_streams
        .iter()
        .position(|s| s.stream.token == token && s.plugin == plugin)
        .ok_or(Status::NotFound)
}

/// `proxy_grpc_send`: records the message; `end_of_stream` half-closes.
fn grpc_send(
    c: &mut Caller<'_, Ctx>,
    token: i32,
    mp: i32,
    ms: i32,
    end: i32,
) -> Result<(), Status> {
    let message = memory::read(c, mp, ms)?;
    let token = token as u32;
    if !grpc_stream::is(token, Callout::GrpcStream) {
        return Err(Status::BadArgument);
    }
    let plugin = c.data().plugin;
    let mut w = lock(&c.data().world);
    let i = find_stream(&w, plugin, token)?;
    let s = &mut w.grpc_streams[i].stream;
    // Envoy still answers Ok once the server closed; the message goes nowhere.
    if !s.remote_closed && !s.local_closed {
        s.messages.push(message);
        s.local_closed = end != 0;
    }
    Ok(())
}

/// `proxy_grpc_close` (`cancel` false) and `proxy_grpc_cancel`.
fn grpc_close(c: &Caller<'_, Ctx>, token: i32, cancel: bool) -> Result<(), Status> {
    let token = token as u32;
    let plugin = c.data().plugin;
    let mut w = lock(&c.data().world);
    if grpc_stream::is(token, Callout::GrpcCall) {
        let i = w
            .grpc_calls
            .iter()
            .position(|p| p.call.token == token && p.plugin == plugin)
            .ok_or(Status::NotFound)?;
        w.grpc_calls.remove(i);
        return Ok(());
    }
    if !grpc_stream::is(token, Callout::GrpcStream) {
        return Err(Status::BadArgument);
    }
    let i = find_stream(&w, plugin, token)?;
    // Cancel resets the stream; close half-closes it, and it is forgotten
    // once the server closed too.
    if cancel || w.grpc_streams[i].stream.remote_closed {
        w.grpc_streams.remove(i);
    } else {
        w.grpc_streams[i].stream.local_closed = true;
    }
    Ok(())
}

fn shared_get(c: &mut Caller<'_, Ctx>, kp: i32, ks: i32, rp: i32, rs: i32, cas_ptr: i32) -> R {
    let key = memory::read_string(c, kp, ks)?;
    let found = lock(&c.data().world)
        .shared
        .get(&key)
        .map(|(v, cas)| (v.to_vec(), cas));
    let (value, cas) = found.ok_or(Status::NotFound)?;
    memory::write_u32(c, cas_ptr, cas)?;
    if value.is_empty() {
        memory::write_u32(c, rp, 0)?;
        memory::write_u32(c, rs, 0)?;
        return Ok(());
    }
    memory::hand_over(c, &value, rp, rs)
}

fn define_metric(
    c: &mut Caller<'_, Ctx>,
    kind: i32,
    np: i32,
    ns: i32,
    id_ptr: i32,
) -> Result<(), Status> {
    let name = memory::read_string(c, np, ns)?;
    let id = lock(&c.data().world).metrics.define(kind, &name)?;
    memory::write_u32(c, id_ptr, id)
}

fn continue_stream(c: &mut Caller<'_, Ctx>, kind: i32) -> Result<(), Status> {
    let dir = match kind {
        0 => Direction::Request,
        1 => Direction::Response,
        _ => return Err(Status::BadArgument),
    };
    let plugin = c.data().plugin;
    on_stream(c, |s| {
        s.continues.push((plugin, dir));
        Ok(())
    })
}

/// Defines every `env` host call.
pub(crate) fn define(l: &mut Linker<Ctx>) -> wasmtime::Result<()> {
    const ENV: &str = "env";
    l.func_wrap(
        ENV,
        "proxy_log",
        |mut c: Caller<'_, Ctx>, lv: i32, p: i32, n: i32| -> i32 { status(log(&mut c, lv, p, n)) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_log_level",
        |mut c: Caller<'_, Ctx>, rp: i32| -> i32 { status(memory::write_u32(&mut c, rp, 0)) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, Ctx>, rp: i32| -> i32 {
            let now = lock(&c.data().world).clock.wall_nanos();
            status(memory::write_u64(&mut c, rp, now))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_tick_period_milliseconds",
        |c: Caller<'_, Ctx>, ms: i32| -> i32 {
            let mut w = lock(&c.data().world);
            let now = w.clock.monotonic_nanos();
            match w.plugins.get_mut(c.data().plugin) {
                Some(p) => {
                    p.tick_period_ms = ms as u32;
                    p.next_tick_nanos = now + u64::from(ms as u32) * 1_000_000;
                    Status::Ok.code()
                }
                None => Status::NotFound.code(),
            }
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_buffer_bytes",
        |mut c: Caller<'_, Ctx>,
         k: i32,
         s: i32,
         m: i32,
         rp: i32,
         rs: i32|
         -> wasmtime::Result<i32> { ret(get_buffer_bytes(&mut c, k, s, m, rp, rs)) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_buffer_status",
        |mut c: Caller<'_, Ctx>, k: i32, lp: i32, fp: i32| -> i32 {
            let r = read_buffer(&c, k).and_then(|b| {
                memory::write_u32(&mut c, lp, b.len() as u32)?;
                memory::write_u32(&mut c, fp, 0)
            });
            status(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_buffer_bytes",
        |mut c: Caller<'_, Ctx>, k: i32, s: i32, n: i32, dp: i32, ds: i32| -> i32 {
            status(set_buffer_bytes(&mut c, k, s, n, dp, ds))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_header_map_pairs",
        |mut c: Caller<'_, Ctx>, k: i32, rp: i32, rs: i32| -> wasmtime::Result<i32> {
            let r = read_map(&c, k)
                .map_err(Handoff::from)
                .and_then(|m| memory::hand_over(&mut c, &encode_pairs(m.pairs()), rp, rs));
            ret(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_header_map_pairs",
        |mut c: Caller<'_, Ctx>, k: i32, p: i32, n: i32| -> i32 {
            let r = memory::read(&mut c, p, n).and_then(|b| {
                let pairs = decode_pairs(&b).ok_or(Status::ParseFailure)?;
                on_stream(&c, |s| {
                    stream_map(s, k)?.set_all(pairs);
                    Ok(())
                })
            });
            status(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_header_map_size",
        |mut c: Caller<'_, Ctx>, k: i32, rp: i32| -> i32 {
            let r = read_map(&c, k)
                .and_then(|m| memory::write_u32(&mut c, rp, encode_pairs(m.pairs()).len() as u32));
            status(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_header_map_value",
        |mut c: Caller<'_, Ctx>,
         k: i32,
         np: i32,
         ns: i32,
         rp: i32,
         rs: i32|
         -> wasmtime::Result<i32> {
            let value = memory::read_string(&mut c, np, ns).and_then(|name| {
                let map = read_map(&c, k)?;
                map.get(&name).map(str::to_string).ok_or(Status::NotFound)
            });
            ret(value
                .map_err(Handoff::from)
                .and_then(|v| memory::hand_over(&mut c, v.as_bytes(), rp, rs)))
        },
    )?;
    for (name, op) in [
        ("proxy_add_header_map_value", 0u8),
        ("proxy_replace_header_map_value", 1u8),
    ] {
        l.func_wrap(
            ENV,
            name,
            move |mut c: Caller<'_, Ctx>, k: i32, np: i32, ns: i32, vp: i32, vs: i32| -> i32 {
                let r = memory::read_string(&mut c, np, ns).and_then(|n| {
                    let v = memory::read_string(&mut c, vp, vs)?;
                    on_stream(&c, |s| {
                        let map = stream_map(s, k)?;
                        if op == 0 {
                            map.add(&n, &v)
                        } else {
                            map.replace(&n, &v)
                        }
                        Ok(())
                    })
                });
                status(r)
            },
        )?;
    }
    l.func_wrap(
        ENV,
        "proxy_remove_header_map_value",
        |mut c: Caller<'_, Ctx>, k: i32, np: i32, ns: i32| -> i32 {
            let r = memory::read_string(&mut c, np, ns).and_then(|n| {
                on_stream(&c, |s| {
                    stream_map(s, k)?.remove(&n);
                    Ok(())
                })
            });
            status(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_property",
        |mut c: Caller<'_, Ctx>, pp: i32, ps: i32, rp: i32, rs: i32| -> wasmtime::Result<i32> {
            ret(get_property(&mut c, pp, ps, rp, rs))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_property",
        |mut c: Caller<'_, Ctx>, pp: i32, ps: i32, vp: i32, vs: i32| -> i32 {
            status(set_property(&mut c, pp, ps, vp, vs))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_shared_data",
        |mut c: Caller<'_, Ctx>,
         kp: i32,
         ks: i32,
         rp: i32,
         rs: i32,
         cp: i32|
         -> wasmtime::Result<i32> { ret(shared_get(&mut c, kp, ks, rp, rs, cp)) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_shared_data",
        |mut c: Caller<'_, Ctx>, kp: i32, ks: i32, vp: i32, vs: i32, cas: i32| -> i32 {
            let r = memory::read_string(&mut c, kp, ks).and_then(|k| {
                let v = memory::read(&mut c, vp, vs)?;
                lock(&c.data().world).shared.set(&k, &v, cas as u32)
            });
            status(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_register_shared_queue",
        |mut c: Caller<'_, Ctx>, np: i32, ns: i32, rp: i32| -> i32 {
            let r = memory::read_string(&mut c, np, ns).and_then(|n| {
                let plugin = c.data().plugin;
                let id = {
                    let mut w = lock(&c.data().world);
                    let id = w.shared.register_queue(&n);
                    w.queue_owners.insert(id, plugin);
                    id
                };
                memory::write_u32(&mut c, rp, id)
            });
            status(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_resolve_shared_queue",
        |mut c: Caller<'_, Ctx>, _vp: i32, _vs: i32, np: i32, ns: i32, rp: i32| -> i32 {
            let r = memory::read_string(&mut c, np, ns).and_then(|n| {
                let id = lock(&c.data().world)
                    .shared
                    .resolve_queue(&n)
                    .ok_or(Status::NotFound)?;
                memory::write_u32(&mut c, rp, id)
            });
            status(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_dequeue_shared_queue",
        |mut c: Caller<'_, Ctx>, id: i32, rp: i32, rs: i32| -> wasmtime::Result<i32> {
            let item = lock(&c.data().world).shared.dequeue(id as u32);
            ret(item
                .map_err(Handoff::from)
                .and_then(|v| memory::hand_over(&mut c, &v, rp, rs)))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_enqueue_shared_queue",
        |mut c: Caller<'_, Ctx>, id: i32, vp: i32, vs: i32| -> i32 {
            // Envoy posts proxy_on_queue_ready to the registering root
            // context once the current callback has returned.
            let r = memory::read(&mut c, vp, vs).and_then(|v| {
                let mut w = lock(&c.data().world);
                w.shared.enqueue(id as u32, &v)?;
                if !w.ready_queues.contains(&(id as u32)) {
                    w.ready_queues.push(id as u32);
                }
                Ok(())
            });
            status(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_continue_stream",
        |mut c: Caller<'_, Ctx>, k: i32| -> i32 { status(continue_stream(&mut c, k)) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_close_stream",
        |c: Caller<'_, Ctx>, _k: i32| -> i32 {
            status(on_stream(&c, |s| {
                s.reset = true;
                Ok(())
            }))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_send_local_response",
        |mut c: Caller<'_, Ctx>,
         a: i32,
         b: i32,
         d: i32,
         e: i32,
         f: i32,
         g: i32,
         h: i32,
         i: i32|
         -> i32 { status(send_local_response(&mut c, [a, b, d, e, f, g, h, i])) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_http_call",
        |mut c: Caller<'_, Ctx>,
         a: i32,
         b: i32,
         d: i32,
         e: i32,
         f: i32,
         g: i32,
         h: i32,
         i: i32,
         t: i32,
         tp: i32|
         -> i32 { status(http_call(&mut c, [a, b, d, e, f, g, h, i, t, tp])) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_grpc_call",
        |mut c: Caller<'_, Ctx>,
         a: i32,
         b: i32,
         d: i32,
         e: i32,
         f: i32,
         g: i32,
         h: i32,
         i: i32,
         j: i32,
         k: i32,
         t: i32,
         tp: i32|
         -> i32 { status(grpc_call(&mut c, [a, b, d, e, f, g, h, i, j, k, t, tp])) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_grpc_stream",
        |mut c: Caller<'_, Ctx>,
         a: i32,
         b: i32,
         d: i32,
         e: i32,
         f: i32,
         g: i32,
         h: i32,
         i: i32,
         tp: i32|
         -> i32 { status(grpc_stream(&mut c, [a, b, d, e, f, g, h, i, tp])) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_grpc_send",
        |mut c: Caller<'_, Ctx>, token: i32, mp: i32, ms: i32, end: i32| -> i32 {
            status(grpc_send(&mut c, token, mp, ms, end))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_grpc_close",
        |c: Caller<'_, Ctx>, token: i32| -> i32 { status(grpc_close(&c, token, false)) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_grpc_cancel",
        |c: Caller<'_, Ctx>, token: i32| -> i32 { status(grpc_close(&c, token, true)) },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_status",
        |mut c: Caller<'_, Ctx>, cp: i32, rp: i32, rs: i32| -> wasmtime::Result<i32> {
            let (code, message) = lock(&c.data().world).status.clone();
            let r = memory::write_u32(&mut c, cp, code)
                .map_err(Handoff::from)
                .and_then(|_| {
                    if message.is_empty() {
                        memory::write_u32(&mut c, rp, 0)?;
                        memory::write_u32(&mut c, rs, 0)?;
                        Ok(())
                    } else {
                        memory::hand_over(&mut c, message.as_bytes(), rp, rs)
                    }
                });
            ret(r)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_effective_context",
        |mut c: Caller<'_, Ctx>, id: i32| -> i32 {
            let known = {
                let w = lock(&c.data().world);
                w.plugins.get(c.data().plugin).is_some_and(|p| {
                    p.root_context_id == id as u32 || p.contexts.contains_key(&(id as u32))
                })
            };
            if !known {
                return Status::BadArgument.code();
            }
            c.data_mut().effective = id as u32;
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_call_foreign_function",
        |_: Caller<'_, Ctx>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 {
            Status::NotFound.code()
        },
    )?;
    l.func_wrap(ENV, "proxy_done", |c: Caller<'_, Ctx>| -> i32 {
        let mut w = lock(&c.data().world);
        match w.plugins.get_mut(c.data().plugin) {
            Some(p) => {
                p.done_called = true;
                Status::Ok.code()
            }
            None => Status::NotFound.code(),
        }
    })?;
    l.func_wrap(
        ENV,
        "proxy_define_metric",
        |mut c: Caller<'_, Ctx>, k: i32, np: i32, ns: i32, rp: i32| -> i32 {
            status(define_metric(&mut c, k, np, ns, rp))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_metric",
        |mut c: Caller<'_, Ctx>, id: i32, rp: i32| -> i32 {
            let v = lock(&c.data().world).metrics.get(id as u32);
            status(v.and_then(|v| memory::write_u64(&mut c, rp, v)))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_record_metric",
        |c: Caller<'_, Ctx>, id: i32, v: i64| -> i32 {
            status(lock(&c.data().world).metrics.record(id as u32, v as u64))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_increment_metric",
        |c: Caller<'_, Ctx>, id: i32, v: i64| -> i32 {
            status(lock(&c.data().world).metrics.increment(id as u32, v))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::fixture::Request;
    use crate::test_support::{filter, host, module};
    use crate::HostError;

    const LOG: &str = r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#;

    #[test]
    fn missing_imports_are_named() {
        let m = module(
            r#"(module
                 (import "env" "proxy_frobnicate" (func (param i32)))
                 (import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))
                 (func (export "proxy_abi_version_0_2_1")))"#,
        );
        let err = host(&m).unwrap_err();
        match &err {
            HostError::MissingImports { imports, .. } => assert_eq!(
                imports,
                &[
                    "env::proxy_frobnicate",
                    "wasi_snapshot_preview1::poll_oneoff"
                ]
            ),
            other => panic!("expected missing imports, got {other}"),
        }
        assert!(err.to_string().contains("env::proxy_frobnicate"));
    }

    #[test]
    fn bad_pointers_are_invalid_memory_access() {
        let m = filter(
            LOG,
            r#"(if (i32.ne (call $log (i32.const 2) (i32.const -16) (i32.const 64)) (i32.const 6))
                 (then unreachable))
               (if (i32.ne (call $log (i32.const 2) (i32.const 0) (i32.const -1)) (i32.const 6))
                 (then unreachable))
               (if (i32.ne (call $log (i32.const 9) (i32.const 0) (i32.const 1)) (i32.const 2))
                 (then unreachable))
               (i32.const 0)"#,
        );
        assert_eq!(
            host(&m).unwrap().send(&Request::default()).unwrap().status,
            200
        );
    }

    #[test]
    fn unsupported_services_answer_like_envoy() {
        let m = filter(
            r#"(import "env" "proxy_grpc_cancel" (func $cancel (param i32) (result i32)))
               (import "env" "proxy_call_foreign_function" (func $ff (param i32 i32 i32 i32 i32 i32) (result i32)))
               (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
               (data (i32.const 0) "x-nope")"#,
            r#"(if (i32.ne (call $cancel (i32.const 1)) (i32.const 1)) (then unreachable))
               (if (i32.ne (call $ff (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 12)) (i32.const 1)) (then unreachable))
               (if (i32.ne (call $get (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 8) (i32.const 12)) (i32.const 1)) (then unreachable))
               (if (i32.ne (call $get (i32.const 2) (i32.const 0) (i32.const 6) (i32.const 8) (i32.const 12)) (i32.const 1)) (then unreachable))
               (i32.const 0)"#,
        );
        assert_eq!(
            host(&m).unwrap().send(&Request::default()).unwrap().status,
            200
        );
    }

    #[test]
    fn enqueueing_runs_on_queue_ready_in_the_registering_root() {
        // The request registers queue "q" and enqueues "item"; the ready
        // callback dequeues it and logs it.
        let m = filter(
            &format!(
                r#"{LOG}
               (import "env" "proxy_register_shared_queue" (func $reg (param i32 i32 i32) (result i32)))
               (import "env" "proxy_enqueue_shared_queue" (func $enq (param i32 i32 i32) (result i32)))
               (import "env" "proxy_dequeue_shared_queue" (func $deq (param i32 i32 i32) (result i32)))
               (data (i32.const 0) "q")
               (data (i32.const 16) "item")
               (func (export "proxy_on_queue_ready") (param $root i32) (param $id i32)
                 (if (i32.ne (call $deq (local.get $id) (i32.const 40) (i32.const 44)) (i32.const 0))
                   (then unreachable))
                 (drop (call $log (i32.const 2) (i32.load (i32.const 40)) (i32.load (i32.const 44)))))"#
            ),
            r#"(if (i32.ne (call $reg (i32.const 0) (i32.const 1) (i32.const 32)) (i32.const 0))
                 (then unreachable))
               (if (i32.ne (call $enq (i32.load (i32.const 32)) (i32.const 16) (i32.const 4)) (i32.const 0))
                 (then unreachable))
               (i32.const 0)"#,
        );
        let mut h = host(&m).unwrap();
        assert!(!h.logged("item"));
        assert_eq!(h.send(&Request::default()).unwrap().status, 200);
        assert!(h.logged("item"), "{:?}", h.logs());
    }

    #[test]
    fn pause_without_resume_stalls_and_says_who() {
        let m = filter("", "(i32.const 1)");
        let err = host(&m).unwrap().send(&Request::default()).unwrap_err();
        match err {
            HostError::Stalled { stopped, .. } => assert_eq!(stopped, ["wat"]),
            other => panic!("expected a stall, got {other}"),
        }
    }

    #[test]
    fn a_trap_reports_the_callback_and_logs() {
        let m = filter(
            &format!(r#"{LOG} (data (i32.const 0) "about to fail")"#),
            r#"(drop (call $log (i32.const 5) (i32.const 0) (i32.const 13))) unreachable"#,
        );
        let err = host(&m).unwrap().send(&Request::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("proxy_on_request_headers"), "{text}");
        assert!(text.contains("about to fail"), "{text}");
    }
}
