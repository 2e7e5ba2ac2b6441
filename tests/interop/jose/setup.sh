#!/usr/bin/env bash
# Installs the two JOSE interop peers of tests/all/jose_interop.rs, each at a pinned version,
# under target/interop (nothing system-wide):
#   - Python's jwcrypto, from the PyPI registry, into a venv target/interop/venv
#     (`python3 -m venv`); where venv is unavailable, `pip install --target target/interop/pylib`
#     (the test then runs python3 with PYTHONPATH pointing there);
#   - Node's jose, from the npm registry, into target/interop/node (`npm install --prefix`).
# Idempotent: a peer already present at its pinned version is left alone. The only network
# traffic is the package clients' own, to those two registries.
set -euo pipefail

JWCRYPTO_VERSION="1.6.1"
JOSE_VERSION="6.2.18"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
out="$root/target/interop"
mkdir -p "$out"
status=0

# --- jwcrypto (the PyPI registry) ---
venv="$out/venv"
pylib="$out/pylib"
has_jwcrypto() { # PYTHON [PYTHONPATH]
    PYTHONPATH="${2:-}" "$1" -c "import jwcrypto, importlib.metadata as m, sys; sys.exit(m.version('jwcrypto') != '$JWCRYPTO_VERSION')" 2>/dev/null
}
if [ -x "$venv/bin/python" ] && has_jwcrypto "$venv/bin/python"; then
    echo "jose-peers: jwcrypto $JWCRYPTO_VERSION present ($venv)"
elif [ -d "$pylib" ] && has_jwcrypto python3 "$pylib"; then
    echo "jose-peers: jwcrypto $JWCRYPTO_VERSION present ($pylib)"
elif command -v python3 >/dev/null; then
    if { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "jose-peers: installing jwcrypto $JWCRYPTO_VERSION from the PyPI registry into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "jwcrypto==$JWCRYPTO_VERSION" || status=1
    else
        echo "jose-peers: python3 -m venv is unavailable; installing jwcrypto $JWCRYPTO_VERSION from the PyPI registry into $pylib"
        rm -rf "$venv"
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade --target "$pylib" \
            "jwcrypto==$JWCRYPTO_VERSION" || status=1
    fi
else
    echo "jose-peers: WARNING: no python3: jwcrypto not installed" >&2
    status=1
fi

# --- jose (the npm registry) ---
node_dir="$out/node"
installed_jose() {
    [ -f "$node_dir/node_modules/jose/package.json" ] \
        && node -p "require('$node_dir/node_modules/jose/package.json').version" 2>/dev/null
}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "jose-peers: WARNING: no node/npm: jose not installed" >&2
    status=1
elif [ "$(installed_jose || true)" = "$JOSE_VERSION" ]; then
    echo "jose-peers: jose $JOSE_VERSION present ($node_dir)"
else
    echo "jose-peers: installing jose $JOSE_VERSION from the npm registry into $node_dir"
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-audit --no-fund --no-update-notifier --save-exact --loglevel=error \
        "jose@$JOSE_VERSION" || status=1
fi

if [ "$status" -ne 0 ]; then
    # As the test does: a missing peer fails, unless CRYPTOHOST_SKIP_PEERS=1 outside CI.
    if [ "${CRYPTOHOST_SKIP_PEERS:-}" = 1 ] && [ "${CI:-}" != true ]; then
        echo "jose-peers: WARNING: a peer could not be installed; CRYPTOHOST_SKIP_PEERS=1: tests/all/jose_interop.rs will say it did not run" >&2
        exit 0
    fi
    echo "jose-peers: a peer could not be installed (see above); tests/all/jose_interop.rs needs both (outside CI, CRYPTOHOST_SKIP_PEERS=1 skips them)" >&2
fi
exit "$status"
