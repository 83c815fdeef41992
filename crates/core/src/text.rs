//! Validated free text: trimmed, non-empty, bounded, free of control characters.
//!
//! Every human-written field that reaches the control log passes through here,
//! so the log never holds an empty reason or a string that breaks a terminal.

use serde::{Deserialize, Serialize};

/// The longest free-text field accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Free text a person wrote: a purpose, a reason, a description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text(String);

impl Text {
    /// Checks `raw` and keeps it trimmed; `field` names it in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(format!("{field} is empty"));
        }
        if trimmed.chars().count() > MAX_TEXT_CHARS {
            return Err(format!("{field} is longer than {MAX_TEXT_CHARS} characters"));
        }
        let control = trimmed.chars().find(|c| c.is_control() && *c != '\n' && *c != '\t');
        if let Some(c) = control {
            return Err(format!("{field} contains the control character U+{:04X}", c as u32));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Text the program itself wrote, known to be valid.
    pub(crate) fn literal(text: &'static str) -> Self {
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Text {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse("text", &raw)
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.0
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_empty_is_refused() {
        assert_eq!(Text::parse("reason", "  why  ").unwrap().as_str(), "why");
        assert_eq!(Text::parse("reason", "   ").unwrap_err(), "reason is empty");
    }

    #[test]
    fn text_refuses_control_characters_but_keeps_newlines() {
        assert!(Text::parse("notes", "line one\nline two").is_ok());
        let err = Text::parse("notes", "bell\u{7}").unwrap_err();
        assert_eq!(err, "notes contains the control character U+0007");
    }
}
