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
LOG_NAME=cognito
# shellcheck source=integration/testenv/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIDFILE=$WORK/cognito.pid
[ -f "$PIDFILE" ] || exit 0
stop_pids "$WORK/cognito/" "cognito-local=$(tr -dc '0-9' <"$PIDFILE")"
rm -f "$PIDFILE"
