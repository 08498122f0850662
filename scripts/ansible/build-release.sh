#!/usr/bin/env bash
# Builds the release tarball the Ansible role installs: the compiled code, production node_modules,
# schemas, Kamailio and OpenSIPS snippets, systemd units, docs and examples, in one directory sipweigh-VERSION/.
# Hosts then need Node (>= 20.19) and nothing else: no npm, no registry access.
#   scripts/ansible/build-release.sh [OUT_DIR]     (default: dist/release; prints the tarball's path)
# Run it after the build (npm run build, or scripts/setup.sh). npm ci uses the local cache first.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-dist/release}"
version="$(node -p 'require("./package.json").version')"
[ -f dist/src/cli/main.js ] || { echo "build-release: dist/src is missing: run npm run build first" >&2; exit 1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
dir="$stage/sipweigh-$version"
mkdir -p "$dir/dist" "$dir/scripts"
cp -R package.json package-lock.json schemas kamailio opensips examples docs "$dir/"
# dist/schemas: the compiled code imports heartbeat.schema.json from there (resolveJsonModule).
cp -R dist/src dist/schemas "$dir/dist/"
cp -R scripts/systemd "$dir/scripts/systemd"
# Production dependencies only. --ignore-scripts: ssh2's optional native addon is not built (it
# falls back to pure JavaScript), so the tarball does not depend on the build host's compiler/libc.
# --no-update-notifier: npm's "new version available" notice goes to stderr even at --loglevel=error,
# after everything else, and a caller reading the last line of the output for the path got it instead.
(cd "$dir" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --no-update-notifier \
  --loglevel=error >/dev/null)

mkdir -p "$out"
tarball="$(cd "$out" && pwd)/sipweigh-$version.tar.gz"
# Sorted names, fixed owner and mtime: the same tree gives the same bytes, so the role (which names
# a release by the tarball's checksum) sees an unchanged release as unchanged.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' \
  -C "$stage" -cf - "sipweigh-$version" | gzip -n >"$tarball"
echo "$tarball"
