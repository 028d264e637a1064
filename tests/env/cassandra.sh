#!/usr/bin/env bash
# Runs real Apache Cassandra 5.0 nodes on loopback for cassette's tests and demo.
#
#   cassandra.sh start N       start node N (idempotent) and wait until it serves CQL
#   cassandra.sh stop N        SIGTERM node N, wait for it to exit (SIGKILL after 60 s)
#   cassandra.sh stop-all      stop every node under the base directory
#   cassandra.sh start-cluster start every node of --cluster FIRST-LAST at once (the running
#                              ones are kept) and wait until each serves CQL and sees every
#                              other node UP (its log's "is now UP" lines and system.peers_v2)
#   cassandra.sh stop-cluster  SIGTERM every node of --cluster FIRST-LAST at once, wait for all
#   cassandra.sh status N      "running (pid P)" and exit 0, or "stopped" and exit 3
#   cassandra.sh wait N        wait until a launched node N serves CQL
#   cassandra.sh nodetool N ARGS...   nodetool against node N
#   cassandra.sh cql N "STATEMENT"    run one CQL statement with the Python driver, print rows
#   cassandra.sh dir N | ini N | pid N   print the node directory / cassette.ini path / pid
#   cassandra.sh ca N          print the path of node N's CA certificate (PEM; --tls nodes)
#
# Options (anywhere): --base DIR (default $CASSETTE_TEST_DIR or /tmp/cassette-test),
#   --nodes K (cluster size, default $CASSETTE_TEST_NODES or 1; sets tokens and seeds).
#   --cluster FIRST-LAST (default $CASSETTE_TEST_CLUSTER_NODES): nodes FIRST..LAST form one
#               cluster of their own: all seeds, one balanced token each by position in the
#               range, cluster_name $CASSETTE_TEST_CLUSTER. Remembered with the node's start
#               options: a later start of the node (after its data was deleted, say) without
#               --cluster joins the same cluster with the same name and tokens.
#   --token T[,T...]  start of one node: its initial_token(s) instead of the balanced one
#               (num_tokens is their count); remembered as --cluster is. For several nodes:
#               CASSETTE_TEST_TOKENS="N=T[,T...] N=T..." (e.g. the tokens of the nodes of the
#               cluster a backup came from, for a new cluster that carries them).
# Options of start (remembered while the node runs: cql, nodetool, wait and ini use them):
#   --auth      PasswordAuthenticator + CassandraAuthorizer; the default superuser
#               cassandra/cassandra; ready means a CQL login as that user succeeds.
#   --tls       client_encryption_options enabled with optional: true (TLS and plaintext on
#               the same port 9042). A self-signed CA and a node certificate for 127.0.0.N
#               are made once and kept in <node dir>/tls/ (ca.pem, node.pem, node.key,
#               keystore.p12, truststore.p12; store password "cassandra").
#   --tls-required  the same with optional: false: plaintext CQL is refused.
#   --tls-client-auth  with --tls*: require_client_auth: true; clients show a certificate
#               of the node's CA (<node dir>/tls/client.pem, client.key).
#   --plain     none of these (the default, said explicitly).
#   Given any of these, start of a node that runs with other options fails; given none,
#   start of a running node takes it as it runs.
#   --jmx-auth  JMX password authentication (user cassandra, password cassandra, in the
#               0600 file <node dir>/conf/jmxremote.password, which nodetool reads too).
#   A node started without them runs exactly as before (no auth, no TLS). cassette.ini of a
#   node started with them carries username/password, ca_file and jmx_user/jmx_password.
# Environment: CASSETTE_TEST_DATA_DIRS (data directories per node, default 1),
#   CASSETTE_TEST_CLUSTER (cluster_name, default cassette-test; for a --cluster node, default
#   the name it was first started with),
#   CASSETTE_CASSANDRA_YAML (extra "key: value" lines that replace or extend cassandra.yaml),
#   CASSETTE_CASSANDRA_START_TIMEOUT (seconds, default 180).
#
# Node N (1..29) listens on 127.0.0.N (storage 7000, CQL 9042), JMX on 127.0.0.1 port 7000+100N
# for N <= 9 (7100..7900), 10000+100(N-10) for N >= 10 (10000..11900). A node N above --nodes
# and outside a --cluster is a cluster of its own (its own seed), so nodes of different bases
# can run side by side when their numbers differ.
# Layout: <base>/node<N>/{conf,data,commitlog,hints,saved_caches,cdc_raw,logs}/,
#   cassandra.pid, cassette.ini.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/common.sh"

BASE="${CASSETTE_TEST_DIR:-/tmp/cassette-test}"
NODES="${CASSETTE_TEST_NODES:-1}"
START_TIMEOUT="${CASSETTE_CASSANDRA_START_TIMEOUT:-180}"
STOP_TIMEOUT=60

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

OPT_AUTH=0; OPT_TLS=0; OPT_JMX_AUTH=0; OPT_CLIENT_AUTH=0; OPT_GIVEN=0
CLUSTER_RANGE="${CASSETTE_TEST_CLUSTER_NODES:-}"
OPT_TOKEN=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --auth) OPT_AUTH=1; OPT_GIVEN=1; shift ;;
        --tls) OPT_TLS=1; OPT_GIVEN=1; shift ;;
        --tls-required) OPT_TLS=2; OPT_GIVEN=1; shift ;;
        --tls-client-auth) OPT_CLIENT_AUTH=1; OPT_GIVEN=1; shift ;;
        --jmx-auth) OPT_JMX_AUTH=1; OPT_GIVEN=1; shift ;;
        --plain) OPT_GIVEN=1; shift ;;
        --base) [ $# -ge 2 ] || usage; BASE="$2"; shift 2 ;;
        --base=*) BASE="${1#--base=}"; shift ;;
        --nodes) [ $# -ge 2 ] || usage; NODES="$2"; shift 2 ;;
        --nodes=*) NODES="${1#--nodes=}"; shift ;;
        --cluster) [ $# -ge 2 ] || usage; CLUSTER_RANGE="$2"; shift 2 ;;
        --cluster=*) CLUSTER_RANGE="${1#--cluster=}"; shift ;;
        --token) [ $# -ge 2 ] || usage; OPT_TOKEN="$2"; shift 2 ;;
        --token=*) OPT_TOKEN="${1#--token=}"; shift ;;
        --) shift; args+=("$@"); break ;;
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]+"${args[@]}"}"
[ $# -ge 1 ] || usage
CMD="$1"; shift
mkdir -p "$BASE"
BASE="$(cd "$BASE" && pwd)"

check_node() {
    case "${1:-}" in
        [1-9]|1[0-9]|2[0-9]) ;;
        *) die "node number must be 1..29, got '${1:-}'" ;;
    esac
}
node_dir()  { echo "$BASE/node$1"; }
node_addr() { echo "127.0.0.$1"; }
# 7100..7900 for nodes 1..9 (as ever); above, 10000 + 100 per node past 10: clear of
# Cassandra's 7000/7001/7199/9042 and of the 7N00 ports of nodes 1..9.
jmx_port()  { if (($1 <= 9)); then echo $((7000 + $1 * 100)); else echo $((10000 + ($1 - 10) * 100)); fi; }
log_file()  { echo "$(node_dir "$1")/logs/system.log"; }
now_ms()    { date +%s%3N; }
opts_file() { echo "$(node_dir "$1")/start-options"; }
tls_dir()   { echo "$(node_dir "$1")/tls"; }
jmx_pw_file() { echo "$(node_dir "$1")/conf/jmxremote.password"; }

# Loads the options node N was started with (written by start) into OPT_*.
load_opts() {
    local f
    f="$(opts_file "$1")"
    OPT_AUTH=0; OPT_TLS=0; OPT_JMX_AUTH=0; OPT_CLIENT_AUTH=0
    [ -f "$f" ] || return 0
    OPT_AUTH="$(sed -n 's/^auth=//p' "$f")"; OPT_AUTH="${OPT_AUTH:-0}"
    OPT_TLS="$(sed -n 's/^tls=//p' "$f")"; OPT_TLS="${OPT_TLS:-0}"
    OPT_JMX_AUTH="$(sed -n 's/^jmx_auth=//p' "$f")"; OPT_JMX_AUTH="${OPT_JMX_AUTH:-0}"
    OPT_CLIENT_AUTH="$(sed -n 's/^client_auth=//p' "$f")"; OPT_CLIENT_AUTH="${OPT_CLIENT_AUTH:-0}"
}

# "auth, tls required, jmx auth" / "plain": the loaded options in words.
describe_opts() {
    local w=()
    [ "$OPT_AUTH" = 1 ] && w+=(auth)
    [ "$OPT_TLS" = 1 ] && w+=("tls optional")
    [ "$OPT_TLS" = 2 ] && w+=("tls required")
    [ "$OPT_CLIENT_AUTH" = 1 ] && w+=("client certificates")
    [ "$OPT_JMX_AUTH" = 1 ] && w+=("jmx auth")
    [ ${#w[@]} -gt 0 ] || w=(plain)
    local IFS=,; echo "${w[*]}" | sed 's/,/, /g'
}

save_opts() {
    local f
    f="$(opts_file "$1")"
    mkdir -p "$(dirname "$f")"
    {
        printf 'auth=%s\ntls=%s\njmx_auth=%s\nclient_auth=%s\n' "$OPT_AUTH" "$OPT_TLS" "$OPT_JMX_AUTH" \
            "$OPT_CLIENT_AUTH"
        if [ -n "$NODE_CLUSTER" ]; then
            printf 'cluster=%s\ncluster_name=%s\n' "$NODE_CLUSTER" "$NODE_CLUSTER_NAME"
        fi
        if [ -n "$NODE_TOKENS" ]; then printf 'tokens=%s\n' "$NODE_TOKENS"; fi
    } >"$f.tmp"
    mv "$f.tmp" "$f"
}

# Makes node N's TLS material once: a self-signed CA and a node certificate for 127.0.0.N
# (and localhost) signed by it, in PEM and as PKCS12 key and trust stores for Cassandra.
make_tls() {
    local n="$1" t addr tmp
    t="$(tls_dir "$n")"; addr="$(node_addr "$n")"
    [ -s "$t/keystore.p12" ] && [ -s "$t/truststore.p12" ] && [ -s "$t/ca.pem" ] \
        && [ -s "$t/client.pem" ] && return 0
    tmp="$t.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    (
        set -e
        cd "$tmp"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/CN=cassette test CA node $n" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj "/CN=$addr"
        printf 'subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
            "$addr" >node.ext
        openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem \
            -days 3650 -extfile node.ext
        openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=cassette test client"
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
            -days 3650 -extfile client.ext
        openssl pkcs12 -export -in node.pem -inkey node.key -certfile ca.pem -name node \
            -out keystore.p12 -passout pass:cassandra
        keytool -importcert -noprompt -alias ca -file ca.pem -keystore truststore.p12 \
            -storetype PKCS12 -storepass cassandra
        rm -f node.csr node.ext client.csr client.ext ca.srl
        chmod 600 ca.key node.key client.key
    ) >"$tmp.log" 2>&1 || { cat "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; die "could not make TLS material for node $n"; }
    rm -f "$tmp.log"
    rm -rf "$t"; mv "$tmp" "$t"
}

# The JMX password file of node N (user cassandra, password cassandra), 0600 as the JDK wants.
make_jmx_pw() {
    local f
    f="$(jmx_pw_file "$1")"
    mkdir -p "${f%/*}"
    (umask 077; printf 'cassandra cassandra\n' >"$f.tmp")
    mv "$f.tmp" "$f"
}

# True while process PID exists and is not a zombie.

# Prints the pid of node N's running Cassandra, or fails.
running_pid() {
    local f pid
    f="$(node_dir "$1")/cassandra.pid"
    [ -f "$f" ] || return 1
    pid="$(tr -dc '0-9' <"$f")"
    [ -n "$pid" ] || return 1
    alive "$pid" || return 1
    grep -qaF 'org.apache.cassandra.service.CassandraDaemon' "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

# Token of node N of NODES, balanced over the Murmur3 ring.
initial_token() {
    balanced_token $(($1 - 1)) "$NODES"
}

# The token of position P (0-based) of K nodes, balanced over the Murmur3 ring.
balanced_token() {
    python3 -c "import sys; p,k=int(sys.argv[1]),int(sys.argv[2]); print(-2**63 + (p % k)*(2**64//k))" "$1" "$2"
}

# Splits a --cluster range FIRST-LAST into C_FIRST and C_LAST (node numbers, FIRST <= LAST: 19-19 is
# a one-node cluster of its own).
parse_range() {
    [[ "$1" =~ ^([0-9]+)-([0-9]+)$ ]] || die "--cluster wants FIRST-LAST (e.g. 11-13), got '$1'"
    C_FIRST="${BASH_REMATCH[1]}"; C_LAST="${BASH_REMATCH[2]}"
    check_node "$C_FIRST"; check_node "$C_LAST"
    ((C_FIRST <= C_LAST)) || die "--cluster $1: FIRST must not be above LAST"
}

# The value of key K in node N's start options ("" when not there).
saved_opt() {
    local f
    f="$(opts_file "$1")"
    [ -f "$f" ] && sed -n "s/^$2=//p" "$f" || true
}

# Node N's entry of CASSETTE_TEST_TOKENS ("N=T[,T...] ..."), or nothing.
tokens_from_env() {
    local e
    for e in ${CASSETTE_TEST_TOKENS:+${CASSETTE_TEST_TOKENS//;/ }}; do
        [ "${e%%=*}" = "$1" ] && { echo "${e#*=}"; return 0; }
    done
    return 0
}

# Sets NODE_CLUSTER (FIRST-LAST, or empty: the --nodes rule), NODE_CLUSTER_NAME and
# NODE_TOKENS (explicit tokens, or empty: balanced) for a start of node N: what --cluster,
# --token and the environment say, else what the node was last started with.
resolve_cluster() {
    local n="$1"
    NODE_CLUSTER="${CLUSTER_RANGE:-$(saved_opt "$n" cluster)}"
    NODE_CLUSTER_NAME=""
    NODE_TOKENS="${OPT_TOKEN:-$(tokens_from_env "$n")}"
    NODE_TOKENS="${NODE_TOKENS:-$(saved_opt "$n" tokens)}"
    [ -z "$NODE_TOKENS" ] || [[ "$NODE_TOKENS" =~ ^-?[0-9]+(,-?[0-9]+)*$ ]] \
        || die "node $n: tokens must be integers separated by commas, got '$NODE_TOKENS'"
    [ -n "$NODE_CLUSTER" ] || return 0
    parse_range "$NODE_CLUSTER"
    ((n >= C_FIRST && n <= C_LAST)) || die "node $n is not in --cluster $NODE_CLUSTER"
    NODE_CLUSTER_NAME="${CASSETTE_TEST_CLUSTER:-$(saved_opt "$n" cluster_name)}"
    NODE_CLUSTER_NAME="${NODE_CLUSTER_NAME:-cassette-test}"
}

# Node N's initial_token value: the explicit tokens, else its balanced one.
node_tokens() {
    if [ -n "$NODE_TOKENS" ]; then echo "$NODE_TOKENS"
    elif [ -n "$NODE_CLUSTER" ]; then balanced_token $(($1 - C_FIRST)) $((C_LAST - C_FIRST + 1))
    else initial_token "$1"; fi
}

data_dirs() {
    local d i k="${CASSETTE_TEST_DATA_DIRS:-1}"
    d="$(node_dir "$1")"
    echo "$d/data"
    for ((i = 2; i <= k; i++)); do echo "$d/data$i"; done
}

write_conf() {
    local n="$1" d addr seeds="" i extra yaml tokens
    d="$(node_dir "$n")"; addr="$(node_addr "$n")"
    mkdir -p "$d"/conf/triggers "$d"/{conf,commitlog,hints,saved_caches,cdc_raw,logs}
    while read -r i; do mkdir -p "$i"; done < <(data_dirs "$n")
    if [ -n "$NODE_CLUSTER" ]; then   # every node of the range a seed, as ccm does
        for ((i = C_FIRST; i <= C_LAST; i++)); do seeds="${seeds:+$seeds,}127.0.0.$i:7000"; done
    else
        for ((i = 1; i <= NODES; i++)); do seeds="${seeds:+$seeds,}127.0.0.$i:7000"; done
        # A node outside the cluster's size runs alone, as its own seed (the benchmark's node 3
        # beside the tests' node 1, say): it never waits to gossip with a seed that is not there.
        ((n <= NODES)) || seeds="$addr:7000"
    fi
    tokens="$(node_tokens "$n")"
    yaml="$d/conf/cassandra.yaml"
    {
        echo "# Written by tests/env/cassandra.sh; rewritten on every start."
        echo "cluster_name: ${NODE_CLUSTER_NAME:-${CASSETTE_TEST_CLUSTER:-cassette-test}}"
        echo "num_tokens: $(tr ',' '\n' <<<"$tokens" | wc -l)"
        echo "initial_token: $tokens"
        echo "auto_bootstrap: false"
        echo "partitioner: org.apache.cassandra.dht.Murmur3Partitioner"
        echo "endpoint_snitch: SimpleSnitch"
        echo "seed_provider:"
        echo "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider"
        echo "    parameters:"
        echo "      - seeds: \"$seeds\""
        echo "listen_address: $addr"
        echo "rpc_address: $addr"
        echo "storage_port: 7000"
        echo "native_transport_port: 9042"
        echo "start_native_transport: true"
        echo "data_file_directories:"
        data_dirs "$n" | sed 's/^/  - /'
        echo "commitlog_directory: $d/commitlog"
        echo "hints_directory: $d/hints"
        echo "saved_caches_directory: $d/saved_caches"
        echo "cdc_raw_directory: $d/cdc_raw"
        echo "commitlog_sync: periodic"
        echo "commitlog_sync_period: 10000ms"
        echo "memtable_heap_space: 64MiB"
        echo "memtable_offheap_space: 64MiB"
        echo "key_cache_size: 0MiB"
        echo "file_cache_size: 32MiB"
        echo "concurrent_compactors: 1"
        echo "incremental_backups: false"
        # Off by default in 5.0; schema dump tests cover views and Java UDFs.
        echo "materialized_views_enabled: true"
        echo "user_defined_functions_enabled: true"
        # The test data set loads in unlogged batches of 20 rows (about 15 KiB, across
        # partitions for single-row ones): no warning per batch in the test output.
        echo "batch_size_warn_threshold: 32KiB"
        echo "unlogged_batch_across_partitions_warn_threshold: 32"
        if [ "$OPT_AUTH" = 1 ]; then
            echo "authenticator:"
            echo "  class_name: org.apache.cassandra.auth.PasswordAuthenticator"
            echo "authorizer:"
            echo "  class_name: org.apache.cassandra.auth.CassandraAuthorizer"
            echo "role_manager:"
            echo "  class_name: org.apache.cassandra.auth.CassandraRoleManager"
        fi
        if [ "$OPT_TLS" != 0 ]; then
            echo "client_encryption_options:"
            echo "  enabled: true"
            if [ "$OPT_TLS" = 2 ]; then echo "  optional: false"; else echo "  optional: true"; fi
            echo "  keystore: $(tls_dir "$n")/keystore.p12"
            echo "  keystore_password: cassandra"
            echo "  truststore: $(tls_dir "$n")/truststore.p12"
            echo "  truststore_password: cassandra"
            echo "  store_type: PKCS12"
            if [ "$OPT_CLIENT_AUTH" = 1 ]; then echo "  require_client_auth: true"
            else echo "  require_client_auth: false"; fi
        fi
    } >"$yaml.tmp"
    extra="${CASSETTE_CASSANDRA_YAML:-}"
    if [ -n "$extra" ]; then
        local line key
        while IFS= read -r line; do
            [ -n "$line" ] || continue
            key="${line%%:*}"
            grep -v "^$key:" "$yaml.tmp" >"$yaml.tmp2" || true
            mv "$yaml.tmp2" "$yaml.tmp"
            echo "$line" >>"$yaml.tmp"
        done <<<"$extra"
    fi
    mv "$yaml.tmp" "$yaml"

    cat >"$d/conf/logback.xml" <<XML
<!-- Written by tests/env/cassandra.sh. -->
<configuration scan="false">
  <shutdownHook class="ch.qos.logback.core.hook.DefaultShutdownHook"/>
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.FileAppender">
    <file>$d/logs/system.log</file>
    <append>true</append>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %logger{0} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG" />
  </root>
</configuration>
XML

    write_ini "$n"
}

# cassette.ini for node N: the cassette binary's view of this node.
write_ini() {
    local n="$1" d addr dirs
    d="$(node_dir "$n")"; addr="$(node_addr "$n")"
    mkdir -p "$d"
    dirs="$(data_dirs "$n" | paste -sd, -)"
    {
        cat <<INI
# Written by tests/env/cassandra.sh for node $n.
[cassandra]
host = $addr
port = 9042
nodetool = $CASSETTE_ENV_DIR/nodetool.sh -h 127.0.0.1 -p $(jmx_port "$n")
sstableloader = $CASSETTE_ENV_DIR/sstableloader.sh
data_dirs = $dirs
commitlog_dir = $d/commitlog
hints_dir = $d/hints
saved_caches_dir = $d/saved_caches
INI
        if [ "$OPT_AUTH" = 1 ]; then printf 'username = cassandra\npassword = cassandra\n'; fi
        if [ "$OPT_TLS" != 0 ]; then printf 'ca_file = %s/ca.pem\n' "$(tls_dir "$n")"; fi
        if [ "$OPT_CLIENT_AUTH" = 1 ]; then
            printf 'cert_file = %s/client.pem\nkey_file = %s/client.key\n' "$(tls_dir "$n")" "$(tls_dir "$n")"
        fi
        if [ "$OPT_JMX_AUTH" = 1 ]; then printf 'jmx_user = cassandra\njmx_password = cassandra\n'; fi
        cat <<INI
[cassette]
state_dir = $d/cassette-state
INI
    } >"$d/cassette.ini.tmp"
    mv "$d/cassette.ini.tmp" "$d/cassette.ini"
}

print_log_tail() {
    local f
    f="$(log_file "$1")"
    echo "---- last 40 lines of $f ----" >&2
    tail -n 40 "$f" >&2 2>/dev/null || echo "(no log)" >&2
    f="$(node_dir "$1")/logs/stdout.log"
    if [ -s "$f" ]; then
        echo "---- last 40 lines of $f ----" >&2
        tail -n 40 "$f" >&2
    fi
}

# Runs the Python driver on node N as its options require (login as cassandra/cassandra
# with --auth, TLS checked against the node's CA with --tls*): prints the rows of one
# statement. Options: OPT_* of the node (load_opts).
driver_cql() {
    local n="$1" stmt="$2" timeout="$3" ca="" client=""
    [ "$OPT_TLS" != 0 ] && ca="$(tls_dir "$n")/ca.pem"
    [ "$OPT_CLIENT_AUTH" = 1 ] && client="$(tls_dir "$n")/client"
    "$CASSETTE_VENV/bin/python" - "$(node_addr "$n")" "$stmt" "$timeout" "$OPT_AUTH" "$ca" "$client" <<'PY'
import ssl, sys
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy
addr, stmt, timeout, auth, ca, client = sys.argv[1:7]
kw = {}
if auth == "1":
    kw["auth_provider"] = PlainTextAuthProvider("cassandra", "cassandra")
if ca:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if client:
        ctx.load_cert_chain(client + ".pem", client + ".key")
    kw["ssl_context"] = ctx
t = float(timeout)
# The statement runs on node N itself, not on a peer the driver would pick.
profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([addr]))
cluster = Cluster([addr], port=9042, protocol_version=5, connect_timeout=min(t, 10),
                  execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                  control_connection_timeout=min(t, 10), **kw)
try:
    for row in cluster.connect().execute(stmt, timeout=t):
        print(" | ".join(str(v) for v in row))
finally:
    cluster.shutdown()
PY
}

# Can a driver log in to node N within a few seconds (an --auth node creates its default
# superuser shortly after it serves CQL; a --tls node must finish a handshake)?
cql_login_ok() {
    driver_cql "$1" "SELECT release_version FROM system.local" 5 >/dev/null 2>&1
}

# Waits until node N logs that it serves CQL (after the byte offset saved by start)
# and its CQL port accepts connections (and, with --auth, a login succeeds). Fails if the
# process dies or the deadline passes.
wait_ready() {
    local n="$1" d pid off deadline log
    d="$(node_dir "$n")"; log="$(log_file "$n")"
    off="$(cat "$d/start.offset" 2>/dev/null || echo 0)"
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while :; do
        if ! pid="$(running_pid "$n")"; then
            echo "cassandra.sh: node $n died while starting" >&2
            print_log_tail "$n"; return 1
        fi
        # (grep -q may close the pipe early: tail's SIGPIPE must not fail the pipeline)
        if [ -f "$log" ] && { tail -c +"$((off + 1))" "$log" || true; } \
                | grep -q 'Starting listening for CQL clients' \
           && port_open "$(node_addr "$n")" 9042 \
           && { [ "$OPT_AUTH" != 1 ] && [ "$OPT_TLS" = 0 ] || cql_login_ok "$n"; }; then
            return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "cassandra.sh: node $n not serving CQL after ${START_TIMEOUT}s (pid $pid)" >&2
            print_log_tail "$n"; return 1
        fi
        sleep 0.5
    done
}

# Checks that running node N runs with the options given (when any were: auth and TLS
# options, --cluster) and loads them (OPT_*) for the waits that follow.
check_running_opts() {
    local n="$1" want="$OPT_AUTH $OPT_TLS $OPT_JMX_AUTH $OPT_CLIENT_AUTH" cluster
    cluster="$(saved_opt "$n" cluster)"
    load_opts "$n"   # what it runs with
    if [ "$OPT_GIVEN" = 1 ] && [ "$want" != "$OPT_AUTH $OPT_TLS $OPT_JMX_AUTH $OPT_CLIENT_AUTH" ]; then
        die "node $n runs with other options ($(describe_opts)); stop it first"
    fi
    if [ -n "$CLUSTER_RANGE" ] && [ "$CLUSTER_RANGE" != "$cluster" ]; then
        die "node $n runs in $([ -n "$cluster" ] && echo "cluster $cluster" || echo "no --cluster"), not --cluster $CLUSTER_RANGE; stop it first"
    fi
}

cmd_start() {
    local n="$1" pid
    check_node "$n"
    if pid="$(running_pid "$n")"; then
        check_running_opts "$n"
        wait_ready "$n" || exit 1
        write_ini "$n"
        echo "node $n already running (pid $pid)"
        return 0
    fi
    launch "$n"
    pid="$(cat "$(node_dir "$n")/cassandra.pid")"
    if ! wait_ready "$n"; then
        kill -KILL "$pid" 2>/dev/null || true
        exit 1
    fi
    say_up "$n"
}

# Prints "node N up on ... in S s (pid P)", the time counted from its launch.
say_up() {
    local n="$1" d t0 t1
    d="$(node_dir "$n")"
    t0="$(cat "$d/start.t0")"; t1="$(now_ms)"
    printf 'node %s up on %s:9042 in %d.%01d s (pid %s)\n' "$n" "$(node_addr "$n")" \
        $(((t1 - t0) / 1000)) $((((t1 - t0) % 1000) / 100)) "$(running_pid "$n")"
}

# Launches stopped node N in the background (its pid in cassandra.pid, its launch time in
# start.t0) without waiting for it; the options are OPT_* and the cluster's.
launch() {
    local n="$1" d pid lib java jamm tmpdir jmx
    d="$(node_dir "$n")"
    resolve_cluster "$n"
    if port_open "$(node_addr "$n")" 9042; then
        die "port 9042 on $(node_addr "$n") is taken by another process; not starting node $n"
    fi
    jmx="$(jmx_port "$n")"
    if port_open 127.0.0.1 "$jmx"; then
        die "JMX port $jmx on 127.0.0.1 is taken by another process; not starting node $n"
    fi
    lib="$(cassandra_lib)"; java="$(java_bin)"
    jamm="$(compgen -G "$lib/jamm-*.jar" | head -n1)"
    [ "$OPT_TLS" != 0 ] && make_tls "$n"
    [ "$OPT_JMX_AUTH" = 1 ] && make_jmx_pw "$n"
    save_opts "$n"
    write_conf "$n"
    local jvm=(
        -Xms512M -Xmx512M
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
        -XX:G1HeapRegionSize=16m -XX:G1RSetUpdatingPauseTimePercent=5
        -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
        "${JVM17_SERVER_FLAGS[@]}"
        -ea -da:net.openhft...
        -XX:+UseThreadPriorities -XX:+HeapDumpOnOutOfMemoryError -XX:+ExitOnOutOfMemoryError
        -XX:HeapDumpPath="$d/logs" -XX:ErrorFile="$d/logs/hs_err_%p.log"
        -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem
        -Djava.net.preferIPv4Stack=true
        -Dio.netty.tryReflectionSetAccessible=true
        -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11
        -Dcassandra.config="file://$d/conf/cassandra.yaml"
        -Dcassandra-foreground=yes
        -Dcassandra-pidfile="$d/cassandra.pid"
        -Dcassandra.jmx.local.port="$jmx"
        -Dlogback.configurationFile="file://$d/conf/logback.xml"
        -Dcassandra.logdir="$d/logs"
        -Dcassandra.storagedir="$d"
        -Dcassandra.triggers_dir="$d/conf/triggers"
        -Dcassandra.available_processors=2
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        -Dchronicle.analytics.disable=true
    )
    [ -n "$jamm" ] && jvm+=(-javaagent:"$jamm")
    # The default superuser is made 10 s after start unless told otherwise.
    [ "$OPT_AUTH" = 1 ] && jvm+=(-Dcassandra.superuser_setup_delay_ms=0)
    # (JMXServerUtils builds the JDK's file authenticator reflectively: it needs the export.)
    [ "$OPT_JMX_AUTH" = 1 ] && jvm+=(--add-exports java.management/com.sun.jmx.remote.security=ALL-UNNAMED
                                     -Dcom.sun.management.jmxremote.authenticate=true
                                     -Dcom.sun.management.jmxremote.password.file="$(jmx_pw_file "$n")")
    tmpdir="$(exec_tmpdir_for "$d")"
    [ -n "$tmpdir" ] && jvm+=(-Djava.io.tmpdir="$tmpdir" -Djna.tmpdir="$tmpdir")

    if [ -f "$(log_file "$n")" ]; then stat -c %s "$(log_file "$n")" >"$d/start.offset"; else echo 0 >"$d/start.offset"; fi
    now_ms >"$d/start.t0"
    echo "==== $(date -u +%FT%TZ) start node $n" >>"$d/logs/stdout.log"
    setsid "$java" "${jvm[@]}" -cp "$d/conf:$lib/*" org.apache.cassandra.service.CassandraDaemon \
        </dev/null >>"$d/logs/stdout.log" 2>&1 &
    pid=$!
    # Cassandra rewrites the pid file itself (same pid); wait_ready checks it is alive.
    echo "$pid" >"$d/cassandra.pid"
}

# Waits until node N of the cluster C_FIRST..C_LAST sees every other node UP: for each peer,
# the last "is now UP/DOWN" line of its log since its start says UP, and its system.peers_v2
# has the peer with a host id and tokens (what clients and cassette read). Fails if the
# process dies or the deadline passes.
wait_peers_up() {
    local n="$1" d log off deadline pid i want missing rows
    d="$(node_dir "$n")"; log="$(log_file "$n")"
    off="$(cat "$d/start.offset" 2>/dev/null || echo 0)"
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    want=$((C_LAST - C_FIRST))
    while :; do
        pid="$(running_pid "$n")" || { echo "cassandra.sh: node $n died while starting" >&2; print_log_tail "$n"; return 1; }
        missing=""
        for ((i = C_FIRST; i <= C_LAST; i++)); do
            ((i == n)) && continue
            # (a peer restarted since goes DOWN then UP again: its last line counts)
            if [ "$({ tail -c +"$((off + 1))" "$log" 2>/dev/null || true; } \
                    | grep -aoE "/127\.0\.0\.$i:7000 is now (UP|DOWN)" | tail -n 1)" \
                    != "/127.0.0.$i:7000 is now UP" ]; then
                missing="$missing 127.0.0.$i"
            fi
        done
        if [ -z "$missing" ]; then
            rows="$(driver_cql "$n" "SELECT peer, host_id, tokens FROM system.peers_v2" 10 2>/dev/null \
                    | awk -F' [|] ' '$2 != "None" && $3 != "None"' | wc -l || true)"
            [ "$rows" -ge "$want" ] && return 0
            missing=" (system.peers_v2 lists $rows of $want peers)"
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "cassandra.sh: node $n does not see every peer UP after ${START_TIMEOUT}s; missing:$missing" >&2
            print_log_tail "$n"; return 1
        fi
        sleep 0.5
    done
}

# Starts every node of --cluster at once (the running ones are kept, if they run with the
# options given) and waits until each serves CQL and sees every other node UP. On failure,
# the nodes it launched are killed.
cmd_start_cluster() {
    local n launched=() t0 t1 pid
    [ -n "$CLUSTER_RANGE" ] || die "start-cluster needs --cluster FIRST-LAST (or CASSETTE_TEST_CLUSTER_NODES)"
    [ -z "$OPT_TOKEN" ] || die "start-cluster takes tokens from CASSETTE_TEST_TOKENS=\"N=T ...\", not --token"
    parse_range "$CLUSTER_RANGE"
    t0="$(now_ms)"
    for ((n = C_FIRST; n <= C_LAST; n++)); do
        running_pid "$n" >/dev/null && check_running_opts "$n"
    done
    for ((n = C_FIRST; n <= C_LAST; n++)); do
        running_pid "$n" >/dev/null && continue
        launch "$n"
        launched+=("$n")
    done
    parse_range "$CLUSTER_RANGE"   # (launch parsed each node's own range: the same)
    for ((n = C_FIRST; n <= C_LAST; n++)); do
        if ! wait_ready "$n" || ! wait_peers_up "$n"; then
            for n in "${launched[@]+"${launched[@]}"}"; do
                pid="$(cat "$(node_dir "$n")/cassandra.pid" 2>/dev/null || true)"
                [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
            done
            exit 1
        fi
        write_ini "$n"
    done
    for n in "${launched[@]+"${launched[@]}"}"; do say_up "$n"; done
    t1="$(now_ms)"
    printf 'cluster %s (%s) up, every node sees the others UP, in %d.%01d s\n' "$CLUSTER_RANGE" \
        "$(saved_opt "$C_FIRST" cluster_name)" $(((t1 - t0) / 1000)) $((((t1 - t0) % 1000) / 100))
}

# Stops every node of --cluster at once: SIGTERM to all, then waits for each. (The pids are
# read first: a node removes its pid file as it begins to shut down, long before it exits.)
cmd_stop_cluster() {
    local n pid stopping=() e
    [ -n "$CLUSTER_RANGE" ] || die "stop-cluster needs --cluster FIRST-LAST (or CASSETTE_TEST_CLUSTER_NODES)"
    parse_range "$CLUSTER_RANGE"
    for ((n = C_FIRST; n <= C_LAST; n++)); do
        if pid="$(running_pid "$n")"; then
            kill -TERM "$pid" 2>/dev/null || true
            stopping+=("$n:$pid")
        else
            rm -f "$(node_dir "$n")/cassandra.pid"
            echo "node $n not running"
        fi
    done
    for e in "${stopping[@]+"${stopping[@]}"}"; do
        n="${e%%:*}"; pid="${e#*:}"
        stop_pid "$pid" "node $n" "$STOP_TIMEOUT"
        rm -f "$(node_dir "$n")/cassandra.pid"
        echo "node $n stopped (pid $pid)"
    done
}

cmd_stop() {
    local n="$1" d pid
    check_node "$n"
    d="$(node_dir "$n")"
    if ! pid="$(running_pid "$n")"; then
        rm -f "$d/cassandra.pid"
        echo "node $n not running"
        return 0
    fi
    stop_pid "$pid" "node $n" "$STOP_TIMEOUT"
    rm -f "$d/cassandra.pid"
    echo "node $n stopped (pid $pid)"
}

cmd_stop_all() {
    local d n rc=0
    for d in "$BASE"/node[1-9] "$BASE"/node[12][0-9]; do
        [ -d "$d" ] || continue
        n="${d##*/node}"
        cmd_stop "$n" || rc=1
    done
    return $rc
}

cmd_status() {
    local n="$1" pid
    check_node "$n"
    if pid="$(running_pid "$n")"; then
        echo "node $n running (pid $pid)"
    else
        echo "node $n stopped"
        exit 3
    fi
}

cmd_cql() {
    local n="$1"; shift
    check_node "$n"
    [ $# -eq 1 ] || die "usage: cassandra.sh cql N \"STATEMENT\""
    load_opts "$n"
    driver_cql "$n" "$1" 60
}

case "$CMD" in
    start)    [ $# -eq 1 ] || usage; cmd_start "$1" ;;
    stop)     [ $# -eq 1 ] || usage; cmd_stop "$1" ;;
    stop-all) [ $# -eq 0 ] || usage; cmd_stop_all ;;
    start-cluster) [ $# -eq 0 ] || usage; cmd_start_cluster ;;
    stop-cluster)  [ $# -eq 0 ] || usage; cmd_stop_cluster ;;
    status)   [ $# -eq 1 ] || usage; cmd_status "$1" ;;
    wait)     [ $# -eq 1 ] || usage; check_node "$1"; running_pid "$1" >/dev/null || die "node $1 not running"
              load_opts "$1"; wait_ready "$1" ;;
    nodetool) [ $# -ge 1 ] || usage; check_node "$1"; n="$1"; shift; load_opts "$n"
              jmx_auth=()
              [ "$OPT_JMX_AUTH" = 1 ] && jmx_auth=(-u cassandra -pwf "$(jmx_pw_file "$n")")
              exec "$CASSETTE_ENV_DIR/nodetool.sh" -h 127.0.0.1 -p "$(jmx_port "$n")" \
                  "${jmx_auth[@]+"${jmx_auth[@]}"}" "$@" ;;
    cql)      [ $# -ge 1 ] || usage; cmd_cql "$@" ;;
    dir)      [ $# -eq 1 ] || usage; check_node "$1"; node_dir "$1" ;;
    ini)      [ $# -eq 1 ] || usage; check_node "$1"; echo "$(node_dir "$1")/cassette.ini" ;;
    ca)       [ $# -eq 1 ] || usage; check_node "$1"; f="$(tls_dir "$1")/ca.pem"
              [ -s "$f" ] || die "node $1 has no TLS material (start it with --tls)"; echo "$f" ;;
    pid)      [ $# -eq 1 ] || usage; check_node "$1"; running_pid "$1" || exit 3 ;;
    *)        usage ;;
esac
