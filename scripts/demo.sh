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
KEY="$DEMO/key.txt"
STARTED=0

# Bold headings on a terminal only: no escape codes in a log or a pipe.
if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
    if [ "$STARTED" = 1 ]; then
        step "stopping the demo node"
        "${ENV_SH[@]}" stop 1 || true
    fi
}
trap cleanup EXIT

step "installing dependencies and building (the first run installs Debian packages, downloads Cassandra's jars and makes a Python venv: several minutes; later runs take seconds)"
./scripts/install-deps.sh --demo
echo "building build/cassette"
make -j2 build/cassette >/dev/null   # only the binary: no unit tests, tools or sanitizer build

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

step "creating an encrypted repository (the backup host needs only the public key)"
show "${CASSETTE[@]}" key generate -o "$KEY"
show "${CASSETTE[@]}" init --repo "$REPO" --recipient "$("${CASSETTE[@]}" key public "$KEY")"

step "backing up"
show "${CASSETTE[@]}" init --repo "$REPO" --no-encryption   # --recipient age1... for a real one
show "${CASSETTE[@]}" backup --repo "$REPO" --name demo-1
show "${CASSETTE[@]}" list --repo "$REPO"
show "${CASSETTE[@]}" status --repo "$REPO" --max-age 1h

step "losing the data"
"${DATA[@]}" drop

step "restoring"
show "${CASSETTE[@]}" restore --repo "$REPO" --backup demo-1 --identity "$KEY"

step "checking every row with the Python driver"
"${DATA[@]}" check

step "verifying the repository"
show "${CASSETTE[@]}" verify --deep --repo "$REPO" --identity "$KEY"

step "what retention would keep (default: the last 168 backups of each node)"
show "${CASSETTE[@]}" purge --dry-run --repo "$REPO" --identity "$KEY"
