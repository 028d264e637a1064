/* snapshot.h - a node's snapshots on disk (internal to ops/).
 *
 * Owns: finding snapshots by tag under the node's data directories
 * (<data dir>/<keyspace>/<table>/snapshots/<tag>), when each was taken
 * (for the cleanup of old ones), and the one way cassette
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

/* Sort the snapshot tags under data_dirs that start with prefix into old
 * (taken before `before`, epoch seconds) and young (the rest), each tag
 * once, by name. A tag is as young as its youngest table's snapshot, so a
 * snapshot being taken is never old. Ephemeral snapshots (Cassandra's own,
 * for repairs; it clears them) are left out. */
void cs_snapshot_find_old(const cs_strlist *data_dirs, const char *prefix, double before, cs_strlist *old,
                          cs_strlist *young);
/* The same among the snapshots of keyspaces only (NULL or empty: all). */
void cs_snapshot_find_old_in(const cs_strlist *data_dirs, const cs_strlist *keyspaces, const char *prefix,
                             double before, cs_strlist *old, cs_strlist *young);

/* When the snapshot in directory dir (one table's) was taken, epoch
 * seconds; 0 when unknown. (Exposed for the unit tests.) */
double cs_snapshot_dir_time(const char *dir, bool *ephemeral);

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
/* The same in keyspaces only (NULL or empty: all): snapshot tag of any
 * other keyspace stays. */
int cs_snapshot_clear_in(cs_nodetool *nt, const char *release, const cs_strlist *data_dirs,
                         const cs_strlist *keyspaces, const char *tag, bool *cleared, cs_err *e);

#endif
