//! Start-up helpers shared by the rls-server integration tests: a real
//! redis-server and palisade-rls on free ports, each stopped by its PID
//! when dropped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed (by its PID) and reaped when dropped.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's redis-server (`scripts/install-test-deps` installs it).
fn redis_server() -> PathBuf {
    ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join("redis-server"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("redis-server is not installed; run scripts/install-test-deps (Debian package redis-server)")
        })
}

/// A redis-server without persistence on a free port, once it listens.
pub fn start_redis() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(redis_server())
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), port)
}

/// palisade-rls with `limits` (written to `dir/limits.yaml`) over the
/// redis-server on `redis_port`, listening on a port it picks; gives the
/// address it prints once it listens.
pub fn start_rls(redis_port: u16, limits: &str, dir: &Path) -> (Proc, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("limits.yaml");
    std::fs::write(&file, limits).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade-rls"))
        .args([
            "--limits",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--redis", &format!("redis://127.0.0.1:{redis_port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start palisade-rls");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.trim_end_matches(',').parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (Proc(child), addr)
}
