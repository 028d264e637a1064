#!/usr/bin/env bash
# `make install PREFIX=<a temporary directory>` installs the binary, the manual page and the bash
# completion; the page renders with `man -l` without a groff warning, and the completion,
# loaded into a bash, completes commands, options and sub-commands (driven through COMP_WORDS
# as bash's programmable completion would). Prints one "ok"/"FAIL" line per check and exits 1
# if any failed. Run by tests/run.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
PREFIX="$(mktemp -d -t cassette-install.XXXXXX)"
trap 'rm -rf "$PREFIX"' EXIT
FAILED=0
check() {   # check NAME COMMAND...: runs it, one line of result
    local name="$1"; shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; FAILED=1; fi
}

if ! make -s install PREFIX="$PREFIX" >"$PREFIX.log" 2>&1; then
    cat "$PREFIX.log"; rm -f "$PREFIX.log"
    echo "FAIL make install PREFIX=$PREFIX"; exit 1
fi
rm -f "$PREFIX.log"
BIN="$PREFIX/bin/cassette"
MAN="$PREFIX/share/man/man1/cassette.1"
COMPLETION="$PREFIX/share/bash-completion/completions/cassette"

check "installs bin/cassette" test -x "$BIN"
check "cassette --version names a version and a git hash" \
    bash -c "'$BIN' --version | grep -Eq '^cassette [0-9][^ ]* \(git [0-9a-f]{7,}(-dirty)?|unknown\)$'"
check "installs share/man/man1/cassette.1" test -s "$MAN"
check "installs share/bash-completion/completions/cassette" test -s "$COMPLETION"

# The page renders, and groff has nothing to say about it.
page="$(MANWIDTH=100 MANPAGER=cat man -l "$MAN" 2>&1)"
check "man -l renders the page" grep -q 'EXIT STATUS' <<<"$page"
for section in NAME SYNOPSIS COMMANDS OPTIONS FILES; do
    check "the page has $section" grep -q "^$section" <<<"$page"
done
check "the page lists --keep-within" grep -q -- "--keep-within" <<<"$page"
check "the page lists restore" grep -q "^ *restore --repo" <<<"$page"
warnings="$(groff -man -ww -z "$MAN" 2>&1)"
check "groff warns of nothing" test -z "$warnings"
[ -z "$warnings" ] || echo "$warnings"

# complete WORD... : what the completion offers when the cursor ends the last word ('' is an
# empty word: the cursor after a space).
complete_words() {
    local words=() w
    for w in "$@"; do if [ "$w" = "''" ]; then words+=(""); else words+=("$w"); fi; done
    set -- "${words[@]}"
    bash --norc --noprofile -c '
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
        _cassette
        printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$COMPLETION" "$@"
}
offers() {   # offers "WORDS" EXPECTED...: every expected word is offered
    local got; got="$(complete_words $1)"; shift
    for w in "$@"; do grep -qx -- "$w" <<<"$got" || { echo "  not offered: $w; got: $(echo $got)"; return 1; }; done
}
offers_only() {   # offers_only "WORDS" EXPECTED...: exactly these words
    local got want; got="$(complete_words $1)"; shift
    want="$(printf '%s\n' "$@" | sed '/^$/d' | sort)"
    [ "$got" = "$want" ] || { echo "  got: $(echo $got); wanted: $(echo $want)"; return 1; }
}
check "completes the commands" offers "cassette ''" backup restore verify purge status init key help
check "completes a command's prefix" offers_only "cassette res" restore
check "completes backup's options" offers "cassette backup --" --repo --name --keyspace --jobs --identity
check "completes only backup's own --k options" offers_only "cassette backup --ke" --keyspace
check "completes purge's --keep- options" offers_only "cassette purge --keep-" --keep-last --keep-hourly \
    --keep-daily --keep-weekly --keep-monthly --keep-within
check "completes status --max-age" offers_only "cassette status --max" --max-age
check "completes key's sub-commands" offers_only "cassette key ''" generate public
check "completes catalog rebuild" offers_only "cassette catalog r" rebuild
check "completes help's commands" offers_only "cassette help ver" verify
check "finds the command after global options" offers_only "cassette --config x.ini -v backup --na" --name
check "leaves a value to file name completion" offers_only "cassette backup --repo ''"
check "offers no option a command does not take" offers_only "cassette list --keyspa"

if "$BIN" --help | grep -q $'\033'; then echo "FAIL --help holds escape codes"; FAILED=1; fi
exit "$FAILED"
