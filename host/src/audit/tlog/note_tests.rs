//! Tests of `note`.

use super::*;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

// Examples from the C2SP specs (https://github.com/C2SP/C2SP, CC BY 4.0) and from Go's
// golang.org/x/mod/sumdb/note note_test.go (Copyright The Go Authors, BSD-3-Clause).

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
/// The seed in Go's `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALV...` signer key (after its
/// type byte 0x01).
const PETER_SEED_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const PETER_TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str =
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str =
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// signed-note spec, section "Verifier keys", "Example".
const FOO_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const FOO_NOTE: &str = "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

/// signed-note spec, opening example (its verifier key is not published).
const QUASIMODO_NOTE: &str = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";

/// tlog-checkpoint spec, opening example (its verifier key is not published).
const SOFA_NOTE: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

fn ed25519_verify(v: &Verifier, text: &[u8], sig: &[u8]) -> bool {
    let Ok(key) = <[u8; 32]>::try_from(v.public_key()) else { return false };
    let Ok(key) = VerifyingKey::from_bytes(&key) else { return false };
    let Ok(sig) = Signature::from_slice(sig) else { return false };
    v.sig_type() == SigType::Ed25519 && key.verify_strict(text, &sig).is_ok()
}

fn test_key(seed_byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed_byte; 32])
}

fn sign_with(key: &SigningKey) -> impl FnOnce(&[u8]) -> Result<Vec<u8>, String> + '_ {
    move |msg| Ok(key.sign(msg).to_bytes().to_vec())
}

fn signed(text: &str, name: &str, key: &SigningKey) -> String {
    sign_note(text, name, SigType::Ed25519, key.verifying_key().as_bytes(), sign_with(key)).unwrap()
}

fn verifier_for(name: &str, key: &SigningKey) -> Verifier {
    Verifier::new(name, SigType::Ed25519, key.verifying_key().as_bytes()).unwrap()
}

#[test]
fn go_peter_neumann_note_opens() {
    let peter = Verifier::parse(PETER_VKEY).unwrap();
    assert_eq!(peter.name(), "PeterNeumann");
    assert_eq!(peter.key_id(), 0xc74f20a3);
    assert_eq!(peter.sig_type(), SigType::Ed25519);
    assert_eq!(peter.to_vkey(), PETER_VKEY);
    let enoch = Verifier::parse(ENOCH_VKEY).unwrap();
    assert_eq!(enoch.key_id(), 0xaf0cfe78);

    let note = format!("{PETER_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let (text, names) = open_note(&note, std::slice::from_ref(&peter), ed25519_verify).unwrap();
    assert_eq!(text, PETER_TEXT);
    assert_eq!(names, ["PeterNeumann"]);
    let (_, names) = open_note(&note, &[enoch.clone(), peter.clone()], ed25519_verify).unwrap();
    assert_eq!(names, ["PeterNeumann", "EnochRoot"]);
    // Only Enoch's key known: Peter's signature is ignored.
    let (_, names) = open_note(&note, std::slice::from_ref(&enoch), ed25519_verify).unwrap();
    assert_eq!(names, ["EnochRoot"]);
    // No key known.
    assert_eq!(open_note(&note, &[], ed25519_verify), Err(NoteError::NoVerifiedSignature { ignored: 2 }));
}

#[test]
fn go_peter_neumann_signature_reproduced() {
    let seed = B64.decode(PETER_SEED_B64).unwrap();
    assert_eq!(seed[0], 0x01);
    let key = SigningKey::from_bytes(&seed[1..].try_into().unwrap());
    let peter = Verifier::parse(PETER_VKEY).unwrap();
    assert_eq!(key.verifying_key().as_bytes(), peter.public_key());
    let note = sign_note(PETER_TEXT, "PeterNeumann", SigType::Ed25519, peter.public_key(), sign_with(&key)).unwrap();
    assert_eq!(note, format!("{PETER_TEXT}\n{PETER_SIG}"));
    assert_eq!(sign_note_as(PETER_TEXT, &peter, sign_with(&key)).unwrap(), note);
}

#[test]
fn c2sp_vkey_example_opens() {
    let foo = Verifier::parse(FOO_VKEY).unwrap();
    assert_eq!(foo.key_id(), 0x530d903a);
    assert_eq!(foo.to_string(), FOO_VKEY);
    let (text, names) = open_note(FOO_NOTE, &[foo], ed25519_verify).unwrap();
    assert_eq!(text, "This is an example message.\n");
    assert_eq!(names, ["example.com/foo"]);
}

#[test]
fn c2sp_quasimodo_note_splits_at_last_blank_line() {
    // Its key is not published: a verifier with the same name but another key ID must
    // ignore the signature; one forced to match it must see the text up to the last blank line.
    let other = verifier_for("quasimodo.example/salvatore", &test_key(9));
    assert_eq!(open_note(QUASIMODO_NOTE, &[other], ed25519_verify), Err(NoteError::NoVerifiedSignature { ignored: 1 }));

    let sig_b64 = QUASIMODO_NOTE.rsplit(' ').next().unwrap().trim_end();
    let blob = B64.decode(sig_b64).unwrap();
    assert_eq!(blob.len(), 4 + 64);
    let id = u32::from_be_bytes(blob[..4].try_into().unwrap());
    let stand_in = Verifier {
        name: "quasimodo.example/salvatore".into(),
        key_id: id,
        sig_type: SigType::Ed25519,
        public_key: vec![0; 32],
    };
    let seen = std::cell::RefCell::new(Vec::new());
    let (text, _) = open_note(QUASIMODO_NOTE, &[stand_in], |_, t, s| {
        seen.borrow_mut().push((t.to_vec(), s.to_vec()));
        true
    })
    .unwrap();
    assert_eq!(text, "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n");
    assert_eq!(seen.borrow()[0], (text.into_bytes(), blob[4..].to_vec()));
}

#[test]
fn c2sp_checkpoint_example_parses() {
    let seen = std::cell::RefCell::new(None);
    let blob = B64.decode(SOFA_NOTE.rsplit(' ').next().unwrap().trim_end()).unwrap();
    let stand_in = Verifier {
        name: "example.com/behind-the-sofa".into(),
        key_id: u32::from_be_bytes(blob[..4].try_into().unwrap()),
        sig_type: SigType::Ed25519,
        public_key: vec![0; 32],
    };
    let (cp, names) = open_checkpoint(SOFA_NOTE, &[stand_in], |_, t, _| {
        *seen.borrow_mut() = Some(t.to_vec());
        true
    })
    .unwrap();
    assert_eq!(names, ["example.com/behind-the-sofa"]);
    assert_eq!(cp.origin, "example.com/behind-the-sofa");
    assert_eq!(cp.size, 20852163);
    assert_eq!(B64.encode(cp.root), "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=");
    assert!(cp.extensions.is_empty());
    assert_eq!(seen.borrow().as_deref(), Some(cp.body().unwrap().as_bytes()));
}

#[test]
fn key_ids() {
    let key = test_key(1);
    let pk = key.verifying_key().to_bytes();
    let mut pre = b"log.example/a\n\x01".to_vec();
    pre.extend_from_slice(&pk);
    let d = Sha256::digest(&pre);
    assert_eq!(key_id("log.example/a", SigType::Ed25519, &pk).unwrap(), u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
    // ECDSA: SHA-256 of the SPKI alone. A P-256 SPKI from the witness docs' example vkey.
    let rekor = B64
        .decode("AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=")
        .unwrap();
    assert_eq!(rekor[0], 0x02);
    let spki = &rekor[1..];
    let d = Sha256::digest(spki);
    let want = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    assert_eq!(key_id("rekor.sigstore.dev", SigType::Ecdsa, spki).unwrap(), want);
    assert_eq!(key_id("another-name", SigType::Ecdsa, spki).unwrap(), want);
    let v = Verifier::new("rekor.sigstore.dev", SigType::Ecdsa, spki).unwrap();
    assert_eq!(Verifier::parse(&v.to_vkey()).unwrap(), v);
    assert!(v.to_vkey().ends_with("+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc="));

    assert!(matches!(key_id("a", SigType::Ed25519, &pk[..31]), Err(NoteError::BadPublicKey { .. })));
    assert!(matches!(key_id("a", SigType::Ecdsa, &pk), Err(NoteError::BadPublicKey { .. })));
    assert!(matches!(key_id("a", SigType::Ecdsa, &[0x30, 0x05, 1]), Err(NoteError::BadPublicKey { .. })));
    assert!(matches!(key_id("a", SigType::Ecdsa, &[0x30; 300]), Err(NoteError::BadPublicKey { .. })));
    assert_eq!(SigType::from_byte(0x04), Err(NoteError::UnsupportedSigType(4)));
    assert_eq!(SigType::from_byte(SigType::Ecdsa.byte()), Ok(SigType::Ecdsa));
}

#[test]
fn key_names() {
    for good in ["a", "example.com/log", "ünïcode/名前", "a—b", "a\u{7f}b"] {
        check_key_name(good).unwrap();
    }
    for bad in ["", "a b", "a+b", "a\tb", "a\u{a0}b", "a\u{2003}b", "a\u{1}b", "a\u{85}b", "a\u{3000}b"] {
        assert!(matches!(check_key_name(bad), Err(NoteError::InvalidKeyName { .. })), "{bad:?}");
    }
    check_key_name(&"x".repeat(MAX_KEY_NAME_LEN)).unwrap();
    assert!(check_key_name(&"x".repeat(MAX_KEY_NAME_LEN + 1)).is_err());
}

#[test]
fn vkey_parsing_rejects_malformed() {
    let cases = [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a30+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+-74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20g3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",
        // Go's test cases: wrong-length key and unknown algorithm, each with an adjusted ID.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ];
    for vkey in cases {
        assert!(Verifier::parse(vkey).is_err(), "{vkey}");
    }
    assert_eq!(
        Verifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::KeyIdMismatch { name: "PeterNeumann".into(), stated: 0xc74f20a4, computed: 0xc74f20a3 })
    );
    // The key ID covers the name: the same key under another name has another ID.
    assert!(matches!(
        Verifier::parse("Other+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::KeyIdMismatch { stated: 0xc74f20a3, .. })
    ));
    // Upper-case hex is accepted; output is lower-case.
    let upper = Verifier::parse("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
    assert_eq!(upper.to_vkey(), PETER_VKEY);
    assert!(Verifier::parse(&"a".repeat(MAX_VKEY_LEN + 1)).is_err());
}

#[test]
fn sign_then_open_round_trip() {
    let key = test_key(7);
    let text = "line one\n\nline three, after an empty line\n";
    let note = signed(text, "log.example/k", &key);
    assert!(note.starts_with(text));
    assert!(note.contains("\n\n\u{2014} log.example/k "));
    let v = verifier_for("log.example/k", &key);
    assert_eq!(open_note(&note, &[v], ed25519_verify).unwrap(), (text.to_owned(), vec!["log.example/k".to_owned()]));
}

#[test]
fn sign_refuses_bad_input() {
    let key = test_key(7);
    let pk = key.verifying_key().to_bytes();
    let sign = |text: &str| sign_note(text, "n", SigType::Ed25519, &pk, sign_with(&key));
    assert_eq!(sign(""), Err(NoteError::TextMissingNewline));
    assert_eq!(sign("abc"), Err(NoteError::TextMissingNewline));
    assert_eq!(sign("a\r\n"), Err(NoteError::ControlCharacter { offset: 1, byte: 0x0d }));
    assert_eq!(sign("a\tb\n"), Err(NoteError::ControlCharacter { offset: 1, byte: 0x09 }));
    assert!(matches!(sign(&"a\n".repeat(MAX_NOTE_LEN / 2)), Err(NoteError::TooLarge { .. })));
    assert!(matches!(
        sign_note("a\n", "bad name", SigType::Ed25519, &pk, sign_with(&key)),
        Err(NoteError::InvalidKeyName { .. })
    ));
    assert!(matches!(
        sign_note("a\n", "n", SigType::Ed25519, &pk[..5], sign_with(&key)),
        Err(NoteError::BadPublicKey { .. })
    ));
    assert_eq!(
        sign_note("a\n", "n", SigType::Ed25519, &pk, |_| Err::<Vec<u8>, _>("token removed")),
        Err(NoteError::SignerFailed("token removed".into()))
    );
    assert_eq!(
        sign_note("a\n", "n", SigType::Ed25519, &pk, |_| Ok::<_, String>(vec![0; 63])),
        Err(NoteError::SignerOutput { sig_type: SigType::Ed25519, len: 63, expected: "exactly 64 bytes" })
    );
    // The largest text accepted still opens.
    let big = format!("{}\n", "x".repeat(MAX_NOTE_LEN - 400));
    let note = sign(&big).unwrap();
    assert!(note.len() <= MAX_NOTE_LEN);
    open_note(&note, &[verifier_for("n", &key)], ed25519_verify).unwrap();
}

#[test]
fn open_refuses_malformed_notes() {
    let key = test_key(3);
    let v = [verifier_for("n", &key)];
    let good = signed("hello\n", "n", &key);
    let sig_line = good.strip_prefix("hello\n\n").unwrap();
    let open = |note: &str| open_note(note, &v, ed25519_verify);
    open(&good).unwrap();

    assert_eq!(open(&good.replace("\n\n", "\n")), Err(NoteError::NoSignatureBlock));
    assert_eq!(open("hello\n\n"), Err(NoteError::EmptySignatureBlock));
    assert_eq!(open(good.trim_end_matches('\n')), Err(NoteError::EmptySignatureBlock));
    assert_eq!(open(&good.replace("hello\n", "hello\r\n")), Err(NoteError::ControlCharacter { offset: 5, byte: 13 }));
    assert!(matches!(open(&good.replace('\n', "\r\n")), Err(NoteError::ControlCharacter { byte: 13, .. })));
    assert!(matches!(open(&format!("hel\0lo\n\n{sig_line}")), Err(NoteError::ControlCharacter { byte: 0, .. })));
    let line_err = |note: &str| match open(note) {
        Err(NoteError::BadSignatureLine { line, reason }) => (line, reason),
        other => panic!("{other:?} for {note:?}"),
    };
    assert_eq!(line_err(&good.replace('\u{2014}', "-")).0, 1);
    assert_eq!(line_err(&good.replace("\u{2014} ", "\u{2014}")).0, 1);
    assert_eq!(line_err(&good.replace("\u{2014} n ", "\u{2014} n")).0, 1);
    assert_eq!(line_err(&good.replace("\u{2014} n ", "\u{2014}  ")).0, 1);
    assert_eq!(line_err(&good.replace("\u{2014} n ", "\u{2014} a+b ")).0, 1);
    assert_eq!(line_err("hello\n\n\u{2014} n \n").1, "the signature is empty");
    assert_eq!(line_err("hello\n\n\u{2014} n !!!!\n").1, "the signature is not valid standard base64");
    assert_eq!(line_err("hello\n\n\u{2014} n AAAA\n").1, "the signature is shorter than its 4-byte key ID");
    assert_eq!(line_err("hello\n\n\u{2014} n AAAAAA==\n").1, "the signature has a key ID but no signature bytes");
    let id_only = B64.encode(v[0].key_id().to_be_bytes());
    assert_eq!(
        line_err(&format!("hello\n\n\u{2014} n {id_only}\n")).1,
        "the signature has a key ID but no signature bytes"
    );
    // Padding removed or non-canonical trailing bits.
    assert_eq!(line_err(&good.replace('=', "")).0, 1);
    // A second, malformed line after a good one.
    assert_eq!(line_err(&format!("{good}junk\n")).0, 2);
    // Too large.
    let huge = format!("{}\n\n{sig_line}", "x".repeat(MAX_NOTE_LEN));
    assert_eq!(open(&huge), Err(NoteError::TooLarge { len: huge.len(), max: MAX_NOTE_LEN }));
}

#[test]
fn open_limits_signature_lines() {
    let keys: Vec<SigningKey> = (0..=MAX_SIGNATURES as u8).map(test_key).collect();
    let text = "cosigned\n";
    let lines: Vec<String> =
        keys.iter().map(|k| signed(text, "w", k).strip_prefix("cosigned\n\n").unwrap().to_owned()).collect();
    let v = [verifier_for("w", &keys[0])];
    let at_limit = format!("{text}\n{}", lines[..MAX_SIGNATURES].concat());
    assert_eq!(open_note(&at_limit, &v, ed25519_verify).unwrap().1, ["w"]);
    let over = format!("{text}\n{}", lines.concat());
    assert_eq!(
        open_note(&over, &v, ed25519_verify),
        Err(NoteError::TooManySignatures { count: MAX_SIGNATURES + 1, max: MAX_SIGNATURES })
    );
}

#[test]
fn open_rejects_tampering() {
    let key = test_key(5);
    let v = [verifier_for("log", &key)];
    let good = signed("origin\n42\n", "log", &key);
    let open = |note: &str| open_note(note, &v, ed25519_verify);
    let invalid = Err(NoteError::InvalidSignature { name: "log".into(), key_id: v[0].key_id() });

    assert_eq!(open(&good.replace("42", "43")), invalid);
    assert_eq!(open(&good.replacen("origin", "origin\nextra", 1)), invalid);
    // Every single-character change to the signature's base64 either breaks the base64, the
    // key ID (ignored, then no verified signature) or the signature.
    let sig_start = good.rfind(' ').unwrap() + 1;
    for i in sig_start..good.len() - 1 {
        let mut bytes = good.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(open(&tampered).is_err(), "byte {i}");
    }
    // Right name, other key ID: ignored.
    let other = signed("origin\n42\n", "log", &test_key(6));
    assert_eq!(open(&other), Err(NoteError::NoVerifiedSignature { ignored: 1 }));
    // Right key ID, other name: ignored.
    let renamed = good.replace("\u{2014} log ", "\u{2014} gol ");
    assert_eq!(open(&renamed), Err(NoteError::NoVerifiedSignature { ignored: 1 }));
    // A good signature does not save a note that also carries a bad one from a known key.
    let line = good.strip_prefix("origin\n42\n\n").unwrap();
    let mut blob = B64.decode(line.trim_end().rsplit(' ').next().unwrap()).unwrap();
    blob[10] ^= 1;
    let bad_line = format!("\u{2014} log {}\n", B64.encode(&blob));
    assert_eq!(open(&format!("{good}{bad_line}")), invalid);
    assert_eq!(open(&format!("origin\n42\n\n{bad_line}{line}")), invalid);
    // Short signature from a known key.
    blob.truncate(4 + 32);
    let short = format!("origin\n42\n\n\u{2014} log {}\n", B64.encode(&blob));
    assert!(matches!(open(&short), Err(NoteError::SignatureLength { len: 32, .. })));
    // Duplicate verifiers for one (name, key ID).
    assert_eq!(
        open_note(&good, &[v[0].clone(), v[0].clone()], ed25519_verify),
        Err(NoteError::AmbiguousKey { name: "log".into(), key_id: v[0].key_id() })
    );
    // Two valid signatures by the same key: the name is reported once.
    assert_eq!(open(&format!("{good}{line}")).unwrap().1, ["log"]);
}

#[test]
fn open_moves_text_boundary_to_last_blank_line() {
    // Someone inserts a blank line inside the signature block: the first signature line
    // becomes part of the text, so the signature no longer matches.
    let key = test_key(2);
    let v = [verifier_for("a", &key)];
    let text = "body\n";
    let a = signed(text, "a", &key);
    let a_line = a.strip_prefix("body\n\n").unwrap();
    let b_line = signed(text, "b", &test_key(4)).strip_prefix("body\n\n").unwrap().to_owned();
    let spliced = format!("{text}\n{a_line}\n{b_line}");
    assert_eq!(open_note(&spliced, &v, ed25519_verify), Err(NoteError::NoVerifiedSignature { ignored: 1 }));
}

#[test]
fn checkpoint_body_and_parse() {
    let root: [u8; 32] = Sha256::digest(b"root").into();
    let cp = Checkpoint::new("example.com/log", 1234, root);
    let body = cp.body().unwrap();
    assert_eq!(body, format!("example.com/log\n1234\n{}\n", B64.encode(root)));
    assert_eq!(Checkpoint::parse(&body).unwrap(), cp);

    let with_ext = Checkpoint { extensions: vec!["ext one".into(), "— two".into()], ..cp.clone() };
    let body = with_ext.body().unwrap();
    assert!(body.ends_with("\next one\n— two\n"));
    assert_eq!(Checkpoint::parse(&body).unwrap(), with_ext);

    let zero = Checkpoint::new("o", 0, [0; 32]);
    assert_eq!(Checkpoint::parse(&zero.body().unwrap()).unwrap(), zero);
    let max = Checkpoint::new("o o+", u64::MAX, [0xff; 32]);
    assert_eq!(Checkpoint::parse(&max.body().unwrap()).unwrap(), max);

    assert_eq!(Checkpoint::new("", 1, root).body(), Err(CheckpointError::EmptyOrigin));
    assert_eq!(Checkpoint::new("a\nb", 1, root).body(), Err(CheckpointError::ControlCharacter { line: 1 }));
    let bad_ext = Checkpoint { extensions: vec![String::new()], ..cp.clone() };
    assert_eq!(bad_ext.body(), Err(CheckpointError::EmptyLine { line: 4 }));
    let many = Checkpoint { extensions: vec!["e".into(); MAX_CHECKPOINT_EXTENSIONS + 1], ..cp.clone() };
    assert!(matches!(many.body(), Err(CheckpointError::TooManyExtensions { .. })));
}

#[test]
fn checkpoint_parse_is_strict() {
    let r = B64.encode([7u8; 32]);
    let ok = |s: &str| Checkpoint::parse(s).unwrap();
    assert_eq!(ok(&format!("o\n10\n{r}\n")).size, 10);
    let err = |s: String| Checkpoint::parse(&s).unwrap_err();
    assert_eq!(err(format!("o\n10\n{r}")), CheckpointError::MissingFinalNewline);
    assert_eq!(err("o\n10\n".into()), CheckpointError::TooFewLines { lines: 2 });
    assert_eq!(err("\n".into()), CheckpointError::TooFewLines { lines: 1 });
    assert_eq!(err(format!("\n10\n{r}\n")), CheckpointError::EmptyOrigin);
    assert_eq!(err(format!("o\n\n{r}\n")), CheckpointError::EmptyLine { line: 2 });
    assert_eq!(err(format!("o\n10\n{r}\n\n")), CheckpointError::EmptyLine { line: 4 });
    assert_eq!(err(format!("o\n10\n{r}\next\n\n")), CheckpointError::EmptyLine { line: 5 });
    assert_eq!(err(format!("o\r\n10\n{r}\n")), CheckpointError::ControlCharacter { line: 1 });
    assert_eq!(err(format!("o\n10\n{r}\ne\tx\n")), CheckpointError::ControlCharacter { line: 4 });
    for size in ["010", "00", "+1", "-1", " 1", "1 ", "0x10", "1e3", "18446744073709551616", "١"] {
        assert!(matches!(err(format!("o\n{size}\n{r}\n")), CheckpointError::BadSize(_)), "{size:?}");
    }
    assert_eq!(ok(&format!("o\n18446744073709551615\n{r}\n")).size, u64::MAX);
    let short = B64.encode([7u8; 31]);
    let long = B64.encode([7u8; 33]);
    let unpadded = r.trim_end_matches('=').to_owned();
    let urlsafe = B64.encode([0xfb; 32]).replace('+', "-").replace('/', "_");
    let noncanonical = format!("{}9=", &r[..42]);
    for root in [short, long, unpadded, urlsafe, noncanonical, String::from("!").repeat(44)] {
        assert!(matches!(err(format!("o\n1\n{root}\n")), CheckpointError::BadRoot(_)), "{root}");
    }
    let many_ext = "e\n".repeat(MAX_CHECKPOINT_EXTENSIONS + 1);
    assert!(matches!(err(format!("o\n1\n{r}\n{many_ext}")), CheckpointError::TooManyExtensions { .. }));
    assert!(matches!(err("o\n".repeat(MAX_NOTE_LEN)), CheckpointError::TooLarge { .. }));
}

#[test]
fn open_checkpoint_signed_in_rust() {
    let key = test_key(11);
    let cp = Checkpoint::new("log.example/audit", 3, [1; 32]);
    let note = signed(&cp.body().unwrap(), "log.example/audit", &key);
    let v = [verifier_for("log.example/audit", &key)];
    assert_eq!(open_checkpoint(&note, &v, ed25519_verify).unwrap(), (cp, vec!["log.example/audit".to_owned()]));
    let not_checkpoint = signed("just text\n", "log.example/audit", &key);
    assert!(matches!(
        open_checkpoint(&not_checkpoint, &v, ed25519_verify),
        Err(NoteError::Checkpoint(CheckpointError::TooFewLines { lines: 1 }))
    ));
}

/// Random single-byte edits, insertions and deletions of a valid checkpoint note: nothing
/// panics, and no edit that changes the note is accepted.
#[test]
fn mutated_notes_never_panic_or_pass() {
    let key = test_key(8);
    let v = [verifier_for("o", &key)];
    let good = signed(&Checkpoint::new("o", 7, [3; 32]).body().unwrap(), "o", &key);
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"\n\r\t +/=-0123456789ABCabcxyz\xe2\x80\x94";
    let mut tried = 0;
    for _ in 0..20_000 {
        let mut bytes = good.clone().into_bytes();
        for _ in 0..=(next() % 3) {
            let at = (next() as usize) % (bytes.len() + 1);
            let byte = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        let Ok(mutated) = String::from_utf8(bytes) else { continue };
        tried += 1;
        let opened = open_checkpoint(&mutated, &v, ed25519_verify);
        if mutated != good {
            assert!(opened.is_err(), "accepted {mutated:?}");
        }
        let _ = Checkpoint::parse(&mutated);
        let _ = Verifier::parse(&mutated);
    }
    assert!(tried > 10_000, "{tried}");
}

#[test]
fn error_messages_are_specific() {
    let e = NoteError::InvalidSignature { name: "log".into(), key_id: 0xab };
    assert_eq!(e.to_string(), "signature by known key log+000000ab does not verify: the note is rejected");
    let e = NoteError::ControlCharacter { offset: 3, byte: 13 };
    assert_eq!(e.to_string(), "note contains control character 0x0d at byte 3: only newline (0x0a) is allowed");
    let e = NoteError::Checkpoint(CheckpointError::BadSize("leading zero"));
    assert_eq!(e.to_string(), "checkpoint: tree size: leading zero");
}
