//! subjectAltNames: parsed from `dns:`, `ip:`, `email:`, `uri:` (a bare name is DNS) and encoded
//! as the extensionRequest attribute.

#![allow(clippy::wildcard_imports)]
use super::*;

/// One subjectAltName entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Email(String),
    Uri(String),
}

impl San {
    /// Parses `dns:NAME`, `ip:ADDRESS`, `email:ADDRESS` or `uri:URI` (the prefix in any case, so
    /// OpenSSL's `DNS:` and `IP:` work too); text without one of these prefixes is a DNS name.
    /// The value is checked as [`build_csr`] would check it.
    pub fn parse(text: &str) -> Result<San, CsrError> {
        let text = text.trim();
        let known = text.split_once(':').and_then(|(prefix, rest)| {
            let prefix = prefix.to_ascii_lowercase();
            matches!(prefix.as_str(), "dns" | "ip" | "email" | "uri").then_some((prefix, rest))
        });
        let san = match known {
            Some((prefix, rest)) => match prefix.as_str() {
                "ip" => San::Ip(rest.trim().parse().map_err(|_| CsrError::InvalidIp(rest.trim().to_owned()))?),
                "email" => San::Email(rest.to_owned()),
                "uri" => San::Uri(rest.to_owned()),
                _ => San::Dns(rest.to_owned()),
            },
            None if text.parse::<IpAddr>().is_ok() => {
                return Err(invalid_san(text, "an IP address needs the ip: prefix"));
            }
            None if text.contains(':') => {
                return Err(invalid_san(text, "unknown type prefix (use dns:, ip:, email: or uri:)"));
            }
            None => San::Dns(text.to_owned()),
        };
        san.check()?;
        Ok(san)
    }

    /// Checks the value, as far as a CA would.
    fn check(&self) -> Result<(), CsrError> {
        match self {
            San::Dns(name) => check_dns_name(name, true).map_err(|reason| invalid_san(&self.to_string(), reason)),
            San::Ip(_) => Ok(()),
            San::Email(address) => check_email(address).map_err(|reason| invalid_san(&self.to_string(), reason)),
            San::Uri(uri) => check_uri(uri).map_err(|reason| invalid_san(&self.to_string(), reason)),
        }
    }

    pub(super) fn general_name(&self) -> Result<GeneralName, CsrError> {
        self.check()?;
        Ok(match self {
            San::Dns(name) => GeneralName::DnsName(Ia5String::new(name)?),
            San::Email(address) => GeneralName::Rfc822Name(Ia5String::new(address)?),
            San::Uri(uri) => GeneralName::Uri(Ia5String::new(uri)?),
            San::Ip(IpAddr::V4(ip)) => GeneralName::IpAddress(OctetString::new(ip.octets().to_vec())?),
            San::Ip(IpAddr::V6(ip)) => GeneralName::IpAddress(OctetString::new(ip.octets().to_vec())?),
        })
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => write!(f, "dns:{name}"),
            San::Ip(ip) => write!(f, "ip:{ip}"),
            San::Email(address) => write!(f, "email:{address}"),
            San::Uri(uri) => write!(f, "uri:{uri}"),
        }
    }
}

impl FromStr for San {
    type Err = CsrError;

    fn from_str(text: &str) -> Result<San, CsrError> {
        San::parse(text)
    }
}

fn invalid_san(text: &str, reason: impl Into<String>) -> CsrError {
    CsrError::InvalidSan { text: text.to_owned(), reason: reason.into() }
}

/// A DNS name in the preferred syntax of RFC 1034 as RFC 5280 wants it: ASCII (IDNs as A-labels),
/// letters, digits and hyphens, no empty labels or trailing dot; `*.` may lead a SAN's name.
fn check_dns_name(name: &str, allow_wildcard: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty DNS name".to_owned());
    }
    if name.len() > 253 {
        return Err(format!("a DNS name is at most 253 characters, this is {}", name.len()));
    }
    if !name.is_ascii() {
        return Err("not ASCII: write an internationalised name as its A-label (xn--...)".to_owned());
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err("an IP address, not a DNS name (use ip:)".to_owned());
    }
    let rest = match name.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        _ => name,
    };
    if rest.ends_with('.') {
        return Err("remove the trailing dot".to_owned());
    }
    for label in rest.split('.') {
        if label.is_empty() {
            return Err("empty label".to_owned());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '-')) {
            return Err(format!("{c:?} is not allowed in a DNS name (letters, digits and '-' only)"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

fn check_email(address: &str) -> Result<(), String> {
    if address.len() > MAX_SAN_LEN {
        return Err(format!("longer than {MAX_SAN_LEN} bytes"));
    }
    if !address.is_ascii() {
        return Err("not ASCII (an rfc822Name is an IA5String)".to_owned());
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("no '@'".to_owned());
    };
    if local.is_empty() || local.len() > 64 {
        return Err("the local part must be 1 to 64 characters".to_owned());
    }
    if let Some(c) = local.chars().find(|&c| c.is_ascii_control() || c == ' ' || c == '@') {
        return Err(format!("{c:?} in the local part"));
    }
    check_dns_name(domain, false).map_err(|reason| format!("domain: {reason}"))
}

fn check_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_SAN_LEN {
        return Err(format!("longer than {MAX_SAN_LEN} bytes"));
    }
    if !uri.is_ascii() {
        return Err("not ASCII: percent-encode it (a URI SAN is an IA5String)".to_owned());
    }
    if let Some(c) = uri.chars().find(|&c| c.is_ascii_control() || c == ' ') {
        return Err(format!("{c:?} in a URI"));
    }
    // RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':'.
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
    });
    if !scheme_ok {
        return Err("not an absolute URI (scheme:...)".to_owned());
    }
    Ok(())
}

/// The GeneralName alternatives a request can carry (RFC 5280 section 4.2.1.6).
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub(super) enum GeneralName {
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", type = "IA5String")]
    Rfc822Name(Ia5String),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", type = "IA5String")]
    DnsName(Ia5String),
    #[asn1(context_specific = "6", tag_mode = "IMPLICIT", type = "IA5String")]
    Uri(Ia5String),
    #[asn1(context_specific = "7", tag_mode = "IMPLICIT", type = "OCTET STRING")]
    IpAddress(OctetString),
}

/// Extension (RFC 5280 section 4.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(super) struct Extension {
    pub(super) extn_id: ObjectIdentifier,
    #[asn1(default = "Default::default")]
    pub(super) critical: bool,
    pub(super) extn_value: OctetString,
}

/// The extensionRequest attribute holding a subjectAltName extension, or none without SANs.
pub(super) fn attributes(sans: &[San]) -> Result<SetOfVec<Attribute>, CsrError> {
    let mut attributes = SetOfVec::new();
    if sans.is_empty() {
        return Ok(attributes);
    }
    if sans.len() > MAX_SANS {
        return Err(CsrError::TooManySans { count: sans.len(), max: MAX_SANS });
    }
    let names = sans.iter().map(San::general_name).collect::<Result<Vec<_>, _>>()?;
    let extension = Extension {
        extn_id: rfc5912::ID_CE_SUBJECT_ALT_NAME,
        critical: false,
        extn_value: OctetString::new(names.to_der()?)?,
    };
    let extensions = Any::encode_from(&vec![extension])?;
    attributes.insert(Attribute {
        oid: rfc2985::PKCS_9_AT_EXTENSION_REQUEST,
        values: SetOfVec::try_from(vec![extensions])?,
    })?;
    Ok(attributes)
}
