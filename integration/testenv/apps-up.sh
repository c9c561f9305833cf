#!/usr/bin/env bash
# Installs what the pass-mode integration tests run as the applications behind the gateway, so
# that the rewritten form is checked against each framework's own multipart parser:
#
#   PHP       php -S (Debian php-cli)                                 testdata/php/dump.php
#   Rack      ruby + Rack 2 + WEBrick (Debian ruby, ruby-rack, ruby-webrick)   testdata/rack/dump.rb
#   Werkzeug  /usr/bin/python3 + Werkzeug (Debian python3-werkzeug)  testdata/werkzeug/dump.py
#   Express   node + Express 5 + multer (npm, pinned by express/package-lock.json)   express/server.js
#   tus       node + tus-js-client (npm, pinned by tus-client/package-lock.json)      tus-client/upload.js
#   Uppy      @uppy/core, @uppy/aws-s3, @uppy/tus + esbuild (npm, pinned by uppy/package-lock.json),
#             bundled into each browser test's own page by integration/uppy_test.go's bundleUppy
#   Chromium  headless (Debian chromium), driven by chromedp in integration/browser_test.go; the
#             legacy PHP app it talks to is testdata/php/legacy/index.php
#
#   integration/testenv/apps-up.sh      # scripts/test runs it before the integration tests
#
# The tests start and stop the apps themselves (each on a free loopback port). Debian packages are
# installed with apt-get when missing (as root, or through sudo: CI runs as root on a fresh
# machine). Express and multer are installed once with `npm ci` into
# ~/.cache/upload-gateway/express-<hash of the lock file>/ (outside the clone; ~15 s), or into
# UPLOAD_GATEWAY_EXPRESS_DIR; the tests find them there the same way.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { printf 'apps: %s\n' "$*" >&2; }
die() {
  printf 'apps: ERROR: %s\n' "$*" >&2
  exit 1
}

# ---- Debian packages ---------------------------------------------------------------------------
missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
command -v ruby >/dev/null 2>&1 || missing+=(ruby)
if command -v ruby >/dev/null 2>&1; then
  ruby -e 'require "rack"' >/dev/null 2>&1 || missing+=(ruby-rack)
  ruby -e 'require "webrick"' >/dev/null 2>&1 || missing+=(ruby-webrick)
else
  missing+=(ruby-rack ruby-webrick)
fi
/usr/bin/python3 -c 'import werkzeug' >/dev/null 2>&1 || missing+=(python3-werkzeug)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 ||
    die "missing ${missing[*]} and there is no apt-get: install PHP 8 CLI, Ruby with Rack 2 and WEBrick, Python 3 with Werkzeug, Chromium some other way"
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  say "installing ${missing[*]} with apt-get..."
  "${SUDO[@]}" apt-get update -qq -o DPkg::Lock::Timeout=600
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
say "$(chromium --version 2>/dev/null | head -n 1)"
say "php $(php -r 'echo PHP_VERSION;'), ruby $(ruby -e 'print RUBY_VERSION') with rack $(ruby -e 'require "rack"; print Rack.release'), werkzeug $(/usr/bin/python3 -c 'import importlib.metadata as m; print(m.version("werkzeug"))')"

# ---- Express + multer (npm) --------------------------------------------------------------------
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Debian: apt-get install nodejs npm)"
done
# shellcheck source=npm.sh
. "$HERE/npm.sh"

npm_install "$HERE/express" "express and multer" "${UPLOAD_GATEWAY_EXPRESS_DIR:-}"
say "express $(node -p "require('$PKG/node_modules/express/package.json').version"), multer $(node -p "require('$PKG/node_modules/multer/package.json').version") in $PKG"

# ---- tus-js-client (npm) -----------------------------------------------------------------------
# The resumable upload client of the upload_tus tests, installed the same way into
# ~/.cache/upload-gateway/tus-client-<hash of the lock file>/ (or UPLOAD_GATEWAY_TUS_CLIENT_DIR).
npm_install "$HERE/tus-client" tus-js-client "${UPLOAD_GATEWAY_TUS_CLIENT_DIR:-}"
say "tus-js-client $(node -p "require('$PKG/node_modules/tus-js-client/package.json').version") in $PKG"

# ---- Uppy + esbuild (npm) ----------------------------------------------------------------------
# Uppy's own client code for the browser tests, installed the same way into
# ~/.cache/upload-gateway/uppy-<hash of the lock file>/ (or UPLOAD_GATEWAY_UPPY_DIR).
npm_install "$HERE/uppy" "Uppy and esbuild" "${UPLOAD_GATEWAY_UPPY_DIR:-}"
say "@uppy/core $(node -p "require('$PKG/node_modules/@uppy/core/package.json').version"), @uppy/aws-s3 $(node -p "require('$PKG/node_modules/@uppy/aws-s3/package.json').version"), esbuild $(node -p "require('$PKG/node_modules/esbuild/package.json').version") in $PKG"
