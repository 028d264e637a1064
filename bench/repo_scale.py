"""bench/repo_scale: cassette on repositories of many backups (bench/README.md).

Two synthetic repositories, written by build/tools/synth_repo (bench/synth_repo.c) and
cached under ~/.cache/cassette/bench/synth-<params>-v1/ (generated once into a temporary
directory, then renamed, so an interrupted generation is never reused):

  (a) 10,000 backups x 10 files     list from the catalog: cold (first sync), warm, and
                                    `catalog rebuild`
  (b) 1,000 backups x 10,000 files  list, verify, verify --deep, purge --dry-run, purge
      (~210,000 objects, 2% of the files new in each backup, like hourly backups)

Every command runs on a fresh hard-linked copy of the cached repository (`cp -al`: objects
and manifests are never modified in place and purge only deletes, so the cache stays
intact) with a fresh catalog path (--catalog), and is measured:

  wall      time.monotonic() around the command (in the launcher, see LAUNCHER)
  RSS       the command's peak resident set (ru_maxrss from os.wait4, in a small
            launcher: see LAUNCHER)

A failed command (for instance one this build does not have yet: "unknown command") is
reported as such in its row and the run goes on. The targets: (a) the warm list under 1 s;
(b) every command under 100 MiB peak RSS and done within 10 minutes.

It prints a table and appends it, dated, with the machine's CPUs and memory, to
bench/RESULTS.md (--no-append: print only; --smoke never appends: tiny sizes, ~2 s, to see
that it still works). Standard library only.

Usage: bench/repo_scale [--smoke] [--only a|b] [--no-append] [--no-build] [--regenerate] [--keep]
                        [--cassette PATH]"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CASSETTE_CACHE", Path.home() / ".cache" / "cassette"))
BENCH_CACHE = CACHE / "bench"
CASSETTE = ROOT / "build" / "cassette"
SYNTH = ROOT / "build" / "tools" / "synth_repo"
SYNTH_VERSION = 2            # bump when synth_repo writes something different (2: "sha256:" content hashes)
MIB = 1 << 20

LIST_WARM_LIMIT_S = 1.0      # target (a)
RSS_LIMIT_MIB = 100          # target (b)
CMD_LIMIT_S = 600            # target (b): "finishes in minutes"
TIMEOUT_S = 3600             # a command still running after this is killed

# Hourly backups from 2025-01-01 00:00 UTC: all of them in the past, as in a real repository
# (purge judges interrupted backups by their age).
START = 1735689600
FULL = {
    "a": dict(backups=10000, files=10, hosts=1, new_fraction=0.02, incomplete=1, seed=1, object_size=64,
              start=START, interval=3600),
    "b": dict(backups=1000, files=10000, hosts=1, new_fraction=0.02, incomplete=1, seed=1, object_size=64,
              start=START, interval=3600),
}
SMOKE = {
    "a": dict(FULL["a"], backups=50, files=20),
    "b": dict(FULL["b"], backups=20, files=200),
}


def say(msg):
    print(f"repo_scale: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---- measuring --------------------------------------------------------------------

class Result:
    def __init__(self, dataset, label, argv, kind=""):
        self.dataset = dataset
        self.kind = kind          # "list", "verify", "purge", ... (targets look at it)
        self.label = label
        self.argv = [str(a) for a in argv]
        self.wall = None
        self.rss_kib = None
        self.rc = None
        self.status = "not run"   # "ok", or why not
        self.note = ""
        self.stdout = ""
        self.stderr = ""

    @property
    def ok(self):
        return self.status == "ok"

    @property
    def rss_mib(self):
        return None if self.rss_kib is None else self.rss_kib / 1024


def child_env():
    """The environment of measured commands: no CASSETTE_* setting of the caller leaks in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CASSETTE_")}


# The measured command is started by a small launcher (a fresh `python3 -S`) that forks
# it and reports os.wait4's ru_maxrss. Started straight from this script, the command's
# ru_maxrss would include this script's own peak: subprocess spawns with vfork, and Linux
# carries the high-water mark of the memory a process had before execve into its
# ru_maxrss. A fork of the launcher holds ~5 MiB, below anything cassette needs. The
# launcher also times the command (fork to exit), without its own start-up.
LAUNCHER = r"""
import os, sys, time
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - t0
with open(sys.argv[1], "w") as f:
    f.write("%d %d %.6f\n" % (status, ru.ru_maxrss, wall))
"""


def measure(dataset, label, argv, work, timeout=TIMEOUT_S, env=None, kind=""):
    """Run argv, return a Result with its wall time and peak RSS (never raises for the
    command's own failure)."""
    r = Result(dataset, label, argv, kind)
    out_path = Path(work) / "last.stdout"
    err_path = Path(work) / "last.stderr"
    ru_path = Path(work) / "last.rusage"
    ru_path.unlink(missing_ok=True)
    say(f"{dataset}: {label}: {' '.join(r.argv[1:])}")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        try:
            p = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(ru_path)] + r.argv, stdout=out,
                                 stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
                                 env=env if env is not None else child_env())
        except OSError as e:
            r.status = f"cannot run: {e}"
            return r
        try:
            p.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        r.wall = time.monotonic() - t0
    try:
        status, maxrss, wall = ru_path.read_text().split()
        r.rc = os.waitstatus_to_exitcode(int(status))
        r.rss_kib = int(maxrss)
        r.wall = float(wall)
    except (OSError, ValueError):
        r.rc = p.returncode if p.returncode else -1
    r.stdout = out_path.read_text(errors="replace")
    r.stderr = err_path.read_text(errors="replace")
    if killed:
        r.status = f"killed after {timeout} s"
    elif r.rc != 0:
        lines = [ln.strip() for ln in r.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else ""
        if "unknown option" in r.stderr or "unknown command" in r.stderr:
            r.status = f"not available in this build: {last}"
        else:
            r.status = f"failed (exit {r.rc}): {last}"
    else:
        r.status = "ok"
    if r.ok:
        say(f"{dataset}: {label}: {r.wall:.2f} s, peak RSS {r.rss_mib:.0f} MiB")
    else:
        say(f"{dataset}: {label}: {r.status}")
    return r


def run(argv, **kw):
    """A helper command (not measured); its failure ends the benchmark."""
    kw.setdefault("check", True)
    kw.setdefault("text", True)
    try:
        return subprocess.run([str(a) for a in argv], **kw)
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or "").strip().splitlines()[-3:] if isinstance(e.stderr, str) else []
        raise BenchError(f"{' '.join(map(str, argv[:4]))}... failed (exit {e.returncode}) " + " | ".join(detail))


def tree_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def tree_files(path, sub):
    n = 0
    for _, _, files in os.walk(Path(path) / sub):
        n += sum(1 for f in files if not f.startswith(".tmp-"))
    return n


# ---- the synthetic repositories ---------------------------------------------------

def cache_name(p):
    return (f"synth-b{p['backups']}-f{p['files']}-h{p['hosts']}-n{p['new_fraction']:g}-i{p['incomplete']}"
            f"-s{p['seed']}-o{p['object_size']}-t{p['start']}+{p['interval']}-v{SYNTH_VERSION}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_tmp(final):
    """Remove what interrupted generations of this cache entry left behind."""
    for d in final.parent.glob(final.name + ".tmp-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if not pid_alive(pid):
            say(f"removing the leftovers of an interrupted generation: {d}")
            shutil.rmtree(d, ignore_errors=True)


def estimate_bytes(p):
    entries = p["backups"] * p["hosts"]
    objects = p["hosts"] * (p["files"] + (p["backups"] - 1) * p["files"] * p["new_fraction"])
    block = 4096
    per_object = ((p["object_size"] + 64) // block + 1) * block
    return int(entries * (p["files"] * 250 + 80000 + 3 * block) + objects * per_object)


def ensure_repo(p, regenerate):
    """The cached repository for params p: (path of the repository, info dict)."""
    final = BENCH_CACHE / cache_name(p)
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(final)
    if final.is_dir() and regenerate:
        say(f"--regenerate: removing {final}")
        shutil.rmtree(final)
    info_path = final / "synth.json"
    if final.is_dir() and info_path.is_file() and (final / "repo" / "cassette.repo").is_file():
        info = json.loads(info_path.read_text())
        info["cached"] = True
        say(f"using the cached repository {final} (generated in {info['seconds']:.0f} s)")
        return final / "repo", info
    need = estimate_bytes(p)
    free = shutil.disk_usage(BENCH_CACHE).free
    if free < need * 1.3 + (2 << 30):
        raise BenchError(f"{BENCH_CACHE}: {free / (1 << 30):.1f} GiB free, generating {final.name} needs "
                         f"~{need / (1 << 30):.1f} GiB (and room for catalogs)")
    tmp = final.parent / f"{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        argv = [SYNTH, "--repo", tmp / "repo", "--backups", p["backups"], "--files", p["files"],
                "--hosts", p["hosts"], "--new-fraction", p["new_fraction"], "--incomplete", p["incomplete"],
                "--seed", p["seed"], "--object-size", p["object_size"], "--start", p["start"],
                "--interval", p["interval"]]
        say(f"generating {final.name} (~{need / (1 << 30):.1f} GiB)")
        env = dict(os.environ)
        r = measure("gen", "synth_repo", argv, tmp, env=env)
        if not r.ok:
            raise BenchError(f"synth_repo failed: {r.status}")
        info = dict(params=p, seconds=r.wall, rss_kib=r.rss_kib, summary=r.stdout.strip(),
                    bytes=tree_bytes(tmp / "repo"), objects=tree_files(tmp / "repo", "objects"),
                    generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
        for f in ("last.stdout", "last.stderr", "last.rusage"):
            (tmp / f).unlink(missing_ok=True)
        (tmp / "synth.json").write_text(json.dumps(info, indent=1) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            say(f"another run generated {final.name} meanwhile: using it")
            shutil.rmtree(tmp, ignore_errors=True)
            info = json.loads((final / "synth.json").read_text())
            info["cached"] = True
            return final / "repo", info
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info["cached"] = False
    say(f"generated in {info['seconds']:.0f} s: {info['summary']}")
    return final / "repo", info


# ---- the runs ---------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.results = []
        for old in BENCH_CACHE.glob("repo_scale-work-*"):   # left by a run that was killed
            try:
                pid = int(old.name.rsplit("-", 1)[1])
            except ValueError:
                continue
            if pid != os.getpid() and not pid_alive(pid):
                say(f"removing the work files of a run that was killed: {old}")
                shutil.rmtree(old, ignore_errors=True)
        self.work = BENCH_CACHE / f"repo_scale-work-{os.getpid()}"
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.n = 0
        self.copy_seconds = []

    def fresh(self, src):
        """A fresh hard-linked copy of the repository at src and a fresh catalog path."""
        self.n += 1
        d = self.work / f"run{self.n}"
        d.mkdir()
        t0 = time.monotonic()
        run(["cp", "-al", src, d / "repo"], capture_output=True)
        self.copy_seconds.append(time.monotonic() - t0)
        return d / "repo", d / "catalog.db"

    def drop(self, repo):
        if not self.args.keep:
            shutil.rmtree(repo.parent, ignore_errors=True)

    def cassette(self, dataset, label, repo, catalog, *cmd, kind=""):
        r = measure(dataset, label, [CASSETTE, *cmd, "--repo", repo, "--catalog", catalog], self.work, kind=kind)
        self.results.append(r)
        return r

    def check_list(self, r, complete, incomplete=None):
        """Count the backups a `list --json` printed: complete ones must be `complete`,
        incomplete ones `incomplete` (None: any number)."""
        if not r.ok:
            return
        try:
            entries = json.loads(r.stdout)
            n_ok = sum(1 for x in entries if x.get("complete"))
        except (ValueError, TypeError, AttributeError):
            r.status = "output is not the expected JSON list"
            return
        n_inc = len(entries) - n_ok
        r.note = f"{n_ok} complete + {n_inc} incomplete"
        want = f"{complete} complete" + ("" if incomplete is None else f" + {incomplete} incomplete")
        if n_ok != complete or (incomplete is not None and n_inc != incomplete):
            r.status = f"wrong listing: {r.note}, expected {want}"
            r.note = ""

    def dataset_a(self, src, p):
        d = "a"
        n_ok, n_inc = p["backups"] * p["hosts"], p["incomplete"] * p["hosts"]
        repo, cat = self.fresh(src)
        self.check_list(self.cassette(d, "list --json, empty catalog (first sync)", repo, cat, "list", "--json"),
                        n_ok, n_inc)
        for i in range(3):
            self.check_list(self.cassette(d, f"list --json, warm catalog #{i + 1}", repo, cat, "list", "--json",
                                         kind="list warm"),
                            n_ok, n_inc)
        self.cassette(d, "catalog rebuild", repo, cat, "catalog", "rebuild")
        self.drop(repo)

    def dataset_b(self, src, p):
        d = "b"
        n_ok, n_inc = p["backups"] * p["hosts"], p["incomplete"] * p["hosts"]
        purge_args = ["--grace", "0"] + (["--keep-last", "5"] if self.args.smoke else [])
        keep = 5 if self.args.smoke else 168
        # Each measured command starts from a fresh copy and an empty catalog (the worst
        # case: it syncs the catalog itself); a second run on the same copy shows it warm.
        repo, cat = self.fresh(src)
        self.check_list(self.cassette(d, "list --json, empty catalog", repo, cat, "list", "--json"), n_ok, n_inc)
        self.drop(repo)
        repo, cat = self.fresh(src)
        self.cassette(d, "verify, empty catalog", repo, cat, "verify", kind="verify")
        self.cassette(d, "verify, warm catalog", repo, cat, "verify", kind="verify")
        self.drop(repo)
        repo, cat = self.fresh(src)
        self.cassette(d, "verify --deep, empty catalog", repo, cat, "verify", "--deep", kind="verify --deep")
        self.drop(repo)
        repo, cat = self.fresh(src)
        self.cassette(d, f"purge --dry-run {' '.join(purge_args)}, empty catalog", repo, cat, "purge", "--dry-run",
                      *purge_args, kind="purge --dry-run")
        self.drop(repo)
        repo, cat = self.fresh(src)
        pr = self.cassette(d, f"purge {' '.join(purge_args)}, empty catalog", repo, cat, "purge", *purge_args,
                           kind="purge")
        if pr.ok:
            pr.note = f"objects {tree_files(src, 'objects')} -> {tree_files(repo, 'objects')}"
            # The interrupted backups are purge's to judge (with --grace 0 it may drop them).
            self.check_list(self.cassette(d, "after purge: list --json", repo, cat, "list", "--json"),
                            min(keep, p["backups"]) * p["hosts"])
            self.cassette(d, "after purge: verify", repo, cat, "verify")
        self.drop(repo)

    def close(self):
        if self.args.keep:
            say(f"kept the work copies in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# ---- the report -------------------------------------------------------------------

def machine_line():
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}"


def describe(key, p, info):
    how = "cached" if info.get("cached") else "generated in this run"
    return (f"({key}) {p['backups']:,} backups x {p['files']:,} files x {p['hosts']} host(s), "
            f"+{p['incomplete']} incomplete, {100 * p['new_fraction']:g}% new files per backup, "
            f"{p['object_size']} B objects: {info.get('objects', 0):,} objects, "
            f"{info.get('bytes', 0) / (1 << 30):.2f} GiB on disk; synth_repo took {info['seconds']:.0f} s "
            f"(peak RSS {info.get('rss_kib', 0) // 1024} MiB, {how})")


def verdict(results, datasets):
    lines = []
    if "a" in datasets:
        warm = [r for r in results if r.dataset == "a" and r.kind == "list warm"]
        ok = [r for r in warm if r.ok]
        if not ok:
            why = warm[0].status if warm else "not run"
            lines.append(f"- (a) list of {datasets['a'][0]['backups']:,} backups from a warm catalog "
                         f"under {LIST_WARM_LIMIT_S:g} s: NOT MEASURED ({why})")
        else:
            best = min(r.wall for r in ok)
            met = "met" if best < LIST_WARM_LIMIT_S and len(ok) == len(warm) else "MISSED"
            lines.append(f"- (a) list of {datasets['a'][0]['backups']:,} backups from a warm catalog under "
                         f"{LIST_WARM_LIMIT_S:g} s: {met} (best {best:.2f} s, worst "
                         f"{max(r.wall for r in ok):.2f} s of {len(ok)})")
    if "b" in datasets:
        b = [r for r in results if r.dataset == "b"]
        failed = [r for r in b if not r.ok]
        ok = [r for r in b if r.ok]
        if not ok:
            lines.append("- (b) purge and verify under 100 MiB and within minutes: NOT MEASURED")
        else:
            rss = max(r.rss_mib for r in ok)
            wall = max(r.wall for r in ok)
            main = ("verify", "verify --deep", "purge --dry-run", "purge")
            missing = [m for m in main if not any(r.kind == m for r in ok)]
            met_rss = "met" if rss < RSS_LIMIT_MIB else "MISSED"
            met_wall = "met" if wall < CMD_LIMIT_S else "MISSED"
            tail = f"; not measured: {', '.join(missing)}" if missing else ""
            lines.append(f"- (b) peak RSS under {RSS_LIMIT_MIB} MiB: {met_rss} (largest {rss:.0f} MiB){tail}")
            lines.append(f"- (b) every command within {CMD_LIMIT_S // 60} min: {met_wall} "
                         f"(longest {wall:.0f} s){tail}")
        if failed:
            lines.append(f"- (b) {len(failed)} command(s) did not succeed (see the table)")
    return lines


def report(results, datasets, smoke, copy_seconds):
    lines = []
    add = lines.append
    title = "smoke run (not a measurement)" if smoke else "repositories of many backups"
    add(f"### repo_scale: {title}")
    add("")
    for key, (p, info) in datasets.items():
        add(f"- {describe(key, p, info)}")
    if copy_seconds:
        add(f"- each command on a fresh `cp -al` copy ({min(copy_seconds):.1f}-{max(copy_seconds):.1f} s each, "
            f"not counted) with a fresh catalog; the OS page cache is warm")
    add("")
    add("| | command | wall s | peak RSS MiB | result |")
    add("|---|---|---:|---:|---|")
    for r in results:
        wall = "" if r.wall is None else f"{r.wall:.2f}"
        rss = "" if r.rss_kib is None else f"{r.rss_kib / 1024:.0f}"
        res = r.status + (f"; {r.note}" if r.note else "")
        add(f"| {r.dataset} | {r.label} | {wall} | {rss} | {res.replace('|', '/')} |")
    add("")
    add("Targets:")
    add("")
    lines.extend(verdict(results, datasets))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny repositories: does it still work? (never appended)")
    ap.add_argument("--only", choices=("a", "b"), help="only repository (a) or (b)")
    ap.add_argument("--no-append", action="store_true", help="print the table, do not append it to RESULTS.md")
    ap.add_argument("--no-build", action="store_true", help="do not run `make -j2 all` first "
                    "(also when BENCH_NO_INSTALL is set)")
    ap.add_argument("--regenerate", action="store_true", help="generate the repositories again, not from the cache")
    ap.add_argument("--keep", action="store_true", help="leave the work copies and catalogs behind")
    ap.add_argument("--cassette", metavar="PATH", help="the cassette binary to measure (default: build/cassette)")
    args = ap.parse_args()
    global CASSETTE
    if args.cassette:
        CASSETTE = Path(args.cassette).resolve()
    t_start = time.monotonic()
    if not (args.no_build or os.environ.get("BENCH_NO_INSTALL")):
        say("building (make -j2 all)")
        r = subprocess.run(["make", "-C", str(ROOT), "-s", "-j2", "all"], stdout=sys.stderr, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            tail = " | ".join(r.stderr.strip().splitlines()[-3:])
            say(f"the build failed: {tail}")
            return 1
    for exe in (CASSETTE, SYNTH):
        if not os.access(exe, os.X_OK):
            say(f"{exe} is missing: build it with `make -j2 all`")
            return 1
    sizes = SMOKE if args.smoke else FULL
    keys = [args.only] if args.only else ["a", "b"]
    datasets = {}
    b = None
    try:
        for k in keys:
            datasets[k] = ensure_repo(sizes[k], args.regenerate)
        b = Bench(args)
        for k in keys:
            src, _ = datasets[k]
            getattr(b, f"dataset_{k}")(src, sizes[k])
    except BenchError as e:
        say(str(e))
        return 1
    finally:
        if b:
            b.close()
    text = report(b.results, {k: (sizes[k], datasets[k][1]) for k in keys}, args.smoke, b.copy_seconds)
    elapsed = time.monotonic() - t_start
    print(text)
    if not args.smoke and not args.no_append:
        rev = run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True).stdout.strip()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(f"\n## {stamp} — bench/repo_scale, cassette {rev}\n\n- machine: {machine_line()}\n"
                    f"- the whole run took {elapsed / 60:.1f} min\n\n{text}")
        say("appended to bench/RESULTS.md")
    say(f"done in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main())
