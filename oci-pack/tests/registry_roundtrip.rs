//! Push both image shapes to Debian's `docker-registry` on loopback, pull
//! them back with `skopeo` (an independent client), and compare the
//! manifest digests and the Wasm bytes.
//!
//! Needs `docker-registry` and `skopeo` on PATH: `scripts/install-test-deps`.

use oci_pack::digest::Digest;
use oci_pack::image::{extract_wasm, Image, Variant};
use oci_pack::layout::Layout;
use oci_pack::registry::{Client, Reference};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn require(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not on PATH; the registry round trip needs docker-registry and skopeo: run scripts/install-test-deps (apt-get install docker-registry skopeo)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry` with its own config and storage, stopped by PID on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let binary = require("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: oci-pack-test\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry {
            child,
            port,
            _dir: dir,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://127.0.0.1:{}/v2/", self.port);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited with {status}: {}", self.log());
            }
            if let Ok(r) = ureq::get(&url).call() {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry did not answer on {url}: {}", self.log());
    }

    fn log(&self) -> String {
        fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default()
    }

    fn reference(&self, repository: &str, tag: &str) -> Reference {
        format!("127.0.0.1:{}/{repository}:{tag}", self.port)
            .parse()
            .unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A module-shaped input of some size, different per `seed`.
fn module(seed: u8, len: usize) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        m.push(x as u8);
    }
    m
}

struct Skopeo {
    binary: PathBuf,
    policy: PathBuf,
    _dir: tempfile::TempDir,
}

impl Skopeo {
    fn new() -> Skopeo {
        let binary = require("skopeo");
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.json");
        fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        Skopeo {
            binary,
            policy,
            _dir: dir,
        }
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new(&self.binary)
            .arg("--policy")
            .arg(&self.policy)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The raw manifest bytes the registry serves.
    fn raw_manifest(&self, reference: &Reference) -> Vec<u8> {
        self.run(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
    }

    /// The digest skopeo computes for the manifest the registry serves
    /// (`skopeo manifest-digest`; `skopeo inspect` without `--raw` refuses
    /// the oci variant as a non-image artifact).
    fn digest(&self, reference: &Reference) -> Digest {
        let file = self._dir.path().join(format!("{}.json", reference.tag));
        fs::write(&file, self.raw_manifest(reference)).unwrap();
        let out = self.run(&["manifest-digest", &file.display().to_string()]);
        String::from_utf8(out).unwrap().trim().parse().unwrap()
    }

    /// Copies the image into an OCI layout under `dir`, named `name`.
    fn pull(&self, reference: &Reference, dir: &Path, name: &str) {
        self.run(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
            &format!("oci:{}:{name}", dir.display()),
        ]);
    }
}

#[test]
fn both_shapes_round_trip_through_a_real_registry_and_skopeo() {
    let registry = Registry::start();
    let skopeo = Skopeo::new();
    let wasm = module(1, 300_000);
    let pulled = tempfile::tempdir().unwrap();
    for variant in Variant::ALL {
        let image = Image::build(variant, &wasm, &["rbac".to_string()]).unwrap();
        let reference = registry.reference("palisade/rbac", &variant.tag("0.1.0"));
        let client = Client::new(&reference).unwrap();
        let pushed = client.push(&reference, &image).unwrap();
        assert_eq!(pushed, image.digest(), "{variant}");
        // Pushing again is idempotent (blobs are found by HEAD).
        assert_eq!(client.push(&reference, &image).unwrap(), pushed);

        let raw = skopeo.raw_manifest(&reference);
        assert_eq!(raw, image.manifest.bytes, "{variant}: manifest bytes");
        assert_eq!(Digest::of(&raw), pushed, "{variant}");
        assert_eq!(
            skopeo.digest(&reference),
            pushed,
            "{variant}: skopeo's digest"
        );

        skopeo.pull(&reference, pulled.path(), variant.name());
        let layout = Layout::open(pulled.path()).unwrap();
        let (digest, manifest) = layout.manifest(Some(variant.name())).unwrap();
        assert_eq!(digest, pushed, "{variant}: digest of the pulled manifest");
        let (got_variant, got) = extract_wasm(&manifest, |d| {
            layout.read_blob(d).map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(got_variant, variant);
        assert!(got == wasm, "{variant}: the pulled module differs");
    }
}

#[test]
fn the_cli_pushes_both_tags_and_prints_the_digests() {
    let registry = Registry::start();
    let skopeo = Skopeo::new();
    let dir = tempfile::tempdir().unwrap();
    let wasm_path = dir.path().join("plugin.wasm");
    let wasm = module(2, 50_000);
    fs::write(&wasm_path, &wasm).unwrap();
    let reference = registry.reference("palisade/rate-limit", "1.0.0");
    let out = Command::new(env!("CARGO_BIN_EXE_oci-pack"))
        .args(["push", "--wasm"])
        .arg(&wasm_path)
        .args([
            "--image",
            &reference.to_string(),
            "--root-id",
            "rate-limit",
            "--layout",
        ])
        .arg(dir.path().join("layout"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, variant) in lines.iter().zip(Variant::ALL) {
        let fields: Vec<&str> = line.split(' ').collect();
        let tagged = reference.with_tag(&variant.tag("1.0.0"));
        assert_eq!(fields[..2], [variant.name(), &tagged.to_string()], "{line}");
        let printed: Digest = fields[2].parse().unwrap();
        assert_eq!(printed, skopeo.digest(&tagged), "{line}");
        let layout = Layout::open(&dir.path().join("layout")).unwrap();
        assert_eq!(layout.manifest(Some(&tagged.tag)).unwrap().0, printed);
    }
}

/// The manifests pin, per plugin, the digest the registry then serves for
/// the pushed module: generated from the built modules, pushed with the
/// command line, read back by skopeo. (The committed manifests pin the
/// build they were generated from; modules embed their git commit, so
/// only a generation-time pin can be right, and this is what checks it.)
#[test]
fn generated_manifests_pin_what_the_registry_serves_for_the_built_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let examples = root.join("envoy-examples");
    // A private copy, so a concurrent scripts/build cannot change a module
    // between generating and pushing.
    let modules = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for plugin in oci_pack::manifests::CHAIN {
        if !examples.join(format!("{}.yaml", plugin.name)).exists() {
            continue;
        }
        let built = root.join(format!("target/plugins/{}.wasm", plugin.name));
        let bytes = fs::read(&built).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build the modules first (scripts/build)",
                built.display()
            )
        });
        fs::write(modules.path().join(format!("{}.wasm", plugin.name)), bytes).unwrap();
        copied += 1;
    }
    assert!(copied >= 3, "jwt-auth, rbac and rate-limit at least");

    let registry = Registry::start();
    let skopeo = Skopeo::new();
    let base = format!("127.0.0.1:{}/palisade", registry.port);
    let files =
        oci_pack::manifests::generate(&examples, modules.path(), &base, "pin-test").unwrap();
    let mut pinned = 0;
    for (path, text) in &files {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        if doc["kind"] != "WasmPlugin" {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap();
        let image = doc["spec"]["url"]
            .as_str()
            .unwrap()
            .strip_prefix("oci://")
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_oci-pack"))
            .args(["push", "--variant", "compat", "--wasm"])
            .arg(modules.path().join(format!("{name}.wasm")))
            .args(["--image", image])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let served = skopeo.digest(&image.parse().unwrap());
        assert_eq!(
            doc["spec"]["sha256"].as_str(),
            Some(served.hex().as_str()),
            "{name}: the WasmPlugin pins another digest than the registry serves"
        );
        // The Envoy Gateway policy pins the same image and digest.
        let (_, policy) = files.last().unwrap();
        assert!(
            policy.contains(&format!("url: {image}\n        sha256: {}", served.hex())),
            "{name}: {policy}"
        );
        pinned += 1;
    }
    assert_eq!(pinned, copied);
}
