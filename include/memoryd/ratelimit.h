/*
 * ratelimit.h — per-client token buckets (RATE_LIMIT_RPS / RATE_LIMIT_BURST).
 *
 * A client is an API key (by its SHA-256, never the key itself) or, without
 * keys, a client address. Buckets live in a fixed-size striped table: a
 * bucket idle long enough to be full again carries no state and is
 * recycled, so memory is bounded whatever the number of clients. When every
 * slot of a stripe is busy the request is admitted (fail open) and counted:
 * the limiter protects the daemon, it must not become a way to lock
 * clients out.
 *
 * Thread safety: md_ratelimit_take() may be called from any thread.
 */
#ifndef MD_RATELIMIT_H
#define MD_RATELIMIT_H

#include "memoryd/compat.h"

struct md_ratelimit;

/* NULL when rps <= 0 (limiting off) or on allocation failure. */
struct md_ratelimit *md_ratelimit_new(double rps, int64_t burst);
void md_ratelimit_free(struct md_ratelimit *rl);

/*
 * Take one token for client (any string) at monotonic time now_ms. Returns
 * true when admitted; false with *retry_after_s (≥ 1) when not.
 */
bool md_ratelimit_take(struct md_ratelimit *rl, const char *client, int64_t now_ms,
                       int *retry_after_s);

#endif /* MD_RATELIMIT_H */
