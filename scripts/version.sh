#!/bin/sh
# Prints the C header with cassette's version and git hash (the Makefile
# writes it to $(BUILD)/version.h, rewriting it only when it changes).
# The version is `git describe` of the newest v* tag when the checkout has
# one (v0.2.0-5-gabc...), else $1 (the Makefile's VERSION); the hash is
# "unknown" outside a git checkout (a tarball, an export).
version="${1:-0.0.0}"
cd "$(dirname "$0")/.." || exit 1
git="unknown"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        git="$git-dirty"
    fi
    tag="$(git describe --tags --match 'v[0-9]*' 2>/dev/null || true)"
    [ -n "$tag" ] && version="${tag#v}"
fi
# Only characters that are safe inside a C string.
version="$(printf '%s' "$version" | tr -cd 'A-Za-z0-9._+-')"
git="$(printf '%s' "$git" | tr -cd 'A-Za-z0-9._+-')"
printf '#define CS_VERSION "%s"\n#define CS_GIT "%s"\n' "$version" "$git"
