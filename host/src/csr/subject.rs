//! Subject names (RFC 4514): parsed, checked and encoded as a DER RDNSequence.

#![allow(clippy::wildcard_imports)]
use super::*;

/// AttributeTypeAndValue (RFC 5280 section 4.1.2.4).
#[derive(Clone, Debug, Eq, PartialEq, Sequence, ValueOrd)]
pub(super) struct AttributeTypeAndValue {
    oid: ObjectIdentifier,
    value: Any,
}

/// RelativeDistinguishedName: a SET OF, which `SetOfVec` keeps in DER order.
pub(super) type Rdn = SetOfVec<AttributeTypeAndValue>;
/// RDNSequence, root first.
pub(super) type RdnSequence = Vec<Rdn>;

/// How an attribute's value is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueKind {
    Utf8,
    Printable,
    Ia5,
    /// A two-letter ISO 3166 code as PrintableString.
    Country,
}

struct AttributeDef {
    /// Accepted names, compared case-insensitively; the first is the one OpenSSL prints.
    names: &'static [&'static str],
    oid: ObjectIdentifier,
    kind: ValueKind,
    /// Upper bound on the value's length in characters (RFC 5280 appendix A, X.520).
    max_chars: Option<usize>,
}

pub(super) const KNOWN_ATTRIBUTE_NAMES: &str = concat!(
    "CN, C, L, ST, street, O, OU, title, serialNumber, SN (surname), GN, postalCode, ",
    "organizationIdentifier, DC, UID, emailAddress"
);

const ATTRIBUTES: &[AttributeDef] = &[
    AttributeDef { names: &["CN", "commonName"], oid: rfc4519::CN, kind: ValueKind::Utf8, max_chars: Some(64) },
    AttributeDef { names: &["C", "countryName"], oid: rfc4519::C, kind: ValueKind::Country, max_chars: None },
    AttributeDef { names: &["L", "localityName"], oid: rfc4519::L, kind: ValueKind::Utf8, max_chars: Some(128) },
    AttributeDef {
        names: &["ST", "stateOrProvinceName"],
        oid: rfc4519::ST,
        kind: ValueKind::Utf8,
        max_chars: Some(128),
    },
    AttributeDef {
        names: &["street", "streetAddress"],
        oid: rfc4519::STREET,
        kind: ValueKind::Utf8,
        max_chars: Some(128),
    },
    AttributeDef { names: &["O", "organizationName"], oid: rfc4519::O, kind: ValueKind::Utf8, max_chars: Some(64) },
    AttributeDef {
        names: &["OU", "organizationalUnitName"],
        oid: rfc4519::OU,
        kind: ValueKind::Utf8,
        max_chars: Some(64),
    },
    AttributeDef { names: &["title"], oid: rfc4519::TITLE, kind: ValueKind::Utf8, max_chars: Some(64) },
    AttributeDef {
        names: &["serialNumber"],
        oid: rfc4519::SERIAL_NUMBER,
        kind: ValueKind::Printable,
        max_chars: Some(64),
    },
    AttributeDef { names: &["SN", "surname"], oid: rfc4519::SN, kind: ValueKind::Utf8, max_chars: None },
    AttributeDef { names: &["GN", "givenName"], oid: rfc4519::GN, kind: ValueKind::Utf8, max_chars: None },
    AttributeDef { names: &["postalCode"], oid: rfc4519::POSTAL_CODE, kind: ValueKind::Utf8, max_chars: Some(40) },
    AttributeDef {
        names: &["organizationIdentifier"],
        oid: ORGANIZATION_IDENTIFIER,
        kind: ValueKind::Utf8,
        max_chars: Some(64),
    },
    AttributeDef { names: &["DC", "domainComponent"], oid: rfc4519::DC, kind: ValueKind::Ia5, max_chars: Some(63) },
    AttributeDef { names: &["UID", "userId"], oid: rfc4519::UID, kind: ValueKind::Utf8, max_chars: None },
    AttributeDef {
        names: &["emailAddress", "email", "E"],
        oid: rfc2985::PKCS_9_AT_EMAIL_ADDRESS,
        kind: ValueKind::Ia5,
        max_chars: Some(255),
    },
];

/// An attribute value as written: a string, or `#` and the hex of a DER value.
enum RawValue {
    Text(String),
    Der(Vec<u8>),
}

struct RawAva {
    attribute_type: String,
    value: RawValue,
}

/// Encodes an RFC 4514 distinguished name as a DER `Name` (RDNSequence).
pub fn encode_subject(subject: &str) -> Result<Vec<u8>, CsrError> {
    Ok(parse_subject(subject)?.to_der()?)
}

/// Parses an RFC 4514 string into an RDNSequence in DER order (root first).
pub(super) fn parse_subject(subject: &str) -> Result<RdnSequence, CsrError> {
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(CsrError::SubjectTooLong { len: subject.len(), max: MAX_SUBJECT_LEN });
    }
    if subject.trim().is_empty() {
        return Err(CsrError::EmptySubject);
    }
    let mut rdns = Vec::new();
    for raw_rdn in SubjectParser::new(subject).parse()? {
        let mut avas: Vec<AttributeTypeAndValue> = Vec::with_capacity(raw_rdn.len());
        for raw in raw_rdn {
            let ava = encode_ava(raw)?;
            if avas.contains(&ava) {
                return Err(CsrError::InvalidSubject(format!(
                    "the same attribute and value appear twice in one RDN ({})",
                    attribute_label(ava.oid)
                )));
            }
            avas.push(ava);
        }
        rdns.push(SetOfVec::try_from(avas)?);
    }
    // RFC 4514 section 2.1: the string starts with the last RDN of the sequence.
    rdns.reverse();
    Ok(rdns)
}

fn attribute_label(oid: ObjectIdentifier) -> String {
    match ATTRIBUTES.iter().find(|def| def.oid == oid).and_then(|def| def.names.first()) {
        Some(name) => (*name).to_owned(),
        None => oid.to_string(),
    }
}

fn lookup_attribute(attribute_type: &str) -> Result<(ObjectIdentifier, Option<&'static AttributeDef>), CsrError> {
    if attribute_type.starts_with(|c: char| c.is_ascii_digit()) {
        let oid = ObjectIdentifier::new(attribute_type).map_err(|err| {
            CsrError::InvalidSubject(format!("attribute type {attribute_type:?} is not a valid OID: {err}"))
        })?;
        return Ok((oid, ATTRIBUTES.iter().find(|def| def.oid == oid)));
    }
    ATTRIBUTES
        .iter()
        .find(|def| def.names.iter().any(|name| name.eq_ignore_ascii_case(attribute_type)))
        .map(|def| (def.oid, Some(def)))
        .ok_or_else(|| CsrError::UnknownAttribute(attribute_type.to_owned()))
}

fn encode_ava(raw: RawAva) -> Result<AttributeTypeAndValue, CsrError> {
    let (oid, def) = lookup_attribute(&raw.attribute_type)?;
    let label = &raw.attribute_type;
    let text = match raw.value {
        RawValue::Der(der) => {
            let value = Any::from_der(&der).map_err(|err| {
                CsrError::InvalidSubject(format!("the #hex value of {label} is not one DER value: {err}"))
            })?;
            return Ok(AttributeTypeAndValue { oid, value });
        }
        RawValue::Text(text) => text,
    };
    let invalid = |reason: String| CsrError::InvalidSubject(format!("{label}: {reason}"));
    if text.is_empty() {
        return Err(invalid("the value is empty".to_owned()));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(invalid(format!("control character {:?} in the value", c)));
    }
    let kind = def.map_or(ValueKind::Utf8, |def| def.kind);
    if let Some(max) = def.and_then(|def| def.max_chars) {
        let count = text.chars().count();
        if count > max {
            return Err(invalid(format!("the value is {count} characters long; at most {max} are allowed")));
        }
    }
    let tag = match kind {
        ValueKind::Utf8 => Tag::Utf8String,
        ValueKind::Country => {
            if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(format!(
                    "{text:?} is not a two-letter ISO 3166 country code in capitals, such as DE"
                )));
            }
            Tag::PrintableString
        }
        ValueKind::Printable => {
            if let Some(c) = text.chars().find(|&c| !is_printable_string_char(c)) {
                return Err(invalid(format!(
                    "{c:?} cannot appear in a PrintableString (letters, digits, space and '()+,-./:=?)"
                )));
            }
            Tag::PrintableString
        }
        ValueKind::Ia5 => {
            if !text.is_ascii() {
                return Err(invalid("the value must be ASCII (it is an IA5String)".to_owned()));
            }
            Tag::Ia5String
        }
    };
    Ok(AttributeTypeAndValue { oid, value: Any::new(tag, text.into_bytes())? })
}

fn is_printable_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c)
}

/// A hand-written scanner for RFC 4514 section 3, lenient only about unescaped spaces around
/// separators and `=`, which it drops.
struct SubjectParser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> SubjectParser<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|rest| rest.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
    }

    /// The RDNs in string order (most specific first), each a list of AVAs.
    fn parse(mut self) -> Result<Vec<Vec<RawAva>>, CsrError> {
        let mut rdns = Vec::new();
        let mut rdn = Vec::new();
        loop {
            rdn.push(self.attribute_type_and_value()?);
            match self.bump() {
                None => break,
                Some('+') => {}
                Some(',') => rdns.push(std::mem::take(&mut rdn)),
                Some(c) => {
                    // Unreachable: a value ends only at the end, ',' or '+'.
                    return Err(CsrError::InvalidSubject(format!("unexpected {c:?} at byte {}", self.pos)));
                }
            }
        }
        rdns.push(rdn);
        Ok(rdns)
    }

    fn attribute_type_and_value(&mut self) -> Result<RawAva, CsrError> {
        self.skip_spaces();
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '=' || c == ',' || c == '+' {
                break;
            }
            self.pos += c.len_utf8();
        }
        let attribute_type = self.text.get(start..self.pos).unwrap_or_default().trim_end_matches(' ');
        if self.peek() != Some('=') {
            return Err(CsrError::InvalidSubject(if attribute_type.is_empty() && self.peek().is_none() {
                "a ',' or '+' with nothing after it".to_owned()
            } else if attribute_type.is_empty() {
                format!("an empty RDN before byte {}", self.pos)
            } else {
                format!("expected '=' after {attribute_type:?}")
            }));
        }
        if attribute_type.is_empty() {
            return Err(CsrError::InvalidSubject(format!("missing attribute type before '=' at byte {}", self.pos)));
        }
        let is_descr = attribute_type.starts_with(|c: char| c.is_ascii_alphabetic())
            && attribute_type.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let is_numeric_oid = attribute_type.chars().all(|c| c.is_ascii_digit() || c == '.');
        if !is_descr && !is_numeric_oid {
            return Err(CsrError::InvalidSubject(format!(
                "{attribute_type:?} is neither an attribute name nor a dotted OID"
            )));
        }
        let attribute_type = attribute_type.to_owned();
        self.pos += 1; // '='
        self.skip_spaces();
        let value = if self.peek() == Some('#') {
            self.pos += 1;
            RawValue::Der(self.hex_value(&attribute_type)?)
        } else {
            RawValue::Text(self.string_value(&attribute_type)?)
        };
        Ok(RawAva { attribute_type, value })
    }

    /// The hex digits after `#`, up to the end of the value.
    fn hex_value(&mut self, attribute_type: &str) -> Result<Vec<u8>, CsrError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let digits = self.text.get(start..self.pos).unwrap_or_default();
        self.skip_spaces();
        if !matches!(self.peek(), None | Some(',' | '+')) || digits.is_empty() || digits.len() % 2 != 0 {
            return Err(CsrError::InvalidSubject(format!(
                "the value of {attribute_type} starts with '#' but is not an even number of hex digits \
                 (write \\# for a literal '#')"
            )));
        }
        let mut bytes = Vec::with_capacity(digits.len() / 2);
        for pair in digits.as_bytes().chunks_exact(2) {
            if let [hi, lo] = *pair {
                bytes.push(hex_digit(hi) << 4 | hex_digit(lo));
            }
        }
        Ok(bytes)
    }

    /// A string value (RFC 4514 `string`), unescaped, up to an unescaped ',' or '+' or the end.
    fn string_value(&mut self, attribute_type: &str) -> Result<String, CsrError> {
        let mut bytes: Vec<u8> = Vec::new();
        // Length of `bytes` up to its last character that is not an unescaped space.
        let mut kept = 0;
        loop {
            match self.peek() {
                None | Some(',' | '+') => break,
                Some('\\') => {
                    self.pos += 1;
                    match self.bump() {
                        None => {
                            return Err(CsrError::BadEscape(format!(
                                "the value of {attribute_type} ends with a lone backslash"
                            )));
                        }
                        Some(c @ ('\\' | '"' | '+' | ',' | ';' | '<' | '>' | ' ' | '#' | '=')) => {
                            bytes.push(c as u8);
                        }
                        Some(hi) if hi.is_ascii_hexdigit() => match self.peek() {
                            Some(lo) if lo.is_ascii_hexdigit() => {
                                self.pos += 1;
                                bytes.push(hex_digit(hi as u8) << 4 | hex_digit(lo as u8));
                            }
                            _ => {
                                return Err(CsrError::BadEscape(format!(
                                    "\\{hi} in the value of {attribute_type} is not followed by a second hex digit"
                                )));
                            }
                        },
                        Some(c) => {
                            return Err(CsrError::BadEscape(format!(
                                "\\{c} in the value of {attribute_type} (escape only \\ \" + , ; < > # = space, \
                                 or write a byte as two hex digits)"
                            )));
                        }
                    }
                    kept = bytes.len();
                }
                Some(c @ ('"' | ';' | '<' | '>')) => {
                    return Err(CsrError::InvalidSubject(format!(
                        "unescaped {c:?} in the value of {attribute_type} (write \\{c})"
                    )));
                }
                Some(c) => {
                    self.pos += c.len_utf8();
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    if c != ' ' {
                        kept = bytes.len();
                    }
                }
            }
        }
        bytes.truncate(kept);
        String::from_utf8(bytes).map_err(|_| {
            CsrError::BadEscape(format!("the hex escapes in the value of {attribute_type} are not valid UTF-8"))
        })
    }
}

/// The value of an ASCII hex digit (callers check `is_ascii_hexdigit` first).
fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}
