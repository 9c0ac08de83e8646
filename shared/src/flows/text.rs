//! Message text with contact fields: `Hi {{name|there}}!` says "Hi Ana!" to Ana and "Hi there!"
//! to a contact without a name. `{{reply}}` is the customer's latest reply in the run.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TextTemplate(String);

/// One piece of a template: literal text or a placeholder.
enum Piece<'a> {
    Literal(&'a str),
    Field { name: &'a str, default: &'a str },
}

fn pieces(raw: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(open) = rest.find("{{") {
        out.push(Piece::Literal(&rest[..open]));
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` at character {} is never closed", raw.len() - rest.len() + open))?;
        let inner = &after[..close];
        let (name, default) = inner.split_once('|').unwrap_or((inner, ""));
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("`{{{{{inner}}}}}` is not a field name (letters, digits, _ and -)"));
        }
        out.push(Piece::Field { name, default });
        rest = &after[close + 2..];
    }
    out.push(Piece::Literal(rest));
    Ok(out)
}

impl TextTemplate {
    pub fn parse(raw: impl Into<String>) -> Result<Self, String> {
        let raw = raw.into();
        if raw.trim().is_empty() {
            return Err("must not be empty".into());
        }
        pieces(&raw)?;
        Ok(Self(raw))
    }

    /// The text with each placeholder replaced by its field's value, or its default when the
    /// field is missing or empty.
    pub fn render(&self, field: impl Fn(&str) -> Option<String>) -> String {
        let parsed = pieces(&self.0).expect("parsed when built");
        let mut out = String::with_capacity(self.0.len());
        for piece in parsed {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Field { name, default } => match field(name).filter(|v| !v.trim().is_empty()) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(default),
                },
            }
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TextTemplate {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(raw)
    }
}

impl From<TextTemplate> for String {
    fn from(t: TextTemplate) -> String {
        t.0
    }
}

impl fmt::Display for TextTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana(field: &str) -> Option<String> {
        (field == "name").then(|| "Ana".to_owned())
    }

    #[test]
    fn fields_are_filled_in_and_missing_ones_take_their_default() {
        let t = TextTemplate::parse("Hi {{name|there}}, your plan is {{plan|free}}.").unwrap();
        assert_eq!(t.render(ana), "Hi Ana, your plan is free.");
        assert_eq!(t.render(|_| None), "Hi there, your plan is free.");
    }

    #[test]
    fn an_empty_value_counts_as_missing_and_no_default_is_empty() {
        let t = TextTemplate::parse("[{{city}}] {{name|friend}}").unwrap();
        assert_eq!(t.render(|_| Some("  ".into())), "[] friend");
    }

    #[test]
    fn unclosed_or_odd_placeholders_are_refused() {
        assert!(TextTemplate::parse("Hi {{name").unwrap_err().contains("never closed"));
        assert!(TextTemplate::parse("Hi {{ }}").unwrap_err().contains("not a field name"));
        assert!(TextTemplate::parse("Hi {{na me}}").is_err());
        assert!(TextTemplate::parse("   ").is_err());
    }
}
