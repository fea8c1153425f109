//! Rule text: the calicoctl `rule_spec` grammar and the `rule show` listing.
//!
//! Role: turn the CLI's words into a [`crate::model::Rule`] and back. Inputs: token lists as the shell
//! splits them (`["allow", "tcp", "to", "ports", "80,443"]`). Outputs: validated rules, or a
//! [`grammar::RuleSpecError`] naming the offending word; and text for `calicoctl profile <P> rule show`.

pub mod grammar;

pub use grammar::{format_rule, format_rules_show, parse_rule, parse_rule_str, RuleSpecError};
