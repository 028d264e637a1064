#!/usr/bin/env bash
# sstableloader for the test clusters, without a Cassandra tarball:
#   sstableloader.sh -d 127.0.0.17,127.0.0.18 [-u USER -pw PASSWORD] <dir>/<keyspace>/<table>
# Runs org.apache.cassandra.tools.BulkLoader from the cached Cassandra jars with the
# JDK 17 client flags, as nodetool.sh runs NodeTool; its logging goes to stderr at WARN.
# The loader runs as a client: -Dcassandra.storagedir points it at a scratch directory so
# that it never looks for a node's own.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/common.sh"
lib="$(cassandra_lib)"
java="$(java_bin)"
exec "$java" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Xlog:disable \
    "${JVM17_CLIENT_FLAGS[@]}" \
    -Djava.net.preferIPv4Stack=true \
    -Dlogback.configurationFile="file://$CASSETTE_ENV_DIR/logback-tools.xml" \
    -Dcassandra.storagedir="${TMPDIR:-/tmp}" \
    -cp "$lib/*" org.apache.cassandra.tools.BulkLoader "$@"
