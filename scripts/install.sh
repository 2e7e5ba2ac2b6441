#!/usr/bin/env bash
# Installs cryptohost as a system tool, or removes what an install wrote.
#
#   scripts/install.sh install      (`just install`; `just package` stages the .deb with it)
#   scripts/install.sh uninstall    (`just uninstall`)
#
# Settings, from the environment, honored for every file:
#   PREFIX=/usr/local  SYSCONFDIR=/etc  LOCALSTATEDIR=/var  RUNSTATEDIR=/run  DESTDIR=(empty)
#   SYSTEMD_UNITDIR        default PREFIX/lib/systemd/system, or /lib/systemd/system for PREFIX=/usr
#   CRYPTOHOST_BIN         the built binary (default target/release/cryptohost)
#   CRYPTOHOST_COMPONENTS  the built components and their manifest.json (default components/)
#   EXCLUDE_COMPONENTS     components not installed (default "misbehaving": the test-only guest
#                          that loops, hoards memory and panics on request)
#
# What is written (DESTDIR in front of each path; the paths written INTO files, the config and
# the units, never contain DESTDIR, so a staged tree works once copied into place):
#   PREFIX/bin/cryptohost
#   PREFIX/lib/cryptohost/components/*.wasm + manifest.json   (only the installed components)
#   SYSCONFDIR/cryptohost/cryptohost.toml    pinned to exactly those components; never
#                                            overwritten: cryptohost.toml.new when one exists
#   SYSTEMD_UNITDIR/cryptohost.service, cryptohost.socket     (from examples/systemd)
#   PREFIX/share/doc/cryptohost/systemd/*.conf                 (the optional drop-ins)
#   PREFIX/share/bash-completion/completions/cryptohost, PREFIX/share/zsh/vendor-completions/
#   _cryptohost, PREFIX/share/fish/vendor_completions.d/cryptohost.fish, PREFIX/share/man/man1/
#   cryptohost*.1.gz: made by the binary being installed (its hidden `generate` command)
#   PREFIX/lib/cryptohost/installed-files    every file above with its sha256, and every
#                                            directory the install created
# `uninstall` removes each recorded file that still has the recorded sha256 (a file changed
# since, such as an edited config, is kept, and said so), then each recorded directory that is
# empty, then the record. Nothing else: not the state in LOCALSTATEDIR/lib/cryptohost (audit
# log), which install never writes either.
#
# Never through a symlink: a target file or a directory written into that is a symlink is
# refused before anything is written; each file is written to a new temporary file (mktemp:
# O_EXCL) in its directory and renamed into place, so even a link planted meanwhile is
# replaced, never followed. Modes are 0644 (0755 for the binary) and new directories 0755,
# under umask 022: the host refuses a config or component directory others can write.
set -euo pipefail
umask 022

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}
say() { echo "install.sh: $*"; }

repo="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-}"
case "$mode" in
    install | uninstall) ;;
    *) die "usage: $0 install|uninstall (settings in the environment: PREFIX, SYSCONFDIR, DESTDIR, ...)" ;;
esac

# Absolute, normalized paths (no symlink resolution, no trailing slash).
norm() {
    case "$2" in
        /*) ;;
        *) die "$1 must be an absolute path, got '$2'" ;;
    esac
    realpath -m -s -- "$2"
}
PREFIX="$(norm PREFIX "${PREFIX:-/usr/local}")"
SYSCONFDIR="$(norm SYSCONFDIR "${SYSCONFDIR:-/etc}")"
LOCALSTATEDIR="$(norm LOCALSTATEDIR "${LOCALSTATEDIR:-/var}")"
RUNSTATEDIR="$(norm RUNSTATEDIR "${RUNSTATEDIR:-/run}")"
DESTDIR="${DESTDIR:-}"
if [ -n "$DESTDIR" ]; then
    DESTDIR="$(realpath -m -s -- "$DESTDIR")"
    [ "$DESTDIR" != / ] || DESTDIR=""
fi
if [ -n "${SYSTEMD_UNITDIR:-}" ]; then
    unitdir="$(norm SYSTEMD_UNITDIR "$SYSTEMD_UNITDIR")"
elif [ "$PREFIX" = /usr ]; then
    unitdir=/lib/systemd/system
else
    unitdir="$PREFIX/lib/systemd/system"
fi
bin="${CRYPTOHOST_BIN:-$repo/target/release/cryptohost}"
src_components="${CRYPTOHOST_COMPONENTS:-$repo/components}"
exclude=" ${EXCLUDE_COMPONENTS-misbehaving} "

libdir="$PREFIX/lib/cryptohost"
compdir="$libdir/components"
confdir="$SYSCONFDIR/cryptohost"
config="$confdir/cryptohost.toml"
statedir="$LOCALSTATEDIR/lib/cryptohost"
socket="$RUNSTATEDIR/cryptohost/cryptohost.sock"
record="$libdir/installed-files"

# --- the record of what was installed: "f SHA256 PATH" or "d - PATH", paths without DESTDIR ---
declare -A entry=()
order=()
note() { # KIND SUM PATH
    [ -n "${entry[$3]+set}" ] || order+=("$3")
    entry[$3]="$1 $2"
}
load_record() {
    local kind sum path
    [ -f "$DESTDIR$record" ] && [ ! -L "$DESTDIR$record" ] || return 1
    while read -r kind sum path; do
        case "$kind" in
            f | d) note "$kind" "$sum" "$path" ;;
        esac
    done <"$DESTDIR$record"
}

tmp_current=""
work=""
cleanup() {
    [ -z "$tmp_current" ] || rm -f -- "$tmp_current"
    [ -z "$work" ] || rm -rf -- "$work"
}
trap cleanup EXIT

# Creates every missing directory of PATH (mode 0755) and records the ones it created. An
# existing directory along the way may be a symlink (/lib on a merged-/usr system) except the
# last one, which files are written into.
ensure_dir() {
    local path="$1" cur="" part parts=()
    [ -z "$DESTDIR" ] || [ -d "$DESTDIR" ] || mkdir -p -- "$DESTDIR"
    IFS=/ read -r -a parts <<<"${path#/}"
    for part in "${parts[@]}"; do
        [ -n "$part" ] || continue
        cur="$cur/$part"
        if [ ! -e "$DESTDIR$cur" ] && [ ! -L "$DESTDIR$cur" ]; then
            mkdir -m 0755 -- "$DESTDIR$cur"
            note d - "$cur"
        elif [ ! -d "$DESTDIR$cur" ]; then
            die "$DESTDIR$cur exists and is not a directory"
        fi
    done
    [ ! -L "$DESTDIR$path" ] || die "$DESTDIR$path is a symlink: refused (files are never written through one)"
}

# Refuses a target that is a symlink or not a regular file, before anything is written.
check_target() {
    local full="$DESTDIR$1"
    [ ! -L "$full" ] || die "$full is a symlink: refused (files are never written through one)"
    [ ! -e "$full" ] || [ -f "$full" ] || die "$full exists and is not a regular file: refused"
    local dir
    dir="$(dirname -- "$full")"
    [ ! -L "$dir" ] || die "$dir is a symlink: refused (files are never written through one)"
}

# put SOURCE DEST MODE: SOURCE's bytes at DESTDIR/DEST, by a new temporary file and a rename.
put() {
    local src="$1" dest="$2" fmode="$3"
    ensure_dir "$(dirname -- "$dest")"
    check_target "$dest"
    tmp_current="$(mktemp -- "$DESTDIR$(dirname -- "$dest")/.cryptohost-install.XXXXXXXX")"
    cat -- "$src" >"$tmp_current"
    chmod "$fmode" -- "$tmp_current"
    mv -f -T -- "$tmp_current" "$DESTDIR$dest"
    tmp_current=""
    note f "$(sha256sum <"$DESTDIR$dest" | cut -d' ' -f1)" "$dest"
}

sha_of() { sha256sum <"$1" | cut -d' ' -f1; }

do_uninstall() {
    load_record || die "no install record at $DESTDIR$record (was it installed with this PREFIX and DESTDIR?)"
    local path kind sum full kept=0 removed=0
    for path in "${order[@]}"; do
        read -r kind sum <<<"${entry[$path]}"
        [ "$kind" = f ] || continue
        full="$DESTDIR$path"
        if [ -L "$full" ]; then
            say "kept $full: it is now a symlink, not the file install wrote"
            kept=$((kept + 1))
        elif [ ! -e "$full" ]; then
            :
        elif [ ! -f "$full" ]; then
            say "kept $full: it is no longer a regular file"
            kept=$((kept + 1))
        elif [ "$(sha_of "$full")" = "$sum" ]; then
            rm -f -- "$full"
            removed=$((removed + 1))
        else
            say "kept $full: changed since it was installed (its sha256 is not the one recorded)"
            kept=$((kept + 1))
        fi
    done
    [ -L "$DESTDIR$record" ] || rm -f -- "$DESTDIR$record"
    # Directories install created, deepest first, if nothing else is in them now.
    local dirs=()
    for path in "${order[@]}"; do
        read -r kind sum <<<"${entry[$path]}"
        [ "$kind" = d ] && dirs+=("$path")
    done
    if [ ${#dirs[@]} -gt 0 ]; then
        while IFS= read -r path; do
            full="$DESTDIR$path"
            [ -d "$full" ] && [ ! -L "$full" ] || continue
            rmdir -- "$full" 2>/dev/null || say "kept $full: not empty"
        done < <(printf '%s\n' "${dirs[@]}" | awk '{ print gsub("/", "/") "\t" $0 }' | sort -rn | cut -f2-)
    fi
    say "removed $removed files; kept $kept"
}

# --- install ---------------------------------------------------------------------------------

# The config: component_dir and every state path are the installed ones; each provider is
# pinned to the digest of the component installed beside it.
write_config() {
    local out="$1" toolchain="$2"
    local name file sha world role priority
    cat >"$out" <<EOF
# cryptohost system configuration, written by \`just install\` or the cryptohost package
# (scripts/install.sh). An install never overwrites this file: a newer one is written beside it
# as cryptohost.toml.new (by the package: cryptohost.toml.dpkg-dist), to compare and merge.
#
# Pins: each provider below is pinned to the sha256 of the component installed with this binary
# ($compdir/manifest.json). A component whose bytes differ is refused. After new
# components are installed, review them, then copy their digests here:
#   cryptohost --config $config pin --manifest $compdir/manifest.json
#
# Who may use it: the service (cryptohost.service, user cryptohost) owns the audit log and the
# cache digests below. Anyone may hash, verify and list providers locally with this file; a
# local sign, encrypt or decrypt by any other user fails closed (the audit log is not theirs to
# write). They go through the service instead:
#   cryptohost --socket $socket sign ...   (or CRYPTOHOST_SOCKET=$socket)
# as members of the group cryptohost-clients, for the keys a [[service.allow]] rule names.

component_dir = "$compdir"
pinned_toolchain = "$toolchain"

[cache]
# Precompiled native code, per user (\$XDG_CACHE_HOME/cryptohost or ~/.cache/cryptohost; the
# service's is /var/cache/cryptohost, from its unit). The digests that vouch for it are the
# service's own: other users cannot create them here and run without the cache (with a warning).
enabled = true
digest_dir = "$statedir/cache-digests"

[audit]
# One JSON line per use of a key, synced before the result is returned; a key is not used if
# the line cannot be written. The file must be the running user's: the service's.
path = "$statedir/audit/audit.jsonl"

[state]
# What must outlive a kit or this file (an offline kit's state, kit.state.json): root's, like
# the directory itself, where the service cannot write and so cannot roll a kit back.
dir = "$statedir"

[service]
# Under systemd the socket is cryptohost.socket's (mode 0660, group cryptohost-clients); this
# path is the same one, for \`cryptohost doctor\` and for \`serve\` started by hand.
listen = "unix:$socket"
# Without a rule, clients may hash and verify only. To let the group sign with the HSM's keys:
# [[service.allow]]
# groups = ["cryptohost-clients"]
# operations = ["sign"]
# keys = ["pkcs11:token=*"]

# A PKCS#11 module (HSM), pinned, with its PIN from the service's credential (see
# $PREFIX/share/doc/cryptohost/systemd/hsm-pin.conf; a network HSM also needs hsm-network.conf):
# [hsm]
# module = "/usr/lib/x86_64-linux-gnu/pkcs11/your-module.so"
# module_sha256 = "<sha256sum of the module>"
# tokens = ["your-token-label"]
# pin_file = "/run/credentials/cryptohost.service/hsm-pin"

# Priority: higher wins; the registry falls back to the next provider on \`unsupported\`.
EOF
    local disabled=""
    while IFS=$'\t' read -r name file sha world; do
        case "$name" in
            fast-verification) priority=110 ;;
            offline-verification) priority=100 ;;
            pqc) priority=90 ;;
            simulation) priority=50 ;;
            *) priority=10 ;;
        esac
        role="$world"
        if [ "$name" = simulation ]; then
            disabled="$file	$sha	$role	$priority"
            continue
        fi
        cat >>"$out" <<EOF

[[provider]]
name = "$name"
component = "$file"
role = "$role"
priority = $priority
sha256 = "$sha"
EOF
    done <"$work/components.tsv"
    if [ -n "$disabled" ]; then
        IFS=$'\t' read -r file sha role priority <<<"$disabled"
        cat >>"$out" <<EOF

# The HSM simulation (key custody in the sandbox, for development) is installed and pinned but
# NOT enabled. The repository's config gives it a seed (settings = { seed = "..." }), which
# makes every sim: key derivable by anyone who can read this file: never on a real system.
# Without a seed its keys are random and live only as long as the process (for \`serve\`: until
# it stops). Uncomment to try it, without a seed:
# [[provider]]
# name = "simulation"
# component = "$file"
# role = "$role"
# priority = $priority
# key_prefix = "sim"
# sha256 = "$sha"
EOF
    fi
}

# A unit from examples/systemd with the installed paths in place of the defaults there.
write_unit() {
    local src="$1" out="$2"
    local state_line="StateDirectory=cryptohost/audit cryptohost/cache-digests"
    if [ "$statedir" != /var/lib/cryptohost ]; then
        # systemd's StateDirectory= is under /var/lib only; elsewhere the paths are made
        # writable as they are ("-": a missing one does not fail the unit).
        state_line="ReadWritePaths=-$statedir/audit -$statedir/cache-digests"
    fi
    sed -e "s|/usr/local/bin/cryptohost|$PREFIX/bin/cryptohost|g" \
        -e "s|/etc/cryptohost/|$confdir/|g" \
        -e "s|/run/cryptohost/|$RUNSTATEDIR/cryptohost/|g" \
        -e "s|/var/lib/cryptohost|$statedir|g" \
        -e "s|^StateDirectory=cryptohost/audit cryptohost/cache-digests\$|$state_line|" \
        -- "$src" >"$out"
}

do_install() {
    [ -x "$bin" ] || die "$bin: no built binary (run \`just build\`, or set CRYPTOHOST_BIN)"
    [ -f "$src_components/manifest.json" ] || die "$src_components/manifest.json missing (run \`just build-guests\`)"
    command -v jq >/dev/null || die "jq is needed (just setup)"
    work="$(mktemp -d)"

    # The components to install, each checked against the manifest it was built with.
    jq -r '.components | to_entries[] | [.key, .value.file, .value.sha256, .value.world] | @tsv' \
        "$src_components/manifest.json" | while IFS=$'\t' read -r name file sha world; do
        case "$exclude" in *" $name "*) continue ;; esac
        case "$file" in */* | .*) die "manifest entry $name names a file outside the directory: $file" ;; esac
        [ -f "$src_components/$file" ] || die "$src_components/$file missing (run \`just build-guests\`)"
        actual="$(sha_of "$src_components/$file")"
        [ "$actual" = "$sha" ] || die "$src_components/$file has sha256 $actual, the manifest says $sha: rebuild (just build-guests)"
        printf '%s\t%s\t%s\t%s\n' "$name" "$file" "$sha" "$world"
    done >"$work/components.tsv"
    [ -s "$work/components.tsv" ] || die "no component to install in $src_components/manifest.json"
    local excluded_json
    excluded_json="$(printf '%s\n' $exclude | jq -R . | jq -s .)"
    jq --argjson ex "$excluded_json" '.components |= with_entries(select(.key as $k | $ex | index($k) | not))' \
        "$src_components/manifest.json" >"$work/manifest.json"
    local toolchain
    toolchain="$(jq -r .toolchain "$src_components/manifest.json")"
    case "$toolchain" in *'"'* | *'\'*) die "the manifest's toolchain string has a quote or backslash" ;; esac

    # Completions and man pages from the binary being installed.
    "$bin" generate completions bash >"$work/cryptohost.bash"
    "$bin" generate completions zsh >"$work/_cryptohost"
    "$bin" generate completions fish >"$work/cryptohost.fish"
    "$bin" generate man "$work/man" >/dev/null
    gzip -9 -n -- "$work"/man/*.1

    write_config "$work/cryptohost.toml" "$toolchain"
    write_unit "$repo/examples/systemd/cryptohost.service" "$work/cryptohost.service"
    write_unit "$repo/examples/systemd/cryptohost.socket" "$work/cryptohost.socket"
    write_unit "$repo/examples/systemd/hsm-pin.conf" "$work/hsm-pin.conf"
    write_unit "$repo/examples/systemd/hsm-network.conf" "$work/hsm-network.conf"

    # What goes where ("SOURCE DEST MODE"), checked in full before anything is written.
    local plan=()
    plan+=("$bin|$PREFIX/bin/cryptohost|0755")
    while IFS=$'\t' read -r _ file _ _; do
        plan+=("$src_components/$file|$compdir/$file|0644")
    done <"$work/components.tsv"
    plan+=("$work/manifest.json|$compdir/manifest.json|0644")
    plan+=("$work/cryptohost.service|$unitdir/cryptohost.service|0644")
    plan+=("$work/cryptohost.socket|$unitdir/cryptohost.socket|0644")
    plan+=("$work/hsm-pin.conf|$PREFIX/share/doc/cryptohost/systemd/hsm-pin.conf|0644")
    plan+=("$work/hsm-network.conf|$PREFIX/share/doc/cryptohost/systemd/hsm-network.conf|0644")
    plan+=("$work/cryptohost.bash|$PREFIX/share/bash-completion/completions/cryptohost|0644")
    plan+=("$work/_cryptohost|$PREFIX/share/zsh/vendor-completions/_cryptohost|0644")
    plan+=("$work/cryptohost.fish|$PREFIX/share/fish/vendor_completions.d/cryptohost.fish|0644")
    local page
    for page in "$work"/man/*.1.gz; do
        plan+=("$page|$PREFIX/share/man/man1/$(basename -- "$page")|0644")
    done
    local config_dest="$config"
    if [ -e "$DESTDIR$config" ] || [ -L "$DESTDIR$config" ]; then
        config_dest="$config.new"
    fi
    plan+=("$work/cryptohost.toml|$config_dest|0644")
    local item src dest fmode
    for item in "${plan[@]}" "-|$record|-"; do
        IFS='|' read -r src dest fmode <<<"$item"
        check_target "$dest"
    done

    load_record || true
    for item in "${plan[@]}"; do
        IFS='|' read -r src dest fmode <<<"$item"
        put "$src" "$dest" "$fmode"
    done

    # The record, written last and the same careful way.
    {
        echo "# cryptohost installed-files: written by scripts/install.sh; kind, sha256, path (without DESTDIR)."
        echo "# \`scripts/install.sh uninstall\` removes each file that still has this sha256, then each"
        echo "# directory listed that is empty, then this file."
        for path in "${order[@]}"; do
            read -r kind sum <<<"${entry[$path]}"
            printf '%s %s %s\n' "$kind" "$sum" "$path"
        done
    } >"$work/installed-files"
    ensure_dir "$libdir"
    check_target "$record"
    tmp_current="$(mktemp -- "$DESTDIR$libdir/.cryptohost-install.XXXXXXXX")"
    cat -- "$work/installed-files" >"$tmp_current"
    chmod 0644 -- "$tmp_current"
    mv -f -T -- "$tmp_current" "$DESTDIR$record"
    tmp_current=""

    say "installed into ${DESTDIR:-/} (PREFIX=$PREFIX SYSCONFDIR=$SYSCONFDIR); the record is $DESTDIR$record"
    if [ "$config_dest" != "$config" ]; then
        say "kept the existing $DESTDIR$config (never overwritten); wrote $DESTDIR$config_dest beside it:"
        say "  compare the two; the pins in the .new file match the components just installed"
    fi
    if [ -z "$DESTDIR" ] && [ ! -d "$statedir/audit" ]; then
        cat <<EOF
install.sh: the service's account and state are not set up; as root, once (the package does this):
  groupadd --system cryptohost-clients
  useradd --system --user-group --home-dir $statedir --no-create-home --shell /usr/sbin/nologin cryptohost
  install -d -o root -g cryptohost -m 0750 $statedir
  install -d -o cryptohost -g cryptohost -m 0750 $statedir/audit
  install -d -o cryptohost -g cryptohost -m 0700 $statedir/cache-digests
  systemctl daemon-reload && systemctl enable --now cryptohost.socket
EOF
    fi
}

if [ "$mode" = install ]; then do_install; else do_uninstall; fi
