#!/usr/bin/env bash
# Issue 7's and issue 11's speed benchmarks on a machine with more cores than the 2-core
# dev box, as one command: the gateway's added latency and requests/s against the direct
# node (bench_gateway.py), its CPU per request (probe_gateway_cpu.py), the routing pick at
# 10,000 nodes (bench_pick.py), heartbeats on PostgreSQL with 10,000 nodes
# (bench_heartbeats.py) and 1, 2 and 3 replicas (bench_replicas.py). Sim nodes throughout:
# SIMULATED (they answer at once); no real model runs here.
#
#   OUT=DIR [STEPS="gateway pick ..."] [GATEWAY_RUNS="1 2"] bash benchmarks/many_cores.sh [quick]
#
# For a machine without the project's dependencies or a PostgreSQL server and without a
# package index (the lent GPU machine), carry them in .devcarry/ (git-ignored):
#   .devcarry/whl/*.whl    the dependencies as wheels for that machine's Python
#   .devcarry/pg15.tar.xz  a PostgreSQL 15 tree (usr/lib/postgresql/15/{bin,lib},
#                          usr/share/postgresql/15, libs/ with the libraries it links)
# `bash benchmarks/make_devcarry.sh` builds both on a Debian machine with PostgreSQL 15.
# Without .devcarry the script uses $PYTHON (default .venv/bin/python, else python3) and the
# PostgreSQL at $LLM_MESH_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test).
# Each benchmark's output goes to $OUT/log.txt; the JSON results to $OUT/results.tgz.
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/many-cores}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
QUICK=${1:-}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
say() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }

export PYTHONPATH="$PWD"
if [ -d .devcarry/whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/llm-mesh-site .devcarry/whl/*.whl >>"$LOG" 2>&1 || { say "wheel install failed"; exit 1; }
    export PYTHONPATH="/tmp/llm-mesh-site:$PWD"
fi

PG_STARTED=""
if [ -f .devcarry/pg15.tar.xz ]; then
    rm -rf /tmp/llm-mesh-pg && mkdir -p /tmp/llm-mesh-pg/data
    tar xJf .devcarry/pg15.tar.xz -C /tmp/llm-mesh-pg
    chmod -R a+rX /tmp/llm-mesh-pg  # the tree's root came from mktemp -d (0700): runuser nobody
    B=/tmp/llm-mesh-pg/usr/lib/postgresql/15/bin
    PGLIB=/tmp/llm-mesh-pg/libs
    RUNAS=()
    if [ "$(id -u)" = 0 ]; then
        chown -R nobody /tmp/llm-mesh-pg/data
        RUNAS=(runuser -u nobody --)
    fi
    LD_LIBRARY_PATH=$PGLIB "${RUNAS[@]}" "$B"/initdb -D /tmp/llm-mesh-pg/data/d -U postgres \
        --auth=trust -E UTF8 --locale=C.UTF-8 >>"$LOG" 2>&1 || { say "initdb failed"; exit 1; }
    LD_LIBRARY_PATH=$PGLIB "${RUNAS[@]}" "$B"/pg_ctl -D /tmp/llm-mesh-pg/data/d -w \
        -o "-p 55432 -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=400" \
        -l /tmp/llm-mesh-pg/data/log start >>"$LOG" 2>&1 || { say "postgres failed"; cat /tmp/llm-mesh-pg/data/log >>"$LOG"; exit 1; }
    LD_LIBRARY_PATH=$PGLIB "$B"/psql -q -h 127.0.0.1 -p 55432 -U postgres -c "CREATE DATABASE test" >>"$LOG" 2>&1
    export LLM_MESH_TEST_PG_URL=postgresql://postgres@127.0.0.1:55432/test
    PG_STARTED=1
fi

{
    say "machine"
    nproc; grep -m1 "model name" /proc/cpuinfo; free -g | head -2; uptime
    "$PY" -c "import sys, fastapi, uvicorn, aiohttp, sqlalchemy; print(sys.version.split()[0], fastapi.__version__, uvicorn.__version__, aiohttp.__version__, sqlalchemy.__version__)"
    git log -1 --format="tree at %h %s" 2>/dev/null || true
} 2>&1 | tee -a "$LOG"

STEPS=${STEPS:-gateway gateway-cpu pick heartbeats replicas}  # which of them to run
run() {  # run SECONDS NAME ARGS...
    local limit=$1 name=$2; shift 2
    case " $STEPS " in *" ${name%-[0-9]} "*) ;; *) return 0 ;; esac
    say "$name: $*"
    PYTHONUNBUFFERED=1 timeout "$limit" "$PY" "$@" 2>&1 | tee -a "$LOG" | grep -v "^  " | tail -40
    say "$name: exit ${PIPESTATUS[0]}"
}

if [ "$QUICK" = quick ]; then
    run 120 gateway benchmarks/bench_gateway.py --sequential 100 --concurrent 200 --concurrency 10 --gateway-workers 2 \
        --warmup 20 --no-litellm --settlement both
    run 120 heartbeats benchmarks/bench_heartbeats.py --nodes 500 --seconds 3 --procs 2 \
        --concurrency 32 --legs hot
    run 120 replicas benchmarks/bench_replicas.py --seconds 3 --concurrency 16 --nodes 2
else
    # ours-wN: the registry as N processes (registry serve --workers N, PostgreSQL)
    for i in ${GATEWAY_RUNS:-1 2}; do
        if [ "$i" = 1 ]; then W=1,4,8; else W=2,4; fi
        run 200 "gateway-$i" benchmarks/bench_gateway.py --sequential 600 --concurrent 1200 \
            --concurrency 10 --warmup 100 --no-litellm --settlement both --gateway-workers "$W"
    done
    run 100 gateway-cpu benchmarks/probe_gateway_cpu.py --requests 2000 --warmup 200 \
        --settlement both --no-profile
    run 60 pick benchmarks/bench_pick.py --nodes 10000 --rounds 10
    run 150 heartbeats benchmarks/bench_heartbeats.py --nodes 10000 --seconds 15 --procs 4 \
        --concurrency 128 --legs hot,fastapi
    run 130 replicas benchmarks/bench_replicas.py --seconds 10 --concurrency 64 --nodes 3
fi

if [ -n "$PG_STARTED" ]; then
    LD_LIBRARY_PATH=$PGLIB "${RUNAS[@]}" "$B"/pg_ctl -D /tmp/llm-mesh-pg/data/d -m fast stop >>"$LOG" 2>&1
fi
tar czf "$OUT/results.tgz" bench-results 2>/dev/null || true
say "done"
