//! The validation error shared by the whole data model.
//!
//! Role: say which field of a write is wrong, what is wrong with it and what to do instead.
//! Inputs: the checks in the sibling modules. Output: [`ValidationError`], whose `field` is the bare field
//! name (`dst_ports`, `as_num`, …) and whose optional `context` locates the object (`inbound rule 2`,
//! `peer 10.0.0.1`), so an API can answer `{"error": "...", "field": "dst_ports"}`.

use std::fmt;

/// A rejected value: the field it was in and why it was rejected, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{field}: {reason}", Ctx(.context))]
pub struct ValidationError {
    /// The field's name as it appears in JSON (e.g. `dst_ports`).
    pub field: String,
    /// What is wrong and why, e.g. "ports are only allowed with protocol tcp or udp".
    pub reason: String,
    /// Where the field is, outermost first (e.g. `inbound rule 2`), if it is inside a list.
    pub context: Option<String>,
}

struct Ctx<'a>(&'a Option<String>);

impl fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, "{c}: "),
            None => Ok(()),
        }
    }
}

impl ValidationError {
    /// An error in `field`, with a reason.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            reason: reason.into(),
            context: None,
        }
    }

    /// Locate the error inside a larger object: `ctx` is prepended to any context already present.
    #[must_use]
    pub fn within(mut self, ctx: impl Into<String>) -> Self {
        let ctx = ctx.into();
        self.context = Some(match self.context.take() {
            Some(inner) => format!("{ctx}, {inner}"),
            None => ctx,
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_field_and_context() {
        let e = ValidationError::new("dst_ports", "must not be empty");
        assert_eq!(e.to_string(), "dst_ports: must not be empty");
        let e = e.within("inbound rule 2").within("profile WEB");
        assert_eq!(e.field, "dst_ports");
        assert_eq!(
            e.to_string(),
            "profile WEB, inbound rule 2: dst_ports: must not be empty"
        );
    }
}
