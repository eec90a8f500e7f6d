//! The placeholder convention of the shipped `envoy-examples/*.yaml`.
//!
//! The examples are plain Envoy configurations a user can run as they are
//! from the repository root. Their well-known values double as placeholders
//! that [`Substitutions::apply`] rewrites so tests can run them in parallel:
//!
//! | in the example | becomes |
//! | --- | --- |
//! | admin `port_value: 9901` | `0` (the port is learned with `--admin-address-path`) |
//! | listener `port_value` 10000–10099 | `0` (learned from admin `/listeners`) |
//! | `port_value: 8080` | the echo upstream's port |
//! | other `port_value`s mapped with [`Substitutions::port`] | the mapped port |
//! | a `filename:` mapped with [`Substitutions::file`] | the mapped path |
//! | other relative `filename:`s (e.g. `target/plugins/rbac.wasm`) | resolved against the base directory (the workspace root) |
//!
//! The rewrite works on the parsed YAML (keys named `port_value` and
//! `filename`), not on text, so comments and layout do not matter.

use super::EnvoyError;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// The admin port in the examples.
pub const EXAMPLE_ADMIN_PORT: u16 = 9901;
/// Listener ports in the examples.
pub const EXAMPLE_LISTENER_PORTS: RangeInclusive<u16> = 10000..=10099;
/// The upstream port in the examples.
pub const EXAMPLE_UPSTREAM_PORT: u16 = 8080;

/// How an example configuration is rewritten for a test run.
#[derive(Debug, Clone, PartialEq)]
pub struct Substitutions {
    ports: BTreeMap<u16, u16>,
    files: BTreeMap<String, PathBuf>,
    base_dir: PathBuf,
}

impl Substitutions {
    /// Admin and listener ports become 0, relative file names resolve
    /// against `base_dir`; the upstream port is left as is until
    /// [`upstream`](Self::upstream) is called.
    pub fn new(base_dir: impl Into<PathBuf>) -> Substitutions {
        let mut ports = BTreeMap::new();
        ports.insert(EXAMPLE_ADMIN_PORT, 0);
        for p in EXAMPLE_LISTENER_PORTS {
            ports.insert(p, 0);
        }
        Substitutions {
            ports,
            files: BTreeMap::new(),
            base_dir: base_dir.into(),
        }
    }

    /// Points the example's upstream (`port_value: 8080`) at `port`.
    pub fn upstream(self, port: u16) -> Substitutions {
        self.port(EXAMPLE_UPSTREAM_PORT, port)
    }

    /// Replaces every `port_value: from` with `to`.
    pub fn port(mut self, from: u16, to: u16) -> Substitutions {
        self.ports.insert(from, to);
        self
    }

    /// Replaces every `filename: from` (as written in the example, e.g.
    /// `target/plugins/rbac.wasm`) with `to`, e.g. a freshly built module.
    pub fn file(mut self, from: impl Into<String>, to: impl Into<PathBuf>) -> Substitutions {
        self.files.insert(from.into(), to.into());
        self
    }

    /// The directory relative file names are resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Rewrites an example configuration (YAML text) and returns YAML.
    pub fn apply(&self, yaml: &str) -> Result<String, EnvoyError> {
        let mut doc: Value = serde_yaml::from_str(yaml)
            .map_err(|e| EnvoyError::Config(format!("the example is not valid YAML: {e}")))?;
        self.rewrite(&mut doc);
        serde_yaml::to_string(&doc)
            .map_err(|e| EnvoyError::Config(format!("cannot write the rewritten example: {e}")))
    }

    /// Reads an example file and rewrites it.
    pub fn apply_file(&self, path: &Path) -> Result<String, EnvoyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EnvoyError::io(format!("reading {}", path.display()), e))?;
        self.apply(&text)
    }

    fn rewrite(&self, value: &mut Value) {
        match value {
            Value::Mapping(map) => {
                for (key, v) in map.iter_mut() {
                    match key.as_str() {
                        Some("port_value") => {
                            if let Some(to) = v
                                .as_u64()
                                .and_then(|p| u16::try_from(p).ok())
                                .and_then(|p| self.ports.get(&p))
                            {
                                *v = Value::from(*to);
                            }
                        }
                        Some("filename") => {
                            if let Some(name) = v.as_str() {
                                let path = Path::new(name);
                                if let Some(to) = self.files.get(name) {
                                    *v = Value::from(to.to_string_lossy().into_owned());
                                } else if path.is_relative() {
                                    *v = Value::from(
                                        self.base_dir.join(path).to_string_lossy().into_owned(),
                                    );
                                }
                            }
                        }
                        _ => self.rewrite(v),
                    }
                }
            }
            Value::Sequence(items) => items.iter_mut().for_each(|v| self.rewrite(v)),
            Value::Tagged(tagged) => self.rewrite(&mut tagged.value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
# a comment
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: 9901 }
static_resources:
  listeners:
    - address:
        socket_address: { address: 127.0.0.1, port_value: 10000 }
      filter_chains:
        - filters:
            - typed_config:
                config:
                  vm_config:
                    code:
                      local: { filename: target/plugins/rbac.wasm }
                  other:
                    code:
                      local: { filename: /abs/x.wasm }
                  third: { filename: /abs/y.wasm }
  clusters:
    - load_assignment:
        endpoints:
          - lb_endpoints:
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 6379 } } }
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 7000 } } }
"#;

    #[test]
    fn rewrites_ports_and_relative_module_paths() {
        let subs = Substitutions::new("/repo")
            .upstream(4321)
            .port(6379, 16379)
            .file("/abs/y.wasm", "/built/y.wasm");
        let out: Value = serde_yaml::from_str(&subs.apply(EXAMPLE).unwrap()).unwrap();
        let port = |v: &Value| v["socket_address"]["port_value"].as_u64().unwrap();
        assert_eq!(port(&out["admin"]["address"]), 0);
        let sr = &out["static_resources"];
        assert_eq!(port(&sr["listeners"][0]["address"]), 0);
        let config =
            &sr["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["config"];
        assert_eq!(
            config["vm_config"]["code"]["local"]["filename"],
            "/repo/target/plugins/rbac.wasm"
        );
        assert_eq!(config["other"]["code"]["local"]["filename"], "/abs/x.wasm");
        assert_eq!(config["third"]["filename"], "/built/y.wasm");
        let eps = &sr["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"];
        let ports: Vec<u64> = (0..3)
            .map(|i| port(&eps[i]["endpoint"]["address"]))
            .collect();
        assert_eq!(ports, [4321, 16379, 7000]);
    }

    /// Every `filename` value in a YAML document.
    fn filenames(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Mapping(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        (Some("filename"), Some(name)) => out.push(name.to_string()),
                        _ => filenames(v, out),
                    }
                }
            }
            Value::Sequence(items) => items.iter().for_each(|v| filenames(v, out)),
            _ => {}
        }
    }

    /// Removes the listeners' downstream TLS (`transport_socket` of each
    /// filter chain), whose certificates an example leaves to its user:
    /// `scripts/demo --check` runs `chain.yaml` with its TLS and real
    /// certificates; here the HTTP filter chain is what is checked.
    fn without_downstream_tls(doc: &mut Value) {
        let Some(listeners) = doc["static_resources"]["listeners"].as_sequence_mut() else {
            return;
        };
        for listener in listeners {
            let Some(chains) = listener["filter_chains"].as_sequence_mut() else {
                continue;
            };
            for chain in chains {
                if let Some(map) = chain.as_mapping_mut() {
                    map.remove("transport_socket");
                }
            }
        }
    }

    /// The shipped examples validate and serve requests under the
    /// placeholder convention (with the test module standing in for the
    /// plugins, so this does not depend on a plugin build).
    #[test]
    fn every_shipped_example_validates_and_serves() {
        use crate::envoy::{
            client, envoy_binary, process::validate, test_module, workspace_root, EchoUpstream,
            Envoy, EnvoyOptions,
        };
        if let Err(e) = envoy_binary() {
            panic!("{e}");
        }
        let root = workspace_root().unwrap();
        let mut examples: Vec<_> = std::fs::read_dir(root.join("envoy-examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        examples.sort();
        assert!(!examples.is_empty(), "no envoy-examples/*.yaml");
        for example in examples {
            let text = std::fs::read_to_string(&example).unwrap();
            let mut names = Vec::new();
            filenames(&serde_yaml::from_str(&text).unwrap(), &mut names);
            let upstream = EchoUpstream::start().unwrap();
            let mut subs = Substitutions::new(&root).upstream(upstream.port());
            for name in names.into_iter().filter(|n| n.ends_with(".wasm")) {
                subs = subs.file(name, test_module::path());
            }
            let options = EnvoyOptions::default();
            let mut doc: Value = serde_yaml::from_str(&subs.apply(&text).unwrap()).unwrap();
            without_downstream_tls(&mut doc);
            let rendered = serde_yaml::to_string(&doc).unwrap();
            validate(&rendered, &options).unwrap_or_else(|e| panic!("{}: {e}", example.display()));
            let envoy = Envoy::start(&rendered, &options)
                .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
            let outcome = client::send(envoy.listener_addr(), &Default::default()).unwrap();
            assert_eq!(outcome.status, 200, "{}", example.display());
            assert!(outcome.upstream.is_some(), "{}", example.display());
        }
    }

    #[test]
    fn names_invalid_yaml() {
        let err = Substitutions::new("/").apply("a: [").unwrap_err();
        assert!(err.to_string().contains("not valid YAML"), "{err}");
    }
}
