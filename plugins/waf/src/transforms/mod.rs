//! Transformations (`t:name`): functions from bytes to bytes applied to a
//! variable's value before the operator sees it.
//!
//! Every transformation CRS 4.25 uses is here (see the crate README for the
//! counts), plus `urlDecode`, `trim` and `uppercase`. They work on bytes, never
//! fail, and produce output at most a small constant factor longer than the
//! input (`utf8toUnicode` is the largest, ×6/2; `hexEncode` ×2).

mod decode;
mod text;

use std::borrow::Cow;

/// One transformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// ASCII lower case.
    Lowercase,
    /// ASCII upper case.
    Uppercase,
    /// Percent escapes and `+`; invalid sequences kept.
    UrlDecode,
    /// Percent escapes, `%u` plus four hex digits, and `+`.
    UrlDecodeUni,
    /// JavaScript escapes.
    JsDecode,
    /// CSS escapes.
    CssDecode,
    /// HTML entities.
    HtmlEntityDecode,
    /// ANSI C escape sequences.
    EscapeSeqDecode,
    /// UTF-8 multi-byte characters to `%uHHHH`.
    Utf8ToUnicode,
    /// Drops NUL bytes.
    RemoveNulls,
    /// Windows/Unix command-line normalisation.
    CmdLine,
    /// Drops all white space.
    RemoveWhitespace,
    /// Runs of white space to one space.
    CompressWhitespace,
    /// `/* ... */` to one space.
    ReplaceComments,
    /// Drops comment characters (`/*`, `*/`, `--`, `#`).
    RemoveCommentsChar,
    /// Resolves `.`/`..` segments and repeated slashes.
    NormalizePath,
    /// As `NormalizePath` after turning `\` into `/`.
    NormalizePathWin,
    /// The decimal length of the value.
    Length,
    /// Base64 decoding, stopping at the first invalid character.
    Base64Decode,
    /// SHA-1 digest (20 raw bytes).
    Sha1,
    /// Lower-case hex encoding.
    HexEncode,
    /// Trims white space at both ends.
    Trim,
}

impl Transform {
    /// Parses a transformation name (case-insensitive).
    pub fn parse(name: &str) -> Result<Transform, String> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "lowercase" => Transform::Lowercase,
            "uppercase" => Transform::Uppercase,
            "urldecode" => Transform::UrlDecode,
            "urldecodeuni" => Transform::UrlDecodeUni,
            "jsdecode" => Transform::JsDecode,
            "cssdecode" => Transform::CssDecode,
            "htmlentitydecode" => Transform::HtmlEntityDecode,
            "escapeseqdecode" => Transform::EscapeSeqDecode,
            "utf8tounicode" => Transform::Utf8ToUnicode,
            "removenulls" => Transform::RemoveNulls,
            "cmdline" => Transform::CmdLine,
            "removewhitespace" => Transform::RemoveWhitespace,
            "compresswhitespace" => Transform::CompressWhitespace,
            "replacecomments" => Transform::ReplaceComments,
            "removecommentschar" => Transform::RemoveCommentsChar,
            "normalizepath" | "normalisepath" => Transform::NormalizePath,
            "normalizepathwin" | "normalisepathwin" => Transform::NormalizePathWin,
            "length" => Transform::Length,
            "base64decode" => Transform::Base64Decode,
            "sha1" => Transform::Sha1,
            "hexencode" => Transform::HexEncode,
            "trim" => Transform::Trim,
            other => return Err(format!("unknown transformation `{other}`")),
        })
    }

    /// Applies the transformation.
    pub fn apply<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        match self {
            Transform::Lowercase => {
                if input.iter().any(u8::is_ascii_uppercase) {
                    Cow::Owned(input.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(input)
                }
            }
            Transform::Uppercase => {
                if input.iter().any(u8::is_ascii_lowercase) {
                    Cow::Owned(input.to_ascii_uppercase())
                } else {
                    Cow::Borrowed(input)
                }
            }
            Transform::UrlDecode => decode::url_decode(input, false),
            Transform::UrlDecodeUni => decode::url_decode(input, true),
            Transform::JsDecode => decode::js_decode(input),
            Transform::CssDecode => decode::css_decode(input),
            Transform::HtmlEntityDecode => decode::html_entity_decode(input),
            Transform::EscapeSeqDecode => decode::escape_seq_decode(input),
            Transform::Utf8ToUnicode => decode::utf8_to_unicode(input),
            Transform::Base64Decode => Cow::Owned(decode::base64_decode(input)),
            Transform::RemoveNulls => {
                if input.contains(&0) {
                    Cow::Owned(input.iter().copied().filter(|&b| b != 0).collect())
                } else {
                    Cow::Borrowed(input)
                }
            }
            Transform::CmdLine => Cow::Owned(text::cmd_line(input)),
            Transform::RemoveWhitespace => text::remove_whitespace(input),
            Transform::CompressWhitespace => text::compress_whitespace(input),
            Transform::ReplaceComments => text::replace_comments(input),
            Transform::RemoveCommentsChar => text::remove_comments_char(input),
            Transform::NormalizePath => text::normalize_path(input, false),
            Transform::NormalizePathWin => text::normalize_path(input, true),
            Transform::Length => Cow::Owned(input.len().to_string().into_bytes()),
            Transform::Sha1 => Cow::Owned(sha1_smol::Sha1::from(input).digest().bytes().to_vec()),
            Transform::HexEncode => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut out = Vec::with_capacity(input.len() * 2);
                for &b in input {
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 15)]);
                }
                Cow::Owned(out)
            }
            Transform::Trim => {
                let is_ws = |b: &u8| b.is_ascii_whitespace() || *b == 0x0b;
                let start = input.iter().position(|b| !is_ws(b)).unwrap_or(input.len());
                let end = input
                    .iter()
                    .rposition(|b| !is_ws(b))
                    .map_or(start, |e| e + 1);
                Cow::Borrowed(input.get(start..end).unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, input: &str) -> String {
        String::from_utf8_lossy(&Transform::parse(name).unwrap().apply(input.as_bytes()))
            .into_owned()
    }

    #[test]
    fn simple_transformations() {
        assert_eq!(t("lowercase", "AbC"), "abc");
        assert_eq!(t("length", "abcd"), "4");
        assert_eq!(t("hexEncode", "a\n"), "610a");
        assert_eq!(t("trim", "  a b \t"), "a b");
        assert_eq!(t("removeNulls", "a\0b"), "ab");
        assert_eq!(
            Transform::Sha1.apply(b"abc").len(),
            20,
            "sha1 yields the raw digest"
        );
        let digest = Transform::Sha1.apply(b"abc").into_owned();
        assert_eq!(
            Transform::HexEncode.apply(&digest).as_ref(),
            b"a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn unknown_name_is_refused() {
        assert!(Transform::parse("rot13").is_err());
    }
}
