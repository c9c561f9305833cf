#!/usr/bin/env bash
# Builds a Caddy binary with the upload gateway using xcaddy, for users who
# bundle other plugins too. Extra arguments go to `xcaddy build`:
#
#   ./xcaddy.sh                                        # -> bin/caddy
#   ./xcaddy.sh --with github.com/caddy-dns/route53    # plus another plugin
#
# The local module is pinned as <module>@v0.0.0=./ because xcaddy cannot
# resolve an unversioned local module offline.
set -euo pipefail
cd "$(dirname "$0")"
XCADDY_VERSION=${XCADDY_VERSION:-v0.4.5}
CADDY_VERSION=${CADDY_VERSION:-v2.11.9}
OUT=${OUT:-bin/caddy}
mkdir -p bin
XCADDY=$(command -v xcaddy || true)
if [ -z "$XCADDY" ]; then
  echo "installing xcaddy $XCADDY_VERSION into bin/" >&2
  GOBIN="$PWD/bin" go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
  XCADDY="$PWD/bin/xcaddy"
fi
MODULE=$(go list -m)
"$XCADDY" build "$CADDY_VERSION" --output "$OUT" --with "$MODULE@v0.0.0=./" "$@"
"$OUT" list-modules | grep -E '^http\.handlers\.upload_gateway$' >/dev/null || {
  echo "xcaddy.sh: the built binary does not list http.handlers.upload_gateway" >&2
  exit 1
}
echo "built $OUT with $("$OUT" list-modules | grep -c upload_gateway) upload gateway module(s)" >&2
