/* bech32.c - Bech32 (BIP 173) without the length limit, for age keys. */
#include "crypto/bech32.h"

#include <string.h>

static const char CHARSET[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

#define HRP_MAX 83
#define CHECKSUM_LEN 6

/* One step of the BCH checksum over a 5-bit value. */
static uint32_t polymod_step(uint32_t chk, uint32_t v)
{
    static const uint32_t gen[5] = { 0x3b6a57b2u, 0x26508e6du, 0x1ea119fau, 0x3d4233ddu,
                                     0x2a1462b3u };
    uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffffu) << 5) ^ v;
    for (int i = 0; i < 5; i++)
        if ((top >> i) & 1u)
            chk ^= gen[i];
    return chk;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static char upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* The checksum state after the expanded (lowercase) human-readable part. */
static uint32_t hrp_polymod(const char *hrp, size_t n)
{
    uint32_t chk = 1;
    for (size_t i = 0; i < n; i++)
        chk = polymod_step(chk, (uint32_t)(unsigned char)lower(hrp[i]) >> 5);
    chk = polymod_step(chk, 0);
    for (size_t i = 0; i < n; i++)
        chk = polymod_step(chk, (uint32_t)(unsigned char)lower(hrp[i]) & 31u);
    return chk;
}

int bech32_encode(cs_buf *out, const char *hrp, const uint8_t *data, size_t n, int up)
{
    size_t hlen = strlen(hrp);
    if (hlen < 1 || hlen > HRP_MAX)
        return -1;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)hrp[i];
        if (c < 33 || c > 126 || (c >= 'A' && c <= 'Z'))
            return -1;
    }
    if (n > (SIZE_MAX - HRP_MAX - 1 - CHECKSUM_LEN) / 2)
        return -1;
    size_t groups = (n * 8 + 4) / 5;
    cs_buf_reserve(out, hlen + 1 + groups + CHECKSUM_LEN);

    for (size_t i = 0; i < hlen; i++)
        cs_buf_addch(out, up ? upper(hrp[i]) : hrp[i]);
    cs_buf_addch(out, '1');

    uint32_t chk = hrp_polymod(hrp, hlen);
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = ((acc << 8) | data[i]) & 0xfffu;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            uint32_t v = (acc >> bits) & 31u;
            chk = polymod_step(chk, v);
            cs_buf_addch(out, up ? upper(CHARSET[v]) : CHARSET[v]);
        }
    }
    if (bits > 0) {
        uint32_t v = (acc << (5 - bits)) & 31u;
        chk = polymod_step(chk, v);
        cs_buf_addch(out, up ? upper(CHARSET[v]) : CHARSET[v]);
    }
    for (int i = 0; i < CHECKSUM_LEN; i++)
        chk = polymod_step(chk, 0);
    chk ^= 1;
    for (int i = 0; i < CHECKSUM_LEN; i++) {
        uint32_t v = (chk >> (5 * (CHECKSUM_LEN - 1 - i))) & 31u;
        cs_buf_addch(out, up ? upper(CHARSET[v]) : CHARSET[v]);
    }
    return 0;
}

/* The 5-bit value of a (lowercased) Bech32 character, or -1. */
static int charset_value(char c)
{
    const char *p = memchr(CHARSET, lower(c), sizeof CHARSET - 1);
    return p ? (int)(p - CHARSET) : -1;
}

int bech32_decode(const char *s, size_t len, char *hrp, size_t hrp_cap, uint8_t *data,
                  size_t data_cap, size_t *data_len)
{
    int has_lower = 0, has_upper = 0;
    size_t sep = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126)
            return -1;
        if (c >= 'a' && c <= 'z')
            has_lower = 1;
        if (c >= 'A' && c <= 'Z')
            has_upper = 1;
        if (c == '1')
            sep = i;
    }
    if (has_lower && has_upper)
        return -1;
    if (sep == len || sep < 1 || len - sep - 1 < CHECKSUM_LEN || sep >= hrp_cap)
        return -1;

    uint32_t chk = hrp_polymod(s, sep);
    size_t ndata = len - sep - 1 - CHECKSUM_LEN;
    for (size_t i = sep + 1; i < len; i++) {
        int v = charset_value(s[i]);
        if (v < 0)
            return -1;
        chk = polymod_step(chk, (uint32_t)v);
    }
    if (chk != 1)
        return -1;

    uint32_t acc = 0;
    unsigned bits = 0;
    size_t out = 0;
    int rc = 0;
    for (size_t i = 0; i < ndata; i++) {
        acc = ((acc << 5) | (uint32_t)charset_value(s[sep + 1 + i])) & 0xfffu;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (out == data_cap) {
                rc = -1;
                goto out;
            }
            data[out++] = (uint8_t)(acc >> bits);
        }
    }
    /* Padding: fewer than 5 bits left over, all zero. */
    if (bits >= 5 || (acc & ((1u << bits) - 1u)) != 0) {
        rc = -1;
        goto out;
    }
    memcpy(hrp, s, sep);
    hrp[sep] = '\0';
    *data_len = out;
out:
    if (rc)
        memset(data, 0, out);
    return rc;
}
