//! Istio `WasmPlugin` and Envoy Gateway `EnvoyExtensionPolicy` manifests for
//! the Palisade chain, generated from the shipped Envoy examples (the same
//! plugin configuration real Envoy validates) and pinned to the manifest
//! digest of each module's compat image.
//!
//! Order: jwt-auth → rbac → rate-limit → waf. Istio inserts AUTHN plugins
//! before its authentication filter, AUTHZ before its authorization filter
//! and STATS before its stats filter, and orders plugins of one phase by
//! descending `priority`. Envoy Gateway runs the `wasm` list of one policy in
//! list order.

use crate::digest::Digest;
use crate::image::{Image, ImageError, Variant};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Istio's filter-chain phase for a `WasmPlugin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before Istio's authentication filters.
    Authn,
    /// Before Istio's authorization filters.
    Authz,
    /// Before Istio's stats filter.
    Stats,
}

impl Phase {
    /// The CRD's enum value.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
        }
    }
}

/// One plugin's place in the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plugin {
    /// Module and example name: `target/plugins/<name>.wasm`,
    /// `envoy-examples/<name>.yaml`.
    pub name: &'static str,
    /// Istio phase.
    pub phase: Phase,
    /// Istio priority within the phase (higher runs first).
    pub priority: i32,
}

/// The chain in request order. A plugin takes part once its Envoy example
/// `envoy-examples/<name>.yaml` exists.
pub const CHAIN: [Plugin; 4] = [
    Plugin {
        name: "jwt-auth",
        phase: Phase::Authn,
        priority: 100,
    },
    Plugin {
        name: "rbac",
        phase: Phase::Authz,
        priority: 200,
    },
    Plugin {
        name: "rate-limit",
        phase: Phase::Authz,
        priority: 100,
    },
    Plugin {
        name: "waf",
        phase: Phase::Stats,
        priority: 100,
    },
];

/// Namespace of the Istio manifests (the ingress gateway's).
pub const ISTIO_NAMESPACE: &str = "istio-system";
/// Name of the Envoy Gateway policy and of the `HTTPRoute` it targets.
pub const GATEWAY_POLICY: &str = "palisade";
/// The `HTTPRoute` the Envoy Gateway example attaches to.
pub const GATEWAY_ROUTE: &str = "backend";

/// What the Envoy example of a plugin says about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The filter's `root_id`.
    pub root_id: String,
    /// The plugin configuration (the JSON `StringValue`, parsed).
    pub config: serde_json::Value,
}

/// Where a module's image is and which manifest digest it must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// `REGISTRY/REPOSITORY:TAG` of the compat image.
    pub image: String,
    /// Its manifest digest.
    pub digest: Digest,
}

/// Reads the root id and plugin configuration of the (first) Wasm filter in
/// an Envoy bootstrap YAML.
pub fn read_example(path: &Path) -> Result<Example, ManifestsError> {
    let text = fs::read_to_string(path).map_err(|source| ManifestsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| ManifestsError::Parse {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
    let no_filter = || ManifestsError::NoWasmFilter(path.to_path_buf());
    let filter = find_wasm_config(&doc).ok_or_else(no_filter)?;
    let root_id = filter
        .get("root_id")
        .and_then(|v| v.as_str())
        .ok_or_else(no_filter)?;
    let value = filter
        .get("configuration")
        .and_then(|c| c.get("value"))
        .and_then(|v| v.as_str())
        .ok_or_else(no_filter)?;
    let config = serde_json::from_str(value).map_err(|e| ManifestsError::Parse {
        path: path.to_path_buf(),
        error: format!("the plugin configuration is not JSON: {e}"),
    })?;
    Ok(Example {
        root_id: root_id.to_string(),
        config,
    })
}

fn find_wasm_config(v: &serde_yaml::Value) -> Option<&serde_yaml::Value> {
    match v {
        serde_yaml::Value::Mapping(m) => {
            if m.contains_key("root_id") && m.contains_key("configuration") {
                return Some(v);
            }
            m.values().find_map(find_wasm_config)
        }
        serde_yaml::Value::Sequence(s) => s.iter().find_map(find_wasm_config),
        _ => None,
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Metadata {
    name: String,
    namespace: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WasmPlugin {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: WasmPluginSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WasmPluginSpec {
    selector: Selector,
    url: String,
    sha256: String,
    image_pull_policy: String,
    phase: String,
    priority: i32,
    fail_strategy: String,
    plugin_name: String,
    plugin_config: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnvoyExtensionPolicy {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: PolicySpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicySpec {
    target_refs: Vec<TargetRef>,
    wasm: Vec<Wasm>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TargetRef {
    group: String,
    kind: String,
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Wasm {
    name: String,
    #[serde(rename = "rootID")]
    root_id: String,
    code: WasmCode,
    config: serde_json::Value,
    fail_open: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WasmCode {
    #[serde(rename = "type")]
    kind: String,
    image: ImageSource,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImageSource {
    url: String,
    sha256: String,
}

fn header(what: &str, regenerate: &str) -> String {
    format!(
        "# {what}\n# Generated by `oci-pack manifests` from envoy-examples/<plugin>.yaml (the plugin\n# configuration real Envoy validates) and the built modules; do not edit by hand.\n# sha256 pins the compat image of the module built when this file was generated:\n# modules embed the git commit they were built from, so every build has its own\n# digest. After pushing your own build, regenerate with your registry and tag:\n#   {regenerate}\n"
    )
}

const REGENERATE: &str =
    "cargo run -p oci-pack -- manifests --image-base REGISTRY/palisade --tag TAG";

fn yaml<T: Serialize>(value: &T) -> String {
    // These plain structs always serialize.
    serde_yaml::to_string(value).unwrap_or_default()
}

/// The Istio `WasmPlugin` for `plugin`.
pub fn wasm_plugin_yaml(plugin: &Plugin, example: &Example, pin: &Pin) -> String {
    let manifest = WasmPlugin {
        api_version: "extensions.istio.io/v1alpha1".to_string(),
        kind: "WasmPlugin".to_string(),
        metadata: Metadata {
            name: format!("palisade-{}", plugin.name),
            namespace: ISTIO_NAMESPACE.to_string(),
        },
        spec: WasmPluginSpec {
            selector: Selector {
                match_labels: BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]),
            },
            url: format!("oci://{}", pin.image),
            sha256: pin.digest.hex(),
            image_pull_policy: "IfNotPresent".to_string(),
            phase: plugin.phase.as_str().to_string(),
            priority: plugin.priority,
            fail_strategy: "FAIL_CLOSE".to_string(),
            plugin_name: example.root_id.clone(),
            plugin_config: istio_clusters(example.config.clone()),
        },
    };
    let what = format!(
        "Palisade {} on the Istio ingress gateway: phase {}, priority {} (chain order jwt-auth → rbac → rate-limit → waf).",
        plugin.name,
        plugin.phase.as_str(),
        plugin.priority
    );
    format!("{}{}", header(&what, REGENERATE), yaml(&manifest))
}

/// Istio names the cluster of an outbound service `outbound|PORT||HOST`, not
/// the short names of the Envoy examples: every object with a `uri` and a
/// `cluster` (jwt-auth's `remote_jwks.http_uri`) gets the Istio name of the
/// URI's host and port (80 for `http`, 443 for `https` by default). The
/// host must be known to the mesh (a Kubernetes service or a ServiceEntry).
pub fn istio_clusters(mut config: serde_json::Value) -> serde_json::Value {
    rename_clusters(&mut config, 0);
    config
}

fn rename_clusters(v: &mut serde_json::Value, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            let istio_name = match (map.get("uri"), map.get("cluster")) {
                (Some(serde_json::Value::String(uri)), Some(serde_json::Value::String(_))) => {
                    outbound_cluster(uri)
                }
                _ => None,
            };
            if let Some(name) = istio_name {
                map.insert("cluster".to_string(), serde_json::Value::String(name));
            }
            for child in map.values_mut() {
                rename_clusters(child, depth + 1);
            }
        }
        serde_json::Value::Array(items) => {
            for child in items {
                rename_clusters(child, depth + 1);
            }
        }
        _ => {}
    }
}

/// `outbound|PORT||HOST` for an `http://` or `https://` URI.
fn outbound_cluster(uri: &str) -> Option<String> {
    let (default_port, rest) = if let Some(rest) = uri.strip_prefix("https://") {
        (443, rest)
    } else {
        (80, uri.strip_prefix("http://")?)
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok()?),
        None => (authority, default_port),
    };
    if host.is_empty() {
        return None;
    }
    Some(format!("outbound|{port}||{host}"))
}

/// The Envoy Gateway `EnvoyExtensionPolicy` running `chain` in order on
/// the `backend` HTTPRoute.
pub fn extension_policy_yaml(chain: &[(Plugin, Example, Pin)]) -> String {
    let manifest = EnvoyExtensionPolicy {
        api_version: "gateway.envoyproxy.io/v1alpha1".to_string(),
        kind: "EnvoyExtensionPolicy".to_string(),
        metadata: Metadata {
            name: GATEWAY_POLICY.to_string(),
            namespace: "default".to_string(),
        },
        spec: PolicySpec {
            target_refs: vec![TargetRef {
                group: "gateway.networking.k8s.io".to_string(),
                kind: "HTTPRoute".to_string(),
                name: GATEWAY_ROUTE.to_string(),
            }],
            wasm: chain
                .iter()
                .map(|(plugin, example, pin)| Wasm {
                    name: format!("palisade.{}", plugin.name),
                    root_id: example.root_id.clone(),
                    code: WasmCode {
                        kind: "Image".to_string(),
                        image: ImageSource {
                            url: pin.image.clone(),
                            sha256: pin.digest.hex(),
                        },
                    },
                    config: example.config.clone(),
                    fail_open: false,
                })
                .collect(),
        },
    };
    let what = "The Palisade chain on Envoy Gateway, in list order, for the HTTPRoute `backend`.";
    format!("{}{}", header(what, REGENERATE), yaml(&manifest))
}

/// Path of the Istio manifest of `plugin` under `examples`.
pub fn istio_path(examples: &Path, plugin: &Plugin) -> PathBuf {
    examples.join("istio").join(format!("{}.yaml", plugin.name))
}

/// Path of the Envoy Gateway policy under `examples`.
pub fn gateway_path(examples: &Path) -> PathBuf {
    examples
        .join("envoy-gateway")
        .join(format!("{GATEWAY_POLICY}.yaml"))
}

/// The plugins of [`CHAIN`] that have an Envoy example, with it.
fn present(examples: &Path) -> Result<Vec<(Plugin, Example)>, ManifestsError> {
    CHAIN
        .iter()
        .filter(|p| examples.join(format!("{}.yaml", p.name)).exists())
        .map(|p| {
            Ok((
                *p,
                read_example(&examples.join(format!("{}.yaml", p.name)))?,
            ))
        })
        .collect()
}

fn render(chain: &[(Plugin, Example, Pin)], examples: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = chain
        .iter()
        .map(|(p, e, pin)| (istio_path(examples, p), wasm_plugin_yaml(p, e, pin)))
        .collect();
    files.push((gateway_path(examples), extension_policy_yaml(chain)));
    files
}

/// The manifests for the modules in `modules` (`<name>.wasm`), pushed as
/// `<image_base>/<name>:<tag>`: paths and contents.
pub fn generate(
    examples: &Path,
    modules: &Path,
    image_base: &str,
    tag: &str,
) -> Result<Vec<(PathBuf, String)>, ManifestsError> {
    let mut chain = Vec::new();
    for (plugin, example) in present(examples)? {
        let path = modules.join(format!("{}.wasm", plugin.name));
        let wasm = fs::read(&path).map_err(|source| ManifestsError::Module { path, source })?;
        let image = Image::build(
            Variant::Compat,
            &wasm,
            std::slice::from_ref(&example.root_id),
        )
        .map_err(ManifestsError::Image)?;
        let pin = Pin {
            image: format!(
                "{}/{}:{}",
                image_base.trim_end_matches('/'),
                plugin.name,
                tag
            ),
            digest: image.digest(),
        };
        chain.push((plugin, example, pin));
    }
    Ok(render(&chain, examples))
}

/// Writes generated files, creating their folders.
pub fn write(files: &[(PathBuf, String)]) -> Result<(), ManifestsError> {
    for (path, text) in files {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| ManifestsError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        fs::write(path, text).map_err(|source| ManifestsError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Checks that the committed manifests are what `generate` writes for the
/// current Envoy examples and chain, keeping the image and digest each
/// `WasmPlugin` pins (those change with every build; the registry test
/// checks that the tool computes them right). Returns the files checked.
pub fn check(examples: &Path) -> Result<Vec<PathBuf>, ManifestsError> {
    let mut chain = Vec::new();
    for (plugin, example) in present(examples)? {
        let path = istio_path(examples, &plugin);
        let text = fs::read_to_string(&path).map_err(|source| ManifestsError::OutOfDate {
            path: path.clone(),
            why: format!("cannot read it ({source})"),
        })?;
        let existing: WasmPlugin =
            serde_yaml::from_str(&text).map_err(|e| ManifestsError::OutOfDate {
                path: path.clone(),
                why: format!("it is not the generated shape ({e})"),
            })?;
        let image = existing
            .spec
            .url
            .strip_prefix("oci://")
            .ok_or_else(|| ManifestsError::OutOfDate {
                path: path.clone(),
                why: "its url does not start with oci://".to_string(),
            })?
            .to_string();
        let digest =
            Digest::from_hex(&existing.spec.sha256).map_err(|e| ManifestsError::OutOfDate {
                path: path.clone(),
                why: e.to_string(),
            })?;
        chain.push((plugin, example, Pin { image, digest }));
    }
    let files = render(&chain, examples);
    for (path, want) in &files {
        let have = fs::read_to_string(path).unwrap_or_default();
        if have != *want {
            return Err(ManifestsError::OutOfDate {
                path: path.clone(),
                why: "it differs from what the Envoy examples and the chain give".to_string(),
            });
        }
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// Why manifests could not be generated or checked.
#[derive(Debug)]
pub enum ManifestsError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A file is not the YAML or JSON expected.
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        error: String,
    },
    /// The Envoy example has no Wasm filter with `root_id` and a
    /// `configuration` value.
    NoWasmFilter(PathBuf),
    /// The module of a plugin with an example is missing.
    Module {
        /// The expected module.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A module could not be packed.
    Image(ImageError),
    /// A committed manifest is not what the generator writes.
    OutOfDate {
        /// The file.
        path: PathBuf,
        /// How it differs.
        why: String,
    },
}

impl fmt::Display for ManifestsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestsError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ManifestsError::Parse { path, error } => write!(f, "{}: {error}", path.display()),
            ManifestsError::NoWasmFilter(path) => write!(
                f,
                "{}: no Wasm filter with root_id and configuration.value found; the manifests take the plugin configuration from there",
                path.display()
            ),
            ManifestsError::Module { path, source } => write!(
                f,
                "{}: {source}; build the modules first (scripts/build)",
                path.display()
            ),
            ManifestsError::Image(e) => e.fmt(f),
            ManifestsError::OutOfDate { path, why } => write!(
                f,
                "{} is out of date: {why}; regenerate with `{REGENERATE}` (after scripts/build)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ManifestsError {}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
static_resources:
  listeners:
    - filter_chains:
        - filters:
            - typed_config:
                http_filters:
                  - name: palisade.rbac
                    typed_config:
                      config:
                        root_id: rbac
                        configuration:
                          "@type": type.googleapis.com/google.protobuf.StringValue
                          value: |
                            { "policies": [ { "name": "p", "action": "ALLOW" } ] }
"#;

    fn module(payload: &[u8]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(payload);
        m
    }

    fn setup(dir: &Path) {
        fs::write(dir.join("rbac.yaml"), EXAMPLE).unwrap();
        fs::write(
            dir.join("rate-limit.yaml"),
            EXAMPLE.replace("root_id: rbac", "root_id: rate-limit"),
        )
        .unwrap();
        fs::create_dir_all(dir.join("modules")).unwrap();
        fs::write(dir.join("modules/rbac.wasm"), module(b"rbac")).unwrap();
        fs::write(dir.join("modules/rate-limit.wasm"), module(b"rl")).unwrap();
    }

    #[test]
    fn reads_root_id_and_config_from_an_envoy_example() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("rbac.yaml"), EXAMPLE).unwrap();
        let example = read_example(&dir.path().join("rbac.yaml")).unwrap();
        assert_eq!(example.root_id, "rbac");
        assert_eq!(example.config["policies"][0]["action"], "ALLOW");
        fs::write(dir.path().join("plain.yaml"), "admin: {}\n").unwrap();
        let err = read_example(&dir.path().join("plain.yaml")).unwrap_err();
        assert!(matches!(err, ManifestsError::NoWasmFilter(_)), "{err}");
    }

    #[test]
    fn chain_order_is_jwt_rbac_rate_limit_waf_in_istio_terms() {
        // Istio runs AUTHN, then AUTHZ, then STATS; within a phase the higher
        // priority first.
        let rank = |p: &Plugin| {
            let phase = match p.phase {
                Phase::Authn => 0,
                Phase::Authz => 1,
                Phase::Stats => 2,
            };
            (phase, -p.priority)
        };
        let mut sorted = CHAIN;
        sorted.sort_by_key(rank);
        let names: Vec<&str> = sorted.iter().map(|p| p.name).collect();
        assert_eq!(names, ["jwt-auth", "rbac", "rate-limit", "waf"]);
    }

    #[test]
    fn generated_manifests_pin_the_compat_digest_and_pass_the_check() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let files = generate(
            dir.path(),
            &dir.path().join("modules"),
            "registry.example.com/palisade/",
            "0.1.0",
        )
        .unwrap();
        assert_eq!(files.len(), 3);
        write(&files).unwrap();
        let rbac = fs::read_to_string(dir.path().join("istio/rbac.yaml")).unwrap();
        let digest = Image::build(Variant::Compat, &module(b"rbac"), &[])
            .unwrap()
            .digest();
        assert!(
            rbac.contains(&format!("sha256: {}", digest.hex())),
            "{rbac}"
        );
        assert!(
            rbac.contains("url: oci://registry.example.com/palisade/rbac:0.1.0"),
            "{rbac}"
        );
        assert!(
            rbac.contains("phase: AUTHZ") && rbac.contains("pluginName: rbac"),
            "{rbac}"
        );
        let policy = fs::read_to_string(gateway_path(dir.path())).unwrap();
        let rbac_at = policy.find("palisade.rbac").unwrap();
        let rl_at = policy.find("palisade.rate-limit").unwrap();
        assert!(rbac_at < rl_at, "{policy}");
        assert_eq!(check(dir.path()).unwrap().len(), 3);
    }

    #[test]
    fn check_reports_a_manifest_that_no_longer_matches_its_example() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        write(&generate(dir.path(), &dir.path().join("modules"), "r.example/p", "1").unwrap())
            .unwrap();
        fs::write(
            dir.path().join("rbac.yaml"),
            EXAMPLE.replace("ALLOW", "DENY"),
        )
        .unwrap();
        let err = check(dir.path()).unwrap_err();
        assert!(matches!(err, ManifestsError::OutOfDate { .. }), "{err}");
        assert!(err.to_string().contains("oci-pack -- manifests"), "{err}");
    }

    #[test]
    fn istio_manifests_name_clusters_the_istio_way() {
        let config = serde_json::json!({ "providers": { "idp": { "remote_jwks": {
            "http_uri": { "uri": "https://idp.example/jwks", "cluster": "idp" } } } },
            "other": [ { "uri": "http://keys.example:8081/k", "cluster": "k" } ],
            "left": { "cluster": "no-uri" } });
        let istio = istio_clusters(config);
        assert_eq!(
            istio["providers"]["idp"]["remote_jwks"]["http_uri"]["cluster"],
            "outbound|443||idp.example"
        );
        assert_eq!(istio["other"][0]["cluster"], "outbound|8081||keys.example");
        assert_eq!(istio["left"]["cluster"], "no-uri");
    }

    #[test]
    fn a_missing_module_names_scripts_build() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        fs::remove_file(dir.path().join("modules/rbac.wasm")).unwrap();
        let err = generate(dir.path(), &dir.path().join("modules"), "r/p", "1").unwrap_err();
        assert!(err.to_string().contains("scripts/build"), "{err}");
    }

    #[test]
    fn the_committed_manifests_are_up_to_date() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples");
        let checked = check(&examples).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            checked.iter().any(|p| p.ends_with("istio/rbac.yaml")),
            "{checked:?}"
        );
    }
}
