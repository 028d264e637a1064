# Shared helpers for the test environment scripts (sourced, not run).
# Cache of downloaded things: $CASSETTE_CACHE, default ~/.cache/cassette.

CASSETTE_CACHE="${CASSETTE_CACHE:-$HOME/.cache/cassette}"
CASSETTE_ENV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CASSETTE_ROOT="$(cd "$CASSETTE_ENV_DIR/../.." && pwd)"
CASSETTE_VENV="${CASSETTE_VENV:-$CASSETTE_CACHE/venv}"
# Cassandra versions we accept, newest first.
CASSETTE_CASSANDRA_VERSIONS="${CASSETTE_CASSANDRA_VERSIONS:-5.0.9 5.0.8}"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# Prints the directory with Cassandra's runtime jars, or fails.
cassandra_lib() {
    if [ -n "${CASSETTE_CASSANDRA_LIB:-}" ]; then
        echo "$CASSETTE_CASSANDRA_LIB"; return 0
    fi
    local v
    for v in $CASSETTE_CASSANDRA_VERSIONS; do
        if compgen -G "$CASSETTE_CACHE/cassandra-$v/lib/cassandra-all-*.jar" >/dev/null; then
            echo "$CASSETTE_CACHE/cassandra-$v/lib"; return 0
        fi
    done
    die "no Cassandra jars under $CASSETTE_CACHE (run scripts/install-deps.sh)"
}

# Prints a java 17+ binary.
java_bin() {
    local j
    for j in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null)" \
             /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/java-21-openjdk-*/bin/java; do
        [ -n "$j" ] && [ -x "$j" ] || continue
        local v
        v="$("$j" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')"
        if [ -n "$v" ] && [ "$v" -ge 17 ] 2>/dev/null; then echo "$j"; return 0; fi
    done
    die "no Java 17 found (run scripts/install-deps.sh)"
}

# JPMS flags shared by server and tools, from Cassandra 5.0's conf/jvm17-server.options
# and conf/jvm17-clients.options.
JVM17_SERVER_FLAGS=(
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
)
JVM17_CLIENT_FLAGS=(
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
    --add-exports java.base/sun.nio.ch=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.math=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.net=ALL-UNNAMED
)

# True when something accepts TCP connections on HOST PORT.
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Prints a directory for java.io.tmpdir if the default one is mounted noexec
# (JNA, zstd-jni, lz4 and netty unpack native libraries there); else nothing.
exec_tmpdir_for() {
    local t="${TMPDIR:-/tmp}" opts
    opts="$(findmnt -n -o OPTIONS --target "$t" 2>/dev/null || true)"
    case ",$opts," in
        *,noexec,*) mkdir -p "$1/tmp"; echo "$1/tmp" ;;
    esac
}

# Is pid $1 a live process (a zombie counts as gone)? A JVM's main thread
# may end first: its leader is then a zombie while the other threads still
# hold the process's ports, files and mounts, so it is alive until they end.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
    [ "$state" != "Z" ] && return 0
    [ "$(ls "/proc/$1/task" 2>/dev/null | wc -l)" -gt 1 ]
}

# stop_pid PID WHAT TIMEOUT: SIGTERM, wait up to TIMEOUT s for the exit, then
# SIGKILL; dies if the process still stands.
stop_pid() {
    local pid="$1" what="$2" timeout="$3" deadline
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(( $(date +%s) + timeout ))
    while alive "$pid"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "$(basename "$0"): $what (pid $pid) still up after ${timeout}s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$(( $(date +%s) + 30 ))
            while alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
            break
        fi
        sleep 0.1
    done
    alive "$pid" && die "$what (pid $pid) would not die"
    return 0
}
