//! The calicoctl `rule_spec` grammar: parser and printer.
//!
//! ```text
//! rule_spec = (allow|deny) [ (tcp|udp) [from [ports P] [tag T] [CIDR]] [to [ports P] [tag T] [CIDR]]
//!                          | (icmp|icmpv6) [type T [code C]] [from [tag T] [CIDR]] [to [tag T] [CIDR]]
//!                          | <protocol number> [from [tag T] [CIDR]] [to [tag T] [CIDR]]
//!                          | [from [tag T] [CIDR]] [to [tag T] [CIDR]] ]
//! P = 80,443,2048:4000     CIDR = 10.0.0.0/8 | fd00::/64 | a bare address (/32, /128)
//! ```
//!
//! This is the original v0.4 grammar plus two extensions so that every stored rule can be printed and
//! parsed back: the `icmpv6` keyword and a numeric protocol. As in the original, the CIDRs decide the
//! rule's `ip_version` and `icmp` with an IPv6 CIDR becomes `icmpv6`; in addition `icmp` without a CIDR
//! gets `ip_version` 4 and `icmpv6` gets 6, so the rule is never rendered for the wrong family. Inside a
//! `from`/`to` clause `ports`, `tag` and the CIDR may come in any order (each at most once); the printer
//! writes them in the grammar's order. A clause may not be empty (`allow from` alone is an error).
//!
//! The printer follows the original's `Rule.pprint()`. `parse(format(r)) == r` for every rule the parser
//! can produce; a stored rule whose `ip_version` is not implied by its CIDRs or protocol (e.g. a bare
//! `{"action":"allow","ip_version":6}` from `rule update`) prints without it.
//!
//! Inputs: token slices (or a string split on whitespace). Outputs: [`Rule`] or [`RuleSpecError`], and text.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    format_ports, parse_ports, validate_name, Action, IpVersion, PortRange, Protocol, Rule, Rules,
    ValidationError,
};

/// Why a rule_spec was rejected. Word positions are 1-based, counting from the action word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSpecError {
    /// No words at all.
    #[error("empty rule: a rule starts with `allow` or `deny`")]
    Empty,
    /// A word is wrong here.
    #[error("`{token}` (word {position}): {reason}")]
    Token {
        /// 1-based position of the word.
        position: usize,
        /// The word itself.
        token: String,
        /// What was expected instead.
        reason: String,
    },
    /// The rule stops where more was needed.
    #[error("the rule ends too early: {0}")]
    UnexpectedEnd(String),
    /// The words parse but the rule they make is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl RuleSpecError {
    /// The field to report in an API error body: the rule field for a validation error, else
    /// `rule_spec`.
    pub fn field(&self) -> &str {
        match self {
            RuleSpecError::Invalid(e) => &e.field,
            _ => "rule_spec",
        }
    }
}

struct Cursor<'a, S> {
    toks: &'a [S],
    i: usize,
}

impl<'a, S: AsRef<str>> Cursor<'a, S> {
    fn peek(&self) -> Option<&'a str> {
        let toks: &'a [S] = self.toks;
        toks.get(self.i).map(AsRef::as_ref)
    }

    fn next(&mut self) -> Option<&'a str> {
        let toks: &'a [S] = self.toks;
        let t = toks.get(self.i).map(AsRef::as_ref);
        self.i += 1;
        t
    }

    /// Error about the word just consumed.
    fn err_prev(&self, reason: impl Into<String>) -> RuleSpecError {
        self.err_at(self.i.saturating_sub(1), reason)
    }

    fn err_at(&self, idx: usize, reason: impl Into<String>) -> RuleSpecError {
        match self.toks.get(idx) {
            Some(t) => RuleSpecError::Token {
                position: idx + 1,
                token: t.as_ref().to_owned(),
                reason: reason.into(),
            },
            None => RuleSpecError::UnexpectedEnd(reason.into()),
        }
    }

    /// The value after a keyword like `ports` or `tag`.
    fn value(&mut self, what: &str) -> Result<(usize, &'a str), RuleSpecError> {
        let idx = self.i;
        let kw = self
            .toks
            .get(idx.wrapping_sub(1))
            .map(AsRef::as_ref)
            .unwrap_or("");
        match self.next() {
            Some(v) => Ok((idx, v)),
            None => Err(RuleSpecError::UnexpectedEnd(format!(
                "`{kw}` needs {what} after it"
            ))),
        }
    }
}

#[derive(Default)]
struct Clause {
    ports: Option<Vec<PortRange>>,
    tag: Option<String>,
    net: Option<(usize, IpNet)>,
}

/// Parse a rule from a string, splitting on whitespace.
pub fn parse_rule_str(s: &str) -> Result<Rule, RuleSpecError> {
    parse_rule(&s.split_whitespace().collect::<Vec<_>>())
}

/// Parse a rule from the CLI's words. The result is validated.
pub fn parse_rule<S: AsRef<str>>(tokens: &[S]) -> Result<Rule, RuleSpecError> {
    let mut c = Cursor { toks: tokens, i: 0 };
    let action = match c.next() {
        None => return Err(RuleSpecError::Empty),
        Some("allow") => Action::Allow,
        Some("deny") => Action::Deny,
        Some(_) => return Err(c.err_prev("a rule starts with `allow` or `deny`")),
    };
    let mut rule = Rule::new(action);
    let mut proto_idx = None;
    if let Some(t) = c.peek() {
        let proto = match t {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "icmp" => Some(Protocol::Icmp),
            "icmpv6" => Some(Protocol::Icmpv6),
            n if n.bytes().all(|b| b.is_ascii_digit()) => Some(
                n.parse::<u8>()
                    .map(Protocol::from_number)
                    .map_err(|_| c.err_at(c.i, "protocol numbers are 0–255"))?,
            ),
            _ => None,
        };
        if proto.is_some() {
            proto_idx = Some(c.i);
            c.next();
        }
        rule.protocol = proto;
    }
    if rule.protocol.is_some_and(Protocol::is_icmp) && c.peek() == Some("type") {
        c.next();
        let (_, v) = c.value("an ICMP type (0–254)")?;
        rule.icmp_type = Some(icmp_number(&c, v, "ICMP type")?);
        if c.peek() == Some("code") {
            c.next();
            let (_, v) = c.value("an ICMP code (0–254)")?;
            rule.icmp_code = Some(icmp_number(&c, v, "ICMP code")?);
        }
    }
    let mut src = None;
    let mut dst = None;
    while let Some(t) = c.next() {
        match t {
            "from" if src.is_none() && dst.is_none() => {
                src = Some(clause(&mut c, rule.protocol, true)?)
            }
            "to" if dst.is_none() => dst = Some(clause(&mut c, rule.protocol, false)?),
            "from" | "to" => {
                return Err(c.err_prev("each of `from` and `to` may appear once, `from` first"))
            }
            "code" => {
                return Err(c.err_prev("`code` needs `type` before it, as in `icmp type 3 code 1`"))
            }
            "type" => {
                return Err(c.err_prev("`type` is only allowed right after `icmp` or `icmpv6`"))
            }
            "ports" => {
                return Err(
                    c.err_prev("`ports` goes inside a `from` or `to` clause, after tcp or udp")
                )
            }
            _ => {
                return Err(c.err_prev(
                    if rule.protocol.is_none() && rule.icmp_type.is_none() && c.i == 2 {
                        "expected tcp, udp, icmp, icmpv6, a protocol number, `from` or `to`"
                    } else {
                        "expected `from` or `to`"
                    },
                ))
            }
        }
    }
    let (src, dst) = (src.unwrap_or_default(), dst.unwrap_or_default());
    let version = match (src.net, dst.net) {
        (Some((_, s)), Some((di, d))) => {
            let (sv, dv) = (IpVersion::of_net(&s), IpVersion::of_net(&d));
            if sv != dv {
                return Err(c.err_at(
                    di,
                    format!(
                        "this is {dv} but the source {s} is {sv}; a rule applies to one IP version"
                    ),
                ));
            }
            Some(sv)
        }
        (Some((_, n)), None) | (None, Some((_, n))) => Some(IpVersion::of_net(&n)),
        (None, None) => None,
    };
    match (rule.protocol, version) {
        (Some(Protocol::Icmp), Some(IpVersion::V6)) => rule.protocol = Some(Protocol::Icmpv6),
        (Some(Protocol::Icmpv6), Some(IpVersion::V4)) => {
            let idx = proto_idx.unwrap_or(0);
            return Err(c.err_at(idx, "icmpv6 is for IPv6 but the CIDRs are IPv4; use icmp"));
        }
        _ => {}
    }
    rule.ip_version = version.or(match rule.protocol {
        Some(Protocol::Icmp) => Some(IpVersion::V4),
        Some(Protocol::Icmpv6) => Some(IpVersion::V6),
        _ => None,
    });
    (rule.src_ports, rule.src_tag, rule.src_net) = (src.ports, src.tag, src.net.map(|n| n.1));
    (rule.dst_ports, rule.dst_tag, rule.dst_net) = (dst.ports, dst.tag, dst.net.map(|n| n.1));
    rule.validate()?;
    Ok(rule)
}

fn icmp_number<S: AsRef<str>>(c: &Cursor<'_, S>, v: &str, what: &str) -> Result<u8, RuleSpecError> {
    v.parse::<u8>()
        .ok()
        .filter(|n| *n <= 254 && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| c.err_prev(format!("an {what} is a number 0–254")))
}

fn clause<S: AsRef<str>>(
    c: &mut Cursor<'_, S>,
    proto: Option<Protocol>,
    from: bool,
) -> Result<Clause, RuleSpecError> {
    let dir = if from { "from" } else { "to" };
    let (ports_field, tag_field, net_field) = if from {
        ("src_ports", "src_tag", "src_net")
    } else {
        ("dst_ports", "dst_tag", "dst_net")
    };
    let start = c.i;
    let mut cl = Clause::default();
    while let Some(t) = c.peek() {
        match t {
            "to" | "from" => break,
            "ports" => {
                c.next();
                if !proto.is_some_and(Protocol::has_ports) {
                    return Err(c.err_prev("ports are only allowed after tcp or udp"));
                }
                if cl.ports.is_some() {
                    return Err(c.err_prev(format!("`ports` appears twice after `{dir}`")));
                }
                let (idx, v) = c.value("a port list like 80,443,2048:4000")?;
                cl.ports = Some(parse_ports(ports_field, v).map_err(|e| c.err_at(idx, e.reason))?);
            }
            "tag" => {
                c.next();
                if cl.tag.is_some() {
                    return Err(c.err_prev(format!("`tag` appears twice after `{dir}`")));
                }
                let (idx, v) = c.value("a tag name")?;
                validate_name(tag_field, v).map_err(|e| c.err_at(idx, e.reason))?;
                cl.tag = Some(v.to_owned());
            }
            other => {
                let idx = c.i;
                let net = other
                    .parse::<IpNet>()
                    .or_else(|_| other.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        c.err_at(
                            idx,
                            format!(
                                "expected `ports`, `tag` or a CIDR like 10.0.0.0/8 after `{dir}`"
                            ),
                        )
                    })?;
                if cl.net.is_some() {
                    return Err(c.err_at(idx, format!("only one CIDR is allowed after `{dir}`")));
                }
                if net.trunc() != net {
                    return Err(c.err_at(
                        idx,
                        format!(
                            "{net_field} has host bits set; did you mean {}?",
                            net.trunc()
                        ),
                    ));
                }
                c.next();
                cl.net = Some((idx, net));
            }
        }
    }
    if c.i == start {
        return Err(c.err_at(
            start.saturating_sub(1),
            format!(
                "`{dir}` needs ports, a tag or a CIDR after it; leave it out to match anything"
            ),
        ));
    }
    Ok(cl)
}

/// Print a rule in the grammar (the original's `pprint` order).
pub fn format_rule(r: &Rule) -> String {
    let mut out = vec![r.action.to_string()];
    if let Some(p) = r.protocol {
        out.push(p.to_string());
    }
    if let Some(t) = r.icmp_type {
        out.extend(["type".to_owned(), t.to_string()]);
    }
    if let Some(code) = r.icmp_code {
        out.extend(["code".to_owned(), code.to_string()]);
    }
    for (kw, ports, tag, net) in [
        ("from", &r.src_ports, &r.src_tag, &r.src_net),
        ("to", &r.dst_ports, &r.dst_tag, &r.dst_net),
    ] {
        if ports.is_none() && tag.is_none() && net.is_none() {
            continue;
        }
        out.push(kw.to_owned());
        if let Some(p) = ports {
            out.extend(["ports".to_owned(), format_ports(p)]);
        }
        if let Some(t) = tag {
            out.extend(["tag".to_owned(), t.clone()]);
        }
        if let Some(n) = net {
            out.push(n.to_string());
        }
    }
    out.join(" ")
}

/// The `calicoctl profile <P> rule show` text: numbered (1-based, as `--at`) inbound then outbound rules.
pub fn format_rules_show(rules: &Rules) -> String {
    let mut s = String::from("Inbound rules:\n");
    for (i, r) in rules.inbound_rules.iter().enumerate() {
        s.push_str(&format!(" {:>3} {}\n", i + 1, format_rule(r)));
    }
    s.push_str("Outbound rules:\n");
    for (i, r) in rules.outbound_rules.iter().enumerate() {
        s.push_str(&format!(" {:>3} {}\n", i + 1, format_rule(r)));
    }
    s
}

#[cfg(test)]
#[path = "grammar_tests.rs"]
mod tests;
