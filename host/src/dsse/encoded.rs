//! Envelopes verified with their payload still in base64: the PAE is hashed as its base64 is
//! decoded, a chunk at a time, so verifying a 64 MiB payload holds the envelope's bytes and a
//! few chunks, never a decoded copy (nor the copy a JSON value would make: the payload's text
//! is borrowed from the envelope's bytes). Algorithms that take whole messages (EdDSA,
//! ML-DSA) still get the whole PAE, within the payload limit.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::{DsseError, Envelope, Signature, b64};

/// Base64 text decoded this much at a time (a multiple of 4): 48 KiB of output.
const CHUNK: usize = 64 << 10;

/// Base64 text, standard or URL-safe, padded or not (what [`crate::keyfile::decode_base64`]
/// accepts, exactly), checked whole and decoded on demand.
pub struct Base64Text<'a> {
    text: Cow<'a, str>,
    /// Every chunk but the last is decoded by the first, the last by the second (which says
    /// whether padding is required).
    engines: (&'static GeneralPurpose, &'static GeneralPurpose),
    len: usize,
}

impl fmt::Debug for Base64Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Text({} bytes of text, {} decoded)", self.text.len(), self.len)
    }
}

impl<'a> Base64Text<'a> {
    /// The text, when it is base64 in one of the accepted forms (checked by decoding it all,
    /// chunk by chunk, into a buffer that is thrown away).
    pub fn new(text: Cow<'a, str>) -> Option<Base64Text<'a>> {
        let padded = text.ends_with('=');
        let forms: [(&'static GeneralPurpose, &'static GeneralPurpose); 2] = if padded {
            [(&STANDARD_NO_PAD, &STANDARD), (&URL_SAFE_NO_PAD, &URL_SAFE)]
        } else {
            [(&STANDARD_NO_PAD, &STANDARD_NO_PAD), (&URL_SAFE_NO_PAD, &URL_SAFE_NO_PAD)]
        };
        let mut buf = vec![0u8; CHUNK / 4 * 3 + 3];
        let (engines, len) = forms.into_iter().find_map(|engines| {
            let chunks = text.as_bytes().chunks(CHUNK);
            let last = chunks.len().saturating_sub(1);
            let mut len = 0usize;
            for (i, chunk) in chunks.enumerate() {
                let engine = if i == last { engines.1 } else { engines.0 };
                len += engine.decode_slice(chunk, &mut buf).ok()?;
            }
            Some((engines, len))
        })?;
        Some(Base64Text { text, engines, len })
    }

    /// The decoded length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it decodes to nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A reader of the decoded bytes.
    pub fn reader(&self) -> Decoder<'_> {
        Decoder { text: self, next: 0, buf: vec![0u8; CHUNK / 4 * 3 + 3], start: 0, end: 0 }
    }

    /// The decoded bytes, whole.
    pub fn decode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        // Checked in `new`: the read cannot fail.
        let _ = self.reader().read_to_end(&mut out);
        out
    }
}

/// Reads what [`Base64Text`] decodes to, one chunk of text at a time.
pub struct Decoder<'t> {
    text: &'t Base64Text<'t>,
    /// The next chunk of text to decode.
    next: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Read for Decoder<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.start == self.end {
            let text = self.text.text.as_bytes();
            let from = self.next * CHUNK;
            if from >= text.len() {
                return Ok(0);
            }
            let to = (from + CHUNK).min(text.len());
            let engine = if to == text.len() { self.text.engines.1 } else { self.text.engines.0 };
            self.end = engine.decode_slice(&text[from..to], &mut self.buf).map_err(std::io::Error::other)?;
            self.start = 0;
            self.next += 1;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// An envelope whose payload stays in base64, borrowed from the envelope's bytes.
#[derive(Debug)]
pub struct EncodedEnvelope<'a> {
    pub payload: Base64Text<'a>,
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

impl<'a> EncodedEnvelope<'a> {
    /// Parses envelope JSON as [`Envelope::parse`] does (the same rules, limits and errors),
    /// keeping the payload as the base64 text in `bytes`. A field given twice is refused (which
    /// of two payloads was meant is not for a parser to guess).
    ///
    /// # Errors
    /// As [`Envelope::parse`].
    pub fn parse(bytes: &'a [u8], max_payload: usize, max_signatures: usize) -> Result<Self, DsseError> {
        // Base64 is 4/3 of the payload: refuse oversized input before parsing it.
        let ceiling = max_payload / 3 * 4 + 64 * 1024;
        if bytes.len() > ceiling {
            return Err(DsseError::TooLarge { size: bytes.len() / 4 * 3, limit: max_payload });
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let top = de.deserialize_any(TopVisitor).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => DsseError::Malformed(e.to_string()),
            _ => DsseError::NotJson(e.to_string()),
        })?;
        de.end().map_err(|e| DsseError::NotJson(e.to_string()))?;
        let text = |field: Option<Field<'a>>, k: &str| -> Result<Cow<'a, str>, DsseError> {
            match field {
                None => Err(DsseError::Malformed(format!("missing field {k:?}"))),
                Some(Field::Text(t)) => Ok(t),
                Some(Field::Other) => Err(DsseError::Malformed(format!("field {k:?} is not a string"))),
            }
        };
        let payload = Base64Text::new(text(top.payload, "payload")?)
            .ok_or_else(|| DsseError::Malformed("payload is not base64 (standard or URL-safe)".into()))?;
        if payload.len() > max_payload {
            return Err(DsseError::TooLarge { size: payload.len(), limit: max_payload });
        }
        let payload_type = text(top.payload_type, "payloadType")?.into_owned();
        let sigs = top
            .signatures
            .ok_or_else(|| DsseError::Malformed("missing field \"signatures\"".into()))?
            .as_array()
            .cloned()
            .ok_or_else(|| DsseError::Malformed("field \"signatures\" is not an array".into()))?;
        // Every signature may cost a verification under every trusted key: the count is
        // bounded before any is decoded.
        if sigs.len() > max_signatures {
            return Err(DsseError::TooManySignatures { count: sigs.len(), limit: max_signatures });
        }
        let mut signatures = Vec::new();
        for (i, s) in sigs.iter().enumerate() {
            let sig = s
                .get("sig")
                .and_then(Value::as_str)
                .ok_or_else(|| DsseError::Malformed(format!("signatures[{i}] has no \"sig\" string")))?;
            let keyid = s.get("keyid").and_then(Value::as_str).unwrap_or_default().to_string();
            signatures.push(Signature { keyid, sig: b64(&format!("signatures[{i}].sig"), sig)? });
        }
        Ok(EncodedEnvelope { payload, payload_type, signatures })
    }

    /// The envelope with its payload decoded.
    pub fn decode(self) -> Envelope {
        Envelope { payload: self.payload.decode(), payload_type: self.payload_type, signatures: self.signatures }
    }

    /// The PAE's first part, before the payload: `DSSEv1 len(type) type len(body) `.
    pub fn pae_prefix(&self) -> Vec<u8> {
        super::pae_prefix(&self.payload_type, self.payload.len())
    }
}

/// A top-level field's value: text (borrowed from the input when it has no escapes) or
/// something else.
enum Field<'a> {
    Text(Cow<'a, str>),
    Other,
}

/// The three fields an envelope is read for; the others are skipped unread.
struct Top<'a> {
    payload: Option<Field<'a>>,
    payload_type: Option<Field<'a>>,
    /// Small (bounded by the number of signatures), so an ordinary JSON value.
    signatures: Option<Value>,
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DSSE envelope (a JSON object): top level is not an object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Top<'de>, M::Error> {
        let mut top = Top { payload: None, payload_type: None, signatures: None };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let twice = |k: &str| de::Error::custom(format!("field {k:?} is given twice"));
            match key.as_ref() {
                "payload" if top.payload.is_some() => return Err(twice("payload")),
                "payload" => top.payload = Some(map.next_value::<FieldSeed>()?.0),
                "payloadType" if top.payload_type.is_some() => return Err(twice("payloadType")),
                "payloadType" => top.payload_type = Some(map.next_value::<FieldSeed>()?.0),
                "signatures" if top.signatures.is_some() => return Err(twice("signatures")),
                "signatures" => top.signatures = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

/// Deserializes a [`Field`]: text borrowed when it can be, anything else skipped.
struct FieldSeed<'a>(Field<'a>);

impl<'de> serde::Deserialize<'de> for FieldSeed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor).map(FieldSeed)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }
    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every accepted form decodes as `decode_base64` does, and every refused one is refused
    /// by both, across chunk edges.
    #[test]
    fn agrees_with_decode_base64_on_every_form_and_across_chunks() {
        let data: Vec<u8> = (0..(CHUNK / 4 * 3 * 2 + 50)).map(|i| (i * 7 + i / 256) as u8).collect();
        for len in [0, 1, 2, 3, 4, 5, CHUNK / 4 * 3 - 1, CHUNK / 4 * 3, CHUNK / 4 * 3 + 1, data.len()] {
            let m = &data[..len];
            for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
                let text = engine.encode(m);
                let t = Base64Text::new(Cow::Borrowed(&text)).expect("accepted");
                assert_eq!(t.len(), len);
                assert_eq!(t.decode(), m, "{len} bytes");
            }
        }
        let refused = ["A", "AB=C", "AAAA=", "A+_A", "AAA=AAAA", "AB==x", "AB=", "AR==", "AAA*"];
        for bad in refused {
            assert_eq!(crate::keyfile::decode_base64(bad.as_bytes()), None, "{bad}");
            assert!(Base64Text::new(Cow::Borrowed(bad)).is_none(), "{bad}");
        }
        // Padding in the middle of a long text: refused whichever chunk holds it.
        let mut text = STANDARD.encode(&data[..CHUNK]);
        text.replace_range(CHUNK - 4..CHUNK, "AA==");
        assert!(crate::keyfile::decode_base64(text.as_bytes()).is_none());
        assert!(Base64Text::new(Cow::Borrowed(&text)).is_none());
    }

    #[test]
    fn the_payload_is_borrowed_and_a_repeated_field_refused() {
        let bytes = br#"{"payload":"aGk","payloadType":"t","signatures":[{"sig":"AQ"}],"extra":[1,{"a":2}]}"#;
        let e = EncodedEnvelope::parse(bytes, 100, 16).expect("parses");
        assert!(matches!(e.payload.text, Cow::Borrowed(_)));
        assert_eq!(e.payload.decode(), b"hi");
        let twice = br#"{"payload":"aGk","payload":"aGo","payloadType":"t","signatures":[]}"#;
        let err = EncodedEnvelope::parse(twice, 100, 16).unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
        let err = EncodedEnvelope::parse(b"[1]", 100, 16).unwrap_err().to_string();
        assert!(err.contains("not an object"), "{err}");
        let err = EncodedEnvelope::parse(br#"{"payload":1,"payloadType":"t","signatures":[]}"#, 100, 16)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"payload\" is not a string"), "{err}");
        let escaped = br#"{"payload":"a\u0047k=","payloadType":"t","signatures":[]}"#;
        assert_eq!(EncodedEnvelope::parse(escaped, 100, 16).expect("parses").payload.decode(), b"hi");
    }
}
