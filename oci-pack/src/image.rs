//! The two image shapes Istio's and Envoy Gateway's Wasm fetchers accept,
//! built reproducibly: the same module always gives the same manifest digest.
//!
//! Both fetchers (`pkg/wasm/imagefetcher.go` in Istio,
//! `internal/wasm/imagefetcher.go` in Envoy Gateway) read the manifest's
//! layers and try, in this order:
//!
//! 1. **compat** (Wasm image spec, `spec-compat.md`): the *last* layer has
//!    media type `application/vnd.oci.image.layer.v1.tar+gzip` and is a
//!    gzip'd tar holding a file whose base name is `plugin.wasm`. The config
//!    is an ordinary OCI image config; the spec asks for the manifest
//!    annotation `module.wasm.image/variant: compat`.
//! 2. **oci** (Wasm image spec, `spec.md`): *exactly two* layers, one of
//!    which has media type `application/vnd.module.wasm.content.layer.v1+wasm`
//!    and is the raw module. The spec's other layer is the runtime config
//!    (`application/vnd.module.wasm.config.v1+json`), which is also the
//!    manifest's config. An image with the Wasm layer alone, as
//!    `oras push --artifact-type …` makes, is refused by both fetchers
//!    ("number of layers must be 2").
//!
//! [`extract_wasm`] applies those same rules to read a module back, so a
//! test can tell whether an image would load.

use crate::digest::{Blob, Digest};
use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index (`index.json` of a layout).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an ordinary OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip'd tar layer: the compat variant's only layer.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of the Wasm image spec's runtime config (oci variant).
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// Media type of the raw module layer (oci variant).
pub const WASM_CONTENT_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// Manifest annotation the compat spec requires with an OCI tar+gzip layer.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// Descriptor annotation naming the file a layer holds.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The file name the compat fetchers look for inside the tar layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The Proxy-Wasm ABI the Palisade modules are built against, as recorded
/// in the oci variant's runtime config.
pub const PROXY_ABI_VERSION: &str = "proxy_abi_version_0_2_1";

/// Which of the two accepted shapes an image has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// One tar+gzip layer holding `plugin.wasm`, ordinary OCI image config.
    Compat,
    /// Runtime-config layer plus raw Wasm layer, Wasm config media type.
    Oci,
}

impl Variant {
    /// Both variants, compat first.
    pub const ALL: [Variant; 2] = [Variant::Compat, Variant::Oci];

    /// `compat` or `oci`, the spec's names.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Compat => "compat",
            Variant::Oci => "oci",
        }
    }

    /// The tag an image of this variant gets for release `tag`: the compat
    /// image takes the plain tag (every fetcher and docker-era tool reads
    /// it), the oci variant `<tag>-oci`.
    pub fn tag(self, tag: &str) -> String {
        match self {
            Variant::Compat => tag.to_string(),
            Variant::Oci => format!("{tag}-oci"),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Variant {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Variant, ImageError> {
        match s {
            "compat" => Ok(Variant::Compat),
            "oci" => Ok(Variant::Oci),
            other => Err(ImageError::UnknownVariant(other.to_string())),
        }
    }
}

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content, `sha256:<hex>`.
    pub digest: String,
    /// Size of the referenced content in bytes.
    pub size: u64,
    /// Optional annotations (sorted, so serialization is reproducible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    /// The descriptor of `blob`.
    pub fn of(blob: &Blob, annotations: Option<BTreeMap<String, String>>) -> Descriptor {
        Descriptor {
            media_type: blob.media_type.clone(),
            digest: blob.digest.to_string(),
            size: blob.size(),
            annotations,
        }
    }
}

/// An OCI image manifest (schema version 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A built image: its manifest, config and layers, all as blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The shape.
    pub variant: Variant,
    /// The manifest; its digest is the image's digest (what `sha256`
    /// fields of `WasmPlugin` and `EnvoyExtensionPolicy` pin).
    pub manifest: Blob,
    /// The config blob.
    pub config: Blob,
    /// The layers, in manifest order.
    pub layers: Vec<Blob>,
}

impl Image {
    /// Builds the `variant` image of `wasm`. `root_ids` are recorded in the
    /// oci variant's runtime config (the spec's `config.root_ids`).
    pub fn build(variant: Variant, wasm: &[u8], root_ids: &[String]) -> Result<Image, ImageError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(ImageError::NotWasm);
        }
        match variant {
            Variant::Compat => build_compat(wasm),
            Variant::Oci => build_oci(wasm, root_ids),
        }
    }

    /// The manifest digest.
    pub fn digest(&self) -> Digest {
        self.manifest.digest
    }

    /// The config and layer blobs, each once (the oci variant's config and
    /// runtime-config layer are the same blob).
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut out: Vec<&Blob> = Vec::with_capacity(1 + self.layers.len());
        for blob in std::iter::once(&self.config).chain(self.layers.iter()) {
            if !out.iter().any(|b| b.digest == blob.digest) {
                out.push(blob);
            }
        }
        out
    }
}

/// The ordinary OCI image config of the compat variant. No `created`
/// timestamp, so the bytes depend on the module only.
#[derive(Serialize)]
struct OciConfig {
    architecture: &'static str,
    os: &'static str,
    config: BTreeMap<String, String>,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// The Wasm image spec's runtime config (`type`, `abiVersions`, `config`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    abi_versions: [&'static str; 1],
    config: RuntimeConfigBody<'a>,
}

#[derive(Serialize)]
struct RuntimeConfigBody<'a> {
    root_ids: &'a [String],
}

fn build_compat(wasm: &[u8]) -> Result<Image, ImageError> {
    let tar = plugin_tar(wasm).map_err(ImageError::Archive)?;
    let diff_id = Digest::of(&tar);
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    io::Write::write_all(&mut gz, &tar).map_err(ImageError::Archive)?;
    let layer = Blob::new(
        OCI_LAYER_TAR_GZIP,
        gz.finish().map_err(ImageError::Archive)?,
    );
    let config = OciConfig {
        architecture: "wasm",
        os: "wasip1",
        config: BTreeMap::new(),
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![diff_id.to_string()],
        },
    };
    let config = Blob::new(OCI_CONFIG, to_json(&config));
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor::of(&config, None),
        layers: vec![Descriptor::of(&layer, None)],
        annotations: Some(BTreeMap::from([(
            VARIANT_ANNOTATION.to_string(),
            Variant::Compat.name().to_string(),
        )])),
    };
    Ok(Image {
        variant: Variant::Compat,
        manifest: Blob::new(OCI_MANIFEST, to_json(&manifest)),
        config,
        layers: vec![layer],
    })
}

fn build_oci(wasm: &[u8], root_ids: &[String]) -> Result<Image, ImageError> {
    let runtime = RuntimeConfig {
        kind: "envoy_proxy",
        abi_versions: [PROXY_ABI_VERSION],
        config: RuntimeConfigBody { root_ids },
    };
    let config = Blob::new(WASM_CONFIG, to_json(&runtime));
    let module = Blob::new(WASM_CONTENT_LAYER, wasm.to_vec());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor::of(&config, None),
        layers: vec![
            Descriptor::of(&config, Some(title("runtime-config.json"))),
            Descriptor::of(&module, Some(title(PLUGIN_FILE))),
        ],
        annotations: None,
    };
    Ok(Image {
        variant: Variant::Oci,
        manifest: Blob::new(OCI_MANIFEST, to_json(&manifest)),
        config: config.clone(),
        layers: vec![config, module],
    })
}

fn title(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(TITLE_ANNOTATION.to_string(), name.to_string())])
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A tar holding `plugin.wasm` with fixed metadata: mode 0644, owner 0:0,
/// mtime 0, no user or group names.
fn plugin_tar(wasm: &[u8]) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(PLUGIN_FILE)?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append(&header, wasm)?;
    builder.into_inner()
}

/// Reads the module out of an image by the rules of Istio's and Envoy
/// Gateway's fetchers: compat first (last layer tar+gzip holding
/// `plugin.wasm`), then the oci variant (exactly two layers, one of them the
/// raw Wasm layer). `blob` returns the content of a layer by digest.
pub fn extract_wasm(
    manifest: &[u8],
    mut blob: impl FnMut(&Digest) -> Result<Vec<u8>, String>,
) -> Result<(Variant, Vec<u8>), ImageError> {
    let manifest: Manifest =
        serde_json::from_slice(manifest).map_err(|e| ImageError::BadManifest(e.to_string()))?;
    let last = manifest.layers.last().ok_or(ImageError::NoLayers)?;
    let compat_error = if last.media_type == OCI_LAYER_TAR_GZIP {
        let bytes = fetch(&mut blob, last)?;
        match plugin_from_tar_gz(&bytes) {
            Ok(wasm) => return Ok((Variant::Compat, wasm)),
            Err(e) => e,
        }
    } else {
        format!(
            "last layer is {}, not {OCI_LAYER_TAR_GZIP}",
            last.media_type
        )
    };
    if manifest.layers.len() != 2 {
        return Err(ImageError::NotAcceptedShape {
            compat: compat_error,
            oci: format!(
                "{} layers, the oci variant needs exactly 2",
                manifest.layers.len()
            ),
        });
    }
    match manifest
        .layers
        .iter()
        .find(|l| l.media_type == WASM_CONTENT_LAYER)
    {
        Some(layer) => Ok((Variant::Oci, fetch(&mut blob, layer)?)),
        None => Err(ImageError::NotAcceptedShape {
            compat: compat_error,
            oci: format!("no layer of media type {WASM_CONTENT_LAYER}"),
        }),
    }
}

fn fetch(
    blob: &mut impl FnMut(&Digest) -> Result<Vec<u8>, String>,
    layer: &Descriptor,
) -> Result<Vec<u8>, ImageError> {
    let digest: Digest = layer
        .digest
        .parse()
        .map_err(|e: crate::digest::DigestError| ImageError::BadManifest(e.to_string()))?;
    let bytes = blob(&digest).map_err(|reason| ImageError::MissingBlob { digest, reason })?;
    if Digest::of(&bytes) != digest {
        return Err(ImageError::MissingBlob {
            digest,
            reason: "the content does not hash to its digest".to_string(),
        });
    }
    Ok(bytes)
}

fn plugin_from_tar_gz(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar+gzip layer: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("unreadable tar entry: {e}"))?;
        let path = entry.path().map_err(|e| format!("bad tar path: {e}"))?;
        if path.file_name().is_some_and(|n| n == PLUGIN_FILE) {
            let mut wasm = Vec::new();
            entry
                .read_to_end(&mut wasm)
                .map_err(|e| format!("could not read {PLUGIN_FILE}: {e}"))?;
            return Ok(wasm);
        }
    }
    Err(format!("{PLUGIN_FILE} not found in the archive"))
}

/// Why an image could not be built or read.
#[derive(Debug)]
pub enum ImageError {
    /// The input does not start with the Wasm magic `\0asm`.
    NotWasm,
    /// Writing the tar+gzip layer failed.
    Archive(io::Error),
    /// `--variant` named neither `compat` nor `oci`.
    UnknownVariant(String),
    /// The manifest is not an OCI image manifest.
    BadManifest(String),
    /// The manifest lists no layers.
    NoLayers,
    /// A layer named by the manifest could not be had.
    MissingBlob {
        /// The layer's digest.
        digest: Digest,
        /// What went wrong.
        reason: String,
    },
    /// Neither fetcher rule accepts the image.
    NotAcceptedShape {
        /// Why it is not a compat image.
        compat: String,
        /// Why it is not an oci-variant image.
        oci: String,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NotWasm => f.write_str(
                "the input is not a WebAssembly module (no \\0asm magic); pass a built module such as target/plugins/rbac.wasm (scripts/build writes them)",
            ),
            ImageError::Archive(e) => write!(f, "could not write the tar+gzip layer: {e}"),
            ImageError::UnknownVariant(v) => {
                write!(f, "unknown image variant {v:?}; use compat or oci")
            }
            ImageError::BadManifest(e) => write!(f, "not an OCI image manifest: {e}"),
            ImageError::NoLayers => f.write_str("the manifest has no layers; Istio and Envoy Gateway need at least one"),
            ImageError::MissingBlob { digest, reason } => {
                write!(f, "layer {digest} could not be read: {reason}")
            }
            ImageError::NotAcceptedShape { compat, oci } => write!(
                f,
                "Istio and Envoy Gateway would refuse this image: not a compat image ({compat}) and not an oci-variant image ({oci}); build it with `oci-pack`"
            ),
        }
    }
}

impl std::error::Error for ImageError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny valid module header plus a payload: enough for packing.
    fn module(payload: &[u8]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(payload);
        m
    }

    fn blobs_of(image: &Image) -> impl FnMut(&Digest) -> Result<Vec<u8>, String> + '_ {
        |d| {
            image
                .blobs()
                .into_iter()
                .find(|b| b.digest == *d)
                .map(|b| b.bytes.clone())
                .ok_or_else(|| "absent".to_string())
        }
    }

    #[test]
    fn same_module_gives_the_same_digest_and_different_modules_differ() {
        for variant in Variant::ALL {
            let a = Image::build(variant, &module(b"one"), &[]).unwrap();
            let b = Image::build(variant, &module(b"one"), &[]).unwrap();
            let c = Image::build(variant, &module(b"two"), &[]).unwrap();
            assert_eq!(a, b, "{variant} is not reproducible");
            assert_ne!(a.digest(), c.digest());
        }
    }

    #[test]
    fn compat_image_has_one_tar_gzip_layer_holding_plugin_wasm() {
        let wasm = module(b"compat");
        let image = Image::build(Variant::Compat, &wasm, &[]).unwrap();
        let manifest: Manifest = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest.media_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(manifest.config.media_type, OCI_CONFIG);
        assert_eq!(manifest.layers.len(), 1);
        assert_eq!(manifest.layers[0].media_type, OCI_LAYER_TAR_GZIP);
        assert_eq!(
            manifest.annotations.unwrap()[VARIANT_ANNOTATION],
            "compat".to_string()
        );
        assert_eq!(plugin_from_tar_gz(&image.layers[0].bytes).unwrap(), wasm);
        // The config's diff_id is the digest of the uncompressed tar.
        let config: serde_json::Value = serde_json::from_slice(&image.config.bytes).unwrap();
        let mut tar = Vec::new();
        GzDecoder::new(&image.layers[0].bytes[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            Digest::of(&tar).to_string()
        );
    }

    #[test]
    fn tar_entry_metadata_is_fixed() {
        let tar = plugin_tar(&module(b"x")).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        let h = entry.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(entry.path().unwrap().to_str(), Some(PLUGIN_FILE));
    }

    #[test]
    fn oci_variant_has_two_layers_and_the_wasm_config() {
        let wasm = module(b"oci");
        let image = Image::build(Variant::Oci, &wasm, &["rbac".to_string()]).unwrap();
        let manifest: Manifest = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest.config.media_type, WASM_CONFIG);
        let types: Vec<&str> = manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        assert_eq!(types, [WASM_CONFIG, WASM_CONTENT_LAYER]);
        assert_eq!(image.layers[1].bytes, wasm);
        let runtime: serde_json::Value = serde_json::from_slice(&image.config.bytes).unwrap();
        assert_eq!(runtime["type"], "envoy_proxy");
        assert_eq!(runtime["abiVersions"][0], PROXY_ABI_VERSION);
        assert_eq!(runtime["config"]["root_ids"][0], "rbac");
        // Config and runtime-config layer are one blob, stored once.
        assert_eq!(image.blobs().len(), 2);
    }

    #[test]
    fn both_variants_pass_the_fetcher_rules() {
        let wasm = module(b"roundtrip");
        for variant in Variant::ALL {
            let image = Image::build(variant, &wasm, &[]).unwrap();
            let (got_variant, got) = extract_wasm(&image.manifest.bytes, blobs_of(&image)).unwrap();
            assert_eq!((got_variant, got), (variant, wasm.clone()));
        }
    }

    #[test]
    fn a_single_wasm_layer_artifact_is_refused_like_istio_does() {
        let module_blob = Blob::new(WASM_CONTENT_LAYER, module(b"oras"));
        let config = Blob::new(WASM_CONFIG, b"{}".to_vec());
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor::of(&config, None),
            layers: vec![Descriptor::of(&module_blob, None)],
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let err = extract_wasm(&bytes, |_| Ok(module_blob.bytes.clone())).unwrap_err();
        assert!(err.to_string().contains("exactly 2"), "{err}");
    }

    #[test]
    fn refuses_input_that_is_not_wasm() {
        let err = Image::build(Variant::Compat, b"#!/bin/sh", &[]).unwrap_err();
        assert!(matches!(err, ImageError::NotWasm));
        assert!(err.to_string().contains("scripts/build"));
    }

    #[test]
    fn variant_names_and_tags() {
        assert_eq!("oci".parse::<Variant>().unwrap(), Variant::Oci);
        assert!("docker".parse::<Variant>().is_err());
        assert_eq!(Variant::Compat.tag("0.1.0"), "0.1.0");
        assert_eq!(Variant::Oci.tag("0.1.0"), "0.1.0-oci");
    }
}
