/*
 * pool_stats.h — the figures every connection pool reports for metrics
 * (the Redis pool, the Neo4j client's connections). Lives below the stores
 * so that store/ and the backends above it can share it.
 */
#ifndef MD_POOL_STATS_H
#define MD_POOL_STATS_H

#include <stdint.h>

/* Connection pool figures for metrics (zeros for backends without a pool). */
struct md_pool_stats {
    int size;          /* connections open */
    int in_use;        /* connections checked out */
    int max;           /* configured maximum */
    uint64_t waits;    /* checkouts that had to wait, since start */
    uint64_t timeouts; /* checkouts that gave up, since start */
};

#endif /* MD_POOL_STATS_H */
