//! The OCI image layout directory: `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`. `skopeo copy oci:DIR:REF docker://…` pushes from it,
//! and `skopeo copy docker://… oci:DIR` writes one that [`Layout::open`]
//! reads back.

use crate::digest::{Blob, Digest};
use crate::image::{Descriptor, Image, OCI_INDEX, OCI_MANIFEST};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Annotation naming a manifest in `index.json` (what `oci:DIR:REF` selects).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// `index.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// An OCI image layout on disk.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Creates `dir` as a layout, or opens it if it already is one.
    pub fn create(dir: &Path) -> Result<Layout, LayoutError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LayoutError::Io { path, source }
        };
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let marker = dir.join(LAYOUT_FILE);
        fs::write(&marker, LAYOUT_CONTENT).map_err(io_err(&marker))?;
        let layout = Layout {
            root: dir.to_path_buf(),
        };
        if !dir.join("index.json").exists() {
            layout.write_index(&Index {
                schema_version: 2,
                media_type: Some(OCI_INDEX.to_string()),
                manifests: Vec::new(),
            })?;
        }
        Ok(layout)
    }

    /// Opens an existing layout (checks `oci-layout`).
    pub fn open(dir: &Path) -> Result<Layout, LayoutError> {
        let marker = dir.join(LAYOUT_FILE);
        let text = fs::read_to_string(&marker).map_err(|source| LayoutError::Io {
            path: marker.clone(),
            source,
        })?;
        if !text.contains("imageLayoutVersion") {
            return Err(LayoutError::NotALayout(dir.to_path_buf()));
        }
        Ok(Layout {
            root: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes the image's blobs and manifest, and names the manifest
    /// `ref_name` in `index.json` (replacing an earlier image of that name).
    /// Entries stay sorted by name, so the same images give the same files.
    pub fn add(&self, image: &Image, ref_name: &str) -> Result<(), LayoutError> {
        for blob in image.blobs() {
            self.write_blob(blob)?;
        }
        self.write_blob(&image.manifest)?;
        let mut index = self.read_index()?;
        index.manifests.retain(|d| ref_of(d) != Some(ref_name));
        index.manifests.push(Descriptor::of(
            &image.manifest,
            Some(BTreeMap::from([(
                REF_NAME_ANNOTATION.to_string(),
                ref_name.to_string(),
            )])),
        ));
        index
            .manifests
            .sort_by(|a, b| ref_of(a).cmp(&ref_of(b)).then(a.digest.cmp(&b.digest)));
        self.write_index(&index)
    }

    /// The manifest named `ref_name`, or the only manifest when `ref_name`
    /// is `None`: its digest and bytes.
    pub fn manifest(&self, ref_name: Option<&str>) -> Result<(Digest, Vec<u8>), LayoutError> {
        let index = self.read_index()?;
        let found: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|d| ref_name.is_none() || ref_of(d) == ref_name)
            .filter(|d| d.media_type == OCI_MANIFEST)
            .collect();
        let descriptor = match (found.as_slice(), ref_name) {
            ([one], _) => *one,
            ([], _) | (_, Some(_)) => {
                return Err(LayoutError::NoSuchRef {
                    layout: self.root.clone(),
                    ref_name: ref_name.unwrap_or("").to_string(),
                })
            }
            (_, None) => return Err(LayoutError::Ambiguous(self.root.clone())),
        };
        let digest: Digest = descriptor
            .digest
            .parse()
            .map_err(|e: crate::digest::DigestError| LayoutError::Corrupt(e.to_string()))?;
        Ok((digest, self.read_blob(&digest)?))
    }

    /// The content of blob `digest`, checked against the digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(|source| LayoutError::Io {
            path: path.clone(),
            source,
        })?;
        if Digest::of(&bytes) != *digest {
            return Err(LayoutError::Corrupt(format!(
                "{} does not hash to {digest}",
                path.display()
            )));
        }
        Ok(bytes)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    fn write_blob(&self, blob: &Blob) -> Result<(), LayoutError> {
        let path = self.blob_path(&blob.digest);
        fs::write(&path, &blob.bytes).map_err(|source| LayoutError::Io { path, source })
    }

    fn read_index(&self) -> Result<Index, LayoutError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(|source| LayoutError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LayoutError::Corrupt(format!("{}: {e}", path.display())))
    }

    fn write_index(&self, index: &Index) -> Result<(), LayoutError> {
        let path = self.root.join("index.json");
        let bytes = serde_json::to_vec(index)
            .map_err(|e| LayoutError::Corrupt(format!("index.json: {e}")))?;
        fs::write(&path, bytes).map_err(|source| LayoutError::Io { path, source })
    }
}

fn ref_of(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME_ANNOTATION))
        .map(String::as_str)
}

/// Why a layout could not be written or read.
#[derive(Debug)]
pub enum LayoutError {
    /// A file of the layout could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The directory has no `oci-layout` marker.
    NotALayout(PathBuf),
    /// `index.json` or a blob is damaged.
    Corrupt(String),
    /// No manifest of that name.
    NoSuchRef {
        /// The layout.
        layout: PathBuf,
        /// The name asked for.
        ref_name: String,
    },
    /// Several manifests and no name to choose one.
    Ambiguous(PathBuf),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            LayoutError::NotALayout(dir) => write!(
                f,
                "{} is not an OCI image layout (no oci-layout file); write one with `oci-pack pack`",
                dir.display()
            ),
            LayoutError::Corrupt(what) => {
                write!(f, "damaged OCI layout: {what}; delete it and pack again")
            }
            LayoutError::NoSuchRef { layout, ref_name } => write!(
                f,
                "{} has no image named {ref_name:?}; see index.json for the names it has",
                layout.display()
            ),
            LayoutError::Ambiguous(dir) => write!(
                f,
                "{} holds several images; name one (the org.opencontainers.image.ref.name in index.json)",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{extract_wasm, Variant};

    fn module(payload: &[u8]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn writes_reads_and_replaces_images_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let first = Image::build(Variant::Compat, &module(b"1"), &[]).unwrap();
        let second = Image::build(Variant::Oci, &module(b"2"), &[]).unwrap();
        layout.add(&first, "1.0").unwrap();
        layout.add(&second, "1.0-oci").unwrap();
        let (digest, bytes) = layout.manifest(Some("1.0-oci")).unwrap();
        assert_eq!(digest, second.digest());
        let (_, wasm) =
            extract_wasm(&bytes, |d| layout.read_blob(d).map_err(|e| e.to_string())).unwrap();
        assert_eq!(wasm, module(b"2"));

        let replacement = Image::build(Variant::Compat, &module(b"3"), &[]).unwrap();
        layout.add(&replacement, "1.0").unwrap();
        let reopened = Layout::open(dir.path()).unwrap();
        assert_eq!(
            reopened.manifest(Some("1.0")).unwrap().0,
            replacement.digest()
        );
        assert!(matches!(
            reopened.manifest(None),
            Err(LayoutError::Ambiguous(_))
        ));
        assert!(matches!(
            reopened.manifest(Some("nope")),
            Err(LayoutError::NoSuchRef { .. })
        ));
    }

    #[test]
    fn same_images_give_identical_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for (dir, order) in [
            (a.path(), [Variant::Compat, Variant::Oci]),
            (b.path(), [Variant::Oci, Variant::Compat]),
        ] {
            let layout = Layout::create(dir).unwrap();
            for v in order {
                layout
                    .add(
                        &Image::build(v, &module(b"same"), &[]).unwrap(),
                        &v.tag("1"),
                    )
                    .unwrap();
            }
        }
        assert_eq!(
            fs::read(a.path().join("index.json")).unwrap(),
            fs::read(b.path().join("index.json")).unwrap()
        );
    }

    #[test]
    fn detects_a_damaged_blob_and_a_missing_layout() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let image = Image::build(Variant::Oci, &module(b"x"), &[]).unwrap();
        layout.add(&image, "x").unwrap();
        fs::write(layout.blob_path(&image.digest()), b"tampered").unwrap();
        assert!(matches!(
            layout.manifest(Some("x")),
            Err(LayoutError::Corrupt(_))
        ));
        let empty = tempfile::tempdir().unwrap();
        let err = Layout::open(empty.path()).unwrap_err();
        assert!(err.to_string().contains("oci-layout"), "{err}");
    }
}
