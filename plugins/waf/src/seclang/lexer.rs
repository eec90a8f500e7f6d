//! Splitting rule text into directives and directives into words.
//!
//! A directive may span lines ending in `\`; lines starting with `#` (after
//! white space) are comments. Words are separated by white space; a word in
//! double quotes may contain white space and `\"` for a quote (other
//! backslashes are kept, as ModSecurity does, so regexes stay intact).

/// One directive: its words and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalLine {
    /// Line number of the first physical line.
    pub line: usize,
    /// The joined text, continuations removed.
    pub text: String,
}

/// Joins continuation lines and drops comments and blank lines.
pub fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let mut out = Vec::new();
    let mut current: Option<LogicalLine> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if current.is_none() {
            let t = raw.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
        }
        let (body, continues) = match raw.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (raw, false),
        };
        let entry = current.get_or_insert_with(|| LogicalLine {
            line: line_no,
            text: String::new(),
        });
        entry.text.push_str(body);
        if !continues {
            if let Some(done) = current.take() {
                if !done.text.trim().is_empty() {
                    out.push(done);
                }
            }
        }
    }
    if let Some(done) = current.take() {
        if !done.text.trim().is_empty() {
            out.push(done);
        }
    }
    out
}

/// Splits a directive into words, honouring double quotes.
///
/// Returns an error message when a quote is left open.
pub fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'"') => {
                        chars.next();
                        word.push('"');
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => word.push(c),
                }
            }
            if !closed {
                return Err("a double quote is not closed".to_string());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_join_and_comments_drop() {
        let text = "# c\nSecRule A \\\n  \"@rx b\" \\\n  \"id:1\"\n\n  # x\nSecMarker M\n";
        let lines = logical_lines(text);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, 2);
        assert_eq!(lines[0].text, "SecRule A   \"@rx b\"   \"id:1\"");
        assert_eq!(lines[1].line, 7);
    }

    #[test]
    fn quoted_words_keep_backslashes() {
        let w = words(r#"SecRule ARGS "@rx a\"b\d" "id:1,msg:'x y'""#).unwrap();
        assert_eq!(w, vec!["SecRule", "ARGS", "@rx a\"b\\d", "id:1,msg:'x y'"]);
    }

    #[test]
    fn open_quote_is_an_error() {
        assert!(words("SecRule ARGS \"@rx a").is_err());
    }
}
