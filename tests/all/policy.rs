//! The deployment policy (`[policy]`): each knob refuses exactly what it names and nothing
//! else, with the policy line in the message, locally and through the server (the suite's
//! server mode runs every `common::run` here through `serve` as well); a refused key use is
//! audited as `refused by policy`; a policy naming what no provider offers is a config error.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{self, PQC};
use crate::server::Server;
use crate::service::allow_me;

/// A config with offline verification, the simulation (seeded) and `policy` as `[policy]`.
fn with_policy(dir: &Path, policy: &str) -> PathBuf {
    crate::server::config(dir, Some("policy-seed"), &format!("[policy]\n{policy}\n"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What one command did: its exit code and stderr.
fn run(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = common::run(config, args);
    (out.status.code(), common::stderr(&out))
}

/// Expects the command to be refused by `line` of the policy (exit 2, the line named).
fn refused(config: &Path, args: &[&str], line: &str) {
    let (code, err) = run(config, args);
    assert_eq!(code, Some(2), "{args:?} should be refused: {err}");
    assert!(err.contains("refused by policy") && err.contains(&format!("[policy] {line}")), "{args:?}: {err}");
}

fn allowed(config: &Path, args: &[&str]) {
    let (code, err) = run(config, args);
    assert_eq!(code, Some(0), "{args:?} should be allowed: {err}");
}

/// Files to sign and verify with: a message, and for each algorithm the simulation's public
/// key and a signature made under no policy.
struct Material {
    dir: tempfile::TempDir,
    msg: PathBuf,
}

impl Material {
    fn new() -> Material {
        let dir = tempfile::tempdir().unwrap();
        let msg = dir.path().join("msg");
        fs::write(&msg, b"governed bytes").unwrap();
        Material { dir, msg }
    }

    /// The public key and a signature of `msg` by `sim:KEY` for `alg`, made under no policy.
    fn signed(&self, key: &str, alg: &str) -> (PathBuf, PathBuf) {
        let open_dir = self.dir.path().join("open");
        fs::create_dir_all(&open_dir).unwrap();
        let open = with_policy(&open_dir, "");
        let public = self.dir.path().join(format!("{key}-{alg}.pub"));
        let sig = self.dir.path().join(format!("{key}-{alg}.sig"));
        let out = common::run_local(&open, &["keys", "public", &format!("sim:{key}"), "--alg", alg]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        fs::write(&public, &out.stdout).unwrap();
        let out = common::run_local(
            &open,
            &["sign", "--alg", alg, "--key", &format!("sim:{key}"), "--out", s(&sig), s(&self.msg)],
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        (public, sig)
    }
}

fn verify<'a>(alg: &'a str, public: &'a Path, sig: &'a Path, msg: &'a Path) -> [&'a str; 8] {
    ["verify", "--alg", alg, "--pub", s(public), "--sig", s(sig), s(msg)]
}

#[test]
fn sign_and_verify_lists_each_refuse_only_their_own_side() {
    let m = Material::new();
    let (p256, sig256) = m.signed("k", "ES256");
    let (_, sig384) = m.signed("k", "ES384");
    let (p384, _) = m.signed("k", "ES384");
    let msg = s(&m.msg);

    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "sign_algorithms = [\"ES384\"]");
    refused(&config, &["sign", "--alg", "ES256", "--key", "sim:k", msg], "sign_algorithms");
    allowed(&config, &["sign", "--alg", "ES384", "--key", "sim:k", msg]);
    allowed(&config, &verify("ES256", &p256, &sig256, &m.msg));
    // The profile's ES256 is refused the same way: a profile never widens the policy.
    refused(&config, &["sign", "--profile", "release", msg], "sign_algorithms");
    // A DSSE envelope with an ES256 signer is refused before anything is signed.
    refused(
        &config,
        &["dsse", "sign", "--key", "sim:k", "--alg", "ES256", "--payload-type", "t", msg],
        "sign_algorithms",
    );

    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "verify_algorithms = [\"ES384\"]");
    refused(&config, &verify("ES256", &p256, &sig256, &m.msg), "verify_algorithms");
    allowed(&config, &verify("ES384", &p384, &sig384, &m.msg));
    allowed(&config, &["sign", "--alg", "ES256", "--key", "sim:k", msg]);
}

#[test]
fn hashes_curves_and_presets_refuse_what_they_name() {
    let m = Material::new();
    let (p256, sig256) = m.signed("k", "ES256");
    let msg = s(&m.msg);

    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "hashes = [\"SHA-384\", \"SHA-512\"]");
    refused(&config, &["hash", "--alg", "SHA-256", msg], "hashes");
    allowed(&config, &["hash", "--alg", "sha384", msg]);
    // ES256 hashes with SHA-256: refused by the hashes line, on both sides.
    refused(&config, &["sign", "--alg", "ES256", "--key", "sim:k", msg], "hashes");
    refused(&config, &verify("ES256", &p256, &sig256, &m.msg), "hashes");
    allowed(&config, &["sign", "--alg", "ES384", "--key", "sim:k", msg]);
    // EdDSA hashes nothing of ours: the hashes line does not touch it.
    allowed(&config, &["sign", "--alg", "EdDSA", "--key", "sim:ed", msg]);

    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "curves = [\"P-384\"]");
    refused(&config, &["sign", "--alg", "ES256", "--key", "sim:k", msg], "curves");
    refused(&config, &["sign", "--alg", "EdDSA", "--key", "sim:ed", msg], "curves");
    allowed(&config, &["sign", "--alg", "ES384", "--key", "sim:k", msg]);
    allowed(&config, &["sign", "--alg", "PS256", "--key", "sim:rsa", msg]);

    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "preset = \"cnsa1\"");
    refused(&config, &["sign", "--alg", "ES256", "--key", "sim:k", msg], "preset = \"cnsa1\"");
    refused(&config, &["sign", "--alg", "EdDSA", "--key", "sim:ed", msg], "preset = \"cnsa1\"");
    allowed(&config, &["sign", "--alg", "ES384", "--key", "sim:k", msg]);
    // The simulation's RSA keys are 3072 bits, which CNSA 1.0 allows with SHA-384.
    allowed(&config, &["sign", "--alg", "PS384", "--key", "sim:rsa", msg]);
    refused(&config, &["keys", "generate", "sim:small", "--alg", "RS384", "--rsa-bits", "2048"], "preset = \"cnsa1\"");
    refused(&config, &["keys", "generate", "sim:aes", "--alg", "A128GCM"], "preset = \"cnsa1\"");
}

#[test]
fn rsa_size_aead_and_anchors_only_refuse_what_they_name() {
    let m = Material::new();
    let (rsa_pub, rsa_sig) = m.signed("rsa", "RS256");
    let (p256, sig256) = m.signed("k", "ES256");
    let msg = s(&m.msg);

    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "min_rsa_bits = 4096");
    // The simulation's RSA keys are 3072 bits: too small to sign or verify with, or to make.
    refused(&config, &["sign", "--alg", "RS256", "--key", "sim:rsa", msg], "min_rsa_bits = 4096");
    refused(&config, &verify("RS256", &rsa_pub, &rsa_sig, &m.msg), "min_rsa_bits = 4096");
    refused(&config, &["keys", "generate", "sim:r3", "--alg", "PS256", "--rsa-bits", "3072"], "min_rsa_bits = 4096");
    allowed(&config, &["sign", "--alg", "ES256", "--key", "sim:k", msg]);
    allowed(&config, &verify("ES256", &p256, &sig256, &m.msg));

    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "aead = [\"A256GCM\"]");
    let sealed = dir.path().join("sealed");
    refused(&config, &["keys", "generate", "sim:aes128", "--alg", "A128GCM"], "aead");
    refused(&config, &["encrypt", "--key", "sim:aes128", "--alg", "A128GCM", "--out", s(&sealed), msg], "aead");
    allowed(&config, &["keys", "generate", "sim:aes256", "--alg", "A256GCM"]);
    allowed(&config, &["encrypt", "--key", "sim:aes256", "--alg", "A256GCM", "--out", s(&sealed), msg]);

    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "require_anchors_for_verify = true");
    refused(&config, &verify("ES256", &p256, &sig256, &m.msg), "require_anchors_for_verify = true");
    let envelope = dir.path().join("env.json");
    let out = common::run_local(
        &config,
        &["dsse", "sign", "--key", "sim:k", "--alg", "ES256", "--payload-type", "t", "--out", s(&envelope), msg],
    );
    assert!(out.status.success(), "signing is untouched: {}", common::stderr(&out));
    refused(&config, &["dsse", "verify", "--pub", s(&p256), s(&envelope)], "require_anchors_for_verify = true");
    allowed(&config, &["hash", "--alg", "SHA-256", msg]);
}

#[test]
fn a_refused_key_use_is_audited_as_refused_by_policy_and_the_server_says_which_line() {
    let extra = format!("{}\n[policy]\npreset = \"cnsa1\"\n", allow_me("\"sign\", \"generate\"", "\"sim:*\"", "\"*\""));
    let server = Server::start(Some("policy-served"), &extra);
    let (status, v) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:k", "algorithm": "ES256", "data": "AA"}));
    assert_eq!((status, v["error"]["kind"].as_str()), (403, Some("refused-by-policy")), "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("[policy] preset = \"cnsa1\"") && message.contains("ES256"), "{message}");
    let line = server.audit().pop().expect("the refusal is audited");
    assert_eq!(line["operation"], "sign", "{line}");
    assert_eq!(line["key"], "sim:k", "{line}");
    assert!(line["outcome"].as_str().unwrap().starts_with("refused by policy:"), "{line}");
    // What it allows is signed (and audited as ok).
    let (status, v) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:k", "algorithm": "ES384", "data": "AA"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(server.audit().pop().unwrap()["outcome"], "ok");
    // A hash the policy refuses, and a verify with a key from the request.
    let (status, body) = server.request("POST", "/v1/hash?alg=SHA-256", Some("application/octet-stream"), b"abc");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // /v1/providers shows the effective set, and apart what the policy refuses.
    let (status, v) = server.json("GET", "/v1/providers", serde_json::Value::Null);
    assert_eq!(status, 200);
    let offline = v.as_array().unwrap().iter().find(|p| p["name"] == "offline-verification").unwrap();
    let verification =
        offline["capabilities"].as_array().unwrap().iter().find(|c| c["capability"] == "verification").unwrap();
    let names = |k: &str| -> Vec<String> {
        verification[k].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names("algorithms"), ["ES384", "RS384", "RS512", "PS384", "PS512"], "{verification}");
    assert!(names("refused_by_policy").contains(&"ES256".to_string()), "{verification}");
}

#[test]
fn providers_show_the_effective_set_and_a_policy_naming_the_unoffered_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "preset = \"nist\"\nsign_algorithms = [\"ES384\", \"PS256\"]");
    let out = common::run_local(&config, &["providers"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(text.starts_with("policy: preset nist; sign ES384 PS256;"), "{text}");
    assert!(text.contains("[refused by policy: ES256,"), "{text}");

    // ML-DSA is offered only by the pqc component, which this config does not load.
    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(dir.path(), "algorithms = [\"ES256\", \"ML-DSA-65\"]");
    let out = common::run_local(&config, &["providers"]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert!(err.contains("[policy] names ML-DSA-65 for signing, which no loaded provider offers"), "{err}");
    // doctor says so on its policy line.
    let out = common::run_local(&config, &["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let policy_line = common::stdout(&out).lines().find(|l| l.contains(" policy ")).unwrap_or_default().to_string();
    assert!(policy_line.starts_with("FAIL") && policy_line.contains("ML-DSA-65"), "{}", common::stdout(&out));
    // With the pqc component loaded it is a valid policy, and cnsa2 signs with ML-DSA-87 only.
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config(dir.path(), &common::components_dir(), &[common::OFFLINE, PQC], "");
    let text = fs::read_to_string(&path).unwrap() + "\n[policy]\npreset = \"cnsa2\"\n";
    fs::write(&path, text).unwrap();
    let key = dir.path().join("k.pem");
    let out = common::run_local(&path, &["keygen", "--alg", "ML-DSA-87", "--out", s(&key)]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = common::run_local(&path, &["keygen", "--alg", "ML-DSA-65", "--out", s(&dir.path().join("k65.pem"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("[policy] preset = \"cnsa2\""), "{}", common::stderr(&out));
    let out = common::run_local(&path, &["doctor"]);
    let doctor = common::stdout(&out);
    assert!(doctor.lines().any(|l| l.starts_with("ok") && l.contains("preset cnsa2; sign ML-DSA-87;")), "{doctor}");
}

#[test]
fn bad_policy_lines_are_config_errors_naming_the_field() {
    for (policy, field, says) in [
        ("preset = \"fips\"", "policy.preset", "not a preset"),
        ("algorithms = [\"HS256\"]", "policy.algorithms", "not a signature algorithm"),
        ("hashes = [\"MD5\"]", "policy.hashes", "not a hash"),
        ("min_rsa_bits = 1024", "policy.min_rsa_bits", "below 2048"),
        ("aead = []", "policy.aead", "allows nothing"),
        ("preset = \"cnsa2\"\nalgorithms = [\"ES256\"]", "policy.algorithms", "no signature algorithm at all"),
        ("sha1 = true", "", "unknown field"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = with_policy(dir.path(), policy);
        let out = common::run_local(&config, &["providers"]);
        assert_eq!(out.status.code(), Some(2), "{policy}");
        let err = common::stderr(&out);
        assert!(err.contains(field) && err.contains(says), "{policy}: {err}");
    }
}

#[test]
fn a_reload_applies_a_new_policy_whole_and_a_bad_one_changes_nothing() {
    let rules = allow_me("\"sign\", \"admin\"", "\"sim:*\"", "\"*\"");
    let server = Server::start(Some("policy-reload"), &rules);
    let sign = |alg: &str| {
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:k", "algorithm": alg, "data": "AA"}))
    };
    assert_eq!(sign("ES256").0, 200, "no policy yet");
    let open = fs::read_to_string(&server.config).unwrap();
    fs::write(&server.config, format!("{open}\n[policy]\npreset = \"cnsa1\"\n")).unwrap();
    let (status, v) = server.json("POST", "/v1/reload", serde_json::json!({}));
    assert_eq!(status, 200, "{v}");
    let (status, v) = sign("ES256");
    assert_eq!((status, v["error"]["kind"].as_str()), (403, Some("refused-by-policy")), "{v}");
    assert_eq!(sign("ES384").0, 200);
    // A policy that does not load leaves the one in force, whole.
    fs::write(&server.config, format!("{open}\n[policy]\npreset = \"fips-140-9\"\n")).unwrap();
    let (status, v) = server.json("POST", "/v1/reload", serde_json::json!({}));
    assert_ne!(status, 200, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("policy.preset"), "{v}");
    assert_eq!(sign("ES256").0, 403, "cnsa1 still holds");
    assert_eq!(sign("ES384").0, 200);
}
