//! A small deb822 reader (the `Key: value` paragraph format of `Packages`,
//! `InRelease` and `.sources` files).
//!
//! It borrows from the input: single-line values are slices, only folded (multi-line)
//! values are joined into new strings. That keeps a 70k-paragraph `Packages` file in
//! the hundreds of milliseconds. Lines starting with `#` are comments (allowed in
//! `.sources` files, never present in archive indexes).

use std::borrow::Cow;

/// One paragraph: its fields in order and the 1-based line it starts on.
#[derive(Debug, Default)]
pub struct Paragraph<'a> {
    pub line: usize,
    pub fields: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Paragraph<'a> {
    /// The value of a field (field names are case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_ref())
    }
}

/// A line that is neither a field, a continuation, a comment nor blank.
#[derive(Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses all paragraphs of `text`.
pub fn parse(text: &str) -> Result<Vec<Paragraph<'_>>, SyntaxError> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = cur.fields.last_mut() else {
                return Err(SyntaxError {
                    line: lineno,
                    message: "continuation line without a field".into(),
                });
            };
            let cont = line.trim();
            let cont = if cont == "." { "" } else { cont };
            let joined = value.to_mut();
            joined.push('\n');
            joined.push_str(cont);
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(SyntaxError {
                line: lineno,
                message: format!("expected `Field: value`, found `{line}`"),
            });
        };
        if cur.fields.is_empty() {
            cur.line = lineno;
        }
        cur.fields.push((key.trim(), Cow::Borrowed(value.trim())));
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_fields_and_continuations() {
        let text = "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n more\n\n\n\
                    # comment\npackage: b\r\nDepends: c (>= 1),\n d\n";
        let p = parse(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].get("package"), Some("a"));
        assert_eq!(p[0].get("Description"), Some("short\nlong line\n\nmore"));
        assert_eq!(p[1].line, 10);
        assert_eq!(p[1].get("Package"), Some("b"));
        assert_eq!(p[1].get("Depends"), Some("c (>= 1),\nd"));
        assert_eq!(p[1].get("Version"), None);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("Package: a\nnonsense\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse(" leading continuation\n").unwrap_err();
        assert_eq!(err.line, 1);
    }
}
