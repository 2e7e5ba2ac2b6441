//! The server in front of a real SoftHSM2 token: HSM signing over the socket under rules whose
//! globs match canonical PKCS#11 URIs only (reordering or escaping never widens a rule).

use std::fs;

use crate::common;
use crate::server::{Server, me};
use crate::softhsm::{self, SoftHsm};

#[test]
fn hsm_signing_over_the_socket_under_canonical_uri_rules() {
    use base64::Engine as _;
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["srv"]);
    let config = hsm.config(&["srv"], 2, "");
    let socket = hsm.dir.path().join("s.sock");
    let rules = format!(
        "[service]\nlisten = \"unix:{}\"\n[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\", \"generate\"]\nkeys = [\"pkcs11:token=srv;object=org-*\"]\n",
        socket.display(),
        me()
    );
    let text = fs::read_to_string(&config).unwrap() + &rules;
    fs::write(&config, text).unwrap();
    let server = Server::start_with(hsm.dir.path().to_path_buf(), config.clone(), None);

    // Generated through the server (a generate rule), then used to sign.
    let (status, made) = server.json(
        "POST",
        "/v1/keys/generate",
        serde_json::json!({"key": "pkcs11:token=srv;object=org-es256", "algorithm": "ES256"}),
    );
    assert_eq!(status, 200, "{made} {}", server.log());
    let data = base64::engine::general_purpose::STANDARD.encode(b"built artifact");
    let sign = |key: &str| {
        server.json("POST", "/v1/sign", serde_json::json!({"key": key, "algorithm": "ES256", "data": data}))
    };
    let (status, signed) = sign("pkcs11:token=srv;object=org-es256");
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["provider"], "hsm");
    assert!(signed["origin"]["token_serial"].as_str().is_some_and(|s| !s.is_empty()), "{signed}");
    // The same key, attributes reordered or escaped: canonical form, same rule, allowed.
    assert_eq!(sign("pkcs11:object=org-es256;token=srv").0, 200);
    assert_eq!(sign("pkcs11:token=srv;object=org%2Des256").0, 200);
    // Without the token the reference is not what the rule names: denied, not widened.
    assert_eq!(sign("pkcs11:object=org-es256").0, 403);
    assert_eq!(sign("pkcs11:token=srv;object=other").0, 403);
    // The signature verifies under the key the server reports.
    let (status, public) = server.json(
        "POST",
        "/v1/keys/public",
        serde_json::json!({"key": "pkcs11:token=srv;object=org-es256", "algorithm": "ES256"}),
    );
    assert_eq!(status, 200, "{public}");
    let (status, v) = server.json(
        "POST",
        "/v1/verify",
        serde_json::json!({"algorithm": "ES256", "public_key": public["public_key"], "signature": signed["signature"], "data": data}),
    );
    assert_eq!((status, v["valid"].clone()), (200, serde_json::json!(true)), "{v}");
    // Audit: the HSM use with the caller and token serial; the denials as events.
    let audit = server.audit();
    let line = audit.iter().find(|l| l["operation"] == "sign" && l["outcome"] == "ok").expect("sign audited");
    assert_eq!(line["caller"]["uid"], me());
    assert_eq!(line["provider_origin"]["pkcs11_module"], softhsm::MODULE);
    assert_eq!(audit.iter().filter(|l| l["event"] == "denied").count(), 2);
    assert!(!fs::read_to_string(hsm.dir.path().join("audit.jsonl")).unwrap().contains(softhsm::PIN));
    let (status, _, log) = server.stop();
    assert!(status.success(), "{log}");
    let _ = common::repo_root();
}
