/* cover.h - the fewest source nodes that hold every token range of a keyspace once.
 *
 * Owns: reading a keyspace's replication from its CREATE KEYSPACE statement
 * (as DESCRIBE SCHEMA writes it), and choosing a replica cover: loading
 * only those nodes' SSTables through the bulk loader streams each row RF
 * times into the new cluster (its own replication), not RF^2 times as
 * loading every node's copy would. Only when placement is known for sure:
 * one token per node, and SimpleStrategy, or NetworkTopologyStrategy in one
 * DC and one rack (the same placement); otherwise every node is loaded.
 * Must not: talk to anything (pure). */
#ifndef CS_CLUSTER_COVER_H
#define CS_CLUSTER_COVER_H

#include <stdbool.h>
#include <stddef.h>

/* The replication factor a CREATE KEYSPACE statement gives: SimpleStrategy's
 * replication_factor, or NetworkTopologyStrategy's when it names one DC;
 * 0 when it cannot be told (LocalStrategy, several DCs, a text we do not
 * know). */
int cs_cover_replication_factor(const char *create_keyspace);

/* n source nodes in token order (one token each), replication factor rf:
 * chosen[i] is set for the nodes of a cover. rf <= 0 (unknown) chooses every
 * node. Returns how many were chosen. */
size_t cs_cover_choose(size_t n, int rf, bool *chosen);

#endif
