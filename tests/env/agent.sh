#!/usr/bin/env bash
# Runs `cassette agent` beside node N of tests/env/cassandra.sh, as in production: HTTPS with a
# certificate of the base directory's CA and a bearer token from a file of mode 600.
#
#   agent.sh start N [ARGS...]  start node N's agent (idempotent) and wait until it answers
#                               GET /v1/node over TLS with the token; ARGS go to `cassette
#                               agent` as they are (e.g. --allow-repo LOC, --tls-client-ca F)
#   agent.sh stop N             SIGTERM the agent by its pid, wait for it to exit
#   agent.sh stop-all           stop every agent under the base directory
#   agent.sh status N           "running (pid P)" and exit 0, or "stopped" and exit 3
#   agent.sh wait N             wait until a launched agent answers
#   agent.sh url N | pid N | log N   https://127.0.0.N:7620 / its pid / its stderr log
#   agent.sh ca | token-file | client-cert | client-key   paths of the shared TLS and token files
#
# Options (before the command): --base DIR (default $CASSETTE_TEST_DIR or /tmp/cassette-test).
# Environment: CASSETTE_BIN (the binary; default build/asan/cassette of this checkout),
#   CASSETTE_AGENT_START_TIMEOUT (seconds, default 60). The agent gets the caller's environment
#   without its CASSETTE_* variables (its settings are the node's cassette.ini and ARGS), so
#   storage credentials (AWS_*, AZURE_*) reach it as they would in production.
#
# Node N's agent: `cassette agent --config <node dir>/cassette.ini --listen 127.0.0.N:7620
# --token-file <base>/agent/token --tls-cert/--tls-key <node dir>/agent/agent.{pem,key}`.
# Made once per base directory (openssl CLI): <base>/agent/ca.pem (the CA that signs every
# agent's certificate, for 127.0.0.N and localhost), client.pem/client.key (a client
# certificate of that CA, for mutual TLS), token (32 random bytes in hex, mode 600).
# Per node: <node dir>/agent/{agent.pem,agent.key,agent.pid,args,stdout.log,stderr.log}.
# Ready means GET /v1/node with the token answers 200 (the node's facts) or 503 (the agent
# serves, its node does not answer CQL); 401 fails at once (the agent has another token).
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/common.sh"

BASE="${CASSETTE_TEST_DIR:-/tmp/cassette-test}"
START_TIMEOUT="${CASSETTE_AGENT_START_TIMEOUT:-60}"
STOP_TIMEOUT=120   # SIGTERM cancels running jobs and waits for them
PORT=7620

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --base) [ $# -ge 2 ] || usage; BASE="$2"; shift 2 ;;
        --base=*) BASE="${1#--base=}"; shift ;;
        start) args+=("$1"); shift; [ $# -ge 1 ] && { args+=("$1"); shift; }
               args+=("$@"); break ;;   # the rest is the agent's
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]+"${args[@]}"}"
[ $# -ge 1 ] || usage
CMD="$1"; shift
mkdir -p "$BASE"
BASE="$(cd "$BASE" && pwd)"
SHARED="$BASE/agent"

check_node() {
    case "${1:-}" in
        [1-9]|1[0-9]|2[0-9]) ;;
        *) die "node number must be 1..29, got '${1:-}'" ;;
    esac
}
node_dir()  { echo "$BASE/node$1"; }
agent_dir() { echo "$BASE/node$1/agent"; }
node_addr() { echo "127.0.0.$1"; }
agent_url() { echo "https://$(node_addr "$1"):$PORT"; }

cassette_bin() {
    local b="${CASSETTE_BIN:-build/asan/cassette}"
    case "$b" in /*) ;; *) b="$CASSETTE_ROOT/$b" ;; esac
    [ -x "$b" ] || die "cassette binary $b is missing: build it first (make VARIANT=asan, or set CASSETTE_BIN)"
    echo "$b"
}

# The base directory's CA, client certificate and token, made once.
make_shared() {
    local tmp
    [ -s "$SHARED/ca.pem" ] && [ -s "$SHARED/ca.key" ] && [ -s "$SHARED/client.pem" ] \
        && [ -s "$SHARED/token" ] && return 0
    tmp="$SHARED.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    (
        set -e
        cd "$tmp"
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
            -out ca.pem -days 3650 -subj "/CN=cassette test agent CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout client.key \
            -out client.csr -subj "/CN=cassette test coordinator"
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
            -days 3650 -extfile client.ext
        openssl rand -hex 32 >token
        rm -f client.csr client.ext ca.srl
        chmod 644 ca.pem client.pem
    ) >"$tmp.log" 2>&1 || { cat "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; die "could not make the agents' CA and token"; }
    rm -f "$tmp.log"
    rm -rf "$SHARED"; mv "$tmp" "$SHARED"
}

# Node N's agent certificate (127.0.0.N, localhost), signed by the base directory's CA.
make_agent_cert() {
    local n="$1" d addr
    d="$(agent_dir "$n")"; addr="$(node_addr "$n")"
    [ -s "$d/agent.pem" ] && [ -s "$d/agent.key" ] \
        && openssl verify -CAfile "$SHARED/ca.pem" "$d/agent.pem" >/dev/null 2>&1 && return 0
    mkdir -p "$d"
    (
        set -e
        cd "$d"
        umask 077
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout agent.key \
            -out agent.csr -subj "/CN=$addr"
        printf 'subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
            "$addr" >agent.ext
        openssl x509 -req -in agent.csr -CA "$SHARED/ca.pem" -CAkey "$SHARED/ca.key" \
            -CAserial "$d/ca.srl" -CAcreateserial -out agent.pem -days 3650 -extfile agent.ext
        rm -f agent.csr agent.ext ca.srl
    ) >"$d/cert.log" 2>&1 || { cat "$d/cert.log" >&2; die "could not make node $n's agent certificate"; }
    rm -f "$d/cert.log"
}

# Prints the pid of node N's running agent, or fails.
running_pid() {
    local f pid
    f="$(agent_dir "$1")/agent.pid"
    [ -f "$f" ] || return 1
    pid="$(tr -dc '0-9' <"$f")"
    [ -n "$pid" ] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q " agent .*--listen $(node_addr "$1"):$PORT" || return 1
    echo "$pid"
}

# One GET /v1/node over TLS (the CA checked, the client certificate shown, the token sent from
# its file, never a command line): prints "STATUS BODY"; "000 reason" when nothing answered.
probe() {
    python3 - "$(node_addr "$1")" "$PORT" "$SHARED" <<'PY'
import http.client, json, ssl, sys
addr, port, shared = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=f"{shared}/ca.pem")
ctx.load_cert_chain(f"{shared}/client.pem", f"{shared}/client.key")
token = open(f"{shared}/token").readline().strip()
try:
    c = http.client.HTTPSConnection(addr, port, context=ctx, timeout=10)
    c.request("GET", "/v1/node", headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    body = r.read().decode(errors="replace")
    try:
        facts = json.loads(body)
        body = f"host id {facts['host_id']}" if r.status == 200 else facts.get("error", body)
    except (ValueError, KeyError, AttributeError):
        pass
    print(r.status, body.replace("\n", " ")[:400])
except Exception as e:
    print("000", type(e).__name__, str(e)[:200])
PY
}

# Waits until node N's agent, process PID, answers GET /v1/node (200 or 503). Fails if PID
# exits, the agent answers 401, or the deadline passes. PID is watched, not running_pid: just
# after the fork its command line is still this script's until the exec (a busy machine showed
# that moment, and a starting agent was taken for one that had exited).
wait_ready() {
    local n="$1" pid="$2" deadline answer log
    log="$(agent_dir "$n")/stderr.log"
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while :; do
        if ! alive "$pid"; then
            echo "agent.sh: node $n's agent exited; last lines of $log:" >&2
            tail -n 20 "$log" >&2 2>/dev/null || true
            return 1
        fi
        answer="$(probe "$n")"
        case "$answer" in
            "200 "*|"503 "*) READY_ANSWER="$answer"; return 0 ;;
            "401 "*) echo "agent.sh: node $n's agent (pid $pid) refuses the token of $SHARED/token: $answer" >&2
                     return 1 ;;
        esac
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "agent.sh: node $n's agent (pid $pid) does not answer after ${START_TIMEOUT}s: $answer" >&2
            tail -n 20 "$log" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
}

# "host id H" from a 200 answer, or what a 503 said.
describe_answer() {
    case "$1" in
        "200 "*) echo "${1#* }" ;;
        *) echo "its node does not answer: ${1#* }" ;;
    esac
}

cmd_start() {
    local n="$1" d ini pid bin env_clean=() v; shift
    check_node "$n"
    d="$(agent_dir "$n")"
    if pid="$(running_pid "$n")"; then
        if [ $# -gt 0 ] && [ "$*" != "$(cat "$d/args" 2>/dev/null)" ]; then
            die "agent $n runs with other arguments ($(cat "$d/args" 2>/dev/null)); stop it first"
        fi
        wait_ready "$n" "$pid" || exit 1
        echo "agent $n already running (pid $pid; $(describe_answer "$READY_ANSWER"))"
        return 0
    fi
    ini="$(node_dir "$n")/cassette.ini"
    [ -f "$ini" ] || die "no $ini: start node $n first (tests/env/cassandra.sh start $n)"
    bin="$(cassette_bin)"
    make_shared
    make_agent_cert "$n"
    for v in "${!CASSETTE_@}"; do env_clean+=(-u "$v"); done
    printf '%s\n' "$*" >"$d/args"
    echo "==== $(date -u +%FT%TZ) start agent $n: $*" >>"$d/stderr.log"
    env "${env_clean[@]+"${env_clean[@]}"}" \
        ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        setsid "$bin" agent --config "$ini" --listen "$(node_addr "$n"):$PORT" \
        --token-file "$SHARED/token" --tls-cert "$d/agent.pem" --tls-key "$d/agent.key" "$@" \
        </dev/null >>"$d/stdout.log" 2>>"$d/stderr.log" &
    pid=$!
    echo "$pid" >"$d/agent.pid"
    if ! wait_ready "$n" "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        exit 1
    fi
    echo "agent $n up on $(agent_url "$n") (pid $pid; $(describe_answer "$READY_ANSWER"))"
}

cmd_stop() {
    local n="$1" d pid
    check_node "$n"
    d="$(agent_dir "$n")"
    if ! pid="$(running_pid "$n")"; then
        rm -f "$d/agent.pid"
        echo "agent $n not running"
        return 0
    fi
    stop_pid "$pid" "node $n's agent" "$STOP_TIMEOUT"
    rm -f "$d/agent.pid"
    echo "agent $n stopped (pid $pid)"
}

cmd_stop_all() {
    local f n rc=0
    for f in "$BASE"/node*/agent/agent.pid; do
        [ -f "$f" ] || continue
        n="${f#"$BASE"/node}"; n="${n%%/*}"
        cmd_stop "$n" || rc=1
    done
    return $rc
}

case "$CMD" in
    start)    [ $# -ge 1 ] || usage; cmd_start "$@" ;;
    stop)     [ $# -eq 1 ] || usage; cmd_stop "$1" ;;
    stop-all) [ $# -eq 0 ] || usage; cmd_stop_all ;;
    status)   [ $# -eq 1 ] || usage; check_node "$1"
              if pid="$(running_pid "$1")"; then echo "agent $1 running (pid $pid)"
              else echo "agent $1 stopped"; exit 3; fi ;;
    wait)     [ $# -eq 1 ] || usage; check_node "$1"; pid="$(running_pid "$1")" || die "agent $1 not running"
              wait_ready "$1" "$pid" ;;
    url)      [ $# -eq 1 ] || usage; check_node "$1"; agent_url "$1" ;;
    pid)      [ $# -eq 1 ] || usage; check_node "$1"; running_pid "$1" || exit 3 ;;
    log)      [ $# -eq 1 ] || usage; check_node "$1"; echo "$(agent_dir "$1")/stderr.log" ;;
    ca)       [ $# -eq 0 ] || usage; make_shared; echo "$SHARED/ca.pem" ;;
    token-file)  [ $# -eq 0 ] || usage; make_shared; echo "$SHARED/token" ;;
    client-cert) [ $# -eq 0 ] || usage; make_shared; echo "$SHARED/client.pem" ;;
    client-key)  [ $# -eq 0 ] || usage; make_shared; echo "$SHARED/client.key" ;;
    *)        usage ;;
esac
