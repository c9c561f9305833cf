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

LOG_NAME=testenv
# shellcheck source=integration/testenv/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

entries=()
for name in weed kms; do
  f=$WORK/$name.pid
  [ -f "$f" ] || continue
  entries+=("$name=$(tr -dc '0-9' <"$f")")
done
stop_pids "$WORK/" "${entries[@]}"
rm -f "$WORK/weed.pid" "$WORK/kms.pid"
