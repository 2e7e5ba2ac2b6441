//! Hostile JOSE inputs through the `cryptohost` binary, each run measured: JWS, JWT and JWK
//! inputs that attack the parser or its resource use (sizes over every bound, nesting, floods of
//! signatures, keys and crit names, duplicate members, non-objects, invalid UTF-8, base64 that is
//! not base64url, `alg: none`, JWE shapes, private and weak keys). For each case: the documented
//! exit code (2 an unusable request, 1 a JWS or JWT that does not verify; never 0, never a panic
//! or a signal), a message naming the rule, nothing written (`--payload-out` not created, no
//! payload or claims on stdout), and a peak resident set under [`CAP_KIB`]. The biggest inputs
//! also go through a server, which must refuse them as requests (400/413, never 500) and stay up.
//!
//! The peak is measured with `wait4`'s `ru_maxrss`, but not from this process: a child's
//! `ru_maxrss` starts at the high-water mark of the process that spawned it (the kernel carries
//! the old address space's peak into `signal->maxrss` at `execve`, `vfork` or not), and this test
//! process holds the 60 MiB inputs it builds (and, in a full run, whatever the other tests hold).
//! So each case is spawned and reaped by a fresh, small helper: this test binary again, running
//! [`rss_probe`] only. The helper's own peak, the most the case could inherit, is checked to be
//! far under the cap, so `ru_maxrss` is the case's own.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::common::{self, run_local, stderr, stdout};
use crate::server::Server;

/// The peak resident set a hostile case may reach, in KiB (as `ru_maxrss` counts).
const CAP_KIB: i64 = 64 << 10;
/// Any case ends well within this; one that does not is killed and fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// Set for the helper run of [`rss_probe`]: the path of its instructions.
const PROBE_ENV: &str = "CRYPTOHOST_JOSE_HOSTILE_PROBE";

const MIB: usize = 1 << 20;

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `[[[ ... ]]]`, `depth` deep.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// The helper each case runs through (see the module's comment): without [`PROBE_ENV`] it does
/// nothing. With it, it spawns `cryptohost` as its instructions say, reaps it with `wait4`, and
/// writes the exit status, `ru_maxrss` and its own peak (the most the child can have inherited).
#[test]
fn rss_probe() {
    let Ok(spec) = std::env::var(PROBE_ENV) else { return };
    let spec: Value = serde_json::from_slice(&fs::read(spec).unwrap()).unwrap();
    let path = |k: &str| PathBuf::from(spec[k].as_str().unwrap());
    let args: Vec<&str> = spec["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    #[allow(clippy::zombie_processes, reason = "reaped by wait4 below, for its rusage")]
    let child = Command::new(common::binary())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(path("stdout")).unwrap())
        .stderr(fs::File::create(path("stderr")).unwrap())
        .spawn()
        .unwrap();
    // The child has exec'd when spawn returns: what it may have inherited is at most this.
    let floor = vm_hwm_kib();
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut timed_out = false;
    let (status, usage) = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: a zeroed rusage is a valid value of the plain C struct wait4 fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if timed_out { 0 } else { libc::WNOHANG };
        // SAFETY: wait4 on our own child, with valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        if r == -1 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
            continue;
        }
        if start.elapsed() > DEADLINE {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            timed_out = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // (Reaped: `child` goes out of scope without being waited for again.)
    let result = json!({
        "status": status,
        "maxrss_kib": usage.ru_maxrss,
        "floor_kib": floor,
        "timed_out": timed_out,
        "millis": start.elapsed().as_millis() as u64,
    });
    fs::write(path("result"), result.to_string()).unwrap();
}

/// This process's peak resident set (VmHWM), KiB.
fn vm_hwm_kib() -> i64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// One run of the binary, measured.
pub(crate) struct Measured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub maxrss_kib: i64,
    pub floor_kib: i64,
    pub timed_out: bool,
    pub millis: u64,
}

/// Runs `cryptohost ARGS...` (ARGS with `--config`) through the helper, in `work` (other
/// suites measure their own peaks with it too).
pub(crate) fn measure(work: &Path, args: &[String]) -> Measured {
    let at = |name: &str| work.join(name);
    let spec = json!({
        "args": args,
        "stdout": at("stdout"),
        "stderr": at("stderr"),
        "result": at("result"),
    });
    fs::write(at("spec.json"), spec.to_string()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let helper = Command::new(exe)
        .args(["jose_hostile::rss_probe", "--exact", "--nocapture", "--test-threads=1", "--quiet"])
        .env(PROBE_ENV, at("spec.json"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        helper.status.success(),
        "the measuring helper failed: {}{}",
        stdout(&helper),
        String::from_utf8_lossy(&helper.stderr)
    );
    let result: Value = serde_json::from_slice(&fs::read(at("result")).unwrap()).unwrap();
    Measured {
        status: ExitStatus::from_raw(result["status"].as_i64().unwrap() as i32),
        stdout: String::from_utf8_lossy(&fs::read(at("stdout")).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(at("stderr")).unwrap()).into_owned(),
        maxrss_kib: result["maxrss_kib"].as_i64().unwrap(),
        floor_kib: result["floor_kib"].as_i64().unwrap(),
        timed_out: result["timed_out"].as_bool().unwrap(),
        millis: result["millis"].as_u64().unwrap(),
    }
}

/// Which command a case runs.
#[derive(Clone, Copy)]
enum Cmd {
    /// `jws verify KEYS --payload-out FILE TOKEN`
    Jws,
    /// `jwt verify KEYS --any-issuer --any-audience TOKEN`
    Jwt,
}

/// One hostile input and what the binary must answer.
struct Case {
    name: String,
    cmd: Cmd,
    token: Vec<u8>,
    /// The trust arguments (`--pub FILE`, `--jwks FILE`); the sound key when empty.
    keys: Vec<String>,
    code: i32,
    /// On stderr: the rule, by name.
    says: String,
}

fn case(name: &str, cmd: Cmd, token: impl Into<Vec<u8>>, code: i32, says: &str) -> Case {
    Case { name: name.to_string(), cmd, token: token.into(), keys: Vec::new(), code, says: says.to_string() }
}

impl Case {
    fn keys(mut self, keys: &[&str]) -> Case {
        self.keys = keys.iter().map(|k| k.to_string()).collect();
        self
    }
}

/// A config with the simulation and offline verification, a sound ES256 key and what it signs.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    /// The public key of `sim:hostile`, PEM.
    pem: PathBuf,
    /// The same key as a JWK.
    jwk: Value,
}

const KEY: &str = "sim:hostile";

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::server::config(dir.path(), Some("jose-hostile"), "");
        let ok = |args: &[&str]| {
            let out = run_local(&config, args);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
            stdout(&out)
        };
        let pem = dir.path().join("hostile.pub.pem");
        fs::write(&pem, ok(&["keys", "public", KEY, "--alg", "ES256"])).unwrap();
        let jwk = serde_json::from_str(&ok(&["keys", "public", KEY, "--alg", "ES256", "--format", "jwk"])).unwrap();
        Setup { dir, config, pem, jwk }
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, contents).unwrap();
        p
    }

    /// A JOSE (R||S) ES256 signature by the sound key over `input`, base64url.
    fn sign(&self, input: &[u8]) -> String {
        let f = self.file("signing-input", input);
        let out = run_local(&self.config, &["sign", "--key", KEY, "--alg", "ES256", "--sig-format", "p1363", s(&f)]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        b64u(&STANDARD.decode(stdout(&out).trim()).unwrap())
    }

    /// A compact JWS with exactly `header` and `payload`, validly signed by the sound key.
    fn token(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64u(header), b64u(payload));
        let sig = self.sign(input.as_bytes());
        format!("{input}.{sig}")
    }

    /// Runs every case, measured, printing one line each; returns what broke a rule of the test.
    fn run_cases(&self, cases: &[Case]) -> Vec<String> {
        let mut broken = Vec::new();
        println!("{:<58} {:>4} {:>9} {:>7}  stderr", "case", "exit", "peak KiB", "ms");
        for (i, c) in cases.iter().enumerate() {
            let work = self.dir.path().join(format!("case-{i}"));
            fs::create_dir(&work).unwrap();
            let token = work.join("token");
            fs::write(&token, &c.token).unwrap();
            // The one output a verify may write lives alone in its directory: nothing may
            // appear there, not even a temporary file.
            let outdir = work.join("out");
            fs::create_dir(&outdir).unwrap();
            let payload_out = outdir.join("payload");
            let mut args: Vec<String> = vec!["--config".into(), s(&self.config).into()];
            let command = match c.cmd {
                Cmd::Jws => ["jws", "verify"],
                Cmd::Jwt => ["jwt", "verify"],
            };
            args.extend(command.iter().map(|a| a.to_string()));
            if c.keys.is_empty() {
                args.extend(["--pub".to_string(), s(&self.pem).to_string()]);
            } else {
                args.extend(c.keys.iter().cloned());
            }
            match c.cmd {
                Cmd::Jws => args.extend(["--payload-out".to_string(), s(&payload_out).to_string()]),
                Cmd::Jwt => args.extend(["--any-issuer".to_string(), "--any-audience".to_string()]),
            }
            args.push(s(&token).to_string());
            let m = measure(&work, &args);
            let first = m.stderr.lines().find(|l| !l.contains("WARNING")).unwrap_or("").to_string();
            let shown: String = first.chars().take(150).collect();
            println!(
                "{:<58} {:>4} {:>9} {:>7}  {}{}",
                c.name,
                m.status.code().map_or_else(|| format!("sig{}", m.status.signal().unwrap_or(0)), |c| c.to_string()),
                m.maxrss_kib,
                m.millis,
                shown,
                if m.stderr.len() > 4096 { format!(" [stderr {} bytes]", m.stderr.len()) } else { String::new() }
            );
            let mut fail = |why: String| broken.push(format!("{}: {why}", c.name));
            if m.timed_out {
                fail(format!("did not finish within {DEADLINE:?}"));
            }
            match m.status.code() {
                None => fail(format!("killed by signal {:?}", m.status.signal())),
                Some(0) => fail(format!("exit 0: accepted a hostile input; stdout {:?}", m.stdout)),
                Some(code) if code != c.code => fail(format!("exit {code}, expected {}: {first}", c.code)),
                Some(_) => {}
            }
            if m.stderr.contains("panicked") || m.status.code() == Some(101) {
                fail(format!("panicked: {first}"));
            }
            if !m.stderr.contains(&c.says) {
                fail(format!("stderr does not say {:?}: {first}", c.says));
            }
            // A JWS the limits let through (the CLI reads the token whole: up to the payload
            // limit as base64url) may cost its own size once, and nothing more: no copies.
            let cap = CAP_KIB + (c.token.len() as i64 >> 10);
            if m.maxrss_kib >= cap {
                fail(format!("peak resident set {} KiB, over the cap of {cap} KiB", m.maxrss_kib));
            }
            // The helper's own peak bounds what the case inherited: far under the cap, so the
            // measurement above is the case's own.
            assert!(m.floor_kib < CAP_KIB / 2, "the helper itself peaked at {} KiB", m.floor_kib);
            let out: Vec<_> = fs::read_dir(&outdir).unwrap().flatten().map(|e| e.file_name()).collect();
            if !out.is_empty() {
                fail(format!("wrote {out:?} for an input that must not verify"));
            }
            let said = m.stdout.trim();
            if !(said.is_empty() || said == "invalid") {
                let said: String = said.chars().take(200).collect();
                fail(format!("stdout holds more than a verdict: {said:?}"));
            }
        }
        broken
    }
}

/// The corpus, but for the 60 MiB JWS (see [`sixty_mib_compact_jws_stays_under_the_cap`]).
fn corpus(t: &Setup) -> Vec<Case> {
    use Cmd::{Jws, Jwt};
    let payload = br#"{"hello":"world"}"#;
    let p = b64u(payload);
    let es256 = b64u(br#"{"alg":"ES256"}"#);
    let sig64 = b64u(&[0u8; 64]);
    let sound = t.token(br#"{"alg":"ES256"}"#, payload);
    let mut cases = Vec::new();

    // Sizes.
    let big = format!(r#"{{"alg":"ES256","x":"{}"}}"#, "a".repeat(10 * MIB));
    cases.push(case(
        "protected header of 10 MiB",
        Jws,
        format!("{}.{p}.{sig64}", b64u(big.as_bytes())),
        2,
        "the protected header is",
    ));
    let kid = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, "k".repeat(MIB));
    cases.push(case(
        "kid of 1 MiB, protected",
        Jws,
        format!("{}.{p}.{sig64}", b64u(kid.as_bytes())),
        2,
        "the protected header is",
    ));
    // Unprotected, the kid is bounded only by the JWS as a whole: read, then not matched.
    let flat = json!({"payload": p, "header": {"alg": "ES256", "kid": "k".repeat(MIB)}, "signature": sig64});
    cases.push(case(
        "kid of 1 MiB, unprotected (flattened JSON)",
        Jws,
        flat.to_string(),
        2,
        "an unprotected header is 1048600 bytes; at most 16384 are accepted",
    ));
    let sigs: Vec<Value> = (0..10_000).map(|_| json!({"protected": es256, "signature": sig64})).collect();
    cases.push(case(
        "JSON JWS with 10,000 signatures",
        Jws,
        json!({"payload": p, "signatures": sigs}).to_string(),
        2,
        "the JWS carries 10000 signatures; at most 16 are accepted ([dsse] max_signatures)",
    ));
    let crit: Vec<String> = (0..10_000).map(|i| format!("x{i}")).collect();
    let header = json!({"alg": "ES256", "crit": crit}).to_string();
    // 10,000 names cannot fit the 16 KiB header: the size bound refuses them first.
    cases.push(case(
        "crit with 10,000 entries",
        Jws,
        format!("{}.{p}.{sig64}", b64u(header.as_bytes())),
        2,
        "the protected header is",
    ));
    let crit: Vec<String> = (0..2_000).map(|i| format!("x{i}")).collect();
    let header = json!({"alg": "ES256", "crit": crit}).to_string();
    cases.push(case(
        "crit with 2,000 unknown entries (within 16 KiB)",
        Jws,
        format!("{}.{p}.{sig64}", b64u(header.as_bytes())),
        2,
        "an extension this host does not understand",
    ));
    cases.push(case("compact with 10,000 dots", Jws, ".".repeat(10_000), 2, "this one has 10001"));
    let huge_jwt = format!("{es256}.{}.{sig64}", "A".repeat(60 * MIB));
    cases.push(case("compact JWT of 60 MiB", Jwt, huge_jwt, 2, "over the limit of"));

    // Nesting.
    let deep_header = format!(r#"{{"alg":"ES256","x":{}}}"#, nested(1_000));
    cases.push(case(
        "header nested 1,000 deep",
        Jws,
        format!("{}.{p}.{sig64}", b64u(deep_header.as_bytes())),
        2,
        "nested deeper than 16 levels",
    ));
    let deep_jws = format!(r#"{{"payload":"{p}","protected":"{es256}","signature":"{sig64}","x":{}}}"#, nested(10_000));
    cases.push(case("JSON JWS nested 10,000 deep", Jws, deep_jws, 2, "nested deeper than 16 levels"));
    let deep_claims =
        t.token(br#"{"alg":"ES256","typ":"JWT"}"#, format!(r#"{{"iss":"x","a":{}}}"#, nested(10_000)).as_bytes());
    cases.push(case(
        "JWT claims nested 10,000 deep (signed)",
        Jwt,
        deep_claims,
        1,
        "the JWT claims set: nested deeper than 16 levels",
    ));

    // Duplicate members.
    cases.push(case(
        "duplicate alg in the protected header",
        Jws,
        format!("{}.{p}.{sig64}", b64u(br#"{"alg":"ES256","alg":"none"}"#)),
        2,
        "the member \"alg\" is given twice",
    ));
    let dup = format!(r#"{{"payload":"{p}","header":{{"alg":"ES256","kid":"a","kid":"b"}},"signature":"{sig64}"}}"#);
    cases.push(case("duplicate kid in the unprotected header", Jws, dup, 2, "the member \"kid\" is given twice"));
    let dup = format!(r#"{{"payload":"{p}","payload":"e30","protected":"{es256}","signature":"{sig64}"}}"#);
    cases.push(case("duplicate payload in a JSON JWS", Jws, dup, 2, "the member \"payload\" is given twice"));
    let dup_claims = t.token(br#"{"alg":"ES256","typ":"JWT"}"#, br#"{"iss":"x","sub":"alice","sub":"mallory"}"#);
    cases.push(case("duplicate sub in the claims (signed)", Jwt, dup_claims, 1, "the member \"sub\" is given twice"));

    // Not what the JSON must be.
    for (what, header) in [("an array", "[{\"alg\":\"ES256\"}]"), ("a string", "\"ES256\""), ("null", "null")] {
        let token = format!("{}.{p}.{sig64}", b64u(header.as_bytes()));
        cases.push(case(
            &format!("protected header that is {what}"),
            Jws,
            token,
            2,
            "the protected header is not a JSON object",
        ));
    }
    let claims = t.token(br#"{"alg":"ES256","typ":"JWT"}"#, b"[1,2,3]");
    cases.push(case(
        "JWT claims that are an array (signed)",
        Jwt,
        claims,
        1,
        "the JWT claims set is not a JSON object",
    ));
    let bad_utf8 = b64u(b"{\"alg\":\"ES256\",\"kid\":\"\xff\xfe\"}");
    cases.push(case(
        "invalid UTF-8 in the protected header",
        Jws,
        format!("{bad_utf8}.{p}.{sig64}"),
        2,
        "the protected header: invalid unicode code point",
    ));
    let mut raw = format!("{es256}.{p}.{sig64}").into_bytes();
    raw.insert(5, 0xff);
    cases.push(case(
        "raw byte 0xff in a compact JWS",
        Jws,
        raw,
        2,
        "a compact JWS is printable ASCII; it holds byte 0xff",
    ));
    let mut raw = format!(r#"{{"payload":"{p}","protected":"{es256}","signature":"{sig64}","x":"#).into_bytes();
    raw.extend_from_slice(b"\"\xc3\x28\"}");
    cases.push(case("invalid UTF-8 in a JSON JWS", Jws, raw, 2, "the JWS: invalid unicode code point"));

    // Base64 that is not base64url without padding.
    let padded = URL_SAFE.encode(br#"{"alg":"ES256","kid":"k"}"#);
    assert!(padded.ends_with('='));
    cases.push(case(
        "protected header with padding",
        Jws,
        format!("{padded}.{p}.{sig64}"),
        2,
        "the protected header is not base64url without padding",
    ));
    let padded_payload = URL_SAFE.encode(b"{}");
    assert_eq!(padded_payload, "e30=");
    cases.push(case(
        "payload with padding",
        Jws,
        format!("{es256}.{padded_payload}.{sig64}"),
        2,
        "the payload is not base64url without padding",
    ));
    cases.push(case(
        "signature with padding",
        Jws,
        format!("{es256}.{p}.{}", URL_SAFE.encode([0u8; 65])),
        2,
        "the signature is not base64url without padding",
    ));
    let std_header = STANDARD_NO_PAD.encode(br#"{"alg":"ES256","kid":"???>>>"}"#);
    assert!(std_header.contains('+') && std_header.contains('/'), "{std_header}");
    cases.push(case(
        "protected header with '+' and '/'",
        Jws,
        format!("{std_header}.{p}.{sig64}"),
        2,
        "the protected header is not base64url without padding",
    ));
    let std_sig = STANDARD_NO_PAD.encode([0xfb; 64]);
    assert!(std_sig.contains('+') && std_sig.contains('/'), "{std_sig}");
    cases.push(case(
        "signature with '+' and '/'",
        Jws,
        format!("{es256}.{p}.{std_sig}"),
        2,
        "the signature is not base64url without padding",
    ));
    let (h, rest) = sound.split_at(8);
    cases.push(case(
        "a space inside a compact JWS",
        Jws,
        format!("{h} {rest}"),
        2,
        "printable ASCII; it holds byte 0x20",
    ));
    cases.push(case(
        "a newline inside a compact JWS",
        Jws,
        format!("{h}\n{rest}"),
        2,
        "printable ASCII; it holds byte 0x0a",
    ));
    let spaced = json!({"payload": p, "protected": format!("{} {}", &es256[..8], &es256[8..]), "signature": sig64});
    cases.push(case(
        "a space inside protected (flattened JSON)",
        Jws,
        spaced.to_string(),
        2,
        "the protected header is not base64url without padding",
    ));

    // Algorithms from the token alone.
    let none = b64u(br#"{"alg":"none"}"#);
    cases.push(case(
        "alg none, no signature",
        Jws,
        format!("{none}.{p}."),
        1,
        "algorithm confusion: alg \"none\" is never accepted",
    ));
    cases.push(case(
        "alg none, with a signature",
        Jws,
        format!("{none}.{p}.{sig64}"),
        1,
        "algorithm confusion: alg \"none\" is never accepted",
    ));
    cases.push(case("alg nOnE", Jws, format!("{}.{p}.", b64u(br#"{"alg":"nOnE"}"#)), 1, "unknown alg \"nOnE\""));
    let none_jwt = format!("{}.{}.", b64u(br#"{"alg":"none","typ":"JWT"}"#), b64u(br#"{"iss":"x"}"#));
    cases.push(case("JWT with alg none", Jwt, none_jwt, 1, "algorithm confusion: alg \"none\" is never accepted"));
    let pem = fs::read(&t.pem).unwrap();
    let hs = format!("{}.{p}.{}", b64u(br#"{"alg":"HS256"}"#), b64u(&pem[..32]));
    cases.push(case("alg HS256 (the public key as an HMAC key)", Jws, hs, 1, "HS256 is an HMAC alg"));

    // JWE and mixed shapes.
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64u(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
        b64u(&[1; 256]),
        b64u(&[2; 12]),
        b64u(b"secret"),
        b64u(&[3; 16])
    );
    cases.push(case("five-part JWE", Jws, jwe.clone(), 2, "five parts: this is a JWE, and JWE is out of scope here"));
    cases.push(case("five-part JWE as a JWT", Jwt, jwe, 2, "five parts: this is a JWE"));
    let one = json!({"protected": es256, "signature": sig64});
    let both = json!({"payload": p, "protected": es256, "signature": sig64, "signatures": [one]});
    cases.push(case(
        "JSON JWS both flattened and general",
        Jws,
        both.to_string(),
        2,
        "either general (signatures) or flattened (signature), not both",
    ));
    let recipients =
        json!({"payload": p, "protected": es256, "signature": sig64, "recipients": [{"encrypted_key": "AAAA"}]});
    cases.push(case(
        "JSON JWS with recipients",
        Jws,
        recipients.to_string(),
        2,
        "\"recipients\": this is a JWE, and JWE is out of scope here",
    ));
    let crit_unprotected =
        json!({"payload": p, "header": {"alg": "ES256", "crit": ["b64"], "b64": false}, "signature": sig64});
    cases.push(case(
        "crit in the unprotected header",
        Jws,
        crit_unprotected.to_string(),
        2,
        "\"crit\" must be in the protected header",
    ));
    let unencoded = t.token(br#"{"alg":"ES256","b64":false,"crit":["b64"]}"#, b"x");
    cases.push(case("JWT with b64 false", Jwt, unencoded, 2, "b64=false is refused"));
    let as_json = json!({"payload": p, "protected": es256, "signature": sig64});
    cases.push(case(
        "JWT in the JSON serialization",
        Jwt,
        as_json.to_string(),
        2,
        "a JWT is a compact JWS (RFC 7519 section 7.2), not JSON",
    ));

    // Hostile keys, given with a sound token.
    let jwk = &t.jwk;
    let key_file = |name: &str, v: &[u8]| s(&t.file(name, v)).to_string();
    let one_key = |name: &str, text: String, says: &str| {
        let f = key_file(&format!("{}.jwk", name.replace(' ', "-")), text.as_bytes());
        case(&format!("JWK: {name}"), Jws, sound.clone(), 2, says).keys(&["--pub", &f])
    };
    let mut set: Vec<Value> = Vec::new();
    for i in 0..100_000 {
        let mut k = jwk.clone();
        k["kid"] = json!(format!("key-{i}"));
        set.push(k);
    }
    let f = key_file("jwks-100000.json", json!({"keys": set}).to_string().as_bytes());
    cases.push(
        case("JWK Set of 100,000 keys (--jwks)", Jws, sound.clone(), 2, "over the limit of 262144 bytes")
            .keys(&["--jwks", &f]),
    );
    let entries = vec!["0"; 100_000].join(",");
    let f = key_file("jwks-100000-small.json", format!(r#"{{"keys":[{entries}]}}"#).as_bytes());
    cases.push(
        case(
            "JWK Set of 100,000 entries within 256 KiB (--jwks)",
            Jws,
            sound.clone(),
            2,
            "a JWK Set holds 1 to 64 keys; this one holds 100000",
        )
        .keys(&["--jwks", &f]),
    );
    let mut padded = jwk.clone();
    padded["kid"] = json!("k".repeat(300 << 10));
    let f = key_file("jwks-300k.json", json!({"keys": [padded]}).to_string().as_bytes());
    cases.push(
        case("JWK Set of 300 KiB (--jwks)", Jws, sound.clone(), 2, "over the limit of 262144 bytes")
            .keys(&["--jwks", &f]),
    );
    let text = jwk.to_string();
    cases.push(one_key(
        "duplicate kty",
        text.replacen('{', r#"{"kty":"RSA","#, 1),
        "the member \"kty\" is given twice",
    ));
    let f = key_file("jwks-dup.json", format!(r#"{{"keys":[{}]}}"#, text.replacen('{', r#"{"x":"AA","#, 1)).as_bytes());
    cases.push(
        case("JWK Set: duplicate x in a key", Jws, sound.clone(), 2, "the member \"x\" is given twice")
            .keys(&["--jwks", &f]),
    );
    let mut private = jwk.clone();
    private["d"] = json!(b64u(&[7; 32]));
    cases.push(one_key("private member d", private.to_string(), "the member \"d\" is private key material"));
    let mut n = vec![0xc5u8; 128];
    n[127] |= 1;
    let rsa = json!({"kty": "RSA", "n": b64u(&n), "e": "AQAB"});
    cases.push(one_key("RSA of 1024 bits", rsa.to_string(), "a 1024-bit RSA key; at least 2048 bits are required"));
    let mut off = jwk.clone();
    let mut y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    y[31] ^= 1;
    off["y"] = json!(b64u(&y));
    cases.push(one_key("EC point off P-256", off.to_string(), "the point is not on P-256"));
    cases.push(one_key(
        "kty oct",
        json!({"kty": "oct", "alg": "HS256"}).to_string(),
        "kty \"oct\" is a secret key: HMAC is never used with public keys",
    ));
    cases.push(one_key(
        "kty oct with k",
        json!({"kty": "oct", "k": b64u(&pem[..32])}).to_string(),
        "the member \"k\" is private key material",
    ));
    cases.push(one_key(
        "nested 10,000 deep",
        format!(r#"{{"kty":"EC","x":{}}}"#, nested(10_000)),
        "nested deeper than 16 levels",
    ));
    // An array does not start with '{': it is read as a PEM or DER key, and refused as one.
    cases.push(one_key("a JSON array of JWKs", format!("[{text}]"), "public key is neither PEM nor DER"));
    cases
}

#[test]
fn hostile_jose_inputs_are_refused_by_rule_within_64_mib() {
    if common::server_pass_repeats_this() {
        return;
    }
    let t = Setup::new();
    // The sound token verifies (through the same helper): the cases below fail for their own
    // reason, not for a broken setup.
    let sound = t.token(br#"{"alg":"ES256"}"#, br#"{"hello":"world"}"#);
    let work = t.dir.path().join("sound");
    fs::create_dir(&work).unwrap();
    let token = t.file("sound.jws", sound.as_bytes());
    let args: Vec<String> = ["--config", s(&t.config), "jws", "verify", "--pub", s(&t.pem), s(&token)]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let m = measure(&work, &args);
    assert_eq!(m.status.code(), Some(0), "{}", m.stderr);
    assert_eq!(m.stdout.trim(), "valid");
    println!("baseline: a sound JWS verifies at a peak of {} KiB (helper {} KiB)", m.maxrss_kib, m.floor_kib);

    let cases = corpus(&t);
    assert!(cases.len() >= 40, "{}", cases.len());
    let broken = t.run_cases(&cases);
    assert!(
        broken.is_empty(),
        "{} of {} hostile cases broke a rule:\n{}",
        broken.len(),
        cases.len(),
        broken.join("\n")
    );
}

/// A compact JWS of 60 MiB, both ways: the bytes in the protected header (refused by its 16 KiB
/// bound), and in the payload (45 MiB decoded: within the default 64 MiB payload limit, signed
/// with 64 zero bytes that do not verify). The token is read once, whole (it is within the
/// limits), and never copied: each stays under the cap plus its own size (it was 313 MiB, five
/// copies, before the payload was borrowed and hashed as a stream).
#[test]
fn sixty_mib_compact_jws_stays_under_the_cap() {
    if common::server_pass_repeats_this() {
        return;
    }
    let t = Setup::new();
    let es256 = b64u(br#"{"alg":"ES256"}"#);
    let sig64 = b64u(&[0u8; 64]);
    let cases = vec![
        case(
            "compact JWS of 60 MiB: the protected header",
            Cmd::Jws,
            format!("{}.e30.{sig64}", "A".repeat(60 * MIB)),
            2,
            "the protected header is",
        ),
        case(
            "compact JWS of 60 MiB: the payload",
            Cmd::Jws,
            format!("{es256}.{}.{sig64}", "A".repeat(60 * MIB)),
            1,
            "is not valid under any trusted key",
        ),
    ];
    let broken = t.run_cases(&cases);
    assert!(broken.is_empty(), "{} of {} cases broke a rule:\n{}", broken.len(), cases.len(), broken.join("\n"));
}

/// The server's peak resident set (VmHWM), KiB.
fn server_hwm_kib(server: &Server) -> i64 {
    let status = fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// The biggest inputs through a server: each refused as a request (400, or 413 for a body over
/// `[service] max_body_mib`), never a 500; the server answers its health check after each.
#[test]
fn the_biggest_hostile_inputs_through_a_server_are_refused_and_it_stays_up() {
    if common::server_pass_repeats_this() {
        return;
    }
    let mut server = Server::start(Some("jose-hostile"), "");
    let pem = {
        let out = run_local(&server.config, &["keys", "public", KEY, "--alg", "ES256"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let jwk: Value = {
        let out = run_local(&server.config, &["keys", "public", KEY, "--alg", "ES256", "--format", "jwk"]);
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let es256 = b64u(br#"{"alg":"ES256"}"#);
    let sig64 = b64u(&[0u8; 64]);
    let with_pem = json!({"public_keys": [{"public_key": pem}]});
    let header_10 = format!(r#"{{"alg":"ES256","x":"{}"}}"#, "a".repeat(10 * MIB));
    let mut set: Vec<Value> = Vec::new();
    for i in 0..100_000 {
        let mut k = jwk.clone();
        k["kid"] = json!(format!("key-{i}"));
        set.push(k);
    }
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "compact JWS of 60 MiB (protected header)",
            json!({"jws": format!("{}.e30.{sig64}", "A".repeat(60 * MIB)), "keys": with_pem}),
            "the protected header is",
        ),
        (
            "protected header of 10 MiB",
            json!({"jws": format!("{}.e30.{sig64}", b64u(header_10.as_bytes())), "keys": with_pem}),
            "the protected header is",
        ),
        (
            "JWK Set of 100,000 keys",
            json!({"jws": format!("{es256}.e30.{sig64}"), "keys": {"jwks": json!({"keys": set}).to_string()}}),
            "at most 262144 are accepted",
        ),
    ];
    println!("server: peak {} KiB at start", server_hwm_kib(&server));
    for (name, body, says) in cases {
        let bytes = serde_json::to_vec(&body).unwrap();
        drop(body);
        let (status, answer) = server.request("POST", "/v1/jws/verify", Some("application/json"), &bytes);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let shown: String = answer.chars().take(200).collect();
        println!("server: {name} ({} bytes): {status} {shown}; peak {} KiB", bytes.len(), server_hwm_kib(&server));
        assert!(status == 400 || status == 413, "{name}: status {status}: {shown}");
        if status == 400 {
            assert!(answer.contains(says), "{name}: {shown} should say {says:?}");
        }
        assert!(server.child.try_wait().unwrap().is_none(), "{name}: the server exited: {}", server.log());
        let (health, _) = server.request("GET", "/v1/health", None, b"");
        assert_eq!(health, 200, "{name}: the server is down after it: {}", server.log());
    }
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
