#!/usr/bin/env bash
# cassette's main job, end to end, on a throwaway Cassandra 5.0 node:
# load sample data, back it up, lose it, restore it, and check every row.
# The node lives in $CASSETTE_DEMO_DIR (default /tmp/cassette-demo) and is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
source tests/env/common.sh

DEMO="${CASSETTE_DEMO_DIR:-/tmp/cassette-demo}"
ROWS_SCALE="${CASSETTE_DEMO_SCALE:-0.2}"     # 0.2 = 20k rows
ENV_SH=("$ROOT/tests/env/cassandra.sh" --base "$DEMO")
PY="$CASSETTE_VENV/bin/python"
DATA=("$PY" "$ROOT/tests/integration/dataset.py" --host 127.0.0.1 --prefix demo --seed 42
      --scale "$ROWS_SCALE")
CASSETTE=("$ROOT/build/cassette" --config "$DEMO/node1/cassette.ini")
REPO="$DEMO/repo"
STARTED=0

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
    if [ "$STARTED" = 1 ]; then
        step "stopping the demo node"
        "${ENV_SH[@]}" stop 1 || true
    fi
}
trap cleanup EXIT

step "installing dependencies and building"
./scripts/install-deps.sh
make -j2 >/dev/null

if port_open 127.0.0.1 9042; then
    echo "demo: port 9042 on 127.0.0.1 is already taken (a test node or another Cassandra?)." >&2
    echo "demo: stop it first, e.g. tests/env/cassandra.sh stop 1, then run make demo again." >&2
    exit 1
fi

step "starting a throwaway Cassandra 5.0 node in $DEMO"
rm -rf "$DEMO"
mkdir -p "$DEMO"
STARTED=1
"${ENV_SH[@]}" start 1

step "loading sample data"
"${DATA[@]}" load

step "backing up"
show "${CASSETTE[@]}" init --repo "$REPO" --no-encryption   # --recipient age1... for a real one
show "${CASSETTE[@]}" backup --repo "$REPO" --name demo-1
show "${CASSETTE[@]}" list --repo "$REPO"

step "losing the data"
"${DATA[@]}" drop

step "restoring"
show "${CASSETTE[@]}" restore --repo "$REPO" --backup demo-1

step "checking every row with the Python driver"
"${DATA[@]}" check

step "verifying the repository"
show "${CASSETTE[@]}" verify --deep --repo "$REPO"

step "what retention would keep (default: the last 168 backups of each node)"
show "${CASSETTE[@]}" purge --dry-run --repo "$REPO"
