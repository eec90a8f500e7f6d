//! Text-shaping transformations: white space, comments, command lines and
//! paths.

use std::borrow::Cow;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0)
}

/// ModSecurity's `cmdLine`: drop `\ " ' ^`, drop white space before `/`
/// and `(`, turn `,` and `;` into spaces, compress white space, lower-case.
pub fn cmd_line(input: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    let mut pending_space = false;
    for &b in input {
        match b {
            b'\\' | b'"' | b'\'' | b'^' => {}
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b';' | 0x0b | 0x0c => pending_space = true,
            b'/' | b'(' => {
                pending_space = false;
                out.push(b);
            }
            _ => {
                if pending_space && !out.is_empty() {
                    out.push(b' ');
                }
                pending_space = false;
                out.push(b.to_ascii_lowercase());
            }
        }
    }
    if pending_space && !out.is_empty() {
        out.push(b' ');
    }
    out
}

/// Drops every white-space byte (including NBSP 0xA0).
pub fn remove_whitespace(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| is_space(b)) {
        return Cow::Borrowed(input);
    }
    Cow::Owned(input.iter().copied().filter(|&b| !is_space(b)).collect())
}

/// Runs of white space become one space.
pub fn compress_whitespace(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| is_space(b) && b != b' ') && !input.windows(2).any(|w| w == b"  ") {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut in_space = false;
    for &b in input {
        if is_space(b) {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            in_space = false;
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// `/* ... */` becomes one space; an unterminated comment runs to the end.
pub fn replace_comments(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.windows(2).any(|w| w == b"/*") {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input.get(i..i + 2) == Some(b"/*") {
            out.push(b' ');
            match input
                .get(i + 2..)
                .and_then(|r| r.windows(2).position(|w| w == b"*/"))
            {
                Some(p) => i = i + 2 + p + 2,
                None => break,
            }
        } else {
            if let Some(&b) = input.get(i) {
                out.push(b);
            }
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Drops `/*`, `*/`, `--` and `#`.
pub fn remove_comments_char(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut changed = false;
    while let Some(&b) = input.get(i) {
        let two = input.get(i..i + 2);
        if matches!(two, Some(b"/*" | b"*/" | b"--")) {
            i += 2;
            changed = true;
        } else if b == b'#' {
            i += 1;
            changed = true;
        } else {
            out.push(b);
            i += 1;
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(input)
    }
}

/// Resolves `.` and `..` segments and collapses repeated `/`; with `win`,
/// `\` counts as `/` first.
pub fn normalize_path(input: &[u8], win: bool) -> Cow<'_, [u8]> {
    let owned;
    let input: &[u8] = if win && input.contains(&b'\\') {
        owned = input
            .iter()
            .map(|&b| if b == b'\\' { b'/' } else { b })
            .collect::<Vec<u8>>();
        &owned
    } else {
        input
    };
    let absolute = input.first() == Some(&b'/');
    let trailing = input.last() == Some(&b'/')
        || input.ends_with(b"/.")
        || input.ends_with(b"/..")
        || input == b"."
        || input == b"..";
    let mut segs: Vec<&[u8]> = Vec::new();
    for seg in input.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if matches!(segs.last(), Some(s) if *s != b"..") {
                    segs.pop();
                } else if !absolute {
                    segs.push(seg);
                }
            }
            _ => segs.push(seg),
        }
    }
    let mut out = Vec::with_capacity(input.len());
    if absolute {
        out.push(b'/');
    }
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(s);
    }
    if trailing && !segs.is_empty() {
        out.push(b'/');
    }
    if out == input {
        Cow::Owned(input.to_vec())
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_line_normalises() {
        assert_eq!(
            cmd_line(b"C:\\W\"in\\ ^dows  /c ,Dir;x"),
            b"c:win dows/c dir x"
        );
    }

    #[test]
    fn whitespace() {
        assert_eq!(remove_whitespace(b" a\tb\n").as_ref(), b"ab");
        assert_eq!(compress_whitespace(b"a \t\n b").as_ref(), b"a b");
    }

    #[test]
    fn comments() {
        assert_eq!(replace_comments(b"a/*x*/b/*c").as_ref(), b"a b ");
        assert_eq!(remove_comments_char(b"a/*b*/c--d#e").as_ref(), b"abcde");
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_path(b"/a/./b/../c//d", false).as_ref(), b"/a/c/d");
        assert_eq!(
            normalize_path(b"/../../etc/passwd", false).as_ref(),
            b"/etc/passwd"
        );
        assert_eq!(normalize_path(b"a/../../x/", false).as_ref(), b"../x/");
        assert_eq!(normalize_path(b"\\a\\..\\b", true).as_ref(), b"/b");
    }
}
