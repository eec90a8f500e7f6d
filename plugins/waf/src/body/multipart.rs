//! `multipart/form-data` bodies, as ModSecurity exposes them: form fields
//! become `ARGS_POST`; file parts fill `FILES` (field name -> file name),
//! `FILES_NAMES`, `FILES_SIZES` and `FILES_COMBINED_SIZE`; every part
//! header line is in `MULTIPART_PART_HEADERS` under the part's name.
//! Parts are split on the boundary from `Content-Type`; a missing boundary
//! or an unterminated body is an error (`REQBODY_ERROR`), with the parts
//! read so far kept.

use super::{BodyLimits, Pairs};

/// What a multipart body yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multipart {
    /// Form fields (`ARGS_POST`).
    pub args: Pairs,
    /// Field name -> file name (`FILES`; the names are `FILES_NAMES`).
    pub files: Pairs,
    /// Field name -> size in bytes (`FILES_SIZES`).
    pub file_sizes: Pairs,
    /// Part name -> `Header-Name: value` (`MULTIPART_PART_HEADERS`).
    pub part_headers: Pairs,
    /// Sum of the file sizes.
    pub files_combined_size: usize,
}

/// Why a multipart body was not (fully) read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// `Content-Type` has no `boundary` parameter.
    NoBoundary,
    /// The boundary never appears in the body.
    NoParts,
    /// The final boundary (`--boundary--`) is missing.
    Unterminated,
    /// More parts than the argument limit.
    TooManyParts(usize),
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MultipartError::NoBoundary => write!(f, "the multipart Content-Type has no boundary"),
            MultipartError::NoParts => {
                write!(f, "the multipart body does not contain its boundary")
            }
            MultipartError::Unterminated => write!(f, "the multipart body has no final boundary"),
            MultipartError::TooManyParts(n) => {
                write!(f, "the multipart body has more than {n} parts")
            }
        }
    }
}

/// The `boundary` parameter of a `multipart/*` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    param(content_type, "boundary").filter(|b| !b.is_empty())
}

/// A parameter of a header value like `form-data; name="a"; filename=b`
/// (quoted strings may contain `;` and `\"`).
pub fn param(value: &str, wanted: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut i = bytes.iter().position(|&b| b == b';')? + 1;
    while i < bytes.len() {
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        let name_start = i;
        while bytes.get(i).is_some_and(|&b| b != b'=' && b != b';') {
            i += 1;
        }
        let name = value.get(name_start..i).unwrap_or("").trim();
        let mut val = String::new();
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            if bytes.get(i) == Some(&b'"') {
                i += 1;
                let mut raw = Vec::new();
                while let Some(&b) = bytes.get(i) {
                    i += 1;
                    match b {
                        b'\\' if matches!(bytes.get(i), Some(b'"' | b'\\')) => {
                            raw.extend(bytes.get(i));
                            i += 1;
                        }
                        b'"' => break,
                        _ => raw.push(b),
                    }
                }
                val = String::from_utf8_lossy(&raw).into_owned();
                while bytes.get(i).is_some_and(|&b| b != b';') {
                    i += 1;
                }
            } else {
                let start = i;
                while bytes.get(i).is_some_and(|&b| b != b';') {
                    i += 1;
                }
                val = value.get(start..i).unwrap_or("").trim().to_string();
            }
        }
        if name.eq_ignore_ascii_case(wanted) {
            return Some(val);
        }
        i += 1;
    }
    None
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Splits a part into its header block and its content.
fn split_part(part: &[u8]) -> (&[u8], &[u8]) {
    if let Some(p) = find(part, 0, b"\r\n\r\n") {
        (
            part.get(..p).unwrap_or_default(),
            part.get(p + 4..).unwrap_or_default(),
        )
    } else if let Some(p) = find(part, 0, b"\n\n") {
        (
            part.get(..p).unwrap_or_default(),
            part.get(p + 2..).unwrap_or_default(),
        )
    } else {
        (part, b"")
    }
}

/// Parses a multipart body whose `Content-Type` is `content_type`.
pub fn parse(
    body: &[u8],
    content_type: &str,
    limits: BodyLimits,
    out: &mut Multipart,
) -> Result<(), MultipartError> {
    let boundary = boundary(content_type).ok_or(MultipartError::NoBoundary)?;
    let delim = format!("--{boundary}").into_bytes();
    let mut pos = find(body, 0, &delim).ok_or(MultipartError::NoParts)? + delim.len();
    let mut parts = 0;
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            return Ok(());
        }
        // Skip the rest of the boundary line.
        pos = match find(body, pos, b"\n") {
            Some(p) => p + 1,
            None => return Err(MultipartError::Unterminated),
        };
        let next = find(body, pos, &delim);
        let end = next.unwrap_or(body.len());
        let mut part = body.get(pos..end).unwrap_or_default();
        part = part.strip_suffix(b"\n").unwrap_or(part);
        part = part.strip_suffix(b"\r").unwrap_or(part);
        parts += 1;
        if parts > limits.max_args {
            return Err(MultipartError::TooManyParts(limits.max_args));
        }
        read_part(part, out);
        match next {
            Some(n) => pos = n + delim.len(),
            None => return Err(MultipartError::Unterminated),
        }
    }
}

fn read_part(part: &[u8], out: &mut Multipart) {
    let (head, content) = split_part(part);
    let head = String::from_utf8_lossy(head);
    let mut lines: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push_str(line);
                continue;
            }
        }
        if !line.is_empty() {
            lines.push(line.to_string());
        }
    }
    let disposition = lines
        .iter()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.trim().eq_ignore_ascii_case("content-disposition"))
        })
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let name = param(&disposition, "name").unwrap_or_default();
    let filename = param(&disposition, "filename").or_else(|| param(&disposition, "filename*"));
    for l in lines {
        out.part_headers
            .push((name.clone().into_bytes(), l.into_bytes()));
    }
    match filename {
        Some(f) => {
            out.files.push((name.clone().into_bytes(), f.into_bytes()));
            out.file_sizes
                .push((name.into_bytes(), content.len().to_string().into_bytes()));
            out.files_combined_size += content.len();
        }
        None => out.args.push((name.into_bytes(), content.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=----x";

    #[test]
    fn fields_files_and_headers() {
        let body = b"------x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n------x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a;b.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n------x--\r\n";
        let mut m = Multipart::default();
        parse(body, CT, BodyLimits::default(), &mut m).unwrap();
        assert_eq!(m.args, vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(m.files, vec![(b"f".to_vec(), b"a;b.txt".to_vec())]);
        assert_eq!(m.file_sizes, vec![(b"f".to_vec(), b"5".to_vec())]);
        assert_eq!(m.files_combined_size, 5);
        assert_eq!(m.part_headers.len(), 3);
        assert_eq!(
            m.part_headers[2],
            (b"f".to_vec(), b"Content-Type: text/plain".to_vec())
        );
    }

    #[test]
    fn errors() {
        let mut m = Multipart::default();
        let l = BodyLimits::default();
        assert_eq!(
            parse(b"x", "multipart/form-data", l, &mut m),
            Err(MultipartError::NoBoundary)
        );
        assert_eq!(parse(b"x", CT, l, &mut m), Err(MultipartError::NoParts));
        let cut = b"------x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1";
        assert_eq!(parse(cut, CT, l, &mut m), Err(MultipartError::Unterminated));
        assert_eq!(m.args, vec![(b"a".to_vec(), b"1".to_vec())]);
    }

    #[test]
    fn params() {
        assert_eq!(
            param("form-data; name=\"a\\\"b\"; x=1", "name").as_deref(),
            Some("a\"b")
        );
        assert_eq!(
            param("form-data; name=plain ; x=1", "name").as_deref(),
            Some("plain")
        );
        assert_eq!(
            boundary("multipart/form-data; BOUNDARY=\"q\"").as_deref(),
            Some("q")
        );
    }
}
