//! Key versions on a real token (SoftHSM2): the whole rotate -> publish -> promote -> retire ->
//! destroy sequence of an ES256 key, each version a non-extractable key pair under its own
//! label, bound in the key-state file to the token serial and CKA_ID; an AES key rotated with
//! old ciphertext still decrypting under the retired version; a binding that no longer holds.

use std::fs;
use std::path::Path;

use crate::softhsm::{self, SoftHsm};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn an_hsm_key_rotates_and_each_version_is_bound_to_its_token_object() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["life"]);
    let config = hsm.config(&["life"], 1, "");
    let dir = hsm.dir.path();
    let mut text = fs::read_to_string(&config).unwrap();
    text += &format!(
        "\n[state]\ndir = \"state\"\n\n[trust]\nanchors = {:?}\n\n[profiles.org]\nkey = \"pkcs11:token=life;object=org-es256\"\n\
         algorithm = \"ES256\"\nkey_id = \"org-key-001\"\n",
        s(&dir.join("anchors"))
    );
    fs::write(&config, text).unwrap();
    let run = |args: &[&str]| crate::common::run(&config, args);
    let ok = |args: &[&str]| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let refused = |args: &[&str], why: &str| {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    };
    let anchor = |keys: &[&Path]| {
        let root = dir.join("anchors");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("public-keys")).unwrap();
        let mut list = Vec::new();
        for (i, public) in keys.iter().enumerate() {
            fs::copy(public, root.join(format!("public-keys/v{i}.pub"))).unwrap();
            let fp = ok(&["trust", "fingerprint", &s(public)]).trim().to_string();
            list.push(serde_json::json!({"keyId": "org-key-001", "algorithmId": "ES256", "fingerprint": fp,
                "purpose": "release-signing", "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2099-01-01T00:00:00Z"}));
        }
        let file = serde_json::json!({"version": "1.0", "createdAt": "2026-01-01T00:00:00Z",
            "expiresAt": "2099-01-01T00:00:00Z", "trustAnchors": list});
        fs::write(root.join("trust-anchors.json"), serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    };
    let key = "pkcs11:token=life;object=org-es256";
    let (v1_pub, v2_pub) = (dir.join("v1.pub"), dir.join("v2.pub"));

    // Generated: version 1, recorded now with its token serial and CKA_ID.
    ok(&["keys", "generate", key, "--alg", "ES256", "--pub", &s(&v1_pub)]);
    let v: serde_json::Value = serde_json::from_str(&ok(&["keys", "versions", key, "--json"])).unwrap();
    assert_eq!(v["current"], 1, "{v}");
    assert_eq!(v["versions"][0]["adopted"], false);
    assert!(v["versions"][0]["cka_id"].as_str().is_some_and(|id| id.len() == 16), "{v}");
    assert!(v["versions"][0]["token_serial"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    refused(&["keys", "generate", key, "--alg", "ES256"], "already exists");
    anchor(&[&v1_pub]);
    let doc = dir.join("doc.json");
    fs::write(&doc, b"{}").unwrap();
    let dsse = |out: &Path| {
        ok(&["dsse", "sign", "--profile", "org", "--payload-type", "application/json", &s(&doc), "--out", &s(out)]);
    };
    let before = dir.join("before.dsse.json");
    dsse(&before);

    // Rotated: version 2 on the token under its own label, staged.
    let r: serde_json::Value =
        serde_json::from_str(&ok(&["keys", "rotate", key, "--pub", &s(&v2_pub), "--json"])).unwrap();
    assert_eq!((r["version"].as_u64(), r["current"].as_u64()), (Some(2), Some(1)), "{r}");
    assert_eq!(r["versions"][1]["state"], "staged");
    assert_ne!(r["versions"][1]["cka_id"], r["versions"][0]["cka_id"]);
    let list = ok(&["keys", "list"]);
    assert!(list.contains("object=org-es256%23v2"), "the new version's label: {list}");
    let listed: serde_json::Value = serde_json::from_str(&ok(&["keys", "list", "--json"])).unwrap();
    let v2 = listed.as_array().unwrap().iter().find(|k| k["uri"].as_str().unwrap().contains("org-es256%23v2")).unwrap();
    assert_eq!(
        (v2["version"].as_u64(), v2["state"].as_str(), v2["age_days"].as_u64()),
        (Some(2), Some("staged"), Some(0))
    );
    refused(&["sign", &s(&doc), "--key", &format!("{key};x-version=2"), "--alg", "ES256"], "staged");
    refused(&["sign", &s(&doc), "--key", "pkcs11:token=life;object=org-es256%23v2", "--alg", "ES256"], "x-version");
    refused(&["keys", "promote", key, "--version", "2"], "listed by no configured trust anchor");
    anchor(&[&v1_pub, &v2_pub]);
    ok(&["keys", "promote", key, "--version", "2"]);
    let after = dir.join("after.dsse.json");
    dsse(&after);
    for env in [&before, &after] {
        ok(&["dsse", "verify", &s(env)]);
    }
    ok(&["dsse", "verify", &s(&after), "--pub", &s(&v2_pub)]);
    refused(&["sign", &s(&doc), "--key", &format!("{key};x-version=1"), "--alg", "ES256"], "retired");

    // An AES key: old ciphertext decrypts under the retired version; new encryption uses the
    // promoted one (a secret key has no fingerprint to anchor: no anchor check).
    let aes = "pkcs11:token=life;object=data-key";
    ok(&["keys", "generate", aes, "--alg", "A256GCM"]);
    let (plain, old, new) = (dir.join("plain"), dir.join("old.bin"), dir.join("new.bin"));
    fs::write(&plain, b"rotate me").unwrap();
    ok(&["encrypt", "--key", aes, &s(&plain), "--out", &s(&old)]);
    ok(&["keys", "rotate", aes]);
    ok(&["keys", "promote", aes, "--version", "2"]);
    ok(&["encrypt", "--key", aes, &s(&plain), "--out", &s(&new)]);
    // Each output's header names the version that sealed it: the key's name is enough.
    for (sealed, version) in [(&old, 1u8), (&new, 2)] {
        let bytes = fs::read(sealed).unwrap();
        assert_eq!(&bytes[12..18], &[b'c', b'h', b'v', b'1', 0, version], "nonce, then the versioned header");
        let back = dir.join(format!("back{version}"));
        ok(&["decrypt", "--key", aes, &s(sealed), "--out", &s(&back)]);
        assert_eq!(fs::read(&back).unwrap(), b"rotate me");
    }
    // The header is bound into the AAD: moved to another version, it no longer opens.
    let mut moved = fs::read(&new).unwrap();
    moved[17] = 1;
    let moved_file = dir.join("moved.bin");
    fs::write(&moved_file, &moved).unwrap();
    refused(&["decrypt", "--key", aes, &s(&moved_file), "--out", &s(&dir.join("x"))], "");
    let back = dir.join("back");
    ok(&["decrypt", "--key", &format!("{aes};x-version=1"), &s(&old), "--out", &s(&back)]);
    assert_eq!(fs::read(&back).unwrap(), b"rotate me");
    refused(&["encrypt", "--key", &format!("{aes};x-version=1"), &s(&plain), "--out", &s(&dir.join("y"))], "retired");

    // A binding that no longer holds: version 2's CKA_ID edited in the key-state file.
    let state = dir.join("state/keys.state.json");
    let good = fs::read_to_string(&state).unwrap();
    let id = r["versions"][1]["cka_id"].as_str().unwrap().to_string();
    fs::write(&state, good.replace(&id, "00112233aabbccdd")).unwrap();
    refused(&["sign", &s(&doc), "--key", key, "--alg", "ES256"], "00112233aabbccdd");
    fs::write(&state, &good).unwrap();

    // Certificate requests signed on the token (the current version), checked by OpenSSL.
    let rsa = "pkcs11:token=life;object=org-rsa";
    ok(&["keys", "generate", rsa, "--alg", "PS256", "--rsa-bits", "2048"]);
    for (k, alg) in [(key, "ES256"), (rsa, "PS256"), (rsa, "RS256")] {
        let csr = dir.join(format!("{alg}.csr"));
        ok(&[
            "keys",
            "csr",
            k,
            "--alg",
            alg,
            "--subject",
            "CN=org.example,O=Example",
            "--san",
            "org.example",
            "--out",
            &s(&csr),
        ]);
        let v =
            std::process::Command::new("openssl").args(["req", "-in", &s(&csr), "-noout", "-verify"]).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));
        assert!(said.contains("verify OK"), "{alg}: {said}");
        if k == key {
            let pubkey = std::process::Command::new("openssl")
                .args(["req", "-in", &s(&csr), "-noout", "-pubkey"])
                .output()
                .unwrap();
            assert_eq!(pubkey.stdout, fs::read(&v2_pub).unwrap(), "the request carries version 2's key");
        }
    }

    // Destroyed: the token no longer holds version 1, and it is refused from then on.
    ok(&["keys", "destroy", key, "--version", "1", "--yes"]);
    let list = ok(&["keys", "list"]);
    assert!(!list.contains("object=org-es256;") && !list.contains("object=org-es256\n"), "{list}");
    assert!(list.contains("object=org-es256%23v2"), "{list}");
    refused(&["keys", "public", &format!("{key};x-version=1"), "--alg", "ES256"], "destroyed");
    ok(&["sign", &s(&doc), "--key", key, "--alg", "ES256"]);
    let audit = fs::read_to_string(hsm.audit_path()).unwrap();
    for op in ["\"rotate\"", "\"promote\"", "\"destroy\""] {
        assert!(audit.contains(op), "{op} audited");
    }
}

/// The audit log's checkpoints signed by an ECDSA P-256 key on the token (signed-note type
/// 0x02): the log verifies under the key's note verifier key and under its public key.
#[test]
fn checkpoints_signed_by_an_hsm_audit_key_verify() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["auditor"]);
    let config = hsm.config(&["auditor"], 1, "");
    let dir = hsm.dir.path();
    let key = "pkcs11:token=auditor;object=audit-p256";
    let public = dir.join("audit.pub");
    let out = crate::common::run_local(&config, &["keys", "generate", key, "--alg", "ES256", "--pub", &s(&public)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = fs::read_to_string(&config).unwrap().replace(
        "[audit]\npath = \"audit.jsonl\"\n",
        &format!("[audit]\npath = \"audit.jsonl\"\nkey = \"{key}\"\ncheckpoint_every = 3\n"),
    );
    fs::write(&config, text).unwrap();
    let msg = dir.join("msg");
    fs::write(&msg, b"m").unwrap();
    for i in 0..7 {
        let k = format!("sim:a{i}");
        let out = crate::common::run(&config, &["sign", &s(&msg), "--key", &k, "--alg", "ES256", "--out", "-"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let vkey = String::from_utf8(crate::common::run_local(&config, &["audit", "key"]).stdout).unwrap();
    let (name, rest) = vkey.trim().split_once('+').unwrap();
    assert!(name.starts_with("cryptohost/") && name.ends_with("/audit"), "{vkey}");
    let b64 = rest.split_once('+').unwrap().1;
    use base64::Engine as _;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()[0], 0x02, "ECDSA: type 0x02");
    let vkey_file = dir.join("audit.vkey");
    fs::write(&vkey_file, &vkey).unwrap();
    for trust in [&vkey_file, &public] {
        let out = crate::common::run_local(&config, &["audit", "verify", "--pub", &s(trust)]);
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success() && said.contains("intact"), "{said}{}", String::from_utf8_lossy(&out.stderr));
        assert!(!said.contains(" 0 of "), "checkpoints were made and verified: {said}");
    }
    // The token's key signs nothing but checkpoints.
    let out = crate::common::run_local(&config, &["sign", &s(&msg), "--key", key, "--alg", "ES256"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the audit key"));
}
