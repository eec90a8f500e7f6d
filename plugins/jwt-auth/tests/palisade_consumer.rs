//! The `palisade-consumer` command: its entries are valid configuration
//! that authenticates with the secret it was given, the secret never
//! appears on standard output, and bad input is refused.

use base64::Engine;
use jwt_auth::{Decision, JwtAuth};
use sdk_ext::{Headers, RequestView};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade-consumer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("palisade-consumer starts");
    if let Some(mut s) = child.stdin.take() {
        // A command that refuses its arguments exits without reading:
        // a broken pipe here is expected then.
        let _ = s.write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap()
}

fn allows(consumers: Value, header: (&str, &str)) -> bool {
    let auth = JwtAuth::from_json(&serde_json::to_vec(&json!({"consumers": consumers})).unwrap())
        .expect("the printed entry is a valid configuration");
    let req = RequestView {
        method: "GET".into(),
        path: "/".into(),
        headers: Headers::from(vec![(header.0.into(), header.1.into())]),
        ..Default::default()
    };
    matches!(
        auth.decide(&req, &auth.initial_keys(), &mut auth.new_cache(), 0),
        Decision::Allow { .. }
    )
}

#[test]
fn basic_entry_authenticates_with_the_password_from_stdin() {
    let out = run(
        &[
            "basic",
            "alice",
            "--group",
            "admin",
            "--attr",
            "tenant=acme",
            "--memory-kib",
            "7168",
        ],
        "s3cret-Pw\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("s3cret-Pw"));
    let entry: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(entry["alice"]["groups"], json!(["admin"]));
    assert_eq!(entry["alice"]["attributes"]["tenant"], "acme");
    let hash = entry["alice"]["basic_auth"]["password_hash"]
        .as_str()
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=7168,t=2,p=1$"), "{hash}");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good = format!("Basic {}", b64("alice:s3cret-Pw"));
    let bad = format!("Basic {}", b64("alice:s3cret-Pw\n"));
    assert!(allows(entry.clone(), ("authorization", &good)));
    assert!(!allows(entry, ("authorization", &bad)));
}

#[test]
fn apikey_entry_holds_only_the_digest_of_the_generated_key() {
    let out = run(&["apikey", "bot", "--group", "billing"], "");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let key = stderr.trim().rsplit(' ').next().unwrap().to_string();
    assert!(key.len() >= 43, "256 random bits: {key}");
    assert!(!stdout.contains(&key));
    let entry: Value = serde_json::from_str(&stdout).unwrap();
    assert!(allows(entry.clone(), ("x-api-key", &key)));
    assert!(!allows(entry, ("x-api-key", "another")));
    // The digest of a given key (rotation) matches what the plugin computes.
    let out = run(&["apikey-hash", "bot"], &format!("{key}\n"));
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(allows(again, ("x-api-key", &key)));
}

#[test]
fn refuses_bad_input() {
    for (args, stdin) in [
        (vec!["basic", "bad name"], "pw\n"),
        (vec!["basic", "alice"], ""),
        (vec!["basic", "alice", "--memory-kib", "64"], "pw\n"),
        (vec!["basic", "alice", "--attr", "groups=x"], "pw\n"),
        (vec!["nonsense", "alice"], ""),
    ] {
        let out = run(&args, stdin);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(out.stdout.is_empty(), "{args:?} printed an entry");
    }
}
