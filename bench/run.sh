#!/usr/bin/env bash
# run.sh - run every benchmark script in bench/ and append a dated section with the
# machine and their result tables to bench/RESULTS.md (`make bench` calls this after
# building). Nothing is appended when a benchmark fails.
#
# The scripts: every bench/*.sh but this one, in name order: age_throughput.sh (native age
# against age), s3_backup.sh (cassette backup against Fluxer's runbook pipeline, to a local S3
# server; it starts its own Cassandra node and waits for a quiet machine). Name some of them
# to run only those: bench/run.sh s3_backup.sh
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
RESULTS=${BENCH_RESULTS:-$BENCH/RESULTS.md}

scripts=()
if (( $# )); then
    for f in "$@"; do
        f=$BENCH/$(basename "$f")
        [[ -x $f && $(basename "$f") != run.sh ]] || { echo "bench: no benchmark script $f" >&2; exit 1; }
        scripts+=("$f")
    done
else
    for f in "$BENCH"/*.sh; do
        [[ $(basename "$f") == run.sh ]] && continue
        scripts+=("$f")
    done
fi
(( ${#scripts[@]} )) || { echo "bench: no benchmark scripts in $BENCH" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
age_ver=$(age --version 2>/dev/null || echo "not installed")
age_pkg=$(dpkg-query -W -f '${Version}' age 2>/dev/null || true)
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
{
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — cassette $rev$dirty"
    echo
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
    echo "- age: $age_ver${age_pkg:+ (Debian package $age_pkg)}; compiler: $(${CC:-cc} --version | head -1); libsodium $(pkg-config --modversion libsodium 2>/dev/null || echo '?')"
    echo
} > "$out"

for s in "${scripts[@]}"; do
    echo "bench: $(basename "$s")" >&2
    "$s" >> "$out"
    echo >> "$out"
done

if [[ ! -f $RESULTS ]]; then
    printf '# Benchmark results\n\nAppended by `make bench` (bench/run.sh), newest last. See README.md.\n\n' > "$RESULTS"
fi
cat "$out" >> "$RESULTS"
cat "$out"
echo "bench: appended to $RESULTS" >&2
