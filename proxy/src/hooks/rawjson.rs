//! JSON objects edited without parsing what is not edited, pure: the inspect and list hooks change a
//! few members of answers of several kilobytes and leave the rest as Docker wrote it.
//!
//! Input: the text of a JSON object. [`RawObject::parse`] checks all of it but keeps each member as a
//! slice of that text (key and value), in the order Docker sent them. The hooks read the few members
//! they need ([`RawObject::value`] parses one), replace or add some ([`RawObject::set`]); output:
//! [`RawObject::to_json`], the object again, every member left alone copied byte for byte and the
//! members written by a hook in place of the ones they replace (new ones last). Nested objects are
//! edited the same way: parse the member's text, edit it, set it back.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// One member: its key (a JSON string, quotes included) and its value, both as JSON text, borrowed
/// from the parsed answer or written by a hook.
#[derive(Debug, Clone)]
struct Member<'a> {
    key: Cow<'a, str>,
    value: Cow<'a, str>,
}

/// A JSON object as the ordered list of its members' texts.
#[derive(Debug, Clone, Default)]
pub struct RawObject<'a> {
    members: Vec<Member<'a>>,
}

/// The name a JSON key (quotes included) stands for; borrowed unless it holds escapes.
fn key_name(key: &str) -> Option<Cow<'_, str>> {
    let inner = key.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(key).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

impl<'a> RawObject<'a> {
    /// Reads `text`, which must be one JSON object (whitespace around it allowed); `None` for anything
    /// else, malformed JSON included.
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The position of the member named `name` (the last one, as a parser that keeps one would).
    fn position(&self, name: &str) -> Option<usize> {
        self.members
            .iter()
            .rposition(|m| key_name(&m.key).is_some_and(|k| k == name))
    }

    /// The JSON text of the member named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.members[i].value.as_ref())
    }

    /// The member named `name`, parsed as a `T`; `None` when it is missing or is no `T`.
    pub fn value<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Option<T> {
        serde_json::from_str(self.get(name)?).ok()
    }

    /// Replaces the member named `name` with `json` (JSON text the caller vouches for), where it stands;
    /// appends it when there is none.
    pub fn set_json(&mut self, name: &str, json: String) {
        match self.position(name) {
            Some(i) => self.members[i].value = Cow::Owned(json),
            None => self.members.push(Member {
                key: Cow::Owned(Value::from(name).to_string()),
                value: Cow::Owned(json),
            }),
        }
    }

    /// Replaces (or appends) the member named `name` with `value`, serialized.
    pub fn set(&mut self, name: &str, value: &(impl Serialize + ?Sized)) {
        // Serializing a `Value`, a string or a list of them cannot fail; anything else a hook sets
        // is built from those.
        if let Ok(json) = serde_json::to_string(value) {
            self.set_json(name, json);
        }
    }

    /// The names of the members, in order.
    pub fn names(&self) -> impl Iterator<Item = Cow<'_, str>> {
        self.members.iter().filter_map(|m| key_name(&m.key))
    }

    /// The object as compact JSON text: `{"key":value,...}`, each member's text as it is.
    pub fn to_json(&self) -> String {
        let len = 2 + self
            .members
            .iter()
            .map(|m| m.key.len() + m.value.len() + 2)
            .sum::<usize>();
        let mut out = String::with_capacity(len);
        out.push('{');
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&m.key);
            out.push(':');
            out.push_str(&m.value);
        }
        out.push('}');
        out
    }
}

/// Only from `serde_json` (the members are taken as its `RawValue`s): from a `&str` or a slice, whose
/// text the members then borrow.
impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;

        impl<'de> Visitor<'de> for Members {
            type Value = RawObject<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<&'de RawValue>()? {
                    let value = map.next_value::<&'de RawValue>()?;
                    members.push(Member {
                        key: Cow::Borrowed(key.get()),
                        value: Cow::Borrowed(value.get()),
                    });
                }
                Ok(RawObject { members })
            }
        }

        deserializer.deserialize_map(Members)
    }
}

/// Splits `text`, one JSON array, into its elements' texts; `None` for anything else.
pub fn elements(text: &str) -> Option<Vec<&str>> {
    let raw: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    Some(raw.into_iter().map(RawValue::get).collect())
}

/// Joins elements' JSON texts into an array: `[a,b,...]`.
pub fn array<S: AsRef<str>>(elements: &[S]) -> String {
    let len = 2 + elements.iter().map(|e| e.as_ref().len() + 1).sum::<usize>();
    let mut out = String::with_capacity(len);
    out.push('[');
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e.as_ref());
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_keep_their_order_and_their_text() {
        let text = r#" {"b": 1.50, "a" :{"z":1, "y":[ 2 ]},"c":"\u00e9","d":null} "#;
        let obj = RawObject::parse(text).unwrap();
        assert_eq!(obj.names().collect::<Vec<_>>(), ["b", "a", "c", "d"]);
        assert_eq!(obj.get("b"), Some("1.50"));
        assert_eq!(obj.get("a"), Some(r#"{"z":1, "y":[ 2 ]}"#));
        assert_eq!(obj.get("c"), Some(r#""\u00e9""#));
        assert_eq!(obj.value::<String>("c").as_deref(), Some("é"));
        assert_eq!(obj.value::<Value>("d"), Some(Value::Null));
        assert_eq!(obj.value::<String>("d"), None);
        assert_eq!(obj.get("e"), None);
        assert_eq!(
            obj.to_json(),
            r#"{"b":1.50,"a":{"z":1, "y":[ 2 ]},"c":"\u00e9","d":null}"#
        );
    }

    #[test]
    fn set_replaces_in_place_and_appends_new_members() {
        let mut obj = RawObject::parse(r#"{"x":1,"y":2}"#).unwrap();
        obj.set("x", &json!(["a"]));
        obj.set("new \"one\"", "v");
        assert_eq!(obj.to_json(), r#"{"x":["a"],"y":2,"new \"one\"":"v"}"#);
        assert_eq!(obj.value::<String>("new \"one\"").as_deref(), Some("v"));
        let mut empty = RawObject::default();
        assert_eq!(empty.to_json(), "{}");
        empty.set_json("k", "{}".into());
        assert_eq!(empty.to_json(), r#"{"k":{}}"#);
    }

    #[test]
    fn escaped_keys_and_duplicates() {
        let obj = RawObject::parse(r#"{"I\u0064":"a","k":1,"k":2}"#).unwrap();
        assert_eq!(obj.value::<String>("Id").as_deref(), Some("a"));
        assert_eq!(obj.get("k"), Some("2"));
        assert_eq!(obj.to_json(), r#"{"I\u0064":"a","k":1,"k":2}"#);
    }

    #[test]
    fn only_well_formed_objects_parse() {
        for bad in [
            "",
            "[]",
            "null",
            r#"{"a":1"#,
            r#"{"a":1}x"#,
            r#"{"a":[1,}"#,
            r#"{"a":tru}"#,
            r#"{a:1}"#,
        ] {
            assert!(RawObject::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn arrays_split_and_join() {
        let parts = elements(r#"[ {"a":1} ,2,"x" ]"#).unwrap();
        assert_eq!(parts, [r#"{"a":1}"#, "2", r#""x""#]);
        assert_eq!(array(&parts), r#"[{"a":1},2,"x"]"#);
        assert_eq!(elements("[]").unwrap().len(), 0);
        assert_eq!(array::<&str>(&[]), "[]");
        assert!(elements(r#"{"a":1}"#).is_none());
        assert!(elements("[1,").is_none());
    }
}
