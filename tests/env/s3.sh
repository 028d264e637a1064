#!/usr/bin/env bash
# Runs a real S3-compatible server (versitygw, posix backend, SigV4 checked) on loopback
# for cassette's tests and demo.
#
#   s3.sh start            start versitygw (idempotent) and wait until it answers S3 requests
#   s3.sh stop             SIGTERM it, wait for it to exit (SIGKILL after 20 s)
#   s3.sh status           "running (pid P) on 127.0.0.1:PORT" and exit 0, or "stopped" and exit 3
#   s3.sh env              shell exports for clients: eval "$(tests/env/s3.sh env)"
#                          (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
#                          AWS_DEFAULT_REGION, AWS_ENDPOINT_URL)
#   s3.sh mkbucket NAME    create bucket NAME (fine if it exists already)
#   s3.sh aws ARGS...      awscli against the server: endpoint (unless ARGS has --endpoint-url),
#                          test credentials, region, path-style addressing, no ~/.aws
#   s3.sh pid | port | dir print the server's pid (exit 3 if stopped) / port / directory
#   s3.sh endpoint | ca    print the endpoint URL / the CA file clients must trust (https only)
#
# Options (before the command): --port P (default $CASSETTE_S3_PORT or 7070; once started, the other
#   commands use the running server's port), --dir D (default $CASSETTE_TEST_DIR/s3, that is
#   /tmp/cassette-test/s3), --tls (start: serve https with a self-signed certificate for
#   127.0.0.1 made with openssl in D/tls/; the other commands follow the running server).
# Environment: CASSETTE_VERSITYGW (binary; default $CASSETTE_CACHE/go/bin/versitygw, then PATH),
#   CASSETTE_AWS (awscli; default /usr/bin/aws, then PATH), CASSETTE_S3_META (xattr, sidecar
#   or none; default: xattr when the filesystem of D takes user xattrs, else sidecar),
#   CASSETTE_S3_START_TIMEOUT (seconds, default 60).
#
# Credentials are fixed test values (root account): access key cassette-test.
# Layout of D: root/ (posix backend: one directory per bucket), sidecar/ (metadata, only
#   without user xattrs), versitygw.pid, port, versitygw.log, aws-config.
# Note: awscli before 2.13 (Debian 12 ships 2.9) ignores AWS_ENDPOINT_URL; `s3.sh aws` passes
#   --endpoint-url itself.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/common.sh"

S3_ACCESS_KEY="cassette-test"
S3_SECRET_KEY="cassette-test-secret-key-0123456789abcdef"
S3_REGION="us-east-1"
S3_HOST="127.0.0.1"
DIR="${CASSETTE_TEST_DIR:-/tmp/cassette-test}/s3"
PORT=""
TLS=0
START_TIMEOUT="${CASSETTE_S3_START_TIMEOUT:-60}"
STOP_TIMEOUT=20

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
        --tls) TLS=1; shift ;;
        aws) args+=("$@"); break ;;   # everything after `aws` belongs to awscli
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
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PID_FILE="$DIR/versitygw.pid"
PORT_FILE="$DIR/port"
SCHEME_FILE="$DIR/scheme"
CA_FILE="$DIR/tls/cert.pem"
LOG="$DIR/versitygw.log"

# True while process PID exists and is not a zombie.

# Prints the pid of the running versitygw of DIR, or fails.
running_pid() {
    local pid
    [ -f "$PID_FILE" ] || return 1
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [ -n "$pid" ] || return 1
    alive "$pid" || return 1
    grep -qaF 'versitygw' "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

# The port of the running server (its port file), else --port, else the default.
port() {
    local p=""
    if running_pid >/dev/null && [ -f "$PORT_FILE" ]; then p="$(tr -dc '0-9' <"$PORT_FILE")"; fi
    echo "${p:-${PORT:-${CASSETTE_S3_PORT:-7070}}}"
}

# http or https: what the running server speaks (its scheme file), else what --tls asks for.
scheme() {
    if running_pid >/dev/null && [ -f "$SCHEME_FILE" ]; then cat "$SCHEME_FILE"; return 0; fi
    if [ "$TLS" = 1 ]; then echo https; else echo http; fi
}

endpoint() { echo "$(scheme)://$S3_HOST:$(port)"; }

# A self-signed certificate for 127.0.0.1 (kept across restarts of the same DIR).
make_cert() {
    [ -s "$CA_FILE" ] && [ -s "$DIR/tls/key.pem" ] && return 0
    mkdir -p "$DIR/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$S3_HOST" \
        -addext "subjectAltName=IP:$S3_HOST" -keyout "$DIR/tls/key.pem" -out "$CA_FILE" \
        >/dev/null 2>&1 || die "openssl could not make a certificate in $DIR/tls"
}

versitygw_bin() {
    local b
    for b in "${CASSETTE_VERSITYGW:-}" "$CASSETTE_CACHE/go/bin/versitygw" \
             "$(command -v versitygw 2>/dev/null || true)"; do
        [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return 0; }
    done
    die "no versitygw binary (run scripts/install-deps.sh, or set CASSETTE_VERSITYGW)"
}

aws_bin() {
    local b
    for b in "${CASSETTE_AWS:-}" /usr/bin/aws "$(command -v aws 2>/dev/null || true)"; do
        [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return 0; }
    done
    die "no awscli (run scripts/install-deps.sh, or set CASSETTE_AWS)"
}

# True when the server answers an unsigned request (any HTTP status).
server_answers() {
    if [ "$(scheme)" = https ]; then
        curl -s -o /dev/null --max-time 5 --cacert "$CA_FILE" "https://$1:$2/"
    else
        http_answers "$1" "$2"
    fi
}

# True when HOST PORT answers a plain unsigned HTTP request with an HTTP status line.
http_answers() (
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf 'GET / HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' "$1" "$2" >&3 || exit 1
    IFS= read -r -t 5 line <&3 || exit 1
    [[ "$line" =~ ^HTTP/1\.[01]\ [0-9]{3} ]]
) 2>/dev/null

# How versitygw keeps object metadata: xattr when DIR's filesystem takes user xattrs.
meta_mode() {
    if [ -n "${CASSETTE_S3_META:-}" ]; then
        case "$CASSETTE_S3_META" in
            xattr|sidecar|none) echo "$CASSETTE_S3_META"; return 0 ;;
            *) die "CASSETTE_S3_META must be xattr, sidecar or none" ;;
        esac
    fi
    if python3 - "$DIR" <<'PY' 2>/dev/null; then echo xattr; else echo sidecar; fi
import os, sys, tempfile
fd, path = tempfile.mkstemp(dir=sys.argv[1], prefix=".xattr-probe.")
try:
    os.setxattr(path, "user.cassette-probe", b"1")
    assert os.getxattr(path, "user.cassette-probe") == b"1"
finally:
    os.close(fd)
    os.unlink(path)
PY
}

aws_config() {
    local f="$DIR/aws-config"
    if [ ! -f "$f" ]; then
        cat >"$f.tmp.$$" <<CFG
# Written by tests/env/s3.sh: awscli settings for the test server (no ~/.aws).
[default]
region = $S3_REGION
s3 =
    addressing_style = path
CFG
        mv "$f.tmp.$$" "$f"
    fi
    echo "$f"
}

# awscli against the server; stdout/stderr/exit status are awscli's.
run_aws() {
    local a ep=1 aws cfg
    aws="$(aws_bin)"; cfg="$(aws_config)"
    for a in "$@"; do
        case "$a" in --endpoint-url|--endpoint-url=*) ep=0 ;; esac
    done
    local extra=()
    [ "$ep" = 1 ] && extra=(--endpoint-url "$(endpoint)")
    local ca=()
    [ "$(scheme)" = https ] && ca=(AWS_CA_BUNDLE="$CA_FILE")
    env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN -u AWS_SECURITY_TOKEN \
        -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_CA_BUNDLE \
        AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
        AWS_REGION="$S3_REGION" AWS_DEFAULT_REGION="$S3_REGION" \
        AWS_CONFIG_FILE="$cfg" AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" AWS_CLI_AUTO_PROMPT=off "${ca[@]}" \
        "$aws" "${extra[@]}" "$@"
}

print_log_tail() {
    echo "---- last 40 lines of $LOG ----" >&2
    tail -n 40 "$LOG" >&2 2>/dev/null || echo "(no log)" >&2
}

# Waits until the server answers HTTP, then a signed list-buckets. Fails if the process dies
# or the deadline passes.
wait_ready() {
    local pid="$1" p deadline out
    p="$(port)"
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while ! server_answers "$S3_HOST" "$p"; do
        if ! alive "$pid"; then
            echo "s3.sh: versitygw died while starting" >&2
            print_log_tail; return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "s3.sh: versitygw not answering on $S3_HOST:$p after ${START_TIMEOUT}s (pid $pid)" >&2
            print_log_tail; return 1
        fi
        sleep 0.1
    done
    if ! out="$(run_aws s3api list-buckets --output json --cli-connect-timeout 5 \
                   --cli-read-timeout 30 2>&1)"; then
        echo "s3.sh: versitygw answers on $S3_HOST:$p but a signed list-buckets failed:" >&2
        echo "$out" >&2
        print_log_tail; return 1
    fi
}

cmd_start() {
    local pid p bin meta t0 t1
    if pid="$(running_pid)"; then
        p="$(port)"
        if [ -n "$PORT" ] && [ "$PORT" != "$p" ]; then
            die "versitygw of $DIR already runs on port $p (pid $pid), not $PORT"
        fi
        wait_ready "$pid" || exit 1
        echo "versitygw already running on $S3_HOST:$p (pid $pid)"
        return 0
    fi
    p="${PORT:-${CASSETTE_S3_PORT:-7070}}"
    if port_open "$S3_HOST" "$p"; then
        die "port $p on $S3_HOST is taken by another process; not starting versitygw"
    fi
    bin="$(versitygw_bin)"
    mkdir -p "$DIR/root"
    meta="$(meta_mode)"
    local backend=(posix) tls=()
    if [ "$TLS" = 1 ]; then
        make_cert
        tls=(--cert "$CA_FILE" --key "$DIR/tls/key.pem")
        echo https >"$SCHEME_FILE"
    else
        echo http >"$SCHEME_FILE"
    fi
    case "$meta" in
        sidecar) mkdir -p "$DIR/sidecar"; backend+=(--sidecar "$DIR/sidecar") ;;
        none) backend+=(--nometa) ;;
    esac
    backend+=("$DIR/root")
    echo "$p" >"$PORT_FILE"
    aws_config >/dev/null
    echo "==== $(date -u +%FT%TZ) start on $S3_HOST:$p (metadata: $meta)" >>"$LOG"
    t0="$(date +%s%3N)"
    (
        # Nothing inherited may reconfigure the server (versitygw reads VGW_* and ROOT_*).
        while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(VGW_|ROOT_|LOGFILE$|WEBHOOK$)' || true)
        export ROOT_ACCESS_KEY="$S3_ACCESS_KEY" ROOT_SECRET_KEY="$S3_SECRET_KEY"
        exec setsid "$bin" --port "$S3_HOST:$p" --region "$S3_REGION" --keep-alive "${tls[@]}" \
            "${backend[@]}" </dev/null >>"$LOG" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    if ! wait_ready "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$PID_FILE"
        exit 1
    fi
    t1="$(date +%s%3N)"
    printf 'versitygw up on %s:%s in %d.%01d s (pid %s, metadata: %s, dir %s)\n' "$S3_HOST" "$p" \
        $(((t1 - t0) / 1000)) $((((t1 - t0) % 1000) / 100)) "$pid" "$meta" "$DIR"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        echo "versitygw not running"
        return 0
    fi
    stop_pid "$pid" "versitygw" "$STOP_TIMEOUT"
    rm -f "$PID_FILE"
    echo "versitygw stopped (pid $pid)"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "versitygw running (pid $pid) on $S3_HOST:$(port)"
    else
        echo "versitygw stopped"
        exit 3
    fi
}

cmd_env() {
    echo "# versitygw of $DIR; awscli < 2.13 ignores AWS_ENDPOINT_URL: use s3.sh aws"
    printf 'export AWS_ACCESS_KEY_ID=%s\n' "$S3_ACCESS_KEY"
    printf 'export AWS_SECRET_ACCESS_KEY=%s\n' "$S3_SECRET_KEY"
    printf 'export AWS_REGION=%s\n' "$S3_REGION"
    printf 'export AWS_DEFAULT_REGION=%s\n' "$S3_REGION"
    printf 'export AWS_ENDPOINT_URL=%s\n' "$(endpoint)"
    if [ "$(scheme)" = https ]; then printf 'export AWS_CA_BUNDLE=%s\n' "$CA_FILE"; fi
}

cmd_mkbucket() {
    local out
    running_pid >/dev/null || die "versitygw is not running (s3.sh start)"
    if out="$(run_aws s3api create-bucket --bucket "$1" --output json 2>&1)"; then
        echo "bucket $1 created"
    elif grep -q 'BucketAlreadyOwnedByYou' <<<"$out"; then
        echo "bucket $1 exists"
    else
        echo "$out" >&2
        die "could not create bucket $1"
    fi
}

case "$CMD" in
    start)    [ $# -eq 0 ] || usage; cmd_start ;;
    stop)     [ $# -eq 0 ] || usage; cmd_stop ;;
    status)   [ $# -eq 0 ] || usage; cmd_status ;;
    env)      [ $# -eq 0 ] || usage; cmd_env ;;
    mkbucket) [ $# -eq 1 ] || usage; cmd_mkbucket "$1" ;;
    aws)      run_aws "$@" ;;
    pid)      [ $# -eq 0 ] || usage; running_pid || exit 3 ;;
    port)     [ $# -eq 0 ] || usage; port ;;
    dir)      [ $# -eq 0 ] || usage; echo "$DIR" ;;
    endpoint) [ $# -eq 0 ] || usage; endpoint ;;
    ca)       [ $# -eq 0 ] || usage; [ "$(scheme)" = https ] || die "the server speaks plain http"; echo "$CA_FILE" ;;
    *)        usage ;;
esac
