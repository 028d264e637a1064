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
java="$(java_bin)"
cds_dir="$CASSETTE_CACHE/nodetool-cds"
jar=$(cd "$lib" && ls cassandra-all-*.jar | head -n 1)
jver=$("$java" -version 2>&1 | head -n 1 | tr -cd '[:alnum:]._-')
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
mkdir -p "$cds_dir"
tmp="$archive.$$.tmp"
rc=0
"${jvm[@]}" -XX:ArchiveClassesAtExit="$tmp" "${args[@]}" || rc=$?
if [ -s "$tmp" ]; then mv -f "$tmp" "$archive"; else rm -f "$tmp"; fi
exit "$rc"
