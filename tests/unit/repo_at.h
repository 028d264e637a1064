/* repo_at.h - for unit tests: a repository in a local directory, its
 * storage opened through the registry (what ops/ does with --repo). */
#ifndef TEST_REPO_AT_H
#define TEST_REPO_AT_H

#include "repo/repo.h"
#include "storage/storage.h"

static inline int repo_open_at(const char *path, bool create, const cs_repo_opts *opts, cs_repo **out, cs_err *e)
{
    cs_storage *st = NULL;
    int rc = cs_storage_open(path, NULL, create, &st, e);
    return rc ? rc : cs_repo_open(st, create, opts, out, e);
}

static inline int repo_init_at(const char *path, const cs_repo_opts *opts, cs_repo **out, cs_err *e)
{
    cs_storage *st = NULL;
    int rc = cs_storage_open(path, NULL, true, &st, e);
    return rc ? rc : cs_repo_init(st, opts, out, e);
}

#endif
