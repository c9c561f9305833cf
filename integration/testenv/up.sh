#!/usr/bin/env bash
# Starts the real-server test environment on 127.0.0.1 and prepares it:
#
#   local-kms   the AWS KMS API (tools/lkms, a loopback-only wrapper)
#   weed mini   SeaweedFS: S3 API with SigV4, presigned URLs, multipart, STS AssumeRole,
#               identity/bucket policies, SSE-KMS through local-kms
#
# then creates the KMS key + alias and the bucket, checks one SSE-KMS round trip (setup/main.go)
# and writes WORKDIR/env: `export UGW_...=...` lines for the tests (also printed on stdout).
#
#   integration/testenv/up.sh WORKDIR     # e.g. .testenv; stop with down.sh WORKDIR
#
# Re-running it with the same WORKDIR stops the previous servers (by their PID files) and starts
# again on the same data. Logs: WORKDIR/weed.log, WORKDIR/kms.log. PIDs: WORKDIR/*.pid.
# The first run builds SeaweedFS once (build-tools.sh, ~8 min on 2 cores).
#
# Environment (all optional):
#   UGW_TESTENV_PORT_OFFSET   added to every default port below (default 0; scripts/dev uses 100).
#                             Keep every port + 10000 below 32768 (the Linux ephemeral range).
#   UGW_TESTENV_S3_PORT       S3 + STS            (default 21833; its gRPC port is +10000)
#   UGW_TESTENV_KMS_PORT      local-kms           (default 21080)
#   UGW_TESTENV_MASTER_PORT   SeaweedFS master    (default 21333; gRPC +10000)
#   UGW_TESTENV_VOLUME_PORT   SeaweedFS volume    (default 21340; gRPC +10000)
#   UGW_TESTENV_FILER_PORT    SeaweedFS filer     (default 21888; gRPC +10000)
#   UGW_TESTENV_ADMIN_PORT    SeaweedFS admin     (default 21646; gRPC +10000; no UI, but it listens)
#   UGW_TESTENV_FRESH=1       wipe the stored data (objects, buckets, KMS keys) before starting
#   UGW_TESTENV_START_TIMEOUT seconds to wait for the servers (default 120)
#   UGW_TESTENV_STS_TOKEN_DURATION  STS session lifetime (default 1h; e.g. 30s to test expiry)
#   UPLOAD_GATEWAY_TOOLS_DIR  where the server binaries are built/cached (see build-tools.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${1:?usage: $0 WORKDIR}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
T0=$SECONDS
LOG_NAME=testenv
# shellcheck source=integration/testenv/lib.sh
. "$HERE/lib.sh"

# ---- settings ------------------------------------------------------------------------------
OFF=${UGW_TESTENV_PORT_OFFSET:-0}
S3_PORT=${UGW_TESTENV_S3_PORT:-$((21833 + OFF))}
KMS_PORT=${UGW_TESTENV_KMS_PORT:-$((21080 + OFF))}
MASTER_PORT=${UGW_TESTENV_MASTER_PORT:-$((21333 + OFF))}
VOLUME_PORT=${UGW_TESTENV_VOLUME_PORT:-$((21340 + OFF))}
FILER_PORT=${UGW_TESTENV_FILER_PORT:-$((21888 + OFF))}
ADMIN_PORT=${UGW_TESTENV_ADMIN_PORT:-$((21646 + OFF))}
GRPC=10000 # SeaweedFS's usual gRPC offset
START_TIMEOUT=${UGW_TESTENV_START_TIMEOUT:-120}
TOKEN_DURATION=${UGW_TESTENV_STS_TOKEN_DURATION:-1h}

REGION=us-east-1
BUCKET=uploads
KMS_ALIAS=alias/upload-gateway
STS_ROLE_ARN=arn:aws:iam::role/UploadRole
S3_ENDPOINT=http://127.0.0.1:$S3_PORT
KMS_ENDPOINT=http://127.0.0.1:$KMS_PORT

# Fake, test-only credentials (the servers only ever listen on 127.0.0.1).
ADMIN_ACCESS_KEY=AKIAUGWTESTADMIN0001
ADMIN_SECRET_KEY=ugwTestAdminSecret0000000000000000000001
READER_ACCESS_KEY=AKIAUGWTESTREADER001
READER_SECRET_KEY=ugwTestReaderSecret000000000000000000001
GATEWAY_ACCESS_KEY=AKIAUGWTESTGATEWAY01
GATEWAY_SECRET_KEY=ugwTestGatewaySecret00000000000000000001
STS_SIGNING_KEY=$(printf 'upload-gateway-testenv-sts-signing-key-0001' | base64 | tr -d '\n')

ALL_PORTS=("$S3_PORT" "$((S3_PORT + GRPC))" "$KMS_PORT" "$MASTER_PORT" "$((MASTER_PORT + GRPC))"
  "$VOLUME_PORT" "$((VOLUME_PORT + GRPC))" "$FILER_PORT" "$((FILER_PORT + GRPC))"
  "$ADMIN_PORT" "$((ADMIN_PORT + GRPC))")

# On any failure after this point, stop what was started (the logs stay in WORKDIR).
STARTED=0
SETUP_BUILD=""
on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] || [ -z "$SETUP_BUILD" ] || wait "$SETUP_BUILD" 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ "$STARTED" = 1 ]; then
    say "start-up failed; stopping the servers again (logs kept in $WORK)"
    "$HERE/down.sh" "$WORK" || true
  fi
}
trap on_exit EXIT

# ---- build (first time only) and stop a previous run ---------------------------------------
BIN=$("$HERE/build-tools.sh")
"$HERE/down.sh" "$WORK"

for p in "${ALL_PORTS[@]}"; do
  if port_open "$p"; then
    die "port $p on 127.0.0.1 is already in use (another test environment, e.g. scripts/dev, or scripts/test?
  stop it with integration/testenv/down.sh <its dir>, or move this one with UGW_TESTENV_PORT_OFFSET=<n>)"
  fi
done

if [ "${UGW_TESTENV_FRESH:-0}" = 1 ]; then
  say "UGW_TESTENV_FRESH=1: wiping stored objects and KMS keys in $WORK"
  rm -rf "$WORK/weed" "$WORK/kms"
fi
mkdir -p "$WORK/weed" "$WORK/kms" "$WORK/bin"
rm -f "$WORK/env"

sed -e "s|@ADMIN_ACCESS_KEY@|$ADMIN_ACCESS_KEY|g" -e "s|@ADMIN_SECRET_KEY@|$ADMIN_SECRET_KEY|g" \
  -e "s|@READER_ACCESS_KEY@|$READER_ACCESS_KEY|g" -e "s|@READER_SECRET_KEY@|$READER_SECRET_KEY|g" \
  -e "s|@GATEWAY_ACCESS_KEY@|$GATEWAY_ACCESS_KEY|g" -e "s|@GATEWAY_SECRET_KEY@|$GATEWAY_SECRET_KEY|g" \
  -e "s|@BUCKET@|$BUCKET|g" -e "s|@REGION@|$REGION|g" -e "s|@KMS_ENDPOINT@|$KMS_ENDPOINT|g" \
  -e "s|@STS_TOKEN_DURATION@|$TOKEN_DURATION|g" -e "s|@STS_SIGNING_KEY@|$STS_SIGNING_KEY|g" \
  -e "s|@STS_ROLE_ARN@|$STS_ROLE_ARN|g" \
  "$HERE/s3-config.json.in" >"$WORK/s3.json"
if grep -q '@[A-Z_]*@' "$WORK/s3.json"; then
  die "unreplaced placeholder in $WORK/s3.json: $(grep -o '@[A-Z_]*@' "$WORK/s3.json" | head -1)"
fi

# The setup program is built while the servers start (the first build takes a while).
(cd "$ROOT" && go build -o "$WORK/bin/ugw-testenv-setup" ./integration/testenv/setup) &
SETUP_BUILD=$!

# Both servers run with an empty environment, from their data directory and with HOME=WORKDIR:
# weed mini turns AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY into an extra admin identity, creates
# S3_BUCKET, reads WEED_* variables and master/security/filer.toml from . and ~/.seaweedfs;
# local-kms reads KMS_* variables. None of the developer's settings may leak in.
hermetic() {
  local dir=$1
  shift
  cd "$dir" && exec env -i PATH="$PATH" HOME="$WORK" LANG=C "$@" </dev/null
}

# ---- start local-kms -----------------------------------------------------------------------
STARTED=1
DEADLINE=$((SECONDS + START_TIMEOUT))
(hermetic "$WORK/kms" "$BIN/lkms" -addr "127.0.0.1:$KMS_PORT" -data "$WORK/kms" -region "$REGION") >"$WORK/kms.log" 2>&1 &
KMS_PID=$!
echo "$KMS_PID" >"$WORK/kms.pid"
until port_open "$KMS_PORT"; do
  alive "$KMS_PID" || { show_log kms; die "local-kms exited during start-up"; }
  [ "$SECONDS" -lt "$DEADLINE" ] || { show_log kms; die "local-kms did not listen on 127.0.0.1:$KMS_PORT within ${START_TIMEOUT}s"; }
  sleep 0.1
done

# ---- start SeaweedFS -----------------------------------------------------------------------
(hermetic "$WORK/weed" "$BIN/weed" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$MASTER_PORT" -master.port.grpc="$((MASTER_PORT + GRPC))" \
  -volume.port="$VOLUME_PORT" -volume.port.grpc="$((VOLUME_PORT + GRPC))" \
  -filer.port="$FILER_PORT" -filer.port.grpc="$((FILER_PORT + GRPC))" \
  -s3.port="$S3_PORT" -s3.port.grpc="$((S3_PORT + GRPC))" -s3.port.iceberg=0 -s3.port.lance=0 \
  -admin.port="$ADMIN_PORT" -admin.port.grpc="$((ADMIN_PORT + GRPC))" -admin.port.legacy=0 \
  -webdav=false -admin.ui=false -master.telemetry=false \
  -s3.config="$WORK/s3.json" -s3.iam.config="$WORK/s3.json") >"$WORK/weed.log" 2>&1 &
WEED_PID=$!
echo "$WEED_PID" >"$WORK/weed.pid"
say "started local-kms (pid $KMS_PID) and weed mini (pid $WEED_PID); waiting for S3 on $S3_ENDPOINT"

# Anonymous GET / gets 403 once the S3 gateway has its identities loaded.
status=""
while :; do
  status=$(http_status "$S3_PORT")
  [ "$status" = 403 ] && break
  alive "$WEED_PID" || { show_log weed; die "weed exited during start-up (see above)"; }
  if [ "$SECONDS" -ge "$DEADLINE" ]; then
    show_log weed
    die "S3 did not come up on $S3_ENDPOINT within ${START_TIMEOUT}s (last answer: ${status:-none})"
  fi
  sleep 0.25
done
say "S3 answers on $S3_ENDPOINT after $((SECONDS - T0))s"

# ---- KMS key + alias, bucket, SSE-KMS check ------------------------------------------------
wait "$SETUP_BUILD" || die "building integration/testenv/setup failed"
if ! KEY_ARN=$("$WORK/bin/ugw-testenv-setup" -s3-endpoint "$S3_ENDPOINT" -kms-endpoint "$KMS_ENDPOINT" \
  -region "$REGION" -access-key "$ADMIN_ACCESS_KEY" -secret-key "$ADMIN_SECRET_KEY" \
  -buckets "$BUCKET" -alias "$KMS_ALIAS" -wait "$((DEADLINE > SECONDS ? DEADLINE - SECONDS : 10))s"); then
  show_log kms
  show_log weed
  die "setup of the KMS key / bucket / SSE-KMS check failed (see above)"
fi
[ -n "$KEY_ARN" ] || die "setup printed no key ARN"

# ---- env file ------------------------------------------------------------------------------
# Node/cognito-local (added later) can append its own lines to WORKDIR/env after this script.
{
  printf '# written by integration/testenv/up.sh; source it: . %s/env\n' "$WORK"
  for kv in \
    "UGW_TESTENV_DIR=$WORK" \
    "UGW_S3_ENDPOINT=$S3_ENDPOINT" \
    "UGW_S3_REGION=$REGION" \
    "UGW_S3_BUCKET=$BUCKET" \
    "UGW_S3_ACCESS_KEY=$ADMIN_ACCESS_KEY" \
    "UGW_S3_SECRET_KEY=$ADMIN_SECRET_KEY" \
    "UGW_S3_READER_ACCESS_KEY=$READER_ACCESS_KEY" \
    "UGW_S3_READER_SECRET_KEY=$READER_SECRET_KEY" \
    "UGW_GATEWAY_ACCESS_KEY=$GATEWAY_ACCESS_KEY" \
    "UGW_GATEWAY_SECRET_KEY=$GATEWAY_SECRET_KEY" \
    "UGW_STS_ENDPOINT=$S3_ENDPOINT" \
    "UGW_STS_ROLE_ARN=$STS_ROLE_ARN" \
    "UGW_KMS_ENDPOINT=$KMS_ENDPOINT" \
    "UGW_KMS_KEY_ID=$KMS_ALIAS" \
    "UGW_KMS_KEY_ARN=$KEY_ARN" \
    "UGW_WEED_PID=$WEED_PID" \
    "UGW_WEED_MASTER_URL=http://127.0.0.1:$MASTER_PORT" \
    "UGW_KMS_PID=$KMS_PID"; do
    printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
  done
} >"$WORK/env.tmp"
mv -f "$WORK/env.tmp" "$WORK/env"
grep '^export ' "$WORK/env"
say "test environment up in $((SECONDS - T0))s: $WORK/env (stop: integration/testenv/down.sh $WORK)"
