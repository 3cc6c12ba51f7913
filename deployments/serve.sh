#!/usr/bin/env bash
# `make serve`: a local Prefect server with its UI, the fashionrec work pool, the deployments
# of deployments/prefect.yaml and a worker, plus the MLflow UI, all in the foreground.
# Ctrl-C (or SIGTERM) stops every process this script started.
#
# Settings (environment, defaults in brackets):
#   FASHIONREC_BIN            folder holding prefect, mlflow and python      [.venv/bin, else PATH]
#   FASHIONREC_PREFECT_PORT   Prefect server and UI port on 127.0.0.1        [4200]
#   FASHIONREC_MLFLOW_PORT    MLflow UI port on 127.0.0.1; 0 = no MLflow UI  [5000]
#   FASHIONREC_FIRST_RUN      1: when the data dir has no champion model yet, run train-compat
#                             and then nightly-refresh once, so there is something to see  [1]
#   and those of deployments/prefect.yaml: FASHIONREC_CATALOG, FASHIONREC_DATA,
#   FASHIONREC_BACKBONE, FASHIONREC_TIMEZONE, FASHIONREC_NIGHTLY_CRON, FASHIONREC_TRAIN_CRON.
# PREFECT_HOME (the server's database, default ~/.prefect) is Prefect's own setting.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${FASHIONREC_BIN:-$ROOT/.venv/bin}
if [ -x "$BIN/prefect" ]; then export PATH="$BIN:$PATH"; fi
HOST=127.0.0.1
PORT=${FASHIONREC_PREFECT_PORT:-4200}
MLFLOW_PORT=${FASHIONREC_MLFLOW_PORT:-5000}
POOL=fashionrec  # the work pool named in deployments/prefect.yaml
export FASHIONREC_CATALOG=${FASHIONREC_CATALOG:-demo-data/sample-catalog}
export FASHIONREC_DATA=${FASHIONREC_DATA:-demo-data}
export PREFECT_API_URL="http://$HOST:$PORT/api"
export PREFECT_UI_URL="http://$HOST:$PORT"
export PREFECT_LOGGING_EXTRA_LOGGERS=fashionrec
export PREFECT_SERVER_ANALYTICS_ENABLED=${PREFECT_SERVER_ANALYTICS_ENABLED:-false}
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false

say() { printf '\033[1m[serve %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*"; }

PIDS=()  # what start() started; PIDS[0] is the server, stopped last
start() {  # start "$@" in the background in its own process group
    if command -v setsid >/dev/null; then setsid "$@" & else "$@" & fi
    PIDS+=($!)
}
tree() {  # the pids given and all their descendants (flow runs run in sessions of their own)
    ps -eo pid=,ppid= | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
        { parent[$1] = $2 }
        END { do { grown = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grown = 1 } } while (grown)
              for (p in keep) print p }'
}
terminate() {  # SIGTERM the given pids and their descendants; SIGKILL what is left after 15 s
    local pids pid
    pids=$(tree "$@")
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 60); do
        local alive=0
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.25
    done
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
}
stop() {
    trap - INT TERM EXIT
    say "stopping..."
    # the worker and its flow runs first, while the server can still record their final states
    if [ "${#PIDS[@]}" -gt 1 ]; then terminate "${PIDS[@]:1}"; fi
    if [ "${#PIDS[@]}" -gt 0 ]; then terminate "${PIDS[0]}"; fi
    say "stopped"
}
trap stop INT TERM EXIT

if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
    echo "port $PORT on $HOST is in use (another Prefect server?): stop it or set FASHIONREC_PREFECT_PORT" >&2
    exit 1
fi

say "starting the Prefect server on $PREFECT_UI_URL"
start prefect server start --host "$HOST" --port "$PORT"
http_ok() {  # GET http://$HOST:$PORT$1 answers 200 (bash's /dev/tcp: no process to start)
    local status
    { exec 3<>"/dev/tcp/$HOST/$PORT"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$HOST" >&3
    read -r -t 5 _ status _ <&3 || status=
    exec 3<&- 3>&-
    [ "$status" = 200 ]
}
for i in $(seq 1 600); do
    if http_ok /api/health; then break; fi
    kill -0 "${PIDS[0]}" 2>/dev/null || { echo "the Prefect server exited; see its output above" >&2; exit 1; }
    [ "$i" = 600 ] && { echo "the Prefect server did not answer in 5 minutes" >&2; exit 1; }
    sleep 0.5
done

if ! http_ok "/api/work_pools/$POOL"; then
    say "creating the process work pool '$POOL'"
    prefect work-pool create "$POOL" --type process
fi

if [ ! -d "$FASHIONREC_CATALOG" ] && [ "$FASHIONREC_CATALOG" = demo-data/sample-catalog ]; then
    say "writing the sample catalogue to $FASHIONREC_CATALOG (set FASHIONREC_CATALOG for yours)"
    python -m app.cli sample-catalog "$FASHIONREC_CATALOG" --items 800 --seed 7
fi

say "applying deployments/prefect.yaml (catalogue $FASHIONREC_CATALOG, data dir $FASHIONREC_DATA)"
prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml

say "starting a worker for pool '$POOL'"
start prefect worker start --pool "$POOL" --type process

if [ "$MLFLOW_PORT" != 0 ]; then
    mkdir -p "$FASHIONREC_DATA"
    # the data dir's own tracking store, as the library names it (fashionrec/storage/data_dir.py)
    MLFLOW_URI=$(python -c 'import sys; from fashionrec.storage.data_dir import DataDir; print(DataDir.open(sys.argv[1]).mlflow_uri)' "$FASHIONREC_DATA")
    say "starting the MLflow UI on http://$HOST:$MLFLOW_PORT"
    start mlflow ui --host "$HOST" --port "$MLFLOW_PORT" --workers 1 --backend-store-uri "$MLFLOW_URI"
fi

has_champion() {
    python - "$FASHIONREC_DATA" <<'EOF' 2>/dev/null
import sys
from fashionrec.storage.data_dir import DataDir
data = DataDir.open(sys.argv[1])
if data.owns_mlflow_store and not data.mlflow_db.exists():
    sys.exit(1)
from fashionrec.compat.tracking import list_models
sys.exit(0 if any("champion" in m["aliases"] for m in list_models(data)) else 1)
EOF
}
if [ "${FASHIONREC_FIRST_RUN:-1}" = 1 ] && ! has_champion; then
    say "no champion model in $FASHIONREC_DATA yet: running train-compat, then nightly-refresh"
    start bash -c 'prefect deployment run train-compat/train-compat --watch >/dev/null \
        && prefect deployment run nightly-refresh/nightly-refresh >/dev/null'
fi

say "ready: open $PREFECT_UI_URL (Deployments: nightly-refresh, train-compat). Ctrl-C stops everything."
# Return as soon as the server or the worker exits (or on Ctrl-C, through the trap).
wait -n "${PIDS[0]}" "${PIDS[1]}" || true
