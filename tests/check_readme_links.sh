#!/usr/bin/env bash
# Every file the repository's Markdown files point to exists in the repository: the targets
# of [links](...) (relative to the Markdown file), and paths they mention in `code` or
# (parentheses) that start with one of the repository's top-level directories or name a
# .md file (relative to the repository's root or to the Markdown file). URLs, anchors and
# example paths (with <placeholders>, wildcards or variables) are not checked.
# Prints one line per broken reference and exits 1 if there is any. Run by tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files="$(git ls-files --cached --others --exclude-standard '*.md')"
else
    files="$(find . -name '*.md' -not -path './build/*' | sed 's|^\./||')"
fi
python3 - $files <<'PY'
import os, re, sys

top = sorted(d for d in os.listdir(".") if os.path.isdir(d) and d not in (".git", "build"))
link = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
mention = re.compile(r"[`(]((?:\./)?(?:(?:%s)/[A-Za-z0-9_./-]*|[A-Za-z0-9_.-]+\.md))[`),:;]"
                     % "|".join(re.escape(t) for t in top))
bad = 0
for md in sys.argv[1:]:
    here = os.path.dirname(md)
    in_fence = False
    for n, line in enumerate(open(md, encoding="utf-8"), 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        refs = []
        for target in link.findall(line):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            refs.append((target.split("#")[0], [os.path.join(here, target.split("#")[0])]))
        if not in_fence:
            for target in mention.findall(line):
                refs.append((target, [target, os.path.join(here, target)]))
        for target, candidates in refs:
            if not target or any(c in target for c in "<>*$…"):
                continue
            if not any(os.path.exists(os.path.normpath(c)) for c in candidates):
                print(f"{md}:{n}: {target} does not exist in the repository")
                bad += 1
sys.exit(1 if bad else 0)
PY
