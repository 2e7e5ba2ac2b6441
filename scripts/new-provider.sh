#!/usr/bin/env bash
# Creates guests/NAME from tools/provider-template for a world (verifier, signer, keystore) and
# adds it to the guests' workspace. Used by `just new-provider NAME [--world WORLD]`.
set -euo pipefail
name="${1:?usage: new-provider NAME [--world verifier|signer|keystore]}"
shift
world=verifier
while [ $# -gt 0 ]; do
    case "$1" in
        --world) world="${2:?--world needs a value}"; shift 2 ;;
        --world=*) world="${1#--world=}"; shift ;;
        *) echo "new-provider: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$world" in verifier|signer|keystore) ;; *) echo "new-provider: world must be verifier, signer or keystore" >&2; exit 2 ;; esac
[[ "$name" =~ ^[a-z][a-z0-9-]{1,40}$ ]] || { echo "new-provider: NAME must be lowercase letters, digits and dashes" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/guests/$name"
[ -e "$dest" ] && { echo "new-provider: $dest already exists" >&2; exit 2; }
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
render "$root/tools/provider-template/Cargo.toml.in" > "$dest/Cargo.toml"
render "$root/tools/provider-template/src/lib.rs.in" > "$dest/src/lib.rs"
# Add it to the guests' workspace members.
sed -i "s|^members = \[\(.*\)\]|members = [\1, \"$name\"]|" "$root/guests/Cargo.toml"
echo "new-provider: created guests/$name ($world world); build it with 'just build-guests'"
