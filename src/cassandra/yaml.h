/* yaml.h - where a node keeps its files, read from its cassandra.yaml.
 *
 * Owns: cs_node_dirs (data, commitlog, hints and saved caches directories)
 * and the few lines of cassandra.yaml that name them. Only what restore
 * needs is read: top-level scalar keys and the data_file_directories list
 * (block or [flow] form); anything else in the file is skipped. A directory
 * that is not an absolute path is an error (it would be relative to where
 * Cassandra was started, which cassette cannot know).
 * Must not: guess Cassandra's defaults for keys the file does not set. */
#ifndef CS_YAML_H
#define CS_YAML_H

#include "common/strlist.h"
#include "common/err.h"

typedef struct cs_node_dirs {
    cs_strlist data_dirs;
    char *commitlog_dir;     /* NULL: not known */
    char *hints_dir;
    char *saved_caches_dir;
} cs_node_dirs;

void cs_node_dirs_free(cs_node_dirs *d);

/* Parse the text of a cassandra.yaml (origin names it in errors) into out
 * (zeroed first); keys it does not set stay empty. */
int cs_yaml_node_dirs(const char *text, const char *origin, cs_node_dirs *out, cs_err *e);

/* Read path and parse it as above. */
int cs_yaml_read_node_dirs(const char *path, cs_node_dirs *out, cs_err *e);

#endif
