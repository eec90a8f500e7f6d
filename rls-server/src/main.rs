//! `palisade-rls --limits FILE [--listen 127.0.0.1:8081] [--redis redis://127.0.0.1:6379]`

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rls_server::limits::Limits;
use rls_server::service::{handle, Service};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

struct Args {
    limits: PathBuf,
    listen: String,
    redis: String,
}

fn parse_args() -> Result<Args, String> {
    let mut limits = None;
    let mut listen = "127.0.0.1:8081".to_string();
    let mut redis = "redis://127.0.0.1:6379".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--limits" => limits = Some(PathBuf::from(value("--limits")?)),
            "--listen" => listen = value("--listen")?,
            "--redis" => redis = value("--redis")?,
            "-h" | "--help" => {
                return Err(
                    "usage: palisade-rls --limits FILE [--listen ADDR] [--redis URL]".into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(Args {
        limits: limits.ok_or("--limits FILE is required")?,
        listen,
        redis,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palisade-rls: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let limits = Limits::load(&args.limits).map_err(|e| e.to_string())?;
    let client = redis::Client::open(args.redis.as_str())
        .map_err(|e| format!("redis URL {}: {e}", args.redis))?;
    let redis = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("cannot connect to redis at {}: {e}", args.redis))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "palisade-rls: domain {} on {local}, redis {}",
        limits.domain, args.redis
    );
    let svc = Arc::new(Service { limits, redis });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => { eprintln!("palisade-rls: accept: {e}"); continue; }
                };
                let svc = svc.clone();
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service_fn(move |req| handle(svc.clone(), req)));
                    if let Err(e) = conn.await {
                        eprintln!("palisade-rls: connection: {e}");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => {
                println!("palisade-rls: stopping");
                return Ok(());
            }
        }
    }
}
