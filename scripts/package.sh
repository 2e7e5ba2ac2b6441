#!/usr/bin/env bash
# Builds target/debian/cryptohost_VERSION_ARCH.deb (`just package`).
#
# With dpkg-deb itself, not cargo-deb: no extra tool to fetch from the crate registry, the
# layout is exactly `just install`'s (scripts/install.sh into a staging DESTDIR with
# PREFIX=/usr, SYSCONFDIR=/etc, so the two cannot drift apart), and the maintainer scripts
# below are ours in full: they create the service's account and state, and do not enable or
# start the units (cargo-deb's systemd support would add deb-systemd-helper enable).
#
# Settings (environment): CRYPTOHOST_BIN (default target/release/cryptohost), OUTDIR (default
# target/debian), DEB_COMPRESSION (xz; the test uses none), LINTIAN (auto: run if installed;
# 0: never; 1: required), DEB_MAINTAINER (default: the last commit's author),
# SOURCE_DATE_EPOCH (default: the last commit's time; file times and the changelog date).
#
# Lintian (bookworm's), run on the result: no error or warning is left. The tags it still
# reports, and why they stay, are listed in LINTIAN_EXPECTED below; any other tag fails the
# build, so a new one is either fixed or explained here.
set -euo pipefail
umask 022

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CRYPTOHOST_BIN:-$repo/target/release/cryptohost}"
outdir="${OUTDIR:-$repo/target/debian}"
compression="${DEB_COMPRESSION:-xz}"
lintian_mode="${LINTIAN:-auto}"

die() {
    echo "package.sh: error: $*" >&2
    exit 1
}
[ -x "$bin" ] || die "$bin: no built binary (run \`just build\`)"
for tool in dpkg-deb dpkg-shlibdeps jq; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install dpkg-dev jq)"
done

version="$(cargo metadata --quiet --no-deps --format-version 1 --manifest-path "$repo/Cargo.toml" |
    jq -r '.packages[] | select(.name == "cryptohost") | .version')"
[ -n "$version" ] || die "no version for cryptohost in host/Cargo.toml"
binary_version="$("$bin" --version | awk '{print $2}')"
[ "$binary_version" = "$version" ] || die "$bin is version $binary_version, host/Cargo.toml says $version: rebuild it"
arch="$(dpkg --print-architecture)"
maintainer="${DEB_MAINTAINER:-$(git -C "$repo" log -1 --format='%an <%ae>' 2>/dev/null || true)}"
[ -n "$maintainer" ] || die "set DEB_MAINTAINER=\"Name <address>\""
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}"

# The crates linked into the binary (normal dependencies; proc-macros run only at build time).
crates="$(cd "$repo" && cargo tree --quiet --locked -p cryptohost -e normal,no-proc-macro --prefix none --format '  {p} {l}')" ||
    die "cargo tree failed (is Cargo.lock up to date? build first)"
crates="$(printf '%s\n' "$crates" | sed -E 's# \(/[^)]*\)##; s# \(\*\)$##' | sort -u)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"

# The files: exactly what `just install` writes for PREFIX=/usr.
DESTDIR="$root" PREFIX=/usr SYSCONFDIR=/etc LOCALSTATEDIR=/var RUNSTATEDIR=/run CRYPTOHOST_BIN="$bin" \
    CRYPTOHOST_COMPONENTS="${CRYPTOHOST_COMPONENTS:-$repo/components}" SYSTEMD_UNITDIR= \
    bash "$repo/scripts/install.sh" install >/dev/null
# dpkg keeps its own list: the install record (for `just uninstall`) is not shipped.
rm -f "$root/usr/lib/cryptohost/installed-files"
# Policy: binaries are shipped stripped (the build has no debug info, only symbols).
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/cryptohost"

doc="$root/usr/share/doc/cryptohost"
mkdir -p "$doc"
{
    cat <<'EOF'
cryptohost: a crypto provider host with sandboxed WebAssembly providers.

Copyright (C) @YEAR@ the cryptohost contributors
License: Apache-2.0

On Debian systems, the complete text of the Apache License, Version 2.0, is in
/usr/share/common-licenses/Apache-2.0.

/usr/bin/cryptohost links in these Rust crates (name, version, license), each under its own
license as listed; the provider components in /usr/lib/cryptohost/components are built from
the repository's guests/ with the dependencies its Cargo.lock names.

EOF
    printf '%s\n' "$crates"
} | sed "s/@YEAR@/$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)/" >"$doc/copyright"
changelog_date="$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
cat <<EOF | gzip -9 -n >"$doc/changelog.gz"
cryptohost ($version) unstable; urgency=medium

  * Built from the cryptohost repository by scripts/package.sh.

 -- $maintainer  $changelog_date
EOF
chmod 0644 "$doc/copyright" "$doc/changelog.gz"

# Depends: the shared libraries the binary links (dpkg-shlibdeps reads a control file), and
# passwd for the account postinst creates.
mkdir -p "$stage/debian"
printf 'Source: cryptohost\n\nPackage: cryptohost\nArchitecture: any\n' >"$stage/debian/control"
shlibs="$(cd "$stage" && dpkg-shlibdeps -O -e"root/usr/bin/cryptohost" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies for the binary"
depends="$shlibs, passwd"

# The components and their digests, in the description (what the config pins).
manifest="$root/usr/lib/cryptohost/components/manifest.json"
digests="$(jq -r '.components | to_entries[] | " \(.value.file) (\(.value.world))\n  sha256:\(.value.sha256)"' "$manifest")"
toolchain="$(jq -r .toolchain "$manifest")"
installed_size="$(du -sk --apparent-size "$root" | cut -f1)"

mkdir -m 0755 "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: cryptohost
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Section: utils
Priority: optional
Description: crypto provider host with sandboxed WebAssembly providers
 cryptohost signs, verifies, hashes and encrypts with keys on a PKCS#11 HSM
 or in sandboxed WebAssembly provider components, each admitted only if its
 sha256 matches a pin in /etc/cryptohost/cryptohost.toml. It runs as a
 command or as a service on a Unix socket (cryptohost.socket, not enabled).
 .
 The components installed in /usr/lib/cryptohost/components, and pinned:
$digests
 .
 Components built with:
  $toolchain
EOF
echo /etc/cryptohost/cryptohost.toml >"$root/DEBIAN/conffiles"

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# cryptohost postinst: the service's account, the clients' group and the state directories.
# The units are installed, never enabled or started here: that is the operator's choice
# (systemctl enable --now cryptohost.socket).
set -e

if [ "$1" = configure ]; then
    getent group cryptohost-clients >/dev/null || groupadd --system cryptohost-clients
    if ! getent passwd cryptohost >/dev/null; then
        if getent group cryptohost >/dev/null; then group_opt="--gid cryptohost"; else group_opt="--user-group"; fi
        # shellcheck disable=SC2086
        useradd --system $group_opt --home-dir /var/lib/cryptohost --no-create-home \
            --shell /usr/sbin/nologin --comment "cryptohost service" cryptohost
    fi
    # /var/lib/cryptohost is root's, group cryptohost, 0750: the service can reach its own
    # directories below but cannot create or replace anything here (an offline kit and its
    # state file, installed by root, belong here where the service cannot roll them back), and
    # other users cannot enter at all (the audit log names keys and callers; and a user who
    # cannot reach cache-digests runs without the cache instead of being refused).
    install -d -o root -g cryptohost -m 0750 /var/lib/cryptohost
    # The audit log must be a file of the user that writes it: the service's.
    install -d -o cryptohost -g cryptohost -m 0750 /var/lib/cryptohost/audit
    install -d -o cryptohost -g cryptohost -m 0700 /var/lib/cryptohost/cache-digests
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
fi

exit 0
EOF

cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# cryptohost prerm: stop the service and its socket (if running) before the binary goes.
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ] && command -v deb-systemd-invoke >/dev/null; then
    deb-systemd-invoke stop cryptohost.socket cryptohost.service >/dev/null || true
fi

exit 0
EOF

cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# cryptohost postrm. On remove: nothing but a daemon-reload; the account, the config and the
# state stay for a reinstall. On purge (dpkg has already removed the conffile): the cache and
# the cache digests (rebuilt on demand), empty audit logs, the state directories if nothing
# else is in them, the account cryptohost and the groups cryptohost and cryptohost-clients.
# It leaves, and says so: an audit log with lines in it (evidence: archive or delete it
# yourself; it is given to root first, so that no later account reusing the uid owns it), and
# whatever else an operator put in /var/lib/cryptohost (an offline kit) or /etc/cryptohost (a
# PIN file). Users' own caches (~/.cache/cryptohost) are theirs, and stay.
set -e

if [ "$1" = purge ]; then
    rm -rf /var/cache/cryptohost /var/lib/cryptohost/cache-digests
    if [ -d /var/lib/cryptohost/audit ] && [ ! -L /var/lib/cryptohost/audit ]; then
        for f in /var/lib/cryptohost/audit/* /var/lib/cryptohost/audit/.[!.]*; do
            if [ -L "$f" ] || { [ -f "$f" ] && [ ! -s "$f" ]; }; then
                rm -f "$f"
            elif [ -e "$f" ]; then
                chown -h root:root "$f"
            fi
        done
        chown root:root /var/lib/cryptohost/audit
        rmdir /var/lib/cryptohost/audit 2>/dev/null ||
            echo "cryptohost: purge kept the audit log in /var/lib/cryptohost/audit (now root's): archive or delete it"
    fi
    if [ -d /var/lib/cryptohost ]; then
        chown root:root /var/lib/cryptohost
        rmdir /var/lib/cryptohost 2>/dev/null || echo "cryptohost: purge kept /var/lib/cryptohost: it is not empty"
    fi
    if [ -d /etc/cryptohost ]; then
        rmdir /etc/cryptohost 2>/dev/null || echo "cryptohost: purge kept /etc/cryptohost: it is not empty"
    fi
    if getent passwd cryptohost >/dev/null && command -v userdel >/dev/null; then userdel cryptohost || true; fi
    if getent group cryptohost >/dev/null && command -v groupdel >/dev/null; then groupdel cryptohost || true; fi
    if getent group cryptohost-clients >/dev/null && command -v groupdel >/dev/null; then
        groupdel cryptohost-clients || true
    fi
fi
if [ "$1" = remove ] || [ "$1" = purge ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
fi

exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

mkdir -p "$outdir"
deb="$outdir/cryptohost_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$deb" >/dev/null
echo "package.sh: built $deb ($(du -h "$deb" | cut -f1))"

# Lintian tags that stay, each with its reason (tag: why). Everything else fails the build.
LINTIAN_EXPECTED=(
    # Rust does not call glibc's string and memory functions that _FORTIFY_SOURCE replaces (its
    # bounds checks are the language's), so there is nothing to fortify.
    "hardening-no-fortify-functions: Rust code has no fortifiable glibc calls"
    # The service is systemd-only: Type=notify readiness and socket activation are how it
    # starts; a SysV script would give neither. `cryptohost serve` can still be run by hand.
    "package-supports-alternative-init-but-no-init.d-script: systemd-only service, by design"
    # "thIk" is four bytes of compiled-in binary data (strings(1) finds it in table data, not
    # in any message), not a word.
    "spelling-error-in-binary: a false positive on table data (thIk)"
)
run_lintian() {
    local out tag unexpected=()
    out="$(lintian --tag-display-limit 0 --display-info "$deb" 2>&1)" || true
    # (Root is warned against because lintian unpacks untrusted packages; this one is ours.)
    out="$(printf '%s\n' "$out" | grep -v 'running with root privileges is not recommended' || true)"
    [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/package.sh: lintian: /'
    while read -r tag; do
        [ -n "$tag" ] || continue
        local known=""
        for e in "${LINTIAN_EXPECTED[@]}"; do [ "${e%%:*}" = "$tag" ] && known=1; done
        [ -n "$known" ] || unexpected+=("$tag")
    done < <(printf '%s\n' "$out" | sed -n 's/^[EWIPX]: cryptohost[^:]*: \([^ ]*\).*/\1/p' | sort -u)
    if [ ${#unexpected[@]} -gt 0 ]; then
        die "lintian tags not fixed and not explained in LINTIAN_EXPECTED: ${unexpected[*]}"
    fi
    echo "package.sh: lintian: no tag beyond the explained ones"
}
case "$lintian_mode" in
    0) ;;
    1) command -v lintian >/dev/null || die "lintian is not installed"; run_lintian ;;
    *) if command -v lintian >/dev/null; then run_lintian; else echo "package.sh: lintian not installed; not run"; fi ;;
esac
