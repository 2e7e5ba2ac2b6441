#!/usr/bin/env bash
# The demo: sign a real file with a key held by the HSM simulation component, verify it with
# the fast-verification component, watch a tampered copy fail, have OpenSSL agree, and read
# the audit log. Every step prints which provider and component digest served it.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/cryptohost
config=cryptohost.toml
mode=()

step() { printf '\n== %s\n' "$*"; }

# The config and the component directory become code and trust: cryptohost refuses them when
# group or others can write them (a checkout made under umask 002 would be).
chmod go-w "$config" components
step "providers (pinned in $config)"
if ! "$bin" --config "$config" providers 2>/tmp/cryptohost-demo.err; then
    cat /tmp/cryptohost-demo.err >&2
    if grep -q "does not match its pin" /tmp/cryptohost-demo.err; then
        echo >&2
        echo "The components just built differ from the pinned, reviewed ones (a different guest" >&2
        echo "toolchain: $(jq -r .toolchain components/manifest.json))." >&2
        echo "The host refuses them, as it should. For this demo only, continuing with --dev;" >&2
        echo "in a deployment, review the build and run 'just pin'." >&2
        mode=(--dev)
        "$bin" --config "$config" "${mode[@]}" providers
    else
        exit 1
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ch() { "$bin" --config "$config" "${mode[@]}" "$@"; }

# Something real to sign: a small CycloneDX-style SBOM of this very build.
cat > "$work/sbom.json" <<JSON
{"bomFormat":"CycloneDX","specVersion":"1.6","components":[
$(jq -c '.components | to_entries | map({type:"library",name:.key,hashes:[{alg:"SHA-256",content:.value.sha256}]}) | .[]' components/manifest.json | paste -sd, -)
]}
JSON

step "the org signing key: sim:demo-org-es256, held inside the simulation component"
ch keys public sim:demo-org-es256 --alg ES256 > "$work/org.pub.pem"
cat "$work/org.pub.pem"

step "hash the SBOM"
ch hash --alg SHA-256 "$work/sbom.json"

step "sign the SBOM with the simulated HSM key (ES256, DER signature)"
ch sign --alg ES256 --key sim:demo-org-es256 --out "$work/sbom.sig" "$work/sbom.json"
echo "signature: $(base64 -w0 "$work/sbom.sig")"

step "verify the SBOM"
ch verify --alg ES256 --pub "$work/org.pub.pem" --sig "$work/sbom.sig" "$work/sbom.json"

step "verify a tampered copy (must be rejected)"
sed 's/CycloneDX/CycloneDx/' "$work/sbom.json" > "$work/sbom-tampered.json"
set +e
ch verify --alg ES256 --pub "$work/org.pub.pem" --sig "$work/sbom.sig" "$work/sbom-tampered.json"
rc=$?
set -e
if [ "$rc" -ne 1 ]; then echo "demo: the tampered copy was not rejected (exit $rc)" >&2; exit 1; fi
echo "(exit code 1: rejected, as it must be)"

step "the same signature checked by OpenSSL"
openssl dgst -sha256 -verify "$work/org.pub.pem" -signature "$work/sbom.sig" "$work/sbom.json"

step "a software key too: keygen inside the offline-verification sandbox, PS256"
ch keygen --alg PS256 --rsa-bits 2048 --out "$work/sw.key.pem" --pub "$work/sw.pub.pem"
ch sign --alg PS256 --key "file:$work/sw.key.pem" --out "$work/sbom.ps256" "$work/sbom.json"
ch verify --alg PS256 --pub "$work/sw.pub.pem" --sig "$work/sbom.ps256" "$work/sbom.json"

step "the long-running host: cryptohost serve on a Unix socket; a client signs and verifies through it"
sock="$work/cryptohost.sock"
# The shipped config plus a [service] section: this user may sign with the sim:demo-* keys.
{ cat "$config"; printf '\n[service]\nlisten = "unix:%s"\n[[service.allow]]\nusers = ["%s"]\noperations = ["sign"]\nkeys = ["sim:demo-*"]\n' "$sock" "$(id -u)"; } > "$work/serve.toml"
"$bin" --config "$work/serve.toml" --components "$PWD/components" "${mode[@]}" serve 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 200); do [ -S "$sock" ] && break; sleep 0.05; done
client() { "$bin" --socket "$sock" "$@"; }
client sign --alg ES256 --key sim:demo-org-es256 --out "$work/sbom.served.sig" "$work/sbom.json"
client verify --alg ES256 --pub "$work/org.pub.pem" --sig "$work/sbom.served.sig" "$work/sbom.json"
echo "a key the rules do not name:"
client sign --alg ES256 --key sim:payroll --out "$work/x.sig" "$work/sbom.json" || echo "(exit code $?: refused, and audited)"
kill -TERM "$server"; wait "$server" || true
echo "server audit log (the caller is recorded):"
tail -n 2 "$work/audit.jsonl"

step "the audit log: one line per key use"
audit="$(sed -n '/^path = "/{s/^path = "\(.*\)"/\1/p;q}' "$config")"
tail -n 2 "$audit"
echo
echo "demo: done"
