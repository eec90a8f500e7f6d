//! Checks the shipped Istio and Envoy Gateway manifests against the
//! published CRD schemas (`crd-validate.mjs`, with the schema packages that
//! `scripts/install-test-deps` puts in `target/crd-schemas`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schemas_dir() -> PathBuf {
    let dir = std::env::var_os("PALISADE_CRD_SCHEMAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/crd-schemas"));
    for package in ["istio", "envoy-gateway"] {
        let path = dir.join("node_modules/@kubernetes-models").join(package);
        assert!(
            path.is_dir(),
            "{} is missing: the CRD schema check needs node and the npm packages @kubernetes-models/istio and @kubernetes-models/envoy-gateway; run scripts/install-test-deps",
            path.display()
        );
    }
    dir.canonicalize().unwrap()
}

/// Every YAML document of the files under `envoy-examples/<folder>/`.
fn documents(folder: &str) -> Vec<serde_json::Value> {
    let dir = workspace().join("envoy-examples").join(folder);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = <serde_json::Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let name = format!(
                "envoy-examples/{folder}/{}",
                file.file_name().unwrap().to_string_lossy()
            );
            docs.push(serde_json::json!({ "file": name, "doc": value }));
        }
    }
    docs
}

fn validate(docs: &[serde_json::Value]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crd-validate.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .arg(schemas_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`node` is needed for the CRD schema check; run scripts/install-test-deps");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(docs).unwrap())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn shipped_manifests_match_the_published_crd_schemas() {
    let mut docs = documents("istio");
    docs.extend(documents("envoy-gateway"));
    let kinds: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["doc"]["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"WasmPlugin") && kinds.contains(&"EnvoyExtensionPolicy"),
        "{kinds:?}"
    );
    let out = validate(&docs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        docs.len(),
        "{stdout}"
    );
}

#[test]
fn the_schema_check_refuses_bad_values_and_unknown_fields() {
    let mut docs = documents("istio");
    docs.truncate(1);
    let mut bad_phase = docs[0].clone();
    bad_phase["doc"]["spec"]["phase"] = "EARLY".into();
    let mut misspelt = docs[0].clone();
    misspelt["doc"]["spec"]["pluginNmae"] = "rbac".into();
    let mut policy = documents("envoy-gateway");
    policy.truncate(1);
    policy[0]["doc"]["spec"]["wasm"][0]["code"]["type"] = "Git".into();
    let out = validate(&[bad_phase, misspelt, policy.remove(0)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].contains("phase"), "{stdout}");
    assert!(lines[1].contains("/spec/pluginNmae"), "{stdout}");
    assert!(lines[2].contains("type"), "{stdout}");
}
