//! The committed fuzz corpus (`fuzz/corpus/<target>/`), replayed on stable Rust through the very
//! functions the libFuzzer binaries call (`tools/fuzz-targets`): a crash once found, and the
//! input that found it committed, stays found in every `just test`.

use std::path::Path;

#[test]
fn every_committed_fuzz_input_replays_without_a_finding_and_the_seeds_reach_the_work() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut findings = Vec::new();
    for (name, target) in cryptohost_fuzz_targets::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target keeps a corpus)", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(inputs.len() >= 3, "{name}: a corpus of {} inputs", inputs.len());
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| target(&bytes)) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_default();
                findings.push(format!("{}: {why}", input.display()));
            }
        }
    }
    assert!(findings.is_empty(), "fuzz inputs that fail:\n{}", findings.join("\n"));
    the_seeds_reach_the_work_behind_the_parsers(&corpus);
    // The guest and server targets loaded the repository's components/ with a config and an
    // audit log of their own (one test function, so nothing else still uses them).
    if let Some(dir) = cryptohost_fuzz_targets::scratch_dir() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The seeds reach the work, not only the parsers: a valid ES256 signature verifies through
/// the server's route and through the offline-verification component, and a PKCS#8 key signs.
fn the_seeds_reach_the_work_behind_the_parsers(corpus: &Path) {
    let read = |p: &str| std::fs::read(corpus.join(p)).unwrap();
    let (route, status, body) = cryptohost_fuzz_targets::answer(&read("request_body/body-0")).unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!((route, status), ("/v1/verify", 200), "{body}");
    assert!(body.contains("\"valid\":true"), "{body}");
    let answers = cryptohost_fuzz_targets::guest_answers(&read("guest_boundary/es256-verify"));
    let offline = answers.iter().find(|(name, ..)| name == "offline-verification").expect("offline-verification");
    assert_eq!(offline.2.as_deref().ok(), Some("valid: true"), "{answers:?}");
    let answers = cryptohost_fuzz_targets::guest_answers(&read("guest_boundary/es256-sign"));
    assert!(answers.iter().any(|(_, _, a)| a.as_deref().is_ok_and(|a| a.starts_with("signature of"))), "{answers:?}");
    if let Some(dir) = cryptohost_fuzz_targets::scratch_dir() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
