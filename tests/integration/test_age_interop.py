"""Interoperability of cassette's native age (src/crypto/age.c, driven through the
build/asan/tools/agetool CLI) with the real age (Debian's `age` / `age-keygen`).

No Cassandra: these tests request none of conftest's node fixtures.

- files our tool encrypts (1 and 3 recipients; 0 B, 1 B, 64 KiB, 64 KiB + 1, 100 MiB) decrypt
  with `age -d -i`, byte-identical; and the other way round;
- passphrase files both ways, the passphrase typed into age through a pty (age reads it from
  /dev/tty);
- identity files from `age-keygen -o` work with our tool, our keygen's with age;
- failures: wrong identity, a flipped payload byte, truncation: exit 1, one "agetool: ..." line,
  and (with -o) no output file at all.

The binary under test is build/asan/tools/agetool (env CASSETTE_AGETOOL overrides).
"""

import fcntl
import hashlib
import os
import pathlib
import re
import select
import shutil
import subprocess
import termios
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
MIB = 1 << 20
CHUNK = 65536
SMALL_SIZES = [0, 1, CHUNK, CHUNK + 1]
BIG = 100 * MIB
PASSPHRASE = "correct horse battery staple 7"
RUN_TIMEOUT = 120   # seconds for any one command
TTY_TIMEOUT = 60    # seconds for a pty prompt to appear

# ASan/UBSan would exit 1 too: give them their own codes so an "exit 1" is ours.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87",
}


# ---- fixtures and helpers ---------------------------------------------------

@pytest.fixture(scope="session")
def agetool():
    path = pathlib.Path(os.environ.get("CASSETTE_AGETOOL",
                                       ROOT / "build" / "asan" / "tools" / "agetool"))
    if not path.is_absolute():
        path = ROOT / path
    if not os.access(path, os.X_OK):
        pytest.fail(f"agetool {path} is missing: build it first"
                    " (make VARIANT=asan all, or set CASSETTE_AGETOOL)")
    return path


@pytest.fixture(scope="session")
def age_bins():
    bins = {name: shutil.which(name) for name in ("age", "age-keygen")}
    missing = [n for n, p in bins.items() if not p]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed (apt-get install age)")
    return bins


class Key:
    def __init__(self, path, recipient):
        self.path, self.recipient = path, recipient


@pytest.fixture(scope="session")
def keys(tmp_path_factory, age_bins):
    """Three identities made by `age-keygen -o`."""
    d = tmp_path_factory.mktemp("keys")
    out = []
    for i in range(3):
        path = d / f"key{i}.txt"
        run([age_bins["age-keygen"], "-o", path]).ok()
        out.append(Key(path, public_key_of(path)))
    return out


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """size -> (path, sha256) of random files, made once per session."""
    d = tmp_path_factory.mktemp("data")
    made = {}

    def get(size):
        if size not in made:
            path = d / f"plain-{size}"
            made[size] = (path, write_random(path, size))
        return made[size]

    return get


class Res:
    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err

    def describe(self):
        out = self.out if isinstance(self.out, str) else f"<{len(self.out)} bytes>"
        return (f"{' '.join(map(str, self.cmd))}\n  exit {self.rc}\n  stdout: {out[-2000:]}\n"
                f"  stderr: {self.err[-3000:]!r}")

    def ok(self):
        assert self.rc == 0, self.describe()
        return self


def run(cmd, stdin=None, env=None, binary_out=False, stdout_to=None, timeout=RUN_TIMEOUT):
    """Run cmd with stdin from a path (or nothing), stdout captured or written to the
    path stdout_to -> Res."""
    e = dict(os.environ)
    e.update(SANITIZER_ENV)
    if env:
        e.update(env)
    cmd = [str(c) for c in cmd]
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin, \
            open(stdout_to, "wb") if stdout_to else open(os.devnull, "rb") as fout:
        p = subprocess.run(cmd, stdin=fin, stdout=fout if stdout_to else subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e, timeout=timeout)
    stdout = p.stdout or b""
    out = stdout if binary_out else stdout.decode(errors="replace")
    return Res(cmd, p.returncode, out, p.stderr.decode(errors="replace"))


def write_random(path, size):
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            b = os.urandom(min(left, 4 * MIB))
            f.write(b)
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def public_key_of(identity_path):
    m = re.search(r"^# public key: (age1[0-9a-z]+)$", pathlib.Path(identity_path).read_text(),
                  re.M)
    assert m, f"no '# public key:' line in {identity_path}"
    return m.group(1)


def assert_fails(res, *needles):
    """Exit 1 with exactly one 'agetool: ...' line on stderr containing every needle."""
    assert res.rc == 1, res.describe()
    lines = res.err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("agetool: "), \
        f"expected one 'agetool: ...' line on stderr\n{res.describe()}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in the error\n{res.describe()}"


def assert_no_output(out_path):
    out_path = pathlib.Path(out_path)
    left = [p.name for p in out_path.parent.iterdir() if p.name.startswith(out_path.name)]
    assert not left, f"a failed run left {left} behind"


def payload_offset(enc):
    """Offset of the first payload byte: after the header's '---' line and the 16-byte nonce."""
    i = enc.index(b"\n--- ")
    return enc.index(b"\n", i + 1) + 1 + 16


def run_tty(cmd, answers, timeout=RUN_TIMEOUT):
    """Run cmd with a fresh pty as its controlling terminal (age reads passphrases from
    /dev/tty), answering each (prompt, reply) in turn once the prompt text shows on the
    pty. -> Res (stdout/stderr are pipes; the terminal's text is in res.tty)."""
    master, slave = os.openpty()

    def take_tty():
        # start_new_session made the child a session leader without a terminal: make
        # the slave its controlling terminal. The child keeps the slave fd open, so the
        # master does not see EIO before age opens /dev/tty.
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    cmd = [str(c) for c in cmd]
    deadline = time.monotonic() + timeout
    tty = b""
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True,
                             pass_fds=(slave,), preexec_fn=take_tty)
        os.close(slave)
        slave = None
        try:
            seen = 0
            for prompt, reply in answers:
                want = prompt.encode()
                prompt_deadline = min(deadline, time.monotonic() + TTY_TIMEOUT)
                while want not in tty[seen:]:
                    left = prompt_deadline - time.monotonic()
                    if left <= 0:
                        raise AssertionError(f"no {prompt!r} prompt from {cmd} within"
                                             f" {TTY_TIMEOUT}s; terminal showed {tty!r}")
                    r, _, _ = select.select([master], [], [], left)
                    if not r:
                        continue
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:  # EIO: the child closed the terminal
                        chunk = b""
                    if not chunk:
                        raise AssertionError(f"{cmd} closed the terminal before {prompt!r};"
                                             f" it showed {tty!r}")
                    tty += chunk
                seen = tty.index(want, seen) + len(want)
                os.write(master, reply.encode() + b"\n")
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            p.kill()
            p.wait(timeout=10)
            raise
        # What the terminal still holds (the prompts' line ends), without blocking.
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            tty += chunk
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    res = Res(cmd, p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    res.tty = tty.decode(errors="replace")
    return res


# Every small size with 1 and 3 recipients; 100 MiB once per direction (run time).
SIZE_RCPTS = [(size, n) for size in SMALL_SIZES for n in (1, 3)] + [(BIG, 1)]
SIZE_RCPT_IDS = [f"{'100MiB' if size == BIG else f'{size}B'}-{n}rcpt" for size, n in SIZE_RCPTS]


# ---- ours -> age ------------------------------------------------------------

@pytest.mark.parametrize("size,nrcpt", SIZE_RCPTS, ids=SIZE_RCPT_IDS)
def test_ours_encrypts_age_decrypts(agetool, age_bins, keys, data, tmp_path, size, nrcpt):
    plain, digest = data(size)
    enc = tmp_path / "enc.age"
    rargs = [a for k in keys[:nrcpt] for a in ("-r", k.recipient)]
    run([agetool, "encrypt", *rargs, "-o", enc], stdin=plain).ok()
    # Every recipient can open it; with one recipient only that one.
    for k in keys[:nrcpt]:
        out = tmp_path / f"dec-{k.path.stem}"
        # (age creates -o files lazily: none for an empty plaintext; stdout is exact.)
        run([age_bins["age"], "-d", "-i", k.path, enc], stdout_to=out).ok()
        assert out.stat().st_size == size
        assert sha256_file(out) == digest
        out.unlink()
    if nrcpt == 1:
        res = run([age_bins["age"], "-d", "-i", keys[1].path, enc])
        assert res.rc != 0 and "no identity matched" in res.err, res.describe()


def test_ours_to_stdout_age_decrypts(agetool, age_bins, keys, data, tmp_path):
    """The stdout path (fd sink) gives the same file as -o."""
    plain, digest = data(CHUNK + 1)
    enc = tmp_path / "enc.age"
    res = run([agetool, "encrypt", "-r", keys[0].recipient], stdin=plain, binary_out=True).ok()
    enc.write_bytes(res.out)
    dec = run([age_bins["age"], "-d", "-i", keys[0].path, enc], binary_out=True).ok()
    assert hashlib.sha256(dec.out).hexdigest() == digest


# ---- age -> ours ------------------------------------------------------------

@pytest.mark.parametrize("size,nrcpt", SIZE_RCPTS, ids=SIZE_RCPT_IDS)
def test_age_encrypts_ours_decrypts(agetool, age_bins, keys, data, tmp_path, size, nrcpt):
    plain, digest = data(size)
    enc = tmp_path / "enc.age"
    rargs = [a for k in keys[:nrcpt] for a in ("-r", k.recipient)]
    run([age_bins["age"], "-e", *rargs, "-o", enc, plain]).ok()
    for k in keys[:nrcpt]:
        out = tmp_path / f"dec-{k.path.stem}"
        run([agetool, "decrypt", "-i", k.path, "-o", out], stdin=enc).ok()
        assert out.stat().st_size == size
        assert sha256_file(out) == digest
        out.unlink()
    # Several -i files: the one that matches is found whichever comes first.
    out = tmp_path / "dec-all"
    run([agetool, "decrypt", "-i", keys[2].path, "-i", keys[1].path, "-i", keys[0].path,
         "-o", out], stdin=enc).ok()
    assert sha256_file(out) == digest


def test_age_armored_ours_decrypts(agetool, age_bins, keys, data, tmp_path):
    plain, digest = data(CHUNK + 1)
    enc = tmp_path / "enc.age"
    run([age_bins["age"], "-e", "-a", "-r", keys[0].recipient, "-o", enc, plain]).ok()
    assert enc.read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    res = run([agetool, "decrypt", "-i", keys[0].path], stdin=enc, binary_out=True).ok()
    assert hashlib.sha256(res.out).hexdigest() == digest


# ---- passphrases through a pty ----------------------------------------------

def test_age_passphrase_ours_decrypts(agetool, age_bins, data, tmp_path):
    plain, digest = data(CHUNK + 1)
    enc = tmp_path / "enc.age"
    res = run_tty([age_bins["age"], "-e", "-p", "-o", enc, plain],
                  [("Enter passphrase", PASSPHRASE), ("Confirm passphrase", PASSPHRASE)])
    assert res.rc == 0, res.describe() + f"\n  tty: {res.tty!r}"
    assert b"scrypt" in enc.read_bytes()[:200]
    out = tmp_path / "dec"
    run([agetool, "decrypt", "-p", "-o", out], stdin=enc,
        env={"AGETOOL_PASSPHRASE": PASSPHRASE}).ok()
    assert sha256_file(out) == digest
    # A wrong passphrase opens nothing and leaves nothing.
    out2 = tmp_path / "dec-wrong"
    res = run([agetool, "decrypt", "-p", "-o", out2], stdin=enc,
              env={"AGETOOL_PASSPHRASE": PASSPHRASE + "x"})
    assert_fails(res)
    assert PASSPHRASE not in res.err
    assert_no_output(out2)


def test_ours_passphrase_age_decrypts(agetool, age_bins, data, tmp_path):
    plain, digest = data(CHUNK + 1)
    enc = tmp_path / "enc.age"
    run([agetool, "encrypt", "-p", "-o", enc], stdin=plain,
        env={"AGETOOL_PASSPHRASE": PASSPHRASE}).ok()  # default work factor 18
    out = tmp_path / "dec"
    res = run_tty([age_bins["age"], "-d", "-o", out, enc], [("Enter passphrase", PASSPHRASE)])
    assert res.rc == 0, res.describe() + f"\n  tty: {res.tty!r}"
    assert sha256_file(out) == digest


def test_passphrase_needs_env(agetool, tmp_path):
    env = {"AGETOOL_PASSPHRASE": ""}
    assert_fails(run([agetool, "encrypt", "-p"], env=env), "AGETOOL_PASSPHRASE")
    assert_fails(run([agetool, "decrypt", "-p"], env=env), "AGETOOL_PASSPHRASE")
    assert_fails(run([agetool, "encrypt", "-p"],
                     env={"AGETOOL_PASSPHRASE": PASSPHRASE, "AGETOOL_WORK": "99"}),
                 "AGETOOL_WORK")


# ---- identity files ---------------------------------------------------------

def test_age_keygen_identity_works_with_ours(agetool, age_bins, data, tmp_path):
    key = tmp_path / "id.txt"
    run([age_bins["age-keygen"], "-o", key]).ok()
    recipient = run([age_bins["age-keygen"], "-y", key]).ok().out.strip()
    assert recipient == public_key_of(key)
    plain, digest = data(CHUNK)
    # age encrypts to it, we decrypt with the file exactly as age-keygen wrote it.
    enc = tmp_path / "enc.age"
    run([age_bins["age"], "-e", "-r", recipient, "-o", enc, plain]).ok()
    res = run([agetool, "decrypt", "-i", key], stdin=enc, binary_out=True).ok()
    assert hashlib.sha256(res.out).hexdigest() == digest
    # We encrypt to its public key, age decrypts.
    enc2 = tmp_path / "enc2.age"
    run([agetool, "encrypt", "-r", recipient, "-o", enc2], stdin=plain).ok()
    res = run([age_bins["age"], "-d", "-i", key, enc2], binary_out=True).ok()
    assert hashlib.sha256(res.out).hexdigest() == digest


def test_our_keygen_works_with_age(agetool, age_bins, data, tmp_path):
    res = run([agetool, "keygen"]).ok()
    lines = res.out.splitlines()
    assert len(lines) == 3, res.describe()
    assert re.fullmatch(r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", lines[0])
    assert re.fullmatch(r"# public key: age1[0-9a-z]{58}", lines[1])
    assert re.fullmatch(r"AGE-SECRET-KEY-1[0-9A-Z]{58}", lines[2])
    assert res.err == ""
    key = tmp_path / "ours.txt"
    key.write_text(res.out)
    recipient = public_key_of(key)
    assert run([age_bins["age-keygen"], "-y", key]).ok().out.strip() == recipient
    plain, digest = data(CHUNK + 1)
    enc = tmp_path / "enc.age"
    run([age_bins["age"], "-e", "-r", recipient, "-o", enc, plain]).ok()
    res = run([age_bins["age"], "-d", "-i", key, enc], binary_out=True).ok()
    assert hashlib.sha256(res.out).hexdigest() == digest
    # keygen -o writes a private file; two keys are never the same.
    key2 = tmp_path / "ours2.txt"
    run([agetool, "keygen", "-o", key2]).ok()
    assert key2.stat().st_mode & 0o077 == 0
    assert public_key_of(key2) != recipient


# ---- failures ---------------------------------------------------------------

def test_wrong_identity(agetool, age_bins, keys, data, tmp_path):
    plain, _ = data(CHUNK + 1)
    enc = tmp_path / "enc.age"
    run([age_bins["age"], "-e", "-r", keys[0].recipient, "-o", enc, plain]).ok()
    out = tmp_path / "dec"
    res = run([agetool, "decrypt", "-i", keys[1].path, "-i", keys[2].path, "-o", out], stdin=enc)
    assert_fails(res, "no identity matches")
    assert "AGE-SECRET-KEY" not in res.err
    assert_no_output(out)
    res = run([agetool, "decrypt", "-i", keys[1].path], stdin=enc, binary_out=True)
    assert_fails(res, "no identity matches")
    assert res.out == b""


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("maker", ["ours", "age"])
def test_flipped_payload_byte(agetool, age_bins, keys, data, tmp_path, where, maker):
    plain, _ = data(2 * CHUNK + 100)
    enc = tmp_path / "enc.age"
    if maker == "ours":
        run([agetool, "encrypt", "-r", keys[0].recipient, "-o", enc], stdin=plain).ok()
    else:
        run([age_bins["age"], "-e", "-r", keys[0].recipient, "-o", enc, plain]).ok()
    blob = bytearray(enc.read_bytes())
    start = payload_offset(blob)
    assert len(blob) - start == 2 * CHUNK + 100 + 3 * 16
    pos = {"first": start, "middle": start + CHUNK + 16 + 7, "last": len(blob) - 1}[where]
    blob[pos] ^= 0x20
    bad = tmp_path / "bad.age"
    bad.write_bytes(bytes(blob))
    out = tmp_path / "dec"
    res = run([agetool, "decrypt", "-i", keys[0].path, "-o", out], stdin=bad)
    assert_fails(res, "age payload", "failed authentication")
    assert_no_output(out)
    # The real age agrees the file is bad.
    assert run([age_bins["age"], "-d", "-i", keys[0].path, bad], binary_out=True).rc != 0


def test_flipped_header_byte(agetool, keys, data, tmp_path):
    plain, _ = data(CHUNK + 1)
    enc = tmp_path / "enc.age"
    run([agetool, "encrypt", "-r", keys[0].recipient, "-o", enc], stdin=plain).ok()
    blob = bytearray(enc.read_bytes())
    mac_line = blob.index(b"\n--- ") + 5
    blob[mac_line] ^= 0x01  # the header MAC's first base64 character
    bad = tmp_path / "bad.age"
    bad.write_bytes(bytes(blob))
    out = tmp_path / "dec"
    res = run([agetool, "decrypt", "-i", keys[0].path, "-o", out], stdin=bad)
    assert_fails(res, "age header")
    assert_no_output(out)


def truncation_points(enc_len, start):
    """Cuts of an age file whose payload (from start) is chunk + 1 bytes of plaintext."""
    return {
        "empty": 0,
        "in-intro": 10,
        "in-header": start - 16 - 20,
        "before-nonce": start - 16,
        "in-nonce": start - 8,
        "no-payload": start,
        "in-first-chunk": start + 1000,
        "at-chunk-boundary": start + CHUNK + 16,
        "last-byte": enc_len - 1,
    }


@pytest.mark.parametrize("cut", ["empty", "in-intro", "in-header", "before-nonce", "in-nonce",
                                 "no-payload", "in-first-chunk", "at-chunk-boundary",
                                 "last-byte"])
def test_truncated(agetool, keys, data, tmp_path, cut):
    plain, _ = data(CHUNK + 1)
    enc = tmp_path / "enc.age"
    run([agetool, "encrypt", "-r", keys[0].recipient, "-o", enc], stdin=plain).ok()
    blob = enc.read_bytes()
    n = truncation_points(len(blob), payload_offset(blob))[cut]
    assert 0 <= n < len(blob)
    bad = tmp_path / "bad.age"
    bad.write_bytes(blob[:n])
    out = tmp_path / "dec"
    res = run([agetool, "decrypt", "-i", keys[0].path, "-o", out], stdin=bad)
    assert_fails(res, "age ")
    assert_no_output(out)
    # On stdout nothing is written before the chunk carrying it authenticates: at most the
    # whole chunks that did (here: none, or the first one when only the final chunk is cut).
    res = run([agetool, "decrypt", "-i", keys[0].path], stdin=bad, binary_out=True)
    assert_fails(res, "age ")
    assert res.out in (b"", plain.read_bytes()[:CHUNK]) and len(res.out) < CHUNK + 1


def test_truncated_big_never_short(agetool, age_bins, keys, tmp_path):
    """An age-made multi-chunk file cut at a chunk boundary (a valid-looking prefix)."""
    big = tmp_path / "plain"
    with open(big, "wb") as f:
        for _ in range(8):
            f.write(os.urandom(CHUNK))
    enc = tmp_path / "enc.age"
    run([age_bins["age"], "-e", "-r", keys[0].recipient, "-o", enc, big]).ok()
    blob = enc.read_bytes()
    start = payload_offset(blob)
    for chunks in (1, 4, 7):
        bad = tmp_path / f"bad{chunks}.age"
        bad.write_bytes(blob[:start + chunks * (CHUNK + 16)])
        out = tmp_path / f"dec{chunks}"
        res = run([agetool, "decrypt", "-i", keys[0].path, "-o", out], stdin=bad)
        assert_fails(res, "age payload")
        assert_no_output(out)


def test_bad_usage(agetool, tmp_path):
    assert_fails(run([agetool]), "usage")
    assert_fails(run([agetool, "frobnicate"]), "usage")
    assert_fails(run([agetool, "encrypt"]), "-p or")
    assert_fails(run([agetool, "encrypt", "-r", "age1nope"]), "recipient")
    assert_fails(run([agetool, "decrypt", "-i", tmp_path / "missing"]), "identity file")
    secret = tmp_path / "not-a-key.txt"
    secret.write_text("AGE-SECRET-KEY-1NOTAKEYATALLBUTITLOOKSSECRET\n")
    res = run([agetool, "decrypt", "-i", secret])
    assert_fails(res, "identity file")
    assert "NOTAKEY" not in res.err
