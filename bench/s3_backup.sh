#!/usr/bin/env bash
# s3_backup.sh - backup throughput to S3: cassette against Fluxer's runbook pipeline, on the
# same node, the same data and the same S3 server, in the same run.
#
# Environment it makes (and stops by pid at the end): its own Cassandra node
# (tests/env/cassandra.sh --base $CASSETTE_BENCH_DIR start 1: 127.0.0.1:9042, JMX 7100) and its
# own versitygw (tests/env/s3.sh --dir $CASSETTE_BENCH_DIR/s3, on a free port). Node 1 of the
# test base (/tmp/cassette-test) uses the same ports: while something else answers on
# 127.0.0.1:9042 this script waits (up to BENCH_QUIET_WAIT) and then refuses. Everything
# under $CASSETTE_BENCH_DIR is made afresh on every run and removed after a good one.
#
# Data: tests/integration/dataset.py load (prefix bench: keyspaces bench_main and bench_side),
# scaled to ~BENCH_S3_SIZE_MIB MiB on disk, then nodetool flush and the end of compaction.
# Then it waits for a quiet machine (1-minute load average < BENCH_QUIET_LOAD) and measures:
#   raw      cat of the data set's snapshot files > /dev/null, page cache warm (best of 3)
#   cassette build/cassette backup --repo s3://bench/c1 --keyspace bench_main --keyspace
#            bench_side, the repository made by `cassette init --recipient` with a fresh age
#            key: zstd (level 3) + age + S3; then a second backup with nothing changed
#   fluxer   Fluxer's runbook, step by step: nodetool snapshot -t TAG; find the snapshot
#            directories and cp -r them to cassandra-backup-TAG/; DESC SCHEMA > schema.cql;
#            nodetool describecluster and status; tar -cf - cassandra-backup-TAG | age -r KEY
#            -o backup.tar.age; aws s3 cp (awscli via tests/env/s3.sh aws); rm; nodetool
#            clearsnapshot -t TAG (and rm of the staging copy)
#   fluxer + zstd   the same with tar | zstd | age (the runbook says "compress and encrypt"
#            but its pipe has no compressor; zstd at its default level)
# Wall times are EPOCHREALTIME around each run; CPU (user+sys, children included) and peak RSS
# from /usr/bin/time. Peak RSS is the largest process of the tool's own (cassette: its VmHWM,
# sampled every 0.1 s; Fluxer: the largest of tar, zstd, age, awscli, the schema dump), never
# the nodetool JVM, which both run (its CPU is shown apart). MiB/s is the data set's snapshot
# bytes over the wall time. Nothing is cached across runs but what the env scripts cache.
# Afterwards (untimed): cassette verify with the key, and Fluxer's object downloaded,
# decrypted and listed with tar -t; a failure fails the benchmark.
#
# Prints Markdown tables on stdout (progress on stderr); bench/run.sh appends them.
#
# Usage: bench/s3_backup.sh [--size MIB] [--smoke] [--node-base DIR]
#   --size MIB       data set size on disk (default $BENCH_S3_SIZE_MIB or 500)
#   --smoke          tiny data set, no waiting for a quiet machine, no Fluxer+zstd run: checks
#                    that the benchmark works (its tables say "smoke"); not a measurement
#   --node-base DIR  use node 1 of an already running cassandra.sh base (e.g. the test base)
#                    instead of starting one: no start-up wait (a smoke run then takes ~20 s,
#                    mostly nodetool JVM start-ups); the bench keyspaces are dropped at the end
# Environment: CASSETTE_BENCH_DIR (/tmp/cassette-bench), BENCH_S3_SIZE_MIB (500),
#   BENCH_QUIET_LOAD (1.5), BENCH_QUIET_WAIT (seconds, 1500; 0: do not wait),
#   BENCH_S3_PERF (1: one more cassette backup under `perf record`, report printed on stderr
#   and kept in $CASSETTE_BENCH_DIR/perf-cassette.txt), BENCH_KEEP (1: leave the node, the
#   S3 data and the work files in $CASSETTE_BENCH_DIR), CASSETTE_VENV, CASSETTE_CACHE.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/bench/$(basename "$0")"
ENV_DIR=$ROOT/tests/env
source "$ENV_DIR/common.sh"   # CASSETTE_CACHE, CASSETTE_VENV, port_open
CASSANDRA_SH=$ENV_DIR/cassandra.sh
S3_SH=$ENV_DIR/s3.sh
NODETOOL_SH=$ENV_DIR/nodetool.sh
DATASET_PY=$ROOT/tests/integration/dataset.py
PY=$CASSETTE_VENV/bin/python
CASSETTE=$ROOT/build/cassette
TIME=/usr/bin/time
JMX_PORT=7100
BUCKET=bench
KEYSPACES=(bench_main bench_side)
KS_ARGS=(--keyspace bench_main --keyspace bench_side)
# dataset.py at --scale 1.0 (100k rows) is this many MiB on disk after flush and compaction
# (measured on Cassandra 5.0.9 with cassandra.sh's settings); --size divides by it.
MIB_PER_SCALE=16.6

say() { echo "s3_backup: $*" >&2; }
fail() { echo "s3_backup: $*" >&2; exit 1; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }   # t0 t1 -> seconds
sum_sizes() { # DIR... : total bytes of the regular files under them (versitygw temp excluded)
    find "$@" -type f ! -path '*/.sgwtmp/*' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'
}

# ---------------------------------------------------------------------------------------
# Fluxer's runbook, run by this script under /usr/bin/time: $0 --fluxer-pipeline VARIANT
# (VARIANT: runbook = tar | age, zstd = tar | zstd | age). Its settings come in FX_* exports.
# Every step appends "name wall user sys maxrss_kb" to $FX_STEPS; the processes of the
# encrypting pipe append "name wall user sys maxrss_kb" to $FX_PROCS.
# ---------------------------------------------------------------------------------------
fx_step() {
    local name=$1 rc=0 t0 t1
    shift
    t0=$EPOCHREALTIME
    "$TIME" -f '%U %S %M' -o "$FX_WORK/step.time" "$@" || rc=$?
    t1=$EPOCHREALTIME
    echo "$name $(secs "$t0" "$t1") $(tail -n 1 "$FX_WORK/step.time")" >> "$FX_STEPS"
    (( rc == 0 )) || fail "Fluxer pipeline: step $name failed (exit $rc)"
}

fluxer_pipeline() {
    local variant=$1
    local nodetool=("$NODETOOL_SH" -h 127.0.0.1 -p "$JMX_PORT")
    # The runbook's names: snapshot backup-YYYYmmdd-HHMMSS, staging cassandra-backup-<tag>.
    local tag stage out key
    tag="backup-$(date -u +%Y%m%d-%H%M%S)"
    stage="cassandra-backup-${tag#backup-}"
    out=backup.tar.age
    [[ $variant == zstd ]] && out=backup.tar.zst.age
    key="$FX_PREFIX/$stage.${out#backup.}"
    cd "$FX_WORK"
    fx_step snapshot "${nodetool[@]}" snapshot -t "$tag" > /dev/null
    # "find /var/lib/cassandra/data -type d -name TAG", copied with the layout the runbook's
    # restore expects: cassandra-backup-TAG/<keyspace>/<table-id>/snapshots/TAG/
    fx_step collect bash -c '
        set -euo pipefail
        tag=$1 stage=$2; shift 2
        mkdir -p "$stage"; stage=$(cd "$stage" && pwd)
        for d in "$@"; do
            (cd "$d" && find . -type d -name "$tag" -prune -exec cp -r --parents {} "$stage" \;)
        done' _ "$tag" "$stage" "${FX_DATA_DIRS[@]}"
    fx_step schema "$PY" -c '
import sys
from cassandra.cluster import Cluster
c = Cluster([sys.argv[1]], port=9042, protocol_version=5)
try:
    for row in c.connect().execute("DESCRIBE SCHEMA", timeout=60):
        print(row.create_statement)
finally:
    c.shutdown()' 127.0.0.1 > "$stage/schema.cql"
    fx_step describecluster "${nodetool[@]}" describecluster > "$stage/cluster_topology.txt"
    fx_step status "${nodetool[@]}" status > "$stage/cluster_status.txt"
    # (for the report: the bytes tar is about to read; a few ms, not a step)
    find "$stage" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }' > "$FX_WORK/staged"
    local pipe='set -o pipefail
        p() { local n=$1; shift; "$TIME" -a -o "$FX_PROCS" -f "$n %e %U %S %M" "$@"; }'
    if [[ $variant == zstd ]]; then
        pipe+='
        p tar tar -cf - "$1" | p zstd zstd -q | p age age -r "$2" -o "$3"'
    else
        pipe+='
        p tar tar -cf - "$1" | p age age -r "$2" -o "$3"'
    fi
    fx_step encrypt env TIME="$TIME" FX_PROCS="$FX_PROCS" bash -c "$pipe" _ "$stage" "$FX_RECIPIENT" "$out"
    echo "$(stat -c %s "$out") $key" > "$FX_WORK/object"
    fx_step upload "$S3_SH" --dir "$FX_S3_DIR" aws s3 cp --only-show-errors "$out" "s3://$BUCKET/$key"
    fx_step clearsnapshot "${nodetool[@]}" clearsnapshot -t "$tag" > /dev/null
    fx_step cleanup rm -rf "$out" "$stage"
}

if [[ ${1:-} == --fluxer-pipeline ]]; then
    read -r -a FX_DATA_DIRS <<< "$FX_DATA_DIRS_STR"
    fluxer_pipeline "$2"
    exit 0
fi

# ---------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------
SIZE_MIB=${BENCH_S3_SIZE_MIB:-500}
SMOKE=0
NODE_BASE=${CASSETTE_BENCH_NODE_BASE:-}
BENCH_DIR=${CASSETTE_BENCH_DIR:-/tmp/cassette-bench}
QUIET_LOAD=${BENCH_QUIET_LOAD:-1.5}
QUIET_WAIT=${BENCH_QUIET_WAIT:-1500}
while (( $# )); do
    case $1 in
        --size) (( $# >= 2 )) || fail "--size needs a number of MiB"; SIZE_MIB=$2; shift 2 ;;
        --size=*) SIZE_MIB=${1#--size=}; shift ;;
        --smoke) SMOKE=1; shift ;;
        --node-base) (( $# >= 2 )) || fail "--node-base needs a directory"; NODE_BASE=$2; shift 2 ;;
        --node-base=*) NODE_BASE=${1#--node-base=}; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) fail "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $SIZE_MIB =~ ^[1-9][0-9]*$ ]] || fail "--size must be a whole number of MiB, got '$SIZE_MIB'"
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || fail "BENCH_QUIET_WAIT must be a number of seconds"
if (( SMOKE )); then
    SCALE=0.02
    QUIET_WAIT=0
else
    SCALE=$(awk -v m="$SIZE_MIB" -v k="$MIB_PER_SCALE" 'BEGIN { printf "%.3f", m / k }')
fi

for tool in "$TIME" age age-keygen tar zstd; do
    command -v "$tool" > /dev/null || fail "$tool is not installed"
done
[[ -x $PY ]] || fail "no Python venv at $CASSETTE_VENV (run scripts/install-deps.sh)"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
WORK=$BENCH_DIR/work
S3_DIR=$BENCH_DIR/s3
DEADLINE=$(( $(date +%s) + QUIET_WAIT ))
NOTES=()

# One run at a time per directory (make bench may start one while another runs): wait for the
# lock as long as for a quiet machine. The node and the S3 server must not inherit the lock.
exec {LOCK_FD}> "$BENCH_DIR/.lock"
if ! flock -n "$LOCK_FD"; then
    say "another s3_backup.sh run holds $BENCH_DIR/.lock; waiting up to $QUIET_WAIT s"
    flock -w "$QUIET_WAIT" "$LOCK_FD" || fail "another s3_backup.sh run still holds $BENCH_DIR/.lock"
fi

load1() { cut -d ' ' -f 1 /proc/loadavg; }

# ---------------------------------------------------------------------------------------
# Clean-up: stop what we started (by the pid we recorded), drop what we loaded
# ---------------------------------------------------------------------------------------
STARTED_NODE_PID=""
STARTED_S3_PID=""
LOADED_INTO_SHARED=0
cleanup() {
    local rc=$? pid
    set +e
    if [[ -n $STARTED_S3_PID ]]; then
        pid=$("$S3_SH" --dir "$S3_DIR" pid 2>/dev/null)
        if [[ $pid == "$STARTED_S3_PID" ]]; then "$S3_SH" --dir "$S3_DIR" stop >&2
        else say "versitygw pid $STARTED_S3_PID is gone already"; fi
    fi
    if [[ -n $STARTED_NODE_PID ]]; then
        pid=$("$CASSANDRA_SH" --base "$BENCH_DIR" pid 1 2>/dev/null)
        if [[ $pid == "$STARTED_NODE_PID" ]]; then "$CASSANDRA_SH" --base "$BENCH_DIR" stop 1 >&2
        else say "Cassandra pid $STARTED_NODE_PID is gone already"; fi
    fi
    if (( LOADED_INTO_SHARED )); then
        "$PY" "$DATASET_PY" --host 127.0.0.1 --prefix bench drop >&2
    fi
    if (( rc == 0 )) && [[ ${BENCH_KEEP:-0} != 1 ]]; then
        rm -rf "$WORK" "$S3_DIR" "$BENCH_DIR/node1"
    else
        say "left the node, S3 data and work files in $BENCH_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# Build, Cassandra node, S3 server
# ---------------------------------------------------------------------------------------
say "building (make -j2)"
make -C "$ROOT" -j2 > "$BENCH_DIR/build.log" 2>&1 || { tail -n 40 "$BENCH_DIR/build.log" >&2; fail "make failed"; }
[[ -x $CASSETTE ]] || fail "$CASSETTE is missing after make"

# Whatever an earlier run left: our own node and server are stopped (their pid files), and
# their directories go.
"$S3_SH" --dir "$S3_DIR" stop > /dev/null 2>&1 || true
if [[ -z $NODE_BASE ]]; then
    "$CASSANDRA_SH" --base "$BENCH_DIR" stop 1 > /dev/null 2>&1 || true
fi
rm -rf "$WORK" "$S3_DIR" "$BENCH_DIR/node1" "$BENCH_DIR/perf-cassette.txt"
mkdir -p "$WORK"

if [[ -n $NODE_BASE ]]; then
    NODE_BASE=$(cd "$NODE_BASE" && pwd) || fail "no directory $NODE_BASE"
    "$CASSANDRA_SH" --base "$NODE_BASE" status 1 > /dev/null 2>&1 ||
        fail "node 1 of $NODE_BASE is not running (--node-base uses a running node)"
    INI=$NODE_BASE/node1/cassette.ini
    NODE_DESC="node 1 of $NODE_BASE (already running)"
else
    # Node 1 listens on 127.0.0.1:9042 and JMX 7100, like node 1 of the test base. cassandra.sh
    # cannot run a lone node 2 (its seed list and token come from --nodes: a lone node 2 would
    # gossip with the test base's node 1), so we wait for the ports and then refuse.
    other_node() {
        { port_open 127.0.0.1 9042 || port_open 127.0.0.1 "$JMX_PORT"; } || return 1
        ! "$CASSANDRA_SH" --base "$BENCH_DIR" status 1 > /dev/null 2>&1
    }
    if other_node; then
        owner="another process"
        if "$CASSANDRA_SH" --base "${CASSETTE_TEST_DIR:-/tmp/cassette-test}" status 1 > /dev/null 2>&1; then
            owner="node 1 of the test base ${CASSETTE_TEST_DIR:-/tmp/cassette-test} (a test run?)"
        fi
        if (( QUIET_WAIT > 0 )); then
            say "127.0.0.1:9042 / JMX $JMX_PORT are taken by $owner; waiting until $(date -d @"$DEADLINE" +%T) for them to free up"
            while other_node && (( $(date +%s) < DEADLINE )); do sleep 10; done
        fi
        if other_node; then
            fail "127.0.0.1:9042 (CQL) or 127.0.0.1:$JMX_PORT (JMX) is taken by $owner. This benchmark runs its own node 1 on those ports; stop the other node or let the test run end, or benchmark against it with --node-base DIR."
        fi
    fi
    say "starting Cassandra (cassandra.sh --base $BENCH_DIR start 1)"
    env -u CASSETTE_CASSANDRA_YAML CASSETTE_TEST_CLUSTER=cassette-bench CASSETTE_TEST_DATA_DIRS=1 \
        "$CASSANDRA_SH" --base "$BENCH_DIR" --nodes 1 start 1 >&2 {LOCK_FD}>&-
    STARTED_NODE_PID=$("$CASSANDRA_SH" --base "$BENCH_DIR" pid 1)
    INI=$BENCH_DIR/node1/cassette.ini
    NODE_DESC="its own node (cassandra.sh --base $BENCH_DIR)"
fi
DATA_DIRS_STR=$(sed -n 's/^data_dirs *= *//p' "$INI" | tr ',' ' ')
read -r -a DATA_DIRS <<< "$DATA_DIRS_STR"
(( ${#DATA_DIRS[@]} )) || fail "no data_dirs in $INI"
NODETOOL=("$NODETOOL_SH" -h 127.0.0.1 -p "$JMX_PORT")

S3_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "starting versitygw on 127.0.0.1:$S3_PORT"
"$S3_SH" --dir "$S3_DIR" --port "$S3_PORT" start >&2 {LOCK_FD}>&-
STARTED_S3_PID=$("$S3_SH" --dir "$S3_DIR" pid)
"$S3_SH" --dir "$S3_DIR" mkbucket "$BUCKET" >&2
BUCKET_DIR=$S3_DIR/root/$BUCKET

# cassette sees only the S3 server's settings: no CASSETTE_*, AWS_* or B2_* from outside.
CASSETTE_ENV=(env)
while read -r v; do CASSETTE_ENV+=(-u "$v"); done < <(compgen -e | grep -E '^(CASSETTE_|AWS_|B2_)' || true)
while read -r line; do
    [[ $line =~ ^export\ ([A-Z_]+)=(.*)$ ]] && CASSETTE_ENV+=("${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
done < <("$S3_SH" --dir "$S3_DIR" env)
CASSETTE_ENV+=(CASSETTE_CACHE="$CASSETTE_CACHE")   # for nodetool.sh
[[ -n ${CASSETTE_CASSANDRA_LIB:-} ]] && CASSETTE_ENV+=(CASSETTE_CASSANDRA_LIB="$CASSETTE_CASSANDRA_LIB")

# nodetool for cassette: the node's, with each call's rusage logged (to split its costs off).
NT_LOG=$WORK/cassette-nodetool.log
cat > "$WORK/nodetool-timed" <<SH
#!/bin/sh
# bench/s3_backup.sh: nodetool with its wall time, CPU and peak RSS appended to a log
exec $TIME -a -o '$NT_LOG' -f "\$1 %e %U %S %M" '$NODETOOL_SH' -h 127.0.0.1 -p $JMX_PORT "\$@"
SH
chmod +x "$WORK/nodetool-timed"

# ---------------------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------------------
if [[ -n $NODE_BASE ]]; then LOADED_INTO_SHARED=1; fi
say "loading dataset.py --prefix bench --scale $SCALE (~$( ((SMOKE)) && echo 0.3 || echo "$SIZE_MIB") MiB on disk)"
t0=$EPOCHREALTIME
"$PY" "$DATASET_PY" --host 127.0.0.1 --prefix bench --seed 1 --scale "$SCALE" load >&2
"${NODETOOL[@]}" flush
LOAD_SECS=$(secs "$t0" "$EPOCHREALTIME")
say "waiting for compactions to finish"
for ((i = 0; ; i++)); do
    pending=$("${NODETOOL[@]}" compactionstats | sed -n 's/^pending tasks[: ]*\([0-9][0-9]*\).*/\1/p' | head -n 1)
    [[ $pending == 0 ]] && break
    (( i < 180 )) || fail "compactions still pending after 15 minutes ($pending)"
    sleep 5
done
DATA_BYTES=0
for d in "${DATA_DIRS[@]}"; do
    for ks in "${KEYSPACES[@]}"; do
        [[ -d $d/$ks ]] && DATA_BYTES=$(( DATA_BYTES + $(find "$d/$ks" -path '*/snapshots' -prune -o -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }') ))
    done
done
say "data set loaded and flushed in $LOAD_SECS s: $(awk -v b="$DATA_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }') MiB on disk"

# Fresh age key: cassette's repository and Fluxer's pipeline encrypt to the same recipient.
KEY=$WORK/key.txt
RECIPIENT=$("$CASSETTE" key generate -o "$KEY")
[[ $RECIPIENT == age1* ]] || fail "cassette key generate printed '$RECIPIENT'"
"${CASSETTE_ENV[@]}" "$CASSETTE" init --repo "s3://$BUCKET/c1" --recipient "$RECIPIENT" >&2

# ---------------------------------------------------------------------------------------
# Quiet machine
# ---------------------------------------------------------------------------------------
LOAD_BEFORE=$(load1)
if (( QUIET_WAIT > 0 )); then
    if awk -v l="$LOAD_BEFORE" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }'; then
        say "waiting until $(date -d @"$DEADLINE" +%T) for the 1-minute load average ($LOAD_BEFORE) to drop below $QUIET_LOAD"
    fi
    waited0=$(date +%s)
    while awk -v l="$(load1)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }'; do
        if (( $(date +%s) >= DEADLINE )); then
            NOTES+=("the machine never got quiet: the 1-minute load average was still $(load1) (limit $QUIET_LOAD) after waiting $(( $(date +%s) - waited0 )) s; measured anyway")
            say "${NOTES[-1]}"
            break
        fi
        sleep 10
    done
    LOAD_BEFORE=$(load1)
fi

# ---------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------
declare -A WALL CPU RSS NTWALL NTCPU READ STORED
CPU_OF() { # /usr/bin/time -v output -> user+sys seconds
    awk -F': ' '/User time \(seconds\)/ { u = $2 } /System time \(seconds\)/ { s = $2 } END { printf "%.2f", u + s }' "$1"
}
RSS_OF() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }

# raw: the data set's files, from a snapshot of its keyspaces, read from the page cache.
say "raw read baseline"
"${NODETOOL[@]}" snapshot -t bench-raw "${KEYSPACES[@]}" > /dev/null
: > "$WORK/raw.files"
for d in "${DATA_DIRS[@]}"; do
    for ks in "${KEYSPACES[@]}"; do
        [[ -d $d/$ks ]] && find "$d/$ks" -path '*/snapshots/bench-raw/*' -type f -print0 >> "$WORK/raw.files"
    done
done
SNAP_FILES=$(tr -cd '\0' < "$WORK/raw.files" | wc -c)
SNAP_BYTES=$(xargs -0 -r stat -c %s < "$WORK/raw.files" | awk '{ s += $1 } END { printf "%d", s }')
(( SNAP_FILES > 0 && SNAP_BYTES > 0 )) || fail "the snapshot of ${KEYSPACES[*]} has no files"
xargs -0 cat < "$WORK/raw.files" > /dev/null   # warm
best=""
for i in 1 2 3; do
    t0=$EPOCHREALTIME
    xargs -0 cat < "$WORK/raw.files" > /dev/null
    dt=$(secs "$t0" "$EPOCHREALTIME")
    if [[ -z $best ]] || awk -v a="$dt" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$dt; fi
done
WALL[raw]=$best
READ[raw]=$SNAP_BYTES
"${NODETOOL[@]}" clearsnapshot -t bench-raw > /dev/null

# builtin sleep for the sampling loop (no fork every tick)
exec {SLEEP_FD}<> <(:)

run_cassette() { # LABEL NAME
    local label=$1 name=$2 pid="" hwm=0 k v t0 t1 tpid rc=0
    local tf=$WORK/$label.time pidf=$WORK/$label.pid
    local before
    before=$(sum_sizes "$BUCKET_DIR/c1")
    : > "$NT_LOG"
    rm -f "$pidf"
    sync
    say "cassette backup $name"
    t0=$EPOCHREALTIME
    "${CASSETTE_ENV[@]}" "$TIME" -v -o "$tf" bash -c 'echo $$ > "$0"; exec "$@"' "$pidf" \
        "$CASSETTE" --config "$INI" --nodetool "$WORK/nodetool-timed" --state-dir "$WORK/state" \
        backup --repo "s3://$BUCKET/c1" --name "$name" \
        "${KS_ARGS[@]}" --json \
        > "$WORK/$label.json" 2> "$WORK/$label.err" &
    tpid=$!
    while [[ -z $pid ]] && kill -0 "$tpid" 2>/dev/null; do
        [[ -s $pidf ]] && pid=$(< "$pidf")
        read -r -t 0.01 -u "$SLEEP_FD" || true
    done
    while [[ -n $pid && -r /proc/$pid/status ]]; do
        while read -r k v _; do
            [[ $k == VmHWM: ]] && (( v > hwm )) && hwm=$v
        done < "/proc/$pid/status" 2>/dev/null || true
        read -r -t 0.1 -u "$SLEEP_FD" || true
    done
    wait "$tpid" || rc=$?
    t1=$EPOCHREALTIME
    if (( rc != 0 )); then
        cat "$WORK/$label.err" >&2
        fail "cassette backup $name failed (exit $rc)"
    fi
    WALL[$label]=$(secs "$t0" "$t1")
    CPU[$label]=$(CPU_OF "$tf")
    RSS[$label]=$hwm
    NTWALL[$label]=$(awk '{ s += $2 } END { printf "%.3f", s }' "$NT_LOG")
    NTCPU[$label]=$(awk '{ s += $3 + $4 } END { printf "%.2f", s }' "$NT_LOG")
    READ[$label]=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["bytes_read"])' "$WORK/$label.json")
    STORED[$label]=$(( $(sum_sizes "$BUCKET_DIR/c1") - before ))
    cp "$NT_LOG" "$WORK/$label.nodetool"
    say "cassette backup $name: ${WALL[$label]} s, $(cat "$WORK/$label.json" | head -c 300)"
}

run_fluxer() { # LABEL VARIANT PREFIX
    local label=$1 variant=$2 prefix=$3 t0 t1 rc=0
    local tf=$WORK/$label.time fxwork=$WORK/$label
    mkdir -p "$fxwork"
    : > "$fxwork/steps"
    : > "$fxwork/procs"
    sync
    say "Fluxer pipeline ($variant)"
    t0=$EPOCHREALTIME
    FX_WORK=$fxwork FX_STEPS=$fxwork/steps FX_PROCS=$fxwork/procs FX_PREFIX=$prefix \
        FX_S3_DIR=$S3_DIR FX_RECIPIENT=$RECIPIENT FX_DATA_DIRS_STR=$DATA_DIRS_STR \
        "$TIME" -v -o "$tf" "$SELF" --fluxer-pipeline "$variant" >&2 || rc=$?
    t1=$EPOCHREALTIME
    (( rc == 0 )) || fail "Fluxer pipeline ($variant) failed (exit $rc)"
    WALL[$label]=$(secs "$t0" "$t1")
    CPU[$label]=$(CPU_OF "$tf")
    # peak RSS of its own tools (not nodetool's JVM): tar/zstd/age from the pipe, the others
    # from their steps
    RSS[$label]=$( { awk '{ print $5 }' "$fxwork/procs"
                     awk '$1 == "schema" || $1 == "upload" || $1 == "collect" || $1 == "cleanup" { print $5 }' "$fxwork/steps"; } |
                   sort -n | tail -n 1)
    NTWALL[$label]=$(awk '$1 ~ /^(snapshot|describecluster|status|clearsnapshot)$/ { s += $2 } END { printf "%.3f", s }' "$fxwork/steps")
    NTCPU[$label]=$(awk '$1 ~ /^(snapshot|describecluster|status|clearsnapshot)$/ { s += $3 + $4 } END { printf "%.2f", s }' "$fxwork/steps")
    STORED[$label]=$(sum_sizes "$BUCKET_DIR/$prefix")
    READ[$label]=$(< "$fxwork/staged")
    say "Fluxer pipeline ($variant): ${WALL[$label]} s"
}

run_cassette cassette1 b1
run_cassette cassette2 b2
run_fluxer fluxer runbook fluxer
(( SMOKE )) || run_fluxer fluxerz zstd fluxer-zstd
LOAD_AFTER=$(load1)

# ---- checks (untimed): what was stored can be read back ----
say "checking the stored backups"
"${CASSETTE_ENV[@]}" "$CASSETTE" verify --repo "s3://$BUCKET/c1" --identity "$KEY" >&2 ||
    fail "cassette verify failed"
for label in fluxer fluxerz; do
    [[ -f $WORK/$label/object ]] || continue
    read -r _ key < "$WORK/$label/object"
    dec=(cat); [[ $label == fluxerz ]] && dec=(zstd -dc)
    n=$("$S3_SH" --dir "$S3_DIR" aws s3 cp --only-show-errors "s3://$BUCKET/$key" - |
        age -d -i "$KEY" | "${dec[@]}" | tar -tf - | grep -c -- '-Data\.db$' || true)
    (( n > 0 )) || fail "Fluxer's $key does not decrypt to a tar of SSTables"
done
if "${NODETOOL[@]}" listsnapshots 2>/dev/null | grep -E 'backup-|cassette-|bench-raw' >&2; then
    fail "a snapshot was left behind"
fi

# ---- optional: where cassette's CPU goes ----
if [[ ${BENCH_S3_PERF:-0} == 1 ]]; then
    command -v perf > /dev/null || fail "BENCH_S3_PERF=1 needs perf"
    say "perf record of one more cassette backup (fresh repository s3://$BUCKET/perf)"
    "${CASSETTE_ENV[@]}" "$CASSETTE" init --repo "s3://$BUCKET/perf" --recipient "$RECIPIENT" >&2
    "${CASSETTE_ENV[@]}" perf record -q -F 999 -g -o "$WORK/perf.data" -- \
        "$CASSETTE" --config "$INI" --nodetool "$WORK/nodetool-timed" --state-dir "$WORK/state-perf" \
        backup --repo "s3://$BUCKET/perf" --name p1 "${KS_ARGS[@]}" >&2
    { echo "cassette's own samples by library (perf record -F 999, cpu-clock):"
      perf report -i "$WORK/perf.data" --comm cassette --no-children --sort dso -g none \
          --percentage relative --stdio 2>/dev/null | grep '%' | head -n 15
      echo "top symbols:"
      perf report -i "$WORK/perf.data" --comm cassette --no-children --sort dso,symbol -g none \
          --percentage relative --stdio 2>/dev/null | grep '%' | head -n 25
    } > "$BENCH_DIR/perf-cassette.txt" || true
    cat "$BENCH_DIR/perf-cassette.txt" >&2
fi

# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
mibs() { awk -v b="$SNAP_BYTES" -v t="$1" 'BEGIN { r = b / 1048576 / t; printf (r < 100 ? "%.1f" : "%.0f"), r }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
div3() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
kib_mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

LABELS=(raw cassette1 fluxer)
(( SMOKE )) || LABELS+=(fluxerz)
LABELS+=(cassette2)
declare -A NAME=(
    [raw]='raw read: `cat` of the snapshot files > /dev/null (page cache, best of 3)'
    [cassette1]='cassette backup (zstd 3 + age + S3)'
    [cassette2]='cassette backup again, nothing changed'
    [fluxer]='Fluxer runbook: tar \| age -o file; aws s3 cp'
    [fluxerz]='Fluxer runbook + zstd: tar \| zstd \| age -o file; aws s3 cp'
)

kind="$(mib "$SNAP_BYTES") MiB snapshot"
(( SMOKE )) && kind="smoke run, $(mib "$SNAP_BYTES") MiB snapshot: NOT a measurement"
echo "### s3_backup: backup to a local S3 server (versitygw), $kind"
echo
echo "Data: tests/integration/dataset.py --scale $SCALE (keyspaces ${KEYSPACES[*]}, $SNAP_FILES files in the snapshot), loaded and flushed in $LOAD_SECS s; $NODE_DESC, Cassandra $("${NODETOOL[@]}" version | sed -n 's/^ReleaseVersion: //p'). Same node, data, age recipient and S3 server for every row; one run each. MiB/s is the snapshot's $(mib "$SNAP_BYTES") MiB over the wall time. CPU is user+sys of the whole run including the nodetool JVMs (shown apart); peak RSS is the largest process of the tool's own, nodetool excluded."
echo
echo "| run | wall s | MiB/s | of raw read | CPU s | of which nodetool | peak RSS MiB | read MiB | stored MiB | stored / snapshot |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for l in "${LABELS[@]}"; do
    if [[ $l == raw ]]; then
        printf '| %s | %.3f | %s | 1.00 | | | | %s | | |\n' "${NAME[$l]}" "${WALL[$l]}" "$(mibs "${WALL[$l]}")" "$(mib "${READ[$l]}")"
        continue
    fi
    printf '| %s | %.2f | %s | %s | %.2f | %.2f | %s | %s | %s | %s |\n' "${NAME[$l]}" "${WALL[$l]}" \
        "$(mibs "${WALL[$l]}")" "$(div3 "${WALL[raw]}" "${WALL[$l]}")" "${CPU[$l]}" "${NTCPU[$l]}" \
        "$(kib_mib "${RSS[$l]}")" "$(mib "${READ[$l]}")" "$(mib "${STORED[$l]}")" \
        "$(div "${STORED[$l]}" "$SNAP_BYTES")"
done
echo
echo "| cassette / Fluxer | runbook (tar \| age) |$( ((SMOKE)) || echo ' + zstd (tar \| zstd \| age) |')"
echo "|---|---:|$( ((SMOKE)) || echo '---:|')"
ratio_row() { # title expr-kind
    local title=$1 kind=$2 l
    local out="| $title |"
    for l in fluxer fluxerz; do
        [[ $l == fluxerz ]] && (( SMOKE )) && continue
        case $kind in
            speed) out+=" $(div "${WALL[$l]}" "${WALL[cassette1]}") |" ;;
            cpu) out+=" $(div "${CPU[cassette1]}" "${CPU[$l]}") |" ;;
            cpu_own) out+=" $(div "$(awk -v a="${CPU[cassette1]}" -v b="${NTCPU[cassette1]}" 'BEGIN { print a - b }')" \
                                     "$(awk -v a="${CPU[$l]}" -v b="${NTCPU[$l]}" 'BEGIN { print a - b }')") |" ;;
            stored) out+=" $(div "${STORED[cassette1]}" "${STORED[$l]}") |" ;;
            rss) out+=" $(div "${RSS[cassette1]}" "${RSS[$l]}") |" ;;
        esac
    done
    echo "$out"
}
ratio_row 'throughput (wall time; > 1.0 = cassette faster)' speed
ratio_row 'CPU seconds (< 1.0 = cassette uses less)' cpu
ratio_row 'CPU seconds without nodetool' cpu_own
ratio_row 'stored bytes (< 1.0 = cassette stores less)' stored
ratio_row 'peak RSS' rss
echo

# Where the wall time goes, step by step (wall s / CPU s).
ws() { printf '%.2f / %.2f' "$1" "$2"; }
fx_cols=(fluxer)
(( SMOKE )) || fx_cols+=(fluxerz)
fx_cell() { # LABEL STEP... : the steps' wall / CPU; @procs: CPU of each process of the pipe
    if [[ $2 == @procs ]]; then
        awk '{ c[$1] = $3 + $4; o[$1] = NR } END { n = 0; for (k in o) n++
              for (i = 1; i <= NR; i++) for (k in o) if (o[k] == i) s = s (s ? ", " : "") k " " sprintf("%.2f", c[k])
              print s }' "$WORK/$1/procs"
        return
    fi
    local label=$1; shift
    awk -v want=" $* " 'index(want, " " $1 " ") { w += $2; c += $3 + $4; n++ }
        END { if (n) printf "%.2f / %.2f", w, c; else printf "-" }' "$WORK/$label/steps"
}
nt_cell() { # LABEL CMD : cassette's nodetool calls
    awk -v want="$2" '$1 == want { w += $2; c += $3 + $4; n++ } END { if (n) printf "%.2f / %.2f", w, c; else printf "-" }' "$WORK/$1.nodetool"
}
step_row() { # TITLE CASSETTE-CELL STEP... (the Fluxer cells: those steps of each Fluxer run)
    local out="| $1 | $2 |" l
    shift 2
    for l in "${fx_cols[@]}"; do
        if [[ $1 == - ]]; then out+=" - |"; else out+=" $(fx_cell "$l" "$@") |"; fi
    done
    echo "$out"
}
c_store_w=$(awk -v a="${WALL[cassette1]}" -v b="${NTWALL[cassette1]}" 'BEGIN { printf "%.2f", a - b }')
c_store_c=$(awk -v a="${CPU[cassette1]}" -v b="${NTCPU[cassette1]}" 'BEGIN { printf "%.2f", a - b }')
header="| step (first backup; wall s / CPU s) | cassette |"
rule="|---|---:|"
for l in "${fx_cols[@]}"; do
    [[ $l == fluxer ]] && header+=" Fluxer runbook |" || header+=" Fluxer + zstd |"
    rule+="---:|"
done
total="| **total** | $(ws "${WALL[cassette1]}" "${CPU[cassette1]}") |"
for l in "${fx_cols[@]}"; do total+=" $(ws "${WALL[$l]}" "${CPU[$l]}") |"; done
echo "$header"
echo "$rule"
step_row 'nodetool snapshot' "$(nt_cell cassette1 snapshot)" snapshot
step_row 'cassette: CQL (node, schema); read, zstd, age, S3 upload of each file; manifest' "$(ws "$c_store_w" "$c_store_c")" -
step_row 'find + `cp -r` of the snapshot directories to the staging directory' - collect
step_row 'DESC SCHEMA > schema.cql (the Python driver standing in for cqlsh)' - schema
step_row 'nodetool describecluster, nodetool status' - describecluster status
step_row '`tar -cf - \| [zstd \|] age -r KEY -o file`' - encrypt
step_row '&nbsp;&nbsp;CPU s of each process of that pipe' - @procs
step_row '`aws s3 cp` (awscli)' - upload
step_row 'nodetool clearsnapshot' "$(nt_cell cassette1 clearsnapshot)" clearsnapshot
step_row 'rm of the encrypted file and the staging copy' - cleanup
echo "$total"
echo
echo "- the second cassette backup (nothing changed) took ${WALL[cassette2]} s, ${NTWALL[cassette2]} s of it in nodetool snapshot + clearsnapshot (${NTCPU[cassette2]} s CPU of its ${CPU[cassette2]}); it read $(mib "${READ[cassette2]}") MiB and stored $(mib "${STORED[cassette2]}") MiB ($(printf '%d' "${STORED[cassette2]}") bytes: manifest, summary, start mark); Fluxer's runbook stores the whole snapshot again every hour."
echo "- Fluxer's tar read $(mib "${READ[fluxer]}") MiB: \`nodetool snapshot -t TAG\` with no keyspace snapshots every keyspace, system ones included, plus the schema and topology files; cassette read $(mib "${READ[cassette1]}") MiB (the two keyspaces)."
vgw_bin=$CASSETTE_CACHE/go/bin/versitygw
[[ -x $vgw_bin ]] || vgw_bin=$(command -v versitygw || true)
vgw_ver=$({ "$(command -v go || echo /usr/local/go/bin/go)" version -m "$vgw_bin" | awk '$1 == "mod" { print $3 }'; } 2>/dev/null || true)
echo "- versitygw ${vgw_ver:-(version unknown)}; $("$S3_SH" --dir "$S3_DIR" aws --version 2>&1 | cut -d ' ' -f 1); zstd $(zstd -V | sed -n 's/.* v\([0-9.]*\).*/\1/p'); tar $(tar --version | head -n 1 | awk '{ print $NF }'); 1-minute load average $LOAD_BEFORE before the runs, $LOAD_AFTER after."
for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "- **note:** $n"; done
