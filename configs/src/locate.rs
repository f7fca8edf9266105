//! Where in the file a field lives.
//!
//! serde reports *what* is wrong; this module answers *where*. `Document` keeps the
//! span-annotated tree `toml` parses (`DeTable`), so every diagnostic can carry
//! `line:col` and a field path like `network.segments[1].vlan`, in both directions:
//! a parse error's byte span is mapped to the deepest field it falls on, and a
//! validation rule's field path is mapped back to the value's span. Values that are
//! absent (filled by a default) resolve to the nearest enclosing table that exists.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a field path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A path to a field in the config, rendered as `network.segments[1].vlan`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Step>);

impl FieldPath {
    /// The document root (renders as the empty string).
    pub fn root() -> Self {
        Self::default()
    }

    /// A path of dotted keys, e.g. `"network.segments"`.
    pub fn new(dotted: &str) -> Self {
        Self(
            dotted
                .split('.')
                .filter(|k| !k.is_empty())
                .map(|k| Step::Key(k.to_owned()))
                .collect(),
        )
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        Self(steps)
    }

    /// This path extended by an array index.
    pub fn at(&self, index: usize) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        Self(steps)
    }

    fn depth(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A parsed TOML document kept for locating fields. Holds no tree when the text is
/// not even TOML (then every lookup lands on the error's own span or the file start).
pub(crate) struct Document<'a> {
    src: &'a str,
    root: Option<Spanned<DeTable<'a>>>,
}

/// A node of the flattened tree: its path, the span of its key (if it has one) and
/// the span of its value.
struct Node {
    path: FieldPath,
    key: Option<Range<usize>>,
    value: Range<usize>,
}

impl<'a> Document<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Self {
            src,
            root: DeTable::parse(src).ok(),
        }
    }

    /// The span-annotated root table, when the text is valid TOML.
    pub(crate) fn root(&self) -> Option<&Spanned<DeTable<'a>>> {
        self.root.as_ref()
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let before = &self.src[..floor_char_boundary(self.src, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// The span of the value at `path`, or of its nearest existing ancestor.
    pub(crate) fn span_of(&self, path: &FieldPath) -> Range<usize> {
        let Some(root) = &self.root else {
            return 0..0;
        };
        let mut best = root.span();
        let mut value: &DeValue<'_>;
        let mut table = Some(root.get_ref());
        let mut array = None;
        for step in &path.0 {
            let next = match (step, table, array) {
                (Step::Key(k), Some(t), _) => find_key(t, k),
                (Step::Index(i), _, Some(a)) => array_get(a, *i),
                _ => None,
            };
            let Some(next) = next else { break };
            best = next.span();
            value = next.get_ref();
            table = value.as_table();
            array = value.as_array();
        }
        best
    }

    /// Whether the value at `path` exists and is an array.
    pub(crate) fn is_array(&self, path: &FieldPath) -> bool {
        let Some(root) = &self.root else {
            return false;
        };
        let mut value: Option<&DeValue<'_>> = None;
        for step in &path.0 {
            let next = match (step, value) {
                (Step::Key(k), None) => find_key(root.get_ref(), k),
                (Step::Key(k), Some(v)) => v.as_table().and_then(|t| find_key(t, k)),
                (Step::Index(i), Some(v)) => v.as_array().and_then(|a| array_get(a, *i)),
                (Step::Index(_), None) => None,
            };
            match next {
                Some(n) => value = Some(n.get_ref()),
                None => return false,
            }
        }
        value.is_some_and(DeValue::is_array)
    }

    /// The deepest field path a parse error's span falls on.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> FieldPath {
        let Some(root) = &self.root else {
            return FieldPath::root();
        };
        let mut nodes = Vec::new();
        flatten_table(root.get_ref(), &FieldPath::root(), &mut nodes);
        let exact = nodes
            .iter()
            .filter(|n| n.value == *span || n.key.as_ref() == Some(span))
            .max_by_key(|n| n.path.depth());
        if let Some(node) = exact {
            return node.path.clone();
        }
        nodes
            .iter()
            .filter(|n| n.value.start <= span.start && span.start < n.value.end)
            .min_by_key(|n| (n.value.len(), usize::MAX - n.path.depth()))
            .map(|n| n.path.clone())
            .unwrap_or_default()
    }
}

fn find_key<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

fn array_get<'a, 'i>(
    array: &'a toml::de::DeArray<'i>,
    index: usize,
) -> Option<&'a Spanned<DeValue<'i>>> {
    array.get(index)
}

fn flatten_table(table: &DeTable<'_>, at: &FieldPath, out: &mut Vec<Node>) {
    for (key, value) in table.iter() {
        let path = at.key(key.get_ref());
        out.push(Node {
            path: path.clone(),
            key: Some(key.span()),
            value: value.span(),
        });
        flatten_value(value.get_ref(), &path, out);
    }
}

fn flatten_value(value: &DeValue<'_>, at: &FieldPath, out: &mut Vec<Node>) {
    match value {
        DeValue::Table(t) => flatten_table(t, at, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let path = at.at(i);
                out.push(Node {
                    path: path.clone(),
                    key: None,
                    value: item.span(),
                });
                flatten_value(item.get_ref(), &path, out);
            }
        }
        _ => {}
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "version = 1\n[[network.segments]]\nname = \"a\"\nvlan = 5000\n\n[[network.segments]]\nname = \"b\"\n";

    #[test]
    fn renders_paths() {
        let p = FieldPath::new("network.segments").at(1).key("vlan");
        assert_eq!(p.to_string(), "network.segments[1].vlan");
        assert_eq!(FieldPath::root().to_string(), "");
    }

    #[test]
    fn path_to_span_and_back() {
        let doc = Document::new(SRC);
        let span = doc.span_of(&FieldPath::new("network.segments").at(0).key("vlan"));
        assert_eq!(&SRC[span.clone()], "5000");
        assert_eq!(doc.line_col(span.start), (4, 8));
        assert_eq!(
            doc.path_at(&span).to_string(),
            "network.segments[0].vlan".to_owned()
        );
    }

    #[test]
    fn missing_field_falls_back_to_its_table() {
        let doc = Document::new(SRC);
        let span = doc.span_of(&FieldPath::new("network.segments").at(1).key("vlan"));
        assert_eq!(&SRC[span.clone()], "[[network.segments]]");
        assert_eq!(doc.line_col(span.start), (6, 1));
        assert_eq!(doc.path_at(&span).to_string(), "network.segments[1]");
    }
}
