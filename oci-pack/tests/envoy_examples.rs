//! Every shipped Envoy example passes `envoy --mode validate` (Envoy 1.40,
//! the modules from `scripts/build`), and `chain.yaml` is the zero-trust
//! chain in the order the Istio and Envoy Gateway manifests use, on an
//! mTLS listener.

use host_test_harness::envoy::{validate, workspace_root, EnvoyOptions, Substitutions};
use std::fs;
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    workspace_root().unwrap().join("envoy-examples")
}

/// A self-signed server certificate and key, also used as the trusted CA,
/// standing in for the `certs/` files chain.yaml names.
fn certificates(dir: &Path) -> Substitutions {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    fs::write(&cert_path, cert.pem()).unwrap();
    fs::write(&key_path, key.serialize_pem()).unwrap();
    Substitutions::new(workspace_root().unwrap())
        .file("certs/server/cert.pem", &cert_path)
        .file("certs/server/key.pem", &key_path)
        .file("certs/server/ca.pem", &cert_path)
}

#[test]
fn every_envoy_example_passes_envoy_validate() {
    let dir = tempfile::tempdir().unwrap();
    let subs = certificates(dir.path());
    let mut files: Vec<PathBuf> = fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.iter().any(|f| f.ends_with("chain.yaml")), "{files:?}");
    // One `envoy --mode validate` per file, side by side (each compiles its
    // modules, which takes seconds).
    let refused: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = files
            .iter()
            .map(|file| {
                let subs = &subs;
                scope.spawn(move || {
                    let config = subs.apply_file(file).unwrap();
                    validate(&config, &EnvoyOptions::default())
                        .err()
                        .map(|e| format!("{}: {e}", file.display()))
                })
            })
            .collect();
        runs.into_iter()
            .filter_map(|run| run.join().unwrap())
            .collect()
    });
    assert!(
        refused.is_empty(),
        "envoy --mode validate refused:\n{}",
        refused.join("\n")
    );
}

#[test]
fn the_chain_runs_the_plugins_in_manifest_order_behind_mtls() {
    let text = fs::read_to_string(examples().join("chain.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let chain = &doc["static_resources"]["listeners"][0]["filter_chains"][0];
    let tls = &chain["transport_socket"]["typed_config"];
    assert_eq!(tls["require_client_certificate"], true, "{tls:?}");
    let hcm = &chain["filters"][0]["typed_config"];
    let filters: Vec<&str> = hcm["http_filters"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let mut want: Vec<String> = oci_pack::manifests::CHAIN
        .iter()
        .map(|p| format!("palisade.{}", p.name.replace('-', "_")))
        .collect();
    want.push("envoy.filters.http.router".to_string());
    assert_eq!(filters, want);
    // Every plugin fails closed.
    for f in hcm["http_filters"].as_sequence().unwrap() {
        if f["name"].as_str().unwrap().starts_with("palisade.") {
            assert_eq!(f["typed_config"]["config"]["fail_open"], false, "{f:?}");
        }
    }
}
