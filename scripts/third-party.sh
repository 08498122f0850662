#!/usr/bin/env bash
# Builds the SIP proxies sipweigh supports but Debian 12 does not package -- Kamailio 6.1.4 and
# OpenSIPS 3.6.8 -- from the release tarballs in ../shared/third_party, each into its own prefix under
# /opt/sipweigh, once. A later run finds the installed binary (right version, every module the shipped
# configs load) and takes no time. Called from setup.sh; `scripts/third-party.sh kamailio` or
# `... opensips` builds one of them only.
#
# Without the tarballs (a user's machine without ../shared) it skips with one line: the platforms' own
# packages are the way there (docs/platforms.md).
#
# Environment: SIPWEIGH_THIRD_PARTY = the folder with the tarballs and SHA256SUMS;
#              SIPWEIGH_OPT = the prefixes' parent (default /opt/sipweigh).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'third-party: %s\n' "$*" >&2; }

KAMAILIO_VERSION=6.1.4
OPENSIPS_VERSION=3.6.8
opt="${SIPWEIGH_OPT:-/opt/sipweigh}"
kam_prefix="$opt/kamailio-$KAMAILIO_VERSION"
osips_prefix="$opt/opensips-$OPENSIPS_VERSION"

want="${1:-all}"
case "$want" in all | kamailio | opensips) ;; *)
  say "usage: $0 [all|kamailio|opensips]"
  exit 2
  ;;
esac

# The tarballs: ../shared relative to the package root (a clone next to shared/), or two levels up (a
# git worktree under a folder of worktrees); SIPWEIGH_THIRD_PARTY overrides both.
src=""
for d in "${SIPWEIGH_THIRD_PARTY:-}" ../shared/third_party ../../shared/third_party; do
  if [ -n "$d" ] && [ -f "$d/SHA256SUMS" ]; then
    src="$(cd "$d" && pwd)"
    break
  fi
done
if [ -z "$src" ]; then
  say "no ../shared/third_party here: not building Kamailio $KAMAILIO_VERSION / OpenSIPS $OPENSIPS_VERSION (tests run on the installed packages; docs/platforms.md)"
  exit 0
fi

# Modules the shipped and lab configs (and the tests' inline configs) load: the build includes only
# these, which is what makes it quick. Read from the sources so a config that gains a module gets a
# rebuild (the installed-check below looks for every one of them).
# The tests also hold inline OpenSIPS configs: their transport modules (proto_udp, proto_tcp) are
# OpenSIPS's own, Kamailio has none, so they are left out (else the check below never passes and every
# setup rebuilds Kamailio).
kamailio_modules() {
  grep -rhoE 'loadmodule[ (]*"[a-z_0-9]+(\.so)?"' kamailio src/lab/kamailio test 2>/dev/null |
    sed -E 's/.*"([a-z_0-9]+)(\.so)?"/\1/' | grep -v '^proto_' | sort -u
}

# OpenSIPS: the list the OpenSIPS LB's configs need, one per line in opensips/modules.txt (the one
# list: whoever edits opensips/ keeps it). UDP and TCP are in OpenSIPS 3.6's core (net/proto_udp,
# net/proto_tcp), not modules.
opensips_modules() {
  grep -vE '^\s*(#|$)' opensips/modules.txt | tr -d ' \t' | sort -u
}

# installed PREFIX BINARY VERSION_FLAG "version: name X.Y.Z" MODULE_DIR MODULES...
# (MODULE_DIR under lib64/ on 64-bit builds, lib/ otherwise)
installed() {
  local prefix=$1 bin=$2 flag=$3 expect=$4 moddir=$5
  shift 5
  [ -x "$prefix/sbin/$bin" ] || return 1
  "$prefix/sbin/$bin" "$flag" 2>/dev/null | grep -q "^$expect" || return 1
  local m
  local lib=lib64
  [ -d "$prefix/lib64/$moddir" ] || lib=lib
  for m in "$@"; do [ -f "$prefix/$lib/$moddir/$m.so" ] || return 1; done
}

# Build dependencies (Debian/Ubuntu), installed only when one is missing.
build_deps() {
  local pkgs=() p
  for p in gcc make bison flex pkg-config libssl-dev libmicrohttpd-dev libncurses-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
  done
  [ ${#pkgs[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing build dependencies ${pkgs[*]} and no apt-get here: install them, then run $0 again"
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing build dependencies ${pkgs[*]} (apt-get)"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

# unpack TARBALL -> prints the build folder; the checksum is checked first.
unpack() {
  local tarball=$1
  (cd "$src" && grep " $tarball\$" SHA256SUMS | sha256sum -c --status -) || {
    say "$src/$tarball does not match SHA256SUMS: not building it"
    return 1
  }
  local work
  work="$(mktemp -d /tmp/sipweigh-build.XXXXXX)"
  tar xzf "$src/$tarball" -C "$work"
  printf '%s/%s\n' "$work" "${tarball%.tar.gz}"
}

# sudo for the install when the prefix's parent is not writable.
as_root() {
  if [ -w "$opt" ] || { [ ! -e "$opt" ] && [ -w "$(dirname "$opt")" ]; }; then "$@"; else sudo "$@"; fi
}

build_kamailio() {
  local mods
  mapfile -t mods < <(kamailio_modules)
  if installed "$kam_prefix" kamailio -v "version: kamailio $KAMAILIO_VERSION" kamailio/modules "${mods[@]}"; then
    return 0
  fi
  build_deps
  local t0=$SECONDS dir log
  dir="$(unpack "kamailio-$KAMAILIO_VERSION.tar.gz")" || return 1
  log="$(dirname "$dir")/build.log"
  say "building Kamailio $KAMAILIO_VERSION into $kam_prefix (${#mods[@]} modules; log $log)"
  # `make cfg` builds every module except exclude_modules: exclude all the others.
  local exclude=() m
  for m in $(ls "$dir/src/modules"); do
    [ -d "$dir/src/modules/$m" ] || continue
    printf '%s\n' "${mods[@]}" | grep -qx "$m" || exclude+=("$m")
  done
  if ! (cd "$dir" &&
    make cfg prefix="$kam_prefix/" exclude_modules="${exclude[*]}" &&
    nice make -j2 all &&
    as_root make install) >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    say "Kamailio $KAMAILIO_VERSION build failed (log $log)"
    return 1
  fi
  installed "$kam_prefix" kamailio -v "version: kamailio $KAMAILIO_VERSION" kamailio/modules "${mods[@]}" || {
    say "Kamailio $KAMAILIO_VERSION installed but $kam_prefix/sbin/kamailio -v or a module is missing (log $log)"
    return 1
  }
  rm -rf "$(dirname "$dir")"
  say "built Kamailio $KAMAILIO_VERSION in $((SECONDS - t0)) s"
}

build_opensips() {
  local mods
  mapfile -t mods < <(opensips_modules)
  if installed "$osips_prefix" opensips -V "version: opensips $OPENSIPS_VERSION" opensips/modules "${mods[@]}"; then
    return 0
  fi
  build_deps
  local t0=$SECONDS dir log
  dir="$(unpack "opensips-$OPENSIPS_VERSION.tar.gz")" || return 1
  log="$(dirname "$dir")/build.log"
  say "building OpenSIPS $OPENSIPS_VERSION into $osips_prefix (${#mods[@]} modules; log $log)"
  local modules include=() m
  modules="$(printf 'modules/%s ' "${mods[@]}")"
  # httpd and mi_http are in OpenSIPS' exclude list by default (they need libmicrohttpd).
  for m in httpd mi_http; do printf '%s\n' "${mods[@]}" | grep -qx "$m" && include+=("$m"); done
  local vars=(include_modules="${include[*]}" modules="$modules" PREFIX="$osips_prefix/")
  if ! (cd "$dir" && nice make -j2 all "${vars[@]}" && as_root make install "${vars[@]}") >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    say "OpenSIPS $OPENSIPS_VERSION build failed (log $log)"
    return 1
  fi
  installed "$osips_prefix" opensips -V "version: opensips $OPENSIPS_VERSION" opensips/modules "${mods[@]}" || {
    say "OpenSIPS $OPENSIPS_VERSION installed but $osips_prefix/sbin/opensips -V or a module is missing (log $log)"
    return 1
  }
  rm -rf "$(dirname "$dir")"
  say "built OpenSIPS $OPENSIPS_VERSION in $((SECONDS - t0)) s"
}

# Serialised: two setups at once (two clones, CI and a developer) build once, the second then finds it.
# SIPWEIGH_BUILD_LOCK_HELD=1: the caller already holds it (`flock /tmp/sipweigh-build.lock ...`).
# The lock file is made writable by all: a second user's setup must not fail on it when everything is
# already installed.
if [ -z "${SIPWEIGH_BUILD_LOCK_HELD:-}" ]; then
  if (umask 000 && exec 9>>/tmp/sipweigh-build.lock) 2>/dev/null; then
    exec 9>>/tmp/sipweigh-build.lock
    flock 9
  else
    say "cannot open /tmp/sipweigh-build.lock; building without the lock"
  fi
fi
rc=0
if [ "$want" != opensips ]; then build_kamailio || rc=1; fi
if [ "$want" != kamailio ]; then build_opensips || rc=1; fi
exit $rc
