//! The config file (TOML). Strict: an unknown field is an error that names it,
//! and a config that would admit nobody, or everybody by accident, is refused.
//!
//! ```toml
//! listen = "127.0.0.1:8443"
//! admin = "127.0.0.1:9901"      # optional: /metrics and /healthz
//! policy = "modern"             # modern | compatible | fips
//!
//! [tls]
//! cert = "certs/cert.pem"       # relative paths are relative to this file
//! key = "certs/key.pem"
//! ca = "certs/ca.pem"
//! reload_interval = "1s"
//!
//! [server]                      # exactly one of [server] / [client] / [passthrough]
//! upstream = "127.0.0.1:8080"
//! [server.allow]
//! spiffe_ids = ["spiffe://td/ns/*/sa/web"]
//! dns_names = ["*.internal.example"]
//! common_names = ["legacy-client"]
//!
//! [limits]
//! max_connections = 1024
//! handshake_timeout = "10s"
//! header_timeout = "10s"
//! shutdown_grace = "30s"
//! upstream_timeout = "30s"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration::HumanDuration;
use crate::identity::AllowList;
use crate::spiffe::{SpiffeId, SpiffePattern};
use crate::tls::{CertPaths, Policy};

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown field, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the field and line.
        message: String,
    },
    /// The TOML parsed but a value is not acceptable.
    #[error("{path}: `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the field.
        field: String,
        /// What is wrong and what to write instead.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to accept connections on.
    pub listen: SocketAddr,
    /// Address for `/metrics` and `/healthz` (plain HTTP); none if absent.
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    /// TLS policy mode.
    #[serde(default)]
    pub policy: Policy,
    /// Certificate files (required in server and client mode).
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Server mode: terminate mTLS in front of an HTTP upstream.
    #[serde(default)]
    pub server: Option<ServerSection>,
    /// Client mode: accept plain TCP, originate mTLS.
    #[serde(default)]
    pub client: Option<ClientSection>,
    /// SNI passthrough mode: route TLS by server name without decrypting.
    #[serde(default)]
    pub passthrough: Option<PassthroughSection>,
    /// Connection limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// Auto-rotation of the own certificate from a built-in CA directory.
    #[serde(default)]
    pub rotation: Option<RotationSection>,
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Own certificate chain, PEM.
    pub cert: PathBuf,
    /// Own private key, PEM.
    pub key: PathBuf,
    /// CA bundle for verifying peers, PEM.
    pub ca: PathBuf,
    /// How often the files are checked for changes.
    #[serde(default = "default_reload")]
    pub reload_interval: HumanDuration,
}

fn default_reload() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// HTTP/1.1 upstream, `host:port`.
    pub upstream: String,
    /// Who may connect.
    pub allow: AllowSection,
}

/// `[server.allow]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowSection {
    /// SPIFFE id patterns (`*` within a segment, trailing `**`).
    #[serde(default)]
    pub spiffe_ids: Vec<String>,
    /// DNS SAN patterns (exact or `*.suffix`).
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// Exact subject common names.
    #[serde(default)]
    pub common_names: Vec<String>,
    /// Allow any certificate that chains to the CA bundle. Must be explicit.
    #[serde(default)]
    pub any_verified: bool,
}

/// `[client]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Remote mTLS endpoint, `host:port`.
    pub remote: String,
    /// SNI to send; also the DNS name checked when no SPIFFE ids are given.
    pub server_name: String,
    /// Expected server SPIFFE ids (patterns). If empty, the DNS name is checked.
    #[serde(default)]
    pub server_spiffe_ids: Vec<String>,
}

/// `[passthrough]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassthroughSection {
    /// Server name (exact or `*.suffix`) to backend `host:port`.
    pub routes: std::collections::BTreeMap<String, String>,
    /// Backend for a missing or unknown SNI; without it such connections are closed.
    #[serde(default)]
    pub default: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Connections beyond this are closed at accept.
    #[serde(default = "default_max_conn")]
    pub max_connections: usize,
    /// Time allowed for the TLS handshake.
    #[serde(default = "default_10s")]
    pub handshake_timeout: HumanDuration,
    /// Time allowed to receive a request's headers (slowloris guard).
    #[serde(default = "default_10s")]
    pub header_timeout: HumanDuration,
    /// On SIGTERM/SIGINT, how long open connections may finish.
    #[serde(default = "default_grace")]
    pub shutdown_grace: HumanDuration,
    /// Server mode: time allowed to connect upstream and receive the response
    /// headers; past it the client gets 504.
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout: HumanDuration,
}

fn default_max_conn() -> usize {
    1024
}
fn default_10s() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_upstream_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: default_max_conn(),
            handshake_timeout: default_10s(),
            header_timeout: default_10s(),
            shutdown_grace: default_grace(),
            upstream_timeout: default_upstream_timeout(),
        }
    }
}

/// `[rotation]`: renew the own certificate from a built-in CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationSection {
    /// Directory made by `mtls-proxy ca init`.
    pub ca_dir: PathBuf,
    /// SPIFFE id to put in the certificate.
    pub spiffe_id: String,
    /// DNS SANs to add (for peers that verify a DNS name).
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// Lifetime of each certificate.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
    /// Renew when this fraction of the lifetime has passed.
    #[serde(default = "default_renew")]
    pub renew_at: f64,
}

fn default_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(86_400))
}
fn default_renew() -> f64 {
    0.5
}

/// The mode a config selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `[server]`.
    Server,
    /// `[client]`.
    Client,
    /// `[passthrough]`.
    Passthrough,
}

impl Config {
    /// Reads, parses and validates a file. Relative paths inside are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, base)
    }

    /// Parses and validates `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if let Some(t) = &mut cfg.tls {
            for p in [&mut t.cert, &mut t.key, &mut t.ca] {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        if let Some(r) = &mut cfg.rotation {
            if r.ca_dir.is_relative() {
                r.ca_dir = base.join(&r.ca_dir);
            }
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let modes = [
            self.server.is_some(),
            self.client.is_some(),
            self.passthrough.is_some(),
        ];
        match modes.iter().filter(|m| **m).count() {
            0 => {
                return Err(invalid(
                    "server",
                    "neither [server], [client] nor [passthrough] is set; add one".into(),
                ))
            }
            1 => {}
            _ => {
                return Err(invalid(
                    "server",
                    "more than one of [server], [client], [passthrough] is set; a process runs one mode, use one config per mode".into(),
                ))
            }
        }
        match (&self.tls, self.passthrough.is_some()) {
            (None, false) => {
                return Err(invalid(
                    "tls",
                    "missing: server and client mode need [tls] with cert, key and ca".into(),
                ))
            }
            (Some(_), true) => {
                return Err(invalid(
                    "tls",
                    "passthrough does not decrypt and uses no certificate; remove [tls]".into(),
                ))
            }
            _ => {}
        }
        if let Some(p) = &self.passthrough {
            if p.routes.is_empty() && p.default.is_none() {
                return Err(invalid(
                    "passthrough.routes",
                    "no routes and no default: every connection would be closed".into(),
                ));
            }
            if self.rotation.is_some() {
                return Err(invalid(
                    "rotation",
                    "passthrough uses no certificate; remove [rotation]".into(),
                ));
            }
        }
        if let Some(s) = &self.server {
            if s.upstream.trim().is_empty() {
                return Err(invalid("server.upstream", "must be host:port".into()));
            }
            for (i, p) in s.allow.spiffe_ids.iter().enumerate() {
                SpiffePattern::parse(p).map_err(|e| {
                    invalid(&format!("server.allow.spiffe_ids[{i}]"), e.to_string())
                })?;
            }
            if self.allow_list().map(|a| a.is_empty()).unwrap_or(false) {
                return Err(invalid(
                    "server.allow",
                    "admits nobody: list spiffe_ids, dns_names or common_names, or set any_verified = true to let the CA alone decide".into(),
                ));
            }
        }
        if let Some(c) = &self.client {
            for (i, p) in c.server_spiffe_ids.iter().enumerate() {
                SpiffePattern::parse(p).map_err(|e| {
                    invalid(&format!("client.server_spiffe_ids[{i}]"), e.to_string())
                })?;
            }
            rustls::pki_types::ServerName::try_from(c.server_name.clone())
                .map_err(|e| invalid("client.server_name", e.to_string()))?;
        }
        if self.limits.max_connections == 0 {
            return Err(invalid(
                "limits.max_connections",
                "must be at least 1".into(),
            ));
        }
        if self
            .tls
            .as_ref()
            .is_some_and(|t| t.reload_interval.0 < Duration::from_millis(10))
        {
            return Err(invalid(
                "tls.reload_interval",
                "must be at least 10ms".into(),
            ));
        }
        if let Some(r) = &self.rotation {
            SpiffeId::parse(&r.spiffe_id)
                .map_err(|e| invalid("rotation.spiffe_id", e.to_string()))?;
            if !(r.renew_at > 0.0 && r.renew_at < 1.0) {
                return Err(invalid(
                    "rotation.renew_at",
                    "must be a fraction between 0 and 1, e.g. 0.5 (half-life)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Which mode this config runs.
    pub fn mode(&self) -> Mode {
        if self.server.is_some() {
            Mode::Server
        } else if self.client.is_some() {
            Mode::Client
        } else {
            Mode::Passthrough
        }
    }

    /// The certificate file paths (`None` in passthrough mode).
    pub fn cert_paths(&self) -> Option<CertPaths> {
        self.tls.as_ref().map(|t| CertPaths {
            cert: t.cert.clone(),
            key: t.key.clone(),
            ca: t.ca.clone(),
        })
    }

    /// The server allow-list (`None` in client mode).
    pub fn allow_list(&self) -> Option<AllowList> {
        self.server.as_ref().map(|s| {
            AllowList::new(
                &s.allow.spiffe_ids,
                &s.allow.dns_names,
                &s.allow.common_names,
                s.allow.any_verified,
            )
            .expect("validated in Config::validate")
        })
    }

    /// Expected server SPIFFE patterns (client mode).
    pub fn server_patterns(&self) -> Vec<SpiffePattern> {
        self.client
            .as_ref()
            .map(|c| {
                c.server_spiffe_ids
                    .iter()
                    .map(|p| SpiffePattern::parse(p).expect("validated in Config::validate"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
listen = "127.0.0.1:8443"
[tls]
cert = "c.pem"
key = "k.pem"
ca = "/abs/ca.pem"
[server]
upstream = "127.0.0.1:8080"
[server.allow]
spiffe_ids = ["spiffe://td/ns/*/sa/web"]
"#;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("test.toml"), Path::new("/etc/mp"))
    }

    #[test]
    fn parses_and_resolves_paths() {
        let c = parse(OK).unwrap();
        assert_eq!(c.mode(), Mode::Server);
        assert_eq!(c.policy, Policy::Modern);
        let paths = c.cert_paths().unwrap();
        assert_eq!(paths.cert, PathBuf::from("/etc/mp/c.pem"));
        assert_eq!(paths.ca, PathBuf::from("/abs/ca.pem"));
        assert_eq!(c.limits.max_connections, 1024);
        assert_eq!(c.limits.header_timeout.0, Duration::from_secs(10));
        assert_eq!(c.allow_list().unwrap().spiffe_ids.len(), 1);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = parse(&OK.replace("upstream =", "upstrem =")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `upstrem`"), "{msg}");
        let err = parse(&format!("{OK}\n[limits]\nmax_conns = 3\n")).unwrap_err();
        assert!(err.to_string().contains("max_conns"), "{err}");
    }

    #[test]
    fn refuses_empty_allow_list() {
        let err = parse(&OK.replace("spiffe_ids = [\"spiffe://td/ns/*/sa/web\"]", "")).unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { field, .. } if field == "server.allow"));
        assert!(err.to_string().contains("any_verified"));
    }

    #[test]
    fn refuses_bad_pattern_with_index() {
        let err = parse(&OK.replace("spiffe://td/ns/*/sa/web", "http://x")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { field, .. } if field == "server.allow.spiffe_ids[0]"),
            "{err}"
        );
    }

    #[test]
    fn refuses_both_or_neither_mode() {
        let both = format!("{OK}\n[client]\nremote = \"x:1\"\nserver_name = \"x\"\n");
        assert!(parse(&both)
            .unwrap_err()
            .to_string()
            .contains("more than one"));
        let neither = OK.split("[server]").next().unwrap();
        assert!(parse(neither).unwrap_err().to_string().contains("neither"));
    }

    #[test]
    fn passthrough_needs_no_tls_and_refuses_it() {
        let p = r#"
listen = "127.0.0.1:8443"
[passthrough]
routes = { "api.example" = "127.0.0.1:9001", "*.example" = "127.0.0.1:9002" }
"#;
        let c = parse(p).unwrap();
        assert_eq!(c.mode(), Mode::Passthrough);
        assert!(c.cert_paths().is_none());
        let with_tls = format!("{p}\n[tls]\ncert = \"c\"\nkey = \"k\"\nca = \"a\"\n");
        let err = parse(&with_tls).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { field, .. } if field == "tls"),
            "{err}"
        );
        let no_tls = OK.split("[tls]").next().unwrap().to_string()
            + "[server]\nupstream = \"x:1\"\n[server.allow]\nany_verified = true\n";
        let err = parse(&no_tls).unwrap_err();
        assert!(err.to_string().contains("need [tls]"), "{err}");
    }

    #[test]
    fn refuses_bad_duration_and_policy() {
        let err = parse(&format!("{OK}\n[limits]\nheader_timeout = \"10\"\n")).unwrap_err();
        assert!(err.to_string().contains("ms, s, m, h, d"), "{err}");
        let err = parse(&OK.replace("listen =", "policy = \"weak\"\nlisten =")).unwrap_err();
        assert!(err.to_string().contains("weak"), "{err}");
    }
}
