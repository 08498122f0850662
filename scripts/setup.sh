#!/usr/bin/env bash
# Installs what sipweigh needs to run its lab, demo and tests, and nothing more; quick and quiet when
# everything is already there. Debian/Ubuntu: system packages through apt-get (sudo when not root),
# npm packages through `npm ci`, then the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
# kamailio: the LB and backends; sip-tester: sipp; openssh-server: the agentless collector's tests;
# ansible-core + ansible-lint: the Ansible role's tests (the role uses ansible.builtin only, so the big
# `ansible` collection package is not needed); systemd: `systemd-analyze verify` of the units (in a
# container nothing starts: no systemd runs as PID 1 and the policy-rc.d below refuses services).
declare -A need=([kamailio]=kamailio [sipp]=sip-tester [sshd]=openssh-server
  [ansible-playbook]=ansible-core [ansible-lint]=ansible-lint [systemd-analyze]=systemd)
missing=()
for cmd in "${!need[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ]; then missing+=("${need[$cmd]}"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${missing[*]} and no apt-get here: install them with your package manager"; exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  say "installing ${missing[*]} (apt-get)"
  $SUDO apt-get update -qq
  # A policy-rc.d that answers 101 keeps the packages' post-install scripts from starting system
  # services (a default Kamailio on every interface, a system sshd); the lab and the tests start
  # their own. Only when the host has none of its own, and removed afterwards.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
  # On a systemd host the package enables a default kamailio.service bound to every interface.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now kamailio >/dev/null 2>&1 || true
  fi
fi

# --- Kamailio 6.1 and OpenSIPS 3.6 -----------------------------------------------------------
# Built from ../shared/third_party into /opt/sipweigh once (about 1-2 min each); later runs find them
# and take no time. Without ../shared one line says so and the tests run on the installed packages.
# A failed build is not a failed setup: the test matrix runs on the platforms that are installed and
# says which (test/support/platforms.ts), and the unit tests need neither.
bash scripts/third-party.sh || say "third-party build failed (above); the tests run on the installed platforms only"

# --- npm packages ------------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# --- build ---------------------------------------------------------------------------------------
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src scripts schemas tsconfig.json package-lock.json -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  say "building (tsc)"
  node node_modules/typescript/bin/tsc -p tsconfig.json
  touch "$stamp"
fi
