/* azure.h - the Azure Blob Storage driver's settings and constructor.
 *
 * Owns: cs_az_opts, what an az://CONTAINER/PREFIX location needs besides
 * its URL, and cs_az_storage_new. Until the scheme registry opens drivers
 * by their scheme with their own options, callers (tests, tools) open an
 * Azure location here. Must not: hold or log a secret beyond the call
 * (the driver copies what it keeps and wipes the key when freed). */
#ifndef CS_STORAGE_AZURE_H
#define CS_STORAGE_AZURE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/storage.h"

/* Strings are borrowed for the duration of cs_az_storage_new; zero/NULL
 * means the default. Secrets are never logged or put into messages. */
typedef struct cs_az_opts {
    const char *account;     /* storage account name (required) */
    const char *key;         /* base64 account key: Shared Key; or else */
    const char *sas;         /* a SAS token ("sv=...&sig=...", a leading '?' is fine) */
    const char *endpoint;    /* Blob service URL; default https://ACCOUNT.blob.core.windows.net;
                                Azurite: http://127.0.0.1:10000/devstoreaccount1 (account in the
                                path); sovereign clouds: https://ACCOUNT.blob.core.chinacloudapi.cn */
    const char *ca_file;     /* PEM bundle instead of the system store */
    uint64_t block_size;     /* Put Block size and the largest single Put Blob, default 8 MiB
                                (at least 1 MiB; a blob has at most 50000 blocks) */
    unsigned concurrency;    /* block buffers of the whole storage handle (being filled or
                                in flight), default 4, at least 2 */
    unsigned retries;        /* attempts after the first, default 6 */
    long timeout_s;          /* connect timeout and stall limit, default 30 */
} cs_az_opts;

/* location is "az://CONTAINER" or "az://CONTAINER/PREFIX". The container
 * must exist unless create is true (then it is made when missing). One
 * request checks the endpoint, the credentials and the container. */
int cs_az_storage_new(const char *location, const cs_az_opts *opts, bool create, cs_storage **out, cs_err *e);

#endif
