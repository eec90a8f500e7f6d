//! `palisade-consumer`: prints the jwt-auth configuration entry of a new
//! consumer, so no plaintext secret is ever pasted into a configuration.
//!
//! ```text
//! palisade-consumer basic  NAME [--group G]... [--attr KEY=VALUE]... [--memory-kib M] [--passes T]  < password
//! palisade-consumer apikey NAME [--group G]... [--attr KEY=VALUE]...
//! palisade-consumer apikey-hash NAME [...]                             < existing key
//! ```
//!
//! `basic` reads the password from standard input (first line; never from
//! the command line, where other users and shell history could see it) and
//! prints an Argon2id hash with a random salt, at OWASP's first Argon2id
//! setting unless `--memory-kib` / `--passes` say otherwise (within the
//! bounds the plugin accepts). `apikey` generates a random
//! 256-bit key, prints the entry (the key's SHA-256 digest) on standard
//! output and the key itself once on standard error, for the client.
//! `apikey-hash` prints the digest of a key read from standard input (for a
//! second, rotated key: add its digest next to the first in `api_keys`).

use base64::Engine;
use jwt_auth::apikey;
use jwt_auth::password::{Cost, PasswordHash, DEFAULT_COST};
use serde_json::{json, Map, Value};
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;

const USAGE: &str = "usage:
  palisade-consumer basic NAME [--group G]... [--attr KEY=VALUE]... [--memory-kib M] [--passes T]
                                                                           (password on stdin)
  palisade-consumer apikey NAME [--group G]... [--attr KEY=VALUE]...       (generates a key)
  palisade-consumer apikey-hash NAME [--group G]... [--attr KEY=VALUE]...  (key on stdin)";

/// Most bytes read from standard input.
const MAX_SECRET_BYTES: usize = 4096;

struct Args {
    mode: String,
    name: String,
    groups: Vec<String>,
    attributes: Map<String, Value>,
    cost: Cost,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mode = args.next().ok_or("missing mode")?;
    if !["basic", "apikey", "apikey-hash"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?}"));
    }
    let name = args.next().ok_or("missing consumer name")?;
    sdk_ext::config::check_name(&name, "consumer name", 64)?;
    let mut groups = Vec::new();
    let mut attributes = Map::new();
    let mut cost = DEFAULT_COST;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u32>()
                .map_err(|_| format!("{flag} {value:?}: not a number"))
        };
        match flag.as_str() {
            "--memory-kib" => cost.memory_kib = number()?,
            "--passes" => cost.passes = number()?,
            "--group" => groups.push(value),
            "--attr" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or(format!("--attr {value:?}: write KEY=VALUE"))?;
                if k == "sub" || k == "groups" || k.is_empty() {
                    return Err(format!(
                        "--attr {k:?}: not an attribute name (use --group for groups)"
                    ));
                }
                attributes.insert(k.to_string(), Value::String(v.to_string()));
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(Args {
        mode,
        name,
        groups,
        attributes,
        cost,
    })
}

/// The first line of standard input, without its line ending.
fn read_secret() -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_SECRET_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    if line.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "the secret is longer than {MAX_SECRET_BYTES} bytes"
        ));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    if line.is_empty() {
        return Err("standard input is empty: pipe the secret in".into());
    }
    Ok(line)
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(bytes)
}

fn run(args: Args) -> Result<(Value, Option<String>), String> {
    let mut entry = Map::new();
    if !args.groups.is_empty() {
        entry.insert("groups".into(), json!(args.groups));
    }
    if !args.attributes.is_empty() {
        entry.insert("attributes".into(), Value::Object(args.attributes));
    }
    let mut key_for_client = None;
    match args.mode.as_str() {
        "basic" => {
            let password = read_secret()?;
            let salt = random::<16>()?;
            let hash =
                PasswordHash::create(&password, &salt, args.cost).map_err(|e| e.to_string())?;
            entry.insert(
                "basic_auth".into(),
                json!({"password_hash": hash.to_phc_string()}),
            );
        }
        "apikey" => {
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>()?);
            entry.insert(
                "api_keys".into(),
                json!([apikey::digest(&key).to_config_string()]),
            );
            key_for_client = Some(key);
        }
        _ => {
            let key = String::from_utf8(read_secret()?)
                .map_err(|_| "the key is not UTF-8".to_string())?;
            entry.insert(
                "api_keys".into(),
                json!([apikey::digest(key.trim()).to_config_string()]),
            );
        }
    }
    let mut out = Map::new();
    out.insert(args.name, Value::Object(entry));
    Ok((Value::Object(out), key_for_client))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("palisade-consumer: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok((entry, key)) => {
            let text = serde_json::to_string_pretty(&entry).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{text}").is_err() {
                return ExitCode::FAILURE;
            }
            if let Some(k) = key {
                eprintln!("API key for the client (shown once, not stored anywhere): {k}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade-consumer: {e}");
            ExitCode::FAILURE
        }
    }
}
