/* page.h - the server's status page.
 *
 * Owns: the status page's files (src/server/status.html, status.js,
 * status.css, embedded into the binary at build time by scripts/embed.sh),
 * the paths they are served at (/ and /status: the page; /status.js,
 * /status.css) and the headers they are served with: their Content-Type
 * and a Content-Security-Policy that lets the page load its own script and
 * style and call its own server, nothing inline and nothing from anywhere
 * else. The page needs no token; the data it shows comes from the JSON API
 * with the token its user gives (server/api.c routes both).
 * Must not: put data into the page on the server's side (the page reads
 * the API itself), or know the API's routes. */
#ifndef CS_SERVER_PAGE_H
#define CS_SERVER_PAGE_H

#include <stdbool.h>

#include "net/httpd.h"

/* The policy every file of the page is served with. */
#define CS_PAGE_CSP                                                                                            \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "      \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* Is path one of the page's files? */
bool cs_page_has(const char *path);
/* Answer 200 with the file at path (static text: nothing to free), its
 * Content-Type and CS_PAGE_CSP; false (ans untouched) when path is not
 * one of the page's. */
bool cs_page_answer(const char *path, cs_http_answer *ans);

#endif
