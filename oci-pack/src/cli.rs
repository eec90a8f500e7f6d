//! The `oci-pack` command line: parsing and running the subcommands.

use crate::image::{extract_wasm, Image, ImageError, Variant};
use crate::layout::{Layout, LayoutError};
use crate::manifests::{self, ManifestsError};
use crate::registry::{Client, Reference, RegistryError};
use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;

/// Usage text, printed for `--help` and on a usage error.
pub const USAGE: &str = "\
oci-pack: Proxy-Wasm modules as the OCI images Istio and Envoy Gateway fetch

usage:
  oci-pack pack --wasm FILE --layout DIR --tag TAG [--root-id ID]
      write both image shapes into an OCI image layout: TAG is the compat
      image (one tar+gzip layer holding plugin.wasm), TAG-oci the Wasm image
      spec oci variant; prints `<variant> <ref> <manifest digest>`
  oci-pack push --wasm FILE --image HOST:PORT/REPOSITORY:TAG [--root-id ID]
                [--variant compat|oci] [--layout DIR]
      push both shapes (or one) to a loopback registry over the distribution
      API: compat as TAG, oci as TAG-oci; prints `<variant> <image> <digest>`
  oci-pack digest --wasm FILE [--variant compat|oci] [--root-id ID]
      print the manifest digest an image would have, without pushing
  oci-pack extract --layout DIR [--ref NAME] --out FILE
      read the module back out of a layout by Istio's fetcher rules
  oci-pack manifests [--image-base REGISTRY/PATH] [--tag TAG]
                     [--examples DIR] [--modules DIR] [--check]
      write envoy-examples/istio/<plugin>.yaml (WasmPlugin) and
      envoy-examples/envoy-gateway/palisade.yaml (EnvoyExtensionPolicy),
      pinned to the compat image digests of target/plugins/*.wasm;
      --check verifies the committed ones instead
";

/// Default registry path in generated manifests.
pub const DEFAULT_IMAGE_BASE: &str = "registry.example.com/palisade";

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// Wrong arguments; the message says which.
    Usage(String),
    /// An input file could not be read or the output written.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Packing or reading an image failed.
    Image(ImageError),
    /// Writing or reading the layout failed.
    Layout(LayoutError),
    /// Pushing failed.
    Registry(RegistryError),
    /// Generating or checking manifests failed.
    Manifests(ManifestsError),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(why) => write!(f, "{why} (oci-pack --help shows the usage)"),
            CliError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CliError::Image(e) => e.fmt(f),
            CliError::Layout(e) => e.fmt(f),
            CliError::Registry(e) => e.fmt(f),
            CliError::Manifests(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CliError {}

impl From<ImageError> for CliError {
    fn from(e: ImageError) -> CliError {
        CliError::Image(e)
    }
}

impl From<LayoutError> for CliError {
    fn from(e: LayoutError) -> CliError {
        CliError::Layout(e)
    }
}

impl From<RegistryError> for CliError {
    fn from(e: RegistryError) -> CliError {
        CliError::Registry(e)
    }
}

impl From<ManifestsError> for CliError {
    fn from(e: ManifestsError) -> CliError {
        CliError::Manifests(e)
    }
}

/// Parsed `--name value` options and `--flag`s of one subcommand.
struct Options {
    values: Vec<(String, String)>,
    flags: Vec<String>,
}

impl Options {
    fn parse(args: &[String], valued: &[&str], flags: &[&str]) -> Result<Options, CliError> {
        let mut out = Options {
            values: Vec::new(),
            flags: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let name = arg.as_str();
            if valued.contains(&name) {
                let value = it
                    .next()
                    .ok_or_else(|| CliError::Usage(format!("{name} needs a value")))?;
                out.values.push((name.to_string(), value.clone()));
            } else if flags.contains(&name) {
                out.flags.push(name.to_string());
            } else {
                return Err(CliError::Usage(format!("unknown argument {name:?}")));
            }
        }
        Ok(out)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, CliError> {
        self.get(name)
            .ok_or_else(|| CliError::Usage(format!("{name} is required")))
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    fn variants(&self) -> Result<Vec<Variant>, CliError> {
        match self.get("--variant") {
            Some(v) => Ok(vec![v.parse()?]),
            None => Ok(Variant::ALL.to_vec()),
        }
    }

    fn root_ids(&self) -> Vec<String> {
        self.get("--root-id")
            .map(str::to_string)
            .into_iter()
            .collect()
    }

    fn wasm(&self) -> Result<Vec<u8>, CliError> {
        let path = PathBuf::from(self.required("--wasm")?);
        fs::read(&path).map_err(|source| CliError::Io { path, source })
    }
}

/// Runs the command line `args` (without the program name) and returns
/// what to print on standard output.
pub fn run(args: &[String]) -> Result<String, CliError> {
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => return Err(CliError::Usage("no subcommand".to_string())),
    };
    match command {
        "-h" | "--help" | "help" => Ok(USAGE.to_string()),
        "pack" => pack(&Options::parse(
            rest,
            &["--wasm", "--layout", "--tag", "--root-id"],
            &[],
        )?),
        "push" => push(&Options::parse(
            rest,
            &["--wasm", "--image", "--root-id", "--variant", "--layout"],
            &[],
        )?),
        "digest" => digest(&Options::parse(
            rest,
            &["--wasm", "--variant", "--root-id"],
            &[],
        )?),
        "extract" => extract(&Options::parse(rest, &["--layout", "--ref", "--out"], &[])?),
        "manifests" => manifests_command(&Options::parse(
            rest,
            &["--image-base", "--tag", "--examples", "--modules"],
            &["--check"],
        )?),
        other => Err(CliError::Usage(format!("unknown subcommand {other:?}"))),
    }
}

fn pack(o: &Options) -> Result<String, CliError> {
    let wasm = o.wasm()?;
    let tag = o.required("--tag")?;
    let layout = Layout::create(&PathBuf::from(o.required("--layout")?))?;
    let mut out = String::new();
    for variant in Variant::ALL {
        let image = Image::build(variant, &wasm, &o.root_ids())?;
        let name = variant.tag(tag);
        layout.add(&image, &name)?;
        out.push_str(&format!("{variant} {name} {}\n", image.digest()));
    }
    Ok(out)
}

fn push(o: &Options) -> Result<String, CliError> {
    let wasm = o.wasm()?;
    let reference: Reference = o.required("--image")?.parse()?;
    let client = Client::new(&reference)?;
    let layout = match o.get("--layout") {
        Some(dir) => Some(Layout::create(&PathBuf::from(dir))?),
        None => None,
    };
    let mut out = String::new();
    for variant in o.variants()? {
        let image = Image::build(variant, &wasm, &o.root_ids())?;
        let target = reference.with_tag(&variant.tag(&reference.tag));
        if let Some(layout) = &layout {
            layout.add(&image, &target.tag)?;
        }
        let digest = client.push(&target, &image)?;
        out.push_str(&format!("{variant} {target} {digest}\n"));
    }
    Ok(out)
}

fn digest(o: &Options) -> Result<String, CliError> {
    let wasm = o.wasm()?;
    let mut out = String::new();
    for variant in o.variants()? {
        let image = Image::build(variant, &wasm, &o.root_ids())?;
        out.push_str(&format!("{variant} {}\n", image.digest()));
    }
    Ok(out)
}

fn extract(o: &Options) -> Result<String, CliError> {
    let layout = Layout::open(&PathBuf::from(o.required("--layout")?))?;
    let out_path = PathBuf::from(o.required("--out")?);
    let (digest, manifest) = layout.manifest(o.get("--ref"))?;
    let (variant, wasm) = extract_wasm(&manifest, |d| {
        layout.read_blob(d).map_err(|e| e.to_string())
    })?;
    fs::write(&out_path, &wasm).map_err(|source| CliError::Io {
        path: out_path.clone(),
        source,
    })?;
    Ok(format!(
        "{variant} {digest} {} ({} bytes)\n",
        out_path.display(),
        wasm.len()
    ))
}

fn manifests_command(o: &Options) -> Result<String, CliError> {
    let examples = PathBuf::from(o.get("--examples").unwrap_or("envoy-examples"));
    if o.flag("--check") {
        let checked = manifests::check(&examples)?;
        let mut out = String::new();
        for path in checked {
            out.push_str(&format!("up to date: {}\n", path.display()));
        }
        return Ok(out);
    }
    let modules = PathBuf::from(o.get("--modules").unwrap_or("target/plugins"));
    let files = manifests::generate(
        &examples,
        &modules,
        o.get("--image-base").unwrap_or(DEFAULT_IMAGE_BASE),
        o.get("--tag").unwrap_or(env!("CARGO_PKG_VERSION")),
    )?;
    manifests::write(&files)?;
    let mut out = String::new();
    for (path, _) in files {
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        let err = run(&args("pack --tag 1")).unwrap_err();
        assert!(err.to_string().contains("--wasm is required"), "{err}");
        let err = run(&args("push --bogus")).unwrap_err();
        assert!(err.to_string().contains("unknown argument"), "{err}");
        let err = run(&args("frobnicate")).unwrap_err();
        assert!(err.to_string().contains("unknown subcommand"), "{err}");
        assert!(run(&args("--help")).unwrap().contains("oci-pack pack"));
    }

    #[test]
    fn pack_then_extract_and_digest_agree() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("m.wasm");
        fs::write(&wasm, b"\0asm\x01\0\0\0cli").unwrap();
        let layout = dir.path().join("layout");
        let packed = run(&args(&format!(
            "pack --wasm {} --layout {} --tag 1.2.3",
            wasm.display(),
            layout.display()
        )))
        .unwrap();
        let digests = run(&args(&format!("digest --wasm {}", wasm.display()))).unwrap();
        for (p, d) in packed.lines().zip(digests.lines()) {
            assert_eq!(
                p.split(' ').next_back(),
                d.split(' ').next_back(),
                "{packed}\n{digests}"
            );
        }
        let out = dir.path().join("back.wasm");
        let said = run(&args(&format!(
            "extract --layout {} --ref 1.2.3-oci --out {}",
            layout.display(),
            out.display()
        )))
        .unwrap();
        assert!(said.starts_with("oci sha256:"), "{said}");
        assert_eq!(fs::read(out).unwrap(), fs::read(wasm).unwrap());
    }
}
