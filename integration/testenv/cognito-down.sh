#!/usr/bin/env bash
# Stops the cognito-local that cognito-up.sh started in WORKDIR, by its PID file only: SIGTERM,
# wait, then SIGKILL. A PID whose process is not ours any more (its command line does not mention
# WORKDIR) is left alone. Removes the PID file; the data (WORKDIR/cognito) and the log stay.
#
#   integration/testenv/cognito-down.sh WORKDIR
#
# Environment: UGW_TESTENV_STOP_TIMEOUT  seconds to wait after SIGTERM (default 15)
set -euo pipefail

WORK=${1:?usage: $0 WORKDIR}
[ -d "$WORK" ] || exit 0
WORK=$(cd "$WORK" && pwd)
STOP_TIMEOUT=${UGW_TESTENV_STOP_TIMEOUT:-15}
PIDFILE=$WORK/cognito.pid
[ -f "$PIDFILE" ] || exit 0

say() { printf 'cognito: %s\n' "$*" >&2; }

cmdline() {
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
  else
    ps -o args= -p "$1" 2>/dev/null || true
  fi
}

# Running (not a zombie waiting for its parent) and started for this WORKDIR.
ours() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ] || return 1
  fi
  case "$(cmdline "$1")" in
  *"$WORK/cognito/"*) return 0 ;;
  *) return 1 ;;
  esac
}

pid=$(tr -dc '0-9' <"$PIDFILE")
if [ -n "$pid" ] && ours "$pid"; then
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while ours "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if ours "$pid"; then
    say "cognito-local (pid $pid) did not stop within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do ours "$pid" || break; sleep 0.1; done
    if ours "$pid"; then
      say "ERROR: cognito-local (pid $pid) is still running"
      exit 1
    fi
  fi
  # Give its parent (usually init) a moment to reap it, so that a `kill -0` right after this
  # script does not see a zombie.
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  say "stopped cognito-local (pid $pid)"
fi
rm -f "$PIDFILE"
