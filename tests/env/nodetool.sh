#!/usr/bin/env bash
# nodetool for the test nodes, without a Cassandra tarball:
#   nodetool.sh -h 127.0.0.1 -p 7100 <command> [args...]
# Runs org.apache.cassandra.tools.NodeTool from the cached Cassandra jars with the
# JDK 17 client flags; its logging goes to stderr at WARN so stdout is only the answer.
# Start-up is most of a nodetool call: the first call records the classes it loads in an
# AppCDS archive ($CASSETTE_CACHE/nodetool-cds/, one per Cassandra and Java version) and
# later calls map it (start-up about halves). Every tool the tests and benchmarks drive
# (cassette, Medusa, the shell pipeline) goes through this same script.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/common.sh"
lib="$(cassandra_lib)"
cds_dir="$CASSETTE_CACHE/nodetool-cds"
mkdir -p "$cds_dir"
# Which java, and its version (the archive's name): worked out once and kept beside the
# archives. Each `java -version` is a JVM start; asking twice a call cost about a third of
# a nodetool call's time. The key is the java the lookup would start from and that file's
# size and time, so another JDK gets its own entry.
first_java="${JAVA_HOME:+$JAVA_HOME/bin/java}"
first_java="${first_java:-$(command -v java 2>/dev/null || true)}"
java_key=$(printf '%s %s' "$first_java" "$(stat -L -c '%s %Y' "$first_java" 2>/dev/null || true)" | md5sum | cut -c1-16)
java_env="$cds_dir/java-$java_key"
java="" jver=""
[ -s "$java_env" ] && read -r java jver < "$java_env" || true
if [ -z "$jver" ] || [ ! -x "$java" ]; then
    java="$(java_bin)"
    jver=$("$java" -version 2>&1 | head -n 1 | tr -cd '[:alnum:]._-')
    printf '%s %s\n' "$java" "$jver" > "$java_env.$$" && mv -f "$java_env.$$" "$java_env"
fi
jar=$(cd "$lib" && ls cassandra-all-*.jar | head -n 1)
archive="$cds_dir/${jar%.jar}-$jver.jsa"
# -Xlog:disable: the JVM's own messages (a CDS archive it cannot use, say) would land on
# stdout, which callers parse.
jvm=("$java" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Xlog:disable)
args=("${JVM17_CLIENT_FLAGS[@]}"
    -Djava.net.preferIPv4Stack=true
    -Dlogback.configurationFile="file://$CASSETTE_ENV_DIR/logback-tools.xml"
    -Dcassandra.storagedir="${TMPDIR:-/tmp}"
    -cp "$lib/*" org.apache.cassandra.tools.NodeTool "$@")
if [ -f "$archive" ]; then
    exec "${jvm[@]}" -XX:SharedArchiveFile="$archive" "${args[@]}"
fi
# First call: dump the archive at exit into a private name, then rename it into place
# (concurrent first calls are fine).
tmp="$archive.$$.tmp"
rc=0
"${jvm[@]}" -XX:ArchiveClassesAtExit="$tmp" "${args[@]}" || rc=$?
if [ -s "$tmp" ]; then mv -f "$tmp" "$archive"; else rm -f "$tmp"; fi
exit "$rc"
