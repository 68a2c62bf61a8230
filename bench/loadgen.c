/*
 * loadgen.c — the benchmark's HTTP/1.1 load generator.
 *
 * Raw sockets + epoll, one thread, keep-alive, no pipelining: each of N
 * connections has at most one request in flight. Two modes:
 *
 *   closed loop (default)  every connection sends its next request as soon
 *                          as the previous answer is complete; latency is
 *                          measured from the send. With --pause-us P a
 *                          connection waits P µs after each answer before
 *                          it sends again (a client that thinks between
 *                          calls; latency is still measured from the send).
 *   open loop (--rate R)   requests are due at fixed intended times
 *                          t0 + i/R; a due request goes out on the first
 *                          idle connection and its latency is measured from
 *                          its INTENDED time, so a stalled server is charged
 *                          for the requests it kept waiting (no coordinated
 *                          omission).
 *
 * A run is a warm-up (sent, not recorded) and then a measured window of
 * --duration seconds, or exactly --count measured requests. Per operation it
 * reports requests/s and latency percentiles from a log-linear histogram
 * (64 sub-buckets per power of two: ≤ 1.6 % relative error, like
 * HdrHistogram with 2 significant digits), status codes, errors by class
 * and socket errors; for each --pid it reports the process's CPU time over
 * the window (utime + stime from /proc/PID/stat), CPU µs per request, and
 * its peak and current RSS (VmHWM, VmRSS). The loadgen's own CPU is reported
 * too: near 100 % of a core means the loadgen, not the server, was the limit.
 *
 * The workload is a spec file, one operation per line:
 *
 *   # comment
 *   header X-Api-Key: secret                       (sent with every request)
 *   op <name> <weight> <METHOD> <path> [<body>]   (body: rest of the line)
 *
 * Templates (path and body) take placeholders:
 *   {list}       a uniformly random line of --list list=FILE
 *   {list~z}     a Zipf(s=1) random line (line 1 the hottest)
 *   {list#}      the next line in order (a shared counter; wraps around)
 *   {x:url}      …percent-encoded        {x:or}  words joined by " OR ",
 *   {x:json}     …escaped for a JSON string         lower-cased (Lucene)
 *   {seq}        a process-wide counter from 1     {tag}  the --tag value
 * Within one request every occurrence of the same list is the same line.
 *
 * Output: one JSON object (stdout, or --out FILE). Exit status 0 when the
 * run completed, 1 on bad usage, 2 when no request succeeded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_OPS 32
#define MAX_LISTS 16
#define MAX_PIDS 4
#define MAX_HEADERS 8
#define MAX_CONNS 4096
#define RESP_MAX (64u << 20)
#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HIST_N (2 * SUB + 40 * SUB)
#define MAX_ERR_SAMPLES 3

/* ---- small helpers ------------------------------------------------------------ */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        die("out of memory");
    return d;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static double rnd01(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

/* growable byte buffer */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_need(struct sbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    sb_need(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    sb_need(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- histogram --------------------------------------------------------------------- */

struct hist {
    uint64_t c[HIST_N];
    uint64_t n, max, min;
    double sum;
};

static unsigned hist_index(uint64_t v)
{
    if (v < 2 * SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    unsigned idx = 2 * SUB + (shift - 1) * SUB + (unsigned)((v >> shift) - SUB);
    return idx < HIST_N ? idx : HIST_N - 1;
}

/* Upper edge of bucket i (conservative value reported for a percentile). */
static uint64_t hist_value(unsigned i)
{
    if (i < 2 * SUB)
        return i;
    unsigned shift = (i - 2 * SUB) / SUB + 1;
    uint64_t sub = (i - 2 * SUB) % SUB + SUB;
    return ((sub + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->c[hist_index(v)]++;
    h->n++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
    if (h->n == 1 || v < h->min)
        h->min = v;
}

static void hist_merge(struct hist *d, const struct hist *s)
{
    for (unsigned i = 0; i < HIST_N; i++)
        d->c[i] += s->c[i];
    if (s->n && (d->n == 0 || s->min < d->min))
        d->min = s->min;
    d->n += s->n;
    d->sum += s->sum;
    if (s->max > d->max)
        d->max = s->max;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_N; i++) {
        seen += h->c[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- lists and templates -------------------------------------------------------------- */

struct list {
    char *name;
    char **items;
    size_t n;
    double *zipf_cdf; /* built on first Zipf use */
    uint64_t next;    /* sequential picks */
};

static struct list lists[MAX_LISTS];
static size_t n_lists;

static struct list *list_find(const char *name, size_t len)
{
    for (size_t i = 0; i < n_lists; i++)
        if (strlen(lists[i].name) == len && memcmp(lists[i].name, name, len) == 0)
            return &lists[i];
    return NULL;
}

static void list_load(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        die("--list wants NAME=FILE, got '%s'", arg);
    if (n_lists == MAX_LISTS)
        die("too many lists");
    struct list *l = &lists[n_lists++];
    l->name = strndup(arg, (size_t)(eq - arg));
    FILE *f = fopen(eq + 1, "r");
    if (!f)
        die("cannot open list file '%s': %s", eq + 1, strerror(errno));
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (l->n == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            l->items = xrealloc(l->items, alloc * sizeof(*l->items));
        }
        l->items[l->n++] = xstrdup(line);
    }
    free(line);
    fclose(f);
    if (l->n == 0)
        die("list file '%s' is empty", eq + 1);
}

static size_t zipf_pick(struct list *l)
{
    if (!l->zipf_cdf) {
        l->zipf_cdf = xmalloc(l->n * sizeof(double));
        double s = 0;
        for (size_t i = 0; i < l->n; i++) {
            s += 1.0 / (double)(i + 1);
            l->zipf_cdf[i] = s;
        }
        for (size_t i = 0; i < l->n; i++)
            l->zipf_cdf[i] /= s;
    }
    double u = rnd01();
    size_t lo = 0, hi = l->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

enum piece_kind { P_TEXT, P_LIST, P_SEQ, P_TAG };
enum pick { PICK_UNIFORM, PICK_ZIPF, PICK_SEQ };
enum mod { MOD_NONE, MOD_URL, MOD_OR, MOD_JSON };

struct piece {
    enum piece_kind kind;
    char *text; /* P_TEXT */
    size_t len;
    struct list *list;
    enum pick pick;
    enum mod mod;
};

struct tmpl {
    struct piece *p;
    size_t n;
};

static const char *g_tag = "t";
static uint64_t g_seq;

static void tmpl_parse(struct tmpl *t, const char *s)
{
    t->p = NULL;
    t->n = 0;
    size_t alloc = 0;
    while (*s) {
        if (t->n == alloc) {
            alloc = alloc ? alloc * 2 : 8;
            t->p = xrealloc(t->p, alloc * sizeof(*t->p));
        }
        struct piece *pc = &t->p[t->n];
        memset(pc, 0, sizeof(*pc));
        const char *close = *s == '{' ? strchr(s, '}') : NULL;
        /* a placeholder is {identifier[~z|#][:mod]}; anything else is text (JSON braces) */
        size_t idlen = 0;
        if (close) {
            while (s + 1 + idlen < close && (isalnum((unsigned char)s[1 + idlen]) ||
                                              s[1 + idlen] == '_'))
                idlen++;
            const char *rest = s + 1 + idlen;
            if (idlen == 0 ||
                !(rest == close || *rest == '~' || *rest == '#' || *rest == ':'))
                close = NULL;
        }
        if (!close) {
            const char *e = s + 1;
            while (*e && *e != '{')
                e++;
            pc->kind = P_TEXT;
            pc->text = strndup(s, (size_t)(e - s));
            pc->len = (size_t)(e - s);
            s = e;
            t->n++;
            continue;
        }
        const char *name = s + 1, *rest = s + 1 + idlen;
        /* a {word…} that is not exactly a placeholder (Cypher maps such as
         * {rule_id: $id}) stays text */
        struct piece ph;
        memset(&ph, 0, sizeof(ph));
        bool is_ph = true;
        if (idlen == 3 && memcmp(name, "seq", 3) == 0)
            ph.kind = P_SEQ;
        else if (idlen == 3 && memcmp(name, "tag", 3) == 0)
            ph.kind = P_TAG;
        else {
            ph.kind = P_LIST;
            ph.list = list_find(name, idlen);
        }
        if (*rest == '~' && rest[1] == 'z') {
            ph.pick = PICK_ZIPF;
            rest += 2;
        } else if (*rest == '#') {
            ph.pick = PICK_SEQ;
            rest++;
        }
        if (*rest == ':') {
            size_t ml = (size_t)(close - rest - 1);
            if (ml == 3 && memcmp(rest + 1, "url", 3) == 0)
                ph.mod = MOD_URL;
            else if (ml == 2 && memcmp(rest + 1, "or", 2) == 0)
                ph.mod = MOD_OR;
            else if (ml == 4 && memcmp(rest + 1, "json", 4) == 0)
                ph.mod = MOD_JSON;
            else
                is_ph = false;
        } else if (rest != close) {
            is_ph = false;
        }
        if (is_ph && ph.kind == P_LIST && !ph.list)
            die("template names list '%.*s' but no --list %.*s=FILE was given", (int)idlen,
                name, (int)idlen, name);
        if (!is_ph) {
            const char *e = s + 1;
            while (*e && *e != '{')
                e++;
            pc->kind = P_TEXT;
            pc->text = strndup(s, (size_t)(e - s));
            pc->len = (size_t)(e - s);
            s = e;
            t->n++;
            continue;
        }
        *pc = ph;
        t->n++;
        s = close + 1;
    }
}

static void put_mod(struct sbuf *b, const char *v, enum mod mod)
{
    static const char hex[] = "0123456789ABCDEF";
    switch (mod) {
    case MOD_NONE:
        sb_adds(b, v);
        return;
    case MOD_URL:
        for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
            if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
                char c = (char)*p;
                sb_add(b, &c, 1);
            } else {
                char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
                sb_add(b, e, 3);
            }
        }
        return;
    case MOD_OR: {
        bool first = true;
        const char *p = v;
        while (*p) {
            while (*p == ' ')
                p++;
            if (!*p)
                break;
            if (!first)
                sb_adds(b, " OR ");
            first = false;
            while (*p && *p != ' ') {
                char c = (char)tolower((unsigned char)*p++);
                sb_add(b, &c, 1);
            }
        }
        return;
    }
    case MOD_JSON:
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\') {
                char e[2] = {'\\', *p};
                sb_add(b, e, 2);
            } else {
                sb_add(b, p, 1);
            }
        }
        return;
    }
}

/* Render t; picks[] caches the line chosen per list for this request. */
static void tmpl_render(const struct tmpl *t, struct sbuf *b, long *picks)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct piece *pc = &t->p[i];
        switch (pc->kind) {
        case P_TEXT:
            sb_add(b, pc->text, pc->len);
            break;
        case P_SEQ:
            sb_printf(b, "%llu", (unsigned long long)++g_seq);
            break;
        case P_TAG:
            sb_adds(b, g_tag);
            break;
        case P_LIST: {
            struct list *l = pc->list;
            size_t li = (size_t)(l - lists);
            if (picks[li] < 0) {
                size_t k;
                if (pc->pick == PICK_ZIPF)
                    k = zipf_pick(l);
                else if (pc->pick == PICK_SEQ)
                    k = (size_t)(l->next++ % l->n);
                else
                    k = (size_t)(rnd() % l->n);
                picks[li] = (long)k;
            }
            put_mod(b, l->items[picks[li]], pc->mod);
            break;
        }
        }
    }
}

/* ---- the workload ------------------------------------------------------------------------ */

struct errs {
    uint64_t c4xx, c5xx, other, sock;
};

struct op {
    char *name;
    double weight;
    char method[16];
    struct tmpl path, body;
    bool has_body;
    struct hist h;
    struct errs e;
    uint64_t status[6]; /* by class 0..5 */
    uint64_t bytes_in;
    int samples;
};

static struct op ops[MAX_OPS];
static size_t n_ops;
static double weight_total;
static char *headers[MAX_HEADERS];
static size_t n_headers;

static void spec_load(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        die("cannot open spec '%s': %s", file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            continue;
        if (strncmp(s, "header ", 7) == 0) {
            if (n_headers == MAX_HEADERS)
                die("%s:%d: too many headers", file, lineno);
            headers[n_headers++] = xstrdup(s + 7);
            continue;
        }
        if (strncmp(s, "op ", 3) != 0)
            die("%s:%d: expected 'op' or 'header'", file, lineno);
        if (n_ops == MAX_OPS)
            die("%s:%d: too many ops", file, lineno);
        struct op *o = &ops[n_ops];
        memset(o, 0, sizeof(*o));
        char name[64], method[16], path[4096];
        int consumed = 0;
        if (sscanf(s + 3, "%63s %lf %15s %4095s %n", name, &o->weight, method, path,
                   &consumed) < 4)
            die("%s:%d: expected: op NAME WEIGHT METHOD PATH [BODY]", file, lineno);
        o->name = xstrdup(name);
        snprintf(o->method, sizeof(o->method), "%s", method);
        tmpl_parse(&o->path, path);
        const char *body = s + 3 + consumed;
        if (consumed > 0 && *body) {
            tmpl_parse(&o->body, body);
            o->has_body = true;
        }
        if (o->weight <= 0)
            die("%s:%d: weight must be > 0", file, lineno);
        weight_total += o->weight;
        n_ops++;
    }
    free(line);
    fclose(f);
    if (n_ops == 0)
        die("spec '%s' has no op", file);
}

static size_t pick_op(void)
{
    if (n_ops == 1)
        return 0;
    double u = rnd01() * weight_total;
    for (size_t i = 0; i < n_ops; i++) {
        if (u < ops[i].weight)
            return i;
        u -= ops[i].weight;
    }
    return n_ops - 1;
}

/* ---- connections ----------------------------------------------------------------------------- */

enum cstate { C_IDLE, C_WRITING, C_READING, C_DEAD };

struct conn {
    int fd;
    enum cstate st;
    size_t op;
    int64_t t_start; /* latency origin (send, or intended time in open loop) */
    int64_t ready_at; /* closed loop with --pause-us: no send before this */
    bool record;
    struct sbuf out;
    size_t out_off;
    struct sbuf in;
    /* response parse state */
    bool hdr_done, chunked, close_after;
    int status;
    size_t body_at;      /* offset of the body in in */
    long long clen;      /* -1 unknown */
    size_t chunk_pos;    /* chunked: parse position */
    long long chunk_left; /* bytes of chunk data left (-1: expecting a size line) */
    bool chunk_done;
};

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static char g_hostport[300];
static int g_epfd;

static void resolve(const char *host, const char *port)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc)
        die("cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
    memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
    g_addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(g_hostport, sizeof(g_hostport), "%s:%s", host, port);
}

static bool conn_open(struct conn *c)
{
    c->fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    if (connect(c->fd, (struct sockaddr *)&g_addr, g_addrlen) != 0) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(g_epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->st = C_IDLE;
    return true;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->st = C_DEAD;
}

static void set_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void build_request(struct conn *c, size_t op)
{
    struct op *o = &ops[op];
    long picks[MAX_LISTS];
    for (size_t i = 0; i < MAX_LISTS; i++)
        picks[i] = -1;
    c->out.len = 0;
    c->out_off = 0;
    sb_adds(&c->out, o->method);
    sb_adds(&c->out, " ");
    tmpl_render(&o->path, &c->out, picks);
    sb_adds(&c->out, " HTTP/1.1\r\nHost: ");
    sb_adds(&c->out, g_hostport);
    sb_adds(&c->out, "\r\n");
    for (size_t i = 0; i < n_headers; i++) {
        sb_adds(&c->out, headers[i]);
        sb_adds(&c->out, "\r\n");
    }
    if (o->has_body) {
        static struct sbuf body;
        body.len = 0;
        tmpl_render(&o->body, &body, picks);
        sb_printf(&c->out, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                  body.len);
        sb_add(&c->out, body.p, body.len);
    } else {
        sb_adds(&c->out, "\r\n");
    }
}

/* ---- the run ----------------------------------------------------------------------------------- */

static struct conn *conns;
static int n_conns = 16;
static double duration_s = 5, warmup_s = 1, rate;
static int64_t pause_ns; /* --pause-us, closed loop only */
static uint64_t count_target;
static bool measuring, stopping;
static int64_t t_measure0, t_measure1;
static uint64_t measured_done, sent_total;
static uint64_t open_next; /* open loop: index of the next due request */
static int64_t open_t0;
static const char *label = "";
static int verbose_errors = 1;

struct proc {
    char name[64];
    int pid;
    double cpu0, cpu1; /* seconds */
    long hwm_kb, rss_kb;
};

static struct proc procs[MAX_PIDS];
static size_t n_procs;

static double proc_cpu(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* fields after ')': state(3) … utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void proc_mem(struct proc *p)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", p->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmHWM:", 6) == 0)
            p->hwm_kb = atol(line + 6);
        else if (strncmp(line, "VmRSS:", 6) == 0)
            p->rss_kb = atol(line + 6);
    }
    fclose(f);
}

static double self_cpu0, self_cpu1;

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void start_measuring(int64_t t)
{
    measuring = true;
    t_measure0 = t;
    for (size_t i = 0; i < n_procs; i++)
        procs[i].cpu0 = proc_cpu(procs[i].pid);
    self_cpu0 = self_cpu();
}

static void stop_measuring(int64_t t)
{
    if (!measuring)
        return;
    measuring = false;
    stopping = true;
    t_measure1 = t;
    for (size_t i = 0; i < n_procs; i++) {
        procs[i].cpu1 = proc_cpu(procs[i].pid);
        proc_mem(&procs[i]);
    }
    self_cpu1 = self_cpu();
}

static void send_on(struct conn *c, int64_t origin)
{
    if (c->st == C_DEAD && !conn_open(c)) {
        if (measuring)
            ops[pick_op()].e.sock++;
        return;
    }
    c->op = pick_op();
    build_request(c, c->op);
    c->t_start = origin;
    c->record = measuring;
    c->in.len = 0;
    c->hdr_done = c->chunked = c->close_after = c->chunk_done = false;
    c->clen = -1;
    c->status = 0;
    c->chunk_left = -1;
    sent_total++;
    ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) {
        if (c->record)
            ops[c->op].e.sock++;
        conn_close(c);
        return;
    }
    c->out_off = w > 0 ? (size_t)w : 0;
    if (c->out_off < c->out.len) {
        c->st = C_WRITING;
        set_events(c, EPOLLOUT);
    } else {
        c->st = C_READING;
    }
}

/* Find "\r\n\r\n" and parse the status line and the headers we need. */
static bool parse_headers(struct conn *c)
{
    char *end = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
    if (!end)
        return false;
    c->hdr_done = true;
    c->body_at = (size_t)(end - c->in.p) + 4;
    if (c->in.len < 12 || strncmp(c->in.p, "HTTP/1.", 7) != 0)
        c->status = 0;
    else
        c->status = atoi(c->in.p + 9);
    for (char *l = memmem(c->in.p, c->body_at, "\r\n", 2); l && l < end;
         l = memmem(l + 2, (size_t)(end - l), "\r\n", 2)) {
        char *h = l + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            c->clen = atoll(h + 15);
        else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0 && strcasestr(h, "chunked") &&
                 strcasestr(h, "chunked") < end)
            c->chunked = true;
        else if (strncasecmp(h, "Connection:", 11) == 0) {
            char *v = h + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                c->close_after = true;
        }
    }
    c->chunk_pos = c->body_at;
    return true;
}

/* true when the body is complete */
static bool parse_chunks(struct conn *c)
{
    for (;;) {
        if (c->chunk_done) {
            /* trailer: wait for the empty line */
            char *e = memmem(c->in.p + c->chunk_pos, c->in.len - c->chunk_pos, "\r\n", 2);
            if (!e)
                return false;
            if (e == c->in.p + c->chunk_pos)
                return true;
            c->chunk_pos = (size_t)(e - c->in.p) + 2;
            continue;
        }
        if (c->chunk_left < 0) {
            char *e = memmem(c->in.p + c->chunk_pos, c->in.len - c->chunk_pos, "\r\n", 2);
            if (!e)
                return false;
            long long sz = strtoll(c->in.p + c->chunk_pos, NULL, 16);
            c->chunk_pos = (size_t)(e - c->in.p) + 2;
            if (sz == 0) {
                c->chunk_done = true;
                continue;
            }
            c->chunk_left = sz + 2; /* data + CRLF */
        }
        size_t avail = c->in.len - c->chunk_pos;
        if ((long long)avail < c->chunk_left) {
            return false;
        }
        c->chunk_pos += (size_t)c->chunk_left;
        c->chunk_left = -1;
    }
}

static void finish(struct conn *c, int64_t t)
{
    struct op *o = &ops[c->op];
    bool rec = c->record && (measuring || count_target) && !(stopping && !count_target);
    if (rec) {
        int cls = c->status / 100;
        if (cls < 0 || cls > 5)
            cls = 0;
        o->status[cls]++;
        o->bytes_in += c->in.len;
        if (cls == 2) {
            hist_add(&o->h, (uint64_t)((t - c->t_start) / 1000 > 0 ? (t - c->t_start) / 1000 : 1));
        } else {
            if (cls == 4)
                o->e.c4xx++;
            else if (cls == 5)
                o->e.c5xx++;
            else
                o->e.other++;
            if (o->samples < MAX_ERR_SAMPLES && verbose_errors) {
                o->samples++;
                fprintf(stderr, "loadgen[%s] %s: HTTP %d: %.300s\n", label, o->name, c->status,
                        c->in.p + c->body_at);
            }
        }
        measured_done++;
    }
    c->st = C_IDLE;
    if (c->close_after)
        conn_close(c);
}

static void on_readable(struct conn *c, int64_t *t)
{
    for (;;) {
        sb_need(&c->in, 16384);
        ssize_t r = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (r > 0) {
            c->in.len += (size_t)r;
            c->in.p[c->in.len] = '\0';
            if (c->in.len > RESP_MAX)
                break;
            if ((size_t)r < c->in.cap - c->in.len)
                break; /* probably drained */
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        /* EOF or error */
        if (c->st == C_READING || c->st == C_WRITING) {
            if (c->record && (measuring || count_target))
                ops[c->op].e.sock++;
        }
        conn_close(c);
        return;
    }
    if (c->st != C_READING)
        return;
    if (!c->hdr_done && !parse_headers(c))
        return;
    bool done;
    if (c->chunked)
        done = parse_chunks(c);
    else if (c->clen >= 0)
        done = c->in.len >= c->body_at + (size_t)c->clen;
    else
        done = c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200);
    if (!done)
        return;
    *t = now_ns();
    finish(c, *t);
}

static void on_writable(struct conn *c)
{
    ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno == EAGAIN)
            return;
        if (c->record)
            ops[c->op].e.sock++;
        conn_close(c);
        return;
    }
    c->out_off += (size_t)w;
    if (c->out_off == c->out.len) {
        c->st = C_READING;
        set_events(c, EPOLLIN);
    }
}

static int64_t open_due(uint64_t i)
{
    return open_t0 + (int64_t)((double)i * 1e9 / rate);
}

static void json_hist(struct sbuf *b, const struct hist *h, double secs)
{
    sb_printf(b,
              "\"count\":%llu,\"rps\":%.1f,\"mean_us\":%.1f,\"min_us\":%llu,\"p50_us\":%llu,"
              "\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu",
              (unsigned long long)h->n, secs > 0 ? (double)h->n / secs : 0.0,
              h->n ? h->sum / (double)h->n : 0.0, (unsigned long long)h->min,
              (unsigned long long)hist_pct(h, 50), (unsigned long long)hist_pct(h, 90),
              (unsigned long long)hist_pct(h, 99), (unsigned long long)hist_pct(h, 99.9),
              (unsigned long long)h->max);
}

static void usage(void)
{
    fputs("usage: loadgen --url http://HOST:PORT --spec FILE [--list NAME=FILE]...\n"
          "               [--conns N] [--duration S] [--warmup S] [--count N] [--rate R]\n"
          "               [--pause-us P]\n"
          "               [--pid NAME=PID]... [--label L] [--tag T] [--seed N] [--out FILE]\n",
          stderr);
    exit(1);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *spec = NULL, *out = NULL;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, true))
        if (ARG("--url"))
            url = v;
        else if (ARG("--spec"))
            spec = v;
        else if (ARG("--list"))
            list_load(v);
        else if (ARG("--conns"))
            n_conns = atoi(v);
        else if (ARG("--duration"))
            duration_s = atof(v);
        else if (ARG("--warmup"))
            warmup_s = atof(v);
        else if (ARG("--count"))
            count_target = strtoull(v, NULL, 10);
        else if (ARG("--rate"))
            rate = atof(v);
        else if (ARG("--pause-us"))
            pause_ns = (int64_t)(atof(v) * 1000.0);
        else if (ARG("--label"))
            label = v;
        else if (ARG("--tag"))
            g_tag = v;
        else if (ARG("--seed"))
            seed = strtoull(v, NULL, 10);
        else if (ARG("--out"))
            out = v;
        else if (ARG("--quiet-errors"))
            verbose_errors = atoi(v) ? 0 : 1;
        else if (ARG("--pid")) {
            const char *eq = strchr(v, '=');
            if (!eq || n_procs == MAX_PIDS)
                usage();
            struct proc *p = &procs[n_procs++];
            snprintf(p->name, sizeof(p->name), "%.*s", (int)(eq - v), v);
            p->pid = atoi(eq + 1);
        } else
            usage();
#undef ARG
    }
    if (!url || !spec || n_conns < 1 || n_conns > MAX_CONNS || pause_ns < 0 ||
        (pause_ns > 0 && rate > 0)) /* a pause only means something in closed loop */
        usage();
    /* splitmix64 of the seed: xorshift must never start from 0 (seed 1 used
     * to cancel the initial state and pin every "random" pick to line 1) */
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    rng_state = (z ^ (z >> 31)) | 1;
    for (int k = 0; k < 8; k++)
        rnd();
    if (strncmp(url, "http://", 7) != 0)
        die("only http:// URLs");
    char host[256], port[16] = "80";
    const char *hp = url + 7, *colon = strchr(hp, ':'), *slash = strchr(hp, '/');
    if (!slash)
        slash = hp + strlen(hp);
    if (colon && colon < slash) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
        snprintf(port, sizeof(port), "%.*s", (int)(slash - colon - 1), colon + 1);
    } else {
        snprintf(host, sizeof(host), "%.*s", (int)(slash - hp), hp);
    }
    resolve(host, port);
    spec_load(spec);

    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)n_conns, sizeof(*conns));
    if (!conns)
        die("out of memory");
    for (int i = 0; i < n_conns; i++) {
        conns[i].fd = -1;
        if (!conn_open(&conns[i]))
            die("cannot connect to %s: %s", g_hostport, strerror(errno));
    }

    int64_t t0 = now_ns();
    int64_t warm_end = t0 + (int64_t)(warmup_s * 1e9);
    if (warmup_s <= 0 || count_target)
        start_measuring(t0), warm_end = t0;
    int64_t end = warm_end + (int64_t)(duration_s * 1e9);
    int64_t drain_deadline = 0;
    open_t0 = t0;
    struct epoll_event evs[256];
    int64_t t = t0;
    for (;;) {
        t = now_ns();
        if (!measuring && !stopping && t >= warm_end)
            start_measuring(t);
        if (measuring && ((!count_target && t >= end) ||
                          (count_target && measured_done >= count_target)))
            stop_measuring(t);
        if (stopping && !drain_deadline)
            drain_deadline = t + 10000000000LL;
        /* dispatch */
        int busy = 0;
        for (int i = 0; i < n_conns; i++) {
            struct conn *c = &conns[i];
            if (!stopping && (c->st == C_IDLE || c->st == C_DEAD)) {
                if (count_target && sent_total >= count_target)
                    continue;
                if (rate > 0) {
                    int64_t due = open_due(open_next);
                    if (due > t)
                        continue;
                    open_next++;
                    send_on(c, due);
                } else if (pause_ns > 0 && c->ready_at > t) {
                    continue;
                } else {
                    send_on(c, t);
                }
            }
            if (c->st == C_READING || c->st == C_WRITING)
                busy++;
        }
        if (stopping && (busy == 0 || t >= drain_deadline))
            break;
        int timeout = 100;
        if (rate > 0 && !stopping) {
            int64_t due = open_due(open_next) - now_ns();
            timeout = due <= 0 ? 0 : (int)((due + 999999) / 1000000);
            if (timeout > 100)
                timeout = 100;
        }
        if (!measuring && !stopping && warm_end > t && (warm_end - t) / 1000000 < timeout)
            timeout = (int)((warm_end - t) / 1000000) + 1;
        if (measuring && !count_target && end > t && (end - t) / 1000000 < timeout)
            timeout = (int)((end - t) / 1000000) + 1;
        int n;
        if (pause_ns > 0) { /* wake for the first pause that ends: µs, not ms */
            int64_t timeout_ns = (int64_t)timeout * 1000000;
            for (int i = 0; !stopping && i < n_conns; i++)
                if (conns[i].st == C_IDLE && conns[i].ready_at > t &&
                    conns[i].ready_at - t < timeout_ns)
                    timeout_ns = conns[i].ready_at - t;
            struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
            n = epoll_pwait2(g_epfd, evs, 256, &ts, NULL);
        } else {
            n = epoll_wait(g_epfd, evs, 256, timeout);
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (c->fd < 0)
                continue;
            if (evs[k].events & EPOLLOUT && c->st == C_WRITING)
                on_writable(c);
            if (c->fd >= 0 && evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                int64_t tt = t;
                on_readable(c, &tt);
                /* closed loop: send the next request on this connection at once */
                if (!stopping && rate <= 0 && (c->st == C_IDLE || c->st == C_DEAD) &&
                    !(count_target && sent_total >= count_target)) {
                    if (measuring && ((count_target && measured_done >= count_target)))
                        continue;
                    if (measuring && !count_target && tt >= end)
                        continue;
                    if (pause_ns > 0) { /* sent by the dispatch loop once the pause is over */
                        c->ready_at = now_ns() + pause_ns;
                        continue;
                    }
                    send_on(c, now_ns());
                }
            }
        }
    }
    if (measuring)
        stop_measuring(now_ns());
    for (int i = 0; i < n_conns; i++)
        conn_close(&conns[i]);

    double secs = (double)(t_measure1 - t_measure0) / 1e9;
    struct hist all;
    memset(&all, 0, sizeof(all));
    struct errs te = {0, 0, 0, 0};
    uint64_t ok = 0;
    struct sbuf b = {0};
    sb_printf(&b, "{\"label\":\"%s\",\"mode\":\"%s\",\"conns\":%d,\"rate\":%.1f,"
              "\"pause_us\":%.1f,\"seconds\":%.3f,",
              label, rate > 0 ? "open" : "closed", n_conns, rate, (double)pause_ns / 1000.0, secs);
    sb_adds(&b, "\"ops\":{");
    for (size_t i = 0; i < n_ops; i++) {
        struct op *o = &ops[i];
        hist_merge(&all, &o->h);
        te.c4xx += o->e.c4xx;
        te.c5xx += o->e.c5xx;
        te.other += o->e.other;
        te.sock += o->e.sock;
        ok += o->h.n;
        sb_printf(&b, "%s\"%s\":{", i ? "," : "", o->name);
        json_hist(&b, &o->h, secs);
        sb_printf(&b,
                  ",\"errors\":{\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu,\"socket\":%llu},"
                  "\"bytes_in\":%llu}",
                  (unsigned long long)o->e.c4xx, (unsigned long long)o->e.c5xx,
                  (unsigned long long)o->e.other, (unsigned long long)o->e.sock,
                  (unsigned long long)o->bytes_in);
    }
    sb_adds(&b, "},\"all\":{");
    json_hist(&b, &all, secs);
    uint64_t nerr = te.c4xx + te.c5xx + te.other + te.sock;
    sb_printf(&b,
              ",\"errors\":{\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu,\"socket\":%llu,"
              "\"total\":%llu}},",
              (unsigned long long)te.c4xx, (unsigned long long)te.c5xx,
              (unsigned long long)te.other, (unsigned long long)te.sock,
              (unsigned long long)nerr);
    sb_adds(&b, "\"procs\":{");
    for (size_t i = 0; i < n_procs; i++) {
        struct proc *p = &procs[i];
        double cpu = p->cpu0 >= 0 && p->cpu1 >= 0 ? p->cpu1 - p->cpu0 : -1;
        uint64_t reqs = all.n + nerr;
        sb_printf(&b,
                  "%s\"%s\":{\"pid\":%d,\"cpu_s\":%.3f,\"cpu_pct\":%.1f,\"cpu_us_per_req\":%.2f,"
                  "\"rss_peak_kb\":%ld,\"rss_kb\":%ld}",
                  i ? "," : "", p->name, p->pid, cpu, secs > 0 ? 100.0 * cpu / secs : 0.0,
                  reqs ? cpu * 1e6 / (double)reqs : 0.0, p->hwm_kb, p->rss_kb);
    }
    double lg = self_cpu1 - self_cpu0;
    sb_printf(&b, "},\"loadgen\":{\"cpu_s\":%.3f,\"cpu_pct\":%.1f}}\n", lg,
              secs > 0 ? 100.0 * lg / secs : 0.0);
    if (out) {
        FILE *f = fopen(out, "w");
        if (!f)
            die("cannot write '%s': %s", out, strerror(errno));
        fputs(b.p, f);
        fclose(f);
    } else {
        fputs(b.p, stdout);
    }
    return ok > 0 ? 0 : 2;
}
