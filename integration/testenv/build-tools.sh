#!/usr/bin/env bash
# Builds the test-environment servers into a cache directory outside the clone and prints that
# directory on stdout:
#
#   weed  SeaweedFS (S3 API, STS, SSE-KMS), pinned by tools/weed/go.mod
#   lkms  local-kms (the AWS KMS API) on a loopback-only listener, pinned by tools/lkms/go.mod
#
# The directory name carries a hash of both go.sum files, so bumping a pin builds afresh and the
# old binaries are simply left behind. Only missing binaries are built. Each build goes to a
# temporary name and is renamed at the end, so an interrupted build never leaves a half binary.
#
# Environment:
#   UPLOAD_GATEWAY_TOOLS_DIR  use this directory instead of ~/.cache/upload-gateway/bin-<hash>
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$HERE/tools
# Keep this formula: other scripts and people's caches rely on the directory name.
command -v sha256sum >/dev/null 2>&1 || sha256sum() { shasum -a 256; } # macOS: same output
H=$(cd "$HERE" && cat tools/weed/go.sum tools/lkms/go.sum | sha256sum | cut -c1-16)
BIN=${UPLOAD_GATEWAY_TOOLS_DIR:-$HOME/.cache/upload-gateway/bin-$H}
mkdir -p "$BIN"

say() { printf 'build-tools: %s\n' "$*" >&2; }

# The tools are separate modules: never let a go.work from outside leak in, and never touch their
# go.mod/go.sum (-mod=readonly below).
export GOWORK=off

TMP_FILE=""
trap 'rm -f "$TMP_FILE"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# build NAME MODULE_DIR MESSAGE PACKAGE [go build flags...]
build() {
  local name=$1 dir=$2 msg=$3 pkg=$4
  shift 4
  [ -x "$BIN/$name" ] && return 0
  rm -f "$BIN/.$name.tmp."* # left by an interrupted build (we hold the lock)
  local tmp="$BIN/.$name.tmp.$$"
  TMP_FILE=$tmp
  say "$msg"
  local start=$SECONDS
  if ! (cd "$dir" && go build -mod=readonly -buildvcs=false "$@" -o "$tmp" "$pkg"); then
    rm -f "$tmp"
    say "building $name FAILED (see the go output above)"
    return 1
  fi
  mv -f "$tmp" "$BIN/$name"
  TMP_FILE=""
  say "built $BIN/$name in $((SECONDS - start))s"
}

# One build at a time per cache directory: two parallel SeaweedFS builds would need ~5 GB of RAM
# and twice the time. The second caller waits and then finds the binaries already there.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$BIN/.lock"
  if ! flock -n 9; then
    say "another build into $BIN is running; waiting for it..."
    flock 9
  fi
fi

build lkms "$TOOLS/lkms" "building local-kms into $BIN (first time only, a few seconds)..." . -trimpath
build weed "$TOOLS/weed" "building SeaweedFS into $BIN (first time only, ~8 min on 2 cores, ~2.5 GB RAM)..." \
  github.com/seaweedfs/seaweedfs/weed -trimpath -ldflags='-s -w'

echo "$BIN"
