//! Profiles: a name, a set of tags, and inbound and outbound rule lists.
//!
//! Role: the [`Profile`] and [`Rules`] types and their validation. JSON shapes match the original's etcd
//! values: tags are `["WEB"]` (`/calico/v1/policy/profile/<name>/tags`) and rules are
//! `{"inbound_rules":[...],"outbound_rules":[...]}` (`…/rules`). The original's pycalico also wrote an
//! `"id"` key into the rules value; it is accepted and ignored on input and not written.
//!
//! Inputs: JSON or values built by the API. Outputs: validated values or a [`ValidationError`] located with
//! its context (`inbound rule 2`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{names::validate_name, Action, Rule, ValidationError};

/// A profile's rules. A packet is accepted by a profile if an `allow` rule matches before any `deny`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Rules for traffic to the endpoint.
    #[serde(default)]
    pub inbound_rules: Vec<Rule>,
    /// Rules for traffic from the endpoint.
    #[serde(default)]
    pub outbound_rules: Vec<Rule>,
}

impl Rules {
    /// The original's default rules for a new profile: inbound allow from the profile's own tag,
    /// outbound allow everything.
    pub fn default_for(name: &str) -> Self {
        let mut inbound = Rule::new(Action::Allow);
        inbound.src_tag = Some(name.to_owned());
        Rules {
            inbound_rules: vec![inbound],
            outbound_rules: vec![Rule::new(Action::Allow)],
        }
    }

    /// Read and validate `{"inbound_rules":[...],"outbound_rules":[...]}` (a missing list is empty).
    pub fn from_json(v: &Value) -> Result<Self, ValidationError> {
        let obj = v.as_object().ok_or_else(|| {
            ValidationError::new(
                "rules",
                "must be a JSON object like {\"inbound_rules\": [...], \"outbound_rules\": [...]}",
            )
        })?;
        let mut rules = Rules::default();
        for (key, val) in obj {
            let list = match key.as_str() {
                "inbound_rules" => &mut rules.inbound_rules,
                "outbound_rules" => &mut rules.outbound_rules,
                "id" => continue,
                other => {
                    return Err(ValidationError::new(
                        other,
                        "unknown key; rules have inbound_rules and outbound_rules",
                    ))
                }
            };
            if val.is_null() {
                continue;
            }
            let items = val
                .as_array()
                .ok_or_else(|| ValidationError::new(key.as_str(), "must be a list of rules"))?;
            let dir = if key == "inbound_rules" {
                "inbound"
            } else {
                "outbound"
            };
            for (i, item) in items.iter().enumerate() {
                list.push(
                    Rule::from_json(item).map_err(|e| e.within(format!("{dir} rule {}", i + 1)))?,
                );
            }
        }
        Ok(rules)
    }

    /// Validate every rule; errors say which (`inbound rule 3`, 1-based as `--at` is).
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (dir, list) in [
            ("inbound", &self.inbound_rules),
            ("outbound", &self.outbound_rules),
        ] {
            for (i, r) in list.iter().enumerate() {
                r.validate()
                    .map_err(|e| e.within(format!("{dir} rule {}", i + 1)))?;
            }
        }
        Ok(())
    }

    /// Every tag referred to by any rule.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.inbound_rules
            .iter()
            .chain(&self.outbound_rules)
            .flat_map(Rule::tags)
    }
}

/// A security profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The profile's name (its id).
    pub name: String,
    /// Tags carried by every endpoint using this profile.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Inbound and outbound rules.
    #[serde(default)]
    pub rules: Rules,
}

impl Profile {
    /// A new profile as `calicoctl profile add` makes it: tagged with its own name, allowing inbound
    /// traffic from that tag and all outbound traffic.
    pub fn new_default(name: &str) -> Self {
        Profile {
            name: name.to_owned(),
            tags: vec![name.to_owned()],
            rules: Rules::default_for(name),
        }
    }

    /// Check the name, the tags (valid, no duplicates) and every rule.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)?;
        for (i, t) in self.tags.iter().enumerate() {
            validate_name("tags", t)?;
            if self.tags[..i].contains(t) {
                return Err(ValidationError::new(
                    "tags",
                    format!("tag `{t}` is listed twice; list each tag once"),
                ));
            }
        }
        self.rules
            .validate()
            .map_err(|e| e.within(format!("profile {}", self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_profile_matches_original() {
        let p = Profile::new_default("WEB");
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(serde_json::to_value(&p.tags).unwrap(), json!(["WEB"]));
        assert_eq!(
            serde_json::to_value(&p.rules).unwrap(),
            json!({"inbound_rules": [{"action": "allow", "src_tag": "WEB"}],
                   "outbound_rules": [{"action": "allow"}]})
        );
        assert_eq!(p.rules.tags().collect::<Vec<_>>(), ["WEB"]);
    }

    #[test]
    fn rules_from_json_locates_errors() {
        let v = json!({"id": "WEB", "inbound_rules": [{"action": "allow"},
                       {"action": "allow", "protocol": "tcp", "dst_ports": []}], "outbound_rules": []});
        let e = Rules::from_json(&v).unwrap_err();
        assert_eq!(e.field, "dst_ports");
        assert_eq!(e.context.as_deref(), Some("inbound rule 2"));
        let e = Rules::from_json(&json!({"outbound_rules": [{"action": "drop"}]})).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.context.as_deref()),
            ("action", Some("outbound rule 1"))
        );
        let e = Rules::from_json(&json!({"inbound": []})).unwrap_err();
        assert_eq!(e.field, "inbound");
        let e = Rules::from_json(&json!({"inbound_rules": {}})).unwrap_err();
        assert_eq!(e.field, "inbound_rules");
        let r = Rules::from_json(
            &json!({"inbound_rules": [{"action": "deny", "src_net": "10.0.0.0/8"}]}),
        )
        .unwrap();
        assert_eq!(r.inbound_rules.len(), 1);
        assert!(r.outbound_rules.is_empty());
    }

    #[test]
    fn profile_validation() {
        let mut p = Profile::new_default("DB");
        p.tags.push("DB".into());
        assert!(p.validate().unwrap_err().reason.contains("twice"));
        p.tags = vec!["ok".into(), "tag".into()];
        assert_eq!(p.validate().unwrap_err().field, "tags");
        let p = Profile::new_default("rule");
        assert_eq!(p.validate().unwrap_err().field, "name");
        let mut p = Profile::new_default("X");
        p.rules.outbound_rules[0].icmp_code = Some(1);
        let e = p.validate().unwrap_err();
        assert_eq!(e.field, "icmp_code");
        assert_eq!(
            e.to_string(),
            "profile X, outbound rule 1: icmp_code: only allowed with protocol icmp or icmpv6"
        );
    }
}
