#!/usr/bin/env bash
# Stops the servers that up.sh started in WORKDIR, by their PID files only: SIGTERM, wait,
# then SIGKILL. A PID whose process is not one of ours any more (its command line does not
# mention WORKDIR) is left alone. Removes the PID files; data and logs stay.
#
#   integration/testenv/down.sh WORKDIR
#
# Environment: UGW_TESTENV_STOP_TIMEOUT  seconds to wait after SIGTERM (default 15)
set -euo pipefail

WORK=${1:?usage: $0 WORKDIR}
[ -d "$WORK" ] || exit 0
WORK=$(cd "$WORK" && pwd)
STOP_TIMEOUT=${UGW_TESTENV_STOP_TIMEOUT:-15}

say() { printf 'testenv: %s\n' "$*" >&2; }

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
  *"$WORK/"*) return 0 ;;
  *) return 1 ;;
  esac
}

pids=()
names=()
for name in weed kms; do
  f=$WORK/$name.pid
  [ -f "$f" ] || continue
  pid=$(tr -dc '0-9' <"$f")
  if [ -n "$pid" ] && ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
    names+=("$name")
  fi
done

deadline=$((SECONDS + STOP_TIMEOUT))
for i in "${!pids[@]}"; do
  pid=${pids[$i]}
  while ours "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if ours "$pid"; then
    say "${names[$i]} (pid $pid) did not stop within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do ours "$pid" || break; sleep 0.1; done
    if ours "$pid"; then
      say "ERROR: ${names[$i]} (pid $pid) is still running"
      exit 1
    fi
  fi
  # It has exited; give its parent (usually init) a moment to reap it, so that a `kill -0` right
  # after this script does not see a zombie.
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  say "stopped ${names[$i]} (pid $pid)"
done
rm -f "$WORK/weed.pid" "$WORK/kms.pid"
