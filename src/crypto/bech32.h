/* bech32.h - Bech32 strings (BIP 173) as age uses them for its keys.
 *
 * Owns: encoding bytes to Bech32 and back. Unlike BIP 173 there is no length
 * limit on the data part (age's spec says so). A string is all lowercase or
 * all uppercase; the checksum is always computed over the lowercase form.
 * Must not: know about age key types (age.c checks the human-readable part),
 * log, or keep copies of what it encodes: callers pass secret keys through
 * it, so every scratch buffer here is wiped before it is released. */
#ifndef CS_CRYPTO_BECH32_H
#define CS_CRYPTO_BECH32_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Append the Bech32 encoding of data with human-readable part hrp to out;
 * all uppercase when upper is nonzero. hrp must be 1..83 printable ASCII
 * characters (33..126) without uppercase letters; returns -1 otherwise.
 * The room for the whole string is reserved first, so out is never
 * reallocated (and a secret never copied) while the string is written. */
int bech32_encode(cs_buf *out, const char *hrp, const uint8_t *data, size_t n, int upper);

/* Decode s (len bytes, no NUL needed). On success returns 0, copies the
 * human-readable part as written (its case preserved) into hrp (NUL
 * terminated, at most hrp_cap - 1 characters) and the data bytes into data
 * (at most data_cap bytes, *data_len set). Returns -1 for anything that is
 * not a valid Bech32 string: mixed case, characters outside 33..126, no
 * separator, an empty human-readable part, a data part shorter than the
 * checksum, a bad checksum, non-zero padding bits, or too much data for the
 * caller's buffers. */
int bech32_decode(const char *s, size_t len, char *hrp, size_t hrp_cap, uint8_t *data,
                  size_t data_cap, size_t *data_len);

#endif
