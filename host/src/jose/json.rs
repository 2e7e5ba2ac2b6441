//! JSON as JOSE needs it read: a member name given twice is refused (RFC 7515 section 4, RFC
//! 7517 section 4, RFC 7519 section 4 let a reader pick the last one; we refuse instead, so two
//! readers cannot see two different keys or headers), nesting is bounded, and so is the size.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The deepest nesting accepted (a JWK Set is two levels; a header a few).
pub const MAX_DEPTH: usize = 16;

/// Parses `bytes` as one JSON value, refusing duplicate member names at any depth, nesting
/// deeper than [`MAX_DEPTH`], and input over `limit` bytes.
///
/// # Errors
/// Over the limit, not JSON, a duplicate member, or too deep; in words.
pub fn parse(bytes: &[u8], limit: usize, what: &str) -> Result<Value, String> {
    if bytes.len() > limit {
        return Err(format!("{what} is {} bytes; at most {limit} are accepted", bytes.len()));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { depth: 0 }.deserialize(&mut de).map_err(|e| format!("{what}: {e}"))?;
    de.end().map_err(|e| format!("{what}: {e}"))?;
    Ok(value)
}

struct Strict {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("a number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.deeper::<A::Error>()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict { depth })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.deeper::<A::Error>()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("the member {key:?} is given twice (refused, not resolved)")));
            }
            let v = map.next_value_seed(Strict { depth })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

impl Strict {
    fn deeper<E: de::Error>(&self) -> Result<usize, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(self.depth + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_depth_and_size_are_refused() {
        assert!(parse(br#"{"a":1,"b":{"c":[1,2]}}"#, 100, "t").is_ok());
        let e = parse(br#"{"kty":"EC","kty":"RSA"}"#, 100, "t").unwrap_err();
        assert!(e.contains("\"kty\" is given twice"), "{e}");
        let e = parse(br#"{"keys":[{"x":1,"x":2}]}"#, 100, "t").unwrap_err();
        assert!(e.contains("given twice"), "{e}");
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(parse(deep.as_bytes(), 1000, "t").unwrap_err().contains("nested deeper"));
        assert!(parse(b"{}", 1, "t").unwrap_err().contains("at most 1"));
        assert!(parse(b"{} {}", 100, "t").is_err(), "one value only");
    }
}
