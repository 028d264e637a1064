#!/usr/bin/env bash
# Runs Azurite (Microsoft's Azure Storage emulator; its Blob service only) on loopback for
# cassette's Azure tests.
#
#   azurite.sh install        install Azurite into $CASSETTE_CACHE/azurite with npm (idempotent;
#                             scripts/install-deps.sh runs it)
#   azurite.sh start          start Azurite (idempotent) and wait until it answers a request
#                             signed with the test account's key
#   azurite.sh stop           SIGTERM it, wait for it to exit (SIGKILL after 20 s)
#   azurite.sh status         "running (pid P) on 127.0.0.1:PORT" and exit 0, or "stopped" and exit 3
#   azurite.sh env            shell exports for clients: eval "$(tests/env/azurite.sh env)"
#                             (AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, CASSETTE_AZ_ENDPOINT,
#                             AZURE_STORAGE_CONNECTION_STRING)
#   azurite.sh mkcontainer NAME   create container NAME (fine if it exists)
#   azurite.sh blob ARGS...   tests/env/azblob.py against the server (list, rmcontainer, ...)
#   azurite.sh pid | port | dir | endpoint   the server's pid (exit 3 if stopped) / port /
#                             directory / Blob endpoint URL (account included, path style)
#
# Options (before the command): --port P (default $CASSETTE_AZURITE_PORT or 10000; once started,
#   the other commands use the running server's port), --dir D (default $CASSETTE_TEST_DIR/azurite,
#   that is /tmp/cassette-test/azurite).
# Environment: CASSETTE_AZURITE (the azurite-blob program; default
#   $CASSETTE_CACHE/azurite/node_modules/.bin/azurite-blob), CASSETTE_AZURITE_VERSION (what
#   install installs, default 3.35.0: the newest that supports the Node.js 20 of our machines),
#   CASSETTE_AZURITE_START_TIMEOUT (seconds, default 60), CASSETTE_AZURITE_ACCESS_LOG=1 (log every
#   request in D/azurite.log).
#
# Credentials are the emulator's well-known development account (devstoreaccount1 and its
# published key): public test values, not secrets.
# Layout of D: data/ (Azurite's workspace: its metadata databases and block files),
#   azurite.pid, port, azurite.log.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/common.sh"

AZ_ACCOUNT="devstoreaccount1"
AZ_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZ_HOST="127.0.0.1"
AZURITE_VERSION="${CASSETTE_AZURITE_VERSION:-3.35.0}"
AZURITE_PREFIX="$CASSETTE_CACHE/azurite"
DIR="${CASSETTE_TEST_DIR:-/tmp/cassette-test}/azurite"
PORT=""
START_TIMEOUT="${CASSETTE_AZURITE_START_TIMEOUT:-60}"
STOP_TIMEOUT=20
AZBLOB_PY="$CASSETTE_ENV_DIR/azblob.py"

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --port) [ $# -ge 2 ] || usage; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#--port=}"; shift ;;
        --dir) [ $# -ge 2 ] || usage; DIR="$2"; shift 2 ;;
        --dir=*) DIR="${1#--dir=}"; shift ;;
        blob) args+=("$@"); break ;;   # everything after `blob` belongs to azblob.py
        --) shift; args+=("$@"); break ;;
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]+"${args[@]}"}"
[ $# -ge 1 ] || usage
CMD="$1"; shift
if [ -n "$PORT" ]; then
    case "$PORT" in
        *[!0-9]*|'') die "--port must be a number, got '$PORT'" ;;
    esac
fi

# The installed Azurite's version, or nothing.
installed_version() {
    local pj="$AZURITE_PREFIX/node_modules/azurite/package.json"
    [ -f "$pj" ] || return 0
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pj" | head -n 1
}

cmd_install() {
    [ "$(installed_version)" = "$AZURITE_VERSION" ] && [ -x "$AZURITE_PREFIX/node_modules/.bin/azurite-blob" ] \
        && return 0
    command -v npm >/dev/null || die "no npm (install Node.js and npm: scripts/install-deps.sh does)"
    echo "azurite.sh: installing Azurite $AZURITE_VERSION (the Azure Blob emulator of the tests) with npm into $AZURITE_PREFIX (about 190 MB, a minute)"
    mkdir -p "$AZURITE_PREFIX"
    # Its own prefix: nothing lands in the work tree or the system's node_modules.
    npm install --prefix "$AZURITE_PREFIX" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" >&2 || die "npm install azurite@$AZURITE_VERSION failed"
    [ "$(installed_version)" = "$AZURITE_VERSION" ] || die "npm did not install azurite $AZURITE_VERSION"
}

azurite_bin() {
    local b
    for b in "${CASSETTE_AZURITE:-}" "$AZURITE_PREFIX/node_modules/.bin/azurite-blob" \
             "$(command -v azurite-blob 2>/dev/null || true)"; do
        [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return 0; }
    done
    die "no azurite-blob (run scripts/install-deps.sh or tests/env/azurite.sh install, or set CASSETTE_AZURITE)"
}

if [ "$CMD" = install ]; then   # touches only the cache, never D
    [ $# -eq 0 ] || usage
    cmd_install
    exit 0
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PID_FILE="$DIR/azurite.pid"
PORT_FILE="$DIR/port"
LOG="$DIR/azurite.log"

# Prints the pid of the running Azurite of DIR, or fails.
running_pid() {
    local pid
    [ -f "$PID_FILE" ] || return 1
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [ -n "$pid" ] || return 1
    alive "$pid" || return 1
    grep -qaF 'azurite' "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

# The port of the running server (its port file), else --port, else the default.
port() {
    local p=""
    if running_pid >/dev/null && [ -f "$PORT_FILE" ]; then p="$(tr -dc '0-9' <"$PORT_FILE")"; fi
    echo "${p:-${PORT:-${CASSETTE_AZURITE_PORT:-10000}}}"
}

# Path style: the emulator takes the account as the first path segment.
endpoint() { echo "http://$AZ_HOST:$(port)/$AZ_ACCOUNT"; }

# azblob.py against the server with the development account.
run_blob() {
    env -u AZURE_STORAGE_CONNECTION_STRING -u AZURE_STORAGE_SAS_TOKEN \
        AZURE_STORAGE_ACCOUNT="$AZ_ACCOUNT" AZURE_STORAGE_KEY="$AZ_KEY" CASSETTE_AZ_ENDPOINT="$(endpoint)" \
        python3 "$AZBLOB_PY" "$@"
}

# True when HOST PORT answers a plain unsigned HTTP request with an HTTP status line.
http_answers() (
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf 'GET / HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' "$1" "$2" >&3 || exit 1
    IFS= read -r -t 5 line <&3 || exit 1
    [[ "$line" =~ ^HTTP/1\.[01]\ [0-9]{3} ]]
) 2>/dev/null

print_log_tail() {
    echo "---- last 40 lines of $LOG ----" >&2
    tail -n 40 "$LOG" >&2 2>/dev/null || echo "(no log)" >&2
}

# Waits until the server answers HTTP, then a signed List Containers. Fails if the process
# dies or the deadline passes.
wait_ready() {
    local pid="$1" p deadline out
    p="$(port)"
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while ! http_answers "$AZ_HOST" "$p"; do
        if ! alive "$pid"; then
            echo "azurite.sh: Azurite died while starting" >&2
            print_log_tail; return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "azurite.sh: Azurite not answering on $AZ_HOST:$p after ${START_TIMEOUT}s (pid $pid)" >&2
            print_log_tail; return 1
        fi
        sleep 0.1
    done
    if ! out="$(run_blob ping 2>&1)"; then
        echo "azurite.sh: Azurite answers on $AZ_HOST:$p but a signed List Containers failed:" >&2
        echo "$out" >&2
        print_log_tail; return 1
    fi
}

cmd_start() {
    local pid p bin t0 t1
    if pid="$(running_pid)"; then
        p="$(port)"
        if [ -n "$PORT" ] && [ "$PORT" != "$p" ]; then
            die "Azurite of $DIR already runs on port $p (pid $pid), not $PORT"
        fi
        wait_ready "$pid" || exit 1
        echo "Azurite already running on $AZ_HOST:$p (pid $pid)"
        return 0
    fi
    p="${PORT:-${CASSETTE_AZURITE_PORT:-10000}}"
    if port_open "$AZ_HOST" "$p"; then
        die "port $p on $AZ_HOST is taken by another process; not starting Azurite"
    fi
    bin="$(azurite_bin)"
    mkdir -p "$DIR/data"
    echo "$p" >"$PORT_FILE"
    local quiet=(--silent)
    [ "${CASSETTE_AZURITE_ACCESS_LOG:-0}" = 1 ] && quiet=()
    echo "==== $(date -u +%FT%TZ) start on $AZ_HOST:$p" >>"$LOG"
    t0="$(date +%s%3N)"
    (
        # Nothing inherited may reconfigure the emulator (it reads AZURITE_* for accounts).
        while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^AZURITE_' || true)
        # --loose: headers it does not implement are ignored, not refused;
        # --skipApiVersionCheck: our x-ms-version is taken whatever its release knows;
        # --disableTelemetry: no traffic leaves the machine.
        exec setsid "$bin" --blobHost "$AZ_HOST" --blobPort "$p" --location "$DIR/data" \
            --loose --skipApiVersionCheck --disableTelemetry "${quiet[@]}" </dev/null >>"$LOG" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    if ! wait_ready "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$PID_FILE"
        exit 1
    fi
    t1="$(date +%s%3N)"
    printf 'Azurite up on %s:%s in %d.%01d s (pid %s, dir %s)\n' "$AZ_HOST" "$p" \
        $(((t1 - t0) / 1000)) $((((t1 - t0) % 1000) / 100)) "$pid" "$DIR"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        echo "Azurite not running"
        return 0
    fi
    stop_pid "$pid" "Azurite" "$STOP_TIMEOUT"
    rm -f "$PID_FILE"
    echo "Azurite stopped (pid $pid)"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "Azurite running (pid $pid) on $AZ_HOST:$(port)"
    else
        echo "Azurite stopped"
        exit 3
    fi
}

cmd_env() {
    echo "# Azurite of $DIR (the emulator's development account)"
    printf 'export AZURE_STORAGE_ACCOUNT=%s\n' "$AZ_ACCOUNT"
    printf 'export AZURE_STORAGE_KEY=%s\n' "$AZ_KEY"
    printf 'export CASSETTE_AZ_ENDPOINT=%s\n' "$(endpoint)"
    printf "export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;'\n" \
        "$AZ_ACCOUNT" "$AZ_KEY" "$(endpoint)"
}

cmd_mkcontainer() {
    running_pid >/dev/null || die "Azurite is not running (azurite.sh start)"
    run_blob mkcontainer "$1"
}

case "$CMD" in
    start)       [ $# -eq 0 ] || usage; cmd_start ;;
    stop)        [ $# -eq 0 ] || usage; cmd_stop ;;
    status)      [ $# -eq 0 ] || usage; cmd_status ;;
    env)         [ $# -eq 0 ] || usage; cmd_env ;;
    mkcontainer) [ $# -eq 1 ] || usage; cmd_mkcontainer "$1" ;;
    blob)        run_blob "$@" ;;
    pid)         [ $# -eq 0 ] || usage; running_pid || exit 3 ;;
    port)        [ $# -eq 0 ] || usage; port ;;
    dir)         [ $# -eq 0 ] || usage; echo "$DIR" ;;
    endpoint)    [ $# -eq 0 ] || usage; endpoint ;;
    *)           usage ;;
esac
