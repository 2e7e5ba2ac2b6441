//! The bodies of the fuzz targets, one function per target taking the fuzzer's bytes. Each
//! returns normally on any input: a panic (or a guest trap, or a server 500) is a finding.
//! `fuzz/fuzz_targets/*.rs` hands them to libFuzzer (`just fuzz`); `tests/all/fuzz_replay.rs`
//! replays the committed corpus through the same functions on stable Rust in `just test`, so a
//! crash once found stays found.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cryptohost::ProviderError;
use cryptohost::bundle::Limits;

mod guests;
mod server;

pub use guests::{guest_answers, guest_boundary};
pub use server::{answer, request_body};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory (`fuzz/corpus/<name>`).
pub const TARGETS: &[(&str, Target)] = &[
    ("dsse_envelope", dsse_envelope),
    ("tar_archive", tar_archive),
    ("config_text", config_text),
    ("key_reference", key_reference),
    ("key_encoding", key_encoding),
    ("request_body", request_body),
    ("http_response", http_response),
    ("guest_boundary", guest_boundary),
];

/// A DSSE envelope as `dsse verify` and the kit reader parse it; what parses is serialized and
/// parsed again to the same envelope, and its PAE computed.
pub fn dsse_envelope(data: &[u8]) {
    use cryptohost::dsse::{Envelope, pae};
    let Ok(envelope) = Envelope::parse(data, 1 << 20, 64) else { return };
    let again = Envelope::parse(envelope.to_json().as_bytes(), 1 << 20, 64).expect("a parsed envelope re-serializes");
    assert_eq!(again.to_json(), envelope.to_json(), "parse(to_json(e)) differs from e");
    let encoded = pae(&envelope.payload_type, &envelope.payload);
    assert!(encoded.len() > envelope.payload.len());
}

/// The bundle reader over a `.tar.gz` and, for depth past gzip, over the same bytes as a bare
/// tar; small limits, so the limit checks themselves are reached.
pub fn tar_archive(data: &[u8]) {
    let limits =
        Limits { max_archive_bytes: 1 << 20, max_entries: 64, max_entry_bytes: 64 << 10, max_total_bytes: 1 << 20 };
    for files in
        [cryptohost::bundle::read_archive_bytes(data, limits), cryptohost::bundle::read_tar_bytes(data, limits)]
            .into_iter()
            .flatten()
    {
        assert!(files.len() <= limits.max_entries);
        for (name, bytes) in &files {
            assert!(bytes.len() as u64 <= limits.max_entry_bytes, "{name}: over the entry limit");
            assert!(!name.starts_with('/') && !name.split('/').any(|c| c == ".."), "{name}: escapes the bundle");
        }
    }
}

/// The config parser over any text (never reads a file: `Config::parse` is given the text).
pub fn config_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = cryptohost::Config::parse(Path::new("/nonexistent/cryptohost.toml"), text);
}

/// Key references and PKCS#11 URIs: what parses prints back to a URI that parses to the same
/// URI, and an error never carries a PIN given in the text.
pub fn key_reference(data: &[u8]) {
    use cryptohost::keyref::{KeyRef, Pkcs11Uri};
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = KeyRef::parse(text) {
        let shown = [e.shown.as_str(), e.message.as_str()].join(";");
        // A PIN attribute given whole must not come back whole: no separated part of the
        // reference shown or of the message is `pin-value=<the value>` (an attribute merely
        // ending in `pin-value`, such as `ppin-value` or `"pin-value`, is no PIN).
        let shown_pins: Vec<&str> = shown
            .split([';', '?', '&'])
            .filter(|p| p.get(..10).is_some_and(|k| k.eq_ignore_ascii_case("pin-value=")))
            .map(|p| &p[10..])
            .collect();
        // (A PIN typed as the very word REDACTED cannot be told from its redaction.)
        for secret in pin_values(text).filter(|s| *s != "REDACTED") {
            assert!(!shown_pins.contains(&secret), "an error shows the pin {secret:?}: {shown}");
        }
    }
    let _ = KeyRef::parse_relative_to(text, Path::new("/base"));
    if let Ok(uri) = Pkcs11Uri::parse(text) {
        let printed = uri.to_uri();
        let again = Pkcs11Uri::parse(&printed).unwrap_or_else(|e| panic!("{printed:?} does not parse again: {e}"));
        assert_eq!(again.to_uri(), printed, "to_uri is not stable");
    }
    let _ = Pkcs11Uri::redacted(text);
}

fn pin_values(text: &str) -> impl Iterator<Item = &str> {
    text.split(['?', '&', ';'])
        .filter(|a| a.get(..10).is_some_and(|k| k.eq_ignore_ascii_case("pin-value=")))
        .map(|a| &a[10..])
        .filter(|v| !v.is_empty())
}

/// Key and signature files as the host reads them: PEM or DER, public or private, and
/// signatures as base64 text or raw bytes.
pub fn key_encoding(data: &[u8]) {
    let path = Path::new("fuzz-input");
    let _ = cryptohost::keyfile::public_key_from_bytes(path, data);
    let _ = cryptohost::keyfile::private_key_from_bytes(path, data);
    let _ = cryptohost::keyfile::signature_from_bytes(data);
    if let Ok(spki) = cryptohost::keyfile::public_key_from_bytes(path, data) {
        let _ = cryptohost::alg::algorithm_of_spki(&spki);
    }
}

/// The client's reader of a server's HTTP answer: never more than its bounds.
pub fn http_response(data: &[u8]) {
    if let Ok((status, len)) = cryptohost_client::read_response_bytes(data) {
        assert!(len <= data.len(), "a body longer than the input");
        assert!(status < 1000 || status.to_string().len() > 3, "status {status}");
    }
}

/// The built components: `CRYPTOHOST_COMPONENTS`, or the repository's `components/`.
fn components_dir() -> PathBuf {
    std::env::var_os("CRYPTOHOST_COMPONENTS")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../components"), PathBuf::from)
}

/// A config over the built components (trusted by their build manifest, as `--dev` does), in a
/// directory of its own that lives as long as the process.
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// The directory of the fuzz configs and the server's audit log, once one was made.
pub fn scratch_dir() -> Option<&'static Path> {
    DIR.get().map(PathBuf::as_path)
}

fn config_file(extra: &str) -> PathBuf {
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cryptohost-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the fuzz config");
        dir
    });
    let mut text =
        format!("component_dir = {:?}\n[cache]\nenabled = false\n{extra}\n", components_dir().display().to_string());
    for (name, file, priority, more) in [
        ("offline-verification", "offline-verification.wasm", 100, ""),
        ("simulation", "simulation.wasm", 50, "key_prefix = \"sim\"\nsettings = { seed = \"fuzz\" }\n"),
        ("pqc", "pqc.wasm", 90, ""),
    ] {
        text += &format!("[[provider]]\nname = {name:?}\ncomponent = {file:?}\npriority = {priority}\n{more}");
    }
    let name = if extra.is_empty() { "guests.toml" } else { "server.toml" };
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the fuzz config");
    path
}

/// Whether a provider's answer is a finding: a trap on input it should have refused. A CPU
/// deadline is left to the fuzzer's own timeout (it says so, with the input).
fn is_finding(e: &ProviderError) -> bool {
    matches!(e, ProviderError::Fault(m) if !m.contains("deadline"))
}
