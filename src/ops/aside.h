/* aside.h - the names restore gives to what it moves aside and to what it
 * downloads, inside the node's own directories; shared by restore, status
 * and cleanup (internal to ops/).
 *
 * "<dir>/.cassette-aside-<unique>": the node's previous files, moved there
 * by a replace restore and kept until `cassette cleanup --aside`.
 * "<dir>/.cassette-staging-<unique>": the downloads of a restore; one whose
 * process is gone was left by an interrupted restore and holds only copies.
 * unique = "<UTC time to the microsecond>-<pid>-<random>": two restores never
 * pick the same name, even within one second, and the pid says whether the
 * restore that made it still runs. Both live inside the directory they
 * serve, so they are on its file system (a mount point is never renamed, a
 * move is a rename) and Cassandra, which reads only its table directories,
 * its commitlog segments and its hint files, ignores them.
 * Before issue 17 they were "<dir>.cassette-aside-<time>" and
 * "<dir>.cassette-incoming" beside the directory: still found and removed. */
#ifndef CS_OPS_ASIDE_H
#define CS_OPS_ASIDE_H

#include <stdbool.h>

#include "cassandra/yaml.h"
#include "common/err.h"
#include "ops/host.h"
#include "repo/manifest.h"
#include "repo/repo.h"

#define CS_ASIDE_PREFIX ".cassette-aside-"
#define CS_STAGING_PREFIX ".cassette-staging-"
#define CS_LEGACY_ASIDE ".cassette-aside-"   /* after the directory's own name */
#define CS_LEGACY_INCOMING ".cassette-incoming"
#define CS_UNIQUE_MAX 64

/* A fresh unique part for this restore's names. */
void cs_restore_unique(char out[CS_UNIQUE_MAX]);

/* Is name (an aside or staging directory's) one whose restore process
 * still runs? Legacy names and names without a pid are not. */
bool cs_restore_name_in_use(const char *name);

/* Where a restore or a load downloads to: {staging_dir} (made; never a
 * link), else the node's first data directory (the same file system as
 * its tables). */
int cs_restore_staging_root(const cs_host *host, const cs_node_dirs *dirs, char **root, cs_err *e);
/* "<root>/.cassette-staging-<unique>", made now (empty, ours), after the
 * stale ones in root (left by restores whose process is gone) are removed. */
int cs_restore_make_stage(const char *root, const char *unique, char **out, cs_err *e);

/* The table filters restore and load share: is t wanted (no filter: every
 * table), and does the backup hold every keyspace and table named? */
bool cs_restore_table_wanted(const cs_strlist *keyspaces, const cs_strlist *tables, const cs_mtable *t);
int cs_restore_check_filters(const cs_manifest *m, const cs_strlist *keyspaces, const cs_strlist *tables, cs_err *e);
/* "backup X holds 3 nodes; say which with {source_host}: ID (ADDR), ..." */
int cs_restore_name_the_hosts(cs_repo *repo, const char *backup, const cs_strlist *hosts, cs_err *e);

#endif
