#!/usr/bin/env bash
# `just package-test`: installs the .deb into a fresh Debian chroot and uses it as installed.
#
#   scripts/package-test.sh [target/debian/cryptohost_VERSION_ARCH.deb]
#
# 1. A minimal Debian of this machine's release (debootstrap --variant=minbase, from the
#    mirror apt is configured with here; MIRROR and SUITE override). The fresh tree is kept as
#    target/debian/chroot-SUITE-ARCH.tar, so a later run unpacks it in seconds instead of
#    bootstrapping again (about a minute here); delete the tar to refresh it.
# 2. dpkg -i, then, from another directory (/tmp/work) against /etc/cryptohost/cryptohost.toml,
#    as the service user (what owns the audit log and the cache digests): providers, hash,
#    keygen, sign, verify (and a tampered file found invalid).
# 3. What the README says of everyone else: root runs uncached (the cache digest directory
#    is the service's: never trusted or written by root), and another user may hash but not
#    sign (the audit log is not theirs to write).
# 4. dpkg --purge, then every file, user or group left that names cryptohost, which must be
#    exactly what postrm says it leaves: the audit log that has lines.
# Needs root (debootstrap, chroot, mounting /proc).
set -euo pipefail

die() {
    echo "package-test: error: $*" >&2
    exit 1
}
say() { echo "package-test: $*"; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
repo="$(cd "$(dirname "$0")/.." && pwd)"
arch="$(dpkg --print-architecture)"
deb="${1:-}"
if [ -z "$deb" ]; then
    deb="$(ls -t "$repo"/target/debian/cryptohost_*_"$arch".deb 2>/dev/null | head -n1 || true)"
fi
[ -f "$deb" ] || die "no package: run \`just package\` first"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"

suite="${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}"
[ -n "$suite" ] || die "cannot tell this machine's release: set SUITE"

# The mirror apt uses here for that suite (deb822 .sources files or one-line sources.list).
mirror_of() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$1" '
            /^[[:space:]]*$/ { if (uri != "" && ok && deb) print uri; uri = ""; ok = 0; deb = 0; next }
            /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
            END { if (uri != "" && ok && deb) print uri }' "$f"
    done
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
        awk -v suite="$1" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) print $i }'
}
mirror="${MIRROR:-$(mirror_of "$suite" | sed -n 1p)}"
[ -n "$mirror" ] || die "no apt source for $suite on this machine: set MIRROR"

cache="$repo/target/debian/chroot-$suite-$arch.tar"
mkdir -p "$repo/target/debian"
chroot_dir="$(mktemp -d "$repo/target/debian/chroot.XXXXXX")"
chmod 0755 "$chroot_dir" # (mktemp's 0700 would keep every user but root out of the chroot's /)
cleanup() {
    if mountpoint -q "$chroot_dir/proc"; then umount "$chroot_dir/proc" || umount -l "$chroot_dir/proc"; fi
    if mountpoint -q "$chroot_dir/proc"; then
        echo "package-test: $chroot_dir/proc is still mounted; not removing $chroot_dir" >&2
        return
    fi
    rm -rf --one-file-system "$chroot_dir"
}
trap cleanup EXIT

start=$SECONDS
if [ -f "$cache" ]; then
    say "unpacking the $suite chroot kept in $cache"
    tar -C "$chroot_dir" -xf "$cache"
else
    say "debootstrap --variant=minbase $suite (from the mirror apt uses here)"
    debootstrap --variant=minbase "$suite" "$chroot_dir" "$mirror" >"$chroot_dir.log" 2>&1 ||
        { tail -n 20 "$chroot_dir.log" >&2; die "debootstrap failed (log: $chroot_dir.log)"; }
    rm -f "$chroot_dir.log"
    tar -C "$chroot_dir" -cf "$cache.tmp" . && mv -f "$cache.tmp" "$cache"
fi
say "chroot ready in $((SECONDS - start)) s"
mount -t proc proc "$chroot_dir/proc"
cp -- "$deb" "$chroot_dir/tmp/cryptohost.deb"

# Everything below runs inside the chroot, with a clean environment.
in_chroot() {
    chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 /bin/bash -euo pipefail -c "$1"
}

say "dpkg -i $(basename -- "$deb")"
in_chroot 'dpkg -i /tmp/cryptohost.deb'

in_chroot '
fail() { echo "package-test: FAILED: $*" >&2; exit 1; }
say() { echo "package-test: $*"; }
getent passwd cryptohost >/dev/null || fail "no user cryptohost"
getent group cryptohost-clients >/dev/null || fail "no group cryptohost-clients"
[ "$(stat -c "%U:%G %a" /var/lib/cryptohost)" = "root:cryptohost 750" ] || fail "/var/lib/cryptohost: $(stat -c "%U:%G %a" /var/lib/cryptohost)"
[ "$(stat -c "%U:%G %a" /var/lib/cryptohost/audit)" = "cryptohost:cryptohost 750" ] || fail "audit dir"
[ "$(dpkg-query -W -f="\${Conffiles}" cryptohost | awk "{print \$1}")" = /etc/cryptohost/cryptohost.toml ] || fail "conffile"
[ ! -e /etc/systemd/system/sockets.target.wants/cryptohost.socket ] || fail "the socket was enabled"

install -d -o cryptohost -g cryptohost /tmp/work
cd /tmp/work
# As the service user, as an operator would run it (runuser -u cryptohost -- cryptohost ...).
as_service() { setpriv --reuid=cryptohost --regid=cryptohost --init-groups env HOME=/tmp/work XDG_CACHE_HOME=/tmp/work/.cache "$@"; }
say "as cryptohost in /tmp/work, with /etc/cryptohost/cryptohost.toml:"
as_service cryptohost doctor | sed "s/^/  doctor: /" || fail "doctor"
as_service cryptohost providers | grep -E "^[a-z]" | sed "s/^/  providers: /"
json="$(as_service cryptohost providers --json)"
case "$json" in *"\"offline-verification\""*"\"pqc\""*) ;; *) fail "providers: $json" ;; esac
case "$json" in *"\"simulation\""*) fail "the simulation is enabled" ;; esac
printf "a file signed by the installed package\n" | as_service tee msg.txt >/dev/null
digest="$(as_service cryptohost -q hash --alg SHA-256 msg.txt)"
[ "$digest" = "$(sha256sum msg.txt | cut -d" " -f1)" ] || fail "hash: $digest"
say "  hash: $digest"
as_service cryptohost keygen --alg ES256 --out key.pem --pub key.pub
as_service cryptohost sign --alg ES256 --key key.pem --out msg.sig msg.txt
say "  verify: $(as_service cryptohost -q verify --pub key.pub --sig msg.sig msg.txt)"
printf "tampered\n" | as_service tee -a msg.txt >/dev/null
rc=0; as_service cryptohost -q verify --pub key.pub --sig msg.sig msg.txt >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "a tampered file: exit $rc, not 1"
say "  tampered file: invalid (exit 1)"
lines="$(wc -l </var/lib/cryptohost/audit/audit.jsonl)"
[ "$lines" -ge 2 ] || fail "audit lines: $lines"
say "  audit log: $lines lines in /var/lib/cryptohost/audit/audit.jsonl"

# (A HOME under /tmp: the per-user cache this run makes belongs to root, not to the package.)
say "as root: works uncached (the cache digests are the service'\''s, never trusted or written by root):"
rc=0; err="$(HOME=/tmp/root-home cryptohost hash --alg SHA-256 /tmp/work/msg.txt 2>&1 >/dev/null)" || rc=$?
[ "$rc" = 0 ] || fail "root: exit $rc: $err"
printf "%s\n" "$err" | grep "precompiled cache off" >/dev/null || fail "root: no cache warning: $err"
say "  exit $rc: $(printf "%s\n" "$err" | grep "precompiled cache off")"

say "as nobody: hash works (uncached), a local sign fails closed on the audit log:"
install -d -o nobody -g nogroup /tmp/nobody
install -o nobody -g nogroup -m 0600 /tmp/work/key.pem /tmp/nobody/key.pem
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/nonexistent "$@"; }
as_nobody cryptohost -q hash --alg SHA-256 /tmp/work/msg.txt 2>/dev/null | sed "s/^/  hash: /"
rc=0; err="$(as_nobody cryptohost -q sign --alg ES256 --key /tmp/nobody/key.pem /tmp/work/msg.txt 2>&1 >/dev/null)" || rc=$?
[ "$rc" = 2 ] || fail "nobody sign: exit $rc"
printf "%s\n" "$err" | grep "audit log" >/dev/null || fail "nobody sign: $err"
say "  exit $rc: $(printf "%s\n" "$err" | grep "audit log")"
'

say "dpkg --purge cryptohost"
in_chroot 'dpkg --purge cryptohost'
say "left after purge (files, users and groups naming cryptohost; /proc, /sys, /tmp not searched):"
left="$(in_chroot '
find / -xdev \( -path /proc -o -path /sys -o -path /tmp \) -prune -o -path "*cryptohost*" -print | sort
getent passwd cryptohost || true
getent group cryptohost cryptohost-clients || true
')"
printf '%s\n' "$left" | sed 's/^/  /'
expected="/var/lib/cryptohost
/var/lib/cryptohost/audit
/var/lib/cryptohost/audit/audit.jsonl"
[ "$left" = "$expected" ] || die "purge left more (or less) than the audit log it keeps"
in_chroot '[ "$(stat -c "%U:%G" /var/lib/cryptohost/audit/audit.jsonl)" = root:root ]' ||
    die "the kept audit log is not root's"
say "passed in $((SECONDS - start)) s"
