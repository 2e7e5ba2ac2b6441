# cryptohost: setup, build-guests, build, demo, test, bench.
# Every recipe works on a fresh machine of this kind (Debian, rustup host toolchain, root).

set shell := ["bash", "-euo", "pipefail", "-c"]

# Apt packages: Debian's rustc-web + library source + rust-lld build the wasm guests (the rustup
# toolchain here has no wasm target); softhsm2/opensc give a real PKCS#11 module; openssl is
# the interop peer in tests; rust-web-clippy lints the guests; systemd brings
# systemd-socket-activate for the socket-activation test and systemd-analyze for the installed
# units; dpkg-dev (dpkg-shlibdeps) builds the .deb the tests check; golang-go and
# golang-golang-x-mod-dev are Go's sumdb/note and sumdb/tlog, the independent implementation
# the audit log's checkpoints, trees and proofs are checked against (offline, GO111MODULE=off).
apt_packages := "rustc-web rust-web-src rust-web-clippy lld-22 softhsm2 opensc openssl jq systemd dpkg-dev golang-go golang-golang-x-mod-dev"
guest_target := "wasm32-unknown-unknown"
guest_target_dir := justfile_directory() / "guests/target"

# The guests' codegen flags, the same in every recipe that builds or lints a guest:
# - +wide-arithmetic: a 64x64->128 multiply is one instruction (EC and RSA in the sandbox).
# - unrolling: wasmtime checks the call deadline (the epoch) at every loop header, so a bignum
#   loop of a few instructions pays for a check on every limb. These let LLVM unroll loops with a
#   run-time trip count, also those with a second exit (a bounds check), leftovers included:
#   RSA signing in crypto-bigint runs about 30% fewer instructions in the sandbox, for guests
#   about a fifth larger. Trip counts are limb counts, public, so no branch on secret data is
#   added.
# - inlining: wasm builds do not inline crypto-bigint's conditional subtraction into its
#   Montgomery loops (x86 builds do); a higher inline threshold does, and then the larger unroll
#   threshold pays: RSA signing another 6% fewer instructions, P-256 signing 9%, for guests
#   about a sixth larger again (one-shot commands copy and hash a larger precompiled artifact:
#   sign 4% slower, verify 1%).
# - +simd128: wasm's 128-bit SIMD, which wasmtime runs by default; LLVM vectorizes the limb
#   loops that x86 builds vectorize with SSE2 (crypto-bigint's constant-time table selects):
#   RSA signing 2% fewer instructions and 3% less time in the sandbox.
# These are LLVM options, not stable rustc ones: re-measure (`just bench`) when the guest
# toolchain changes.
guest_rustflags := "-C target-feature=+wide-arithmetic,+simd128 -C llvm-args=-unroll-partial-threshold=300 -C llvm-args=-inline-threshold=400 -C llvm-args=-unroll-runtime-multi-exit -C llvm-args=-unroll-remainder"

# Flags for the fast-verification guest alone, given to the compile of its own crate: with LTO
# that is where all of its code is generated (its dependencies are compiled the same as every
# other guest's). `-disable-lsr` keeps LLVM's loop strength reduction from rewriting array
# addresses into running pointers whose constant offsets wasm cannot fold into its loads: our
# RSA Montgomery loops then run 6% fewer instructions in the sandbox (P-256 verification 0.5%),
# while crypto-bigint's signing loops run 5% more, which is why it is not a flag for every guest.
fastverify_final_flags := "-C llvm-args=-disable-lsr"

default:
    @just --list

# Install what the build and tests need (a quick no-op when everything is there).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for p in {{apt_packages}}; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "ok installed" >/dev/null || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "setup: all packages present"
    else
        echo "setup: installing ${missing[*]}"
        sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        $sudo_cmd apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
    fi
    # securesystemslib (>= 1.0, with its DSSE module) for the DSSE interop test, from PyPI.
    if ! python3 -c "import securesystemslib.dsse, cryptography" 2>/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check "securesystemslib[crypto]>=1.0" \
            || echo "setup: WARNING: could not install securesystemslib; the DSSE interop test will say it did not run"
    fi

# Build every guest crate to a component in components/ and write components/manifest.json.
build-guests out="components" target_dir=guest_target_dir:
    #!/usr/bin/env bash
    set -euo pipefail
    cd guests
    # Paths must not leak into the modules, or the same source would give different bytes
    # in a different checkout or CARGO_HOME.
    remap="--remap-path-prefix=$PWD=/guests --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
    flags="{{guest_rustflags}} $remap"
    if rustup target list --installed 2>/dev/null | grep -x {{guest_target}} >/dev/null; then
        mode="rustup target {{guest_target}}"
        rustc_bin="$(rustup which rustc)"
        guest_cargo() { RUSTFLAGS="$flags" cargo "$@"; }
        build_std=()
    else
        mode="Debian rustc-web with -Zbuild-std"
        rustc_bin=/usr/bin/rustc
        [ -x "$rustc_bin" ] || { echo "build-guests: no rustup wasm target and no /usr/bin/rustc; run 'just setup'" >&2; exit 1; }
        guest_cargo() { RUSTC="$rustc_bin" RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" /usr/bin/cargo "$@"; }
        build_std=(-Zbuild-std=std,panic_abort)
    fi
    echo "build-guests: using $mode ($($rustc_bin --version))"
    common=(--release --target {{guest_target}} --target-dir "{{target_dir}}" "${build_std[@]}")
    guest_cargo build "${common[@]}" --workspace --exclude fast-verification
    guest_cargo rustc "${common[@]}" -p fast-verification -- {{fastverify_final_flags}}
    cd ..
    # Every guest crate that builds a component (crate-type cdylib), no hard-coded list.
    modules=()
    for manifest in guests/*/Cargo.toml; do
        grep -q '"cdylib"' "$manifest" || continue
        name="$(sed -n '/^name = "/{s/^name = "\(.*\)"/\1/p;q}' "$manifest")"
        modules+=("{{target_dir}}/{{guest_target}}/release/${name//-/_}.wasm")
    done
    # --merge: a provider built out of tree (just build-provider) into the same directory keeps
    # its entry, as long as it was built with this toolchain.
    cargo run --quiet --release -p guest-pack -- --wit wit --out "{{out}}" --merge \
        --toolchain "$($rustc_bin --version)" --build-mode "$mode" "${modules[@]}"

# Create a provider from the template (--world verifier|signer|keystore): guests/NAME, or with
# --out DIR a standalone crate DIR/NAME of its own (build it with `just build-provider`).
new-provider name *args:
    bash scripts/new-provider.sh {{name}} {{args}}

# Build a standalone provider crate exactly as build-guests builds ours (same compiler, flags
# and profile), pack it into OUT and merge its entry into OUT/manifest.json (the others kept).
build-provider crate out="components" target_dir=guest_target_dir:
    #!/usr/bin/env bash
    set -euo pipefail
    # The same flags as build-guests, so the shared target directory's dependencies are reused
    # (a different remap would rebuild them all).
    remap="--remap-path-prefix={{justfile_directory()}}/guests=/guests --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
    flags="{{guest_rustflags}} $remap"
    name="$(sed -n '/^name = "/{s/^name = "\(.*\)"/\1/p;q}' "{{crate}}/Cargo.toml")"
    [ -n "$name" ] || { echo "build-provider: {{crate}}/Cargo.toml names no package" >&2; exit 2; }
    cd "{{crate}}"
    if rustup target list --installed 2>/dev/null | grep -x {{guest_target}} >/dev/null; then
        mode="rustup target {{guest_target}}"; rustc_bin="$(rustup which rustc)"
        RUSTFLAGS="$flags" cargo build --release --target {{guest_target}} --target-dir "{{target_dir}}"
    else
        mode="Debian rustc-web with -Zbuild-std"; rustc_bin=/usr/bin/rustc
        RUSTC="$rustc_bin" RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" /usr/bin/cargo build --release \
            --target {{guest_target}} --target-dir "{{target_dir}}" -Zbuild-std=std,panic_abort
    fi
    cd "{{justfile_directory()}}"
    cargo run --quiet --release -p guest-pack -- --wit "{{crate}}/wit" --out "{{out}}" --merge \
        --toolchain "$($rustc_bin --version)" --build-mode "$mode" \
        "{{target_dir}}/{{guest_target}}/release/${name//-/_}.wasm"

# The provider template, for each world, builds (in the guests' shared target directory),
# packs, and passes `components inspect` and `components check` unchanged.
check-template: build-all
    #!/usr/bin/env bash
    set -euo pipefail
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/repo"
    cp -r wit tools scripts "$tmp/repo/"
    mkdir "$tmp/repo/guests"
    (cd guests && cp -r Cargo.toml Cargo.lock provider-core fastverify "$tmp/repo/guests/")
    sed -i 's|^members = .*|members = ["fastverify", "provider-core"]|' "$tmp/repo/guests/Cargo.toml"
    for world in verifier signer keystore; do
        bash "$tmp/repo/scripts/new-provider.sh" "template-$world" --world "$world"
    done
    # The same RUSTFLAGS as build-guests (remapping the real guests directory), so the shared
    # target directory's dependencies are reused, not rebuilt.
    remap="--remap-path-prefix={{justfile_directory()}}/guests=/guests --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
    flags="{{guest_rustflags}} $remap"
    cd "$tmp/repo/guests"
    if rustup target list --installed 2>/dev/null | grep -x {{guest_target}} >/dev/null; then
        RUSTFLAGS="$flags" cargo build --quiet --release --target {{guest_target}} --target-dir "{{guest_target_dir}}" --workspace
        toolchain="$(rustc --version)"
    else
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" /usr/bin/cargo build --quiet --release \
            --target {{guest_target}} --target-dir "{{guest_target_dir}}" --workspace -Zbuild-std=std,panic_abort
        toolchain="$(/usr/bin/rustc --version)"
    fi
    cd "{{justfile_directory()}}"
    cargo run --quiet --release -p guest-pack -- --wit wit --out "$tmp/out" --toolchain "$toolchain" \
        --build-mode template-check "{{guest_target_dir}}/{{guest_target}}/release/template_verifier.wasm" \
        "{{guest_target_dir}}/{{guest_target}}/release/template_signer.wasm" \
        "{{guest_target_dir}}/{{guest_target}}/release/template_keystore.wasm"
    for world in verifier signer keystore; do
        target/release/cryptohost components inspect "$tmp/out/template-$world.wasm" | grep "world      $world" >/dev/null
        target/release/cryptohost components check "$tmp/out/template-$world.wasm"
    done
    # Out of tree: a standalone crate, built by build-provider into a copy of our components,
    # whose manifest then lists ours and it (nothing merged by hand), so `pin` takes it.
    bash scripts/new-provider.sh thirdparty --world signer --out "$tmp/ext"
    mkdir "$tmp/merged" && cp components/*.wasm components/manifest.json "$tmp/merged/"
    just build-provider "$tmp/ext/thirdparty" "$tmp/merged"
    jq -e '.components | has("thirdparty") and has("offline-verification") and has("simulation")' \
        "$tmp/merged/manifest.json" >/dev/null
    target/release/cryptohost components check "$tmp/merged/thirdparty.wasm"
    sha="$(jq -r '.components.thirdparty.sha256' "$tmp/merged/manifest.json")"
    printf 'component_dir = "merged"\n[[provider]]\nname = "thirdparty"\ncomponent = "thirdparty.wasm"\npriority = 10\nrole = "signer"\n' > "$tmp/cryptohost.toml"
    target/release/cryptohost --config "$tmp/cryptohost.toml" pin --manifest merged/manifest.json >/dev/null
    grep "$sha" "$tmp/cryptohost.toml" >/dev/null
    target/release/cryptohost --config "$tmp/cryptohost.toml" providers >/dev/null
    echo "check-template: the template builds and passes components check for every world, in tree and out of tree"

# Build the guests a second time in a fresh target directory and require identical bytes.
check-reproducible:
    #!/usr/bin/env bash
    set -euo pipefail
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    just build-guests "$tmp/components" "$tmp/target"
    if diff <(jq -S .components components/manifest.json) <(jq -S .components "$tmp/components/manifest.json"); then
        echo "check-reproducible: two builds gave byte-identical components"
    else
        echo "check-reproducible: the second build differs (see above)" >&2; exit 1
    fi

# Create a SoftHSM2 token with the example keys (see examples/softhsm.toml).
softhsm-init: setup build
    bash scripts/softhsm-init.sh

# Build the host binary (release: Cranelift is slow unoptimised).
build:
    cargo build --release -p cryptohost

# The whole workspace with its tests and benches, as `just test` builds it (the same features,
# so one wasmtime build serves the binary and the tests).
build-all:
    cargo build --release --workspace --all-targets

# Write the digests of the components just built (components/manifest.json) into cryptohost.toml.
# Run this only after reviewing the build: it is the moment you decide to trust these bytes.
pin config="cryptohost.toml":
    cargo run --quiet --release -p cryptohost -- --config {{config}} pin --manifest components/manifest.json
    cargo run --quiet --release -p cryptohost -- --config examples/softhsm.toml pin --manifest ../components/manifest.json

# The main job: build guests and host, then sign and verify a real file.
demo: setup build-guests build
    bash scripts/demo.sh

# Formatting and clippy (default lints, warnings are errors) for the host and the guests.
lint: setup
    #!/usr/bin/env bash
    set -euo pipefail
    cargo fmt --all --check
    (cd guests && cargo fmt --all --check)
    cargo clippy --release --workspace --all-targets -- -D warnings
    cd guests
    flags="{{guest_rustflags}}"
    if rustup target list --installed 2>/dev/null | grep -x {{guest_target}} >/dev/null; then
        RUSTFLAGS="$flags" cargo clippy --release --target {{guest_target}} --target-dir "{{guest_target_dir}}" \
            --workspace -- -D warnings
    else
        # Debian's clippy for Debian's rustc (rust-web-clippy), first on PATH for this command only.
        PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" /usr/bin/cargo-clippy clippy \
            --release --target {{guest_target}} --target-dir "{{guest_target_dir}}" --workspace \
            -Zbuild-std=std,panic_abort -- -D warnings
    fi
    echo "lint: formatted, and clippy is clean for the host and the guests"

# The peers of tests/all/jose_interop.rs under target/interop, each at a pinned version
# (tests/interop/jose/setup.sh): Python's jwcrypto from the PyPI registry into a venv, Node's
# jose from the npm registry. A no-op when they are there.
jose-peers:
    bash tests/interop/jose/setup.sh

# Every test: lint, unit, integration (real components, SoftHSM2, openssl), reproducible guests.
test: setup build-guests lint jose-peers
    # --all-targets builds the binary with the same dependency features as the tests, so
    # wasmtime is compiled once for both (building -p cryptohost alone would compile it again).
    cargo build --release --workspace --all-targets
    cargo test --release --workspace -- --show-output
    # The guests' verification arithmetic (fastverify), natively: Wycheproof, differential
    # checks against p256 and rsa, and random inputs. (Through the component: tests/all.)
    (cd guests && cargo test --release -p fastverify --target-dir "{{justfile_directory()}}/target/guests-native")
    # The CLI suites once more, every command a client can send going through a real server
    # (and, where it can run twice, also locally: the two answers must be the same).
    # --workspace, as above: `-p cryptohost-tests` alone unifies features differently and
    # would compile the host and wasmtime a second time (3 minutes here).
    CRYPTOHOST_TEST_MODE=server cargo test --release --workspace --test all --test hsm
    just check-template
    just check-reproducible

# Fuzz each target (all, or those named) for SECONDS: cargo-fuzz on the nightly toolchain,
# without a sanitizer (the code is safe Rust; what is sought is a panic, a guest trap, a 500,
# a hang or unbounded memory). New inputs go to fuzz/target/corpus/<target>, a crash to
# fuzz/artifacts/<target>/; the committed corpus in fuzz/corpus/ is replayed by `just test`.
fuzz seconds="60" *targets="": build-guests
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install --locked --version 0.13.2 cargo-fuzz
    cd fuzz
    targets="{{targets}}"
    [ -n "$targets" ] || targets="$(cargo +nightly fuzz list)"
    cargo +nightly fuzz build -s none
    for t in $targets; do
        mkdir -p "target/corpus/$t"
        echo "fuzz: $t for {{seconds}} s"
        cargo +nightly fuzz run -s none "$t" "target/corpus/$t" "corpus/$t" -- \
            -max_total_time={{seconds}} -rss_limit_mb=4096 -timeout=30 -print_final_stats=1
    done

# Regenerate docs/cli-json/ (the JSON Schema of every command's --json output) from the binary's
# own output types (a test checks they agree, and validates each command's output against them).
cli-json: build
    mkdir -p docs/cli-json
    target/release/cryptohost generate json-schemas docs/cli-json > /dev/null

# Regenerate docs/openapi.json from the server's routes (a test checks they agree).
openapi: build
    mkdir -p docs
    target/release/cryptohost serve --openapi > docs/openapi.json

# Benchmarks, side by side in one run each: native RustCrypto vs the guest through wasmtime vs
# the registry path; SoftHSM2 through cryptoki directly vs cryptohost's pool vs the simulation;
# DSSE verify in full vs the provider work alone; ML-DSA-65 natively vs the pqc guest.
bench: setup build-guests
    cargo bench -p cryptohost --bench providers
    cargo bench -p cryptohost --bench hsm
    cargo bench -p cryptohost --bench dsse
    cargo bench -p cryptohost --bench pqc
    cargo bench -p cryptohost --bench jose

# Every benchmark above, OpenSSL's `openssl speed`, and whole processes paired with OpenSSL's by
# hyperfine (one-shot verify/hash/sign, cold and warm cache, 1 GiB hashed, through `serve`),
# written to docs/performance.md with the machine, the date, medians, spreads and ratios.
bench-report: setup build-guests build-all
    # Versions pinned to ones that build with the machine's stable rustc (hyperfine 2 needs a newer one).
    command -v hyperfine >/dev/null || cargo install --locked --version 1.20.0 hyperfine
    python3 scripts/bench-report.py

# The server beside the same operations in-process: 1, 2 and 8 clients, p50/p99, ratios.
bench-service: setup build-guests
    cargo bench -p cryptohost --bench service

# --- Installing and packaging: scripts/install.sh, scripts/package.sh, scripts/package-test.sh ---

# Where `just install` and `just uninstall` put things: `just PREFIX=/usr install`, or from the
# environment (`PREFIX=/usr just install`). DESTDIR stages the tree into a directory, with the
# paths inside the config and units still the real ones (the package is made that way).
# LOCALSTATEDIR (/var) and RUNSTATEDIR (/run) are read from the environment by the script.
PREFIX := env("PREFIX", "/usr/local")
SYSCONFDIR := env("SYSCONFDIR", "/etc")
DESTDIR := env("DESTDIR", "")
# What only the package recipes need, installed by them rather than by `just setup`:
# dpkg-shlibdeps (dpkg-dev) for Depends, lintian to check the .deb, debootstrap for the chroot.
package_apt_packages := "dpkg-dev lintian"
package_test_apt_packages := "debootstrap"

# The binary, the components and their manifest, a config pinned to exactly those components,
# the systemd units, completions and man pages (made by the binary itself), and a record of
# every file. It builds nothing: run `just build-guests build` first as yourself, then this as
# root if PREFIX needs it (a build run as root leaves root-owned files in target/).
# Install the built cryptohost under PREFIX (config in SYSCONFDIR; see scripts/install.sh).
install:
    PREFIX={{quote(PREFIX)}} SYSCONFDIR={{quote(SYSCONFDIR)}} DESTDIR={{quote(DESTDIR)}} bash scripts/install.sh install

# A file changed since (an edited config) is kept, and said so; the state in /var/lib/cryptohost
# is not touched.
# Remove exactly what `just install` recorded (same PREFIX and DESTDIR), nothing else.
uninstall:
    PREFIX={{quote(PREFIX)}} SYSCONFDIR={{quote(SYSCONFDIR)}} DESTDIR={{quote(DESTDIR)}} bash scripts/install.sh uninstall

# /usr and /etc as `just install PREFIX=/usr` lays them out, the config a conffile, the service's
# account made by postinst, units not enabled; lintian checks the result.
# Build target/debian/cryptohost_VERSION_ARCH.deb with dpkg-deb.
package: build-guests (_apt_install package_apt_packages)
    # The same build as `just test`'s (features unified with the tests): after it this is a
    # no-op, and wasmtime is not compiled a second time for a differently-featured binary.
    cargo build --release --workspace --all-targets
    bash scripts/package.sh

# The chroot is debootstrap's (kept as a tar in target/debian for the next run); the package is
# used from another directory as the service user, then purged, and what is left is listed.
# Install the .deb in a fresh Debian chroot, use it, purge it (root).
package-test: package (_apt_install package_test_apt_packages)
    bash scripts/package-test.sh

# apt-get install what is missing of PACKAGES (as `just setup` does for its own list).
_apt_install packages:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for p in {{packages}}; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "ok installed" >/dev/null || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}"
        sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        $sudo_cmd apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
    fi
