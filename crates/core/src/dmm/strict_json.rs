//! JSON parsing for DMM documents that refuses duplicated object keys.
//!
//! `serde_json` (like most parsers) keeps the last of two equal keys without a word, while other
//! readers keep the first or reject the document. For the documents the integration grants from
//! that is a security problem: a data product whose `custom` map holds `aws-role-name` twice may
//! show one role in the DMM UI while the integration grants to the other. So a key that appears
//! twice in one object with *different* values makes the whole document unusable; the same key
//! with an equal value is harmless (every reader agrees) and is accepted.
//!
//! Everything else is `serde_json`'s own parsing, including its recursion limit, so a deeply
//! nested document is an ordinary syntax error and cannot overflow the stack.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use crate::text::shown;

/// Why a text is not a usable document.
#[derive(Debug)]
pub(crate) enum StrictError {
    /// Not JSON (or truncated): a transport problem as far as the caller can tell.
    Syntax(serde_json::Error),
    /// A key that appears twice in one object with different values, as a path from the
    /// document's root (`custom.aws-role-name`, `outputPorts[0].custom.aws-s3-bucket-arn`),
    /// already shortened and escaped for messages.
    DuplicateKey(String),
}

/// Parses `text` into a [`Value`], refusing duplicated keys with different values.
pub(crate) fn parse(text: &str) -> Result<Value, StrictError> {
    let state = State::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed { state: &state }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, state.duplicate.into_inner()) {
        (Err(_), Some(path)) => Err(StrictError::DuplicateKey(path)),
        (Err(e), None) => Err(StrictError::Syntax(e)),
        (Ok(value), _) => Ok(value),
    }
}

enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Default)]
struct State {
    /// Where the value being parsed sits.
    path: RefCell<Vec<Segment>>,
    /// Set when a duplicated key was found; parsing stops there.
    duplicate: RefCell<Option<String>>,
}

impl State {
    fn with<T>(&self, segment: Segment, parse: impl FnOnce() -> T) -> T {
        self.path.borrow_mut().push(segment);
        let result = parse();
        self.path.borrow_mut().pop();
        result
    }

    fn record_duplicate(&self, key: &str) {
        let mut path = String::new();
        for segment in self.path.borrow().iter() {
            match segment {
                Segment::Key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                }
                Segment::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        *self.duplicate.borrow_mut() = Some(shown(&path));
    }
}

#[derive(Clone, Copy)]
struct ValueSeed<'s> {
    state: &'s State,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let next = self
                .state
                .with(Segment::Index(items.len()), || seq.next_element_seed(self))?;
            match next {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = self
                .state
                .with(Segment::Key(key.clone()), || map.next_value_seed(self))?;
            match object.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(existing) if *existing.get() == value => {}
                Entry::Occupied(existing) => {
                    self.state.record_duplicate(existing.key());
                    return Err(de::Error::custom("duplicated key"));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn duplicate(text: &str) -> String {
        match parse(text) {
            Err(StrictError::DuplicateKey(path)) => path,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn parses_like_serde_json_and_keeps_key_order() {
        let text =
            r#"{"z": 1, "a": [true, null, -2, 2.5, "s", {"k": {}}], "m": 18446744073709551615}"#;
        let value = parse(text).unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(
            value.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["z", "a", "m"]
        );
    }

    #[test]
    fn names_the_path_of_a_duplicated_key() {
        assert_eq!(duplicate(r#"{"id": "a", "id": "b"}"#), "id");
        assert_eq!(
            duplicate(r#"{"custom": {"aws-role-name": "x", "aws-role-name": "admin"}}"#),
            "custom.aws-role-name"
        );
        assert_eq!(
            duplicate(r#"{"outputPorts": [{"id": "p"}, {"id": "q", "custom": {"k": 1, "k": 2}}]}"#),
            "outputPorts[1].custom.k"
        );
        assert_eq!(
            duplicate(r#"{"consumer": {"dataProductId": "a"}, "consumer": {"teamId": "b"}}"#),
            "consumer"
        );
        assert_eq!(duplicate(r#"[[{"a": 1, "a": {}}]]"#), "[0][0].a");
    }

    #[test]
    fn an_equal_repetition_is_not_ambiguous() {
        let value = parse(r#"{"a": {"x": [1]}, "b": 2, "a": {"x": [1]}}"#).unwrap();
        assert_eq!(value, json!({"a": {"x": [1]}, "b": 2}));
    }

    #[test]
    fn hostile_keys_are_shortened_and_escaped_in_the_path() {
        let key = format!("\u{202e}{}", "k".repeat(500));
        let text = format!(r#"{{"{key}": 1, "{key}": 2}}"#);
        let path = duplicate(&text);
        assert!(path.starts_with("\\u{202e}kkk"), "{path}");
        assert!(path.ends_with('…') && path.chars().count() < 140, "{path}");
    }

    #[test]
    fn syntax_errors_and_deep_nesting_are_syntax_errors() {
        for text in ["", "{", r#"{"a": 1,}"#, "[1] 2", "{\"a\": 1} x"] {
            assert!(matches!(parse(text), Err(StrictError::Syntax(_))), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(parse(&deep), Err(StrictError::Syntax(_))));
    }

    #[test]
    fn large_documents_parse() {
        let custom: Map<String, Value> = (0..5_000)
            .map(|i| (format!("field-{i}"), json!(i)))
            .chain([("big".to_owned(), json!("x".repeat(1 << 20)))])
            .collect();
        let text = json!({"id": "p", "custom": custom}).to_string();
        assert_eq!(
            parse(&text).unwrap()["custom"].as_object().unwrap().len(),
            5_001
        );
    }
}
