//! The profile routes: profiles, their tags and their rules.
//!
//! Role: the store operations behind `/v1/profiles`. Inputs: the store, path segments and the request's
//! JSON. Outputs: JSON answers or an [`ApiError`]. A profile is the original's two keys,
//! `/calico/v1/policy/profile/<name>/tags` and `…/rules`; it exists when either does. Every change is a
//! read-modify-write guarded by the mod revisions of both keys ([`modify`]), retried on conflict.

use serde_json::{json, Value};

use super::{ApiError, CAS_RETRIES};
use crate::{
    model::{validate_name, Endpoint, Profile, Rule, Rules, ValidationError},
    store::{
        keys::{profile_prefix, Key, HOST_PREFIX, PROFILE_PREFIX},
        Compare, KeyValue, Op, Store, Txn,
    },
};

/// A profile as read, with the mod revisions of its keys (0: absent).
struct Loaded {
    profile: Profile,
    tags_rev: u64,
    rules_rev: u64,
}

fn tags_key(name: &str) -> String {
    Key::ProfileTags {
        profile: name.to_owned(),
    }
    .path()
}

fn rules_key(name: &str) -> String {
    Key::ProfileRules {
        profile: name.to_owned(),
    }
    .path()
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("the stored value of {key} is malformed: {e}"))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "name",
        format!("Profile {name} not found; see `calicoctl profile show`"),
    )
}

fn load(store: &dyn Store, name: &str) -> Result<Option<Loaded>, ApiError> {
    validate_name("name", name)?;
    let tags = store.get(&tags_key(name))?;
    let rules = store.get(&rules_key(name))?;
    assemble(name, tags.as_ref(), rules.as_ref())
}

/// A profile from its two keys as read (`None` if both are absent).
fn assemble(
    name: &str,
    tags: Option<&KeyValue>,
    rules: Option<&KeyValue>,
) -> Result<Option<Loaded>, ApiError> {
    if tags.is_none() && rules.is_none() {
        return Ok(None);
    }
    let mut profile = Profile {
        name: name.to_owned(),
        tags: Vec::new(),
        rules: Rules::default(),
    };
    if let Some(kv) = tags {
        profile.tags = serde_json::from_slice(&kv.value).map_err(|e| corrupt(&kv.key, e))?;
    }
    if let Some(kv) = rules {
        let v: Value = serde_json::from_slice(&kv.value).map_err(|e| corrupt(&kv.key, e))?;
        profile.rules = Rules::from_json(&v).map_err(|e| corrupt(&kv.key, e))?;
    }
    Ok(Some(Loaded {
        profile,
        tags_rev: tags.map_or(0, |kv| kv.mod_revision),
        rules_rev: rules.map_or(0, |kv| kv.mod_revision),
    }))
}

fn rules_json(name: &str, rules: &Rules) -> Value {
    json!({"id": name, "inbound_rules": rules.inbound_rules, "outbound_rules": rules.outbound_rules})
}

fn profile_json(p: &Profile) -> Value {
    json!({"name": p.name, "tags": p.tags, "rules": rules_json(&p.name, &p.rules)})
}

/// Every endpoint in the store (values that do not parse are skipped with a warning).
fn endpoints(store: &dyn Store) -> Result<Vec<Endpoint>, ApiError> {
    let mut out = Vec::new();
    for kv in store.list(HOST_PREFIX)?.kvs {
        let Some(Key::Endpoint(k)) = Key::parse(&kv.key) else {
            continue;
        };
        let parsed = serde_json::from_slice::<Value>(&kv.value)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                Endpoint::from_etcd_value(
                    &k.hostname,
                    &k.orchestrator,
                    &k.workload_id,
                    &k.endpoint_id,
                    &v,
                )
                .map_err(|e| e.to_string())
            });
        match parsed {
            Ok(ep) => out.push(ep),
            Err(e) => tracing::warn!(key = %kv.key, error = %e, "skipping a malformed endpoint"),
        }
    }
    Ok(out)
}

fn endpoint_json(ep: &Endpoint) -> Value {
    json!({
        "hostname": ep.hostname,
        "orchestrator": ep.orchestrator,
        "workload_id": ep.workload_id,
        "endpoint_id": ep.endpoint_id,
        "state": ep.state,
    })
}

/// `GET /v1/profiles[?detailed=true]`: every profile by name; with `detailed`, the endpoints using each.
pub(crate) fn list(store: &dyn Store, detailed: bool) -> Result<Value, ApiError> {
    // One listing: every profile as of one revision, in name order (tags and rules keys are adjacent).
    let mut parts: Vec<(String, Option<KeyValue>, Option<KeyValue>)> = Vec::new();
    for kv in store.list(PROFILE_PREFIX)?.kvs {
        let (name, is_tags) = match Key::parse(&kv.key) {
            Some(Key::ProfileTags { profile }) => (profile, true),
            Some(Key::ProfileRules { profile }) => (profile, false),
            _ => continue,
        };
        if parts.last().map(|p| &p.0) != Some(&name) {
            parts.push((name, None, None));
        }
        if let Some(last) = parts.last_mut() {
            if is_tags {
                last.1 = Some(kv);
            } else {
                last.2 = Some(kv);
            }
        }
    }
    let eps = if detailed {
        endpoints(store)?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for (name, tags, rules) in parts {
        // A malformed profile is left out of the listing rather than failing it.
        let loaded = match assemble(&name, tags.as_ref(), rules.as_ref()) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(profile = %name, error = %e, "skipping a malformed profile");
                continue;
            }
        };
        let mut v = profile_json(&loaded.profile);
        if detailed {
            let users: Vec<Value> = eps
                .iter()
                .filter(|ep| ep.profile_ids.contains(&name))
                .map(endpoint_json)
                .collect();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("endpoints".into(), Value::Array(users));
            }
        }
        out.push(v);
    }
    Ok(Value::Array(out))
}

/// `GET /v1/profiles/<name>`.
pub(crate) fn get(store: &dyn Store, name: &str) -> Result<Value, ApiError> {
    match load(store, name)? {
        Some(l) => Ok(profile_json(&l.profile)),
        None => Err(not_found(name)),
    }
}

/// `POST /v1/profiles {"name"}`: create with the original's default tags and rules.
pub(crate) fn add(store: &dyn Store, body: &Value) -> Result<Value, ApiError> {
    let name = match body.get("name") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err(ApiError::bad_request(
                "name",
                "is required, e.g. {\"name\": \"WEB\"}",
            ))
        }
    };
    validate_name("name", name)?;
    let profile = Profile::new_default(name);
    profile.validate()?;
    let (tk, rk) = (tags_key(name), rules_key(name));
    let tags = serde_json::to_vec(&profile.tags).map_err(|e| ApiError::Internal(e.to_string()))?;
    let rules =
        serde_json::to_vec(&profile.rules).map_err(|e| ApiError::Internal(e.to_string()))?;
    let resp = store.txn(
        Txn::new()
            .when(Compare::absent(&tk))
            .when(Compare::absent(&rk))
            .and_then(Op::put(&tk, tags))
            .and_then(Op::put(&rk, rules)),
    )?;
    if !resp.succeeded {
        return Err(ApiError::conflict(
            "name",
            format!("Profile {name} already exists"),
        ));
    }
    Ok(
        json!({"message": format!("Created profile {name}"), "changed": true, "profile": profile_json(&profile)}),
    )
}

/// `DELETE /v1/profiles/<name>[?force=true]`: refuses (409, listing them) while endpoints use it.
pub(crate) fn remove(store: &dyn Store, name: &str, force: bool) -> Result<Value, ApiError> {
    if load(store, name)?.is_none() {
        return Err(not_found(name));
    }
    let users: Vec<Endpoint> = endpoints(store)?
        .into_iter()
        .filter(|ep| ep.profile_ids.iter().any(|p| p == name))
        .collect();
    if !users.is_empty() && !force {
        let ids: Vec<&str> = users.iter().map(|ep| ep.endpoint_id.as_str()).collect();
        return Err(ApiError::Conflict {
            message: format!(
                "Profile {name} is in use by endpoint(s) {}; remove it from them or use --force",
                ids.join(", ")
            ),
            field: Some("name".into()),
            details: Some(
                json!({"endpoints": users.iter().map(endpoint_json).collect::<Vec<_>>()}),
            ),
        });
    }
    let resp = store.txn(Txn::new().and_then(Op::delete_prefix(profile_prefix(name))))?;
    let deleted = resp
        .results
        .iter()
        .any(|r| matches!(r, crate::store::OpResult::Delete { deleted } if !deleted.is_empty()));
    if !deleted {
        return Err(not_found(name));
    }
    Ok(json!({"message": format!("Deleted profile {name}"), "changed": true}))
}

/// What a modification did.
pub(crate) enum Outcome {
    /// The profile changed; the message says how.
    Changed(String),
    /// Nothing to do; the message says why.
    Unchanged(String),
}

/// Read-modify-write of one profile: `f` edits it; both keys are compared on their mod revisions, and
/// only the keys whose value changed are written. Retried on conflict.
pub(crate) fn modify(
    store: &dyn Store,
    name: &str,
    mut f: impl FnMut(&mut Profile) -> Result<Outcome, ApiError>,
) -> Result<(Outcome, Profile), ApiError> {
    let (tk, rk) = (tags_key(name), rules_key(name));
    for _ in 0..CAS_RETRIES {
        let Some(loaded) = load(store, name)? else {
            return Err(not_found(name));
        };
        let mut profile = loaded.profile.clone();
        let outcome = f(&mut profile)?;
        if let Outcome::Unchanged(_) = outcome {
            return Ok((outcome, profile));
        }
        profile.validate()?;
        let mut txn = Txn::new()
            .when(Compare::mod_revision(&tk, loaded.tags_rev))
            .when(Compare::mod_revision(&rk, loaded.rules_rev));
        if profile.tags != loaded.profile.tags || loaded.tags_rev == 0 {
            let v =
                serde_json::to_vec(&profile.tags).map_err(|e| ApiError::Internal(e.to_string()))?;
            txn = txn.and_then(Op::put(&tk, v));
        }
        if profile.rules != loaded.profile.rules || loaded.rules_rev == 0 {
            let v = serde_json::to_vec(&profile.rules)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            txn = txn.and_then(Op::put(&rk, v));
        }
        if store.txn(txn)?.succeeded {
            return Ok((outcome, profile));
        }
    }
    Err(ApiError::Contended(format!("profile {name}")))
}

fn answer(outcome: Outcome, extra: (&str, Value)) -> Value {
    let (msg, changed) = match outcome {
        Outcome::Changed(m) => (m, true),
        Outcome::Unchanged(m) => (m, false),
    };
    json!({"message": msg, "changed": changed, extra.0: extra.1})
}

/// `GET /v1/profiles/<name>/tags`.
pub(crate) fn tags(store: &dyn Store, name: &str) -> Result<Value, ApiError> {
    match load(store, name)? {
        Some(l) => Ok(json!(l.profile.tags)),
        None => Err(not_found(name)),
    }
}

/// `PUT /v1/profiles/<name>/tags/<tag>`.
pub(crate) fn add_tag(store: &dyn Store, name: &str, tag: &str) -> Result<Value, ApiError> {
    validate_name("tag", tag)?;
    let (outcome, p) = modify(store, name, |p| {
        if p.tags.iter().any(|t| t == tag) {
            return Ok(Outcome::Unchanged(format!(
                "Tag {tag} is already on profile {name}, skipping."
            )));
        }
        p.tags.push(tag.to_owned());
        Ok(Outcome::Changed(format!(
            "Tag {tag} added to profile {name}"
        )))
    })?;
    Ok(answer(outcome, ("tags", json!(p.tags))))
}

/// `DELETE /v1/profiles/<name>/tags/<tag>`.
pub(crate) fn remove_tag(store: &dyn Store, name: &str, tag: &str) -> Result<Value, ApiError> {
    validate_name("tag", tag)?;
    let (outcome, p) = modify(store, name, |p| {
        let before = p.tags.len();
        p.tags.retain(|t| t != tag);
        if p.tags.len() == before {
            return Err(ApiError::not_found(
                "tag",
                format!(
                    "Tag {tag} is not on profile {name}; see `calicoctl profile {name} tag show`"
                ),
            ));
        }
        Ok(Outcome::Changed(format!(
            "Tag {tag} removed from profile {name}"
        )))
    })?;
    Ok(answer(outcome, ("tags", json!(p.tags))))
}

/// `GET /v1/profiles/<name>/rules`.
pub(crate) fn rules(store: &dyn Store, name: &str) -> Result<Value, ApiError> {
    match load(store, name)? {
        Some(l) => Ok(rules_json(name, &l.profile.rules)),
        None => Err(not_found(name)),
    }
}

/// `PUT /v1/profiles/<name>/rules`: replace both lists.
pub(crate) fn replace_rules(
    store: &dyn Store,
    name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    match body.get("id") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) if id == name => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                "id",
                format!(
                "the rules' id {other} does not match the profile name {name}; fix or drop \"id\""
            ),
            ))
        }
    }
    let new = Rules::from_json(body)?;
    let (outcome, p) = modify(store, name, |p| {
        if p.rules == new {
            return Ok(Outcome::Unchanged(format!(
                "Rules of profile {name} are unchanged"
            )));
        }
        p.rules = new.clone();
        Ok(Outcome::Changed(format!(
            "Successfully updated rules of profile {name}"
        )))
    })?;
    Ok(answer(outcome, ("rules", rules_json(name, &p.rules))))
}

/// `inbound` or `outbound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub(crate) fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "inbound" => Ok(Direction::Inbound),
            "outbound" => Ok(Direction::Outbound),
            other => Err(ApiError::not_found(
                "direction",
                format!("`{other}` is not a rule direction; use inbound or outbound"),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    fn list(self, rules: &mut Rules) -> &mut Vec<Rule> {
        match self {
            Direction::Inbound => &mut rules.inbound_rules,
            Direction::Outbound => &mut rules.outbound_rules,
        }
    }
}

fn rule_from_body(body: &Value) -> Result<Rule, ApiError> {
    match body.get("rule") {
        Some(v) => Ok(Rule::from_json(v).map_err(|e: ValidationError| e.within("rule"))?),
        None => Err(ApiError::bad_request(
            "rule",
            "is required, e.g. {\"rule\": {\"action\": \"allow\", \"protocol\": \"tcp\"}}",
        )),
    }
}

/// `POST /v1/profiles/<name>/rules/<dir> {"rule", "position"?}`: insert at the 1-based position (default
/// append). An identical rule already in the list is "already present" and changes nothing.
pub(crate) fn add_rule(
    store: &dyn Store,
    name: &str,
    dir: Direction,
    body: &Value,
) -> Result<Value, ApiError> {
    let rule = rule_from_body(body)?;
    let position = match body.get("position") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::bad_request(
                "position",
                format!("{v} is not a position; positions start at 1"),
            )
        })?),
    };
    let (outcome, p) = modify(store, name, |p| {
        let list = dir.list(&mut p.rules);
        if list.contains(&rule) {
            return Ok(Outcome::Unchanged(
                "Rule already present, skipping.".to_owned(),
            ));
        }
        let len = list.len() as u64;
        let at = position.unwrap_or(len + 1);
        if at > len + 1 {
            return Err(ApiError::bad_request(
                "position",
                format!("position {at} is past the end: profile {name} has {len} {} rule(s); use 1 to {}", dir.name(), len + 1),
            ));
        }
        list.insert((at - 1) as usize, rule.clone());
        Ok(Outcome::Changed(format!(
            "Added {} rule {at} to profile {name}",
            dir.name()
        )))
    })?;
    Ok(answer(outcome, ("rules", rules_json(name, &p.rules))))
}

/// `DELETE /v1/profiles/<name>/rules/<dir>/<position>`.
pub(crate) fn remove_rule_at(
    store: &dyn Store,
    name: &str,
    dir: Direction,
    position: &str,
) -> Result<Value, ApiError> {
    let at: usize = position.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
        ApiError::bad_request(
            "position",
            format!("`{position}` is not a position; positions start at 1"),
        )
    })?;
    let (outcome, p) = modify(store, name, |p| {
        let list = dir.list(&mut p.rules);
        if at > list.len() {
            return Err(ApiError::not_found(
                "position",
                format!(
                    "there is no {} rule {at} in profile {name} (it has {}); see `calicoctl profile {name} rule show`",
                    dir.name(),
                    list.len()
                ),
            ));
        }
        list.remove(at - 1);
        Ok(Outcome::Changed(format!(
            "Removed {} rule {at} from profile {name}",
            dir.name()
        )))
    })?;
    Ok(answer(outcome, ("rules", rules_json(name, &p.rules))))
}

/// `POST /v1/profiles/<name>/rules/<dir>/remove {"rule"}`: remove the (first) rule equal to this one.
pub(crate) fn remove_rule(
    store: &dyn Store,
    name: &str,
    dir: Direction,
    body: &Value,
) -> Result<Value, ApiError> {
    let rule = rule_from_body(body)?;
    let (outcome, p) = modify(store, name, |p| {
        let list = dir.list(&mut p.rules);
        match list.iter().position(|r| *r == rule) {
            Some(i) => {
                list.remove(i);
                Ok(Outcome::Changed(format!("Removed {} rule {} from profile {name}", dir.name(), i + 1)))
            }
            None => Err(ApiError::not_found(
                "rule",
                format!("Rule not found in the {} rules of profile {name}; see `calicoctl profile {name} rule show`", dir.name()),
            )),
        }
    })?;
    Ok(answer(outcome, ("rules", rules_json(name, &p.rules))))
}
