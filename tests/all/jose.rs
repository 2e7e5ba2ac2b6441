//! JOSE through the binary (and, in the suite's server mode, through a server): RFC 7520's JWS
//! examples in every serialization (RS256 re-signed byte for byte), every Wycheproof JWS case
//! through `/v1/jws/verify`, the header and algorithm rules each refusing by name, multi-signer,
//! detached and unencoded payloads, JWK Sets, and JWT claims (RFC 8725).

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::common::{self, run, stderr, stdout};
use crate::server::Server;

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::server::config(dir.path(), Some("jose-tests"), extra);
        Setup { dir, config }
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, contents).unwrap();
        p
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = run(&self.config, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// Runs a command expected to fail with `code`, and returns its stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = run(&self.config, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: stdout {} stderr {}", stdout(&out), stderr(&out));
        stderr(&out)
    }

    /// The public key of a simulation key, as a PEM file.
    fn public(&self, key: &str, alg: &str) -> PathBuf {
        let pem = self.ok(&["keys", "public", key, "--alg", alg]);
        self.file(&format!("{}.pub", key.replace(':', "_")), pem.as_bytes())
    }

    /// A signature (JOSE R||S for ECDSA) over `input`, base64url.
    fn raw_sign(&self, key: &str, alg: &str, input: &[u8]) -> String {
        let f = self.file("signing-input", input);
        let sig = self.ok(&["sign", "--key", key, "--alg", alg, "--sig-format", "p1363", s(&f)]);
        b64u(&STANDARD.decode(sig.trim()).unwrap())
    }

    /// A compact JWS over `payload` with exactly `header`, signed by a simulation key.
    fn token(&self, header: &str, payload: &[u8], key: &str, alg: &str) -> String {
        let input = format!("{}.{}", b64u(header.as_bytes()), b64u(payload));
        let sig = self.raw_sign(key, alg, input.as_bytes());
        format!("{input}.{sig}")
    }
}

fn rfc7520() -> Value {
    serde_json::from_slice(&fs::read(common::data("jose/rfc7520.json")).unwrap()).unwrap()
}

#[test]
fn rfc7520_examples_verify_in_every_serialization_and_rs256_re_signs_byte_for_byte() {
    let setup = Setup::new("");
    let data = rfc7520();
    let payload = URL_SAFE_NO_PAD.decode(data["payload_b64"].as_str().unwrap()).unwrap();
    assert!(String::from_utf8(payload.clone()).unwrap().starts_with("It\u{2019}s a dangerous business, Frodo"));
    let key = |name: &str| setup.file(&format!("{name}.jwk"), data["keys"][name].to_string().as_bytes());
    let out = setup.dir.path().join("payload.out");
    let mut verified = 0;
    for ex in data["examples"].as_array().unwrap().iter().filter(|e| e.get("multiple").is_none()) {
        let section = ex["section"].as_str().unwrap();
        let public = key(ex["key"].as_str().unwrap().replace("_private", "_public").as_str());
        for form in ["compact", "flattened", "general"] {
            let text = match &ex[form] {
                Value::String(t) => t.clone(),
                v => v.to_string(),
            };
            let token = setup.file(&format!("{section}.{form}"), text.as_bytes());
            let _ = fs::remove_file(&out);
            let said = setup.ok(&["jws", "verify", "--pub", s(&public), "--payload-out", s(&out), s(&token)]);
            assert_eq!(said.trim(), "valid", "{section} {form}");
            assert_eq!(fs::read(&out).unwrap(), payload, "{section} {form}: exactly the payload");
            verified += 1;
            // One byte of the payload changed: invalid (exit 1), nothing written.
            let tampered = text.replacen("SXTigJlz", "SXTigJly", 1);
            assert_ne!(tampered, text);
            let token = setup.file(&format!("{section}.{form}.bad"), tampered.as_bytes());
            let _ = fs::remove_file(&out);
            setup.fails(1, &["jws", "verify", "--pub", s(&public), "--payload-out", s(&out), s(&token)]);
            assert!(!out.exists(), "{section} {form}: nothing written for an invalid JWS");
        }
    }
    assert_eq!(verified, 9, "three examples in three serializations");

    // 4.1 is deterministic (RS256): re-signed through a file key, byte for byte, in all three.
    let ex = &data["examples"][0];
    assert_eq!(ex["section"], "4.1");
    let payload_file = setup.file("payload", &payload);
    let rsa = common::data("jose/rfc7520-rsa.pkcs8.pem");
    let kid = "bilbo.baggins@hobbiton.example";
    let sign = |form: &str| {
        setup.ok(&[
            "jws",
            "sign",
            "--key",
            s(&rsa),
            "--alg",
            "RS256",
            "--kid",
            kid,
            "--serialization",
            form,
            s(&payload_file),
        ])
    };
    assert_eq!(sign("compact").trim(), ex["compact"].as_str().unwrap(), "RFC 7520 figure 13");
    for form in ["flattened", "general"] {
        let ours: Value = serde_json::from_str(&sign(form)).unwrap();
        assert_eq!(ours, ex[form], "RFC 7520 4.1 {form}");
    }

    // 4.8: three signatures. RS256 (alg protected) and ES512 (alg and kid only in the
    // unprotected header: taken because the P-521 key fixes ES512) both count; the HS256 one
    // is refused as an HMAC alg, by name.
    let multi = &data["examples"][3];
    assert_eq!(multi["section"], "4.8");
    let token = setup.file("4.8.general", multi["general"].to_string().as_bytes());
    let (rsa_pub, ec_pub) = (key("rsa_public"), key("ec_p521_public"));
    let args = ["jws", "verify", "--pub", s(&rsa_pub), "--pub", s(&ec_pub), "--threshold", "2", "--json", s(&token)];
    let report: Value = serde_json::from_str(&setup.ok(&args)).unwrap();
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["verified_by"].as_array().unwrap().len(), 2, "{report:#}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("signature 2: algorithm confusion: HS256 is an HMAC alg"), "{notes}");
    // Three distinct keys cannot be had: the threshold of 3 fails (exit 1).
    let args = ["jws", "verify", "--pub", s(&rsa_pub), "--pub", s(&ec_pub), "--threshold", "3", s(&token)];
    setup.fails(1, &args);
}

/// Wycheproof's JWS file (`tests/data/wycheproof/`): every case through `/v1/jws/verify` with
/// the group's public JWK. A valid case must verify; an invalid one must not (refused as a
/// request, or `valid: false`). The HMAC groups have no public key: their cases are counted as
/// refused-unsupported, not skipped.
#[test]
fn wycheproof_json_web_signature_every_case() {
    if common::server_pass_repeats_this() {
        return;
    }
    let file: Value =
        serde_json::from_slice(&fs::read(common::data("wycheproof/json_web_signature_test.json")).unwrap()).unwrap();
    let server = Server::start(None, "");
    let (mut accepted_valid, mut rejected_invalid, mut hmac_refused, mut deviations) = (0, 0, 0, Vec::new());
    let mut total = 0;
    for group in file["testGroups"].as_array().unwrap() {
        let key = group.get("public").cloned().unwrap_or_else(|| group["private"].clone());
        let hmac = key["kty"] == "oct" || key.get("k").is_some();
        for case in group["tests"].as_array().unwrap() {
            total += 1;
            let id = case["tcId"].as_u64().unwrap();
            let body = json!({"jws": case["jws"], "keys": {"public_keys": [{"public_key": key.to_string()}]}});
            let (status, answer) = server.json("POST", "/v1/jws/verify", body);
            assert!(status == 200 || status == 400, "tc {id}: status {status}: {answer}");
            let accepted = status == 200 && answer["valid"] == true;
            match (case["result"].as_str().unwrap(), hmac) {
                (_, true) => {
                    assert!(!accepted, "tc {id}: an HMAC JWS is never accepted with a public key");
                    hmac_refused += 1;
                }
                ("valid", false) if accepted => accepted_valid += 1,
                ("valid", false) => {
                    deviations.push((id, format!("{} {}", answer["error"]["message"], answer["notes"])))
                }
                ("invalid", false) => {
                    assert!(!accepted, "tc {id} ({}) must be rejected: {answer}", case["comment"]);
                    rejected_invalid += 1;
                }
                (other, _) => panic!("tc {id}: unexpected result {other}"),
            }
        }
    }
    // The deviations, each by a rule of ours. Wycheproof's copies of RFC 7520's keys carry an
    // `alg` the RFC's do not: the P-521 key says "ES521", which is no registered algorithm (RFC
    // 7520 figure 3 has no alg), so that key is refused; the RSA key says "PS256" while Figure
    // 20 is PS384, so the JWK's alg disagrees with the token's: algorithm confusion. Two cases
    // each (with and without key_ops). Both figures verify with the RFC's own keys above.
    assert_eq!(deviations.len(), 4, "{deviations:?}");
    assert_eq!(deviations.iter().filter(|(_, m)| m.contains("alg \\\"ES521\\\" is not")).count(), 2, "{deviations:?}");
    assert_eq!(
        deviations.iter().filter(|(_, m)| m.contains("algorithm confusion: alg PS384 is not an algorithm")).count(),
        2,
        "{deviations:?}"
    );
    assert_eq!(total, file["numberOfTests"].as_u64().unwrap() as usize);
    assert_eq!(
        (accepted_valid, rejected_invalid, hmac_refused),
        (32, 325, 40),
        "the counts of valid cases accepted, invalid ones rejected, HMAC cases refused"
    );
}

#[test]
fn the_algorithm_comes_from_the_key_and_every_header_rule_names_itself() {
    let setup = Setup::new("");
    let p256 = setup.public("sim:j256", "ES256");
    let payload = br#"{"hello":"world"}"#;
    let verify = |token: &str| {
        let f = setup.file("token", token.as_bytes());
        setup.fails_any(&["jws", "verify", "--pub", s(&p256), s(&f)])
    };
    // A sound token first: the helpers make valid JWSs.
    let good = setup.token(r#"{"alg":"ES256"}"#, payload, "sim:j256", "ES256");
    let f = setup.file("good", good.as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--pub", s(&p256), s(&f)]).trim(), "valid");

    // Algorithm confusion: exit 1, named.
    let none = format!("{}.{}.", b64u(br#"{"alg":"none"}"#), b64u(payload));
    let (code, err) = verify(&none);
    assert!(code == 1 && err.contains("algorithm confusion: alg \"none\" is never accepted"), "{err}");
    // HS256 keyed with the public key's own bytes (the classic confusion).
    let input = format!("{}.{}", b64u(br#"{"alg":"HS256"}"#), b64u(payload));
    let hs = format!("{input}.{}", b64u(&[7u8; 32]));
    assert!(verify(&hs).1.contains("HS256 is an HMAC alg"));
    // An alg the key's type cannot have.
    let es384 = setup.token(r#"{"alg":"ES384"}"#, payload, "sim:j384", "ES384");
    assert!(verify(&es384).1.contains("algorithm confusion: alg ES384 is not an algorithm of any trusted key"));
    // A JWK whose alg disagrees with the token's.
    let jwk = setup.ok(&["keys", "public", "sim:j256", "--alg", "ES256", "--format", "jwk"]);
    let mut jwk: Value = serde_json::from_str(&jwk).unwrap();
    jwk["alg"] = json!("ES384");
    let bad_jwk = setup.file("bad.jwk", jwk.to_string().as_bytes());
    let f = setup.file("good", good.as_bytes());
    let err = setup.fails(2, &["jws", "verify", "--pub", s(&bad_jwk), s(&f)]);
    assert!(err.contains("does not fit this key's type"), "{err}");
    // ECDSA must be R||S of the curve's size: a DER signature of the same input is invalid.
    let input = format!("{}.{}", b64u(br#"{"alg":"ES256"}"#), b64u(payload));
    let sf = setup.file("input", input.as_bytes());
    let der = setup.ok(&["sign", "--key", "sim:j256", "--alg", "ES256", "--sig-format", "der", s(&sf)]);
    let der = format!("{input}.{}", b64u(&STANDARD.decode(der.trim()).unwrap()));
    assert!(verify(&der).1.contains("R||S of 64 bytes (RFC 7518 section 3.4)"));
    // A jwk header naming the attacker's key is never used as the key.
    let carried = setup.token(r#"{"alg":"ES384","jwk":{"kty":"EC"}}"#, payload, "sim:j384", "ES384");
    let (code, err) = verify(&carried);
    assert_eq!(code, 1);
    assert!(err.contains("header jwk never names a trusted key"), "{err}");

    // Header rules: the JWS is refused as a request (exit 2), each naming its rule.
    for (header, rule) in [
        (r#"{"alg":"ES256","crit":[]}"#, "crit is empty"),
        (r#"{"alg":"ES256","crit":["exp"],"exp":1}"#, "does not understand"),
        (r#"{"alg":"ES256","crit":["kid"],"kid":"k"}"#, "RFC 7515/7518 define"),
        (r#"{"alg":"ES256","b64":false}"#, "not listed in crit"),
        (r#"{"alg":"ES256","alg":"ES256"}"#, "given twice"),
        (r#"{"alg":"A128KW","enc":"A128GCM"}"#, "JWE is out of scope"),
    ] {
        let token = setup.token(header, payload, "sim:j256", "ES256");
        let (code, err) = verify(&token);
        assert_eq!(code, 2, "{header}: {err}");
        assert!(err.contains(rule), "{header}: {err}");
    }
    let flattened = json!({
        "payload": b64u(payload),
        "protected": b64u(br#"{"alg":"ES256"}"#),
        "header": {"alg": "ES256"},
        "signature": "AAAA",
    });
    assert!(verify(&flattened.to_string()).1.contains("must be disjoint"));
    let unprotected_crit =
        json!({"payload": "e30", "header": {"alg": "ES256", "crit": ["b64"], "b64": false}, "signature": "AAAA"});
    assert!(verify(&unprotected_crit.to_string()).1.contains("must be in the protected header"));
    assert!(verify(&format!("{good}=")).1.contains("base64url"));
    assert!(verify("a.b.c.d.e").1.contains("JWE is out of scope"));
    let huge = format!("{}.e30.AAAA", "A".repeat(1 << 20));
    assert!(verify(&huge).1.contains("protected header is"));
    // RFC 9864's fully specified name for Ed25519 is read as EdDSA.
    let ed = setup.public("sim:jed", "EdDSA");
    let token = setup.token(r#"{"alg":"Ed25519"}"#, payload, "sim:jed", "EdDSA");
    let f = setup.file("ed25519", token.as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--pub", s(&ed), s(&f)]).trim(), "valid");
    // An alg only in the unprotected header is taken only by a key that fixes its own (an EC
    // key does; an RSA PEM would not): this one verifies.
    let input = format!(".{}", b64u(payload));
    let sig = setup.raw_sign("sim:j256", "ES256", input.as_bytes());
    let unprotected = json!({"payload": b64u(payload), "header": {"alg": "ES256"}, "signature": sig});
    let f = setup.file("unprotected", unprotected.to_string().as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--pub", s(&p256), s(&f)]).trim(), "valid");
}

impl Setup {
    /// Runs a verify expected to fail, and returns its exit code and stderr.
    fn fails_any(&self, args: &[&str]) -> (i32, String) {
        let out = run(&self.config, args);
        let code = out.status.code().unwrap_or(-1);
        assert_ne!(code, 0, "{args:?} must fail: {}", stdout(&out));
        // The verdict on stdout only for a JWS that was read (exit 1).
        (code, stderr(&out).lines().filter(|l| !l.contains("WARNING")).collect::<Vec<_>>().join("\n"))
    }
}

#[test]
fn signers_serializations_detached_unencoded_payloads_and_jwk_sets() {
    let setup = Setup::new("");
    let payload = setup.file("payload.json", br#"{"release":"2.0","digest":"sha256:abc"}"#);
    let (a, b) = (setup.public("sim:ja", "ES384"), setup.public("sim:jb", "EdDSA"));
    // Two signers, two algorithms, one general JWS; both keys count.
    let general = setup.ok(&[
        "jws",
        "sign",
        "--key",
        "sim:ja",
        "--alg",
        "ES384",
        "--profile",
        "release",
        "--serialization",
        "general",
        s(&payload),
    ]);
    let parsed: Value = serde_json::from_str(&general).unwrap();
    assert_eq!(parsed["signatures"].as_array().unwrap().len(), 2);
    // The profile's key id is its kid; a key reference's is its RFC 7638 thumbprint.
    let kids: Vec<String> = parsed["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sig| {
            let h: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(sig["protected"].as_str().unwrap()).unwrap()).unwrap();
            h["kid"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(kids[1], "release-key-001");
    let thumb: Value = serde_json::from_str(&setup.ok(&["trust", "fingerprint", s(&a), "--json"])).unwrap();
    assert_eq!(kids[0], thumb["jwk_thumbprint"].as_str().unwrap());
    let release = setup.public("sim:release", "ES256");
    let g = setup.file("general.json", general.as_bytes());
    let both = ["jws", "verify", "--pub", s(&a), "--pub", s(&release), "--threshold", "2", s(&g)];
    assert_eq!(setup.ok(&both).trim(), "valid");
    // Several signers in a compact JWS: refused, naming the way.
    let err = setup.fails(2, &["jws", "sign", "--key", "sim:ja", "--key", "sim:jc", "--alg", "ES384", s(&payload)]);
    assert!(err.contains("--serialization general"), "{err}");

    // A JWK Set: each key found by kid; a key marked for encryption is left out.
    let jwk = |key: &str, alg: &str| -> Value {
        serde_json::from_str(&setup.ok(&["keys", "public", key, "--alg", alg, "--format", "jwk"])).unwrap()
    };
    let mut enc = jwk("sim:jc", "ES256");
    enc["use"] = json!("enc");
    let set = json!({"keys": [jwk("sim:ja", "ES384"), jwk("sim:jb", "EdDSA"), enc]});
    let jwks = setup.file("jwks.json", set.to_string().as_bytes());
    let flat =
        setup.ok(&["jws", "sign", "--key", "sim:jb", "--alg", "EdDSA", "--serialization", "flattened", s(&payload)]);
    let f = setup.file("flat.json", flat.as_bytes());
    let report: Value =
        serde_json::from_str(&setup.ok(&["jws", "verify", "--jwks", s(&jwks), "--json", s(&f)])).unwrap();
    assert_eq!(report["valid"], true);
    assert!(report["notes"].to_string().contains("left out"), "{report}");
    // A set that names one kid for two keys is refused whole.
    let mut dup = jwk("sim:jc", "ES256");
    dup["kid"] = jwk("sim:ja", "ES384")["kid"].clone();
    let bad = setup.file("dup.json", json!({"keys": [jwk("sim:ja", "ES384"), dup]}).to_string().as_bytes());
    assert!(setup.fails(2, &["jws", "verify", "--jwks", s(&bad), s(&f)]).contains("ambiguous"));

    // Detached, unencoded (RFC 7797): a 3 MiB payload, streamed through the hash.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let big = setup.file("big.bin", &big);
    let token = setup.ok(&["jws", "sign", "--key", "sim:ja", "--alg", "ES384", "--detached", "--b64=false", s(&big)]);
    let (head, rest) = token.trim().split_once('.').unwrap();
    assert!(rest.starts_with('.'), "a detached compact JWS has an empty payload part");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap();
    assert_eq!((header["b64"].clone(), header["crit"].clone()), (json!(false), json!(["b64"])));
    let t = setup.file("detached.jws", token.as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--pub", s(&a), "--detached", s(&big), s(&t)]).trim(), "valid");
    setup.fails(1, &["jws", "verify", "--pub", s(&a), "--detached", s(&payload), s(&t)]);
    // Without the detached payload the JWS says nothing: exit 1, naming what is missing.
    assert!(setup.fails(1, &["jws", "verify", "--pub", s(&a), s(&t)]).contains("--detached FILE"));
    // Detached and base64url-encoded (the default b64): streamed too, and verifiable.
    let token = setup.ok(&["jws", "sign", "--key", "sim:ja", "--alg", "ES384", "--detached", s(&big)]);
    let t = setup.file("detached64.jws", token.as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--pub", s(&a), "--detached", s(&big), s(&t)]).trim(), "valid");
    // An unencoded payload holding '.' cannot be compact and attached (RFC 7797 section 5.2).
    let dotted = setup.file("dotted", b"$.02");
    let err = setup.fails(2, &["jws", "sign", "--key", "sim:ja", "--alg", "ES384", "--b64=false", s(&dotted)]);
    assert!(err.contains("5.2"), "{err}");
    let json = setup.ok(&[
        "jws",
        "sign",
        "--key",
        "sim:ja",
        "--alg",
        "ES384",
        "--b64=false",
        "--serialization",
        "flattened",
        s(&dotted),
    ]);
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap()["payload"], "$.02");
    let f = setup.file("dotted.json", json.as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--pub", s(&a), s(&f)]).trim(), "valid");
    let _ = b;
}

#[test]
fn jwt_claims_are_checked_as_rfc8725_asks() {
    let setup = Setup::new("");
    let key = setup.public("sim:issuer", "ES256");
    let claims = setup.file(
        "claims.json",
        br#"{"iss":"https://op.example","aud":["rp","other"],"azp":"rp","sub":"alice","nonce":"n-1","iat":1767225600,"exp":1767229200}"#,
    );
    let jwt = setup.ok(&["jwt", "sign", "--claims", s(&claims), "--key", "sim:issuer", "--alg", "ES256"]);
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["typ"], "JWT");
    let t = setup.file("token.jwt", jwt.trim().as_bytes());
    let at = "2026-01-01T00:30:00Z";
    let base = ["jwt", "verify", "--pub", s(&key), "--at", at];
    let with =
        |more: &[&str]| -> Vec<String> { base.iter().chain(more).chain(&[s(&t)]).map(|a| a.to_string()).collect() };
    let args =
        with(&["--iss", "https://op.example", "--aud", "rp", "--sub", "alice", "--nonce", "n-1", "--typ", "JWT"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let claims_out: Value = serde_json::from_str(&setup.ok(&args)).unwrap();
    assert_eq!(claims_out["sub"], "alice");
    // Each expectation missed is exit 1 and named.
    for (more, why) in [
        (vec!["--iss", "https://evil", "--aud", "rp"], "not the expected issuer"),
        (vec!["--iss", "https://op.example", "--aud", "nobody"], "does not name the expected audience"),
        (vec!["--iss", "https://op.example", "--aud", "rp", "--azp", "x"], "azp"),
        (vec!["--iss", "https://op.example", "--aud", "rp", "--require", "jti"], "\"jti\" is missing"),
        (vec!["--iss", "https://op.example", "--aud", "rp", "--typ", "at+jwt"], "typ"),
    ] {
        let args = with(&more);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = setup.fails(1, &args);
        assert!(err.contains(why), "{more:?}: {err}");
    }
    // Expired an hour later (beyond the leeway); fine within it.
    let late =
        ["jwt", "verify", "--pub", s(&key), "--any-issuer", "--any-audience", "--at", "2026-01-01T01:01:30Z", s(&t)];
    assert!(setup.fails(1, &late).contains("expired"));
    let leeway =
        ["jwt", "verify", "--pub", s(&key), "--any-issuer", "--any-audience", "--at", "2026-01-01T01:00:30Z", s(&t)];
    setup.ok(&leeway);
    // Issuer and audience are required unless waived by name (exit 2, before any verifying).
    let err = setup.fails(2, &["jwt", "verify", "--pub", s(&key), "--aud", "rp", s(&t)]);
    assert!(err.contains("--any-issuer"), "{err}");
    // Nested JWTs and JSON serializations are refused as out of scope.
    let nested = setup.token(r#"{"alg":"ES256","cty":"JWT"}"#, jwt.trim().as_bytes(), "sim:issuer", "ES256");
    let n = setup.file("nested.jwt", nested.as_bytes());
    let err = setup.fails(2, &["jwt", "verify", "--pub", s(&key), "--any-issuer", "--any-audience", s(&n)]);
    assert!(err.contains("nested JWT is out of scope"), "{err}");
    // Duplicate claims are refused, not resolved.
    let dup = setup.token(r#"{"alg":"ES256"}"#, br#"{"sub":"alice","sub":"mallory"}"#, "sim:issuer", "ES256");
    let d = setup.file("dup.jwt", dup.as_bytes());
    let err = setup.fails(1, &["jwt", "verify", "--pub", s(&key), "--any-issuer", "--any-audience", s(&d)]);
    assert!(err.contains("given twice"), "{err}");
    // Issued with --expires-in: exp (and iat) set from now, and it verifies now; refused when
    // the claims already carry an exp.
    let open = setup.file("open.json", br#"{"iss":"https://op.example","aud":"rp"}"#);
    let fresh = setup.ok(&[
        "jwt",
        "sign",
        "--claims",
        s(&open),
        "--key",
        "sim:issuer",
        "--alg",
        "ES256",
        "--expires-in",
        "600",
    ]);
    let f = setup.file("fresh.jwt", fresh.trim().as_bytes());
    let claims_out: Value = serde_json::from_str(&setup.ok(&[
        "jwt",
        "verify",
        "--pub",
        s(&key),
        "--iss",
        "https://op.example",
        "--aud",
        "rp",
        s(&f),
    ]))
    .unwrap();
    assert_eq!(claims_out["exp"].as_i64().unwrap() - claims_out["iat"].as_i64().unwrap(), 600);
    let err = setup.fails(
        2,
        &["jwt", "sign", "--claims", s(&claims), "--key", "sim:issuer", "--alg", "ES256", "--expires-in", "600"],
    );
    assert!(err.contains("already have exp"), "{err}");
}

#[test]
fn the_deployment_policy_and_the_audit_log_cover_jose() {
    let setup = Setup::new("[policy]\npreset = \"cnsa1\"\n");
    let payload = setup.file("p", b"payload");
    let err = setup.fails(2, &["jws", "sign", "--key", "sim:pol", "--alg", "ES256", s(&payload)]);
    assert!(err.contains("refused by policy"), "{err}");
    let token = setup.ok(&["jws", "sign", "--key", "sim:pol", "--alg", "ES384", s(&payload)]);
    // The audit line records the SHA-256 of exactly the signing input, and its SHA-384.
    let audit = cryptohost::Config::load(&setup.config).unwrap().audit_path;
    let text = fs::read_to_string(audit).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let input = token.trim().rsplit_once('.').unwrap().0;
    use sha2::Digest as _;
    assert_eq!(line["input_sha256"], hex::encode(sha2::Sha256::digest(input.as_bytes())), "{line}");
    assert_eq!(line["signed_digest"]["hex"], hex::encode(sha2::Sha384::digest(input.as_bytes())), "{line}");
    assert!(text.contains("refused by policy"), "the refusal is audited too");
    // A verify under the policy: ES256 is not a verify algorithm of cnsa1 either.
    let key = setup.public("sim:pol", "ES384");
    let t = setup.file("t", token.as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--pub", s(&key), s(&t)]).trim(), "valid");
}

#[test]
fn published_jwks_keygen_jwk_and_keys_public_jwk() {
    let setup = Setup::new("[jose]\npublish = [\"release\"]\n");
    // `keys jwks` (and, in server mode, GET /v1/jwks): the published profile only.
    let set: Value = serde_json::from_str(&setup.ok(&["keys", "jwks"])).unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{set}");
    assert_eq!((keys[0]["kid"].as_str(), keys[0]["alg"].as_str()), (Some("release-key-001"), Some("ES256")));
    assert!(keys[0].get("d").is_none());
    let jwks = setup.file("published.json", set.to_string().as_bytes());
    let payload = setup.file("p", b"published");
    let token = setup.ok(&["jws", "sign", "--profile", "release", s(&payload)]);
    let t = setup.file("t", token.as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--jwks", s(&jwks), s(&t)]).trim(), "valid");
    // The route itself: what the set says, and nothing about other profiles.
    let server = Server::start(Some("jose-tests"), "[jose]\npublish = [\"release\"]\n");
    let (status, body) = server.request("GET", "/v1/jwks", None, b"");
    assert_eq!(status, 200);
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, set);
    // keys public --format jwk through the request layer (and the server's ?format=jwk).
    let jwk: Value =
        serde_json::from_str(&setup.ok(&["keys", "public", "sim:release", "--alg", "ES256", "--format", "jwk"]))
            .unwrap();
    assert_eq!(jwk["x"], keys[0]["x"]);
    let (status, body) = server.request(
        "POST",
        "/v1/keys/public?format=jwk",
        Some("application/json"),
        br#"{"key":"sim:release","algorithm":"ES256"}"#,
    );
    // The caller has no rule for the key: denied, as for the PEM.
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // A profile that does not exist cannot be published: a config error naming the line.
    let bad = tempfile::tempdir().unwrap();
    let config = crate::server::config(bad.path(), None, "[jose]\npublish = [\"nope\"]\n");
    let out = common::run_local(&config, &["keys", "jwks"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("jose.publish") && stderr(&out).contains("\"nope\" is not a profile"),
        "{}",
        stderr(&out)
    );

    // keygen --pub-format jwk: a JWK another verifier imports, here cryptohost itself.
    let private = setup.dir.path().join("k.pem");
    let public = setup.dir.path().join("k.jwk");
    setup.ok(&["keygen", "--alg", "EdDSA", "--out", s(&private), "--pub", s(&public), "--pub-format", "jwk"]);
    let jwk: Value = serde_json::from_slice(&fs::read(&public).unwrap()).unwrap();
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    let token = setup.ok(&["jws", "sign", "--key", s(&private), "--alg", "EdDSA", s(&payload)]);
    let t = setup.file("ed", token.as_bytes());
    assert_eq!(setup.ok(&["jws", "verify", "--pub", s(&public), s(&t)]).trim(), "valid");
}

#[test]
fn trust_anchors_are_a_key_source_with_their_algorithm_and_window() {
    let setup = Setup::new("");
    let release = setup.public("sim:release", "ES256");
    let anchors = crate::anchors::anchors_dir(
        setup.dir.path(),
        &[("release-key-001", "ES256", &release, "jws", "2026-01-01T00:00:00Z", "2036-01-01T00:00:00Z")],
        "2036-01-01T00:00:00Z",
    );
    let payload = setup.file("p", b"anchored");
    let token = setup.ok(&["jws", "sign", "--key-id", "release-key-001", s(&payload)]);
    let t = setup.file("t", token.as_bytes());
    // A directory the caller names (local only), and the configured anchors (also the server's).
    let report: Value =
        serde_json::from_str(&setup.ok(&["jws", "verify", "--anchors", s(&anchors), "--json", s(&t)])).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["verified_by"], json!(["release-key-001"]));
    let mut text = fs::read_to_string(&setup.config).unwrap();
    text += &format!("\n[trust]\nanchors = {:?}\n", s(&anchors));
    fs::write(&setup.config, text).unwrap();
    assert_eq!(setup.ok(&["jws", "verify", s(&t)]).trim(), "valid");
    assert_eq!(setup.ok(&["jws", "verify", "--purpose", "jws", s(&t)]).trim(), "valid");
    // The anchor's algorithm is the key's: an ES384 token from another key is confusion.
    let other = setup.token(r#"{"alg":"ES384","kid":"release-key-001"}"#, b"x", "sim:other", "ES384");
    let o = setup.file("o", other.as_bytes());
    assert!(setup.fails(1, &["jws", "verify", s(&o)]).contains("algorithm confusion"));
    // Past the anchors' window nothing is trusted: refused, naming the rule.
    let err = setup.fails(2, &["jws", "verify", "--at", "2040-01-01T00:00:00Z", s(&t)]);
    assert!(err.contains("the trust anchors expired at 2036-01-01T00:00:00Z"), "{err}");
}

/// RFC 7797's own examples are HMAC-only: these unencoded-payload JWSs were made by the peers
/// (jwcrypto and Node's jose, `tests/data/jose/rfc7797-peers.json`) and verify here without them;
/// one changed payload byte makes each invalid.
#[test]
fn unencoded_payload_fixtures_made_by_the_peers_verify() {
    let setup = Setup::new("");
    let data: Value = serde_json::from_slice(&fs::read(common::data("jose/rfc7797-peers.json")).unwrap()).unwrap();
    let detached = STANDARD.decode(data["detached_payload_b64"].as_str().unwrap()).unwrap();
    let detached_file = setup.file("detached", &detached);
    let mut tampered = detached.clone();
    tampered[0] ^= 1;
    let tampered_file = setup.file("tampered", &tampered);
    let mut checked = 0;
    for (i, case) in data["cases"].as_array().unwrap().iter().enumerate() {
        let key = setup
            .file(&format!("key{i}.pub"), data["keys"][case["key"].as_str().unwrap()].as_str().unwrap().as_bytes());
        let what = format!("{} {} {}", case["peer"], case["alg"], case["serialization"]);
        let text = match &case["jws"] {
            Value::String(t) => t.clone(),
            v => v.to_string(),
        };
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(match &case["jws"] {
                    Value::String(t) => t.split('.').next().unwrap().to_string(),
                    v => v["protected"].as_str().unwrap().to_string(),
                })
                .unwrap(),
        )
        .unwrap();
        assert_eq!((header["b64"].clone(), header["crit"].clone()), (json!(false), json!(["b64"])), "{what}");
        let token = setup.file(&format!("case{i}"), text.as_bytes());
        if case["detached"] == true {
            let ok = ["jws", "verify", "--pub", s(&key), "--detached", s(&detached_file), s(&token)];
            assert_eq!(setup.ok(&ok).trim(), "valid", "{what}");
            setup.fails(1, &["jws", "verify", "--pub", s(&key), "--detached", s(&tampered_file), s(&token)]);
        } else {
            let out = setup.dir.path().join(format!("out{i}"));
            assert_eq!(
                setup.ok(&["jws", "verify", "--pub", s(&key), "--payload-out", s(&out), s(&token)]).trim(),
                "valid"
            );
            assert_eq!(fs::read(&out).unwrap(), data["attached_payload"].as_str().unwrap().as_bytes(), "{what}");
            let bad = setup.file(&format!("bad{i}"), text.replace("$.02", "$.03").as_bytes());
            setup.fails(1, &["jws", "verify", "--pub", s(&key), s(&bad)]);
        }
        checked += 1;
    }
    assert_eq!(checked, 8, "two peers x ES256, RS256 x compact detached, flattened");
}
