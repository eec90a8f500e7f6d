//! The Envoy configuration the runner generates: admin and one listener on
//! 127.0.0.1 port 0, an HTTP connection manager running a chain of Wasm
//! filters (V8, `fail_open: false`) and then the router to the cluster
//! `upstream`, plus extra clusters for plugins' `http_call`/`grpc_call`.

use crate::host::ConnectionManager;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Name of the listener in generated configurations.
pub const LISTENER_NAME: &str = "ingress";
/// Name of the cluster every route goes to.
pub const UPSTREAM_CLUSTER: &str = "upstream";

/// One Wasm HTTP filter in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmFilter {
    /// Filter and plugin name (`palisade.rbac`); also used in Envoy's log.
    pub name: String,
    /// The `.wasm` module file (made absolute when rendered).
    pub module: PathBuf,
    /// The plugin configuration, handed to the module as bytes (JSON).
    pub config: String,
    /// The root context id, if the module registers a named root.
    pub root_id: Option<String>,
    /// The VM id; filters with the same id and module share a VM.
    pub vm_id: String,
}

impl WasmFilter {
    /// A filter named `name` running `module` with an empty configuration;
    /// the VM id is the name, no root id.
    pub fn new(name: impl Into<String>, module: impl Into<PathBuf>) -> WasmFilter {
        let name = name.into();
        WasmFilter {
            vm_id: name.clone(),
            name,
            module: module.into(),
            config: String::new(),
            root_id: None,
        }
    }

    /// Sets the plugin configuration.
    pub fn config(mut self, config: impl Into<String>) -> WasmFilter {
        self.config = config.into();
        self
    }

    /// Sets the root context id.
    pub fn root_id(mut self, root_id: impl Into<String>) -> WasmFilter {
        self.root_id = Some(root_id.into());
        self
    }

    /// Sets the VM id.
    pub fn vm_id(mut self, vm_id: impl Into<String>) -> WasmFilter {
        self.vm_id = vm_id.into();
        self
    }

    fn to_json(&self) -> Value {
        let module = std::path::absolute(&self.module).unwrap_or_else(|_| self.module.clone());
        let mut config = json!({
            "name": self.name,
            "fail_open": false,
            "vm_config": {
                "vm_id": self.vm_id,
                "runtime": "envoy.wasm.runtime.v8",
                "code": { "local": { "filename": module.to_string_lossy() } },
            },
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": self.config,
            },
        });
        if let Some(root_id) = &self.root_id {
            config["root_id"] = json!(root_id);
        }
        json!({
            "name": self.name,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": config,
            },
        })
    }
}

/// A cluster besides `upstream`, for a plugin's `http_call` or `grpc_call`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraCluster {
    /// Cluster name, as the plugin passes it to `http_call`.
    pub name: String,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Speak HTTP/2 to it (needed for `grpc_call`).
    pub http2: bool,
}

impl ExtraCluster {
    /// An HTTP/1.1 cluster `name` at `host:port`.
    pub fn new(name: impl Into<String>, host: impl Into<String>, port: u16) -> ExtraCluster {
        ExtraCluster {
            name: name.into(),
            host: host.into(),
            port,
            http2: false,
        }
    }

    /// Speaks HTTP/2 (gRPC) to the cluster.
    pub fn http2(mut self) -> ExtraCluster {
        self.http2 = true;
        self
    }
}

/// A generated Envoy bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The Wasm filters, in order; the router follows them.
    pub filters: Vec<WasmFilter>,
    /// Where the cluster `upstream` points (the echo upstream).
    pub upstream: SocketAddr,
    /// Further clusters.
    pub clusters: Vec<ExtraCluster>,
    /// The listener's `use_remote_address` and
    /// `forward_client_cert_details` (default: Envoy's defaults).
    pub connection_manager: ConnectionManager,
}

impl Bootstrap {
    /// A bootstrap routing to `upstream` through `filters`.
    pub fn new(filters: Vec<WasmFilter>, upstream: SocketAddr) -> Bootstrap {
        Bootstrap {
            filters,
            upstream,
            clusters: Vec::new(),
            connection_manager: ConnectionManager::default(),
        }
    }

    /// Adds a cluster.
    pub fn cluster(mut self, cluster: ExtraCluster) -> Bootstrap {
        self.clusters.push(cluster);
        self
    }

    /// The configuration as YAML for `envoy -c`.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&self.to_json()).expect("a JSON value always serializes as YAML")
    }

    /// The configuration as a JSON value (the same document as
    /// [`to_yaml`](Self::to_yaml)).
    pub fn to_json(&self) -> Value {
        let mut http_filters: Vec<Value> = self.filters.iter().map(WasmFilter::to_json).collect();
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            },
        }));
        let mut clusters = vec![cluster(
            UPSTREAM_CLUSTER,
            &self.upstream.ip().to_string(),
            self.upstream.port(),
            false,
        )];
        clusters.extend(
            self.clusters
                .iter()
                .map(|c| cluster(&c.name, &c.host, c.port, c.http2)),
        );
        let mut hcm = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": LISTENER_NAME,
            "route_config": { "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{
                    "match": { "prefix": "/" },
                    "route": { "cluster": UPSTREAM_CLUSTER },
                }],
            }]},
            "http_filters": http_filters,
        });
        if self.connection_manager.use_remote_address {
            hcm["use_remote_address"] = json!(true);
        }
        if self.connection_manager.forward_client_cert {
            hcm["forward_client_cert_details"] = json!("ALWAYS_FORWARD_ONLY");
        }
        json!({
            "admin": { "address": loopback(0) },
            "static_resources": {
                "listeners": [{
                    "name": LISTENER_NAME,
                    "address": loopback(0),
                    "filter_chains": [{ "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": hcm,
                    }]}],
                }],
                "clusters": clusters,
            },
        })
    }
}

fn loopback(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

fn cluster(name: &str, host: &str, port: u16, http2: bool) -> Value {
    let kind = if host.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let mut c = json!({
        "name": name,
        "type": kind,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": host, "port_value": port },
            }}}]}],
        },
    });
    if http2 {
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        });
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bootstrap {
        Bootstrap::new(
            vec![
                WasmFilter::new("first", "/m/a.wasm").config("{\"a\":1}"),
                WasmFilter::new("second", "/m/b.wasm")
                    .root_id("b")
                    .vm_id("shared"),
            ],
            "127.0.0.1:8080".parse().unwrap(),
        )
        .cluster(ExtraCluster::new("idp", "localhost", 9000))
        .cluster(ExtraCluster::new("ext", "127.0.0.1", 9001).http2())
    }

    #[test]
    fn chains_the_filters_in_order_then_the_router() {
        let json = sample().to_json();
        let hcm = &json["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"];
        let names: Vec<_> = hcm["http_filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["first", "second", "envoy.filters.http.router"]);
        let first = &hcm["http_filters"][0]["typed_config"]["config"];
        assert_eq!(first["fail_open"], false);
        assert_eq!(first["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(first["vm_config"]["code"]["local"]["filename"], "/m/a.wasm");
        assert_eq!(first["configuration"]["value"], "{\"a\":1}");
        assert!(first.get("root_id").is_none());
        let second = &hcm["http_filters"][1]["typed_config"]["config"];
        assert_eq!(second["root_id"], "b");
        assert_eq!(second["vm_config"]["vm_id"], "shared");
    }

    #[test]
    fn connection_manager_settings_reach_the_listener_only_when_set() {
        let hcm = |b: &Bootstrap| {
            b.to_json()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                ["typed_config"]
                .clone()
        };
        let default = hcm(&sample());
        assert!(default.get("use_remote_address").is_none(), "{default}");
        assert!(
            default.get("forward_client_cert_details").is_none(),
            "{default}"
        );
        let mut b = sample();
        b.connection_manager = ConnectionManager {
            use_remote_address: true,
            forward_client_cert: true,
        };
        let set = hcm(&b);
        assert_eq!(set["use_remote_address"], true);
        assert_eq!(set["forward_client_cert_details"], "ALWAYS_FORWARD_ONLY");
    }

    #[test]
    fn lists_the_upstream_and_extra_clusters() {
        let json = sample().to_json();
        let clusters = json["static_resources"]["clusters"].as_array().unwrap();
        let summary: Vec<_> = clusters
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                ("upstream", "STATIC"),
                ("idp", "STRICT_DNS"),
                ("ext", "STATIC")
            ]
        );
        assert!(clusters[2]["typed_extension_protocol_options"].is_object());
        assert!(clusters[0]
            .get("typed_extension_protocol_options")
            .is_none());
        assert_eq!(json["admin"]["address"]["socket_address"]["port_value"], 0);
    }

    #[test]
    fn yaml_is_the_same_document() {
        let b = sample();
        let back: Value = serde_yaml::from_str(&b.to_yaml()).unwrap();
        assert_eq!(back, b.to_json());
    }
}
