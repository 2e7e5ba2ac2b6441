//! The `cryptohost` command line: argument definitions, dispatch, and the only place where
//! errors are printed for a person. One file per command family; the work itself (hash then
//! sign, key resolution, auditing) lives in the library, where the server uses it too.
//!
//! Exit codes: 0 success (and `valid`), 1 `invalid` signature, 2 bad input or any error, 141
//! when standard output's reader has gone away (see `outln!`).

/// `println!` for a command's output. A reader that has gone away (`| head`, `| grep -q`)
/// ends the command quietly with the status a SIGPIPE gives (141), never a panic; the process
/// ignores SIGPIPE itself so that a closed socket is an error, not a death.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            crate::cli::stdout_gone();
        }
    }};
}

/// Which provider served, on stderr: what `-q` drops.
macro_rules! served {
    ($($arg:tt)*) => {{
        if !crate::cli::QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($arg)*);
        }
    }};
}

/// `-q`: no "served by" lines.
pub(crate) static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `print!` for a command's output, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if write!(stdout, $($arg)*).and_then(|()| stdout.flush()).is_err() {
            crate::cli::stdout_gone();
        }
    }};
}

mod audit;
mod backend;
mod bundle;
mod components;
mod doctor;
mod dsse;
mod files;
mod generate;
mod jose;
mod keys;
mod render;
pub mod reports;
mod serve;
mod stdio;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use cryptohost::provider::SigFormat;
use cryptohost::{Config, Host, TrustMode};

#[derive(Parser)]
#[command(
    name = "cryptohost",
    version,
    about = "Crypto provider host: sandboxed WebAssembly providers, pinned by sha256, chosen by priority"
)]
struct Cli {
    /// Configuration file. Without it: $CRYPTOHOST_CONFIG, else ./cryptohost.toml, else
    /// $XDG_CONFIG_HOME/cryptohost/cryptohost.toml (~/.config), else
    /// /etc/cryptohost/cryptohost.toml.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Development mode: trust components/manifest.json instead of the pins in the config.
    #[arg(long, global = true)]
    dev: bool,
    /// Load provider components from this directory instead of the config's `component_dir`
    /// (pins still apply).
    #[arg(long, global = true, value_name = "DIR")]
    components: Option<PathBuf>,
    /// Send hash, sign, verify, dsse, jws, jwt, keys, encrypt, decrypt and hsm to a running
    /// `cryptohost serve` on this socket (no config, components or PIN needed here). Without
    /// it, CRYPTOHOST_SOCKET does the same for those commands; the commands that run locally
    /// ignore the variable.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// With --socket: the uid the server's process must run as (checked on every connection;
    /// whatever listens on the socket path is otherwise believed).
    #[arg(long, global = true, env = "CRYPTOHOST_SOCKET_OWNER", value_name = "UID")]
    socket_owner: Option<u32>,
    /// With --socket: how long the server's answer may take, in milliseconds (default 300000).
    #[arg(long, global = true, env = "CRYPTOHOST_SOCKET_TIMEOUT_MS", value_name = "MS")]
    socket_timeout_ms: Option<u64>,
    /// Log more (repeat for debug); `verify -v` also says which provider, key type, algorithm,
    /// signature encoding and digest were used.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Quiet: no "served by" lines on stderr (errors and warnings stay).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Whether this host could serve: the config found, pins against files, the cache, the
    /// audit log, the HSM module, tokens and PIN source (no login unless --login), the
    /// installed kit, the deployment policy, the socket. One line per check; exit 1 if any fails.
    Doctor(DoctorArgs),
    /// List loaded providers: name, component, sha256, priority, capabilities.
    Providers(JsonFlag),
    /// Hash a file (streamed) and print the lowercase hex digest.
    Hash(HashArgs),
    /// Sign a file with a key reference (pkcs11:..., sim:NAME, file:PATH or a PKCS#8 file), a
    /// profile, or a trust-anchor key id.
    Sign(SignArgs),
    /// Verify a signature over a file with an SPKI public key.
    Verify(VerifyArgs),
    /// Generate a key pair inside a provider and write it as PKCS#8 PEM (and SPKI PEM).
    Keygen(KeygenArgs),
    /// Write the digests of components/manifest.json into the config's pins.
    Pin(PinArgs),
    /// Keys held by the HSM or the simulation: list, generate, public.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// AES-GCM encrypt a file with a secret key (output: 12-byte nonce || ciphertext || tag).
    Encrypt(CryptArgs),
    /// AES-GCM decrypt what `encrypt` wrote.
    Decrypt(CryptArgs),
    /// The PKCS#11 backend: connect (load, log in), disconnect, status of each token.
    #[command(subcommand)]
    Hsm(HsmCommand),
    /// DSSE envelopes: sign (one or more keys/profiles), verify (keys or trust anchors).
    #[command(subcommand)]
    Dsse(DsseCommand),
    /// JWS (RFC 7515, RFC 7797): sign (one or more signers, three serializations), verify.
    #[command(subcommand)]
    Jws(jose::JwsCommand),
    /// JWT (RFC 7519): verify with the RFC 8725 rules, sign (issue).
    #[command(subcommand)]
    Jwt(jose::JwtCommand),
    /// Provider component files: inspect.
    #[command(subcommand)]
    Components(ComponentsCommand),
    /// The audit log as a transparency log: key, head, verify, prove, check-proof.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Trust anchors: SPKI fingerprints.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Offline trust bundles (offline-kit.tar.gz): create, verify, install.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Run the long-running host on a Unix socket (HTTP/1.1 + JSON under /v1/) until SIGTERM.
    Serve(ServeArgs),
    /// Shell completions and man pages, for packaging.
    #[command(hide = true, subcommand)]
    Generate(generate::GenerateCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Where to listen: unix:PATH (default: [service] listen in the config).
    #[arg(long, value_name = "unix:PATH")]
    listen: Option<String>,
    /// Once serving, print one JSON line on stdout saying where (the start-up line).
    #[arg(long)]
    json: bool,
    /// Print the OpenAPI document of the routes and exit (docs/openapi.json is this output).
    #[arg(long)]
    openapi: bool,
    /// Log lines as text or as JSON (one object per line, with the request's span).
    #[arg(long, env = "CRYPTOHOST_LOG_FORMAT", default_value = "text", value_name = "text|json")]
    log_format: cryptohost::service::logs::Format,
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Build offline-kit.tar.gz from a directory (trust-anchors.json + public-keys/*.pub).
    Create {
        /// The source directory.
        #[arg(long)]
        from: PathBuf,
        /// The bundle signing key (reference) and its algorithm.
        #[arg(long)]
        key: String,
        #[arg(long)]
        alg: String,
        #[arg(long)]
        out: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Verify a bundle against a bootstrap key given out of band.
    Verify {
        archive: PathBuf,
        #[command(flatten)]
        bootstrap: BootstrapArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Verify, then install the kit (anchors, keys, components) into its own directory, all or
    /// nothing: a new or empty directory, or an installed kit, upgraded in place (the new tree
    /// and the old swap in one step). An expired kit is refused, and so is one older than the
    /// installed kit unless --allow-downgrade.
    Install {
        archive: PathBuf,
        #[command(flatten)]
        bootstrap: BootstrapArgs,
        #[arg(long)]
        into: PathBuf,
        /// The kit's state file: the newest kit installed and every revocation seen, kept
        /// where the serving account cannot write (default: `<into>.state.json`; give the same
        /// path as the config's `[kit] state`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Install a kit older (createdAt) than the newest installed.
        #[arg(long)]
        allow_downgrade: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct BootstrapArgs {
    /// The bundle signing public key, received out of band.
    #[arg(long)]
    bootstrap_pub: Option<PathBuf>,
    /// Or only its fingerprint (sha256:...); the key must be in the bundle.
    #[arg(long)]
    bootstrap_fingerprint: Option<String>,
    /// Algorithm of the bootstrap key (inferred for EC and Ed25519 keys).
    #[arg(long)]
    alg: Option<String>,
}

#[derive(Subcommand)]
enum ComponentsCommand {
    /// Run the conformance suite against a component file before anyone pins it: known
    /// answers for every algorithm it claims (SHA-2, Wycheproof ECDSA/RSA/Ed25519/AES-GCM, RFC
    /// 6979), tampered-signature negatives, wrong-key refusals, malformed input that must not
    /// trap. Prints a pass/fail table; exit 0 only if every check passes.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// As a publisher: copy the configured providers' components into OUT (a kit source's
    /// crypto-plugins/) with a component manifest signed by --key, listing each component's
    /// digest, build (from the manifest.json beside them), world, and the provider's name,
    /// role, priority and key prefix from the config. Every provider needs `role`.
    Sign {
        /// The publisher's signing key (reference; an ES256 or ES384 key: kits are checked
        /// natively with those) and its algorithm.
        #[arg(long)]
        key: String,
        #[arg(long)]
        alg: String,
        /// The publisher's key id, as the kit's trust anchors list it (purpose provider-module).
        #[arg(long)]
        key_id: String,
        /// A new directory to write (normally KIT_SOURCE/crypto-plugins).
        #[arg(long)]
        out: PathBuf,
    },
    /// Describe a component file without running it: digest, world, every import and export,
    /// the build manifest entry beside it (toolchain, build mode); exit 2 if the host would
    /// refuse it (an import other than the host interface, or no world).
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Print `sha256:` + hex of a public key's SPKI DER (the trust-anchor fingerprint).
    Fingerprint {
        public: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DsseCommand {
    /// Sign FILE as a DSSE envelope with every --key / --profile / --key-id, concurrently.
    Sign(DsseSignArgs),
    /// Verify an envelope against --pub keys or an --anchors directory.
    Verify(DsseVerifyArgs),
}

#[derive(Args)]
struct DsseSignArgs {
    /// A key reference to sign with (repeatable; needs --alg).
    #[arg(long)]
    key: Vec<String>,
    /// Algorithm for --key references.
    #[arg(long)]
    alg: Option<String>,
    /// A configured signing profile (repeatable).
    #[arg(long)]
    profile: Vec<String>,
    /// A trust-anchor keyId; the profile with that key_id signs, and the keyId is written.
    #[arg(long)]
    key_id: Vec<String>,
    /// The payload type, e.g. application/vnd.in-toto+json.
    #[arg(long)]
    payload_type: String,
    /// ECDSA encoding: der (in-toto/sigstore tooling) or p1363.
    #[arg(long, default_value = "der")]
    sig_format: SigFormat,
    /// Keep the signatures that worked when a profile fails (reported on stderr).
    #[arg(long)]
    allow_partial: bool,
    /// Write the envelope here (default: stdout; - is stdout too).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The input file, or - for standard input (read in one pass, bounded like a file).
    file: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DsseVerifyArgs {
    envelope: PathBuf,
    /// Trust exactly these public keys (repeatable): PATH, or ALG:PATH for an RSA key
    /// (e.g. PS256:rsa.pub). One key counts once however often it is given.
    #[arg(long = "pub", value_name = "[ALG:]PATH")]
    public: Vec<String>,
    /// Algorithm of RSA --pub keys given without ALG: (EC, Ed25519 and ML-DSA keys always use their own).
    #[arg(long)]
    alg: Option<String>,
    /// Trust the anchors of an installed bundle directory (trust-anchors.json + public-keys/).
    /// Without --pub and --anchors: the config's `[trust] anchors` (through a server: the
    /// server's).
    #[arg(long)]
    anchors: Option<PathBuf>,
    /// Verification time (RFC 3339), default now.
    #[arg(long)]
    at: Option<String>,
    /// Only anchors with this purpose.
    #[arg(long)]
    purpose: Option<String>,
    /// Distinct trusted keys that must have signed.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// Write exactly the verified payload bytes here (only when valid).
    #[arg(long)]
    payload_out: Option<PathBuf>,
    #[arg(long, default_value = "der")]
    sig_format: SigFormat,
    /// Largest payload accepted, in MiB (default from config, 64; at most 1024).
    #[arg(long)]
    max_payload_mib: Option<u64>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Every private and secret key on the configured HSM tokens.
    List(JsonFlag),
    /// Generate a key pair (or an AES key with --alg A128GCM/A256GCM) under a key reference.
    Generate {
        /// pkcs11:token=...;object=LABEL or sim:NAME
        reference: String,
        #[arg(long)]
        alg: String,
        #[arg(long, default_value_t = 3072)]
        rsa_bits: u32,
        /// Also write the SPKI PEM public key here.
        #[arg(long = "pub")]
        public: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The JWK Set of the profiles `[jose] publish` lists (what `GET /v1/jwks` serves).
    Jwks,
    /// A key's versions: state (staged, current, retired, destroyed), age, fingerprint.
    Versions {
        /// The key, without x-version.
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// A PKCS#10 certificate request (PEM) signed by the key, for the site's CA: HSM keys too.
    Csr {
        reference: String,
        /// The version (x-version) to certify: only a current version signs.
        #[arg(long)]
        version: Option<u32>,
        #[arg(long)]
        alg: String,
        /// RFC 4514, most specific first: "CN=signer.example,O=Example Org,C=DE".
        #[arg(long)]
        subject: String,
        /// A subjectAltName: dns:NAME (or a bare name), ip:ADDR, email:ADDR, uri:URI. Repeatable.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Where to write it (created new), or - for stdout (the default).
        #[arg(long, default_value = "-")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Make the key's next version, staged: it is used for nothing until promoted. Publish
    /// its fingerprint (anchors listing both versions under one key id) before promoting it.
    Rotate {
        reference: String,
        /// The new version's algorithm (default: the current version's; required the first time).
        #[arg(long)]
        alg: Option<String>,
        #[arg(long, default_value_t = 3072)]
        rsa_bits: u32,
        /// Also write the new version's SPKI PEM public key here.
        #[arg(long = "pub")]
        public: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Make a version current; the current one is retired (it still verifies and decrypts).
    /// Refused while no configured trust anchor lists the version's fingerprint.
    Promote {
        reference: String,
        #[arg(long)]
        version: u32,
        /// Promote although no anchor lists it (audited).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Retire a staged version (the current one retires when another is promoted).
    Retire {
        reference: String,
        #[arg(long)]
        version: u32,
        #[arg(long)]
        json: bool,
    },
    /// Destroy a version that is not current: its objects on the token are destroyed. Cannot
    /// be undone.
    Destroy {
        reference: String,
        #[arg(long)]
        version: u32,
        /// Confirm: without it nothing is destroyed.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print the public key of a key reference: SPKI PEM, or a JWK (RFC 7517) with --format jwk.
    Public {
        reference: String,
        /// The version (x-version): retired and staged versions have public keys too.
        #[arg(long)]
        version: Option<u32>,
        /// The algorithm the key is for (selects the key type of simulation keys).
        #[arg(long, default_value = "ES256")]
        alg: String,
        #[arg(long, default_value_t = 3072)]
        rsa_bits: u32,
        /// pem or jwk (kid: the RFC 7638 thumbprint; use: sig; alg when the key decides it).
        #[arg(long, default_value = "pem", value_parser = ["pem", "jwk"])]
        format: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HsmCommand {
    /// Load the module, find the tokens, log in; report each token.
    Connect(JsonFlag),
    /// Log out, close every session, finalize the module.
    Disconnect(JsonFlag),
    /// Report each configured token: present, healthy, logged in, sessions. Never logs in (it
    /// loads the module and finds the tokens if needed).
    Status(JsonFlag),
}

#[derive(Args)]
struct CryptArgs {
    /// A secret key reference (pkcs11:...;object=LABEL or sim:NAME).
    #[arg(long)]
    key: String,
    /// The version of --key (its x-version). Decrypt needs none: the output names it.
    #[arg(long)]
    version: Option<u32>,
    /// A128GCM or A256GCM.
    #[arg(long, default_value = "A256GCM")]
    alg: String,
    /// Additional authenticated data (text).
    #[arg(long, default_value = "")]
    aad: String,
    /// Where to write the output (created new, never overwritten), or - for stdout.
    #[arg(long)]
    out: PathBuf,
    /// The input file, or - for standard input (read in one pass, bounded like a file).
    file: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Also log in to every HSM token with the configured PIN (a wrong PIN costs a try).
    #[arg(long)]
    login: bool,
}

#[derive(Args)]
struct JsonFlag {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct HashArgs {
    /// SHA-256, SHA-384 or SHA-512 (SHA256 etc. also accepted).
    #[arg(long)]
    alg: String,
    /// The input file, or - for standard input (read in one pass, bounded like a file).
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SignArgs {
    /// ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA, ML-DSA-44,
    /// ML-DSA-65, ML-DSA-87 (needed with --key; a profile carries its own).
    #[arg(long)]
    alg: Option<String>,
    /// Key reference: pkcs11:token=...;object=..., sim:NAME, file:PATH, or a PKCS#8 file path.
    #[arg(long, conflicts_with_all = ["profile", "key_id"])]
    key: Option<String>,
    /// The version of --key to use (its x-version): only a current version signs.
    #[arg(long, requires = "key")]
    version: Option<u32>,
    /// Or a configured signing profile.
    #[arg(long, conflicts_with = "key_id")]
    profile: Option<String>,
    /// Or a trust-anchor key id: the profile with that key_id signs.
    #[arg(long)]
    key_id: Option<String>,
    /// Write the binary signature here, or - for the raw bytes on stdout (default: base64 on
    /// stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// ECDSA signature encoding: der (OpenSSL, cosign) or p1363 (JWS r||s).
    #[arg(long, default_value = "der")]
    sig_format: SigFormat,
    /// The input file, or - for standard input (read in one pass, bounded like a file).
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// The algorithm; optional with a --pub key whose type decides it (EC, Ed25519, ML-DSA).
    #[arg(long)]
    alg: Option<String>,
    /// SPKI public key, PEM or DER.
    #[arg(long = "pub", required_unless_present = "key_id", conflicts_with = "key_id")]
    public: Option<PathBuf>,
    /// Or a trust anchor's key id, from the config's `[trust] anchors` (through a server: the
    /// server's); valid now and for --alg. Several keys under one id: any one of them.
    #[arg(long)]
    key_id: Option<String>,
    /// The signature, binary or base64.
    #[arg(long)]
    sig: PathBuf,
    /// ECDSA signature encoding: der or p1363.
    #[arg(long, default_value = "der")]
    sig_format: SigFormat,
    /// The input file, or - for standard input (read in one pass, bounded like a file).
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct KeygenArgs {
    #[arg(long)]
    alg: String,
    /// Where to write the PKCS#8 PEM private key (created with mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Also write the public key here.
    #[arg(long = "pub")]
    public: Option<PathBuf>,
    /// The --pub file's format: pem (SPKI) or jwk (RFC 7517; kid its RFC 7638 thumbprint).
    #[arg(long, default_value = "pem", value_parser = ["pem", "jwk"])]
    pub_format: String,
    /// RSA modulus size for RS*/PS*.
    #[arg(long, default_value_t = 3072)]
    rsa_bits: u32,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PinArgs {
    /// The manifest of the build you reviewed (relative to the config file). Every configured
    /// component file is hashed and must match it.
    #[arg(long, default_value = "components/manifest.json")]
    manifest: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Exit code 2 with a message: bad input or a failure.
struct Failure(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.into())
    }
}

type Outcome = Result<ExitCode, Failure>;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    match &cli.command {
        // The server logs through `tracing`: a span per request, text or JSON.
        Command::Serve(a) => {
            if let Err(e) = cryptohost::service::logs::init(cli.verbose, a.log_format) {
                eprintln!("cryptohost: error: cannot start logging: {e}");
                return ExitCode::from(2);
            }
        }
        _ => serve::init_logging(cli.verbose),
    }
    match run(&cli) {
        Ok(code) => code,
        Err(Failure(e)) => {
            eprintln!("cryptohost: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn open_registry(cli: &Cli) -> Result<Host> {
    Ok(open(cli)?.1)
}

impl Cli {
    /// The configuration file: `--config`, or the first of the default places that exists.
    fn config_path(&self) -> Result<PathBuf> {
        Ok(cryptohost::config::locate::Environment::current(self.config.clone()).locate()?)
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = Config::load(&cli.config_path()?)?;
    if let Some(dir) = &cli.components {
        config.component_dir = dir.clone();
    }
    Ok(config)
}

fn trust_mode(cli: &Cli, config: &Config) -> TrustMode {
    if cli.dev {
        eprintln!(
            "cryptohost: WARNING: --dev: component pins are NOT enforced; trusting {} as built. Never use this in production.",
            config.component_dir.join("manifest.json").display()
        );
        TrustMode::DevManifest
    } else {
        TrustMode::Pins
    }
}

fn open(cli: &Cli) -> Result<(Config, Host)> {
    let config = load_config(cli)?;
    let mode = trust_mode(cli, &config);
    let registry = cryptohost::load::open(&config, mode)?;
    Ok((config, registry))
}

fn parse_ref(text: &str) -> Result<cryptohost::keys::KeyRef> {
    // A PIN typed into a pkcs11: URI is refused, and never echoed back (the error is redacted).
    Ok(cryptohost::keys::KeyRef::parse(text)?)
}

impl Cli {
    /// The server to send a servable command to: `--socket`, else `CRYPTOHOST_SOCKET`.
    fn server_socket(&self) -> Option<PathBuf> {
        self.socket
            .clone()
            .or_else(|| std::env::var_os("CRYPTOHOST_SOCKET").filter(|v| !v.is_empty()).map(PathBuf::from))
    }
}

/// Where a servable command runs: through the server with `--socket`, else here.
fn backend(cli: &Cli) -> Result<backend::Backend> {
    Ok(match &cli.server_socket() {
        Some(socket) => {
            let mut client = cryptohost_client::Client::new(socket);
            if let Some(uid) = cli.socket_owner {
                client = client.require_owner(uid);
            }
            if let Some(ms) = cli.socket_timeout_ms {
                client = client.timeout(std::time::Duration::from_millis(ms.max(1)));
            }
            backend::Backend::Remote(client)
        }
        None => {
            let (config, host) = open(cli)?;
            backend::Backend::Local(Box::new(backend::Local::new(config, host)))
        }
    })
}

fn run(cli: &Cli) -> Outcome {
    let local_only = matches!(
        cli.command,
        Command::Providers(_)
            | Command::Doctor(_)
            | Command::Generate(_)
            | Command::Keygen(_)
            | Command::Pin(_)
            | Command::Trust(_)
            | Command::Bundle(_)
            | Command::Components(_)
    );
    // Only an explicit --socket conflicts: an exported CRYPTOHOST_SOCKET is for the commands
    // that can go through a server, and these run here whatever it says.
    if cli.socket.is_some() && local_only {
        return Err(anyhow::anyhow!(
            "--socket: this command runs locally (providers, keygen, pin, trust, bundle, components): drop --socket"
        )
        .into());
    }
    match &cli.command {
        Command::Doctor(a) => doctor::doctor(cli, a.json, a.login),
        Command::Generate(g) => generate::generate(g),
        Command::Providers(a) => keys::providers(cli, a.json),
        Command::Hash(a) => files::hash(&backend(cli)?, a),
        Command::Sign(a) => files::sign(&backend(cli)?, a),
        Command::Verify(a) => files::verify(&backend(cli)?, a, cli.verbose > 0),
        Command::Keygen(a) => files::keygen(cli, a),
        Command::Pin(a) => keys::pin(cli, a),
        Command::Keys(k) => keys::keys(&backend(cli)?, k),
        Command::Encrypt(a) => keys::crypt(&backend(cli)?, a, true),
        Command::Decrypt(a) => keys::crypt(&backend(cli)?, a, false),
        Command::Hsm(h) => keys::hsm(&backend(cli)?, h),
        Command::Dsse(DsseCommand::Sign(a)) => dsse::sign(&backend(cli)?, a),
        Command::Dsse(DsseCommand::Verify(a)) => dsse::verify(&backend(cli)?, a),
        Command::Jws(c) => jose::jws(&backend(cli)?, c),
        Command::Jwt(c) => jose::jwt(&backend(cli)?, c),
        Command::Bundle(b) => bundle::bundle(cli, b),
        Command::Trust(TrustCommand::Fingerprint { public, json }) => dsse::fingerprint(cli, public, *json),
        Command::Components(ComponentsCommand::Inspect { file, json }) => components::inspect(file, *json),
        Command::Components(ComponentsCommand::Check { file, json }) => components::check(file, *json),
        Command::Components(ComponentsCommand::Sign { key, alg, key_id, out }) => {
            components::sign(cli, key, alg, key_id, out)
        }
        Command::Serve(a) => serve::serve(cli, a),
        Command::Audit(c) => audit::audit(cli, c),
    }
}

/// Standard output is closed (its reader is gone): stop now, as a SIGPIPE'd tool would.
pub(crate) fn stdout_gone() -> ! {
    std::process::exit(141)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
