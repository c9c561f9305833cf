#!/usr/bin/env bash
# Builds tusd (github.com/tus/tusd/v2 with its s3store, pinned by integration/bench/tusd/go.mod)
# behind the small server in integration/bench/tusd/main.go, for the benchmark's tus table
# (integration/bench/tus.go), and prints the binary's path on stdout. tusd stays out of the main
# go.mod: the server is a module of its own, built with -mod=readonly like
# integration/testenv/build-tools.sh builds weed and lkms.
#
# The binary goes to ~/.cache/upload-gateway/tusd-<hash of its go.sum>/tusd (or
# UPLOAD_GATEWAY_TUSD_DIR), so bumping the pin builds afresh; it is built only when missing, to a
# temporary name renamed at the end. scripts/bench runs this when the tus table is on.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v sha256sum >/dev/null 2>&1 || sha256sum() { shasum -a 256; } # macOS: same output
# Keep this formula: integration/bench/tus.go finds the binary by it.
H=$(sha256sum <"$HERE/tusd/go.sum" | cut -c1-16)
BIN=${UPLOAD_GATEWAY_TUSD_DIR:-$HOME/.cache/upload-gateway/tusd-$H}
mkdir -p "$BIN"
say() { printf 'tusd-build: %s\n' "$*" >&2; }
export GOWORK=off

if [ ! -x "$BIN/tusd" ]; then
  # One build at a time per cache directory; the second caller finds the binary there.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$BIN/.lock"
    flock 9
  fi
fi
if [ ! -x "$BIN/tusd" ]; then
  tmp="$BIN/.tusd.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  say "building tusd into $BIN (first time only, about a minute on 2 cores)..."
  start=$SECONDS
  (cd "$HERE/tusd" && go build -mod=readonly -buildvcs=false -trimpath -o "$tmp" .) || {
    say "building tusd FAILED (see the go output above)"
    exit 1
  }
  mv -f "$tmp" "$BIN/tusd"
  say "built $BIN/tusd in $((SECONDS - start))s"
fi
echo "$BIN/tusd"
