#!/usr/bin/env bash
# Creates a provider crate from tools/provider-template for a world (verifier, signer,
# keystore). Used by `just new-provider NAME [--world WORLD] [--out DIR]`.
#   without --out: guests/NAME, a member of the guests' workspace (built by `just build-guests`);
#   with --out DIR: DIR/NAME, a standalone crate of its own (a third party's, kept in its own
#   repository): its own [workspace], the WIT contract copied into it, provider-core from this
#   checkout by path; built and packed with `just build-provider DIR/NAME`.
set -euo pipefail
name="${1:?usage: new-provider NAME [--world verifier|signer|keystore] [--out DIR]}"
shift
world=verifier
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --world) world="${2:?--world needs a value}"; shift 2 ;;
        --world=*) world="${1#--world=}"; shift ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --out=*) out="${1#--out=}"; shift ;;
        *) echo "new-provider: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$world" in verifier|signer|keystore) ;; *) echo "new-provider: world must be verifier, signer or keystore" >&2; exit 2 ;; esac
[[ "$name" =~ ^[a-z][a-z0-9-]{1,40}$ ]] || { echo "new-provider: NAME must be lowercase letters, digits and dashes" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "$out" ]; then
    mkdir -p "$out"
    dest="$(cd "$out" && pwd)/$name"
else
    dest="$root/guests/$name"
fi
[ -e "$dest" ] || [ -L "$dest" ] && { echo "new-provider: $dest already exists" >&2; exit 2; }
# Keep a block if the world has its interface: signer blocks for signer and keystore,
# keystore blocks for keystore only.
keep_signer=0; keep_keystore=0
[ "$world" != verifier ] && keep_signer=1
[ "$world" = keystore ] && keep_keystore=1
render() {
    awk -v s="$keep_signer" -v k="$keep_keystore" '
        /\/\/@signer-begin/   { skip = !s; next }
        /\/\/@signer-end/     { skip = 0; next }
        /\/\/@keystore-begin/ { skip = !k; next }
        /\/\/@keystore-end/   { skip = 0; next }
        !skip { print }' "$1" | sed -e "s/@NAME@/$name/g" -e "s/@WORLD@/$world/g"
}
mkdir -p "$dest/src"
render "$root/tools/provider-template/src/lib.rs.in" > "$dest/src/lib.rs"
if [ -z "$out" ]; then
    render "$root/tools/provider-template/Cargo.toml.in" > "$dest/Cargo.toml"
    # Add it to the guests' workspace members.
    sed -i "s|^members = \[\(.*\)\]|members = [\1, \"$name\"]|" "$root/guests/Cargo.toml"
    echo "new-provider: created guests/$name ($world world); build it with 'just build-guests'"
    exit 0
fi
# Standalone: the contract travels with the crate, the workspace's dependency versions and
# release profile (the same profile gives reproducible bytes) are written out in full.
cp -r "$root/wit" "$dest/wit"
# The guests' lock file: the same dependency versions as ours (cargo drops what is unused).
cp "$root/guests/Cargo.lock" "$dest/Cargo.lock"
sed -i 's|path: "../../wit"|path: "wit"|' "$dest/src/lib.rs"
deps="$(sed -n '/^\[workspace.dependencies\]/,/^\[/p' "$root/guests/Cargo.toml" | grep -E '^(wit-bindgen|sha2) ')"
profile="$(sed -n '/^\[profile.release\]/,$p' "$root/guests/Cargo.toml")"
render "$root/tools/provider-template/Cargo.toml.in" \
    | sed -e 's|^version.workspace = true|version = "0.1.0"|' \
          -e 's|^edition.workspace = true|edition = "2024"|' \
          -e 's|^license.workspace = true|license = "Apache-2.0"|' \
          -e "s|^provider-core = { path = \"../provider-core\" }|provider-core = { path = \"$root/guests/provider-core\" }|" \
          -e '/^wit-bindgen.workspace = true/d' -e '/^sha2.workspace = true/d' > "$dest/Cargo.toml"
{
    echo "$deps"
    echo
    echo "# Its own workspace: built on its own, never as a member of another."
    echo "[workspace]"
    echo
    echo "$profile"
} >> "$dest/Cargo.toml"
echo "new-provider: created $dest ($world world, standalone); build and pack it with 'just build-provider $dest'"
