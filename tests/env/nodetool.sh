#!/usr/bin/env bash
# nodetool for the test nodes, without a Cassandra tarball:
#   nodetool.sh -h 127.0.0.1 -p 7100 <command> [args...]
# Runs org.apache.cassandra.tools.NodeTool from the cached Cassandra jars with the
# JDK 17 client flags; its logging goes to stderr at WARN so stdout is only the answer.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/common.sh"
lib="$(cassandra_lib)"
java="$(java_bin)"
exec "$java" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    "${JVM17_CLIENT_FLAGS[@]}" \
    -Djava.net.preferIPv4Stack=true \
    -Dlogback.configurationFile="file://$CASSETTE_ENV_DIR/logback-tools.xml" \
    -Dcassandra.storagedir="${TMPDIR:-/tmp}" \
    -cp "$lib/*" org.apache.cassandra.tools.NodeTool "$@"
