#!/usr/bin/env bash
# Installs Uppy's own server, @uppy/companion (pinned by integration/bench/companion/package-lock.json),
# for the benchmark that sets the gateway's Companion routes beside it (integration/bench/companion.go).
# Like integration/testenv/apps-up.sh's packages it is installed once with `npm ci --ignore-scripts`
# into ~/.cache/upload-gateway/companion-<hash of the lock file>/ (or UPLOAD_GATEWAY_COMPANION_DIR);
# the bench finds it there the same way. scripts/bench runs this.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { printf 'companion: %s\n' "$*" >&2; }
die() {
  printf 'companion: ERROR: %s\n' "$*" >&2
  exit 1
}
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Debian: apt-get install nodejs npm)"
done
# shellcheck source=../testenv/npm.sh
. "$HERE/../testenv/npm.sh"

npm_install "$HERE/companion" "@uppy/companion" "${UPLOAD_GATEWAY_COMPANION_DIR:-}"
say "@uppy/companion $(node -p "require('$PKG/node_modules/@uppy/companion/package.json').version") in $PKG"
