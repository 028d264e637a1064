#!/usr/bin/env bash
# age_throughput.sh - encryption and decryption throughput of cassette's native age
# (build/tools/agetool, the release build) against the real age, on 1 GiB of random data.
#
# Each operation streams the whole file and writes to /dev/null; the figure is the best
# wall time of BENCH_RUNS (3) runs. `cat file > /dev/null` (the input read from the page
# cache) is measured in the same run as the baseline. Prints a Markdown table on stdout
# (progress goes to stderr). Ratios are ours/age in throughput: > 1.0 means we are faster.
# Ours runs as shipped (whole chunks in parallel on min(CPUs, 4) threads) and, for
# reference, serial (CASSETTE_AGE_THREADS=1).
#
# Environment: AGETOOL (default build/tools/agetool), AGE / AGE_KEYGEN (default from PATH),
# BENCH_SIZE_MIB (1024), BENCH_RUNS (3), CASSETTE_CACHE (~/.cache/cassette; the random
# input is kept in $CASSETTE_CACHE/bench/), TMPDIR for the ciphertext (default /dev/shm,
# a tmpfs, when it has room).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGETOOL=${AGETOOL:-$ROOT/build/tools/agetool}
AGE=${AGE:-$(command -v age || true)}
AGE_KEYGEN=${AGE_KEYGEN:-$(command -v age-keygen || true)}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
RUNS=${BENCH_RUNS:-3}
CACHE=${CASSETTE_CACHE:-$HOME/.cache/cassette}/bench

die() { echo "age_throughput: $*" >&2; exit 1; }
[[ -x $AGETOOL ]] || die "$AGETOOL is missing: run make (or set AGETOOL)"
[[ -n $AGE && -x $AGE ]] || die "age is not installed"
[[ -n $AGE_KEYGEN && -x $AGE_KEYGEN ]] || die "age-keygen is not installed"
[[ $SIZE_MIB =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] || die "bad BENCH_SIZE_MIB or BENCH_RUNS"

# ---- input: random bytes, cached across runs ----
mkdir -p "$CACHE"
INPUT=$CACHE/random-${SIZE_MIB}MiB.bin
BYTES=$((SIZE_MIB * 1024 * 1024))
if [[ ! -f $INPUT || $(stat -c %s "$INPUT") -ne $BYTES ]]; then
    echo "age_throughput: writing $SIZE_MIB MiB of random data to $INPUT" >&2
    head -c "$BYTES" /dev/urandom > "$INPUT.partial"
    mv "$INPUT.partial" "$INPUT"
fi

# ---- scratch (keys, ciphertext) on a tmpfs when there is room ----
scratch_parent=${TMPDIR:-/tmp}
if [[ -z ${TMPDIR:-} && -d /dev/shm ]] &&
   (( $(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > (SIZE_MIB + 64) * 1024 * 2 )); then
    scratch_parent=/dev/shm
fi
WORK=$(mktemp -d "$scratch_parent/age_throughput.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

"$AGE_KEYGEN" -o "$WORK/key.txt" 2>/dev/null
RCPT=$(sed -n 's/^# public key: //p' "$WORK/key.txt")

# ---- sanity: both tools read each other's output (a small file) ----
head -c 300000 "$INPUT" > "$WORK/small"
"$AGETOOL" encrypt -r "$RCPT" < "$WORK/small" | "$AGE" -d -i "$WORK/key.txt" | cmp -s - "$WORK/small" ||
    die "age cannot decrypt agetool's output"
"$AGE" -e -r "$RCPT" < "$WORK/small" | "$AGETOOL" decrypt -i "$WORK/key.txt" | cmp -s - "$WORK/small" ||
    die "agetool cannot decrypt age's output"

# The ciphertext both decryptors read: one file, made by us (format checked above).
"$AGETOOL" encrypt -r "$RCPT" < "$INPUT" > "$WORK/input.age"
cat "$INPUT" > /dev/null   # warm the page cache

# best_of NAME IN CMD... : run CMD < IN > /dev/null RUNS times, record the best seconds.
declare -A BEST
best_of() {
    local name=$1 in=$2; shift 2
    local best="" i t0 t1 dt
    for ((i = 0; i < RUNS; i++)); do
        t0=$EPOCHREALTIME
        "$@" < "$in" > /dev/null || die "$name failed: $*"
        t1=$EPOCHREALTIME
        dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
        if [[ -z $best ]] || awk -v a="$dt" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$dt
        fi
    done
    BEST[$name]=$best
    echo "age_throughput: $name best $best s" >&2
}

best_of raw_read   "$INPUT"           cat
best_of ours_enc   "$INPUT"           "$AGETOOL" encrypt -r "$RCPT"
best_of age_enc    "$INPUT"           "$AGE" -e -r "$RCPT"
best_of ser_enc    "$INPUT"           env CASSETTE_AGE_THREADS=1 "$AGETOOL" encrypt -r "$RCPT"
best_of ours_dec   "$WORK/input.age"  "$AGETOOL" decrypt -i "$WORK/key.txt"
best_of age_dec    "$WORK/input.age"  "$AGE" -d -i "$WORK/key.txt"
best_of ser_dec    "$WORK/input.age"  env CASSETTE_AGE_THREADS=1 "$AGETOOL" decrypt -i "$WORK/key.txt"

mibs() { awk -v m="$SIZE_MIB" -v t="${BEST[$1]}" 'BEGIN { printf "%.0f", m / t }'; }
ratio() { awk -v a="${BEST[$1]}" -v b="${BEST[$2]}" 'BEGIN { printf "%.2f", a / b }'; }

row() { # name label
    printf '| %s | %.3f | %s | %s |\n' "$2" "${BEST[$1]}" "$(mibs "$1")" "$(ratio raw_read "$1")"
}

echo "### age_throughput: $SIZE_MIB MiB of random data, best of $RUNS, output to /dev/null"
echo
echo "| operation | best wall s | MiB/s | of raw read |"
echo "|---|---:|---:|---:|"
row raw_read "raw read (\`cat file > /dev/null\`)"
row ours_enc "ours: \`agetool encrypt -r\`"
row ser_enc  "ours, serial (\`CASSETTE_AGE_THREADS=1\`)"
row age_enc  "age: \`age -e -r\`"
row ours_dec "ours: \`agetool decrypt -i\`"
row ser_dec  "ours, serial (\`CASSETTE_AGE_THREADS=1\`)"
row age_dec  "age: \`age -d -i\`"
echo
echo "| ratio ours/age (throughput; > 1.0 = ours faster) | |"
echo "|---|---:|"
echo "| encrypt | $(ratio age_enc ours_enc) |"
echo "| decrypt | $(ratio age_dec ours_dec) |"
echo "| encrypt, ours parallel/serial | $(ratio ser_enc ours_enc) |"
echo "| decrypt, ours parallel/serial | $(ratio ser_dec ours_dec) |"
