//! JOSE with keys on a real PKCS#11 token (SoftHSM2): a general JWS signed at once by an HSM
//! profile and a software EdDSA key, an RSA-PSS JWS from the token, and a short-lived JWT issued
//! by the token's key, each verified by cryptohost (and through a server in the suite's server
//! mode), with the key uses in the audit log.

use crate::softhsm::{self, SoftHsm};

#[test]
fn jws_and_jwt_signed_by_hsm_keys_beside_a_software_key() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["jose"]);
    let config = hsm.config(&["jose"], 1, "");
    let dir = hsm.dir.path();
    let run = |args: &[&str]| {
        let out = crate::common::run(&config, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (org, rsa, ed) = (dir.join("org.pub"), dir.join("rsa.pub"), dir.join("ed.pub"));
    run(&["keys", "generate", "pkcs11:token=jose;object=org-es256", "--alg", "ES256", "--pub", &s(&org)]);
    run(&[
        "keys",
        "generate",
        "pkcs11:token=jose;object=org-rsa",
        "--alg",
        "PS256",
        "--rsa-bits",
        "2048",
        "--pub",
        &s(&rsa),
    ]);
    run(&["keygen", "--alg", "EdDSA", "--out", &s(&dir.join("ed.pem")), "--pub", &s(&ed)]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "\n[profiles.org-hsm]\nkey = \"pkcs11:token=jose;object=org-es256\"\nalgorithm = \"ES256\"\nkey_id = \"org-key-001\"\n\
         [profiles.software-eddsa]\nkey = \"file:{}\"\nalgorithm = \"EdDSA\"\n",
        dir.join("ed.pem").display()
    );
    std::fs::write(&config, text).unwrap();
    let doc = dir.join("release.json");
    std::fs::write(&doc, br#"{"release":"3.1"}"#).unwrap();

    // One general JWS by the token's key and the software key: both count.
    let jws = dir.join("release.jws");
    run(&[
        "jws",
        "sign",
        "--profile",
        "org-hsm",
        "--profile",
        "software-eddsa",
        "--serialization",
        "general",
        "--out",
        &s(&jws),
        &s(&doc),
    ]);
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&jws).unwrap()).unwrap();
    assert_eq!(written["signatures"].as_array().unwrap().len(), 2);
    let said = run(&["jws", "verify", "--pub", &s(&org), "--pub", &s(&ed), "--threshold", "2", &s(&jws)]);
    assert_eq!(said.trim(), "valid");

    // RSA-PSS from the token, compact.
    let token = run(&["jws", "sign", "--key", "pkcs11:token=jose;object=org-rsa", "--alg", "PS256", &s(&doc)]);
    let t = dir.join("rsa.jws");
    std::fs::write(&t, token.trim()).unwrap();
    assert_eq!(run(&["jws", "verify", "--pub", &format!("PS256:{}", s(&rsa)), &s(&t)]).trim(), "valid");

    // A short-lived JWT issued by the token's key.
    let claims = dir.join("claims.json");
    std::fs::write(&claims, br#"{"iss":"https://issuer.example","aud":"deploy","sub":"ci"}"#).unwrap();
    let jwt = run(&["jwt", "sign", "--claims", &s(&claims), "--profile", "org-hsm", "--expires-in", "120"]);
    let j = dir.join("t.jwt");
    std::fs::write(&j, jwt.trim()).unwrap();
    let verified =
        run(&["jwt", "verify", "--pub", &s(&org), "--iss", "https://issuer.example", "--aud", "deploy", &s(&j)]);
    let claims: serde_json::Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(claims["sub"], "ci");

    // Every key use is in the audit log, the token's with its key.
    let audit = std::fs::read_to_string(hsm.audit_path()).unwrap();
    assert!(audit.contains("\"key\":\"pkcs11:token=jose;object=org-es256\""), "{audit}");
    assert!(audit.contains("\"key\":\"pkcs11:token=jose;object=org-rsa\""), "{audit}");
}
