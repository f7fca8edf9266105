//! Reading a config: TOML text to a located, validated [`Config`].
//!
//! The text is parsed once into `toml`'s span-annotated tree; each top-level section
//! is then deserialized from its subtree on its own (so a broken `[dns]` does not
//! hide a broken `[storage]`), and, when all of them parsed, the cross-field rules
//! run. Every problem is turned into a [`Diagnostic`] with its position and field
//! path.

use serde::de::DeserializeOwned;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

use crate::locate::{Document, FieldPath};
use crate::{
    value, version, Config, ConfigErrors, Dhcp, Diagnostic, Dns, Image, Monitoring, Network,
    Services, Storage, System, Update, VERSION,
};

/// See [`crate::parse`].
pub(crate) fn parse(src: &str, file: &str) -> Result<Config, ConfigErrors> {
    let doc = Document::new(src);
    let located = |span: std::ops::Range<usize>, field: String, message: String| {
        let (line, col) = doc.line_col(span.start);
        Diagnostic {
            file: file.to_owned(),
            line,
            col,
            field,
            message,
        }
    };
    let mut errors = Vec::new();
    let config = match doc.root() {
        None => {
            // Not TOML at all: serde's error has the position.
            let e = toml::from_str::<toml::Table>(src)
                .err()
                .map(|e| (e.span().unwrap_or(0..0), e.message().to_owned()))
                .unwrap_or_else(|| (0..0, "not a TOML document".to_owned()));
            errors.push(located(e.0, String::new(), e.1));
            None
        }
        Some(root) => {
            let mut on_error = |e: SectionError| {
                let mut span = e.span;
                let mut field = e.field.unwrap_or_else(|| doc.path_at(&span));
                // A list item's error is positioned at the whole list; `value::list`
                // put the item's index in front of the message.
                let (indexes, message) = value::split_index(&e.message);
                if let Some(&i) = indexes.last() {
                    if doc.is_array(&field) && doc.span_of(&field) == span {
                        field = field.at(i);
                        span = doc.span_of(&field);
                    }
                }
                if let Some(missing) = missing_field(message) {
                    field = field.key(missing);
                }
                errors.push(located(span, field.to_string(), message.to_owned()));
            };
            parse_sections(root, &mut on_error)
        }
    };
    if let Some(config) = &config {
        for v in config.validate() {
            let span = doc.span_of(&v.field);
            errors.push(located(span, v.field.to_string(), v.message));
        }
    }
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => {
            errors.sort_by_key(|d| (d.line, d.col));
            Err(ConfigErrors { errors })
        }
    }
}

/// The field a serde "missing field `x`" message names.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

/// A problem found while deserializing sections, before it is located.
struct SectionError {
    span: std::ops::Range<usize>,
    message: String,
    /// Set when the span alone does not say which field is meant.
    field: Option<FieldPath>,
}

impl From<toml::de::Error> for SectionError {
    fn from(e: toml::de::Error) -> Self {
        Self {
            span: e.span().unwrap_or(0..0),
            message: e.message().to_owned(),
            field: None,
        }
    }
}

/// Deserializes each top-level section on its own so that every broken section is
/// reported, not just the first. Returns the config when all of them parsed.
fn parse_sections(
    root: &Spanned<toml::de::DeTable<'_>>,
    on_error: &mut dyn FnMut(SectionError),
) -> Option<Config> {
    let table = root.get_ref();
    let get = |key: &str| {
        table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v.clone())
    };
    fn section<T: DeserializeOwned>(
        value: Option<Spanned<DeValue<'_>>>,
        on_error: &mut dyn FnMut(SectionError),
    ) -> Option<Option<T>> {
        match value {
            None => Some(None),
            Some(v) => match T::deserialize(ValueDeserializer::from(v)) {
                Ok(t) => Some(Some(t)),
                Err(e) => {
                    on_error(e.into());
                    None
                }
            },
        }
    }
    const KNOWN: [&str; 10] = [
        "version",
        "system",
        "image",
        "network",
        "dns",
        "dhcp",
        "storage",
        "services",
        "monitoring",
        "update",
    ];
    let mut ok = true;
    for (key, _) in table.iter() {
        if !KNOWN.contains(&key.get_ref().as_ref()) {
            on_error(SectionError {
                span: key.span(),
                message: format!(
                    "unknown section `{}`, expected one of {}",
                    key.get_ref(),
                    KNOWN.join(", ")
                ),
                field: None,
            });
            ok = false;
        }
    }
    let version = match get("version") {
        None => {
            on_error(SectionError {
                span: 0..0,
                message: format!("missing `version = {VERSION}` at the top of the file"),
                field: Some(FieldPath::new("version")),
            });
            None
        }
        Some(v) => {
            let span = v.span();
            match version(ValueDeserializer::from(v)) {
                Ok(v) => Some(v),
                Err(e) => {
                    on_error(SectionError {
                        span,
                        message: e.message().to_owned(),
                        field: Some(FieldPath::new("version")),
                    });
                    None
                }
            }
        }
    };
    let system = section::<System>(get("system"), on_error);
    if matches!(system, Some(None)) {
        on_error(SectionError {
            span: 0..0,
            message: "missing section [system] (it needs at least `hostname`)".to_owned(),
            field: Some(FieldPath::new("system")),
        });
    }
    let image = section::<Image>(get("image"), on_error);
    let network = section::<Network>(get("network"), on_error);
    let dns = section::<Dns>(get("dns"), on_error);
    let dhcp = section::<Dhcp>(get("dhcp"), on_error);
    let storage = section::<Storage>(get("storage"), on_error);
    let services = section::<Services>(get("services"), on_error);
    let monitoring = section::<Monitoring>(get("monitoring"), on_error);
    let update = section::<Update>(get("update"), on_error);
    Some(Config {
        version: version?,
        system: system.flatten()?,
        image: image?.unwrap_or_default(),
        network: network?.unwrap_or_default(),
        dns: dns?.unwrap_or_default(),
        dhcp: dhcp?.unwrap_or_default(),
        storage: storage?.unwrap_or_default(),
        services: services?.unwrap_or_default(),
        monitoring: monitoring?.unwrap_or_default(),
        update: update?,
    })
    .filter(|_| ok)
}
