/*
 * route.c - what every holder of several shards shares: which shard a paper
 * lives in, and how the shards' answers are merged into one.
 *
 * Routing. A paper lives in shard crc32c(id) mod S. The local store lays out
 * its snapshot files by it and the cluster gateway its shard keys, so it is
 * a fixed contract, tested against known values (tests/test-shard.c): a
 * change would strand every stored paper in the wrong shard. CRC-32C was
 * chosen because the hardware computes it in a few cycles and it spreads
 * arXiv's sequential ids evenly; the alternative of consistent hashing buys
 * nothing here, since S is fixed when a collection is created (a cluster
 * moves whole shard keys between nodes instead of re-hashing papers).
 *
 * Merging. Each shard returns its own best k; the merged answer is the best
 * k of their union, ordered by score and then by id, so that ties between
 * shards resolve the same way in every process and on every run (a replica
 * answers what its master answers). Hits that fall off the end release the
 * documents they carried.
 *
 * Effort. Each shard is searched with sx_shard_ef's share of the ef asked
 * for the collection (see shard.h for the measurement behind the cube root).
 */
#include "shard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sx_shard_route(const char *id, int n_shards) {
    if (n_shards <= 1) return 0;
    return (int)(sx_crc32c(0, id, strlen(id)) % (uint32_t)n_shards);
}

void sx_hits_release(sx_hit *hits, int n) {
    for (int i = 0; hits && i < n; i++) {
        free(hits[i].doc);
        hits[i].doc = NULL;
    }
}

/* Best first: higher score, then smaller id. */
static int hit_cmp(const void *a, const void *b) {
    const sx_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return strcmp(x->id, y->id);
}

int sx_hits_merge(sx_hit *hits, int n, int k) {
    if (n <= 0) return 0;
    qsort(hits, (size_t)n, sizeof *hits, hit_cmp);
    int keep = n < k ? n : (k > 0 ? k : 0);
    sx_hits_release(hits + keep, n - keep);
    return keep;
}

int sx_shard_ef(int ef, int k, int n_shards) {
    if (n_shards <= 1) return ef;
    int e = (int)ceil((double)ef / cbrt((double)n_shards) - 1e-9);
    return e < k ? k : e;
}
