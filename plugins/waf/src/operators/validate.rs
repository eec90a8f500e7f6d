//! Helpers of the validating operators.

/// Parses `@validateByteRange` arguments (`9,10,13,32-126`) into the set of
/// allowed bytes.
pub fn byte_ranges(arg: &str) -> Result<[bool; 256], String> {
    let mut allowed = [false; 256];
    for part in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("`{part}` is not a byte or byte range (0-255)");
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u8 = a.parse().map_err(|_| bad())?;
        let b: u8 = b.parse().map_err(|_| bad())?;
        if a > b {
            return Err(bad());
        }
        for v in a..=b {
            allowed[usize::from(v)] = true;
        }
    }
    Ok(allowed)
}

/// True when a `%` is not followed by two hex digits.
pub fn bad_url_encoding(v: &[u8]) -> bool {
    v.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(v.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && v.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = byte_ranges("9, 32-34").unwrap();
        assert!(r[9] && r[32] && r[34] && !r[35] && !r[10]);
        assert!(byte_ranges("300").is_err());
        assert!(byte_ranges("5-1").is_err());
    }

    #[test]
    fn url_encoding() {
        assert!(bad_url_encoding(b"a%2"));
        assert!(!bad_url_encoding(b"a%20"));
    }
}
