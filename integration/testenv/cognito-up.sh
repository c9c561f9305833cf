#!/usr/bin/env bash
# Starts cognito-local (a local emulator of the Amazon Cognito user pool API, issuing RS256 JWTs
# with a JWKS endpoint) on 127.0.0.1 and prepares it with cognito-setup/main.go: one user pool
# (usernames are emails), one app client (USER_PASSWORD_AUTH + REFRESH_TOKEN_AUTH, no secret),
# the groups admin/uploader/viewer and five test users. Then it appends `export UGW_COGNITO_...`
# lines to WORKDIR/env (created if missing; also printed on stdout).
#
#   integration/testenv/cognito-up.sh WORKDIR     # after up.sh WORKDIR; stop: cognito-down.sh WORKDIR
#
# Every start is fresh: the emulator's data (WORKDIR/cognito/.cognito) is wiped, so pool and client
# ids change on each start; re-running it with the same WORKDIR stops the previous emulator (by its
# PID file) and replaces the UGW_COGNITO_* lines of WORKDIR/env. Log: WORKDIR/cognito.log,
# PID: WORKDIR/cognito.pid.
#
# cognito-local is pinned by cognito/package-lock.json and installed once with `npm ci` into
# ~/.cache/upload-gateway/cognito-<hash of the lock file>/ (outside the clone; ~10 s, ~130 MB).
# Needs node >= 18 and npm (Debian/Ubuntu: apt-get install nodejs npm).
#
# Environment (all optional):
#   UGW_TESTENV_PORT_OFFSET      added to the default port (default 0; scripts/dev uses 100)
#   UGW_TESTENV_COGNITO_PORT     the emulator's port (default 21229 + offset)
#   UGW_TESTENV_START_TIMEOUT    seconds to wait for it (default 120)
#   UPLOAD_GATEWAY_COGNITO_DIR   install here instead of ~/.cache/upload-gateway/cognito-<hash>
#
# The variables written (see cognito-setup/main.go for the users and their groups):
#   UGW_COGNITO_ENDPOINT, UGW_COGNITO_POOL_ID, UGW_COGNITO_CLIENT_ID, UGW_COGNITO_ISSUER,
#   UGW_COGNITO_JWKS_URL, UGW_COGNITO_{ADMIN,UPLOADER,VIEWER,NOGROUP,NEWPW}_{EMAIL,PASSWORD},
#   UGW_COGNITO_PID
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${1:?usage: $0 WORKDIR}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
T0=$SECONDS
LOG_NAME=cognito
# shellcheck source=integration/testenv/lib.sh
. "$HERE/lib.sh"

OFF=${UGW_TESTENV_PORT_OFFSET:-0}
PORT=${UGW_TESTENV_COGNITO_PORT:-$((21229 + OFF))}
START_TIMEOUT=${UGW_TESTENV_START_TIMEOUT:-120}
ENDPOINT=http://127.0.0.1:$PORT

# ---- node + npm --------------------------------------------------------------------------------
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool is not installed; cognito-local needs node >= 18 and npm (Debian/Ubuntu: apt-get install nodejs npm)"
done
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 18 ] || die "node $(node --version) is too old; cognito-local needs node >= 18"

# ---- install (first time only) -----------------------------------------------------------------
# shellcheck source=npm.sh
. "$HERE/npm.sh"
H=$(sha256sum <"$HERE/cognito/package-lock.json" | cut -c1-16)
LOCKDIR=${UPLOAD_GATEWAY_COGNITO_DIR:-$HOME/.cache/upload-gateway/cognito-$H}
mkdir -p "$(dirname "$LOCKDIR")"
# One install at a time per directory; the second caller waits and then finds it installed.
if [ ! -f "$LOCKDIR/.installed" ] && command -v flock >/dev/null 2>&1; then
  exec 9>"$LOCKDIR.lock"
  if ! flock -n 9; then
    say "another install into $LOCKDIR is running; waiting for it..."
    flock 9
  fi
fi
npm_install "$HERE/cognito" "cognito-local (first time only, ~10 s)" "$LOCKDIR"
exec 9>&-
START_JS=$PKG/node_modules/cognito-local/lib/bin/start.js
[ -f "$START_JS" ] || die "$START_JS is missing; remove $PKG and run again"

STARTED=0
SETUP_BUILD=""
on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] || [ -z "$SETUP_BUILD" ] || wait "$SETUP_BUILD" 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ "$STARTED" = 1 ]; then
    say "start-up failed; stopping cognito-local again (log kept in $WORK/cognito.log)"
    "$HERE/cognito-down.sh" "$WORK" || true
  fi
}
trap on_exit EXIT

# ---- stop a previous run, fresh data -----------------------------------------------------------
"$HERE/cognito-down.sh" "$WORK"
if port_open "$PORT"; then
  die "port $PORT on 127.0.0.1 is already in use (another test environment, e.g. scripts/dev, or scripts/test?
  stop it with integration/testenv/cognito-down.sh <its dir>, or move this one with UGW_TESTENV_PORT_OFFSET=<n>)"
fi
rm -rf "$WORK/cognito/.cognito"
mkdir -p "$WORK/cognito" "$WORK/bin"

(cd "$ROOT" && go build -o "$WORK/bin/ugw-cognito-setup" ./integration/testenv/cognito-setup) &
SETUP_BUILD=$!

# ---- start -------------------------------------------------------------------------------------
# cognito-local binds to $HOST:$PORT (default localhost:9229), derives the tokens' issuer from
# them (http://HOST:PORT/<pool id>) and keeps its state in ./.cognito. It runs with an empty
# environment (CODE would fix every temporary password and MFA code, DEBUG the log level) and
# cwd WORKDIR/cognito. The last argument is ignored by cognito-local; it puts WORKDIR into the
# command line, which is how cognito-down.sh recognises the process as ours.
STARTED=1
DEADLINE=$((SECONDS + START_TIMEOUT))
(cd "$WORK/cognito" && exec env -i PATH="$PATH" HOME="$WORK" LANG=C HOST=127.0.0.1 PORT="$PORT" \
  AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE=1 node "$START_JS" "$WORK/cognito/" </dev/null) >"$WORK/cognito.log" 2>&1 &
PID=$!
echo "$PID" >"$WORK/cognito.pid"
say "started cognito-local (pid $PID); waiting for $ENDPOINT"
status=""
until [ "$status" = 200 ]; do
  alive "$PID" || { show_log cognito; die "cognito-local exited during start-up (see above)"; }
  if [ "$SECONDS" -ge "$DEADLINE" ]; then
    show_log cognito
    die "cognito-local did not answer on $ENDPOINT/health within ${START_TIMEOUT}s (last answer: ${status:-none})"
  fi
  sleep 0.1
  status=$(http_status "$PORT" /health)
done
say "cognito-local answers on $ENDPOINT after $((SECONDS - T0))s"

# It must listen on 127.0.0.1 only (it takes HOST from the environment: a changed default would
# put a token issuer with a public signing key on every interface).
if command -v ss >/dev/null 2>&1; then
  listeners=$(ss -Hltnp 2>/dev/null | awk -v p="pid=$PID," 'index($0, p) { print $4 }' | sort -u | tr '\n' ' ')
  case "$listeners" in
  "127.0.0.1:$PORT ") ;;
  "") say "(could not see cognito-local's sockets with ss; not checking its listen address)" ;;
  *) die "cognito-local listens on ${listeners% } instead of only 127.0.0.1:$PORT" ;;
  esac
fi

# ---- pool, client, groups, users; token checks -------------------------------------------------
wait "$SETUP_BUILD" || die "building integration/testenv/cognito-setup failed"
SETUP_BUILD=""
if ! VARS=$("$WORK/bin/ugw-cognito-setup" -endpoint "$ENDPOINT" \
  -timeout "$((DEADLINE > SECONDS + 30 ? DEADLINE - SECONDS : 30))s"); then
  show_log cognito
  die "cognito-setup failed (see above)"
fi
POOL_ID=$(printf '%s\n' "$VARS" | sed -n 's/^UGW_COGNITO_POOL_ID=//p')
[ -n "$POOL_ID" ] || die "cognito-setup printed no pool id"

# ---- env file ----------------------------------------------------------------------------------
{
  [ ! -f "$WORK/env" ] || grep -v -e '^export UGW_COGNITO_' -e '^# cognito-local:' "$WORK/env" || true
  printf '# cognito-local: written by integration/testenv/cognito-up.sh\n'
  {
    printf '%s\n' "UGW_COGNITO_ENDPOINT=$ENDPOINT"
    printf '%s\n' "$VARS"
    printf '%s\n' "UGW_COGNITO_ISSUER=$ENDPOINT/$POOL_ID"
    printf '%s\n' "UGW_COGNITO_JWKS_URL=$ENDPOINT/$POOL_ID/.well-known/jwks.json"
    printf '%s\n' "UGW_COGNITO_PID=$PID"
    # The emulator's fixed signing key (it ships in the package): tests mint tokens with it
    # to check claim validation on the real key path.
    printf '%s\n' "UGW_COGNITO_SIGNING_KEY=$PKG/node_modules/cognito-local/lib/keys/cognitoLocal.private.json"
  } | while IFS= read -r kv; do
    [ -n "$kv" ] && printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
  done
} >"$WORK/env.tmp"
mv -f "$WORK/env.tmp" "$WORK/env"
grep '^export UGW_COGNITO_' "$WORK/env"
say "cognito-local up in $((SECONDS - T0))s: $WORK/env (stop: integration/testenv/cognito-down.sh $WORK)"
