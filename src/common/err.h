/* err.h - the one error type and reporting path of cassette.
 *
 * Owns: cs_err, a caller-owned value holding an error class and one human
 * sentence. Functions return 0 on success or a negative CS_E_* code and fill
 * the cs_err they were given; callers add context on the way up with
 * cs_err_prefix ("restore ks.t: object 3f2a: hash mismatch"). Only the CLI
 * prints the final sentence, once, on one line.
 * A message speaks of a setting by its field name in braces: "{repo}",
 * "{keep_last}" (a field of an operation's request, or of the host; see
 * ops/request.h). Each front end renders those names its own way
 * (cs_err_render: the CLI as its flags, "--repo"; a JSON answer as the field
 * names), so the same error reads right wherever the request came from.
 * The field the error is about, when there is one, is also in e->field.
 * Must not: allocate, log, or exit. */
#ifndef CS_ERR_H
#define CS_ERR_H

#include <stddef.h>

enum cs_errcode {
    CS_OK = 0,
    CS_E_INVAL = -1,     /* bad input from the user or a caller */
    CS_E_NOMEM = -2,     /* allocation failed */
    CS_E_IO = -3,        /* file system or socket error */
    CS_E_NOTFOUND = -4,  /* something named does not exist */
    CS_E_PROTO = -5,     /* a peer spoke something we do not understand */
    CS_E_CORRUPT = -6,   /* stored data failed a check */
    CS_E_EXTERNAL = -7,  /* an external command or server reported failure */
    CS_E_EXISTS = -8,    /* something that must not exist does */
    CS_E_UNAVAIL = -9,   /* a server could not be reached */
    CS_E_NOKEY = -10,    /* no identity matches (age: the file is not addressed to our keys) */
    CS_E_CANCELED = -11, /* stopped on request (SIGINT, SIGTERM): see common/cancel.h */
    CS_E_USAGE = -12,    /* a bad option value or a missing required option (the CLI exits 2) */
    CS_E_LOCKED = -13,   /* a conflicting repository lock is still held (after --lock-wait) */
    CS_E_STALE = -14,    /* status --max-age: a node's newest complete backup is older */
};

#define CS_ERR_MSG_MAX 1024

#define CS_ERR_FIELD_MAX 40

typedef struct cs_err {
    int code;                  /* a CS_E_* value, or CS_OK */
    char msg[CS_ERR_MSG_MAX];  /* one sentence, no trailing newline; may name fields as {name} */
    char field[CS_ERR_FIELD_MAX]; /* the request or host field at fault, "" when none */
} cs_err;

/* Clear e (code CS_OK, empty message). */
void cs_err_clear(cs_err *e);

/* Set code and message; returns code so callers can `return cs_err_set(...)`.
 * e may be NULL (the error is then only returned). */
int cs_err_set(cs_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Name the field at fault (after cs_err_set; cs_err_set clears it).
 * Returns e->code. */
int cs_err_field(cs_err *e, const char *field);

/* How a front end names a field in its messages: "--repo" for the CLI;
 * NULL keeps "{name}" as it is (not a field it knows). */
typedef const char *(*cs_err_namer)(const char *field, void *arg);

/* The message of e with every {name} rendered by namer (NULL: the bare
 * field name, as a JSON front end says it), into out (cut at cap). */
void cs_err_render(const cs_err *e, cs_err_namer namer, void *arg, char *out, size_t cap);

/* Like cs_err_set, appending ": strerror(errnum)". */
int cs_err_sys(cs_err *e, int code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prepend context: "ctx: <old message>". Returns e->code. */
int cs_err_prefix(cs_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A short name for an error code ("I/O error", "not found", ...). */
const char *cs_err_name(int code);
/* The code cs_err_name gives that name to (a peer's error document), or
 * CS_E_EXTERNAL for a name it does not give. */
int cs_err_code_of(const char *name);

/* What kind of failure an error is, for metrics and alerts: "lock"
 * (CS_E_LOCKED), "crypto" (CS_E_NOKEY, or a message about decryption,
 * age, an identity), "cassandra" (a message about nodetool, CQL,
 * Cassandra, a snapshot), "storage" (a message about S3, storage, the
 * repository, an object, an upload, a bucket), "agent" (a message about
 * an agent); else by code: I/O, not found, corrupt, protocol, exists are
 * "storage", external and unavailable "cassandra", the rest "other". The
 * earliest of those words in msg (a message's context comes first) wins.
 * msg may be NULL. */
const char *cs_err_kind(int code, const char *msg);

/* Exit codes of the CLI (and of any front end that exits), as README.md's
 * table documents them. */
enum {
    CS_EXIT_OK = 0,
    CS_EXIT_ERROR = 1,       /* could not do it */
    CS_EXIT_USAGE = 2,       /* bad option, bad value, missing required option */
    CS_EXIT_DAMAGED = 3,     /* damage found: verify, or stored data that failed its check */
    CS_EXIT_LOCKED = 4,      /* a conflicting repository lock outlasted --lock-wait */
    CS_EXIT_NOKEY = 5,       /* encrypted: no identity given, or it does not match */
    CS_EXIT_STALE = 6,       /* status --max-age: a newest complete backup is older */
    CS_EXIT_INTERRUPTED = 130 /* SIGINT or SIGTERM (128 + SIGINT, the shell's habit) */
};

/* The exit code for an error code (CS_E_*). */
int cs_exit_code(int err);

#endif
