#!/usr/bin/env bash
# Installs what cassette's build, tests and demo need; idempotent, and says
# only what it is about to install or download (nothing when all is there):
#   - Debian packages (apt only when one is missing; `apt-get update` once),
#   - Apache Cassandra 5.0 runtime jars into $CASSETTE_CACHE/cassandra-<v>/lib,
#   - versitygw (S3-compatible server for the S3 tests) into $CASSETTE_CACHE/go/bin,
#   - Azurite (Azure Storage emulator for the Azure tests) into $CASSETTE_CACHE/azurite (npm),
#   - a Python venv $CASSETTE_CACHE/venv with cassandra-driver, pytest, PyYAML and prometheus-client
#     (systemd's systemd-analyze and PyYAML check the agent's deploy/ files;
#     prometheus-client's exposition parser reads the metrics the tests scrape;
#     promtool, from Debian's prometheus package, checks and unit-tests the alert rules
#     in deploy/prometheus/; its service is not needed and may be stopped; Debian's
#     chromium loads the server's status page headless in a test).
# --demo: only what `make demo` uses (no test, fuzzing, valgrind, S3 or Azure tools).
# CASSETTE_CACHE defaults to ~/.cache/cassette.
set -euo pipefail
DEMO=0
[ "${1:-}" = "--demo" ] && DEMO=1
source "$(cd "$(dirname "$0")/.." && pwd)/tests/env/common.sh"

LOG="$(mktemp -t cassette-deps.XXXXXX)"
trap 'rm -f "$LOG"' EXIT
fail() { echo "install-deps: $*" >&2; tail -n 60 "$LOG" >&2 || true; exit 1; }
say() { echo "install-deps: $*"; }

# --- Debian packages -------------------------------------------------------
PKGS=(build-essential pkg-config libzstd-dev libxxhash-dev libsodium-dev libjansson-dev libcmocka-dev
      libcurl4-openssl-dev libssl-dev libsqlite3-dev libmicrohttpd-dev libgnutls28-dev libexpat1-dev age zstd valgrind maven
      openjdk-17-jdk-headless python3-venv clang libclang-rt-14-dev awscli man-db systemd tzdata
      prometheus)
if [ "$DEMO" = 1 ]; then   # build the binary, run a node (Java, jars by maven), check rows (Python)
    PKGS=(build-essential pkg-config libzstd-dev libxxhash-dev libsodium-dev libjansson-dev libcurl4-openssl-dev
          libssl-dev libsqlite3-dev libmicrohttpd-dev libgnutls28-dev libexpat1-dev maven openjdk-17-jdk-headless python3-venv)
fi
# The status page's browser test (tests/integration/test_status_page.py) drives Debian's
# headless Chromium over its DevTools pipe: no WebDriver, no browser downloaded by a tool.
[ "$DEMO" = 1 ] || PKGS+=(chromium)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || fail "missing packages (${missing[*]}) and not root"
        SUDO=(sudo -n)
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "installing ${#missing[@]} Debian packages with apt-get (a few minutes the first time): ${missing[*]}"
    "${SUDO[@]}" apt-get update >>"$LOG" 2>&1 || fail "apt-get update failed"
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 \
        || fail "apt-get install ${missing[*]} failed"
fi
if [ "$DEMO" = 0 ]; then
    promtool --version >>"$LOG" 2>&1 || fail "promtool (Debian's prometheus package) does not run"
fi
if [ "$DEMO" = 0 ]; then
    chromium --version >>"$LOG" 2>&1 || fail "chromium (Debian's package, for the status page test) does not run"
fi

# --- Cassandra jars --------------------------------------------------------
have_jars=0
for v in $CASSETTE_CASSANDRA_VERSIONS; do
    if compgen -G "$CASSETTE_CACHE/cassandra-$v/lib/cassandra-all-$v.jar" >/dev/null; then
        have_jars=1; break
    fi
done
if [ "$have_jars" = 0 ]; then
    say "downloading Apache Cassandra's jars with maven into $CASSETTE_CACHE (about 70 MB, a few minutes the first time)"
    mkdir -p "$CASSETTE_CACHE"
    for v in $CASSETTE_CASSANDRA_VERSIONS; do
        tmp="$CASSETTE_CACHE/cassandra-$v.tmp.$$"
        rm -rf "$tmp"
        if mvn -B -q -f "$CASSETTE_ROOT/tests/env/pom.xml" dependency:copy-dependencies \
                -Dcassandra.version="$v" -DoutputDirectory="$tmp/lib" \
                -DincludeScope=runtime >>"$LOG" 2>&1 \
           && [ -f "$tmp/lib/cassandra-all-$v.jar" ]; then
            rm -rf "$CASSETTE_CACHE/cassandra-$v"
            mv "$tmp" "$CASSETTE_CACHE/cassandra-$v"
            have_jars=1
            break
        fi
        echo "install-deps: Cassandra $v jars could not be fetched, trying the next version" >>"$LOG"
        rm -rf "$tmp"
    done
    [ "$have_jars" = 1 ] || fail "could not fetch Cassandra jars ($CASSETTE_CASSANDRA_VERSIONS)"
fi

# --- Python venv -----------------------------------------------------------
if ! "$CASSETTE_VENV/bin/python" -c 'import cassandra.cluster, pytest, yaml, prometheus_client.parser' >/dev/null 2>&1; then
    say "making the Python venv $CASSETTE_VENV with cassandra-driver, pytest, PyYAML and prometheus-client (about a minute)"
    if [ ! -x "$CASSETTE_VENV/bin/python" ]; then
        python3 -m venv "$CASSETTE_VENV" >>"$LOG" 2>&1 || fail "python3 -m venv failed"
    fi
    CASS_DRIVER_NO_CYTHON=1 "$CASSETTE_VENV/bin/pip" install -q --disable-pip-version-check \
        cassandra-driver pytest pyyaml prometheus-client >>"$LOG" 2>&1 \
        || fail "pip install cassandra-driver pytest pyyaml prometheus-client failed"
    "$CASSETTE_VENV/bin/python" -c 'import cassandra.cluster, pytest, yaml, prometheus_client.parser' >>"$LOG" 2>&1 \
        || fail "the venv $CASSETTE_VENV cannot import cassandra-driver, pytest, PyYAML and prometheus-client"
fi

# --- versitygw (S3 server on loopback for the S3 tests) ------------------------
# Built from its Go module with everything (module and build caches) under $CASSETTE_CACHE/go.
VERSITYGW_VERSION="${CASSETTE_VERSITYGW_VERSION:-v1.7.0}"
GO_DIR="$CASSETTE_CACHE/go"
if [ "$DEMO" = 0 ] && [ ! -x "$GO_DIR/bin/versitygw" ]; then
    say "building versitygw $VERSITYGW_VERSION (the S3 server of the tests) with Go (a few minutes the first time)"
    go="$(command -v go 2>/dev/null || true)"
    [ -n "$go" ] || go=/usr/local/go/bin/go
    [ -x "$go" ] || fail "no Go toolchain (go on PATH or /usr/local/go/bin/go) to build versitygw"
    mkdir -p "$GO_DIR"
    GOPATH="$GO_DIR" GOBIN="$GO_DIR/bin" GOMODCACHE="$GO_DIR/pkg/mod" GOCACHE="$GO_DIR/build" \
        GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw" GOTOOLCHAIN=local \
        "$go" install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >>"$LOG" 2>&1 \
        || fail "go install versitygw@$VERSITYGW_VERSION failed"
    "$GO_DIR/bin/versitygw" --version >>"$LOG" 2>&1 || fail "the versitygw just built does not run"
    rm -rf "$GO_DIR/build"   # the build cache (~370 MB); the module cache stays for rebuilds
fi

# --- Azurite (Azure Blob emulator on loopback for the Azure tests) ---------------
# Node.js with npm when there is no npm at all (a machine's own Node.js build already
# carries its npm, and Debian's npm package would conflict with it).
if [ "$DEMO" = 0 ]; then
    if ! command -v npm >/dev/null; then
        say "installing Node.js and npm with apt-get (for Azurite)"
        SUDO=()
        [ "$(id -u)" -ne 0 ] && SUDO=(sudo -n)
        "${SUDO[@]}" apt-get update >>"$LOG" 2>&1 || fail "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends nodejs npm \
            >>"$LOG" 2>&1 || fail "apt-get install nodejs npm failed"
    fi
    # It says on stdout what it is about to install (nothing when it is there); npm's output goes to the log.
    "$CASSETTE_ROOT/tests/env/azurite.sh" install 2>>"$LOG" || fail "installing Azurite failed"
fi
exit 0
