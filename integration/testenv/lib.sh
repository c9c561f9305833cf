# Helpers shared by up.sh, down.sh, cognito-up.sh and cognito-down.sh (sourced, not run).
# The caller sets LOG_NAME (the prefix of its messages), WORK for show_log and STOP_TIMEOUT
# for stop_pids.

say() { printf '%s: %s\n' "$LOG_NAME" "$*" >&2; }
die() {
  printf '%s: ERROR: %s\n' "$LOG_NAME" "$*" >&2
  exit 1
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_status PORT [PATH]: the HTTP status of GET PATH (default /) on 127.0.0.1:PORT, or
# nothing (plain bash: no curl needed).
http_status() {
  local line=""
  {
    exec 3<>"/dev/tcp/127.0.0.1/$1" &&
      printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "${2:-/}" "$1" >&3 &&
      IFS=' ' read -r -t 3 _ line _ <&3
    exec 3<&- 3>&-
  } 2>/dev/null || true
  printf '%s' "$line"
}

# alive PID: the process exists.
alive() { kill -0 "$1" 2>/dev/null; }

# show_log NAME: the last lines of WORK/NAME.log, on stderr.
show_log() {
  local f=$WORK/$1.log
  [ -f "$f" ] || return 0
  printf -- '---- last lines of %s ----\n' "$f" >&2
  tail -n 40 "$f" >&2
  printf -- '---- end of %s ----\n' "$f" >&2
}

# pid_cmdline PID: the process's command line, or nothing.
pid_cmdline() {
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
  else
    ps -o args= -p "$1" 2>/dev/null || true
  fi
}

# pid_ours PID PATTERN: the process runs (is not a zombie waiting for its parent) and its
# command line contains PATTERN (the work directory it was started for).
pid_ours() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ] || return 1
  fi
  case "$(pid_cmdline "$1")" in
  *"$2"*) return 0 ;;
  *) return 1 ;;
  esac
}

# stop_pids PATTERN NAME=PID...: SIGTERM to each process that is ours, wait up to
# STOP_TIMEOUT seconds, then SIGKILL what is left. Fails if one survives.
stop_pids() {
  local pattern=$1 entry name pid
  shift
  local names=() pids=()
  for entry in "$@"; do
    name=${entry%%=*} pid=${entry#*=}
    if [ -n "$pid" ] && pid_ours "$pid" "$pattern"; then
      kill -TERM "$pid" 2>/dev/null || true
      names+=("$name")
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + STOP_TIMEOUT)) i
  for i in "${!pids[@]}"; do
    name=${names[$i]} pid=${pids[$i]}
    while pid_ours "$pid" "$pattern" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if pid_ours "$pid" "$pattern"; then
      say "$name (pid $pid) did not stop within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do pid_ours "$pid" "$pattern" || break; sleep 0.1; done
      if pid_ours "$pid" "$pattern"; then
        say "ERROR: $name (pid $pid) is still running"
        return 1
      fi
    fi
    # It has exited; give its parent (usually init) a moment to reap it, so that a `kill -0`
    # right after this does not see a zombie.
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "stopped $name (pid $pid)"
  done
}
