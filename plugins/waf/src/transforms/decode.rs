//! Decoding transformations: URL, JavaScript, CSS, HTML entities, C escapes,
//! UTF-8 to `%u`, base64. Invalid sequences are kept as they are.

use std::borrow::Cow;

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_at(input: &[u8], i: usize, n: usize) -> Option<u32> {
    let digits = input.get(i..i + n)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + u32::from(hex_val(d)?);
    }
    Some(v)
}

/// A `%u`/`\u` code point as one byte, as ModSecurity does: full-width
/// ASCII (U+FF01..U+FF5E) maps to ASCII, anything else keeps its low byte.
fn unicode_to_byte(code: u32) -> u8 {
    if (0xFF01..=0xFF5E).contains(&code) {
        (code - 0xFEE0) as u8
    } else {
        (code & 0xFF) as u8
    }
}

/// Percent escapes (`%` and two hex digits) and `+`; with `uni`, also
/// `%u` and four hex digits.
pub fn url_decode(input: &[u8], uni: bool) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                if uni && matches!(input.get(i + 1), Some(b'u' | b'U')) {
                    if let Some(code) = hex_at(input, i + 2, 4) {
                        out.push(unicode_to_byte(code));
                        i += 6;
                        continue;
                    }
                }
                match hex_at(input, i + 1, 2) {
                    Some(v) => {
                        out.push(v as u8);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// JavaScript escapes: `\uHHHH`, `\xHH`, octal, `\n` and friends, `\c`.
pub fn js_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.contains(&b'\\') {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&n) = input.get(i + 1) else {
            out.push(b);
            i += 1;
            continue;
        };
        match n {
            b'u' => {
                if let Some(code) = hex_at(input, i + 2, 4) {
                    out.push(unicode_to_byte(code));
                    i += 6;
                } else {
                    out.push(b'u');
                    i += 2;
                }
            }
            b'x' => {
                if let Some(v) = hex_at(input, i + 2, 2) {
                    out.push(v as u8);
                    i += 4;
                } else {
                    out.push(b'x');
                    i += 2;
                }
            }
            b'0'..=b'7' => {
                let mut v: u32 = 0;
                let mut j = i + 1;
                while j < i + 4 {
                    match input.get(j) {
                        Some(&d @ b'0'..=b'7') if v * 8 + u32::from(d - b'0') <= 0o377 => {
                            v = v * 8 + u32::from(d - b'0');
                            j += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
                i = j;
            }
            _ => {
                out.push(match n {
                    b'a' => 7,
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => 11,
                    other => other,
                });
                i += 2;
            }
        }
    }
    Cow::Owned(out)
}

/// CSS escapes: `\` + 1-6 hex digits (one following white space eaten),
/// `\` + newline dropped, `\` + other character kept without the backslash.
pub fn css_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.contains(&b'\\') {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut code: u32 = 0;
        while j < i + 7 {
            match input.get(j).and_then(|&d| hex_val(d)) {
                Some(v) => {
                    code = code * 16 + u32::from(v);
                    j += 1;
                }
                None => break,
            }
        }
        if j > i + 1 {
            out.push(unicode_to_byte(code));
            if input.get(j).is_some_and(|c| c.is_ascii_whitespace()) {
                j += 1;
            }
            i = j;
        } else {
            match input.get(i + 1) {
                Some(b'\n') => i += 2,
                Some(&c) => {
                    out.push(c);
                    i += 2;
                }
                None => i += 1,
            }
        }
    }
    Cow::Owned(out)
}

/// HTML entities: numeric (`&#65;`, `&#x41;`) and `quot`, `amp`, `lt`,
/// `gt`, `nbsp`, `apos`, with or without the final `;`.
pub fn html_entity_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.contains(&b'&') {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b != b'&' {
            out.push(b);
            i += 1;
            continue;
        }
        let rest = input.get(i + 1..).unwrap_or_default();
        if let Some(num) = rest.strip_prefix(b"#") {
            let (hex, digits) = match num.first() {
                Some(b'x' | b'X') => (true, num.get(1..).unwrap_or_default()),
                _ => (false, num),
            };
            let n = digits
                .iter()
                .take_while(|d| {
                    if hex {
                        d.is_ascii_hexdigit()
                    } else {
                        d.is_ascii_digit()
                    }
                })
                .count();
            if n > 0 {
                let mut v: u32 = 0;
                for &d in digits.iter().take(n) {
                    let dv = u32::from(hex_val(d).unwrap_or(0));
                    v = v
                        .saturating_mul(if hex { 16 } else { 10 })
                        .saturating_add(dv);
                }
                out.push((v & 0xFF) as u8);
                let mut consumed = 1 + 1 + usize::from(hex) + n;
                if input.get(i + consumed) == Some(&b';') {
                    consumed += 1;
                }
                i += consumed;
                continue;
            }
        } else {
            let named: [(&[u8], u8); 6] = [
                (b"quot", b'"'),
                (b"amp", b'&'),
                (b"lt", b'<'),
                (b"gt", b'>'),
                (b"nbsp", 0xA0),
                (b"apos", b'\''),
            ];
            let lower: Vec<u8> = rest.iter().take(4).map(u8::to_ascii_lowercase).collect();
            if let Some((name, v)) = named.iter().find(|(n, _)| lower.starts_with(n)) {
                out.push(*v);
                let mut consumed = 1 + name.len();
                if input.get(i + consumed) == Some(&b';') {
                    consumed += 1;
                }
                i += consumed;
                continue;
            }
        }
        out.push(b'&');
        i += 1;
    }
    Cow::Owned(out)
}

/// ANSI C escapes: `\a \b \f \n \r \t \v \\ \? \' \"`, `\xHH`, `\OOO`.
pub fn escape_seq_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.contains(&b'\\') {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&n) = input.get(i + 1) else {
            out.push(b);
            i += 1;
            continue;
        };
        let simple = match n {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' | b'?' | b'\'' | b'"' => Some(n),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
            i += 2;
        } else if n == b'x' {
            match hex_at(input, i + 2, 2) {
                Some(v) => {
                    out.push(v as u8);
                    i += 4;
                }
                None => {
                    out.push(b'\\');
                    i += 1;
                }
            }
        } else if (b'0'..=b'7').contains(&n) {
            let mut v: u32 = 0;
            let mut j = i + 1;
            while j < i + 4 {
                match input.get(j) {
                    Some(&d @ b'0'..=b'7') => {
                        v = v * 8 + u32::from(d - b'0');
                        j += 1;
                    }
                    _ => break,
                }
            }
            out.push((v & 0xFF) as u8);
            i = j;
        } else {
            out.push(b'\\');
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Multi-byte UTF-8 characters become `%uHHHH` (lower-case hex); ASCII and
/// invalid bytes stay.
pub fn utf8_to_unicode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_ascii() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() * 2);
    let mut rest = input;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_unicode(&mut out, s);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                push_unicode(&mut out, std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(after.len()).min(after.len());
                out.extend_from_slice(after.get(..bad).unwrap_or_default());
                rest = after.get(bad..).unwrap_or_default();
            }
        }
    }
    Cow::Owned(out)
}

fn push_unicode(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            out.extend_from_slice(format!("%u{:04x}", u32::from(c) & 0xFFFF).as_bytes());
        }
    }
}

/// Base64 (standard and URL alphabets), ignoring white space and stopping
/// at the first other invalid character or `=`.
pub fn base64_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in input {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => break,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(c: Cow<'_, [u8]>) -> Vec<u8> {
        c.into_owned()
    }

    #[test]
    fn url_decoding() {
        assert_eq!(s(url_decode(b"a%20b+c%zz%", false)), b"a b c%zz%");
        assert_eq!(s(url_decode(b"%u0041%uff0e", true)), b"A.");
    }

    #[test]
    fn js_decoding() {
        assert_eq!(s(js_decode(br"\x41\u0042\103\n\q")), b"ABC\nq");
    }

    #[test]
    fn css_decoding() {
        assert_eq!(s(css_decode(br"\6a \61vascript")), b"javascript");
        assert_eq!(s(css_decode(b"a\\\nb\\;")), b"ab;");
    }

    #[test]
    fn html_entities() {
        assert_eq!(
            s(html_entity_decode(b"&lt;a&#62;&#x41&quot;&zz")),
            b"<a>A\"&zz"
        );
    }

    #[test]
    fn c_escapes() {
        assert_eq!(s(escape_seq_decode(br"\x41\101\n\\\z")), b"AA\n\\\\z");
    }

    #[test]
    fn utf8_to_percent_u() {
        assert_eq!(
            s(utf8_to_unicode("aé\u{ff1c}".as_bytes())),
            b"a%u00e9%uff1c"
        );
        assert_eq!(s(utf8_to_unicode(b"a\xffb")), b"a\xffb");
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode(b"aGVsbG8="), b"hello");
        assert_eq!(base64_decode(b"aGV sbG8!xx"), b"hello");
    }
}
