//! The gRPC endpoint: HTTP/2 (prior knowledge, as Envoy's gRPC clusters
//! speak), unary `ShouldRateLimit`.

use crate::counter;
use crate::grpc::{self, status};
use crate::limits::Limits;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response};
use prost::Message;
use rate_limit::rls::{
    Code, DescriptorStatus, ProtoDuration, RateLimit as ProtoLimit, RateLimitRequest,
    RateLimitResponse,
};
use redis::aio::MultiplexedConnection;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

/// The path of the one method served.
pub const PATH: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// Shared state of the server.
pub struct Service {
    /// The limits.
    pub limits: Limits,
    /// Redis.
    pub redis: MultiplexedConnection,
}

/// A gRPC response body: one data frame, then the trailers.
pub struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

fn reply(message: Option<Bytes>, code: u32, text: &str) -> Response<GrpcBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    if !text.is_empty() {
        if let Ok(v) = HeaderValue::from_str(
            &text.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), " "),
        ) {
            trailers.insert("grpc-message", v);
        }
    }
    let mut resp = Response::new(GrpcBody {
        data: message,
        trailers: Some(trailers),
    });
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    resp
}

/// Handles one HTTP/2 request.
pub async fn handle(
    svc: Arc<Service>,
    req: Request<Incoming>,
) -> Result<Response<GrpcBody>, Infallible> {
    if req.uri().path() != PATH {
        return Ok(reply(None, status::UNIMPLEMENTED, "unknown method"));
    }
    let body = match Limited::new(req.into_body(), grpc::MAX_MESSAGE + 5)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(reply(
                None,
                status::INVALID_ARGUMENT,
                &format!("unreadable request: {e}"),
            ))
        }
    };
    let message = match grpc::unframe(&body) {
        Ok(m) => m,
        Err((code, text)) => return Ok(reply(None, code, &text)),
    };
    let request = match RateLimitRequest::decode(message) {
        Ok(r) => r,
        Err(e) => {
            return Ok(reply(
                None,
                status::INVALID_ARGUMENT,
                &format!("undecodable RateLimitRequest: {e}"),
            ))
        }
    };
    match should_rate_limit(&svc, &request).await {
        Ok(resp) => Ok(reply(
            Some(grpc::frame(&resp.encode_to_vec())),
            status::OK,
            "",
        )),
        Err(e) => {
            eprintln!("palisade-rls: redis failed: {e}");
            Ok(reply(None, status::UNAVAILABLE, &format!("redis: {e}")))
        }
    }
}

/// Checks every descriptor of a request; unknown domains are not limited.
pub async fn should_rate_limit(
    svc: &Service,
    req: &RateLimitRequest,
) -> redis::RedisResult<RateLimitResponse> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut overall = Code::Ok;
    let mut statuses = Vec::with_capacity(req.descriptors.len());
    let mut con = svc.redis.clone();
    for d in &req.descriptors {
        let entries: Vec<(&str, &str)> = d
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        let limit = if req.domain == svc.limits.domain {
            svc.limits.lookup(entries.iter().copied())
        } else {
            None
        };
        let Some(limit) = limit else {
            statuses.push(DescriptorStatus {
                code: Code::Ok as i32,
                current_limit: None,
                limit_remaining: 0,
                duration_until_reset: None,
            });
            continue;
        };
        let c =
            counter::count(&mut con, &req.domain, &entries, limit, req.hits_addend, now).await?;
        let code = if c.over { Code::OverLimit } else { Code::Ok };
        if c.over {
            overall = Code::OverLimit;
        }
        statuses.push(DescriptorStatus {
            code: code as i32,
            current_limit: Some(ProtoLimit {
                requests_per_unit: limit.requests_per_unit,
                unit: limit.unit.proto(),
                name: String::new(),
            }),
            limit_remaining: c.remaining,
            duration_until_reset: Some(ProtoDuration {
                seconds: i64::try_from(c.reset_secs).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        });
    }
    Ok(RateLimitResponse {
        overall_code: overall as i32,
        statuses,
    })
}
