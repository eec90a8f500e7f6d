//! palisade-rls against a real redis-server (Debian's; `scripts/install-test-deps`
//! installs it): exact shared counts across two servers, and a Redis outage
//! answered with gRPC UNAVAILABLE.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use rate_limit::rls::{Code, Entry, RateLimitDescriptor, RateLimitRequest, RateLimitResponse};
use rls_server::grpc;
use rls_server::service::PATH;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::{start_redis, start_rls};

const LIMITS: &str = "domain: edge
descriptors:
  - key: rule
    value: per-client
    descriptors:
      - key: client_ip
        rate_limit: { unit: hour, requests_per_unit: 50 }
";

fn request(ip: &str) -> RateLimitRequest {
    RateLimitRequest {
        domain: "edge".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![
                Entry {
                    key: "rule".into(),
                    value: "per-client".into(),
                },
                Entry {
                    key: "client_ip".into(),
                    value: ip.into(),
                },
            ],
        }],
        hits_addend: 1,
    }
}

/// One unary call: the decoded response, or the gRPC status.
async fn call(addr: SocketAddr, req: &RateLimitRequest) -> Result<RateLimitResponse, u32> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let http = Request::post(format!("http://{addr}{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(grpc::frame(&req.encode_to_vec())))
        .unwrap();
    let resp = sender.send_request(http).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .expect("grpc-status trailer");
    let data: Bytes = collected.to_bytes();
    if status != 0 {
        return Err(status);
    }
    Ok(RateLimitResponse::decode(grpc::unframe(&data).unwrap()).unwrap())
}

/// Keeps a test's hour window from rolling over in the middle.
fn away_from_hour_boundary() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = 3600 - now % 3600;
    if left < 15 {
        std::thread::sleep(Duration::from_secs(left + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_exact_limit() {
    away_from_hour_boundary();
    let dir = std::env::temp_dir().join(format!("palisade-rls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_redis, redis_port) = start_redis();
    let (_a, addr_a) = start_rls(redis_port, LIMITS, &dir);
    let (_b, addr_b) = start_rls(redis_port, LIMITS, &dir);

    let mut tasks = Vec::new();
    for i in 0..80 {
        let addr = if i % 2 == 0 { addr_a } else { addr_b };
        tasks.push(tokio::spawn(async move {
            call(addr, &request("10.1.1.1")).await
        }));
    }
    let mut ok = 0;
    let mut over = 0;
    for t in tasks {
        let resp = t.await.unwrap().expect("gRPC OK");
        match Code::try_from(resp.overall_code).unwrap() {
            Code::Ok => ok += 1,
            Code::OverLimit => over += 1,
            Code::Unknown => panic!("unknown code"),
        }
        assert_eq!(resp.statuses.len(), 1);
    }
    assert_eq!((ok, over), (50, 30), "50 per hour across both servers");

    // Another client has its own count; unknown domains are not limited.
    let other = call(addr_a, &request("10.2.2.2")).await.unwrap();
    assert_eq!(other.overall_code, Code::Ok as i32);
    assert_eq!(other.statuses[0].limit_remaining, 49);
    let mut foreign = request("10.1.1.1");
    foreign.domain = "elsewhere".into();
    assert_eq!(
        call(addr_b, &foreign).await.unwrap().overall_code,
        Code::Ok as i32
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable() {
    let dir = std::env::temp_dir().join(format!("palisade-rls-down-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (redis, redis_port) = start_redis();
    let (_rls, addr) = start_rls(redis_port, LIMITS, &dir);
    assert!(call(addr, &request("10.3.3.3")).await.is_ok());
    drop(redis);
    assert_eq!(
        call(addr, &request("10.3.3.3")).await.unwrap_err(),
        grpc::status::UNAVAILABLE
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn unknown_method_is_unimplemented() {
    let dir = std::env::temp_dir().join(format!("palisade-rls-unimpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_redis, redis_port) = start_redis();
    let (_rls, addr) = start_rls(redis_port, LIMITS, &dir);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let http = Request::post(format!("http://{addr}/other.Service/Method"))
        .header("content-type", "application/grpc")
        .body(Full::new(grpc::frame(b"")))
        .unwrap();
    let collected = sender
        .send_request(http)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(status, grpc::status::UNIMPLEMENTED.to_string());
    std::fs::remove_dir_all(&dir).ok();
}
