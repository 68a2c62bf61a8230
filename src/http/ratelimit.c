/*
 * ratelimit.c — token buckets in a bounded, striped table (see ratelimit.h).
 *
 * Each stripe is a small open-addressed array guarded by its own mutex. A
 * bucket records its tokens at its last refill; tokens refill continuously
 * at rps up to burst. Lookup hashes the client to a stripe and probes a few
 * slots; an empty slot or one whose bucket has refilled completely (idle)
 * is taken over.
 */
#include "memoryd/compat.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "memoryd/ratelimit.h"
#include "memoryd/text.h"

#define STRIPES 64
#define SLOTS 256 /* per stripe: 16 384 clients tracked at once */
#define PROBES 8
#define ID_LEN 16 /* bytes of the client's SHA-256 kept as its identity */

struct bucket {
    unsigned char id[ID_LEN];
    bool used;
    double tokens;
    int64_t last_ms;
};

struct stripe {
    pthread_mutex_t lock;
    struct bucket slots[SLOTS];
};

struct md_ratelimit {
    double rps;
    double burst;
    struct stripe stripes[STRIPES];
};

struct md_ratelimit *md_ratelimit_new(double rps, int64_t burst)
{
    if (rps <= 0)
        return NULL;
    struct md_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->rps = rps;
    rl->burst = burst > 0 ? (double)burst : 1.0;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&rl->stripes[i].lock, NULL);
    return rl;
}

void md_ratelimit_free(struct md_ratelimit *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&rl->stripes[i].lock);
    free(rl);
}

static void refill(const struct md_ratelimit *rl, struct bucket *b, int64_t now_ms)
{
    double elapsed = (double)(now_ms - b->last_ms) / 1000.0;
    if (elapsed > 0) {
        b->tokens = fmin(rl->burst, b->tokens + elapsed * rl->rps);
        b->last_ms = now_ms;
    }
}

bool md_ratelimit_take(struct md_ratelimit *rl, const char *client, int64_t now_ms,
                       int *retry_after_s)
{
    char hex[MD_SHA256_HEX_LEN];
    md_sha256_hex(client, strlen(client), hex);
    unsigned char id[ID_LEN];
    for (int i = 0; i < ID_LEN; i++) {
        unsigned hi = (unsigned)(hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10);
        unsigned lo = (unsigned)(hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0'
                                                       : hex[2 * i + 1] - 'a' + 10);
        id[i] = (unsigned char)(hi << 4 | lo);
    }
    struct stripe *s = &rl->stripes[id[0] % STRIPES];
    size_t start = ((size_t)id[1] << 8 | id[2]) % SLOTS;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = NULL, *reusable = NULL;
    for (size_t k = 0; k < PROBES && !b; k++) {
        struct bucket *c = &s->slots[(start + k) % SLOTS];
        if (c->used && memcmp(c->id, id, ID_LEN) == 0) {
            b = c;
        } else if (!reusable) {
            if (!c->used) {
                reusable = c;
            } else {
                refill(rl, c, now_ms);
                if (c->tokens >= rl->burst)
                    reusable = c; /* idle long enough: nothing to remember */
            }
        }
    }
    if (!b && reusable) {
        b = reusable;
        memcpy(b->id, id, ID_LEN);
        b->used = true;
        b->tokens = rl->burst;
        b->last_ms = now_ms;
    }
    bool ok = true;
    if (b) {
        refill(rl, b, now_ms);
        if (b->tokens >= 1.0) {
            b->tokens -= 1.0;
        } else {
            ok = false;
            double wait = (1.0 - b->tokens) / rl->rps;
            *retry_after_s = (int)ceil(wait < 1.0 ? 1.0 : wait);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}
