#!/usr/bin/env bash
# Makes sure the PHP CLI is installed. The pass-mode integration tests run `php -S` on 127.0.0.1
# as the application behind the gateway, so that forms are checked against PHP's own multipart
# parser ($_POST, $_FILES); they fail when php is missing.
#
#   integration/testenv/php-up.sh      # scripts/test runs it before the integration tests
#
# Does nothing when `php` is on PATH. Otherwise installs Debian's php-cli with apt-get (as root, or
# through sudo): CI runs as root on a fresh machine.
set -euo pipefail

if command -v php >/dev/null 2>&1; then
  echo "php $(php -r 'echo PHP_VERSION;') is installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "php-up.sh: php is missing and there is no apt-get: install the PHP CLI (8.x) some other way" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi
echo "installing php-cli with apt-get..."
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends php-cli >/dev/null
echo "php $(php -r 'echo PHP_VERSION;') installed"
