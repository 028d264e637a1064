/* page.c - the status page's files and their headers (see the header). */
#include "server/page.h"

#include <stddef.h>
#include <string.h>

#include "status_html.h" /* made by scripts/embed.sh: cs_status_html[], cs_status_js[], cs_status_css[] */

typedef struct page_file {
    const char *path;
    const char *type;
    const unsigned char *data;
    size_t len;
} page_file;

static const page_file files[] = {
    { "/", "text/html; charset=utf-8", cs_status_html, sizeof cs_status_html - 1 },
    { "/status", "text/html; charset=utf-8", cs_status_html, sizeof cs_status_html - 1 },
    { "/status.js", "text/javascript; charset=utf-8", cs_status_js, sizeof cs_status_js - 1 },
    { "/status.css", "text/css; charset=utf-8", cs_status_css, sizeof cs_status_css - 1 },
};

static const page_file *find(const char *path)
{
    for (size_t i = 0; path && i < sizeof files / sizeof files[0]; i++)
        if (!strcmp(files[i].path, path))
            return &files[i];
    return NULL;
}

bool cs_page_has(const char *path)
{
    return find(path) != NULL;
}

bool cs_page_answer(const char *path, cs_http_answer *ans)
{
    const page_file *f = find(path);
    if (!f)
        return false;
    cs_http_answer_text(ans, 200, f->type, (const char *)f->data, f->len, false);
    ans->csp = CS_PAGE_CSP;
    return true;
}
