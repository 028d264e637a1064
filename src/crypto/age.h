/* age.h - the age v1 file encryption format (https://c2sp.org/age), natively.
 *
 * Owns: age keys and passphrases (recipients encrypt, identities decrypt),
 * key generation, identity files as age-keygen writes them, and two
 * streaming filters of the byte pipeline (io/sink.h): an encryptor that
 * writes an age file and a decryptor that reads one, binary or ASCII-armored.
 * Recipient types: X25519 ("age1...") and scrypt passphrases. Post-quantum
 * hybrid keys (age1pq1..., AGE-SECRET-KEY-PQ-1...) are refused with a clear
 * error; their stanzas in a file are checked for well-formedness and skipped.
 *
 * Memory is constant: the encryptor holds one 64 KiB chunk, the decryptor one
 * chunk plus a header of at most AGE_HEADER_MAX bytes. The decryptor pushes
 * plaintext downstream only after the chunk carrying it is authenticated, and
 * closes the next sink only after the final chunk is verified: a truncated or
 * tampered file is an error, never a short or altered plaintext.
 *
 * A write that brings at least 4 whole chunks with more input after them
 * has them sealed or opened up to 32 at a time on min(CPUs, 4) threads (the
 * caller's included; the environment variable CASSETTE_AGE_THREADS=1..4
 * overrides the count, 1 is serial): the output is the same, byte for byte
 * and in the same order, and the decryptor still releases only authenticated
 * chunks, in order, nothing after a chunk that fails. Such a sink then also
 * holds its worker threads, and a 2 MiB batch buffer (the encryptor's only
 * when its next sink lends no room, see below), until it is freed; smaller
 * writes never start a thread.
 *
 * The encryptor copies little (io/sink.h's optional operations): it seals
 * each chunk straight into the room its next sink lends (reserve/commit:
 * the S3 part, the Azure block), and takes gathered writes, sealing a
 * chunk from the pieces that hold it (up to 8; more are gathered first).
 * Only what waits for more input (less than a chunk, or the last chunk
 * until close) is copied into its chunk buffer.
 *
 * Errors (for callers that must tell them apart):
 *   CS_E_CORRUPT "age header: ..."  the header is malformed or its MAC is wrong
 *   CS_E_CORRUPT "age payload: ..." the encrypted payload does not verify
 *   CS_E_CORRUPT "age armor: ..."   the ASCII armor is malformed
 *   CS_E_NOKEY   "no identity matches"
 *   CS_E_INVAL   bad keys, passphrases or arguments from the caller
 *
 * Must not: log, print, or put secret material (keys, passphrases, file keys)
 * in error messages; every copy of a secret is wiped before its memory is
 * released. Does not read passphrases from a terminal (the CLI does). */
#ifndef CS_CRYPTO_AGE_H
#define CS_CRYPTO_AGE_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "io/sink.h"

#define AGE_CHUNK_SIZE 65536             /* plaintext bytes per STREAM chunk */
#define AGE_HEADER_MAX (256 * 1024)      /* longest header the decryptor accepts */
#define AGE_SCRYPT_DEFAULT_WORK 18       /* log2(N) when encrypting with a passphrase */
#define AGE_SCRYPT_MAX_WORK 22           /* default ceiling when decrypting */
#define AGE_SCRYPT_WORK_LIMIT 30         /* highest work factor accepted at all */

typedef struct age_recipient age_recipient;
typedef struct age_identity age_identity;

/* ---- recipients (encrypt to) -------------------------------------------- */

/* Parse an X25519 recipient "age1..." (Bech32, lowercase). Leading and
 * trailing blanks are not accepted. *out is the caller's to free. */
int age_recipient_parse(const char *s, age_recipient **out, cs_err *e);

/* A passphrase recipient with work factor log2(N) (1..AGE_SCRYPT_WORK_LIMIT;
 * 0 means AGE_SCRYPT_DEFAULT_WORK). The passphrase (non-empty, NUL
 * terminated) is copied. Such a recipient must be the only one of a file. */
int age_recipient_scrypt_new(const char *passphrase, int work_factor, age_recipient **out,
                             cs_err *e);

/* Append the "age1..." form of an X25519 recipient to out (CS_E_INVAL for a
 * passphrase recipient). */
int age_recipient_string(const age_recipient *r, cs_buf *out, cs_err *e);

void age_recipient_free(age_recipient *r); /* NULL is fine; wipes secrets */

/* ---- identities (decrypt with) ------------------------------------------ */

/* Parse an X25519 identity "AGE-SECRET-KEY-1..." (Bech32, uppercase). */
int age_identity_parse(const char *s, age_identity **out, cs_err *e);

/* A passphrase identity. Files whose scrypt work factor is above
 * max_work_factor (0 means AGE_SCRYPT_MAX_WORK; at most
 * AGE_SCRYPT_WORK_LIMIT) fail with a header error instead of costing minutes
 * and gigabytes (work factor 22 needs 4 GiB of memory). */
int age_identity_scrypt_new(const char *passphrase, int max_work_factor, age_identity **out,
                            cs_err *e);

/* A fresh random X25519 identity (age-keygen). Never fails. */
age_identity *age_keygen(void);

/* Append "AGE-SECRET-KEY-1..." to out (CS_E_INVAL for a passphrase
 * identity). out then holds a secret: release it with age_buf_wipe. */
int age_identity_secret_string(const age_identity *id, cs_buf *out, cs_err *e);

/* Append the matching recipient "age1..." to out (CS_E_INVAL for a
 * passphrase identity). */
int age_identity_public_string(const age_identity *id, cs_buf *out, cs_err *e);

/* The recipient of an X25519 identity (CS_E_INVAL for a passphrase). */
int age_identity_recipient(const age_identity *id, age_recipient **out, cs_err *e);

void age_identity_free(age_identity *id); /* NULL is fine; wipes secrets */

/* Parse an identity file's text as age-keygen writes it: one
 * AGE-SECRET-KEY-1... per line, lines starting with '#' and blank lines
 * ignored, surrounding blanks and a CR before the LF tolerated. At least one
 * identity is required. On success *ids is an array of *n identities owned
 * by the caller (age_identities_free). Errors name the line, never its
 * content. */
int age_identities_parse(const char *text, size_t len, age_identity ***ids, size_t *n,
                         cs_err *e);

/* Read path (at most 1 MiB) and parse it as above; the file's bytes are
 * wiped after parsing. */
int age_identities_load(const char *path, age_identity ***ids, size_t *n, cs_err *e);

void age_identities_free(age_identity **ids, size_t n); /* NULL is fine */

/* Wipe a buffer's bytes, then free it (for buffers that held a secret). */
void age_buf_wipe(cs_buf *b);

/* ---- streams ------------------------------------------------------------- */

/* An encrypting filter: what is written to it leaves into next as an age
 * file for the n recipients (n >= 1; a passphrase recipient must be alone).
 * The header is built and written to next here: a fresh random file key,
 * one stanza per recipient, the header MAC, then the payload nonce. The
 * recipients are not kept: the caller may free them right after. Takes
 * ownership of next, also on failure (then next is freed and NULL is
 * returned). Close seals the final chunk (an empty input gives one empty
 * final chunk) and then closes next. */
cs_sink *age_encrypt_new(cs_sink *next, age_recipient *const *rcpts, size_t n, cs_err *e);

/* What makes an age file's bytes reproducible: its file key and its header
 * (stanzas, MAC and payload nonce). Given the same seal and the same
 * plaintext, age_encrypt_new_seal writes the same bytes, so an interrupted
 * upload can be regenerated and checked against what was stored. The file
 * key is SECRET (it opens the file): keep a seal only where the plaintext
 * is (the node), never log it, wipe it with age_seal_wipe. */
#define AGE_FILE_KEY_LEN 16
typedef struct age_seal {
    unsigned char file_key[AGE_FILE_KEY_LEN];
    cs_buf header; /* empty: no seal yet */
} age_seal;

/* Like age_encrypt_new, with the seal: an empty seal (header.len == 0) is
 * filled with the fresh file key and header this file gets; a filled one is
 * reused (the recipients are then not used: the header already holds their
 * stanzas), after checking that its header is an age header whose MAC the
 * file key gives (CS_E_CORRUPT "age header: ..." otherwise). */
cs_sink *age_encrypt_new_seal(cs_sink *next, age_recipient *const *rcpts, size_t n, age_seal *seal,
                              cs_err *e);

/* Wipe the file key and free the header (the seal is empty after). */
void age_seal_wipe(age_seal *seal);

/* A decrypting filter: age file bytes written to it in pieces of any size,
 * binary or armored ("-----BEGIN AGE ENCRYPTED FILE-----", told apart by the
 * first byte), leave into next as plaintext, each 64 KiB chunk once it is
 * authenticated. The identities are copied (n may be 0: every file then
 * fails with CS_E_NOKEY once its header parses). The header is checked as
 * soon as it is complete: a write fails with CS_E_NOKEY when no identity
 * unwraps the file key, or CS_E_CORRUPT "age header: ..." when it is
 * malformed or its MAC does not match. Close fails with CS_E_CORRUPT when
 * the input ended before a valid final chunk (truncation) and closes next
 * only after the whole file verified. After any failure the filter stays
 * failed. Takes ownership of next, also on failure. */
cs_sink *age_decrypt_new(cs_sink *next, age_identity *const *ids, size_t n, cs_err *e);

#endif
