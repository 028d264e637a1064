#!/usr/bin/env bash
# bench/cluster.sh - a cluster backup and a cluster restore of a real 3-node Cassandra cluster
# (an agent per node), timed against the same backups and restores run node by node
# (bench/README.md). Builds the release binary unless BENCH_NO_BUILD=1, then runs
# bench/cluster.py with the arguments given (--help lists them). Every process it starts
# (nodes 21-23, their agents, its versitygw) is stopped at the end and on failure or a signal.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/tests/env/common.sh"   # CASSETTE_CACHE, CASSETTE_VENV
[ -x "$CASSETTE_VENV/bin/python" ] || die "no Python venv at $CASSETTE_VENV (run scripts/install-deps.sh)"
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    make -C "$ROOT" -s -j2 all >&2
fi
exec "$CASSETTE_VENV/bin/python" "$ROOT/bench/cluster.py" "$@"
