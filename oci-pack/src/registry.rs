//! Pushing images to a registry over the OCI distribution API: blob upload
//! (`POST /v2/<name>/blobs/uploads/`, then `PUT <location>?digest=…`),
//! skipped when `HEAD /v2/<name>/blobs/<digest>` finds the blob already,
//! then `PUT /v2/<name>/manifests/<tag>`.
//!
//! Plain HTTP, to registries on loopback only (a local `docker-registry`,
//! a test registry). For a remote registry, which needs TLS and usually
//! credentials, push from the OCI layout with skopeo (see
//! [`RegistryError::RemoteRegistry`]).

use crate::digest::{Blob, Digest};
use crate::image::Image;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Where an image goes: `HOST[:PORT]/REPOSITORY:TAG`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`, e.g. `127.0.0.1:5000`.
    pub registry: String,
    /// The repository, e.g. `palisade/rbac`.
    pub repository: String,
    /// The tag, e.g. `0.1.0`.
    pub tag: String,
}

impl Reference {
    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: tag.to_string(),
            ..self.clone()
        }
    }

    /// Whether the registry host is a loopback address (`localhost`,
    /// `127.0.0.0/8`, `[::1]`).
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => self.registry.split(':').next().unwrap_or(""),
        };
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    /// Parses `HOST[:PORT]/REPOSITORY:TAG`; the repository is lowercase
    /// `[a-z0-9._-]` path components, as the distribution spec requires.
    fn from_str(s: &str) -> Result<Reference, RegistryError> {
        let bad = |why: &str| RegistryError::BadReference {
            reference: s.to_string(),
            why: why.to_string(),
        };
        let (registry, rest) = s
            .split_once('/')
            .ok_or_else(|| bad("no registry host before the first '/'"))?;
        let (repository, tag) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("no ':TAG' at the end"))?;
        if registry.is_empty() || repository.is_empty() || tag.is_empty() {
            return Err(bad("empty host, repository or tag"));
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(
                "repository path components must be lowercase [a-z0-9._-]",
            ));
        }
        if tag.len() > 128
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad(
                "the tag must be [A-Za-z0-9._-], at most 128 characters",
            ));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

/// A distribution-API client for one loopback registry.
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    /// A client for the registry of `reference`; refuses non-loopback hosts.
    pub fn new(reference: &Reference) -> Result<Client, RegistryError> {
        if !reference.is_loopback() {
            return Err(RegistryError::RemoteRegistry(reference.registry.clone()));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(120)))
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            base: format!("http://{}", reference.registry),
        })
    }

    /// Pushes `image` as `reference` and returns the manifest digest the
    /// registry reports (checked against the image's own).
    pub fn push(&self, reference: &Reference, image: &Image) -> Result<Digest, RegistryError> {
        for blob in image.blobs() {
            self.push_blob(&reference.repository, blob)?;
        }
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base, reference.repository, reference.tag
        );
        let mut response = self
            .agent
            .put(&url)
            .header("Content-Type", image.manifest.media_type.as_str())
            .send(&image.manifest.bytes[..])
            .map_err(|e| transport(&url, e))?;
        let status = response.status().as_u16();
        if status != 201 {
            return Err(unexpected("PUT", &url, status, &mut response));
        }
        let reported = header(&response, "Docker-Content-Digest");
        match reported {
            Some(d) if d != image.digest().to_string() => Err(RegistryError::DigestMismatch {
                reference: reference.to_string(),
                expected: image.digest(),
                reported: d,
            }),
            _ => Ok(image.digest()),
        }
    }

    fn push_blob(&self, repository: &str, blob: &Blob) -> Result<(), RegistryError> {
        let head = format!("{}/v2/{repository}/blobs/{}", self.base, blob.digest);
        let exists = self
            .agent
            .head(&head)
            .call()
            .map_err(|e| transport(&head, e))?;
        if exists.status().as_u16() == 200 {
            return Ok(());
        }
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let mut response = self
            .agent
            .post(&start)
            .send_empty()
            .map_err(|e| transport(&start, e))?;
        let status = response.status().as_u16();
        if status != 202 {
            return Err(unexpected("POST", &start, status, &mut response));
        }
        let location = header(&response, "Location").ok_or_else(|| RegistryError::Protocol {
            url: start.clone(),
            what: "the upload response (202) has no Location header".to_string(),
        })?;
        let mut upload = if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        upload.push(if upload.contains('?') { '&' } else { '?' });
        upload.push_str(&format!("digest={}", blob.digest));
        let mut response = self
            .agent
            .put(&upload)
            .header("Content-Type", "application/octet-stream")
            .send(&blob.bytes[..])
            .map_err(|e| transport(&upload, e))?;
        let status = response.status().as_u16();
        if status != 201 {
            return Err(unexpected("PUT", &upload, status, &mut response));
        }
        Ok(())
    }
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn transport(url: &str, error: ureq::Error) -> RegistryError {
    RegistryError::Transport {
        url: url.to_string(),
        error: error.to_string(),
    }
}

fn unexpected(
    method: &str,
    url: &str,
    status: u16,
    response: &mut ureq::http::Response<ureq::Body>,
) -> RegistryError {
    let body = response
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    RegistryError::Status {
        request: format!("{method} {url}"),
        status,
        body: body.trim().to_string(),
    }
}

/// Why a push failed.
#[derive(Debug)]
pub enum RegistryError {
    /// The image reference is not `HOST[:PORT]/REPOSITORY:TAG`.
    BadReference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        why: String,
    },
    /// The registry is not on loopback; this tool speaks plain HTTP only.
    RemoteRegistry(String),
    /// The registry could not be reached.
    Transport {
        /// The request URL.
        url: String,
        /// The client's error.
        error: String,
    },
    /// The registry answered with an unexpected status.
    Status {
        /// Method and URL.
        request: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body (registries explain errors there).
        body: String,
    },
    /// The registry's answer broke the protocol.
    Protocol {
        /// The request URL.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// The registry stored the manifest under another digest.
    DigestMismatch {
        /// Where it was pushed.
        reference: String,
        /// The digest of the bytes sent.
        expected: Digest,
        /// The digest the registry reported.
        reported: String,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::BadReference { reference, why } => write!(
                f,
                "{reference:?} is not an image reference of the form HOST[:PORT]/REPOSITORY:TAG ({why})"
            ),
            RegistryError::RemoteRegistry(host) => write!(
                f,
                "{host} is not a loopback registry; oci-pack pushes over plain HTTP to loopback only. Write an OCI layout with `oci-pack pack` and push it with TLS and credentials using `skopeo copy oci:LAYOUT:TAG docker://{host}/REPOSITORY:TAG`"
            ),
            RegistryError::Transport { url, error } => write!(
                f,
                "could not reach the registry at {url}: {error}; is it running and listening there?"
            ),
            RegistryError::Status { request, status, body } => {
                write!(f, "{request} answered HTTP {status}")?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                if *status == 401 || *status == 403 {
                    f.write_str(" (the registry wants credentials; push with skopeo, which reads them)")?;
                }
                Ok(())
            }
            RegistryError::Protocol { url, what } => write!(f, "{url}: {what}"),
            RegistryError::DigestMismatch { reference, expected, reported } => write!(
                f,
                "the registry stored {reference} as {reported}, but the manifest sent hashes to {expected}; the registry rewrote it, so digest pinning would fail"
            ),
        }
    }
}

impl std::error::Error for RegistryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r: Reference = "127.0.0.1:5000/palisade/rbac:0.1.0".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "palisade/rbac");
        assert_eq!(r.tag, "0.1.0");
        assert_eq!(r.to_string(), "127.0.0.1:5000/palisade/rbac:0.1.0");
        assert_eq!(r.with_tag("0.1.0-oci").tag, "0.1.0-oci");
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "rbac",
            "127.0.0.1:5000/rbac",
            "host/Rbac:1",
            "host/a//b:1",
            "host/a:b c",
        ] {
            let err = bad.parse::<Reference>().unwrap_err();
            assert!(
                err.to_string().contains("HOST[:PORT]/REPOSITORY:TAG"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn only_loopback_registries_get_a_client() {
        for ok in [
            "127.0.0.1:5000/a:1",
            "localhost:5000/a:1",
            "[::1]:5000/a:1",
            "127.9.0.1/a:1",
        ] {
            assert!(ok.parse::<Reference>().unwrap().is_loopback(), "{ok}");
        }
        let remote: Reference = "registry.example.com/palisade/rbac:1".parse().unwrap();
        assert!(!remote.is_loopback());
        let err = Client::new(&remote).err().unwrap();
        assert!(err.to_string().contains("skopeo copy oci:"), "{err}");
    }

    #[test]
    fn an_unreachable_registry_is_a_transport_error() {
        // Bind then drop a listener: the port is free and nothing answers.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r: Reference = format!("127.0.0.1:{port}/palisade/x:1").parse().unwrap();
        let image = Image::build(crate::image::Variant::Oci, b"\0asm\x01\0\0\0", &[]).unwrap();
        let err = Client::new(&r).unwrap().push(&r, &image).unwrap_err();
        assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
        assert!(err.to_string().contains("is it running"));
    }
}
