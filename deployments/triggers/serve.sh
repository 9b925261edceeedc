#!/usr/bin/env bash
# Run the exports for real on one machine: a Prefect server (with its scheduler), the
# `exports` process work pool with a concurrency limit, every trigger of prefect.yaml deployed,
# and a worker. `make serve` runs this; Ctrl-C (or SIGTERM) stops all of it within seconds:
# the worker first, then the server, each with everything it started; what has not stopped
# after STOP_GRACE_S is killed.
#
#   EXPORTS_PORT         the server's port (4200)
#   EXPORTS_CONCURRENCY  exports that run at once; more that fall due wait their turn (4)
#   EXPORTS_POOL         the work pool (exports; prefect.yaml deploys to it)
#   PREFECT_API_URL      set it to use a server that is already running (none is started)
#   PREFECT_API_DATABASE_CONNECTION_URL
#                        the server's database: SQLite under PREFECT_HOME by default;
#                        postgresql+asyncpg://user:pass@host/db for production
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${BIN:-.venv/bin}"
PORT="${EXPORTS_PORT:-4200}"
CONCURRENCY="${EXPORTS_CONCURRENCY:-4}"
POOL="${EXPORTS_POOL:-exports}"
STOP_GRACE_S=6
children=()  # each in a process group of its own (setsid), stopped with all it started

stop() {
    trap - EXIT INT TERM
    local index pid
    for ((index = ${#children[@]} - 1; index >= 0; index--)); do  # the worker first
        kill -TERM -- "-${children[index]}" 2>/dev/null || true
    done
    for _ in $(seq $((STOP_GRACE_S * 10))); do
        running=0
        for pid in "${children[@]}"; do
            if kill -0 -- "-$pid" 2>/dev/null; then running=1; fi
        done
        [[ $running == 0 ]] && break
        sleep 0.1
    done
    for pid in "${children[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "stopped"
}
trap stop EXIT INT TERM

"$BIN/exports" check

if [[ -z "${PREFECT_API_URL:-}" ]]; then
    export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
    setsid "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" &
    children+=($!)
    for _ in $(seq 120); do
        if "$BIN/python" -c "import httpx, sys; httpx.get(sys.argv[1]).raise_for_status()" \
            "$PREFECT_API_URL/health" 2>/dev/null; then
            break
        fi
        sleep 1
    done
fi
echo "Prefect API: $PREFECT_API_URL (the UI: ${PREFECT_API_URL%/api})"
echo "In another terminal, talk to this server (without it, Prefect starts a temporary one):"
echo "  export PREFECT_API_URL=$PREFECT_API_URL"
"$BIN/exports" setup

if ! "$BIN/prefect" work-pool inspect "$POOL" >/dev/null 2>&1; then
    "$BIN/prefect" work-pool create "$POOL" --type process
fi
"$BIN/prefect" work-pool set-concurrency-limit "$POOL" "$CONCURRENCY"
"$BIN/prefect" --no-prompt deploy --all
echo "deployed; starting a worker on pool $POOL (at most $CONCURRENCY exports at once)"

# An API trigger waits for the worker's next poll: 2 s instead of Prefect's 10 s by default.
PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-2}" \
    setsid "$BIN/prefect" worker start --pool "$POOL" --type process &
children+=($!)
wait -n "${children[@]}"
