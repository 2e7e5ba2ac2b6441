//! JWT (RFC 7519) claims checked as RFC 8725 asks of a relying party: the issuer and the
//! audience are required unless waived by name, times are NumericDates checked with a leeway,
//! explicit typing, and no nesting (a JWT inside a JWT, or a JWE, is out of scope).

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::jws::Header;

/// The largest claims set read (decoded).
pub const MAX_CLAIMS: usize = 256 << 10;

/// What a relying party expects of a JWT.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    pub iss: Option<String>,
    pub any_issuer: bool,
    pub aud: Option<String>,
    pub any_audience: bool,
    pub azp: Option<String>,
    pub sub: Option<String>,
    pub typ: Option<String>,
    pub nonce: Option<String>,
    pub leeway: u64,
    pub require: Vec<String>,
}

impl Expect {
    /// The expectations a request must state before anything is verified.
    ///
    /// # Errors
    /// No issuer and no waiver, no audience and no waiver, or both one and its waiver.
    pub fn checked(self) -> Result<Expect, String> {
        match (&self.iss, self.any_issuer) {
            (None, false) => {
                return Err("give the expected issuer (--iss), or waive the check explicitly with --any-issuer \
                            (RFC 8725 section 3.8)"
                    .into());
            }
            (Some(_), true) => return Err("give --iss or --any-issuer, not both".into()),
            _ => {}
        }
        match (&self.aud, self.any_audience) {
            (None, false) => {
                return Err("give the expected audience (--aud), or waive the check explicitly with --any-audience \
                            (RFC 8725 section 3.9)"
                    .into());
            }
            (Some(_), true) => return Err("give --aud or --any-audience, not both".into()),
            _ => {}
        }
        if self.leeway > 86_400 {
            return Err(format!("a leeway of {} s is over a day: refused", self.leeway));
        }
        Ok(self)
    }
}

/// Refuses what this host does not verify as a JWT: a nested JWT (`cty: JWT`) and an unencoded
/// payload.
///
/// # Errors
/// The refusal in words.
pub fn check_header(header: &Header) -> Result<(), String> {
    let cty = header.protected.get("cty").and_then(Value::as_str);
    if cty.is_some_and(|c| c.eq_ignore_ascii_case("JWT") || c.eq_ignore_ascii_case("application/jwt")) {
        return Err("cty JWT: a nested JWT is out of scope here (refused)".into());
    }
    if !header.b64 {
        return Err("a JWT's payload is base64url-encoded; b64=false is refused (RFC 7797 section 7)".into());
    }
    Ok(())
}

/// The claims set of a verified JWT's payload.
///
/// # Errors
/// Not a JSON object, a duplicate claim, too deep or too large.
pub fn claims(payload: &[u8]) -> Result<Map<String, Value>, String> {
    match super::json::parse(payload, MAX_CLAIMS, "the JWT claims set")? {
        Value::Object(m) => Ok(m),
        _ => Err("the JWT claims set is not a JSON object".into()),
    }
}

fn typ_matches(given: &str, expected: &str) -> bool {
    let strip = |s: &str| {
        let lower = s.to_ascii_lowercase();
        lower.strip_prefix("application/").map(str::to_string).unwrap_or(lower)
    };
    strip(given) == strip(expected)
}

fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| format!("{name} is not a NumericDate")),
        Some(_) => Err(format!("{name} is not a NumericDate (a number of seconds)")),
    }
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name} is not a string")),
    }
}

/// Every way the claims and header fail `expect` at time `at`; empty when they pass.
pub fn check(claims: &Map<String, Value>, header: &Header, expect: &Expect, at: OffsetDateTime) -> Vec<String> {
    let mut fails = Vec::new();
    let mut fail = |r: Result<(), String>| {
        if let Err(e) = r {
            fails.push(e);
        }
    };
    let now = at.unix_timestamp() as f64;
    let leeway = expect.leeway as f64;
    for name in &expect.require {
        if !claims.contains_key(name) {
            fail(Err(format!("the required claim {name:?} is missing")));
        }
    }
    if let Some(typ) = &expect.typ {
        let given = header.protected.get("typ").and_then(Value::as_str);
        fail(match given {
            Some(g) if typ_matches(g, typ) => Ok(()),
            Some(g) => Err(format!("typ {g:?} is not {typ:?} (RFC 8725 section 3.11)")),
            None => Err(format!("the protected header has no typ; {typ:?} is required (RFC 8725 section 3.11)")),
        });
    }
    if let Some(iss) = &expect.iss {
        fail(match string_claim(claims, "iss") {
            Ok(Some(i)) if i == iss => Ok(()),
            Ok(Some(i)) => Err(format!("iss {i:?} is not the expected issuer {iss:?}")),
            Ok(None) => Err(format!("no iss claim; the issuer {iss:?} is expected")),
            Err(e) => Err(e),
        });
    }
    let audiences: Result<Vec<&str>, String> = match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(a)) => Ok(vec![a.as_str()]),
        Some(Value::Array(list)) => {
            list.iter().map(|a| a.as_str().ok_or_else(|| "aud holds a non-string".to_string())).collect()
        }
        Some(_) => Err("aud is neither a string nor an array of strings".into()),
    };
    match (&audiences, &expect.aud) {
        (Err(e), _) => fail(Err(e.clone())),
        (Ok(list), Some(aud)) => {
            if !list.contains(&aud.as_str()) {
                fail(Err(format!("aud {list:?} does not name the expected audience {aud:?}")));
            }
            if list.len() > 1 {
                let azp = expect.azp.as_ref().unwrap_or(aud);
                fail(match string_claim(claims, "azp") {
                    Ok(Some(a)) if a == azp => Ok(()),
                    Ok(Some(a)) => Err(format!("azp {a:?} is not {azp:?} (several audiences)")),
                    Ok(None) => Err("several audiences and no azp claim: the authorized party is unknown".into()),
                    Err(e) => Err(e),
                });
            }
        }
        (Ok(_), None) => {}
    }
    for (name, expected) in [("sub", &expect.sub), ("nonce", &expect.nonce)] {
        if let Some(want) = expected {
            fail(match string_claim(claims, name) {
                Ok(Some(v)) if v == want => Ok(()),
                Ok(Some(v)) => Err(format!("{name} {v:?} is not {want:?}")),
                Ok(None) => Err(format!("no {name} claim; {want:?} is expected")),
                Err(e) => Err(e),
            });
        }
    }
    match numeric_date(claims, "exp") {
        Ok(Some(exp)) if now > exp + leeway => {
            fail(Err(format!("the token expired at {exp} (now {now}, leeway {leeway} s)")));
        }
        Err(e) => fail(Err(e)),
        _ => {}
    }
    match numeric_date(claims, "nbf") {
        Ok(Some(nbf)) if now + leeway < nbf => {
            fail(Err(format!("the token is not valid before {nbf} (now {now}, leeway {leeway} s)")));
        }
        Err(e) => fail(Err(e)),
        _ => {}
    }
    match numeric_date(claims, "iat") {
        Ok(Some(iat)) if iat > now + leeway => {
            fail(Err(format!("the token was issued in the future, at {iat} (now {now}, leeway {leeway} s)")));
        }
        Err(e) => fail(Err(e)),
        _ => {}
    }
    fails
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        let mut protected = Map::new();
        protected.insert("alg".into(), "ES256".into());
        protected.insert("typ".into(), "JWT".into());
        Header {
            protected_b64: String::new(),
            protected,
            unprotected: Map::new(),
            alg: "ES256".into(),
            alg_protected: true,
            b64: true,
            kid: None,
        }
    }

    fn expect() -> Expect {
        Expect { iss: Some("https://op".into()), aud: Some("rp".into()), leeway: 60, ..Default::default() }
    }

    #[test]
    fn rfc8725_rules() {
        assert!(Expect::default().checked().unwrap_err().contains("--iss"));
        assert!(Expect { iss: Some("i".into()), ..Default::default() }.checked().unwrap_err().contains("--aud"));
        let at = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let c = |v: Value| v.as_object().unwrap().clone();
        let ok = c(serde_json::json!({"iss":"https://op","aud":"rp","exp":1_000_030,"iat":999_000}));
        assert!(check(&ok, &header(), &expect(), at).is_empty());
        let late = c(serde_json::json!({"iss":"https://op","aud":"rp","exp":999_900}));
        assert!(check(&late, &header(), &expect(), at)[0].contains("expired"));
        let leeway = c(serde_json::json!({"iss":"https://op","aud":"rp","exp":999_950}));
        assert!(check(&leeway, &header(), &expect(), at).is_empty(), "within the 60 s leeway");
        let many = c(serde_json::json!({"iss":"https://op","aud":["rp","other"]}));
        assert!(check(&many, &header(), &expect(), at)[0].contains("azp"));
        let wrong = c(serde_json::json!({"iss":"https://evil","aud":"x","nbf":1_000_100,"exp":"soon"}));
        assert_eq!(check(&wrong, &header(), &expect(), at).len(), 4);
        let e = Expect { typ: Some("application/at+jwt".into()), ..expect() };
        assert!(check(&ok, &header(), &e, at)[0].contains("typ"));
        let e = Expect { typ: Some("application/JWT".into()), require: vec!["jti".into()], ..expect() };
        assert_eq!(check(&ok, &header(), &e, at), vec!["the required claim \"jti\" is missing".to_string()]);
    }
}
