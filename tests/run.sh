#!/usr/bin/env bash
# Every test of cassette: what `make test` (and so CI) runs.
#   1. installs dependencies (scripts/install-deps.sh),
#   2. builds the release binary, the ASan/UBSan binary and unit tests,
#   3. runs every unit test binary of the ASan build (cmocka, TAP output), then checks
#      make install (man page, bash completion) and the Markdown files' links,
#   4. starts Cassandra node 1 once and runs the integration tests (pytest) against it,
#      stopping the node at the end if this script started it;
#   5. runs the tests that talk to Cassandra again, with the secured-node tests, against
#      node 8 started with a login, TLS with client certificates and a JMX login (the same code, secured);
#   6. runs the cluster tests (marker "cluster") on the 3-node cluster of nodes 11-13 with an
#      agent per node (tests/integration/clusterenv.py; nodes 14-18 for the restore targets),
#      alone on the machine: nodes 1 and 8 are stopped first.
# The last line is exactly "N passed, M failed" over everything; exit 1 if M > 0.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
source tests/env/common.sh

PASSED=0
FAILED=0
RESULTS="$ROOT/build/test-results"
STARTED_NODE=0     # node 1 (plain) started by this script
STARTED_SECURE=0   # node 8 (secured) started by this script
CLUSTER_RANGES=(11-13 14-16 17-18 19-19)   # clusterenv.py's and serverenv.py's clusters
CLUSTERS_TO_STOP=()                  # the ones not running before the cluster pass
CASSANDRA_SH="$ROOT/tests/env/cassandra.sh"
export CASSETTE_TEST_DIR="${CASSETTE_TEST_DIR:-/tmp/cassette-test}"
# The secured pass runs beside the plain one: its own node, base directory (S3 data, agent
# keys, pytest's temporary files) and ports, so that neither session can touch the other's.
SECURE_DIR="$CASSETTE_TEST_DIR-secured"
SECURE_OPTS="--auth --tls-required --tls-client-auth --jmx-auth"
SECURE_PASS_PID=""
SINGLE_PASS_PID=""

finish() {
    local rc=$?
    if [ "$STARTED_NODE" = 1 ]; then
        "$CASSANDRA_SH" stop 1 >/dev/null 2>&1 || echo "run.sh: could not stop Cassandra node 1" >&2
    fi
    if [ "$STARTED_SECURE" = 1 ]; then
        "$CASSANDRA_SH" --base "$SECURE_DIR" stop 8 >/dev/null 2>&1 || echo "run.sh: could not stop Cassandra node 8" >&2
    fi
    [ -z "$SECURE_PASS_PID" ] || kill "$SECURE_PASS_PID" 2>/dev/null
    [ -z "$SINGLE_PASS_PID" ] || kill "$SINGLE_PASS_PID" 2>/dev/null
    stop_clusters
    echo "$PASSED passed, $FAILED failed"
    if [ "$FAILED" -gt 0 ]; then exit 1; fi
    exit "$rc"
}
# Stops the clusters (agents first) that the cluster pass found stopped: whatever it left
# running, even when pytest was interrupted.
stop_clusters() {   # CLUSTERS_TO_STOP: FIRST-LAST, or FIRST-LAST@BASE for another base directory
    local r n base
    for r in "${CLUSTERS_TO_STOP[@]+"${CLUSTERS_TO_STOP[@]}"}"; do
        base="$CASSETTE_TEST_DIR"
        if [[ "$r" == *@* ]]; then base="${r#*@}"; r="${r%@*}"; fi
        for ((n = ${r%-*}; n <= ${r#*-}; n++)); do
            "$ROOT/tests/env/agent.sh" --base "$base" stop "$n" >/dev/null 2>&1 \
                || echo "run.sh: could not stop the agent of node $n" >&2
        done
        "$CASSANDRA_SH" --base "$base" --cluster "$r" stop-cluster >/dev/null 2>&1 \
            || echo "run.sh: could not stop Cassandra nodes $r" >&2
    done
    CLUSTERS_TO_STOP=()
}
trap finish EXIT
trap 'exit 130' INT TERM

section() { printf '\n==== %s\n' "$*"; }
fatal() {   # a step without which nothing else can run: one failure, stop here
    echo "run.sh: $*" >&2
    FAILED=$((FAILED + 1))
    exit 1
}

t_start=$(date +%s)
mkdir -p "$RESULTS"

section "dependencies"
./scripts/install-deps.sh || fatal "scripts/install-deps.sh failed"

section "build"
make -j2 >"$RESULTS/build.log" 2>&1 || { tail -n 60 "$RESULTS/build.log"; fatal "make failed"; }
make -j2 VARIANT=asan all unit >"$RESULTS/build-asan.log" 2>&1 \
    || { tail -n 60 "$RESULTS/build-asan.log"; fatal "make VARIANT=asan all unit failed"; }
make -j2 unit >"$RESULTS/build-unit.log" 2>&1 \
    || { tail -n 60 "$RESULTS/build-unit.log"; fatal "make unit failed"; }
echo "built in $(( $(date +%s) - t_start )) s"

section "unit tests (ASan/UBSan build)"
shopt -s nullglob
unit_bins=(build/asan/tests/test_*)
[ ${#unit_bins[@]} -gt 0 ] || echo "run.sh: no unit test binaries in build/asan/tests" >&2
for bin in "${unit_bins[@]}"; do
    [ -x "$bin" ] && [ -f "$bin" ] || continue
    name="$(basename "$bin")"
    log="$RESULTS/$name.tap"
    CMOCKA_MESSAGE_OUTPUT=TAP ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
        timeout 600 "$bin" >"$log" 2>&1 </dev/null
    rc=$?
    ok=$(grep -c '^ok ' "$log")
    notok=$(grep -c '^not ok ' "$log")
    planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
    missing=0
    if [ "$planned" -gt $((ok + notok)) ]; then missing=$((planned - ok - notok)); fi
    bad=$((notok + missing))
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi   # crashed or sanitizer report
    if [ $((ok + bad)) -eq 0 ]; then bad=1; fi                # ran nothing
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + bad))
    if [ "$bad" -gt 0 ]; then
        echo "FAIL $name: $ok ok, $bad failed (exit $rc)"
        grep -v '^ok ' "$log" | tail -n 80
    else
        echo "ok   $name: $ok passed"
    fi
done

section "install and documentation (make install, man page, bash completion, README links)"
for check in tests/check_install.sh tests/check_readme_links.sh; do
    log="$RESULTS/$(basename "$check" .sh).log"
    if "./$check" >"$log" 2>&1 </dev/null; then
        echo "ok   $check"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL $check"
        grep -v '^ok ' "$log" | tail -n 40
        FAILED=$((FAILED + 1))
    fi
done

section "Cassandra node 1"
if "$CASSANDRA_SH" status 1 >/dev/null 2>&1; then
    echo "node 1 already running under $CASSETTE_TEST_DIR: using it and leaving it running"
    "$CASSANDRA_SH" start 1 || fatal "Cassandra node 1 is running but not serving CQL"
else
    rm -rf "$CASSETTE_TEST_DIR/node1"
    STARTED_NODE=1
    "$CASSANDRA_SH" start 1 || fatal "Cassandra node 1 did not start"
fi

# Runs pytest over tests/integration with extra arguments; adds its counts from the JUnit
# report (a skipped test counts as failed; so does a run that reports nothing).
run_pytest() {   # run_pytest NAME ARGS... (paths too): its report in $RESULTS/NAME.xml, its exit status in NAME.rc
    local name="$1"; shift
    rm -f "$RESULTS/$name.xml" "$RESULTS/$name.rc"
    "$CASSETTE_VENV/bin/python" -m pytest -rA -p no:cacheprovider \
        --junitxml="$RESULTS/$name.xml" --durations=15 "$@"
    echo $? >"$RESULTS/$name.rc"
}
count_junit() {   # count_junit NAME: add run_pytest NAME's results to the totals
    local junit="$RESULTS/$1.xml" prc ip if_
    prc="$(cat "$RESULTS/$1.rc" 2>/dev/null || echo "none")"
    if [ ! -f "$junit" ]; then
        echo "run.sh: pytest wrote no report $1.xml (exit $prc)" >&2
        FAILED=$((FAILED + 1))
        return
    fi
    read -r ip if_ < <("$CASSETTE_VENV/bin/python" - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
t = f = e = s = 0
for su in suites:
    t += int(su.get("tests", 0)); f += int(su.get("failures", 0))
    e += int(su.get("errors", 0)); s += int(su.get("skipped", 0))
print(t - f - e - s, f + e + s)
PY
)
    PASSED=$((PASSED + ip))
    FAILED=$((FAILED + if_))
    if [ "$prc" != 0 ] && [ "$if_" -eq 0 ]; then FAILED=$((FAILED + 1)); fi
    if [ "$((ip + if_))" -eq 0 ]; then FAILED=$((FAILED + 1)); fi
}

# The secured pass checks what changes with authentication, TLS (client certificates) and JMX
# authentication: every path that talks to Cassandra. The files left out test the repository's
# side (damage, resume, progress, encryption, storage back ends, CLI conventions) through the
# same backup and restore calls; they run against the plain node only.
SECURE_SKIP=(test_repo_trust test_restore_trust test_backup_trust test_s3 test_azure test_resume
             test_progress test_sets test_interrupt test_verify test_dedup test_encryption
             test_cli_conventions test_output_stable test_exit_codes test_old_repo)
secure_pass() {   # runs in the background; its output goes to $RESULTS/integration-secure.log
    local ignore=() f
    for f in "${SECURE_SKIP[@]}"; do ignore+=("--ignore=tests/integration/$f.py"); done
    if ! "$CASSANDRA_SH" --base "$SECURE_DIR" start 8 $SECURE_OPTS; then
        echo "FAIL secured node 8 did not start"
        return 1
    fi
    CASSETTE_TEST_DIR="$SECURE_DIR" CASSETTE_S3_PORT=7170 CASSETTE_AZURITE_PORT=10100 \
        CASSETTE_TEST_NODE=8 CASSETTE_TEST_NODE_OPTIONS="$SECURE_OPTS" \
        CASSETTE_TEST_BIG_SCALE=0.25 CASSETTE_TEST_KILL_ITERATIONS=8 \
        run_pytest integration-secure-junit --basetemp="$SECURE_DIR/pytest" \
        -m "(cassandra or secure_node) and not cluster" "${ignore[@]}" tests/integration
}

t_secure=$(date +%s)
section "integration tests on node 8 ($SECURE_OPTS): starting in the background"
mkdir -p "$SECURE_DIR"
if ! "$CASSANDRA_SH" --base "$SECURE_DIR" status 8 >/dev/null 2>&1; then
    rm -rf "$SECURE_DIR/node8"
    STARTED_SECURE=1
fi
secure_pass >"$RESULTS/integration-secure.log" 2>&1 &
SECURE_PASS_PID=$!

section "fuzzing (libFuzzer, ${FUZZ_SECONDS:-15} s per target, two at a time)"
# Every parser of outside input has a target in tests/fuzz/; each run is a test. Two run at
# once (one per core): each still gets its FUZZ_SECONDS of a core.
fuzz_one() {   # fuzz_one BIN: runs it, leaves its exit status in $RESULTS/fuzz_NAME.rc
    local name="${1#build/fuzz/fuzz_}" work
    work="build/fuzz/$name.work"
    mkdir -p "$work"
    "$1" -max_total_time="${FUZZ_SECONDS:-15}" -rss_limit_mb=1024 -print_final_stats=0 \
        "$work" "tests/fuzz/corpus/$name" >"$RESULTS/fuzz_$name.log" 2>&1 </dev/null
    echo $? >"$RESULTS/fuzz_$name.rc"
}
rm -f "$RESULTS"/fuzz_*.rc
if make -j2 fuzz-build >"$RESULTS/build-fuzz.log" 2>&1; then
    fuzz_bins=()
    for bin in build/fuzz/fuzz_*; do
        [ -x "$bin" ] && [ -f "$bin" ] && fuzz_bins+=("$bin")
    done
    for ((i = 0; i < ${#fuzz_bins[@]}; i += 2)); do
        pids=()   # wait for these two only: the secured pass runs in the background too
        fuzz_one "${fuzz_bins[i]}" & pids+=($!)
        if [ $((i + 1)) -lt ${#fuzz_bins[@]} ]; then fuzz_one "${fuzz_bins[i + 1]}" & pids+=($!); fi
        wait "${pids[@]}"
    done
    for bin in "${fuzz_bins[@]}"; do
        name="${bin#build/fuzz/fuzz_}"
        if [ "$(cat "$RESULTS/fuzz_$name.rc" 2>/dev/null)" = 0 ]; then
            echo "ok   fuzz_$name"
            PASSED=$((PASSED + 1))
        else
            echo "FAIL fuzz_$name"
            tail -n 40 "$RESULTS/fuzz_$name.log"
            FAILED=$((FAILED + 1))
        fi
    done
else
    tail -n 40 "$RESULTS/build-fuzz.log"
    echo "FAIL make fuzz-build"
    FAILED=$((FAILED + 1))
fi

section "integration tests on node 1 (plain), beside the secured pass"
t_pass=$(date +%s)
CASSETTE_TEST_NODE=1 CASSETTE_TEST_NODE_OPTIONS=--plain \
    run_pytest integration-junit --basetemp="$CASSETTE_TEST_DIR/pytest" -m "not secure_node and not cluster" tests/integration
echo "plain pass took $(( $(date +%s) - t_pass )) s"
wait "$SECURE_PASS_PID"
SECURE_PASS_PID=""
section "the secured pass's output (node 8)"
cat "$RESULTS/integration-secure.log"
echo "the secured pass ended $(( $(date +%s) - t_secure )) s after its start"
count_junit integration-junit
count_junit integration-secure-junit
if [ "$STARTED_NODE" = 1 ]; then
    "$CASSANDRA_SH" stop 1 >/dev/null 2>&1 || echo "run.sh: could not stop Cassandra node 1" >&2
    STARTED_NODE=0
fi
if [ "$STARTED_SECURE" = 1 ]; then
    "$CASSANDRA_SH" --base "$SECURE_DIR" stop 8 >/dev/null 2>&1 || echo "run.sh: could not stop Cassandra node 8" >&2
    STARTED_SECURE=0
fi

section "cluster tests (nodes 11-13 with an agent each; 14-18 as restore targets; 19 and, beside them, 20 as one-node clusters)"
# The tests that need only serverenv's one-node cluster run beside the others, on node 20 with
# their own base directory and ports (as the secured pass does).
SINGLE_DIR="$CASSETTE_TEST_DIR-single"
SINGLE_FILES=(test_server_client test_server_metrics test_status_page)
single_args=() ; other_args=()
for f in "${SINGLE_FILES[@]}"; do
    single_args+=("tests/integration/$f.py"); other_args+=("--ignore=tests/integration/$f.py")
done
for r in "${CLUSTER_RANGES[@]}"; do
    running=0
    for ((n = ${r%-*}; n <= ${r#*-}; n++)); do
        "$CASSANDRA_SH" status "$n" >/dev/null 2>&1 && running=1
    done
    [ "$running" = 1 ] || CLUSTERS_TO_STOP+=("$r")
done
mkdir -p "$SINGLE_DIR"
"$CASSANDRA_SH" --base "$SINGLE_DIR" status 20 >/dev/null 2>&1 || CLUSTERS_TO_STOP+=("20-20@$SINGLE_DIR")
t_cluster=$(date +%s)
CASSETTE_TEST_DIR="$SINGLE_DIR" CASSETTE_S3_PORT=7270 CASSETTE_AZURITE_PORT=10200 CASSETTE_TEST_SINGLE_NODE=20 \
    run_pytest integration-cluster-single-junit --basetemp="$SINGLE_DIR/pytest" -m cluster "${single_args[@]}" \
    >"$RESULTS/integration-cluster-single.log" 2>&1 &
SINGLE_PASS_PID=$!
run_pytest integration-cluster-junit --basetemp="$CASSETTE_TEST_DIR/pytest" -m cluster "${other_args[@]}" tests/integration
echo "cluster pass (3-node clusters) took $(( $(date +%s) - t_cluster )) s"
wait "$SINGLE_PASS_PID"
SINGLE_PASS_PID=""
section "the one-node cluster pass's output (node 20)"
cat "$RESULTS/integration-cluster-single.log"
count_junit integration-cluster-junit
count_junit integration-cluster-single-junit
stop_clusters
echo "cluster pass took $(( $(date +%s) - t_cluster )) s"
echo "total time $(( $(date +%s) - t_start )) s"
