/*
 * metrics.c — the metrics registry: sharded counters, the per-second window
 * ring and the Prometheus exposition.
 *
 * DESIGN
 * Request path. Every recorded value is a relaxed atomic add into one
 * shard: a flat array of 64-bit cells with a fixed layout (offsets computed
 * once by md_metrics_new). A thread picks its shard on first use, round
 * robin, and keeps it (thread-local index), so a worker normally owns its
 * cache lines and adds never bounce between cores. Shard cells are
 * cumulative and never reset, except the per-tick min/max latency cells,
 * which the tick takes with atomic_exchange.
 *
 * Dimensions. HTTP series are indexed by route PATTERN (routes sharing a
 * pattern share a slot, so two table rows never produce duplicate series)
 * plus one "unmatched" slot, by method (7 bits + other) and by status
 * bucket (13 codes + 5 classes + other). Store series by (store, op).
 *
 * Windows. md_metrics_tick() sums the shards and subtracts what the previous
 * tick saw: the difference is what happened since, and it goes into the
 * slot of the current second (a ring of MD_WINDOW_SLOTS slots, each tagged
 * with its second). Every sample therefore lands in exactly one slot. A
 * slot counts in a window only when its tag lies inside the window measured
 * from the clock's current second, so a stalled janitor never makes old
 * slots look current; the tick also clears the slots of skipped seconds.
 * Latency slots hold count, errors, sum, min, max and a log-linear
 * histogram (16 linear sub-buckets per power of two of microseconds: the
 * bucket midpoint is within 1/32 of any value in it). Ratio slots (cache
 * hit rate, pool utilisation) hold a numerator and a denominator.
 *
 * Locks. `ring_lock` guards the ring, the tick's previous totals and the
 * last sample; the request path never takes it. No lock is held while
 * calling out of the module.
 */
#include "memoryd/compat.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memoryd/clock.h"
#include "memoryd/metrics.h"

#ifndef MD_VERSION_STRING
#define MD_VERSION_STRING "0.0.0"
#endif

/* Shards: a power of two; more threads than shards simply share. */
#ifndef MD_METRICS_SHARDS
#define MD_METRICS_SHARDS 16
#endif

#define N_METHODS 8 /* the 7 enum md_http_method bits, then "other" */

/* Status buckets: the fixed codes, then classes 1xx..5xx, then "other". */
static const int status_codes[] = {200, 201, 204, 400, 401, 404, 405,
                                   409, 413, 415, 429, 500, 503};
#define N_CODES ((int)MD_ARRAY_LEN(status_codes))
#define N_STATUS (N_CODES + 5 + 1)
static const char *const status_labels[N_STATUS] = {
    "200", "201", "204", "400", "401", "404", "405", "409", "413", "415",
    "429", "500", "503", "1xx", "2xx", "3xx", "4xx", "5xx", "other"};

/* Prometheus histogram buckets (microseconds and their `le` text). */
static const int64_t prom_bounds_us[] = {100,    250,    500,     1000,    2500,    5000,
                                         10000,  25000,  50000,   100000,  250000,  500000,
                                         1000000, 2500000, 5000000, 10000000};
#define PROM_BOUNDS ((int)MD_ARRAY_LEN(prom_bounds_us))
#define PROM_NB (PROM_BOUNDS + 1) /* + the +Inf overflow bucket */
static const char *const prom_le[PROM_NB] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                             "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                             "0.25",   "0.5",     "1",      "2.5",   "5",
                                             "10",     "+Inf"};

/* Fine (window) histogram: values < 16 µs exact, then 16 sub-buckets per octave. */
#define FINE_SUB_BITS 4
#define FINE_SUB (1 << FINE_SUB_BITS)
#define FINE_TOP_MSB 27 /* last octave [2^27, 2^28) µs; larger values land in it */
#define FINE_NB (FINE_SUB + (FINE_TOP_MSB - FINE_SUB_BITS + 1) * FINE_SUB)

/* Latency windows. */
enum lat { LAT_STM = 0, LAT_LTM, LAT_API, N_LAT };

/* Cells of one latency window in a shard: count, errors, sum_us, then the histogram. */
#define LAT_COUNT 0
#define LAT_ERRORS 1
#define LAT_SUM 2
#define LAT_HIST 3
#define LAT_CELLS (LAT_HIST + FINE_NB)

/* Cells of one (route, method) histogram: buckets, then sum_us. */
#define HH_CELLS (PROM_NB + 1)
/* Cells of one (store, op) series: buckets, sum_us, errors. */
#define SH_SUM PROM_NB
#define SH_ERR (PROM_NB + 1)
#define SH_CELLS (PROM_NB + 2)

#define N_OPS (MD_STM_OP_COUNT + MD_LTM_OP_COUNT)

static const char *const stm_op_names[] = {
#define MD_X_OP(name, windowed) #name,
    MD_STM_OPS(MD_X_OP)
#undef MD_X_OP
};
static const bool stm_op_windowed[] = {
#define MD_X_OP(name, windowed) windowed,
    MD_STM_OPS(MD_X_OP)
#undef MD_X_OP
};
static const char *const ltm_op_names[] = {
#define MD_X_OP(name, windowed) #name,
    MD_LTM_OPS(MD_X_OP)
#undef MD_X_OP
};
static const bool ltm_op_windowed[] = {
#define MD_X_OP(name, windowed) windowed,
    MD_LTM_OPS(MD_X_OP)
#undef MD_X_OP
};

static const char *const metric_names[] = {
#define MD_X_METRIC(id, name, threshold, lower) name,
    MD_WINDOW_METRICS(MD_X_METRIC)
#undef MD_X_METRIC
};
static const double metric_thresholds[] = {
#define MD_X_METRIC(id, name, threshold, lower) threshold,
    MD_WINDOW_METRICS(MD_X_METRIC)
#undef MD_X_METRIC
};
static const bool metric_lower[] = {
#define MD_X_METRIC(id, name, threshold, lower) lower,
    MD_WINDOW_METRICS(MD_X_METRIC)
#undef MD_X_METRIC
};

/* One second of a latency window. */
struct lat_slot {
    int64_t sec;      /* the second this slot holds; INT64_MIN: never */
    uint64_t count;   /* samples */
    uint64_t errors;  /* failed calls / 5xx answers among them */
    uint64_t sum_us;
    uint64_t min_us;  /* UINT64_MAX when count is 0 */
    uint64_t max_us;
    uint64_t hist_n;  /* Σ hist (equals count once every tick has caught up) */
    uint32_t hist[FINE_NB];
};

/* One second of a ratio window: value = scale · num / den. */
struct ratio_slot {
    int64_t sec;
    double num;
    double den;
};

struct md_metrics {
    const struct md_route *routes; /* borrowed */
    size_t n_routes;
    int *route_slot;       /* route index -> pattern slot */
    const char **slot_pattern; /* n_slots patterns (borrowed); last one "unmatched" */
    bool *slot_api;        /* the slot is a /v1 route */
    size_t n_slots;

    /* Shard layout (offsets in cells). */
    size_t off_http_count; /* [slot][method][status] */
    size_t off_http_hist;  /* [slot][method][HH_CELLS] */
    size_t off_store;      /* [op][SH_CELLS], STM ops then LTM ops */
    size_t off_lat;        /* [lat][LAT_CELLS] */
    size_t off_min;        /* [lat] per-tick minimum (UINT64_MAX = none) */
    size_t off_max;        /* [lat] per-tick maximum */
    size_t stride;         /* cells per shard, a multiple of 8 (64 bytes) */
    _Atomic uint64_t *cells; /* MD_METRICS_SHARDS × stride */

    int64_t (*clock_ms)(void *ctx);
    void *clock_ctx;
    int64_t created_ms;

    pthread_mutex_t ring_lock;
    /* --- under ring_lock --- */
    bool ticked;
    int64_t last_sec;                  /* second of the last tick */
    uint64_t prev_lat[N_LAT][LAT_CELLS]; /* shard totals at the last tick */
    uint64_t prev_hits, prev_misses;
    struct lat_slot *lat[N_LAT];       /* MD_WINDOW_SLOTS each */
    struct ratio_slot *hit;            /* MD_WINDOW_SLOTS */
    struct ratio_slot *pool;           /* MD_WINDOW_SLOTS */
    struct md_metrics_sample last;     /* figures of the last tick */
};

static atomic_uint next_shard;
static _Thread_local unsigned tl_shard = UINT32_MAX;

static inline _Atomic uint64_t *my_shard(struct md_metrics *m)
{
    if (tl_shard == UINT32_MAX)
        tl_shard = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) %
                   MD_METRICS_SHARDS;
    return m->cells + (size_t)tl_shard * m->stride;
}

static inline void cell_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* Sum of one cell over every shard. */
static uint64_t cell_total(const struct md_metrics *m, size_t off)
{
    uint64_t sum = 0;
    for (size_t s = 0; s < MD_METRICS_SHARDS; s++)
        sum += atomic_load_explicit(&m->cells[s * m->stride + off], memory_order_relaxed);
    return sum;
}

static int64_t default_clock(void *ctx)
{
    MD_UNUSED(ctx);
    return md_mono_ms();
}

static int64_t now_sec(const struct md_metrics *m)
{
    int64_t ms = m->clock_ms(m->clock_ctx);
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

static size_t ring_index(int64_t sec)
{
    int64_t r = sec % MD_WINDOW_SLOTS;
    return (size_t)(r < 0 ? r + MD_WINDOW_SLOTS : r);
}

/* ---- names and buckets ----------------------------------------------------- */

const char *md_metric_name(enum md_metric metric)
{
    if ((int)metric < 0 || metric >= MD_METRIC_COUNT)
        return "";
    return metric_names[metric];
}

bool md_metric_parse(const char *name, enum md_metric *out)
{
    if (!name)
        return false;
    for (int i = 0; i < MD_METRIC_COUNT; i++) {
        if (strcmp(name, metric_names[i]) == 0) {
            *out = (enum md_metric)i;
            return true;
        }
    }
    return false;
}

double md_metric_threshold(enum md_metric metric)
{
    if ((int)metric < 0 || metric >= MD_METRIC_COUNT)
        return 0.0;
    return metric_thresholds[metric];
}

bool md_metric_lower_is_better(enum md_metric metric)
{
    if ((int)metric < 0 || metric >= MD_METRIC_COUNT)
        return true;
    return metric_lower[metric];
}

const char *md_metrics_op_name(enum md_store store, int op)
{
    if (store == MD_STORE_STM && op >= 0 && op < MD_STM_OP_COUNT)
        return stm_op_names[op];
    if (store == MD_STORE_LTM && op >= 0 && op < MD_LTM_OP_COUNT)
        return ltm_op_names[op];
    return "";
}

static int status_bucket(int status)
{
    for (int i = 0; i < N_CODES; i++)
        if (status_codes[i] == status)
            return i;
    if (status >= 100 && status <= 599)
        return N_CODES + status / 100 - 1;
    return N_STATUS - 1;
}

const char *md_metrics_status_label(int status)
{
    return status_labels[status_bucket(status)];
}

bool md_metrics_store_failed(enum md_status st)
{
    switch (st) {
    case MD_E_NOMEM:
    case MD_E_TIMEOUT:
    case MD_E_UNAVAIL:
    case MD_E_PROTO:
    case MD_E_IO:
    case MD_E_INTERNAL:
        return true;
    case MD_OK:
    case MD_E_INVAL:
    case MD_E_NOTFOUND:
    case MD_E_CONFLICT:
    case MD_E_LIMIT:
        return false;
    }
    return true;
}

static int method_index(enum md_http_method method)
{
    unsigned v = (unsigned)method;
    if (v == 0 || (v & (v - 1)) != 0 || v > (unsigned)MD_M_OPTIONS)
        return N_METHODS - 1;
    return __builtin_ctz(v);
}

static const char *method_label(int i)
{
    return i == N_METHODS - 1 ? "OTHER" : md_http_method_name((enum md_http_method)(1u << i));
}

static int prom_bucket(int64_t us)
{
    int lo = 0, hi = PROM_BOUNDS; /* first bound >= us, PROM_BOUNDS for +Inf */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (prom_bounds_us[mid] >= us)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static unsigned fine_index(uint64_t us)
{
    if (us < FINE_SUB)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    if (msb > FINE_TOP_MSB)
        return FINE_NB - 1;
    unsigned shift = msb - FINE_SUB_BITS;
    unsigned sub = (unsigned)(us >> shift) & (FINE_SUB - 1);
    return FINE_SUB + shift * FINE_SUB + sub;
}

/* Lower bound and width (µs) of fine bucket i. */
static void fine_bounds(unsigned i, double *lo, double *width)
{
    if (i < FINE_SUB) {
        *lo = (double)i;
        *width = 1.0;
        return;
    }
    unsigned shift = (i - FINE_SUB) / FINE_SUB;
    unsigned sub = (i - FINE_SUB) % FINE_SUB;
    *lo = (double)((uint64_t)(FINE_SUB + sub) << shift);
    *width = (double)((uint64_t)1 << shift);
}

/*
 * Nearest-rank quantile q of a fine histogram with total samples: the
 * midpoint of the bucket holding rank ceil(q·total), clamped to [min, max].
 * Returns NAN when total is 0. Result in microseconds.
 */
static double fine_quantile(const uint64_t *hist, uint64_t total, double q, uint64_t min_us,
                            uint64_t max_us)
{
    if (total == 0)
        return (double)NAN;
    uint64_t rank = (uint64_t)ceil(q * (double)total);
    if (rank < 1)
        rank = 1;
    if (rank > total)
        rank = total;
    uint64_t cum = 0;
    for (unsigned i = 0; i < FINE_NB; i++) {
        cum += hist[i];
        if (cum >= rank) {
            double lo, width;
            fine_bounds(i, &lo, &width);
            double v = lo + width / 2.0;
            if (i < FINE_SUB)
                v = lo;
            if (min_us <= max_us) {
                if (v < (double)min_us)
                    v = (double)min_us;
                if (v > (double)max_us)
                    v = (double)max_us;
            }
            return v;
        }
    }
    return (double)max_us;
}

/* ---- lifecycle --------------------------------------------------------------- */

static void clear_lat_slot(struct lat_slot *s, int64_t sec)
{
    memset(s, 0, sizeof(*s));
    s->sec = sec;
    s->min_us = UINT64_MAX;
}

struct md_metrics *md_metrics_new(const struct md_route *routes, size_t n_routes,
                                  struct md_error *err)
{
    if (n_routes > 0 && !routes) {
        md_error_set(err, MD_E_INVAL, "metrics: route table missing");
        return NULL;
    }
    if (n_routes > 4096) {
        md_error_set(err, MD_E_INVAL, "metrics: too many routes (%zu)", n_routes);
        return NULL;
    }
    struct md_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        goto oom;
    m->routes = routes;
    m->n_routes = n_routes;
    m->clock_ms = default_clock;
    m->route_slot = calloc(n_routes + 1, sizeof(*m->route_slot));
    m->slot_pattern = calloc(n_routes + 1, sizeof(*m->slot_pattern));
    m->slot_api = calloc(n_routes + 1, sizeof(*m->slot_api));
    if (!m->route_slot || !m->slot_pattern || !m->slot_api)
        goto oom;
    for (size_t i = 0; i < n_routes; i++) {
        const char *p = routes[i].pattern ? routes[i].pattern : "";
        size_t s = 0;
        while (s < m->n_slots && strcmp(m->slot_pattern[s], p) != 0)
            s++;
        if (s == m->n_slots) {
            m->slot_pattern[s] = p;
            m->slot_api[s] = strncmp(p, "/v1/", 4) == 0;
            m->n_slots++;
        }
        m->route_slot[i] = (int)s;
    }
    m->slot_pattern[m->n_slots] = "unmatched";
    m->slot_api[m->n_slots] = false;
    m->n_slots++;

    size_t off = 0;
    m->off_http_count = off;
    off += m->n_slots * N_METHODS * N_STATUS;
    m->off_http_hist = off;
    off += m->n_slots * N_METHODS * HH_CELLS;
    m->off_store = off;
    off += (size_t)N_OPS * SH_CELLS;
    m->off_lat = off;
    off += (size_t)N_LAT * LAT_CELLS;
    m->off_min = off;
    off += N_LAT;
    m->off_max = off;
    off += N_LAT;
    m->stride = (off + 7) & ~(size_t)7;

    size_t bytes = m->stride * MD_METRICS_SHARDS * sizeof(*m->cells);
    m->cells = aligned_alloc(64, bytes);
    if (!m->cells)
        goto oom;
    for (size_t i = 0; i < m->stride * MD_METRICS_SHARDS; i++)
        atomic_init(&m->cells[i], 0);
    for (size_t s = 0; s < MD_METRICS_SHARDS; s++)
        for (size_t l = 0; l < N_LAT; l++)
            atomic_init(&m->cells[s * m->stride + m->off_min + l], UINT64_MAX);

    for (int l = 0; l < N_LAT; l++) {
        m->lat[l] = malloc(MD_WINDOW_SLOTS * sizeof(struct lat_slot));
        if (!m->lat[l])
            goto oom;
        for (size_t i = 0; i < MD_WINDOW_SLOTS; i++)
            clear_lat_slot(&m->lat[l][i], INT64_MIN);
    }
    m->hit = malloc(MD_WINDOW_SLOTS * sizeof(struct ratio_slot));
    m->pool = malloc(MD_WINDOW_SLOTS * sizeof(struct ratio_slot));
    if (!m->hit || !m->pool)
        goto oom;
    for (size_t i = 0; i < MD_WINDOW_SLOTS; i++) {
        m->hit[i] = (struct ratio_slot){INT64_MIN, 0.0, 0.0};
        m->pool[i] = (struct ratio_slot){INT64_MIN, 0.0, 0.0};
    }
    if (pthread_mutex_init(&m->ring_lock, NULL) != 0) {
        md_error_set(err, MD_E_INTERNAL, "metrics: cannot create a mutex");
        free(m->pool);
        m->pool = NULL; /* md_metrics_free must not destroy the mutex */
        goto fail;
    }
    m->created_ms = m->clock_ms(m->clock_ctx);
    return m;
oom:
    md_error_set(err, MD_E_NOMEM, "out of memory building the metrics registry");
fail:
    if (m) {
        for (int l = 0; l < N_LAT; l++)
            free(m->lat[l]);
        free(m->hit);
        free(m->pool);
        free(m->cells);
        free(m->route_slot);
        free(m->slot_pattern);
        free(m->slot_api);
        free(m);
    }
    return NULL;
}

void md_metrics_free(struct md_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->ring_lock);
    for (int l = 0; l < N_LAT; l++)
        free(m->lat[l]);
    free(m->hit);
    free(m->pool);
    free(m->cells);
    free(m->route_slot);
    free(m->slot_pattern);
    free(m->slot_api);
    free(m);
}

void md_metrics_set_clock(struct md_metrics *m, int64_t (*clock_ms)(void *ctx), void *ctx)
{
    m->clock_ms = clock_ms ? clock_ms : default_clock;
    m->clock_ctx = clock_ms ? ctx : NULL;
    m->created_ms = m->clock_ms(m->clock_ctx);
}

double md_metrics_uptime_seconds(struct md_metrics *m)
{
    int64_t d = m->clock_ms(m->clock_ctx) - m->created_ms;
    return d > 0 ? (double)d / 1000.0 : 0.0;
}

/* ---- request path ------------------------------------------------------------ */

int md_metrics_route_index(const struct md_metrics *m, const struct md_route *route)
{
    if (!m || !route || !m->routes || route < m->routes || route >= m->routes + m->n_routes)
        return -1;
    return (int)(route - m->routes);
}

static void lat_add(struct md_metrics *m, _Atomic uint64_t *sh, enum lat l, bool failed,
                    uint64_t us)
{
    _Atomic uint64_t *c = sh + m->off_lat + (size_t)l * LAT_CELLS;
    cell_add(&c[LAT_COUNT], 1);
    if (failed)
        cell_add(&c[LAT_ERRORS], 1);
    cell_add(&c[LAT_SUM], us);
    cell_add(&c[LAT_HIST + fine_index(us)], 1);
    /* Per-tick extremes: lock-free min/max; the common case is one load. */
    _Atomic uint64_t *mn = sh + m->off_min + l;
    uint64_t cur = atomic_load_explicit(mn, memory_order_relaxed);
    while (us < cur && !atomic_compare_exchange_weak_explicit(mn, &cur, us, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
    _Atomic uint64_t *mx = sh + m->off_max + l;
    cur = atomic_load_explicit(mx, memory_order_relaxed);
    while (us > cur && !atomic_compare_exchange_weak_explicit(mx, &cur, us, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
}

void md_metrics_http(struct md_metrics *m, int route, enum md_http_method method, int status,
                     int64_t duration_us)
{
    if (!m)
        return;
    uint64_t us = duration_us > 0 ? (uint64_t)duration_us : 0;
    size_t slot = route >= 0 && (size_t)route < m->n_routes ? (size_t)m->route_slot[route]
                                                             : m->n_slots - 1;
    size_t mi = (size_t)method_index(method);
    _Atomic uint64_t *sh = my_shard(m);
    cell_add(&sh[m->off_http_count + (slot * N_METHODS + mi) * N_STATUS +
                 (size_t)status_bucket(status)],
             1);
    _Atomic uint64_t *h = sh + m->off_http_hist + (slot * N_METHODS + mi) * HH_CELLS;
    cell_add(&h[prom_bucket(duration_us)], 1);
    cell_add(&h[PROM_NB], us);
    if (m->slot_api[slot])
        lat_add(m, sh, LAT_API, status >= 500 && status <= 599, us);
}

void md_metrics_store(struct md_metrics *m, enum md_store store, int op, bool ok,
                      int64_t duration_us)
{
    if (!m)
        return;
    size_t idx;
    bool windowed;
    if (store == MD_STORE_STM && op >= 0 && op < MD_STM_OP_COUNT) {
        idx = (size_t)op;
        windowed = stm_op_windowed[op];
    } else if (store == MD_STORE_LTM && op >= 0 && op < MD_LTM_OP_COUNT) {
        idx = (size_t)MD_STM_OP_COUNT + (size_t)op;
        windowed = ltm_op_windowed[op];
    } else {
        return;
    }
    uint64_t us = duration_us > 0 ? (uint64_t)duration_us : 0;
    _Atomic uint64_t *sh = my_shard(m);
    _Atomic uint64_t *c = sh + m->off_store + idx * SH_CELLS;
    cell_add(&c[prom_bucket(duration_us)], 1);
    cell_add(&c[SH_SUM], us);
    if (!ok)
        cell_add(&c[SH_ERR], 1);
    if (windowed)
        lat_add(m, sh, store == MD_STORE_STM ? LAT_STM : LAT_LTM, !ok, us);
}

/* ---- tick -------------------------------------------------------------------- */

static void clear_second(struct md_metrics *m, int64_t sec)
{
    size_t i = ring_index(sec);
    for (int l = 0; l < N_LAT; l++)
        clear_lat_slot(&m->lat[l][i], sec);
    m->hit[i] = (struct ratio_slot){sec, 0.0, 0.0};
    m->pool[i] = (struct ratio_slot){sec, 0.0, 0.0};
}

static uint64_t counter_delta(uint64_t cur, uint64_t prev)
{
    return cur >= prev ? cur - prev : cur; /* went backwards: restarted from zero */
}

static void fold_latency(struct md_metrics *m, enum lat l, struct lat_slot *slot)
{
    uint64_t *prev = m->prev_lat[l];
    size_t base = m->off_lat + (size_t)l * LAT_CELLS;
    for (size_t c = 0; c < LAT_CELLS; c++) {
        uint64_t cur = cell_total(m, base + c);
        uint64_t d = cur - prev[c]; /* shard cells only grow (mod 2^64) */
        prev[c] = cur;
        if (c == LAT_COUNT)
            slot->count += d;
        else if (c == LAT_ERRORS)
            slot->errors += d;
        else if (c == LAT_SUM)
            slot->sum_us += d;
        else if (d > 0) {
            slot->hist[c - LAT_HIST] += (uint32_t)MD_MIN(d, (uint64_t)UINT32_MAX);
            slot->hist_n += d;
        }
    }
    for (size_t s = 0; s < MD_METRICS_SHARDS; s++) {
        _Atomic uint64_t *sh = m->cells + s * m->stride;
        uint64_t mn = atomic_exchange_explicit(&sh[m->off_min + l], UINT64_MAX,
                                               memory_order_relaxed);
        uint64_t mx = atomic_exchange_explicit(&sh[m->off_max + l], 0, memory_order_relaxed);
        if (mn < slot->min_us)
            slot->min_us = mn;
        if (mx > slot->max_us)
            slot->max_us = mx;
    }
}

void md_metrics_tick(struct md_metrics *m, const struct md_metrics_sample *s)
{
    if (!m)
        return;
    int64_t sec = now_sec(m);
    pthread_mutex_lock(&m->ring_lock);
    if (!m->ticked) {
        clear_second(m, sec);
        m->ticked = true;
    } else {
        if (sec < m->last_sec)
            sec = m->last_sec; /* never go back: fold into the newest slot */
        int64_t gap = sec - m->last_sec;
        if (gap > MD_WINDOW_SLOTS)
            gap = MD_WINDOW_SLOTS;
        for (int64_t k = gap - 1; k >= 0; k--)
            clear_second(m, sec - k);
    }
    m->last_sec = sec;
    size_t i = ring_index(sec);
    for (int l = 0; l < N_LAT; l++)
        fold_latency(m, (enum lat)l, &m->lat[l][i]);
    if (s && s->has_cache) {
        uint64_t dh = counter_delta(s->cache.hits, m->prev_hits);
        uint64_t dm = counter_delta(s->cache.misses, m->prev_misses);
        m->prev_hits = s->cache.hits;
        m->prev_misses = s->cache.misses;
        m->hit[i].num += (double)dh;
        m->hit[i].den += (double)(dh + dm);
    }
    if (s) {
        bool any = false;
        double util = 0.0;
        for (int k = 0; k < MD_STORE_COUNT; k++) {
            if (!s->has_pool[k] || s->pool[k].max <= 0)
                continue;
            double u = 100.0 * (double)s->pool[k].in_use / (double)s->pool[k].max;
            if (!any || u > util)
                util = u;
            any = true;
        }
        if (any) {
            m->pool[i].num += util;
            m->pool[i].den += 1.0;
        }
        m->last = *s;
    }
    pthread_mutex_unlock(&m->ring_lock);
}

void md_metrics_last_sample(struct md_metrics *m, struct md_metrics_sample *out)
{
    pthread_mutex_lock(&m->ring_lock);
    *out = m->last;
    pthread_mutex_unlock(&m->ring_lock);
}

/* ---- window queries ----------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank quantile of n values (sorted in place). NAN when n is 0. */
static double exact_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return (double)NAN;
    qsort(v, n, sizeof(*v), cmp_double);
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static bool in_window(int64_t slot_sec, int64_t now, int64_t span)
{
    return slot_sec != INT64_MIN && slot_sec <= now && slot_sec > now - span;
}

struct lat_agg {
    uint64_t count, errors, sum_us, min_us, max_us, hist_total;
    uint64_t hist[FINE_NB];
};

static void lat_agg_init(struct lat_agg *a)
{
    memset(a, 0, sizeof(*a));
    a->min_us = UINT64_MAX;
}

static void lat_agg_add(struct lat_agg *a, const struct lat_slot *s)
{
    a->count += s->count;
    a->errors += s->errors;
    a->sum_us += s->sum_us;
    if (s->min_us < a->min_us)
        a->min_us = s->min_us;
    if (s->max_us > a->max_us)
        a->max_us = s->max_us;
    if (s->hist_n == 0)
        return; /* an idle second: nothing to merge */
    for (unsigned b = 0; b < FINE_NB; b++)
        a->hist[b] += s->hist[b];
    a->hist_total += s->hist_n;
}

static void window_latency(struct md_metrics *m, enum lat l, int64_t now, struct md_window *out)
{
    struct lat_agg a1, a15; /* ~3 KiB each: fine on any thread's stack */
    lat_agg_init(&a1);
    lat_agg_init(&a15);
    pthread_mutex_lock(&m->ring_lock);
    for (size_t i = 0; i < MD_WINDOW_SLOTS; i++) {
        const struct lat_slot *s = &m->lat[l][i];
        if (!in_window(s->sec, now, MD_WINDOW_SLOTS))
            continue;
        lat_agg_add(&a15, s);
        if (in_window(s->sec, now, MD_WINDOW_CURRENT))
            lat_agg_add(&a1, s);
    }
    pthread_mutex_unlock(&m->ring_lock);
    out->samples_1m = a1.count;
    out->samples_15m = a15.count;
    out->errors_1m = a1.errors;
    out->errors_15m = a15.errors;
    if (a1.count > 0)
        out->current = (double)a1.sum_us / (double)a1.count / 1000.0;
    if (a15.count > 0)
        out->average = (double)a15.sum_us / (double)a15.count / 1000.0;
    out->p95 = fine_quantile(a15.hist, a15.hist_total, 0.95, a15.min_us, a15.max_us) / 1000.0;
    out->p95_1m = fine_quantile(a1.hist, a1.hist_total, 0.95, a1.min_us, a1.max_us) / 1000.0;
}

/*
 * A ratio window over ring (or over the API latency ring for the error
 * rate): current/average = scale · Σnum / Σden, p95 over per-second values.
 */
static void window_ratio(struct md_metrics *m, enum md_metric metric, int64_t now,
                         struct md_window *out)
{
    double num1 = 0, den1 = 0, num15 = 0, den15 = 0;
    double v15[MD_WINDOW_SLOTS], v1[MD_WINDOW_CURRENT]; /* per-second values */
    size_t n15 = 0, n1 = 0;
    double scale = metric == MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT ? 1.0 : 100.0;
    pthread_mutex_lock(&m->ring_lock);
    for (size_t i = 0; i < MD_WINDOW_SLOTS; i++) {
        int64_t sec;
        double num, den;
        if (metric == MD_METRIC_ERROR_RATE_PERCENT) {
            sec = m->lat[LAT_API][i].sec;
            num = (double)m->lat[LAT_API][i].errors;
            den = (double)m->lat[LAT_API][i].count;
        } else {
            const struct ratio_slot *r =
                metric == MD_METRIC_CACHE_HIT_RATE_PERCENT ? &m->hit[i] : &m->pool[i];
            sec = r->sec;
            num = r->num;
            den = r->den;
        }
        if (!in_window(sec, now, MD_WINDOW_SLOTS) || den <= 0.0)
            continue;
        num15 += num;
        den15 += den;
        v15[n15++] = scale * num / den;
        if (in_window(sec, now, MD_WINDOW_CURRENT) && n1 < MD_WINDOW_CURRENT) {
            num1 += num;
            den1 += den;
            v1[n1++] = scale * num / den;
        }
    }
    pthread_mutex_unlock(&m->ring_lock);
    out->samples_1m = (uint64_t)den1;
    out->samples_15m = (uint64_t)den15;
    if (metric == MD_METRIC_ERROR_RATE_PERCENT) {
        out->errors_1m = (uint64_t)num1;
        out->errors_15m = (uint64_t)num15;
    }
    if (den1 > 0.0)
        out->current = scale * num1 / den1;
    if (den15 > 0.0)
        out->average = scale * num15 / den15;
    out->p95 = exact_quantile(v15, n15, 0.95);
    out->p95_1m = exact_quantile(v1, n1, 0.95);
}

void md_metrics_window(struct md_metrics *m, enum md_metric metric, struct md_window *out)
{
    memset(out, 0, sizeof(*out));
    out->current = out->average = out->p95 = out->p95_1m = (double)NAN;
    if (!m || (int)metric < 0 || metric >= MD_METRIC_COUNT)
        return;
    int64_t now = now_sec(m);
    switch (metric) {
    case MD_METRIC_STM_RESPONSE_TIME_MS:
        window_latency(m, LAT_STM, now, out);
        break;
    case MD_METRIC_LTM_RESPONSE_TIME_MS:
        window_latency(m, LAT_LTM, now, out);
        break;
    case MD_METRIC_API_RESPONSE_TIME_MS:
        window_latency(m, LAT_API, now, out);
        break;
    case MD_METRIC_CACHE_HIT_RATE_PERCENT:
    case MD_METRIC_ERROR_RATE_PERCENT:
    case MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT:
        window_ratio(m, metric, now, out);
        break;
    case MD_METRIC_COUNT:
        break;
    }
}

bool md_metrics_alert_value(void *ctx, enum md_metric metric, double *value, uint64_t *samples)
{
    struct md_window w;
    md_metrics_window(ctx, metric, &w);
    *value = w.current;
    *samples = w.samples_1m;
    return w.samples_1m > 0 && !isnan(w.current);
}

/* ---- Prometheus exposition ---------------------------------------------------- */

void md_metrics_extra_init(struct md_metrics_extra *x)
{
    memset(x, 0, sizeof(*x));
    x->uptime_seconds = -1.0;
}

/* Shortest "%.Ng" that reads back as v; Prometheus spellings for the rest. */
static void fmt_double(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* Append s as a label value: backslash, double quote and newline escaped. */
static enum md_status put_label_value(struct md_buf *b, const char *s)
{
    enum md_status st = MD_OK;
    const char *run = s;
    for (const char *p = s; *p && st == MD_OK; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        st = md_buf_append(b, run, (size_t)(p - run));
        if (st == MD_OK)
            st = md_buf_puts(b, esc);
        run = p + 1;
    }
    if (st == MD_OK)
        st = md_buf_puts(b, run);
    return st;
}

/* `name{k1="v1",k2="v2"} value\n`; labels is a NULL-terminated key/value list. */
static enum md_status put_series(struct md_buf *b, const char *name, const char *const *labels,
                                 const char *value)
{
    enum md_status st = md_buf_puts(b, name);
    if (st == MD_OK && labels && labels[0]) {
        st = md_buf_putc(b, '{');
        for (size_t i = 0; st == MD_OK && labels[i]; i += 2) {
            st = md_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
            if (st == MD_OK)
                st = put_label_value(b, labels[i + 1]);
            if (st == MD_OK)
                st = md_buf_putc(b, '"');
        }
        if (st == MD_OK)
            st = md_buf_putc(b, '}');
    }
    if (st == MD_OK)
        st = md_buf_printf(b, " %s\n", value);
    return st;
}

static enum md_status put_u64(struct md_buf *b, const char *name, const char *const *labels,
                              uint64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    return put_series(b, name, labels, num);
}

static enum md_status put_f64(struct md_buf *b, const char *name, const char *const *labels,
                              double v)
{
    char num[40];
    fmt_double(num, sizeof(num), v);
    return put_series(b, name, labels, num);
}

static enum md_status put_family(struct md_buf *b, const char *name, const char *type,
                                 const char *help)
{
    return md_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * One histogram series from non-cumulative bucket counts: _bucket lines
 * (cumulative, le appended to labels), _sum (seconds) and _count.
 */
static enum md_status put_histogram(struct md_buf *b, const char *name, const char **labels,
                                    size_t n_labels, const uint64_t *buckets, uint64_t sum_us)
{
    char series[128];
    enum md_status st = MD_OK;
    uint64_t cum = 0;
    labels[n_labels * 2] = "le";
    labels[n_labels * 2 + 2] = NULL;
    snprintf(series, sizeof(series), "%s_bucket", name);
    for (int i = 0; i < PROM_NB && st == MD_OK; i++) {
        cum += buckets[i];
        labels[n_labels * 2 + 1] = prom_le[i];
        st = put_u64(b, series, labels, cum);
    }
    labels[n_labels * 2] = NULL;
    snprintf(series, sizeof(series), "%s_sum", name);
    if (st == MD_OK)
        st = put_f64(b, series, labels, (double)sum_us / 1e6);
    snprintf(series, sizeof(series), "%s_count", name);
    if (st == MD_OK)
        st = put_u64(b, series, labels, cum);
    return st;
}

static enum md_status prom_http(struct md_metrics *m, struct md_buf *b)
{
    enum md_status st = put_family(b, "memoryd_http_requests_total", "counter",
                                   "HTTP requests by route pattern, method and status.");
    for (size_t s = 0; s < m->n_slots && st == MD_OK; s++) {
        for (size_t mi = 0; mi < N_METHODS && st == MD_OK; mi++) {
            for (size_t k = 0; k < N_STATUS && st == MD_OK; k++) {
                uint64_t v =
                    cell_total(m, m->off_http_count + (s * N_METHODS + mi) * N_STATUS + k);
                if (v == 0)
                    continue;
                const char *labels[] = {"route",  m->slot_pattern[s], "method",
                                        method_label((int)mi), "status", status_labels[k],
                                        NULL};
                st = put_u64(b, "memoryd_http_requests_total", labels, v);
            }
        }
    }
    if (st == MD_OK)
        st = put_family(b, "memoryd_http_request_duration_seconds", "histogram",
                        "HTTP request duration by route pattern and method.");
    for (size_t s = 0; s < m->n_slots && st == MD_OK; s++) {
        for (size_t mi = 0; mi < N_METHODS && st == MD_OK; mi++) {
            size_t base = m->off_http_hist + (s * N_METHODS + mi) * HH_CELLS;
            uint64_t buckets[PROM_NB], total = 0;
            for (int i = 0; i < PROM_NB; i++) {
                buckets[i] = cell_total(m, base + (size_t)i);
                total += buckets[i];
            }
            if (total == 0)
                continue;
            const char *labels[8] = {"route", m->slot_pattern[s], "method",
                                     method_label((int)mi)};
            st = put_histogram(b, "memoryd_http_request_duration_seconds", labels, 2, buckets,
                               cell_total(m, base + PROM_NB));
        }
    }
    return st;
}

static enum md_status prom_store(struct md_metrics *m, struct md_buf *b)
{
    enum md_status st = put_family(b, "memoryd_store_call_duration_seconds", "histogram",
                                   "Store call duration by store and operation.");
    uint64_t errors[N_OPS];
    bool touched[N_OPS];
    for (size_t op = 0; op < N_OPS && st == MD_OK; op++) {
        size_t base = m->off_store + op * SH_CELLS;
        uint64_t buckets[PROM_NB], total = 0;
        for (int i = 0; i < PROM_NB; i++) {
            buckets[i] = cell_total(m, base + (size_t)i);
            total += buckets[i];
        }
        errors[op] = cell_total(m, base + SH_ERR);
        touched[op] = total > 0;
        if (!touched[op])
            continue;
        bool stm = op < MD_STM_OP_COUNT;
        const char *labels[8] = {"store", stm ? "stm" : "ltm", "op",
                                 stm ? stm_op_names[op] : ltm_op_names[op - MD_STM_OP_COUNT]};
        st = put_histogram(b, "memoryd_store_call_duration_seconds", labels, 2, buckets,
                           cell_total(m, base + SH_SUM));
    }
    if (st == MD_OK)
        st = put_family(b, "memoryd_store_errors_total", "counter",
                        "Store calls that failed (store unreachable, timeout, bad answer).");
    for (size_t op = 0; op < N_OPS && st == MD_OK; op++) {
        if (!touched[op])
            continue;
        bool stm = op < MD_STM_OP_COUNT;
        const char *labels[] = {"store", stm ? "stm" : "ltm", "op",
                                stm ? stm_op_names[op] : ltm_op_names[op - MD_STM_OP_COUNT],
                                NULL};
        st = put_u64(b, "memoryd_store_errors_total", labels, errors[op]);
    }
    return st;
}

static enum md_status prom_cache_pool(struct md_buf *b, const struct md_metrics_sample *s)
{
    static const char *const store_names[MD_STORE_COUNT] = {"stm", "ltm"};
    const char *none[] = {NULL};
    enum md_status st = put_family(b, "memoryd_cache_hits_total", "counter", "Cache hits.");
    if (st == MD_OK && s->has_cache)
        st = put_u64(b, "memoryd_cache_hits_total", none, s->cache.hits);
    if (st == MD_OK)
        st = put_family(b, "memoryd_cache_misses_total", "counter", "Cache misses.");
    if (st == MD_OK && s->has_cache)
        st = put_u64(b, "memoryd_cache_misses_total", none, s->cache.misses);
    if (st == MD_OK)
        st = put_family(b, "memoryd_cache_evictions_total", "counter",
                        "Cache entries evicted to make room.");
    if (st == MD_OK && s->has_cache)
        st = put_u64(b, "memoryd_cache_evictions_total", none, s->cache.evictions);
    if (st == MD_OK)
        st = put_family(b, "memoryd_cache_entries", "gauge", "Entries in the cache.");
    if (st == MD_OK && s->has_cache)
        st = put_u64(b, "memoryd_cache_entries", none, s->cache.entries);
    if (st == MD_OK)
        st = put_family(b, "memoryd_cache_bytes", "gauge", "Key and value bytes in the cache.");
    if (st == MD_OK && s->has_cache)
        st = put_u64(b, "memoryd_cache_bytes", none, s->cache.bytes);

    if (st == MD_OK)
        st = put_family(b, "memoryd_pool_connections", "gauge",
                        "Store connection pool: connections open, in use, and the maximum.");
    for (int k = 0; k < MD_STORE_COUNT && st == MD_OK; k++) {
        if (!s->has_pool[k] || s->pool[k].max <= 0)
            continue;
        const struct md_pool_stats *p = &s->pool[k];
        const char *lo[] = {"store", store_names[k], "state", "open", NULL};
        const char *lu[] = {"store", store_names[k], "state", "in_use", NULL};
        const char *lm[] = {"store", store_names[k], "state", "max", NULL};
        st = put_u64(b, "memoryd_pool_connections", lo, (uint64_t)MD_MAX(p->size, 0));
        if (st == MD_OK)
            st = put_u64(b, "memoryd_pool_connections", lu, (uint64_t)MD_MAX(p->in_use, 0));
        if (st == MD_OK)
            st = put_u64(b, "memoryd_pool_connections", lm, (uint64_t)p->max);
    }
    if (st == MD_OK)
        st = put_family(b, "memoryd_pool_waits_total", "counter",
                        "Pool checkouts that had to wait for a free connection.");
    for (int k = 0; k < MD_STORE_COUNT && st == MD_OK; k++) {
        if (!s->has_pool[k] || s->pool[k].max <= 0)
            continue;
        const char *l[] = {"store", store_names[k], NULL};
        st = put_u64(b, "memoryd_pool_waits_total", l, s->pool[k].waits);
    }
    if (st == MD_OK)
        st = put_family(b, "memoryd_pool_timeouts_total", "counter",
                        "Pool checkouts that gave up waiting.");
    for (int k = 0; k < MD_STORE_COUNT && st == MD_OK; k++) {
        if (!s->has_pool[k] || s->pool[k].max <= 0)
            continue;
        const char *l[] = {"store", store_names[k], NULL};
        st = put_u64(b, "memoryd_pool_timeouts_total", l, s->pool[k].timeouts);
    }
    return st;
}

static enum md_status prom_handlers(struct md_buf *b, const struct md_metrics_extra *x)
{
    enum md_status st = put_family(b, "memoryd_http_handler_threads", "gauge",
                                   "Handler threads of API_THREAD_MODE=pool: running, and busy "
                                   "with a request (at most one per connection).");
    if (st == MD_OK && x && x->has_handlers) {
        const char *lr[] = {"state", "running", NULL};
        const char *lb[] = {"state", "busy", NULL};
        st = put_u64(b, "memoryd_http_handler_threads", lr, (uint64_t)MD_MAX(x->handler_threads, 0));
        if (st == MD_OK)
            st = put_u64(b, "memoryd_http_handler_threads", lb, (uint64_t)MD_MAX(x->handler_busy, 0));
    }
    if (st == MD_OK)
        st = put_family(b, "memoryd_http_handler_queue", "gauge",
                        "Requests waiting for a handler thread (API_THREAD_MODE=pool).");
    if (st == MD_OK && x && x->has_handlers) {
        const char *none[] = {NULL};
        st = put_u64(b, "memoryd_http_handler_queue", none, (uint64_t)MD_MAX(x->handler_queued, 0));
    }
    return st;
}

static enum md_status prom_alerts(struct md_buf *b, const struct md_metrics_extra *x)
{
    enum md_status st = put_family(b, "memoryd_alert_firing", "gauge",
                                   "1 while the alert rule is firing, else 0.");
    for (size_t i = 0; x && i < x->n_alerts && st == MD_OK; i++) {
        const char *l[] = {"alert", x->alerts[i].name ? x->alerts[i].name : "", NULL};
        st = put_u64(b, "memoryd_alert_firing", l, x->alerts[i].firing ? 1 : 0);
    }
    if (st == MD_OK)
        st = put_family(b, "memoryd_alert_webhook_deliveries_total", "counter",
                        "Alert webhook deliveries by result (sent, failed, dropped).");
    if (st == MD_OK && x && x->has_webhook_stats) {
        const char *ls[] = {"result", "sent", NULL};
        const char *lf[] = {"result", "failed", NULL};
        const char *ld[] = {"result", "dropped", NULL};
        st = put_u64(b, "memoryd_alert_webhook_deliveries_total", ls, x->webhook_sent);
        if (st == MD_OK)
            st = put_u64(b, "memoryd_alert_webhook_deliveries_total", lf, x->webhook_failed);
        if (st == MD_OK)
            st = put_u64(b, "memoryd_alert_webhook_deliveries_total", ld, x->webhook_dropped);
    }
    return st;
}

static enum md_status prom_windows(struct md_metrics *m, struct md_buf *b)
{
    struct md_window w[MD_METRIC_COUNT];
    for (int i = 0; i < MD_METRIC_COUNT; i++)
        md_metrics_window(m, (enum md_metric)i, &w[i]);
    enum md_status st = MD_OK;
    char name[96], help[160];
    for (int i = 0; i < MD_METRIC_COUNT && st == MD_OK; i++) {
        snprintf(name, sizeof(name), "memoryd_window_%s", metric_names[i]);
        snprintf(help, sizeof(help),
                 "Seed metric %s over a sliding window (1m, 15m): avg and p95; "
                 "absent while the window has no samples.",
                 metric_names[i]);
        st = put_family(b, name, "gauge", help);
        const struct {
            const char *window, *stat;
            double v;
        } rows[] = {{"1m", "avg", w[i].current},
                    {"1m", "p95", w[i].p95_1m},
                    {"15m", "avg", w[i].average},
                    {"15m", "p95", w[i].p95}};
        for (size_t r = 0; r < MD_ARRAY_LEN(rows) && st == MD_OK; r++) {
            if (isnan(rows[r].v))
                continue;
            const char *l[] = {"window", rows[r].window, "stat", rows[r].stat, NULL};
            st = put_f64(b, name, l, rows[r].v);
        }
    }
    if (st == MD_OK)
        st = put_family(b, "memoryd_window_samples", "gauge",
                        "Samples behind each seed metric's window (calls, requests, lookups "
                        "or pool ticks).");
    for (int i = 0; i < MD_METRIC_COUNT && st == MD_OK; i++) {
        const char *l1[] = {"metric", metric_names[i], "window", "1m", NULL};
        const char *l15[] = {"metric", metric_names[i], "window", "15m", NULL};
        st = put_u64(b, "memoryd_window_samples", l1, w[i].samples_1m);
        if (st == MD_OK)
            st = put_u64(b, "memoryd_window_samples", l15, w[i].samples_15m);
    }
    return st;
}

enum md_status md_metrics_prometheus(struct md_metrics *m, struct md_buf *out,
                                     const struct md_metrics_extra *x)
{
    struct md_metrics_sample s;
    md_metrics_last_sample(m, &s);
    if (x && x->has_cache) {
        s.has_cache = true;
        s.cache = x->cache;
    }
    for (int k = 0; x && k < MD_STORE_COUNT; k++) {
        if (x->has_pool[k]) {
            s.has_pool[k] = true;
            s.pool[k] = x->pool[k];
        }
    }
    const char *version = x && x->version ? x->version : MD_VERSION_STRING;
    double uptime = x && x->uptime_seconds >= 0 ? x->uptime_seconds : md_metrics_uptime_seconds(m);
    const char *lv[] = {"version", version, NULL};
    const char *none[] = {NULL};

    enum md_status st = put_family(out, "memoryd_build_info", "gauge",
                                   "Build information; the value is always 1.");
    if (st == MD_OK)
        st = put_u64(out, "memoryd_build_info", lv, 1);
    if (st == MD_OK)
        st = put_family(out, "memoryd_uptime_seconds", "gauge", "Seconds since start-up.");
    if (st == MD_OK)
        st = put_f64(out, "memoryd_uptime_seconds", none, floor(uptime * 1000.0) / 1000.0);
    if (st == MD_OK)
        st = prom_http(m, out);
    if (st == MD_OK)
        st = prom_store(m, out);
    if (st == MD_OK)
        st = prom_cache_pool(out, &s);
    if (st == MD_OK)
        st = prom_handlers(out, x);
    if (st == MD_OK)
        st = prom_alerts(out, x);
    if (st == MD_OK)
        st = prom_windows(m, out);
    return st;
}
