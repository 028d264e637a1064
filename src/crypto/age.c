/* age.c - age v1: keys, identity files, header, STREAM payload, armor.
 *
 * Layout of an age file (https://c2sp.org/age):
 *   age-encryption.org/v1\n
 *   -> TYPE ARG...\n BODY (base64, 64-column lines, last one short)\n   (1 or more)
 *   --- MAC\n                   HMAC-SHA-256 over everything up to "---"
 *   NONCE (16 bytes)            payload key = HKDF(file key, nonce, "payload")
 *   chunks of 64 KiB + 16       ChaCha20-Poly1305, nonce = 11-byte counter || last flag
 *
 * Chunks are independent given their index, so a write that brings many
 * whole chunks known not to be the last one has them sealed or opened a
 * batch at a time on a small pool of threads owned by the sink (see "parallel
 * batches" below); the output is the same bytes in the same order as one
 * chunk at a time, which small writes and small files still do.
 *
 * Header parsing is strict and independent of the identities: every stanza
 * of a type we know (X25519, scrypt, mlkem768x25519) must have exactly the
 * arguments and body the spec says, whoever it is addressed to; unknown
 * types are only checked for syntax and skipped. An X25519 share (also the
 * X25519 half of a hybrid encapsulation) that is a low-order point is
 * rejected: with it every identity's shared secret is zero. */
#include "crypto/age.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "crypto/aead.h"
#include "crypto/age_parallel.h"
#include "crypto/bech32.h"
#include "crypto/hkdf.h"

#define FILE_KEY_LEN 16
#define NONCE_LEN 16
#define TAG_LEN AEAD_TAG_LEN
#define ENC_CHUNK (AGE_CHUNK_SIZE + TAG_LEN)
#define KEY_LEN 32
#define X25519_LEN 32
#define SCRYPT_SALT_LEN 16
#define SCRYPT_R 8
#define SCRYPT_P 1
#define MAC_LEN 32
#define MAC_B64_LEN 43
#define WRAPPED_LEN (FILE_KEY_LEN + TAG_LEN)
#define HYBRID_ENC_LEN 1120 /* ML-KEM-768 ciphertext (1088) || X25519 share (32) */
#define BODY_COLUMNS 64
#define IDENTITY_FILE_MAX ((size_t)1 << 20)
#define ARMOR_COLUMNS 64
#define ARMOR_LINE_MAX 80

static const char VERSION_LINE[] = "age-encryption.org/v1";
static const char VERSION_PREFIX[] = "age-encryption.org/";
static const char X25519_INFO[] = "age-encryption.org/v1/X25519";
static const char SCRYPT_LABEL[] = "age-encryption.org/v1/scrypt";
static const char RECIPIENT_HRP[] = "age";
static const char IDENTITY_HRP[] = "AGE-SECRET-KEY-";
static const char ARMOR_BEGIN[] = "-----BEGIN AGE ENCRYPTED FILE-----";
static const char ARMOR_END[] = "-----END AGE ENCRYPTED FILE-----";

enum key_type { KEY_X25519 = 1, KEY_SCRYPT = 2 };

struct age_recipient {
    int type;
    uint8_t pk[X25519_LEN];
    char *pass; /* scrypt: the passphrase (wiped on free) */
    size_t pass_len;
    int work;
};

struct age_identity {
    int type;
    uint8_t sk[X25519_LEN];
    uint8_t pk[X25519_LEN];
    char *pass;
    size_t pass_len;
    int max_work;
};

static void sodium_ready(void)
{
    if (sodium_init() < 0) {
        fputs("cassette: cannot initialise libsodium\n", stderr);
        abort();
    }
}

void age_buf_wipe(cs_buf *b)
{
    if (b->data)
        sodium_memzero(b->data, b->cap);
    cs_buf_free(b);
}

static char *secret_dup(const char *s, size_t n)
{
    char *p = cs_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void secret_free(char *p, size_t n)
{
    if (p) {
        sodium_memzero(p, n + 1);
        free(p);
    }
}

/* Is p a point whose X25519 product with any scalar is zero? libsodium
 * refuses low-order points and zero results with -1. */
static int low_order(const uint8_t p[X25519_LEN])
{
    static const uint8_t scalar[X25519_LEN] = { 0x42, 0x17, 0x2a, 0x99, 0x01, 0x02, 0x03, 0x04,
                                                0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
                                                0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14,
                                                0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c };
    uint8_t q[X25519_LEN];
    int bad = crypto_scalarmult(q, scalar, p) != 0 || sodium_is_zero(q, sizeof q);
    sodium_memzero(q, sizeof q);
    return bad;
}

static int starts_with(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(s, prefix, k) == 0;
}

/* ---- recipients ---------------------------------------------------------- */

int age_recipient_parse(const char *s, age_recipient **out, cs_err *e)
{
    char hrp[16];
    uint8_t key[X25519_LEN];
    size_t n = 0, len = strlen(s);
    *out = NULL;
    sodium_ready();
    if (starts_with(s, len, "age1pq1"))
        return cs_err_set(e, CS_E_INVAL,
                          "post-quantum age recipients (age1pq1...) are not supported");
    if (bech32_decode(s, len, hrp, sizeof hrp, key, sizeof key, &n) != 0)
        return cs_err_set(e, CS_E_INVAL,
                          "invalid age recipient: not a Bech32 \"age1...\" public key");
    if (strcmp(hrp, RECIPIENT_HRP) != 0 || n != X25519_LEN)
        return cs_err_set(e, CS_E_INVAL,
                          "invalid age recipient: not an X25519 \"age1...\" public key");
    if (low_order(key))
        return cs_err_set(e, CS_E_INVAL, "invalid age recipient: not a usable X25519 key");
    age_recipient *r = cs_calloc(1, sizeof *r);
    r->type = KEY_X25519;
    memcpy(r->pk, key, sizeof key);
    *out = r;
    return 0;
}

int age_recipient_scrypt_new(const char *passphrase, int work_factor, age_recipient **out,
                             cs_err *e)
{
    *out = NULL;
    sodium_ready();
    if (work_factor == 0)
        work_factor = AGE_SCRYPT_DEFAULT_WORK;
    if (work_factor < 1 || work_factor > AGE_SCRYPT_WORK_LIMIT)
        return cs_err_set(e, CS_E_INVAL, "scrypt work factor %d is not between 1 and %d",
                          work_factor, AGE_SCRYPT_WORK_LIMIT);
    if (!passphrase || !passphrase[0])
        return cs_err_set(e, CS_E_INVAL, "the passphrase is empty");
    age_recipient *r = cs_calloc(1, sizeof *r);
    r->type = KEY_SCRYPT;
    r->pass_len = strlen(passphrase);
    r->pass = secret_dup(passphrase, r->pass_len);
    r->work = work_factor;
    *out = r;
    return 0;
}

int age_recipient_string(const age_recipient *r, cs_buf *out, cs_err *e)
{
    if (r->type != KEY_X25519)
        return cs_err_set(e, CS_E_INVAL, "a passphrase recipient has no public key");
    if (bech32_encode(out, RECIPIENT_HRP, r->pk, sizeof r->pk, 0) != 0)
        return cs_err_set(e, CS_E_INVAL, "cannot encode the recipient");
    return 0;
}

void age_recipient_free(age_recipient *r)
{
    if (!r)
        return;
    secret_free(r->pass, r->pass_len);
    sodium_memzero(r, sizeof *r);
    free(r);
}

/* ---- identities ---------------------------------------------------------- */

static age_identity *x25519_identity(const uint8_t sk[X25519_LEN])
{
    age_identity *id = cs_calloc(1, sizeof *id);
    id->type = KEY_X25519;
    memcpy(id->sk, sk, X25519_LEN);
    crypto_scalarmult_base(id->pk, id->sk);
    return id;
}

int age_identity_parse(const char *s, age_identity **out, cs_err *e)
{
    char hrp[24];
    uint8_t key[X25519_LEN];
    size_t n = 0, len = strlen(s);
    int rc = 0;
    *out = NULL;
    sodium_ready();
    if (starts_with(s, len, "AGE-SECRET-KEY-PQ-1")) {
        rc = cs_err_set(e, CS_E_INVAL,
                        "post-quantum age identities (AGE-SECRET-KEY-PQ-1...) are not supported");
        goto out;
    }
    if (starts_with(s, len, "AGE-PLUGIN-")) {
        rc = cs_err_set(e, CS_E_INVAL, "age plugin identities are not supported");
        goto out;
    }
    if (bech32_decode(s, len, hrp, sizeof hrp, key, sizeof key, &n) != 0) {
        rc = cs_err_set(e, CS_E_INVAL,
                        "invalid age identity: not a Bech32 \"AGE-SECRET-KEY-1...\" key");
        goto out;
    }
    if (strcmp(hrp, IDENTITY_HRP) != 0 || n != X25519_LEN) {
        rc = cs_err_set(e, CS_E_INVAL,
                        "invalid age identity: not an X25519 \"AGE-SECRET-KEY-1...\" key");
        goto out;
    }
    *out = x25519_identity(key);
out:
    sodium_memzero(key, sizeof key);
    return rc;
}

int age_identity_scrypt_new(const char *passphrase, int max_work_factor, age_identity **out,
                            cs_err *e)
{
    *out = NULL;
    sodium_ready();
    if (max_work_factor == 0)
        max_work_factor = AGE_SCRYPT_MAX_WORK;
    if (max_work_factor < 1 || max_work_factor > AGE_SCRYPT_WORK_LIMIT)
        return cs_err_set(e, CS_E_INVAL, "scrypt work factor limit %d is not between 1 and %d",
                          max_work_factor, AGE_SCRYPT_WORK_LIMIT);
    if (!passphrase || !passphrase[0])
        return cs_err_set(e, CS_E_INVAL, "the passphrase is empty");
    age_identity *id = cs_calloc(1, sizeof *id);
    id->type = KEY_SCRYPT;
    id->pass_len = strlen(passphrase);
    id->pass = secret_dup(passphrase, id->pass_len);
    id->max_work = max_work_factor;
    *out = id;
    return 0;
}

age_identity *age_keygen(void)
{
    uint8_t sk[X25519_LEN];
    sodium_ready();
    randombytes_buf(sk, sizeof sk);
    age_identity *id = x25519_identity(sk);
    sodium_memzero(sk, sizeof sk);
    return id;
}

int age_identity_secret_string(const age_identity *id, cs_buf *out, cs_err *e)
{
    if (id->type != KEY_X25519)
        return cs_err_set(e, CS_E_INVAL, "a passphrase identity has no secret key string");
    /* bech32_encode wants a lowercase hrp and uppercases the whole string. */
    if (bech32_encode(out, "age-secret-key-", id->sk, sizeof id->sk, 1) != 0)
        return cs_err_set(e, CS_E_INVAL, "cannot encode the identity");
    return 0;
}

int age_identity_public_string(const age_identity *id, cs_buf *out, cs_err *e)
{
    if (id->type != KEY_X25519)
        return cs_err_set(e, CS_E_INVAL, "a passphrase identity has no public key");
    if (bech32_encode(out, RECIPIENT_HRP, id->pk, sizeof id->pk, 0) != 0)
        return cs_err_set(e, CS_E_INVAL, "cannot encode the recipient");
    return 0;
}

int age_identity_recipient(const age_identity *id, age_recipient **out, cs_err *e)
{
    *out = NULL;
    if (id->type != KEY_X25519)
        return cs_err_set(e, CS_E_INVAL, "a passphrase identity has no public key");
    age_recipient *r = cs_calloc(1, sizeof *r);
    r->type = KEY_X25519;
    memcpy(r->pk, id->pk, sizeof r->pk);
    *out = r;
    return 0;
}

static age_identity *identity_dup(const age_identity *src)
{
    age_identity *id = cs_calloc(1, sizeof *id);
    memcpy(id, src, sizeof *id);
    if (src->pass)
        id->pass = secret_dup(src->pass, src->pass_len);
    return id;
}

void age_identity_free(age_identity *id)
{
    if (!id)
        return;
    secret_free(id->pass, id->pass_len);
    sodium_memzero(id, sizeof *id);
    free(id);
}

void age_identities_free(age_identity **ids, size_t n)
{
    if (!ids)
        return;
    for (size_t i = 0; i < n; i++)
        age_identity_free(ids[i]);
    free(ids);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int age_identities_parse(const char *text, size_t len, age_identity ***ids, size_t *n,
                         cs_err *e)
{
    age_identity **list = NULL;
    size_t count = 0, cap = 0, lineno = 0, pos = 0;
    char *line = NULL;
    size_t line_len = 0;
    int rc = 0;
    *ids = NULL;
    *n = 0;
    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - start) : len - pos;
        pos += l + (nl ? 1 : 0);
        lineno++;
        while (l > 0 && is_blank(start[l - 1]))
            l--;
        while (l > 0 && is_blank(start[0]))
            start++, l--;
        if (l == 0 || start[0] == '#')
            continue;
        if (memchr(start, '\0', l)) {
            rc = cs_err_set(e, CS_E_INVAL, "line %zu: invalid age identity: NUL byte", lineno);
            goto out;
        }
        line = secret_dup(start, l);
        line_len = l;
        age_identity *id = NULL;
        rc = age_identity_parse(line, &id, e);
        secret_free(line, line_len);
        line = NULL;
        if (rc) {
            cs_err_prefix(e, "line %zu", lineno);
            goto out;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 4;
            list = cs_realloc(list, cap * sizeof *list);
        }
        list[count++] = id;
    }
    if (count == 0) {
        rc = cs_err_set(e, CS_E_INVAL, "no identities found");
        goto out;
    }
    *ids = list;
    *n = count;
    list = NULL;
    count = 0;
out:
    secret_free(line, line_len);
    age_identities_free(list, count);
    return rc;
}

int age_identities_load(const char *path, age_identity ***ids, size_t *n, cs_err *e)
{
    char *text = NULL;
    size_t len = 0;
    int rc = 0;
    *ids = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = cs_err_sys(e, errno == ENOENT ? CS_E_NOTFOUND : CS_E_IO, errno,
                        "cannot open identity file %s", path);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot stat identity file %s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > IDENTITY_FILE_MAX) {
        rc = cs_err_set(e, CS_E_INVAL, "identity file %s is not a regular file of at most %zu bytes",
                        path, (size_t)IDENTITY_FILE_MAX);
        goto out;
    }
    text = cs_malloc(IDENTITY_FILE_MAX + 1);
    for (;;) {
        ssize_t r = read(fd, text + len, IDENTITY_FILE_MAX + 1 - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot read identity file %s", path);
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > IDENTITY_FILE_MAX) {
            rc = cs_err_set(e, CS_E_INVAL, "identity file %s is larger than %zu bytes", path,
                            (size_t)IDENTITY_FILE_MAX);
            goto out;
        }
    }
    rc = age_identities_parse(text, len, ids, n, e);
    if (rc)
        cs_err_prefix(e, "identity file %s", path);
out:
    if (text) {
        sodium_memzero(text, IDENTITY_FILE_MAX + 1);
        free(text);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- base64 ------------------------------------------------------------- */

static int b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Decode canonical unpadded base64 of exactly want bytes. */
static int b64_exact(const char *s, size_t n, uint8_t *out, size_t want)
{
    size_t got = 0;
    if (n != (want * 4 + 2) / 3)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!b64_char((unsigned char)s[i]))
            return -1;
    if (sodium_base642bin(out, want, s, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
        got != want)
        return -1;
    return 0;
}

/* Append canonical unpadded base64 of p to out. */
static void b64_add(cs_buf *out, const uint8_t *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    cs_buf_reserve(out, cap);
    sodium_bin2base64(out->data + out->len, cap, p, n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    out->len += strlen(out->data + out->len);
}

/* ---- header: writing ---------------------------------------------------- */

static const uint8_t ZERO_NONCE[AEAD_NONCE_LEN];

static void add_body(cs_buf *h, const uint8_t *body, size_t n)
{
    cs_buf b = CS_BUF_INIT;
    b64_add(&b, body, n);
    size_t off = 0;
    for (;;) {
        size_t take = b.len - off < BODY_COLUMNS ? b.len - off : BODY_COLUMNS;
        cs_buf_add(h, b.data + off, take);
        cs_buf_addch(h, '\n');
        off += take;
        if (take < BODY_COLUMNS)
            break;
    }
    cs_buf_free(&b);
}

static void wrap_key(uint8_t body[WRAPPED_LEN], const uint8_t fk[FILE_KEY_LEN],
                     const uint8_t key[KEY_LEN])
{
    aead_seal_once(key, body, fk, FILE_KEY_LEN, ZERO_NONCE);
}

static int x25519_wrap_key(uint8_t key[KEY_LEN], const uint8_t shared[X25519_LEN],
                           const uint8_t share[X25519_LEN], const uint8_t pk[X25519_LEN])
{
    uint8_t salt[2 * X25519_LEN];
    memcpy(salt, share, X25519_LEN);
    memcpy(salt + X25519_LEN, pk, X25519_LEN);
    return hkdf_sha256(key, KEY_LEN, shared, X25519_LEN, salt, sizeof salt,
                       (const uint8_t *)X25519_INFO, strlen(X25519_INFO));
}

static int scrypt_key(uint8_t key[KEY_LEN], const char *pass, size_t pass_len,
                      const uint8_t salt[SCRYPT_SALT_LEN], int work)
{
    uint8_t s[sizeof SCRYPT_LABEL - 1 + SCRYPT_SALT_LEN];
    memcpy(s, SCRYPT_LABEL, sizeof SCRYPT_LABEL - 1);
    memcpy(s + sizeof SCRYPT_LABEL - 1, salt, SCRYPT_SALT_LEN);
    return crypto_pwhash_scryptsalsa208sha256_ll((const uint8_t *)pass, pass_len, s, sizeof s,
                                                 (uint64_t)1 << work, SCRYPT_R, SCRYPT_P, key,
                                                 KEY_LEN);
}

static int stanza_x25519(cs_buf *h, const age_recipient *r, const uint8_t fk[FILE_KEY_LEN],
                         cs_err *e)
{
    uint8_t esk[X25519_LEN], share[X25519_LEN], shared[X25519_LEN], key[KEY_LEN];
    uint8_t body[WRAPPED_LEN];
    int rc = 0;
    randombytes_buf(esk, sizeof esk);
    crypto_scalarmult_base(share, esk);
    if (crypto_scalarmult(shared, esk, r->pk) != 0) {
        rc = cs_err_set(e, CS_E_INVAL, "recipient is not a usable X25519 key");
        goto out;
    }
    x25519_wrap_key(key, shared, share, r->pk);
    wrap_key(body, fk, key);
    cs_buf_addstr(h, "-> X25519 ");
    b64_add(h, share, sizeof share);
    cs_buf_addch(h, '\n');
    add_body(h, body, sizeof body);
out:
    sodium_memzero(esk, sizeof esk);
    sodium_memzero(shared, sizeof shared);
    sodium_memzero(key, sizeof key);
    return rc;
}

static int stanza_scrypt(cs_buf *h, const age_recipient *r, const uint8_t fk[FILE_KEY_LEN],
                         cs_err *e)
{
    uint8_t salt[SCRYPT_SALT_LEN], key[KEY_LEN], body[WRAPPED_LEN];
    int rc = 0;
    randombytes_buf(salt, sizeof salt);
    if (scrypt_key(key, r->pass, r->pass_len, salt, r->work) != 0) {
        rc = cs_err_set(e, CS_E_NOMEM, "scrypt with work factor %d failed", r->work);
        goto out;
    }
    wrap_key(body, fk, key);
    cs_buf_addstr(h, "-> scrypt ");
    b64_add(h, salt, sizeof salt);
    cs_buf_printf(h, " %d\n", r->work);
    add_body(h, body, sizeof body);
out:
    sodium_memzero(key, sizeof key);
    return rc;
}

static void header_mac(uint8_t mac[MAC_LEN], const uint8_t fk[FILE_KEY_LEN], const void *h,
                       size_t n)
{
    uint8_t key[KEY_LEN];
    hkdf_sha256(key, sizeof key, fk, FILE_KEY_LEN, NULL, 0, (const uint8_t *)"header", 6);
    crypto_auth_hmacsha256(mac, h, n, key);
    sodium_memzero(key, sizeof key);
}

static void payload_key(uint8_t key[KEY_LEN], const uint8_t fk[FILE_KEY_LEN],
                        const uint8_t nonce[NONCE_LEN])
{
    hkdf_sha256(key, KEY_LEN, fk, FILE_KEY_LEN, nonce, NONCE_LEN, (const uint8_t *)"payload", 7);
}

static void chunk_nonce(uint8_t n[AEAD_NONCE_LEN], uint64_t counter, int last)
{
    memset(n, 0, AEAD_NONCE_LEN);
    for (int i = 0; i < 8; i++)
        n[10 - i] = (uint8_t)(counter >> (8 * i));
    n[11] = last ? 1 : 0;
}

/* ---- parallel batches ---------------------------------------------------
 *
 * When a write brings at least PAR_MIN whole chunks that are known not to be
 * the last one (more input follows each of them), up to PAR_BATCH of them are
 * sealed (or opened) at once: chunk i of a batch gets nonce counter + i with
 * the last flag clear, exactly what the serial loop would give it. The
 * workers read the payload key and their chunks' input, and each writes only
 * its own slots of the batch (output chunk, ok flag); nothing else is shared.
 * The pool is made on the sink's first batch, the batch buffer (PAR_BATCH
 * chunks, 2 MiB) on the first batch that needs it (the encryptor seals into
 * the room its next sink lends, when it lends some: io/sink.h), and both are
 * kept until the sink is freed, so memory stays bounded and small files
 * never start a thread. A chunk that may be the last one (the
 * held-back chunk of the encryptor until close, the last full chunk of the
 * decryptor's input so far) is never part of a batch. */

#define PAR_BATCH 32 /* chunks per batch: 2 MiB of plaintext */
#define PAR_MIN 4    /* fewer whole chunks in a write: the serial path */

typedef struct par_state {
    int threads;    /* age_pool_threads() when the sink was made; 1: serial */
    age_pool *pool; /* made on the first batch */
    uint8_t *buf;   /* PAR_BATCH output chunks (the decryptor's: plaintext), or NULL */
    /* One keyed cipher context per pool slot: [0] is the caller's, made
     * with the sink and used by the serial path too; the workers' ones are
     * made with the pool. */
    aead *ctx[AGE_POOL_MAX_THREADS];
} par_state;

/* Can a batch of k chunks starting at chunk counter run now? Makes the pool
 * on first use; a pool that cannot start leaves the sink serial for good. */
static int par_ready(par_state *ps, size_t k, uint64_t counter, const uint8_t key[KEY_LEN])
{
    if (ps->threads < 2 || k < PAR_MIN || counter >= UINT64_MAX - PAR_BATCH)
        return 0;
    if (!ps->pool) {
        ps->pool = age_pool_new(ps->threads);
        if (!ps->pool) {
            ps->threads = 1;
            return 0;
        }
        for (int i = 1; i < ps->threads; i++)
            ps->ctx[i] = aead_new(key);
    }
    return 1;
}

/* The batch buffer (size bytes), made on first use. */
static uint8_t *par_buf(par_state *ps, size_t size)
{
    if (!ps->buf)
        ps->buf = cs_malloc(size);
    return ps->buf;
}

static void par_free(par_state *ps, size_t size, int secret)
{
    age_pool_free(ps->pool);
    ps->pool = NULL;
    for (int i = 0; i < AGE_POOL_MAX_THREADS; i++) {
        aead_free(ps->ctx[i]);
        ps->ctx[i] = NULL;
    }
    if (ps->buf) {
        if (secret)
            sodium_memzero(ps->buf, size);
        free(ps->buf);
        ps->buf = NULL;
    }
}

/* The plaintext of a chunk to seal: up to SEG_MAX pieces, AGE_CHUNK_SIZE
 * bytes in all (the encryptor takes its input as it comes, without
 * gathering it into one buffer). */
#define SEG_MAX 8

typedef struct chunk_in {
    const uint8_t *p[SEG_MAX];
    size_t n[SEG_MAX];
    size_t k;
} chunk_in;

/* One batch: chunk i is in[i] (ENC_CHUNK bytes to open) or enc[i] (to
 * seal) and goes to out + i * ENC_CHUNK (sealed) or out + i *
 * AGE_CHUNK_SIZE (opened). */
typedef struct batch {
    aead *const *ctx; /* par_state.ctx: one per pool slot */
    uint64_t counter; /* chunk 0's index in the stream */
    const uint8_t *const *in;
    const chunk_in *enc;
    uint8_t *out;
    uint8_t ok[PAR_BATCH]; /* opening: chunk i authenticated */
} batch;

static void seal_one(void *arg, size_t i, int slot)
{
    batch *b = arg;
    uint8_t nonce[AEAD_NONCE_LEN];
    chunk_nonce(nonce, b->counter + i, 0);
    aead_seal_gather(b->ctx[slot], b->out + i * ENC_CHUNK, b->enc[i].p, b->enc[i].n, b->enc[i].k, nonce);
}

static void open_one(void *arg, size_t i, int slot)
{
    batch *b = arg;
    uint8_t nonce[AEAD_NONCE_LEN];
    chunk_nonce(nonce, b->counter + i, 0);
    b->ok[i] = aead_open(b->ctx[slot], b->out + i * AGE_CHUNK_SIZE, b->in[i], ENC_CHUNK, nonce) ==
               0;
}

/* ---- encrypting filter -------------------------------------------------- */

typedef struct enc_filter {
    cs_sink base;
    cs_sink *next;
    uint8_t key[KEY_LEN];
    uint64_t counter;
    uint8_t *buf; /* plaintext of the chunk being filled */
    size_t len;
    uint8_t *out; /* one sealed chunk */
    int failed;
    par_state par;
} enc_filter;

/* Seal one chunk (n bytes of p) into f->out and write it to next. */
static int enc_seal_copy(enc_filter *f, const uint8_t *p, size_t n, int last, cs_err *e)
{
    uint8_t nonce[AEAD_NONCE_LEN];
    if (f->counter == UINT64_MAX)
        return cs_err_set(e, CS_E_INVAL, "age: too many chunks");
    chunk_nonce(nonce, f->counter, last);
    aead_seal(f->par.ctx[0], f->out, p, n, nonce);
    f->counter++;
    return cs_sink_write(f->next, f->out, n + TAG_LEN, e);
}

/* Seal one chunk into the room next lends when the sealed chunk fits in it
 * (no copy), else through f->out. */
static int enc_seal(enc_filter *f, const uint8_t *p, size_t n, int last, cs_err *e)
{
    uint8_t nonce[AEAD_NONCE_LEN];
    uint8_t *room;
    size_t got;
    if (f->counter == UINT64_MAX)
        return cs_err_set(e, CS_E_INVAL, "age: too many chunks");
    int rc = cs_sink_reserve(f->next, n + TAG_LEN, &room, &got, e);
    if (rc)
        return rc;
    if (got < n + TAG_LEN) {
        rc = room ? cs_sink_commit(f->next, 0, e) : 0;
        return rc ? rc : enc_seal_copy(f, p, n, last, e);
    }
    chunk_nonce(nonce, f->counter, last);
    aead_seal(f->par.ctx[0], room, p, n, nonce);
    f->counter++;
    return cs_sink_commit(f->next, got, e);
}

/* A gathered write's pieces, as they are consumed. */
typedef struct cursor {
    const cs_iov *v;
    size_t nv;
    size_t i;    /* the current piece */
    size_t off;  /* its bytes consumed */
    size_t left; /* bytes of all pieces not consumed */
} cursor;

static void cur_init(cursor *c, const cs_iov *v, size_t nv)
{
    *c = (cursor){ v, nv, 0, 0, 0 };
    for (size_t i = 0; i < nv; i++)
        c->left += v[i].n;
}

/* The next piece of at most len bytes (len <= c->left), consumed. */
static const uint8_t *cur_next(cursor *c, size_t len, size_t *n)
{
    while (c->off == c->v[c->i].n) {
        c->i++;
        c->off = 0;
    }
    const uint8_t *p = c->v[c->i].p + c->off;
    *n = c->v[c->i].n - c->off < len ? c->v[c->i].n - c->off : len;
    c->off += *n;
    c->left -= *n;
    return p;
}

/* Append the next len bytes as pieces of in; 0 (nothing consumed) when
 * that takes more than in has room for. */
static int cur_take(cursor *c, size_t len, chunk_in *in)
{
    cursor t = *c;
    size_t k = in->k;
    for (size_t n = 0; len > 0; len -= n) {
        if (k == SEG_MAX)
            return 0;
        in->p[k] = cur_next(&t, len, &n);
        in->n[k++] = n;
    }
    *c = t;
    in->k = k;
    return 1;
}

/* Copy the next len bytes to dst. */
static void cur_copy(cursor *c, uint8_t *dst, size_t len)
{
    while (len > 0) {
        size_t n;
        const uint8_t *p = cur_next(c, len, &n);
        memcpy(dst, p, n);
        dst += n;
        len -= n;
    }
}

/* Up to k whole chunks: f->buf's bytes and then c's. A chunk in too many
 * pieces is gathered into f->buf when it is the first, else ends the
 * batch. Returns how many (>= 1); f->buf is empty after (its bytes stay
 * there until sealed). */
static size_t enc_gather(enc_filter *f, cursor *c, chunk_in *in, size_t k)
{
    size_t m = 0;
    for (; m < k; m++) {
        in[m].k = 0;
        if (m == 0 && f->len > 0) {
            in[0].p[0] = f->buf;
            in[0].n[0] = f->len;
            in[0].k = 1;
        }
        size_t need = AGE_CHUNK_SIZE - (m == 0 ? f->len : 0);
        if (cur_take(c, need, &in[m]))
            continue;
        if (m > 0)
            break;
        cur_copy(c, f->buf + f->len, need);
        in[0].p[0] = f->buf;
        in[0].n[0] = AGE_CHUNK_SIZE;
        in[0].k = 1;
    }
    f->len = 0;
    return m;
}

/* Seal m (>= 1) whole non-final chunks in[0..m) into out, on the pool when
 * there are several. */
static void enc_seal_run(enc_filter *f, const chunk_in *in, size_t m, uint8_t *out)
{
    batch b;
    b.ctx = f->par.ctx;
    b.counter = f->counter;
    b.in = NULL;
    b.enc = in;
    b.out = out;
    if (m > 1 && f->par.pool)
        age_pool_run(f->par.pool, seal_one, &b, m);
    else
        for (size_t i = 0; i < m; i++)
            seal_one(&b, i, 0);
    f->counter += m;
}

/* Seal the m whole chunks in[0..m), every one with more data after it.
 * They go into the room next lends, as many as fit at a time; the one that
 * straddles the end of its room (a part's end) through f->out; all of them
 * through the batch buffer when next lends none. */
static int enc_chunks(enc_filter *f, const chunk_in *in, size_t m, cs_err *e)
{
    if (f->counter >= UINT64_MAX - m)
        return cs_err_set(e, CS_E_INVAL, "age: too many chunks");
    for (size_t done = 0, step = 0; done < m; done += step) {
        uint8_t *room, *out;
        size_t got;
        int rc = cs_sink_reserve(f->next, (m - done) * ENC_CHUNK, &room, &got, e);
        if (rc)
            return rc;
        step = got / ENC_CHUNK;
        if (step > 0) {
            enc_seal_run(f, in + done, step, room);
            rc = cs_sink_commit(f->next, step * ENC_CHUNK, e);
        } else {
            rc = room ? cs_sink_commit(f->next, 0, e) : 0;
            step = room ? 1 : m - done;
            out = step == 1 ? f->out : par_buf(&f->par, (size_t)PAR_BATCH * ENC_CHUNK);
            if (!rc)
                enc_seal_run(f, in + done, step, out);
            if (!rc)
                rc = cs_sink_write(f->next, out, step * ENC_CHUNK, e);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* A full chunk is sealed only when more data follows it (the last chunk,
 * full or not, carries the final flag): what is left, a chunk or less,
 * waits in f->buf. Several whole chunks are sealed as a batch. */
static int enc_writev(cs_sink *s, const cs_iov *v, size_t nv, cs_err *e)
{
    enc_filter *f = (enc_filter *)s;
    chunk_in in[PAR_BATCH];
    cursor c;
    int rc = 0;
    if (f->failed)
        return cs_err_set(e, f->failed, "age: encryption already failed");
    cur_init(&c, v, nv);
    while (rc == 0 && f->len + c.left > AGE_CHUNK_SIZE) {
        size_t k = (f->len + c.left - 1) / AGE_CHUNK_SIZE;
        k = k > PAR_BATCH ? PAR_BATCH : k;
        if (!par_ready(&f->par, k, f->counter, f->key))
            k = 1;
        rc = enc_chunks(f, in, enc_gather(f, &c, in, k), e);
    }
    if (rc) {
        f->failed = rc;
        return rc;
    }
    size_t rest = c.left;
    cur_copy(&c, f->buf + f->len, rest);
    f->len += rest;
    return 0;
}

static int enc_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    cs_iov v = { p, n };
    return enc_writev(s, &v, 1, e);
}

static int enc_close(cs_sink *s, cs_err *e)
{
    enc_filter *f = (enc_filter *)s;
    int rc = 0;
    if (f->failed)
        return cs_err_set(e, f->failed, "age: encryption already failed");
    if (f->buf) {
        rc = enc_seal(f, f->buf, f->len, 1, e);
        if (rc)
            goto out;
        sodium_memzero(f->buf, AGE_CHUNK_SIZE);
        free(f->buf);
        f->buf = NULL;
        f->len = 0;
        sodium_memzero(f->key, sizeof f->key);
    }
    rc = cs_sink_close(f->next, e);
out:
    if (rc)
        f->failed = rc;
    return rc;
}

static void enc_free(cs_sink *s)
{
    enc_filter *f = (enc_filter *)s;
    par_free(&f->par, (size_t)PAR_BATCH * ENC_CHUNK, 0);
    cs_sink_free(f->next);
    if (f->buf) {
        sodium_memzero(f->buf, AGE_CHUNK_SIZE);
        free(f->buf);
    }
    free(f->out);
    sodium_memzero(f, sizeof *f);
    free(f);
}

static const cs_sink_ops enc_ops = { enc_write, enc_close, enc_free };
static const cs_sink_opt_ops enc_opt = { .writev = enc_writev };

/* A fresh file key fk and the header for the n recipients into h. */
static int make_header(age_recipient *const *rcpts, size_t n, uint8_t fk[FILE_KEY_LEN], cs_buf *h,
                       cs_err *e)
{
    uint8_t mac[MAC_LEN], nonce[NONCE_LEN];
    if (n == 0)
        return cs_err_set(e, CS_E_INVAL, "age: no recipients");
    for (size_t i = 0; i < n; i++)
        if (rcpts[i]->type == KEY_SCRYPT && n > 1)
            return cs_err_set(e, CS_E_INVAL,
                              "age: a passphrase cannot be combined with other recipients");
    randombytes_buf(fk, FILE_KEY_LEN);
    cs_buf_addstr(h, VERSION_LINE);
    cs_buf_addch(h, '\n');
    for (size_t i = 0; i < n; i++) {
        int rc = rcpts[i]->type == KEY_SCRYPT ? stanza_scrypt(h, rcpts[i], fk, e)
                                              : stanza_x25519(h, rcpts[i], fk, e);
        if (rc)
            return rc;
    }
    cs_buf_addstr(h, "---");
    header_mac(mac, fk, h->data, h->len);
    cs_buf_addch(h, ' ');
    b64_add(h, mac, sizeof mac);
    cs_buf_addch(h, '\n');
    randombytes_buf(nonce, sizeof nonce);
    cs_buf_add(h, nonce, sizeof nonce);
    return 0;
}

static int hdr_err(cs_err *e, const char *what);
_Static_assert(FILE_KEY_LEN == AGE_FILE_KEY_LEN, "one file key length");

/* Is h a header as make_header writes it, with the MAC fk gives? Its end
 * is "\n--- " MAC(43 base64) "\n" NONCE(16); the MAC covers up to "---". */
static int check_sealed_header(const uint8_t fk[FILE_KEY_LEN], const cs_buf *h, cs_err *e)
{
    size_t tail = 1 + MAC_B64_LEN + 1 + NONCE_LEN; /* " " MAC "\n" NONCE */
    size_t vlen = sizeof VERSION_LINE - 1;
    if (h->len < vlen + 1 + 4 + tail || memcmp(h->data, VERSION_LINE, vlen) || h->data[vlen] != '\n')
        return hdr_err(e, "the saved header is not an age header");
    size_t mac_off = h->len - tail;
    const char *t = h->data + mac_off;
    if (memcmp(t - 4, "\n---", 4) || t[0] != ' ' || t[1 + MAC_B64_LEN] != '\n')
        return hdr_err(e, "the saved header is not an age header");
    uint8_t want[MAC_LEN], got[MAC_LEN];
    header_mac(want, fk, h->data, mac_off);
    if (b64_exact(t + 1, MAC_B64_LEN, got, MAC_LEN) != 0 || sodium_memcmp(want, got, MAC_LEN) != 0)
        return hdr_err(e, "the saved file key does not match the saved header");
    return 0;
}

cs_sink *age_encrypt_new_seal(cs_sink *next, age_recipient *const *rcpts, size_t n, age_seal *seal,
                              cs_err *e)
{
    uint8_t fk[FILE_KEY_LEN];
    cs_buf h = CS_BUF_INIT;
    enc_filter *f = NULL;
    int rc = 0;
    sodium_ready();
    if (seal && seal->header.len) {
        memcpy(fk, seal->file_key, FILE_KEY_LEN);
        rc = check_sealed_header(fk, &seal->header, e);
        if (!rc)
            cs_buf_add(&h, seal->header.data, seal->header.len);
    } else {
        rc = make_header(rcpts, n, fk, &h, e);
        if (!rc && seal) {
            memcpy(seal->file_key, fk, FILE_KEY_LEN);
            cs_buf_reset(&seal->header);
            cs_buf_add(&seal->header, h.data, h.len);
        }
    }
    if (rc)
        goto out;
    f = cs_calloc(1, sizeof *f);
    f->base.ops = &enc_ops;
    f->base.opt = &enc_opt;
    f->next = next;
    next = NULL;
    payload_key(f->key, fk, (const uint8_t *)h.data + h.len - NONCE_LEN);
    f->par.ctx[0] = aead_new(f->key);
    f->buf = cs_malloc(AGE_CHUNK_SIZE);
    f->out = cs_malloc(ENC_CHUNK);
    f->par.threads = age_pool_threads();
    rc = cs_sink_write(f->next, h.data, h.len, e);
out:
    sodium_memzero(fk, sizeof fk);
    cs_buf_free(&h);
    cs_sink_free(next);
    if (rc && f) {
        enc_free(&f->base);
        f = NULL;
    }
    return f ? &f->base : NULL;
}

cs_sink *age_encrypt_new(cs_sink *next, age_recipient *const *rcpts, size_t n, cs_err *e)
{
    return age_encrypt_new_seal(next, rcpts, n, NULL, e);
}

void age_seal_wipe(age_seal *seal)
{
    if (!seal)
        return;
    sodium_memzero(seal->file_key, sizeof seal->file_key);
    cs_buf_free(&seal->header);
}

/* ---- header: parsing ---------------------------------------------------- */

enum stanza_type { ST_X25519 = 1, ST_SCRYPT, ST_HYBRID };

typedef struct stanza {
    int type;
    uint8_t share[X25519_LEN]; /* X25519: ephemeral share */
    uint8_t salt[SCRYPT_SALT_LEN];
    int work;
    uint8_t body[WRAPPED_LEN];
} stanza;

typedef struct header {
    stanza *st; /* the stanzas of known types */
    size_t n;
    size_t total;   /* all stanzas, unknown ones included */
    int has_scrypt;
    size_t mac_off; /* bytes covered by the MAC: up to and including "---" */
    uint8_t mac[MAC_LEN];
} header;

static int hdr_err(cs_err *e, const char *what)
{
    return cs_err_set(e, CS_E_CORRUPT, "age header: %s", what);
}

/* The next LF-terminated line at *pos; its length excludes the LF. */
static int next_line(const char *h, size_t len, size_t *pos, const char **line, size_t *n)
{
    if (*pos >= len)
        return -1;
    const char *nl = memchr(h + *pos, '\n', len - *pos);
    if (!nl)
        return -1;
    *line = h + *pos;
    *n = (size_t)(nl - *line);
    *pos += *n + 1;
    return 0;
}

typedef struct arg {
    const char *p;
    size_t n;
} arg;

static int arg_is(const arg *a, const char *s)
{
    return a->n == strlen(s) && memcmp(a->p, s, a->n) == 0;
}

/* Strict decimal without leading zeros or signs, at most 2 digits. */
static int parse_work(const arg *a, int *out)
{
    if (a->n < 1 || a->n > 2 || a->p[0] < '1' || a->p[0] > '9')
        return -1;
    int v = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->p[i] < '0' || a->p[i] > '9')
            return -1;
        v = v * 10 + (a->p[i] - '0');
    }
    *out = v;
    return 0;
}

static int check_stanza(const arg *args, size_t nargs, const cs_buf *body, stanza *st,
                        cs_err *e)
{
    memset(st, 0, sizeof *st);
    if (arg_is(&args[0], "X25519")) {
        if (nargs != 2)
            return hdr_err(e, "X25519 stanza: wrong number of arguments");
        if (b64_exact(args[1].p, args[1].n, st->share, X25519_LEN) != 0)
            return hdr_err(e, "X25519 stanza: the share is not 32 bytes of canonical base64");
        if (body->len != WRAPPED_LEN)
            return hdr_err(e, "X25519 stanza: the wrapped file key is not 32 bytes");
        if (low_order(st->share))
            return hdr_err(e, "X25519 stanza: the share is a low-order point");
        st->type = ST_X25519;
    } else if (arg_is(&args[0], "scrypt")) {
        if (nargs != 3)
            return hdr_err(e, "scrypt stanza: wrong number of arguments");
        if (b64_exact(args[1].p, args[1].n, st->salt, SCRYPT_SALT_LEN) != 0)
            return hdr_err(e, "scrypt stanza: the salt is not 16 bytes of canonical base64");
        if (parse_work(&args[2], &st->work) != 0 || st->work > AGE_SCRYPT_WORK_LIMIT)
            return hdr_err(e, "scrypt stanza: invalid work factor");
        if (body->len != WRAPPED_LEN)
            return hdr_err(e, "scrypt stanza: the wrapped file key is not 32 bytes");
        st->type = ST_SCRYPT;
    } else if (arg_is(&args[0], "mlkem768x25519")) {
        if (nargs != 2)
            return hdr_err(e, "mlkem768x25519 stanza: wrong number of arguments");
        uint8_t *enc = cs_malloc(HYBRID_ENC_LEN);
        int bad_enc = b64_exact(args[1].p, args[1].n, enc, HYBRID_ENC_LEN) != 0;
        int bad_share = !bad_enc && low_order(enc + HYBRID_ENC_LEN - X25519_LEN);
        free(enc);
        if (bad_enc)
            return hdr_err(e, "mlkem768x25519 stanza: the encapsulated key is not 1120 bytes "
                              "of canonical base64");
        if (body->len != WRAPPED_LEN)
            return hdr_err(e, "mlkem768x25519 stanza: the wrapped file key is not 32 bytes");
        if (bad_share)
            return hdr_err(e, "mlkem768x25519 stanza: the X25519 share is a low-order point");
        st->type = ST_HYBRID; /* well-formed, but we cannot unwrap it */
    }
    if (st->type)
        memcpy(st->body, body->data, WRAPPED_LEN);
    return 0;
}

/* A stanza starting at the argument line (without "-> "), then its body. */
static int parse_stanza(const char *h, size_t len, size_t *pos, const char *argline,
                        size_t argn, header *hd, cs_err *e)
{
    arg *args = NULL;
    size_t nargs = 0, cap = 0;
    cs_buf body = CS_BUF_INIT;
    int rc = 0;
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < argn && argline[i] != ' ') {
            unsigned char c = (unsigned char)argline[i];
            if (c < 0x21 || c > 0x7e) {
                rc = hdr_err(e, "stanza argument with an invalid character");
                goto out;
            }
            i++;
        }
        if (i == start) {
            rc = hdr_err(e, "empty stanza argument");
            goto out;
        }
        if (nargs == cap) {
            cap = cap ? cap * 2 : 4;
            args = cs_realloc(args, cap * sizeof *args);
        }
        args[nargs].p = argline + start;
        args[nargs].n = i - start;
        nargs++;
        if (i == argn)
            break;
        i++; /* the space */
    }
    for (;;) {
        const char *line = NULL;
        size_t n = 0;
        uint8_t dec[BODY_COLUMNS / 4 * 3];
        size_t got = 0;
        if (next_line(h, len, pos, &line, &n) != 0 || n > BODY_COLUMNS) {
            rc = hdr_err(e, n > BODY_COLUMNS ? "stanza body line longer than 64 columns"
                                             : "stanza body does not end with a short line");
            goto out;
        }
        for (size_t k = 0; k < n; k++)
            if (!b64_char((unsigned char)line[k])) {
                rc = hdr_err(e, "stanza body does not end with a short line of base64");
                goto out;
            }
        if (sodium_base642bin(dec, sizeof dec, line, n, NULL, &got, NULL,
                              sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0) {
            rc = hdr_err(e, "stanza body is not canonical base64");
            goto out;
        }
        cs_buf_add(&body, dec, got);
        if (n < BODY_COLUMNS)
            break;
    }
    stanza st;
    rc = check_stanza(args, nargs, &body, &st, e);
    if (rc)
        goto out;
    hd->total++;
    if (st.type == ST_SCRYPT)
        hd->has_scrypt = 1;
    if (st.type) {
        hd->st = cs_realloc(hd->st, (hd->n + 1) * sizeof *hd->st);
        hd->st[hd->n++] = st;
    }
out:
    free(args);
    cs_buf_free(&body);
    return rc;
}

static void header_free(header *hd)
{
    free(hd->st);
    memset(hd, 0, sizeof *hd);
}

/* Parse a complete header (ending with the MAC line's LF). */
static int parse_header(const char *h, size_t len, header *hd, cs_err *e)
{
    size_t pos = 0;
    const char *line = NULL;
    size_t n = 0;
    int rc = 0;
    memset(hd, 0, sizeof *hd);
    if (next_line(h, len, &pos, &line, &n) != 0 || n != strlen(VERSION_LINE) ||
        memcmp(line, VERSION_LINE, n) != 0) {
        rc = hdr_err(e, "not an age v1 file");
        goto out;
    }
    for (;;) {
        if (next_line(h, len, &pos, &line, &n) != 0) {
            rc = hdr_err(e, "truncated");
            goto out;
        }
        if (n >= 3 && memcmp(line, "---", 3) == 0) {
            if (hd->total == 0) {
                rc = hdr_err(e, "no recipient stanzas");
                goto out;
            }
            if (n != 4 + MAC_B64_LEN || line[3] != ' ' ||
                b64_exact(line + 4, MAC_B64_LEN, hd->mac, MAC_LEN) != 0) {
                rc = hdr_err(e, "malformed MAC line");
                goto out;
            }
            if (pos != len) {
                rc = hdr_err(e, "data after the MAC line");
                goto out;
            }
            hd->mac_off = (size_t)(line - h) + 3;
            break;
        }
        if (n < 3 || memcmp(line, "-> ", 3) != 0) {
            rc = hdr_err(e, "malformed line (expected a recipient stanza or the MAC)");
            goto out;
        }
        rc = parse_stanza(h, len, &pos, line + 3, n - 3, hd, e);
        if (rc)
            goto out;
    }
    if (hd->has_scrypt && hd->total > 1) {
        rc = hdr_err(e, "an scrypt stanza must be the only stanza of a file");
        goto out;
    }
out:
    if (rc)
        header_free(hd);
    return rc;
}

/* Find the file key among the stanzas: 1 found, 0 none, <0 error. */
static int unwrap(const header *hd, age_identity *const *ids, size_t nids,
                  uint8_t fk[FILE_KEY_LEN], cs_err *e)
{
    uint8_t shared[X25519_LEN], key[KEY_LEN];
    int rc = 0;
    for (size_t i = 0; i < nids && rc == 0; i++) {
        const age_identity *id = ids[i];
        for (size_t k = 0; k < hd->n && rc == 0; k++) {
            const stanza *st = &hd->st[k];
            if (id->type == KEY_X25519 && st->type == ST_X25519) {
                if (crypto_scalarmult(shared, id->sk, st->share) != 0 ||
                    sodium_is_zero(shared, sizeof shared)) {
                    rc = hdr_err(e, "X25519 stanza: the shared secret is zero");
                    break;
                }
                x25519_wrap_key(key, shared, st->share, id->pk);
            } else if (id->type == KEY_SCRYPT && st->type == ST_SCRYPT) {
                if (st->work > id->max_work) {
                    rc = cs_err_set(e, CS_E_CORRUPT,
                                    "age header: scrypt work factor %d is above the limit %d",
                                    st->work, id->max_work);
                    break;
                }
                if (scrypt_key(key, id->pass, id->pass_len, st->salt, st->work) != 0) {
                    rc = cs_err_set(e, CS_E_NOMEM, "age header: scrypt with work factor %d failed",
                                    st->work);
                    break;
                }
            } else {
                continue;
            }
            if (aead_open_once(key, fk, st->body, WRAPPED_LEN, ZERO_NONCE) == 0)
                rc = 1;
        }
    }
    sodium_memzero(shared, sizeof shared);
    sodium_memzero(key, sizeof key);
    return rc;
}

/* ---- decrypting filter --------------------------------------------------- */

enum dec_state { D_HEADER, D_NONCE, D_PAYLOAD };
enum armor_state { A_NONE, A_PRE, A_BEGIN, A_BODY, A_POST };

typedef struct dec_filter {
    cs_sink base;
    cs_sink *next;
    age_identity **ids;
    size_t nids;
    int failed;    /* the error code once anything failed */
    int mode;      /* -1 undecided, 0 binary, 1 armored */
    int state;
    cs_buf hdr;    /* header bytes until the MAC line's LF */
    size_t line_start;
    size_t lines;
    uint8_t fk[FILE_KEY_LEN];
    uint8_t nonce[NONCE_LEN];
    size_t nonce_len;
    uint8_t key[KEY_LEN];
    uint64_t counter;
    uint8_t *cbuf; /* one encrypted chunk */
    size_t clen;
    uint8_t *pbuf; /* its plaintext */
    par_state par;
    /* armor */
    int astate;
    int afinal; /* the last base64 line was seen */
    char aline[ARMOR_LINE_MAX];
    size_t alen;
} dec_filter;

static int pay_err(cs_err *e, const char *what)
{
    return cs_err_set(e, CS_E_CORRUPT, "age payload: %s", what);
}

static int dec_header_done(dec_filter *d, cs_err *e)
{
    header hd;
    uint8_t mac[MAC_LEN];
    int rc = parse_header(d->hdr.data, d->hdr.len, &hd, e);
    if (rc)
        return rc;
    rc = unwrap(&hd, d->ids, d->nids, d->fk, e);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        rc = cs_err_set(e, CS_E_NOKEY, "no identity matches");
        goto out;
    }
    header_mac(mac, d->fk, d->hdr.data, hd.mac_off);
    if (crypto_verify_32(mac, hd.mac) != 0) {
        rc = hdr_err(e, "MAC mismatch (the header was modified, or the file key is wrong)");
        goto out;
    }
    rc = 0;
    d->state = D_NONCE;
    cs_buf_free(&d->hdr);
out:
    header_free(&hd);
    return rc;
}

/* An authentic chunk that ends the stream wrongly (a final chunk with data
 * after it, a non-final chunk at the end): its plaintext is released like
 * every authenticated chunk, then the stream fails and next is never
 * closed. */
static int dec_push_then_fail(dec_filter *d, size_t m, const char *what, cs_err *e)
{
    int rc = cs_sink_write(d->next, d->pbuf, m, e);
    return rc ? rc : pay_err(e, what);
}

/* Open one chunk into pbuf and push it. more: input continues after it. */
static int dec_chunk(dec_filter *d, const uint8_t *c, size_t n, int more, cs_err *e)
{
    uint8_t nonce[AEAD_NONCE_LEN];
    aead *ctx = d->par.ctx[0];
    if (n < TAG_LEN)
        return pay_err(e, "truncated chunk");
    if (d->counter == UINT64_MAX)
        return pay_err(e, "too many chunks");
    size_t m = n - TAG_LEN;
    if (more) {
        chunk_nonce(nonce, d->counter, 0);
        if (aead_open(ctx, d->pbuf, c, n, nonce) != 0) {
            chunk_nonce(nonce, d->counter, 1);
            if (aead_open(ctx, d->pbuf, c, n, nonce) == 0)
                return dec_push_then_fail(d, m, "data after the final chunk", e);
            return cs_err_set(e, CS_E_CORRUPT, "age payload: chunk %llu failed authentication",
                              (unsigned long long)d->counter);
        }
    } else {
        chunk_nonce(nonce, d->counter, 1);
        if (aead_open(ctx, d->pbuf, c, n, nonce) != 0) {
            chunk_nonce(nonce, d->counter, 0);
            if (n == ENC_CHUNK && aead_open(ctx, d->pbuf, c, n, nonce) == 0)
                return dec_push_then_fail(d, m, "truncated (the file ends without a final chunk)",
                                          e);
            return cs_err_set(e, CS_E_CORRUPT,
                              "age payload: final chunk %llu failed authentication",
                              (unsigned long long)d->counter);
        }
        if (m == 0 && d->counter > 0)
            return pay_err(e, "the final chunk is empty");
    }
    d->counter++;
    return cs_sink_write(d->next, d->pbuf, m, e);
}

/* Open k whole chunks at once: the held chunk first when held, then whole
 * chunks of p; every one of them has more input after it. The plaintext of
 * the authenticated chunks before the first one that fails goes to next in
 * order; then that chunk is opened again the serial way, which reports it
 * exactly as the serial path does (a final chunk with data after it is
 * released, then the stream fails). Nothing after it is released. */
static int dec_batch(dec_filter *d, int held, const uint8_t *p, size_t k, cs_err *e)
{
    const uint8_t *in[PAR_BATCH];
    batch b;
    int rc = 0;
    b.ctx = d->par.ctx;
    b.counter = d->counter;
    b.in = in;
    b.enc = NULL;
    b.out = par_buf(&d->par, (size_t)PAR_BATCH * AGE_CHUNK_SIZE);
    for (size_t i = 0; i < k; i++)
        in[i] = held && i == 0 ? d->cbuf : p + (i - (held ? 1 : 0)) * ENC_CHUNK;
    age_pool_run(d->par.pool, open_one, &b, k);
    size_t good = 0;
    while (good < k && b.ok[good])
        good++;
    d->counter += good;
    if (good > 0)
        rc = cs_sink_write(d->next, b.out, good * AGE_CHUNK_SIZE, e);
    for (size_t i = good; i < k && rc == 0; i++)
        rc = dec_chunk(d, in[i], ENC_CHUNK, 1, e);
    return rc;
}

/* Consume binary age bytes. */
static int dec_binary(dec_filter *d, const uint8_t *p, size_t n, cs_err *e)
{
    int rc = 0;
    while (n > 0) {
        if (d->state == D_HEADER) {
            const uint8_t *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl - p) + 1 : n;
            if (take > AGE_HEADER_MAX - d->hdr.len)
                return cs_err_set(e, CS_E_CORRUPT, "age header: longer than %d bytes",
                                  AGE_HEADER_MAX);
            cs_buf_add(&d->hdr, p, take);
            p += take;
            n -= take;
            if (d->lines == 0) {
                size_t k = d->hdr.len < sizeof VERSION_PREFIX - 1 ? d->hdr.len
                                                                   : sizeof VERSION_PREFIX - 1;
                if (memcmp(d->hdr.data, VERSION_PREFIX, k) != 0)
                    return hdr_err(e, "not an age file");
            }
            if (!nl)
                continue;
            const char *line = d->hdr.data + d->line_start;
            size_t ll = d->hdr.len - d->line_start - 1;
            d->line_start = d->hdr.len;
            if (d->lines++ == 0) {
                if (ll != strlen(VERSION_LINE) || memcmp(line, VERSION_LINE, ll) != 0)
                    return hdr_err(e, "unsupported age format version");
            } else if (ll >= 3 && memcmp(line, "---", 3) == 0) {
                rc = dec_header_done(d, e);
                if (rc)
                    return rc;
            }
        } else if (d->state == D_NONCE) {
            size_t take = NONCE_LEN - d->nonce_len < n ? NONCE_LEN - d->nonce_len : n;
            memcpy(d->nonce + d->nonce_len, p, take);
            d->nonce_len += take;
            p += take;
            n -= take;
            if (d->nonce_len == NONCE_LEN) {
                payload_key(d->key, d->fk, d->nonce);
                d->par.ctx[0] = aead_new(d->key);
                sodium_memzero(d->fk, sizeof d->fk);
                d->cbuf = cs_malloc(ENC_CHUNK);
                d->pbuf = cs_malloc(AGE_CHUNK_SIZE);
                d->state = D_PAYLOAD;
            }
        } else {
            /* A full chunk is opened once more input shows it is not the
             * last one; the last one is opened at close. Many whole
             * chunks with input after each: a batch. */
            if (d->clen == ENC_CHUNK || d->clen == 0) {
                int held = d->clen == ENC_CHUNK;
                size_t k = (size_t)held + (n - 1) / ENC_CHUNK;
                if (k > PAR_BATCH)
                    k = PAR_BATCH;
                if (par_ready(&d->par, k, d->counter, d->key)) {
                    size_t used = (k - (size_t)held) * ENC_CHUNK;
                    rc = dec_batch(d, held, p, k, e);
                    if (rc)
                        return rc;
                    d->clen = 0;
                    p += used;
                    n -= used;
                    continue;
                }
            }
            if (d->clen == ENC_CHUNK) {
                rc = dec_chunk(d, d->cbuf, d->clen, 1, e);
                if (rc)
                    return rc;
                d->clen = 0;
            }
            if (d->clen == 0 && n > ENC_CHUNK) {
                rc = dec_chunk(d, p, ENC_CHUNK, 1, e);
                if (rc)
                    return rc;
                p += ENC_CHUNK;
                n -= ENC_CHUNK;
                continue;
            }
            size_t take = ENC_CHUNK - d->clen < n ? ENC_CHUNK - d->clen : n;
            memcpy(d->cbuf + d->clen, p, take);
            d->clen += take;
            p += take;
            n -= take;
        }
    }
    return 0;
}

static int dec_binary_end(dec_filter *d, cs_err *e)
{
    if (d->state == D_HEADER)
        return hdr_err(e, d->hdr.len == 0 ? "empty file" : "truncated");
    if (d->state == D_NONCE)
        return hdr_err(e, "truncated (no payload nonce)");
    if (d->clen == 0)
        return pay_err(e, d->counter == 0 ? "no chunks"
                                          : "truncated (the file ends without a final chunk)");
    return dec_chunk(d, d->cbuf, d->clen, 0, e);
}

static int armor_err(cs_err *e, const char *what)
{
    return cs_err_set(e, CS_E_CORRUPT, "age armor: %s", what);
}

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int armor_line(dec_filter *d, cs_err *e)
{
    const char *l = d->aline;
    size_t n = d->alen;
    uint8_t dec[ARMOR_COLUMNS / 4 * 3];
    size_t got = 0;
    d->alen = 0;
    if (n > 0 && l[n - 1] == '\r')
        n--;
    if (d->astate == A_BEGIN) {
        if (n != strlen(ARMOR_BEGIN) || memcmp(l, ARMOR_BEGIN, n) != 0)
            return armor_err(e, "not an age file (no binary header, no BEGIN line)");
        d->astate = A_BODY;
        return 0;
    }
    if (n == strlen(ARMOR_END) && memcmp(l, ARMOR_END, n) == 0) {
        d->astate = A_POST;
        return 0;
    }
    if (d->afinal)
        return armor_err(e, "a line after the last base64 line");
    if (n == 0)
        return armor_err(e, "empty line");
    if (n > ARMOR_COLUMNS)
        return armor_err(e, "line longer than 64 columns");
    if (n < ARMOR_COLUMNS || l[n - 1] == '=')
        d->afinal = 1;
    if (n % 4 != 0)
        return armor_err(e, "base64 line length is not a multiple of 4");
    for (size_t i = 0; i < n; i++)
        if (!b64_char((unsigned char)l[i]) && !(l[i] == '=' && i + 2 >= n))
            return armor_err(e, "invalid base64 character");
    if (sodium_base642bin(dec, sizeof dec, l, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return armor_err(e, "base64 is not canonical");
    return dec_binary(d, dec, got, e);
}

static int dec_armor(dec_filter *d, const uint8_t *p, size_t n, cs_err *e)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (d->astate == A_PRE) {
            if (is_space(c))
                continue;
            d->astate = A_BEGIN;
        }
        if (d->astate == A_POST) {
            if (!is_space(c))
                return armor_err(e, "data after the END line");
            continue;
        }
        if (c == '\n') {
            int rc = armor_line(d, e);
            if (rc)
                return rc;
            continue;
        }
        if (d->alen == ARMOR_LINE_MAX)
            return armor_err(e, "line longer than 64 columns");
        d->aline[d->alen++] = (char)c;
    }
    return 0;
}

static int dec_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    dec_filter *d = (dec_filter *)s;
    int rc;
    if (d->failed)
        return cs_err_set(e, d->failed, "age: decryption already failed");
    if (d->mode < 0) {
        /* Binary age files start with "age-encryption.org/"; anything else
         * is read as ASCII armor (which may start with blanks). */
        d->mode = p[0] == 'a' ? 0 : 1;
        d->astate = d->mode ? A_PRE : A_NONE;
    }
    rc = d->mode ? dec_armor(d, p, n, e) : dec_binary(d, p, n, e);
    if (rc)
        d->failed = rc;
    return rc;
}

static int dec_close(cs_sink *s, cs_err *e)
{
    dec_filter *d = (dec_filter *)s;
    int rc = 0;
    if (d->failed)
        return cs_err_set(e, d->failed, "age: decryption already failed");
    if (d->mode == 1) {
        if (d->alen > 0 && (d->astate == A_BEGIN || d->astate == A_BODY)) {
            rc = armor_line(d, e); /* a last line without LF */
            if (rc)
                goto out;
        }
        if (d->astate != A_POST) {
            rc = armor_err(e, d->astate == A_PRE ? "no BEGIN line" : "no END line");
            goto out;
        }
    }
    rc = dec_binary_end(d, e);
    if (rc)
        goto out;
    rc = cs_sink_close(d->next, e);
out:
    if (rc)
        d->failed = rc;
    return rc;
}

static void dec_free(cs_sink *s)
{
    dec_filter *d = (dec_filter *)s;
    par_free(&d->par, (size_t)PAR_BATCH * AGE_CHUNK_SIZE, 1);
    cs_sink_free(d->next);
    age_identities_free(d->ids, d->nids);
    cs_buf_free(&d->hdr);
    free(d->cbuf);
    if (d->pbuf) {
        sodium_memzero(d->pbuf, AGE_CHUNK_SIZE);
        free(d->pbuf);
    }
    sodium_memzero(d, sizeof *d);
    free(d);
}

static const cs_sink_ops dec_ops = { dec_write, dec_close, dec_free };

cs_sink *age_decrypt_new(cs_sink *next, age_identity *const *ids, size_t n, cs_err *e)
{
    (void)e;
    sodium_ready();
    dec_filter *d = cs_calloc(1, sizeof *d);
    d->base.ops = &dec_ops;
    d->next = next;
    d->mode = -1;
    d->state = D_HEADER;
    d->par.threads = age_pool_threads();
    if (n > 0) {
        d->ids = cs_calloc(n, sizeof *d->ids);
        for (size_t i = 0; i < n; i++)
            d->ids[i] = identity_dup(ids[i]);
        d->nids = n;
    }
    return &d->base;
}
