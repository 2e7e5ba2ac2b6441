//! A fresh SoftHSM2 token directory per test, and a registry configured for it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use cryptohost::pkcs11::Pkcs11Provider;
use cryptohost::{Config, Host, TrustMode};

use crate::common::{self, OFFLINE};

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const PIN: &str = "4321";
pub const PIN_VAR: &str = "CRYPTOHOST_TEST_PIN";
/// OpenSC's pkcs11-spy (package opensc-pkcs11, pulled in by opensc): a PKCS#11 module that
/// logs every call to `PKCS11SPY_OUTPUT` and forwards it to the module in `PKCS11SPY`.
pub const SPY: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so";

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time touches the (process-global) PKCS#11 module and the environment.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A token directory with the named tokens initialised, and the environment pointing at it.
pub struct SoftHsm {
    pub dir: tempfile::TempDir,
}

impl SoftHsm {
    /// Must be called with `serial()` held.
    pub fn new(tokens: &[&str]) -> SoftHsm {
        let dir = tempfile::tempdir().unwrap();
        let tokdir = dir.path().join("tokens");
        fs::create_dir(&tokdir).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokdir.display()),
        )
        .unwrap();
        for label in tokens {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label, "--so-pin", "87654321", "--pin", PIN])
                .output()
                .expect("softhsm2-util is installed (just setup)");
            assert!(out.status.success(), "init-token: {}", String::from_utf8_lossy(&out.stderr));
        }
        // SAFETY (of the environment writes): every test that reads these holds `serial()`.
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", &conf);
            std::env::set_var(PIN_VAR, PIN);
        }
        SoftHsm { dir }
    }

    /// A config with offline-verification, the simulation (seeded) and this HSM.
    pub fn config(&self, tokens: &[&str], pool_size: usize, extra_hsm: &str) -> PathBuf {
        let sim = common::P { name: "simulation", file: "simulation.wasm", priority: 50 };
        let path = common::write_config(self.dir.path(), &common::components_dir(), &[OFFLINE, sim], "");
        let mut text = fs::read_to_string(&path).unwrap();
        text = text.replace(
            "name = \"simulation\"\n",
            "name = \"simulation\"\nkey_prefix = \"sim\"\nsettings = { seed = \"test-seed\" }\n",
        );
        let tokens: Vec<String> = tokens.iter().map(|t| format!("{t:?}")).collect();
        text += &format!(
            "[hsm]\nmodule = {MODULE:?}\ntokens = [{}]\npin_env = {PIN_VAR:?}\npool_size = {pool_size}\n{extra_hsm}\n[audit]\npath = \"audit.jsonl\"\n",
            tokens.join(", ")
        );
        fs::write(&path, text).unwrap();
        path
    }

    /// Removes the token `label` while other processes may be using it: its directory is moved
    /// out of the token directory in one rename, so the module sees the token gone at once and
    /// the removal cannot fail halfway on a file another process holds open (`softhsm2-util
    /// --delete-token`, which deletes file by file, could: "Could not delete the directory").
    pub fn remove_token(&self, label: &str) {
        let tokens = self.dir.path().join("tokens");
        let holds = |dir: &Path| {
            fs::read(dir.join("token.object")).is_ok_and(|b| b.windows(label.len()).any(|w| w == label.as_bytes()))
        };
        let found: Vec<PathBuf> =
            fs::read_dir(&tokens).unwrap().flatten().map(|e| e.path()).filter(|d| holds(d)).collect();
        assert_eq!(found.len(), 1, "exactly one token directory holds the label {label:?}: {found:?}");
        fs::rename(&found[0], self.dir.path().join(format!("removed-{label}"))).unwrap();
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// The config of `config`, with pkcs11-spy in front of SoftHSM2 as the module. Returns the
    /// config, the spy's log file, and the environment a `cryptohost` process needs for it.
    pub fn spy_config(&self, tokens: &[&str], pool_size: usize) -> (PathBuf, PathBuf, Vec<(&'static str, String)>) {
        assert!(Path::new(SPY).exists(), "{SPY} missing: install opensc-pkcs11 (just setup)");
        let path = self.config(tokens, pool_size, "");
        let text =
            fs::read_to_string(&path).unwrap().replace(&format!("module = {MODULE:?}"), &format!("module = {SPY:?}"));
        let spied = self.dir.path().join("spied.toml");
        fs::write(&spied, text).unwrap();
        let log = self.dir.path().join("spy.log");
        let env = vec![("PKCS11SPY", MODULE.to_string()), ("PKCS11SPY_OUTPUT", log.display().to_string())];
        (spied, log, env)
    }
}

/// How many times C_Login was called, from a pkcs11-spy log ("7: C_Login" opens each call).
/// (The log also holds the PIN bytes the call passed: never print it.)
pub fn logins_in(spy_log: &Path) -> usize {
    let text = fs::read_to_string(spy_log).unwrap_or_default();
    text.lines()
        .filter(|l| l.split_once(": ").is_some_and(|(n, f)| n.chars().all(|c| c.is_ascii_digit()) && f == "C_Login"))
        .count()
}

/// Loads a registry from a config path.
pub fn registry(config: &Path) -> (Config, Host) {
    let config = Config::load(config).expect("config");
    let registry = cryptohost::load::open(&config, TrustMode::Pins).expect("registry");
    (config, registry)
}

pub fn hsm(registry: &Host) -> Arc<Pkcs11Provider> {
    registry.hsm().expect("hsm configured").clone()
}

/// Generates key pairs directly through cryptoki (not through cryptohost), with whatever
/// attributes a test needs, so cryptohost's checks meet keys it did not make.
pub fn raw_keypair(token_label: &str, label: &str, kind: &str, private_extra: Vec<cryptoki::object::Attribute>) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let ctx = Pkcs11::new(MODULE).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == token_label)
        .expect("token");
    let session = ctx.open_rw_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(PIN.to_string())));
    let (mech, public) = match kind {
        "rsa1024" => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![Attribute::ModulusBits(1024u64.into()), Attribute::PublicExponent(vec![1, 0, 1])],
        ),
        "rsa2048" => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![Attribute::ModulusBits(2048u64.into()), Attribute::PublicExponent(vec![1, 0, 1])],
        ),
        // 256 modulus bytes, 2,041 bits: a byte count would call it 2,048.
        "rsa2041" => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![Attribute::ModulusBits(2041u64.into()), Attribute::PublicExponent(vec![1, 0, 1])],
        ),
        _ => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07])],
        ),
    };
    let mut public = public;
    public.extend([Attribute::Token(true), Attribute::Verify(true), Attribute::Label(label.as_bytes().to_vec())]);
    let mut private =
        vec![Attribute::Token(true), Attribute::Private(true), Attribute::Label(label.as_bytes().to_vec())];
    private.extend(private_extra);
    session.generate_key_pair(&mech, &public, &private).unwrap();
    drop(session);
    // Leave the module initialised: finalizing here would pull it from under the provider.
}

/// Whether an audit log's text shows the test PIN anywhere but inside a digest, a root or a
/// signature (hex or base64 of 32 characters or more, where any 4 digits turn up by chance).
pub fn log_shows_pin(text: &str) -> bool {
    shows_outside_digests(text, PIN, 32)
}

/// Whether `text` shows `secret` anywhere but inside a word (hex or base64) of `digest_len`
/// characters or more: a digest, a signature, a hash in a directory's name, where a few digits
/// turn up by chance.
pub fn shows_outside_digests(text: &str, secret: &str, digest_len: usize) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
        .filter(|word| word.len() < digest_len)
        .any(|word| word.contains(secret))
}
