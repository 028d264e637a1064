/* snapshot.h - a node's snapshots on disk (internal to ops/).
 *
 * Owns: finding snapshots by tag under the node's data directories
 * (<data dir>/<keyspace>/<table>/snapshots/<tag>) and the one way cassette
 * clears a snapshot: backup clears its own (and the ones killed backups
 * left), `snapshot clear` clears a coordinator's, both with
 * cs_snapshot_clear.
 * Must not: take snapshots (nodetool snapshot: ops/snapshot.c's op and
 * backup call it), or read the files inside a snapshot. */
#ifndef CS_OPS_SNAPSHOT_H
#define CS_OPS_SNAPSHOT_H

#include <stdbool.h>

#include "cassandra/nodetool.h"
#include "common/err.h"
#include "common/strlist.h"

/* Add to tags (once each) every snapshot tag under data_dirs that starts
 * with prefix ("" for all). */
void cs_snapshot_find_tags(const cs_strlist *data_dirs, const char *prefix, cs_strlist *tags);

/* Is a snapshot tagged tag under one of data_dirs? */
bool cs_snapshot_on_disk(const cs_strlist *data_dirs, const char *tag);
/* Does snapshot tag hold a table of keyspace (NULL: of any keyspace)? */
bool cs_snapshot_in_keyspace(const cs_strlist *data_dirs, const char *keyspace, const char *tag);

/* Clear snapshot tag of the node whose data directories and version
 * (system.local's release_version, may be NULL) these are; nt NULL: the
 * node is stopped, remove the directories only. *cleared: it was on disk
 * (a tag that is not there is no error). */
int cs_snapshot_clear(cs_nodetool *nt, const char *release, const cs_strlist *data_dirs, const char *tag,
                      bool *cleared, cs_err *e);

#endif
