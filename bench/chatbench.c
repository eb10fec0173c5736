/*
 * chatbench: WebSocket load generator for ngx_chat, and for nchan as a
 * point of comparison.  Loopback only.  Run "chatbench --help".
 * Subscribers may use the HTTP transports instead (--sub-transport):
 * Server-Sent Events, or long polling (ngx_chat only); the senders stay
 * WebSockets (ngx_chat) or HTTP POSTs (nchan).
 *
 * The parent forks --procs clients (a process may not hold more than
 * 20,000 files), each with its own epoll loop, and talks to them over
 * pipes: "ready" when their connections are up, "go" with a common
 * CLOCK_MONOTONIC start time, then their counters and histogram.
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define CB_NS             1000000000LL
#define CB_MS             1000000LL
#define CB_MAX_FRAME      (1 << 20)
#define CB_RDBUF_SIZE     (3 * CB_MAX_FRAME)
#define CB_MAX_WBUF       (4 << 20)
#define CB_MAX_HDR        16384
#define CB_MAX_SIZE       (1 << 20)
#define CB_MAX_PROCS      256
#define CB_MAX_PIDS       64
#define CB_MAX_CODES      24
#define CB_MAX_ROOMS      1000000
#define CB_MAX_CONNS      10000000
#define CB_MAX_RECONNECTS 1000
#define CB_MAX_TOKENS     100000
#define CB_MAX_TOKEN_LEN  4096
#define CB_LATE_NS        (10 * CB_MS)
#define CB_QUIET_NS       CB_NS
#define CB_TICK_NS        (100 * CB_MS)
#define CB_SENDS_PER_TICK 2000
#define CB_POLL_TIMEOUT   25
#define CB_POLL_RETRIES   1000

/* log-linear: 128 exact values, then 128 buckets per power of two */
#define CB_HIST_SUB       128
#define CB_HIST_EXP       37
#define CB_HIST_N         (CB_HIST_SUB * (CB_HIST_EXP - 6))

#define CB_WS_KEY         "dGhlIHNhbXBsZSBub25jZQ=="

enum {
    ST_NONE = 0,
    ST_CONNECTING,
    ST_HS,
    ST_WELCOME,
    ST_JOINING,
    ST_READY,
    ST_PUB,
    ST_JOINFAIL,
    ST_CLOSED
};

enum { K_SUB = 0, K_PUB = 1, K_PIPE = 2 };

enum { PH_CONNECT = 0, PH_WAIT_GO, PH_RUN, PH_DRAIN, PH_DONE };

enum { MSG_READY = 1, MSG_RESULT = 2 };

enum { TR_WS = 0, TR_SSE, TR_POLL };

#define F_OUT  0x01
#define F_UP   0x02
#define F_ANS  0x04
#define F_WAIT 0x08         /* a refused poll, polled again at t_start */


typedef struct {
    u_char    *rbuf;        /* unparsed tail of the input */
    u_char    *frag;        /* unfinished fragmented message */
    u_char    *wbuf;        /* output the socket did not take */
    int64_t    t_start;
    int64_t    last_seq;
    int64_t    cursor;      /* long poll: the room's seq, -1 none yet */
    uint32_t   rlen;
    uint32_t   flen;
    uint32_t   wlen;
    uint32_t   idx;
    uint32_t   room;
    uint32_t   inflight;
    uint32_t   next_id;
    int        fd;
    uint16_t   reconnects;
    uint8_t    state;
    uint8_t    kind;
    uint8_t    frag_op;
    uint8_t    flags;
    uint8_t    tr;          /* TR_WS, TR_SSE, TR_POLL */
} cb_conn_t;


typedef struct {
    char       name[24];
    uint64_t   n;
} cb_code_t;


typedef struct {
    uint64_t   share;
    uint64_t   pubs;
    uint64_t   connected;
    uint64_t   ready;
    uint64_t   connect_failed;
    uint64_t   join_failed;
    uint64_t   pubs_connected;
    uint64_t   pubs_failed;
    uint64_t   pub_reconnects;
    uint64_t   sent;
    uint64_t   acked;
    uint64_t   errors;
    uint64_t   delivered;
    uint64_t   foreign;
    uint64_t   seq_gaps;
    uint64_t   closes_1013;
    uint64_t   closes_other;
    uint64_t   disconnects;
    uint64_t   proto_errors;
    uint64_t   behind;
    uint64_t   skipped;
    uint64_t   unacked;
    uint64_t   wbuf_full;
    uint64_t   lat_n;
    uint64_t   lat_max;
    uint64_t   other_events;
    uint64_t   polls;
    uint64_t   poll_retries;
    int64_t    t_first_start;
    int64_t    t_last_hs;
    int64_t    t_all_ready;
    int64_t    t_last_send;
    int64_t    t_last_delivery;
    int64_t    t_run_end;
    uint32_t   timed_out;
    uint32_t   ncodes;
    uint32_t   ncloses;
    uint32_t   pad;
    cb_code_t  codes[CB_MAX_CODES];
    cb_code_t  closes[CB_MAX_CODES];
} cb_stats_t;


typedef struct {
    int             nchan;
    int             transport;
    const char     *host;
    struct in_addr  addr;
    unsigned        port;
    const char     *path;
    const char     *sub_path;
    const char     *pub_path;
    const char     *prefix;
    uint64_t        conns;
    uint64_t        rooms;
    uint64_t        procs;
    uint64_t        sources;
    uint64_t        concurrency;
    uint64_t        senders;
    uint64_t        window;
    uint64_t        size;
    double          rate;
    double          duration;
    double          hold;
    double          drain;
    double          timeout;
    double          connect_timeout;
    pid_t           server_pids[CB_MAX_PIDS];
    int             nserver;
    pid_t           other_pids[CB_MAX_PIDS];
    int             nother;
    int             churn;
    const char     *token_file;
    char          **tokens;
    uint64_t        ntokens;
} cb_opts_t;


typedef struct {
    pid_t       pid;
    int         rfd;
    int         wfd;
    u_char     *buf;
    size_t      len;
    size_t      cap;
    int         ready;
    int         done;
    int         eof;
} cb_child_t;


typedef struct {
    uint64_t    rss_kb;
    uint64_t    cpu_ms;
    int         alive;
    uint64_t    pid_rss_kb[CB_MAX_PIDS];
    uint64_t    pid_cpu_ms[CB_MAX_PIDS];
} cb_sample_t;


static cb_opts_t   opt;
static uint32_t    run_id;

/* per client process */
static cb_stats_t  st;
static uint64_t   *hist;
static uint64_t   *room_sent;
static uint64_t   *room_acked;
static uint64_t   *room_deliv;
static cb_conn_t  *subs;
static cb_conn_t  *pubs;
static uint32_t    nsubs;
static uint32_t    npubs;
static uint32_t    nsenders;
static int         ep = -1;
static int         pipe_in = -1;
static int         pipe_out = -1;
static u_char     *rdbuf;
static u_char     *sbuf;
static u_char     *jbuf;
static uint32_t    cid;
static int         phase;
static int         ready_sent;
static int64_t     go_ns;
static int64_t     send_end_ns;
static int64_t     drain_end_ns;
static int64_t     last_ack_ns;
static int64_t     next_due;
static int64_t     retry_due = INT64_MAX;
static uint64_t    hs_inflight;
static uint64_t    pending;
static uint64_t    open_conns;
static uint64_t    next_start;
static uint64_t    total_msgs;
static uint64_t    sched_m;
static uint32_t    sched_li;
static uint32_t    mask_state = 2463534242u;
static int         log_budget = 5;
static struct sockaddr_in  dst;
static char        hostport[64];


static int64_t
mono(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * CB_NS + ts.tv_nsec;
}


static void
cb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
cb_log(const char *fmt, ...)
{
    va_list  ap;

    if (log_budget <= 0) {
        return;
    }

    log_budget--;
    fprintf(stderr, "chatbench[client %u]: ", cid);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "chatbench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}


/* ---------------------------------------------------------- histogram */

static unsigned
hist_idx(uint64_t v)
{
    unsigned  e;

    if (v < CB_HIST_SUB) {
        return (unsigned) v;
    }

    e = 63 - __builtin_clzll(v);

    if (e >= CB_HIST_EXP) {
        return CB_HIST_N - 1;
    }

    return CB_HIST_SUB + (e - 7) * CB_HIST_SUB
           + (unsigned) ((v >> (e - 7)) & (CB_HIST_SUB - 1));
}


static uint64_t
hist_val(unsigned i)
{
    unsigned  e, m;

    if (i < CB_HIST_SUB) {
        return i;
    }

    e = (i - CB_HIST_SUB) / CB_HIST_SUB + 7;
    m = (i - CB_HIST_SUB) % CB_HIST_SUB;

    return ((uint64_t) (CB_HIST_SUB + m) << (e - 7))
           + ((1ULL << (e - 7)) >> 1);
}


static uint64_t
hist_pct(const uint64_t *h, uint64_t n, uint64_t max, double q)
{
    uint64_t  want, acc, v;
    unsigned  i;

    if (n == 0) {
        return 0;
    }

    want = (uint64_t) (q * (double) n + 0.999999);
    if (want < 1) {
        want = 1;
    }

    acc = 0;

    for (i = 0; i < CB_HIST_N; i++) {
        acc += h[i];
        if (acc >= want) {
            v = hist_val(i);
            return v < max ? v : max;
        }
    }

    return max;
}


/* ---------------------------------------------------------- counters */

static void
code_add(cb_code_t *t, uint32_t *n, const char *name, size_t len,
    uint64_t cnt)
{
    uint32_t  i;

    if (len >= sizeof(t[0].name)) {
        len = sizeof(t[0].name) - 1;
    }

    for (i = 0; i < *n; i++) {
        if (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0) {
            t[i].n += cnt;
            return;
        }
    }

    if (*n == CB_MAX_CODES) {
        t[CB_MAX_CODES - 1].n += cnt;
        return;
    }

    if (*n == CB_MAX_CODES - 1) {
        name = "other";
        len = 5;
    }

    memcpy(t[*n].name, name, len);
    t[*n].name[len] = '\0';
    t[*n].n = cnt;
    (*n)++;
}


static void
close_add(unsigned code)
{
    char  name[16];
    int   n;

    if (code == 1013) {
        st.closes_1013++;
    } else {
        st.closes_other++;
    }

    n = snprintf(name, sizeof(name), "%u", code);
    code_add(st.closes, &st.ncloses, name, (size_t) n, 1);
}


static void
stats_merge(cb_stats_t *a, const cb_stats_t *b)
{
    uint32_t  i;

#define CB_ADD(f)  a->f += b->f
    CB_ADD(share); CB_ADD(pubs); CB_ADD(connected); CB_ADD(ready);
    CB_ADD(connect_failed); CB_ADD(join_failed); CB_ADD(pubs_connected);
    CB_ADD(pubs_failed); CB_ADD(pub_reconnects); CB_ADD(sent);
    CB_ADD(acked); CB_ADD(errors); CB_ADD(delivered); CB_ADD(foreign);
    CB_ADD(seq_gaps); CB_ADD(closes_1013); CB_ADD(closes_other);
    CB_ADD(disconnects); CB_ADD(proto_errors); CB_ADD(behind);
    CB_ADD(skipped); CB_ADD(unacked); CB_ADD(wbuf_full); CB_ADD(lat_n);
    CB_ADD(other_events); CB_ADD(polls); CB_ADD(poll_retries);
    CB_ADD(timed_out);
#undef CB_ADD

#define CB_MAX(f)  if (b->f > a->f) a->f = b->f
    CB_MAX(lat_max); CB_MAX(t_last_hs); CB_MAX(t_all_ready);
    CB_MAX(t_last_send); CB_MAX(t_last_delivery); CB_MAX(t_run_end);
#undef CB_MAX

    if (b->t_first_start
        && (a->t_first_start == 0 || b->t_first_start < a->t_first_start))
    {
        a->t_first_start = b->t_first_start;
    }

    for (i = 0; i < b->ncodes && i < CB_MAX_CODES; i++) {
        code_add(a->codes, &a->ncodes, b->codes[i].name,
                 strnlen(b->codes[i].name, sizeof(b->codes[i].name)),
                 b->codes[i].n);
    }

    for (i = 0; i < b->ncloses && i < CB_MAX_CODES; i++) {
        code_add(a->closes, &a->ncloses, b->closes[i].name,
                 strnlen(b->closes[i].name, sizeof(b->closes[i].name)),
                 b->closes[i].n);
    }
}


/* ---------------------------------------------------------- pipes */

static int
write_all(int fd, const void *p, size_t n)
{
    const u_char  *b = p;
    ssize_t        w;
    unsigned       guard;

    for (guard = 0; n > 0 && guard < 1000000; guard++) {
        w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        b += w;
        n -= (size_t) w;
    }

    return n == 0 ? 0 : -1;
}


static int
msg_send(int fd, uint32_t type, const void *p, size_t n, size_t extra)
{
    uint32_t  h[2];

    h[0] = type;
    h[1] = (uint32_t) (n + extra);

    if (write_all(fd, h, sizeof(h)) != 0) {
        return -1;
    }

    return write_all(fd, p, n);
}


/* ---------------------------------------------------------- sockets */

static void
conn_events(cb_conn_t *c, int out)
{
    struct epoll_event  ev;

    if (!!(c->flags & F_OUT) == !!out) {
        return;
    }

    ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
    ev.data.u64 = ((uint64_t) c->kind << 32) | (uint64_t) (c - (c->kind
                  == K_PUB ? pubs : subs));

    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) {
        c->flags = out ? (c->flags | F_OUT) : (c->flags & ~F_OUT);
    }
}


static void
settle(void)
{
    if (pending > 0 && --pending == 0) {
        st.t_all_ready = mono();
    }
}


static int conn_open(cb_conn_t *c, int64_t now);

static void
conn_close(cb_conn_t *c, int lost)
{
    int  was_pub;

    if (c->fd < 0) {
        return;
    }

    close(c->fd);
    c->fd = -1;
    open_conns--;

    free(c->rbuf);
    free(c->frag);
    free(c->wbuf);
    c->rbuf = NULL;
    c->frag = NULL;
    c->wbuf = NULL;
    c->rlen = 0;
    c->flen = 0;
    c->wlen = 0;
    c->frag_op = 0;
    c->flags &= ~F_OUT;

    if (c->kind == K_PUB) {
        /* only a connection that worked is reopened: no reconnect storm */
        was_pub = c->state == ST_PUB
                  && ((c->flags & F_ANS) || mono() - c->t_start >= CB_NS);
        c->flags &= ~F_ANS;

        if (!(c->flags & F_UP)) {
            hs_inflight--;
            st.pubs_failed++;
            settle();
        }

        c->state = ST_CLOSED;

        /* requests pipelined on a lost connection get no answer */
        st.unacked += c->inflight;
        c->inflight = 0;

        if (was_pub && lost && phase < PH_DONE
            && c->reconnects < CB_MAX_RECONNECTS)
        {
            c->reconnects++;
            st.pub_reconnects++;
            if (conn_open(c, mono()) != 0) {
                c->state = ST_CLOSED;
            }
        }

        return;
    }

    if (c->state == ST_CONNECTING || c->state == ST_HS) {
        hs_inflight--;
    }

    if (c->state < ST_READY) {
        if (c->state <= ST_HS) {
            st.connect_failed++;
        } else {
            st.join_failed++;
        }
        settle();

    } else if (lost) {
        st.disconnects++;
    }

    c->state = ST_CLOSED;
}


static void
conn_lost(cb_conn_t *c, int err)
{
    if (err && c->state != ST_PUB && c->state < ST_READY) {
        cb_log("connection %u: %s", c->idx, strerror(err));
    }

    conn_close(c, 1);
}


static int
conn_open(cb_conn_t *c, int64_t now)
{
    int                 fd, one;
    uint32_t            src;
    struct sockaddr_in  sa;
    struct epoll_event  ev;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cb_log("socket(): %s", strerror(errno));
        return -1;
    }

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (opt.sources) {
        /* the port is then chosen at connect() for the whole 4-tuple */
        (void) setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                          sizeof(one));
        src = (uint32_t) ((127u << 24) + 257u + c->idx % opt.sources);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(src);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
            cb_log("bind(): %s", strerror(errno));
            close(fd);
            return -1;
        }
    }

    if (connect(fd, (struct sockaddr *) &dst, sizeof(dst)) != 0
        && errno != EINPROGRESS)
    {
        cb_log("connect(): %s", strerror(errno));
        close(fd);
        return -1;
    }

    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u64 = ((uint64_t) c->kind << 32)
                  | (uint64_t) (c - (c->kind == K_PUB ? pubs : subs));

    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        cb_log("epoll_ctl(): %s", strerror(errno));
        close(fd);
        return -1;
    }

    c->fd = fd;
    c->flags |= F_OUT;
    c->state = ST_CONNECTING;
    c->t_start = now;
    open_conns++;

    return 0;
}


/* 0: written or queued; 1: dropped, queue full; -1: connection gone */
static int
conn_write(cb_conn_t *c, const u_char *p, size_t n)
{
    ssize_t  w;
    u_char  *nb;

    if (c->fd < 0) {
        return -1;
    }

    w = 0;

    if (c->wlen == 0 && c->state != ST_CONNECTING) {
        w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (w == (ssize_t) n) {
            return 0;
        }

        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_lost(c, errno);
                return -1;
            }
            w = 0;
        }

    } else if (c->wlen + n > CB_MAX_WBUF) {
        st.wbuf_full++;
        return 1;
    }

    nb = realloc(c->wbuf, c->wlen + (n - (size_t) w));
    if (nb == NULL) {
        conn_lost(c, ENOMEM);
        return -1;
    }

    memcpy(nb + c->wlen, p + w, n - (size_t) w);
    c->wbuf = nb;
    c->wlen += (uint32_t) (n - (size_t) w);

    if (c->state != ST_CONNECTING) {
        conn_events(c, 1);
    }

    return 0;
}


static void
conn_flush(cb_conn_t *c)
{
    ssize_t  w;

    if (c->wlen == 0) {
        conn_events(c, 0);
        return;
    }

    w = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_lost(c, errno);
        }
        return;
    }

    if ((uint32_t) w < c->wlen) {
        memmove(c->wbuf, c->wbuf + w, c->wlen - (size_t) w);
        c->wlen -= (uint32_t) w;
        return;
    }

    free(c->wbuf);
    c->wbuf = NULL;
    c->wlen = 0;
    conn_events(c, 0);
}


static int
ws_send(cb_conn_t *c, unsigned op, const u_char *p, size_t n)
{
    u_char    *b;
    size_t     i;
    uint32_t   m;
    u_char     mask[4];

    b = sbuf;
    *b++ = (u_char) (0x80 | op);

    if (n < 126) {
        *b++ = (u_char) (0x80 | n);

    } else if (n < 65536) {
        *b++ = 0x80 | 126;
        *b++ = (u_char) (n >> 8);
        *b++ = (u_char) n;

    } else {
        *b++ = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            *b++ = (u_char) ((uint64_t) n >> (56 - 8 * i));
        }
    }

    m = mask_state;
    m ^= m << 13;
    m ^= m >> 17;
    m ^= m << 5;
    mask_state = m;
    memcpy(mask, &m, 4);
    memcpy(b, mask, 4);
    b += 4;

    for (i = 0; i < n; i++) {
        b[i] = p[i] ^ mask[i & 3];
    }

    return conn_write(c, sbuf, (size_t) (b - sbuf) + n);
}


/* ---------------------------------------------------------- messages */

static const u_char *
json_after(const u_char *p, size_t n, const char *key)
{
    size_t         kl = strlen(key);
    const u_char  *q, *e;

    q = memmem(p, n, key, kl);
    if (q == NULL) {
        return NULL;
    }

    e = p + n;
    q += kl;

    while (q < e && *q == ' ') {
        q++;
    }

    return q < e ? q : NULL;
}


static int
json_is(const u_char *v, const u_char *e, const char *s)
{
    size_t  l = strlen(s);

    return v != NULL && (size_t) (e - v) > l && memcmp(v, s, l) == 0
           && v[l] == '"';
}


static int64_t
json_int(const u_char *p, size_t n, const char *key)
{
    const u_char  *q, *e;
    int64_t        v;
    int            digits;

    q = json_after(p, n, key);
    if (q == NULL) {
        return -1;
    }

    e = p + n;
    v = 0;

    for (digits = 0; q < e && *q >= '0' && *q <= '9' && digits < 18;
         q++, digits++)
    {
        v = v * 10 + (*q - '0');
    }

    return digits ? v : -1;
}


static int64_t
hex_parse(const u_char *p, unsigned n)
{
    uint64_t  v = 0;
    unsigned  i;
    u_char    ch;

    for (i = 0; i < n; i++) {
        ch = p[i];
        if (ch >= '0' && ch <= '9') {
            v = v << 4 | (uint64_t) (ch - '0');
        } else if (ch >= 'a' && ch <= 'f') {
            v = v << 4 | (uint64_t) (ch - 'a' + 10);
        } else {
            return -1;
        }
    }

    return (int64_t) (v & 0x7fffffffffffffffULL);
}


static u_char *
put_text(u_char *p)
{
    static const char  hex[] = "0123456789abcdef";
    uint64_t           t;
    int                i;

    t = (uint64_t) mono();

    for (i = 15; i >= 0; i--) {
        p[i] = (u_char) hex[t & 15];
        t >>= 4;
    }

    p[16] = ' ';
    t = run_id;

    for (i = 7; i >= 0; i--) {
        p[17 + i] = (u_char) hex[t & 15];
        t >>= 4;
    }

    memset(p + 25, 'x', opt.size - 25);

    return p + opt.size;
}


/* stamp of a text this run generated, -1 for anything else */
static int64_t
text_stamp(const u_char *p, size_t n)
{
    int64_t  t, r;

    if (n < 25 || p[16] != ' ') {
        return -1;
    }

    t = hex_parse(p, 16);
    r = hex_parse(p + 17, 8);

    return (t >= 0 && r == (int64_t) run_id) ? t : -1;
}


static void
delivered(cb_conn_t *c, int64_t stamp)
{
    int64_t   now;
    uint64_t  us;

    now = mono();
    us = now > stamp ? (uint64_t) (now - stamp) / 1000 : 0;

    hist[hist_idx(us)]++;
    st.lat_n++;
    if (us > st.lat_max) {
        st.lat_max = us;
    }

    st.delivered++;
    room_deliv[c->room]++;
    st.t_last_delivery = now;
}


static int
sender_ok(cb_conn_t *c)
{
    if (c->kind == K_PUB) {
        return c->state == ST_PUB
               || (c->state == ST_CONNECTING && (c->flags & F_UP));
    }

    return c->state == ST_READY;
}


static int
do_send(cb_conn_t *c, int64_t now)
{
    u_char  *p;
    int      n, rc;

    if (!sender_ok(c)) {
        return 1;
    }

    if (c->kind == K_PUB) {
        p = put_text(jbuf);
        n = snprintf((char *) sbuf, 1024, "POST %s%s%u HTTP/1.1\r\n"
                     "Host: %s\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     opt.pub_path, opt.prefix, c->room, hostport,
                     (size_t) (p - jbuf));
        memcpy(sbuf + n, jbuf, (size_t) (p - jbuf));
        rc = conn_write(c, sbuf, (size_t) n + (size_t) (p - jbuf));

    } else {
        p = jbuf;
        p += snprintf((char *) p, 512,
                      "{\"op\":\"send\",\"room\":\"%s%u\",\"text\":\"",
                      opt.prefix, c->room);
        p = put_text(p);
        p += snprintf((char *) p, 64, "\",\"id\":\"%u\"}", c->next_id++);
        rc = ws_send(c, 0x1, jbuf, (size_t) (p - jbuf));
    }

    if (rc != 0) {
        return rc;
    }

    st.sent++;
    room_sent[c->room]++;
    c->inflight++;
    st.t_last_send = now;

    return 0;
}


static void
sender_fill(cb_conn_t *c)
{
    int64_t   now;
    uint64_t  guard;

    if (opt.rate > 0 || phase != PH_RUN) {
        return;
    }

    now = mono();
    if (now < go_ns || now >= send_end_ns) {
        return;
    }

    for (guard = 0; guard < opt.window && c->inflight < opt.window; guard++)
    {
        if (do_send(c, now) != 0) {
            break;
        }
    }
}


static void
answered(cb_conn_t *c)
{
    last_ack_ns = mono();

    if (c->inflight) {
        c->inflight--;
    }

    sender_fill(c);
}


static int
chat_event(cb_conn_t *c, const u_char *p, size_t n)
{
    const u_char  *e, *t, *v;
    int64_t        seq, stamp;
    size_t         l;
    char           code[24];

    /* the same JSON by WebSocket, in an SSE data: line, in a poll answer */

    e = p + n;
    t = json_after(p, n, "\"type\":");
    if (t == NULL || *t != '"') {
        st.proto_errors++;
        return 0;
    }
    t++;

    if (json_is(t, e, "message")) {
        if (phase >= PH_RUN) {
            seq = json_int(p, n, "\"seq\":");
            if (c->last_seq >= 0 && seq != c->last_seq + 1) {
                st.seq_gaps++;
            }
            c->last_seq = seq;
        }

        v = json_after(p, n, "\"text\":\"");
        stamp = v ? text_stamp(v, (size_t) (e - v)) : -1;

        if (stamp < 0) {
            st.foreign++;
        } else {
            delivered(c, stamp);
        }

        return 0;
    }

    if (json_is(t, e, "ack")) {
        st.acked++;
        room_acked[c->room]++;
        answered(c);
        return 0;
    }

    if (json_is(t, e, "error")) {
        st.errors++;
        v = json_after(p, n, "\"code\":\"");
        l = 0;

        /* the code becomes a key of the RESULT line */
        while (v && v + l < e && v[l] != '"' && l < sizeof(code) - 1) {
            code[l] = (char) (((v[l] >= 'a' && v[l] <= 'z')
                               || (v[l] >= '0' && v[l] <= '9')) ? v[l] : '_');
            l++;
        }

        if (l == 0) {
            l = 7;
            memcpy(code, "unknown", 7);
        }

        code_add(st.codes, &st.ncodes, code, l, 1);

        if (c->state == ST_JOINING) {
            c->state = ST_JOINFAIL;
            st.join_failed++;
            settle();
            return 0;
        }

        if (json_after(p, n, "\"id\":") != NULL) {
            answered(c);
        }

        return 0;
    }

    if (json_is(t, e, "welcome")) {
        /* a stream's rooms are in its URL: their joined events follow */
        if (c->state == ST_WELCOME && c->tr != TR_WS) {
            c->state = ST_JOINING;
            return 0;
        }

        if (c->state == ST_WELCOME && opt.churn) {
            c->state = ST_READY;
            st.ready++;
            settle();
            conn_close(c, 0);
            return -1;
        }

        if (c->state == ST_WELCOME) {
            l = (size_t) snprintf((char *) jbuf, 512,
                                  "{\"op\":\"join\",\"room\":\"%s%u\"}",
                                  opt.prefix, c->room);
            c->state = ST_JOINING;
            return ws_send(c, 0x1, jbuf, l) < 0 ? -1 : 0;
        }
        return 0;
    }

    if (json_is(t, e, "joined")) {
        if (c->state == ST_JOINING) {
            c->state = ST_READY;
            st.ready++;
            settle();
        }
        return 0;
    }

    /* the end of a stream or a poll's session: a WebSocket close frame */
    if (json_is(t, e, "close") && c->tr != TR_WS) {
        seq = json_int(p, n, "\"code\":");
        close_add(seq > 0 && seq < 65536 ? (unsigned) seq : 1005);
        conn_close(c, 0);
        return -1;
    }

    st.other_events++;

    return 0;
}


/* a message to a subscriber, whatever carried it */

static int
sub_message(cb_conn_t *c, const u_char *p, size_t n)
{
    int64_t  stamp;

    if (!opt.nchan) {
        return chat_event(c, p, n);
    }

    stamp = text_stamp(p, n);

    if (stamp < 0) {
        st.foreign++;
    } else {
        delivered(c, stamp);
    }

    return 0;
}


static int
ws_fail(cb_conn_t *c, const char *why)
{
    u_char  code[2] = { 1002 >> 8, 1002 & 0xff };

    st.proto_errors++;
    cb_log("connection %u: %s", c->idx, why);
    (void) ws_send(c, 0x8, code, 2);
    conn_close(c, 1);

    return -1;
}


static int
ws_frame(cb_conn_t *c, unsigned fin, unsigned op, const u_char *p,
    size_t n)
{
    u_char    *nb;
    unsigned   code;
    int        rc;

    switch (op) {

    case 0x1:
    case 0x2:
        if (c->frag_op) {
            return ws_fail(c, "data frame inside a fragmented message");
        }

        if (fin) {
            return sub_message(c, p, n);
        }

        c->frag = malloc(n ? n : 1);
        if (c->frag == NULL) {
            return ws_fail(c, "out of memory");
        }
        memcpy(c->frag, p, n);
        c->flen = (uint32_t) n;
        c->frag_op = (uint8_t) op;
        return 0;

    case 0x0:
        if (!c->frag_op) {
            return ws_fail(c, "continuation without a start");
        }

        if (c->flen + n > CB_MAX_FRAME) {
            return ws_fail(c, "message too big");
        }

        nb = realloc(c->frag, c->flen + n + 1);
        if (nb == NULL) {
            return ws_fail(c, "out of memory");
        }
        memcpy(nb + c->flen, p, n);
        c->frag = nb;
        c->flen += (uint32_t) n;

        if (!fin) {
            return 0;
        }

        rc = sub_message(c, c->frag, c->flen);
        if (c->fd >= 0) {
            free(c->frag);
            c->frag = NULL;
            c->flen = 0;
            c->frag_op = 0;
        }
        return rc;

    case 0x8:
        code = n >= 2 ? (unsigned) (p[0] << 8 | p[1]) : 1005;
        close_add(code);
        (void) ws_send(c, 0x8, p, n >= 2 ? 2 : 0);
        conn_close(c, 0);
        return -1;

    case 0x9:
        return ws_send(c, 0xA, p, n) < 0 ? -1 : 0;

    case 0xA:
        return 0;

    default:
        return ws_fail(c, "unknown opcode");
    }
}


static ssize_t
ws_input(cb_conn_t *c, const u_char *p, size_t len)
{
    size_t         off, avail, hl;
    uint64_t       plen;
    const u_char  *f;
    unsigned       i;

    off = 0;

    while (len - off >= 2) {
        f = p + off;
        avail = len - off;

        if (f[1] & 0x80) {
            return ws_fail(c, "masked server frame");
        }

        plen = f[1] & 0x7f;
        hl = 2;

        if (plen == 126) {
            if (avail < 4) {
                break;
            }
            plen = (uint64_t) f[2] << 8 | f[3];
            hl = 4;

        } else if (plen == 127) {
            if (avail < 10) {
                break;
            }
            plen = 0;
            for (i = 0; i < 8; i++) {
                plen = plen << 8 | f[2 + i];
            }
            hl = 10;
        }

        if (plen > CB_MAX_FRAME) {
            return ws_fail(c, "frame too big");
        }

        if (avail < hl + plen) {
            break;
        }

        off += hl + (size_t) plen;

        if (ws_frame(c, f[0] >> 7, f[0] & 0x0f, f + hl, (size_t) plen)
            != 0 || c->fd < 0)
        {
            return -1;
        }
    }

    return (ssize_t) off;
}


static ssize_t
hs_input(cb_conn_t *c, const u_char *p, size_t len)
{
    const u_char  *e;
    size_t         l;

    e = memmem(p, len, "\r\n\r\n", 4);

    if (e == NULL) {
        if (len > CB_MAX_HDR) {
            cb_log("connection %u: handshake response too long", c->idx);
            conn_close(c, 0);
            return -1;
        }
        return 0;
    }

    /* a stream's head: 200, then the events until the connection ends */
    if (len < 12 || memcmp(p, c->tr == TR_SSE ? "HTTP/1.1 200"
                                             : "HTTP/1.1 101", 12) != 0)
    {
        for (l = 0; l < len && l < 80 && p[l] != '\r'; l++) {
            /* first line */
        }
        cb_log("connection %u: handshake refused: %.*s", c->idx, (int) l,
             (const char *) p);
        conn_close(c, 0);
        return -1;
    }

    hs_inflight--;
    st.connected++;
    st.t_last_hs = mono();

    if (opt.nchan) {
        c->state = ST_READY;
        st.ready++;
        settle();

    } else {
        c->state = ST_WELCOME;
    }

    return e + 4 - p;
}


/*
 * The head of an HTTP response at b: its length, 0 while incomplete, -1
 * for what this client does not read (the connection is then closed).
 * Bodies have a Content-Length (or none), never chunks.
 */

static ssize_t
http_head(cb_conn_t *c, const u_char *b, size_t avail, size_t max,
    unsigned *status, size_t *clen, unsigned *closing)
{
    size_t         hl;
    const u_char  *e, *q, *le;

    e = memmem(b, avail, "\r\n\r\n", 4);
    if (e == NULL) {
        if (avail > CB_MAX_HDR) {
            conn_close(c, 0);
            st.proto_errors++;
            return -1;
        }
        return 0;
    }

    hl = (size_t) (e + 4 - b);

    if (hl < 14 || memcmp(b, "HTTP/1.", 7) != 0
        || b[9] < '1' || b[9] > '5')
    {
        conn_close(c, 1);
        st.proto_errors++;
        return -1;
    }

    *status = (unsigned) ((b[9] - '0') * 100 + (b[10] - '0') * 10
                          + (b[11] - '0'));
    *clen = 0;
    *closing = 0;

    for (q = memchr(b, '\n', hl); q != NULL && q + 1 < e; q = le) {
        q++;
        le = memchr(q, '\n', (size_t) (e + 2 - q));
        if (le == NULL) {
            break;
        }

        if (strncasecmp((const char *) q, "content-length:", 15) == 0) {
            *clen = strtoul((const char *) q + 15, NULL, 10);

        } else if (strncasecmp((const char *) q, "connection: close", 17)
                   == 0)
        {
            *closing = 1;

        } else if (strncasecmp((const char *) q,
                               "transfer-encoding:", 18) == 0)
        {
            cb_log("%s %u: chunked responses are not supported",
                 c->kind == K_PUB ? "publisher" : "connection", c->idx);
            conn_close(c, 0);
            st.proto_errors++;
            return -1;
        }
    }

    if (*clen > max) {
        cb_log("%s %u: response body of %zu bytes", c->kind == K_PUB
             ? "publisher" : "connection", c->idx, *clen);
        conn_close(c, 0);
        st.proto_errors++;
        return -1;
    }

    return (ssize_t) hl;
}


static ssize_t
http_input(cb_conn_t *c, const u_char *p, size_t len)
{
    size_t         off, avail, clen;
    ssize_t        hl;
    const u_char  *b;
    unsigned       status, closing;
    char           name[16];
    int            n;

    off = 0;

    while (off < len) {
        b = p + off;
        avail = len - off;

        hl = http_head(c, b, avail, CB_MAX_FRAME, &status, &clen, &closing);
        if (hl < 0) {
            return -1;
        }

        if (hl == 0 || avail < (size_t) hl + clen) {
            break;
        }

        off += (size_t) hl + clen;

        if (status >= 200 && status < 300) {
            st.acked++;
            room_acked[c->room]++;

        } else {
            st.errors++;
            n = snprintf(name, sizeof(name), "http_%u", status);
            code_add(st.codes, &st.ncodes, name, (size_t) n, 1);
        }

        c->flags |= F_ANS;

        if (closing) {
            /* the window is refilled once the connection is reopened */
            last_ack_ns = mono();
            if (c->inflight) {
                c->inflight--;
            }
            conn_close(c, 1);
            return -1;
        }

        answered(c);

        if (c->fd < 0) {
            return -1;
        }
    }

    return (ssize_t) off;
}


/*
 * A Server-Sent Events stream after its head: events end at a blank
 * line; an event's "data:" line is a message (both servers write one
 * data line per event, and "\n" line ends).  Comments (": ping", nchan's
 * ": hi"), "id:" lines and events of another "event:" type (nchan's
 * pings) are skipped.
 */

static ssize_t
sse_input(cb_conn_t *c, const u_char *p, size_t len)
{
    size_t         off, dl;
    const u_char  *b, *e, *q, *le, *v, *d;
    unsigned       ndata, typed;

    off = 0;

    while (off < len) {
        b = p + off;

        e = memmem(b, len - off, "\n\n", 2);
        if (e == NULL) {
            if (len - off > CB_MAX_FRAME) {
                st.proto_errors++;
                cb_log("connection %u: event too big", c->idx);
                conn_close(c, 1);
                return -1;
            }
            break;
        }

        off = (size_t) (e + 2 - p);
        d = NULL;
        dl = 0;
        ndata = 0;
        typed = 0;

        /* e is the end of the event's last line */

        for (q = b; q <= e; q = le + 1) {
            le = memchr(q, '\n', (size_t) (e + 1 - q));
            if (le == NULL) {
                break;
            }

            if (le - q >= 6 && memcmp(q, "event:", 6) == 0) {
                v = q + 6 + (q + 6 < le && q[6] == ' ');
                typed = (size_t) (le - v) != 7 || memcmp(v, "message", 7);
                continue;
            }

            if (le - q < 5 || memcmp(q, "data:", 5) != 0) {
                continue;
            }

            v = q + 5;
            if (v < le && *v == ' ') {
                v++;
            }

            if (ndata++ == 0) {
                d = v;
                dl = (size_t) (le - v - (le > v && le[-1] == '\r'));
            }
        }

        if (ndata > 1) {
            /* one line of a longer message: not what either server sends */
            st.proto_errors++;
        }

        if (d != NULL && !typed
            && (sub_message(c, d, dl) != 0 || c->fd < 0))
        {
            return -1;
        }
    }

    return (ssize_t) off;
}


/* the next long poll of c's room from its cursor; timeout 0 at the first */

static int
poll_send(cb_conn_t *c, unsigned timeout)
{
    char  req[CB_MAX_TOKEN_LEN + 1024], seq[24];
    int   n;

    seq[0] = '\0';
    if (c->cursor >= 0) {
        snprintf(seq, sizeof(seq), "%" PRId64, c->cursor);
    }

    if (opt.ntokens) {
        n = snprintf(req, sizeof(req), "GET %s%stoken=%s",
                     opt.path, strchr(opt.path, '?') ? "&" : "?",
                     opt.tokens[c->idx % opt.ntokens]);
    } else {
        n = snprintf(req, sizeof(req), "GET %s%suser=u%u",
                     opt.path, strchr(opt.path, '?') ? "&" : "?", c->idx);
    }

    n += snprintf(req + n, sizeof(req) - (size_t) n,
                  "&poll=1&cursor=%s%u:%s&timeout=%u HTTP/1.1\r\n"
                  "Host: %s\r\n\r\n", opt.prefix, c->room, seq, timeout,
                  hostport);

    return conn_write(c, (u_char *) req, (size_t) n) < 0 ? -1 : 0;
}


/*
 * The objects of a JSON array, from just after its '[' to e, each handed
 * to chat_event(): the end of the array, or NULL if it is not one (or
 * the connection went with an event).
 */

static const u_char *
json_each(cb_conn_t *c, const u_char *p, const u_char *e)
{
    const u_char  *q, *o;
    unsigned       depth, instr;

    q = p;

    while (q < e) {
        if (*q == ' ' || *q == ',' || *q == '\n' || *q == '\r') {
            q++;
            continue;
        }

        if (*q == ']') {
            return q + 1;
        }

        if (*q != '{') {
            return NULL;
        }

        o = q;
        depth = 0;
        instr = 0;

        for ( /* void */ ; q < e; q++) {
            if (instr) {
                if (*q == '\\') {
                    q++;
                } else if (*q == '"') {
                    instr = 0;
                }
                continue;
            }

            if (*q == '"') {
                instr = 1;

            } else if (*q == '{' || *q == '[') {
                depth++;

            } else if ((*q == '}' || *q == ']') && --depth == 0) {
                break;
            }
        }

        if (q >= e) {
            return NULL;
        }

        q++;

        if (chat_event(c, o, (size_t) (q - o)) != 0 || c->fd < 0) {
            return NULL;
        }
    }

    return NULL;
}


/*
 * A long poll's answer: {"type":"poll","events":[...],"cursor":"R:7"};
 * the first (timeout 0) says the poll's room is joined.  The next poll
 * goes at once, on the same keep-alive connection.
 */

static int
poll_answer(cb_conn_t *c, unsigned status, const u_char *p, size_t n,
    unsigned closing)
{
    const u_char  *e, *a, *v, *q, *colon;
    int64_t        seq;
    char           name[16];
    int            l;

    e = p + n;

    if (c->state == ST_HS) {
        hs_inflight--;
        st.connected++;
        st.t_last_hs = mono();
        c->state = ST_JOINING;
    }

    if (status != 200) {
        st.errors++;
        l = snprintf(name, sizeof(name), "http_%u", status);
        code_add(st.codes, &st.ncodes, name, (size_t) l, 1);
        cb_log("connection %u: poll answered %u: %.*s", c->idx, status,
             (int) (n < 120 ? n : 120), (const char *) p);

        /*
         * "unavailable" (503: a join refused, Redis busy): polled again
         * with the same cursor after a backoff, as a client would; the
         * refusals still count as errors
         */
        if (status == 503 && !closing && c->reconnects < CB_POLL_RETRIES
            && phase < PH_DONE)
        {
            c->reconnects++;
            st.poll_retries++;
            c->flags |= F_WAIT;
            c->t_start = mono() + (100 << (c->reconnects < 4
                                          ? c->reconnects : 4)) * CB_MS
                         + (int64_t) (c->idx % 97) * CB_MS;
            if (c->t_start < retry_due) {
                retry_due = c->t_start;
            }
            return 0;
        }

        if (c->state == ST_JOINING) {
            /* as a refused join: the connection stays, idle */
            c->state = ST_JOINFAIL;
            st.join_failed++;
            settle();
            return 0;
        }

        conn_close(c, 1);
        return -1;
    }

    if (phase >= PH_RUN) {
        st.polls++;
    }

    v = json_after(p, n, "\"events\":");
    a = (v != NULL && *v == '[') ? json_each(c, v + 1, e) : NULL;

    if (c->fd < 0) {
        return -1;
    }

    v = a ? json_after(a, (size_t) (e - a), "\"cursor\":\"") : NULL;
    q = v ? memchr(v, '"', (size_t) (e - v)) : NULL;

    if (q == NULL) {
        st.proto_errors++;
        cb_log("connection %u: not a poll answer: %.*s", c->idx,
             (int) (n < 120 ? n : 120), (const char *) p);
        conn_close(c, 1);
        return -1;
    }

    /* one room: its seq is after the last ':' (none: the cursor stays) */

    for (colon = q; colon > v && colon[-1] != ':'; colon--) {
        /* void */
    }

    for (seq = 0, l = 0; colon > v && colon < q && *colon >= '0'
                         && *colon <= '9' && l < 19; colon++, l++)
    {
        seq = seq * 10 + (*colon - '0');
    }

    if (l > 0 && colon == q) {
        c->cursor = seq;
    }

    if (c->state == ST_JOINFAIL) {
        return 0;
    }

    if (c->state == ST_JOINING) {
        c->state = ST_READY;
        st.ready++;
        settle();
    }

    if (closing) {
        /* nginx's keepalive_requests: the bench sets it out of reach */
        cb_log("connection %u: poll connection closed by the server",
             c->idx);
        conn_close(c, 1);
        return -1;
    }

    return poll_send(c, CB_POLL_TIMEOUT);
}


/* the refused polls whose backoff is over go again */

static void
poll_retry(int64_t now)
{
    uint32_t    j;
    cb_conn_t  *c;

    retry_due = INT64_MAX;

    for (j = 0; j < nsubs; j++) {
        c = &subs[j];

        if (!(c->flags & F_WAIT)) {
            continue;
        }

        if (c->fd < 0) {
            c->flags &= ~F_WAIT;
            continue;
        }

        if (c->t_start > now) {
            if (c->t_start < retry_due) {
                retry_due = c->t_start;
            }
            continue;
        }

        c->flags &= ~F_WAIT;
        (void) poll_send(c, c->state == ST_READY ? CB_POLL_TIMEOUT : 0);
    }
}


static ssize_t
poll_input(cb_conn_t *c, const u_char *p, size_t len)
{
    size_t         off, avail, clen;
    ssize_t        hl;
    const u_char  *b;
    unsigned       status, closing;

    off = 0;

    while (off < len) {
        b = p + off;
        avail = len - off;

        hl = http_head(c, b, avail, 2 * CB_MAX_FRAME, &status, &clen,
                       &closing);
        if (hl < 0) {
            return -1;
        }

        if (hl == 0 || avail < (size_t) hl + clen) {
            break;
        }

        off += (size_t) hl + clen;

        if (poll_answer(c, status, b + hl, clen, closing) != 0
            || c->fd < 0)
        {
            return -1;
        }
    }

    return (ssize_t) off;
}


static void
conn_read(cb_conn_t *c)
{
    size_t   have;
    ssize_t  n, used, u;

    have = c->rlen;
    if (have) {
        memcpy(rdbuf, c->rbuf, have);
    }

    n = recv(c->fd, rdbuf + have, CB_RDBUF_SIZE - have, 0);

    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        conn_lost(c, n < 0 ? errno : 0);
        return;
    }

    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = 0;
    have += (size_t) n;
    used = 0;

    if (c->kind == K_PUB) {
        used = http_input(c, rdbuf, have);

    } else if (c->tr == TR_POLL) {
        used = poll_input(c, rdbuf, have);

    } else {
        if (c->state == ST_HS) {
            used = hs_input(c, rdbuf, have);
        }

        if (used >= 0 && c->fd >= 0 && c->state != ST_HS) {
            u = c->tr == TR_SSE
                ? sse_input(c, rdbuf + used, have - (size_t) used)
                : ws_input(c, rdbuf + used, have - (size_t) used);
            used = u < 0 ? -1 : used + u;
        }
    }

    if (used < 0 || c->fd < 0 || (size_t) used == have) {
        return;
    }

    c->rbuf = malloc(have - (size_t) used);
    if (c->rbuf == NULL) {
        conn_lost(c, ENOMEM);
        return;
    }

    memcpy(c->rbuf, rdbuf + used, have - (size_t) used);
    c->rlen = (uint32_t) (have - (size_t) used);
}


static void
conn_connected(cb_conn_t *c)
{
    int        err, n;
    socklen_t  l;
    char       req[CB_MAX_TOKEN_LEN + 1024];

    err = 0;
    l = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) {
        err = errno;
    }

    if (err) {
        cb_log("%s %u: connect: %s", c->kind == K_PUB ? "publisher"
             : "connection", c->idx, strerror(err));
        conn_close(c, 0);
        return;
    }

    if (c->kind == K_PUB) {
        c->state = ST_PUB;

        if (!(c->flags & F_UP)) {
            c->flags |= F_UP;
            hs_inflight--;
            st.pubs_connected++;
            settle();
        }

        if (c->wlen) {
            conn_flush(c);
        } else {
            conn_events(c, 0);
        }

        if (c->fd >= 0) {
            sender_fill(c);
        }
        return;
    }

    c->state = ST_HS;
    conn_events(c, 0);

    if (c->tr == TR_POLL) {
        (void) poll_send(c, 0);
        return;
    }

    if (opt.nchan) {
        n = snprintf(req, sizeof(req), "GET %s%s%u",
                     opt.sub_path, opt.prefix, c->room);
    } else if (opt.ntokens) {
        n = snprintf(req, sizeof(req), "GET %s%stoken=%s",
                     opt.path, strchr(opt.path, '?') ? "&" : "?",
                     opt.tokens[c->idx % opt.ntokens]);

    } else {
        n = snprintf(req, sizeof(req), "GET %s%suser=u%u",
                     opt.path, strchr(opt.path, '?') ? "&" : "?", c->idx);
    }

    /* a stream's rooms are in its URL */
    if (c->tr == TR_SSE && !opt.nchan) {
        n += snprintf(req + n, sizeof(req) - (size_t) n, "&rooms=%s%u",
                      opt.prefix, c->room);
    }

    if (c->tr == TR_SSE) {
        n += snprintf(req + n, sizeof(req) - (size_t) n,
                      " HTTP/1.1\r\nHost: %s\r\n"
                      "Accept: text/event-stream\r\n\r\n", hostport);

    } else {
        n += snprintf(req + n, sizeof(req) - (size_t) n,
                      " HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Key: " CB_WS_KEY "\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n", hostport);
    }

    (void) conn_write(c, (u_char *) req, (size_t) n);
}


/* ---------------------------------------------------------- client */

static void
connect_more(int64_t now)
{
    cb_conn_t  *c;
    uint64_t    guard;

    for (guard = 0; guard < opt.concurrency; guard++) {
        if (hs_inflight >= opt.concurrency || next_start >= npubs + nsubs) {
            return;
        }

        c = next_start < npubs ? &pubs[next_start]
                               : &subs[next_start - npubs];
        next_start++;

        if (st.t_first_start == 0) {
            st.t_first_start = now;
        }

        hs_inflight++;

        if (conn_open(c, now) != 0) {
            hs_inflight--;
            if (c->kind == K_PUB) {
                st.pubs_failed++;
            } else {
                st.connect_failed++;
            }
            c->state = ST_CLOSED;
            settle();
        }
    }
}


static void
connect_timeouts(int64_t now)
{
    int64_t     limit;
    uint64_t    i;
    cb_conn_t  *c;

    limit = (int64_t) (opt.connect_timeout * CB_NS);

    for (i = 0; i < (uint64_t) npubs + nsubs && i < next_start; i++) {
        c = i < npubs ? &pubs[i] : &subs[i - npubs];

        if (c->fd < 0 || now - c->t_start < limit) {
            continue;
        }

        if ((c->kind == K_PUB && !(c->flags & F_UP))
            || (c->kind == K_SUB && c->state < ST_READY))
        {
            cb_log("connection %u: connect/join timeout", c->idx);
            conn_close(c, 0);
        }
    }
}


static void
rate_tick(int64_t now)
{
    uint64_t    k;
    unsigned    n;
    int64_t     due;
    cb_conn_t  *c;

    next_due = INT64_MAX;

    for (n = 0; n < CB_SENDS_PER_TICK; n++) {
        if (nsenders == 0) {
            return;
        }

        k = sched_m * opt.senders + cid + (uint64_t) sched_li * opt.procs;
        if (k >= total_msgs) {
            return;
        }

        due = go_ns + (int64_t) ((double) k * 1e9 / opt.rate);
        if (due > now) {
            next_due = due;
            return;
        }

        if (now - due > CB_LATE_NS) {
            st.behind++;
        }

        c = opt.nchan ? &pubs[sched_li] : &subs[sched_li];

        if (do_send(c, now) != 0) {
            st.skipped++;
        }

        if (++sched_li == nsenders) {
            sched_li = 0;
            sched_m++;
        }
    }

    next_due = now;
}


static void
on_pipe(void)
{
    int64_t   v;
    ssize_t   n;
    uint32_t  i;

    n = read(pipe_in, &v, sizeof(v));

    if (n == 0) {
        _exit(3);
    }

    if (n != sizeof(v) || phase != PH_WAIT_GO) {
        return;
    }

    go_ns = v;
    send_end_ns = go_ns + (int64_t) (opt.duration * CB_NS);
    drain_end_ns = send_end_ns + (int64_t) (opt.drain * CB_NS);
    phase = PH_RUN;
    next_due = go_ns;

    for (i = 0; i < nsubs; i++) {
        subs[i].last_seq = -1;
    }
}


static void
send_ready(void)
{
    if (!ready_sent) {
        ready_sent = 1;
        if (msg_send(pipe_out, MSG_READY, &st, sizeof(st), 0) != 0) {
            _exit(3);
        }
    }
}


static void
client_main(uint32_t id, int in, int out, int64_t deadline)
{
    uint64_t            i, first, rsize;
    uint32_t            j;
    int64_t             now, wake, quiet, tmo;
    int                 n, k, started;
    unsigned            kind;
    cb_conn_t          *c;
    struct epoll_event  ev, evs[1024];
    struct pollfd       pfd;

    cid = id;
    pipe_in = in;
    pipe_out = out;
    mask_state ^= (uint32_t) getpid() * 2654435761u;
    if (mask_state == 0) {
        mask_state = 1;
    }

    first = opt.conns > id ? (opt.conns - id + opt.procs - 1) / opt.procs : 0;
    nsubs = (uint32_t) first;
    st.share = nsubs;

    if (opt.nchan) {
        npubs = opt.senders > id
                ? (uint32_t) ((opt.senders - id + opt.procs - 1) / opt.procs)
                : 0;
        nsenders = npubs;
        st.pubs = npubs;
    } else {
        nsenders = opt.senders > id
                ? (uint32_t) ((opt.senders - id + opt.procs - 1) / opt.procs)
                : 0;
    }

    rsize = opt.rooms * sizeof(uint64_t);

    subs = calloc(nsubs ? nsubs : 1, sizeof(cb_conn_t));
    pubs = calloc(npubs ? npubs : 1, sizeof(cb_conn_t));
    hist = calloc(CB_HIST_N, sizeof(uint64_t));
    room_sent = calloc(1, rsize);
    room_acked = calloc(1, rsize);
    room_deliv = calloc(1, rsize);
    rdbuf = malloc(CB_RDBUF_SIZE);
    sbuf = malloc(CB_MAX_SIZE + 2048);
    jbuf = malloc(CB_MAX_SIZE + 1024);
    ep = epoll_create1(EPOLL_CLOEXEC);

    if (subs == NULL || pubs == NULL || hist == NULL || room_sent == NULL
        || room_acked == NULL || room_deliv == NULL || rdbuf == NULL
        || sbuf == NULL || jbuf == NULL || ep < 0)
    {
        fprintf(stderr, "chatbench[client %u]: out of memory\n", id);
        _exit(3);
    }

    for (j = 0; j < nsubs; j++) {
        subs[j].fd = -1;
        subs[j].kind = K_SUB;
        subs[j].idx = id + j * (uint32_t) opt.procs;
        subs[j].room = (uint32_t) (subs[j].idx % opt.rooms);
        subs[j].last_seq = -1;
        subs[j].cursor = -1;
        /* ngx_chat's senders are members: they stay WebSockets */
        subs[j].tr = (uint8_t) (!opt.nchan && j < nsenders ? TR_WS
                                                           : opt.transport);
    }

    for (j = 0; j < npubs; j++) {
        pubs[j].fd = -1;
        pubs[j].kind = K_PUB;
        pubs[j].idx = id + j * (uint32_t) opt.procs;
        pubs[j].room = (uint32_t) (pubs[j].idx % opt.rooms);
    }

    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t) K_PIPE << 32;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, pipe_in, &ev) != 0) {
        _exit(3);
    }

    pending = (uint64_t) nsubs + npubs;
    phase = PH_CONNECT;
    started = 0;
    wake = 0;

    if (pending == 0) {
        st.t_all_ready = mono();
    }

    for (i = 0; i < 4000000000ULL && phase != PH_DONE; i++) {
        now = mono();

        if (now >= deadline) {
            st.timed_out = 1;
            cb_log("hard timeout");
            break;
        }

        wake = now + CB_TICK_NS;

        switch (phase) {

        case PH_CONNECT:
            connect_more(now);
            if (now >= next_due) {
                connect_timeouts(now);
                next_due = now + CB_TICK_NS;
            }
            if (pending == 0) {
                send_ready();
                phase = PH_WAIT_GO;
            }
            break;

        case PH_RUN:
            if (now < go_ns) {
                wake = go_ns;
                break;
            }

            if (!started) {
                started = 1;
                if (opt.rate <= 0) {
                    for (j = 0; j < nsenders; j++) {
                        sender_fill(opt.nchan ? &pubs[j] : &subs[j]);
                    }
                }
            }

            if (opt.rate > 0) {
                rate_tick(now);
                if (next_due < wake) {
                    wake = next_due;
                }
            }

            if (now >= send_end_ns || open_conns == 0) {
                phase = PH_DRAIN;
                st.t_run_end = now < send_end_ns ? now : send_end_ns;
                break;
            }

            if (send_end_ns < wake) {
                wake = send_end_ns;
            }
            break;

        case PH_DRAIN:
            quiet = st.t_last_delivery > last_ack_ns ? st.t_last_delivery
                                                     : last_ack_ns;
            if (quiet < send_end_ns) {
                quiet = send_end_ns;
            }

            if (now >= drain_end_ns || now - quiet >= CB_QUIET_NS
                || open_conns == 0 || opt.duration <= 0)
            {
                phase = PH_DONE;
                continue;
            }

            if (quiet + CB_QUIET_NS < wake) {
                wake = quiet + CB_QUIET_NS;
            }
            if (drain_end_ns < wake) {
                wake = drain_end_ns;
            }
            break;

        default:
            break;
        }

        if (retry_due <= now) {
            poll_retry(now);
        }

        if (retry_due < wake) {
            wake = retry_due;
        }

        if (deadline < wake) {
            wake = deadline;
        }

        tmo = wake > now ? (wake - now + CB_MS - 1) / CB_MS : 0;

        n = epoll_wait(ep, evs, 1024, (int) tmo);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            cb_log("epoll_wait(): %s", strerror(errno));
            break;
        }

        for (k = 0; k < n; k++) {
            kind = (unsigned) (evs[k].data.u64 >> 32);
            j = (uint32_t) evs[k].data.u64;

            if (kind == K_PIPE) {
                on_pipe();
                continue;
            }

            c = kind == K_PUB ? &pubs[j] : &subs[j];

            if (c->fd < 0) {
                continue;
            }

            if (c->state == ST_CONNECTING) {
                conn_connected(c);
                continue;
            }

            if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                conn_read(c);
            }

            if (c->fd >= 0 && c->state != ST_CONNECTING
                && (evs[k].events & EPOLLOUT))
            {
                conn_flush(c);
            }
        }
    }

    send_ready();

    for (j = 0; j < nsubs; j++) {
        st.unacked += subs[j].inflight;
    }

    for (j = 0; j < npubs; j++) {
        st.unacked += pubs[j].inflight;
    }

    if (msg_send(pipe_out, MSG_RESULT, &st, sizeof(st),
                 CB_HIST_N * sizeof(uint64_t) + 3 * rsize) != 0
        || write_all(pipe_out, hist, CB_HIST_N * sizeof(uint64_t)) != 0
        || write_all(pipe_out, room_sent, rsize) != 0
        || write_all(pipe_out, room_acked, rsize) != 0
        || write_all(pipe_out, room_deliv, rsize) != 0)
    {
        _exit(3);
    }

    /* hold the connections until the parent has sampled the server */
    pfd.fd = pipe_in;
    pfd.events = POLLIN;

    for (i = 0; i < 100000; i++) {
        now = mono();
        if (now >= deadline + 5 * CB_NS) {
            break;
        }
        if (poll(&pfd, 1, 1000) > 0) {
            if (read(pipe_in, &now, sizeof(now)) <= 0) {
                break;
            }
        }
    }

    _exit(0);
}


/* ---------------------------------------------------------- parent */

static cb_child_t   kids[CB_MAX_PROCS];
static cb_stats_t   tot;
static uint64_t    *tot_hist;
static uint64_t    *tot_sent;
static uint64_t    *tot_acked;
static uint64_t    *tot_deliv;


static uint64_t
proc_field(pid_t pid, uint64_t *cpu_ticks, int *alivep)
{
    char      path[64], buf[4096], *p;
    FILE     *f;
    uint64_t  rss, ut, st_;
    int       i, alive;

    rss = 0;
    *cpu_ticks = 0;

    snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return UINT64_MAX;
    }

    alive = 0;

    for (i = 0; i < 200 && fgets(buf, sizeof(buf), f) != NULL; i++) {
        if (strncmp(buf, "VmRSS:", 6) == 0) {
            rss = strtoull(buf + 6, NULL, 10);
            alive = 1;
            break;
        }
    }
    fclose(f);

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return UINT64_MAX;
    }

    buf[0] = '\0';
    if (fgets(buf, sizeof(buf), f) == NULL) {
        buf[0] = '\0';
    }
    fclose(f);

    /* the command name may hold spaces: fields count from its ')' */
    /* a zombie has no VmRSS but still its CPU times */
    *alivep = alive;

    p = strrchr(buf, ')');
    if (p == NULL) {
        return rss;
    }
    p++;

    for (i = 0; i < 11 && p != NULL; i++) {
        p = strchr(p + 1, ' ');
    }

    if (p != NULL) {
        ut = strtoull(p + 1, &p, 10);
        st_ = strtoull(p, NULL, 10);
        *cpu_ticks = ut + st_;
    }

    return rss;
}


static void
sample(const pid_t *pids, int n, cb_sample_t *s)
{
    uint64_t  rss, ticks, hz;
    int       i, alive;

    hz = (uint64_t) sysconf(_SC_CLK_TCK);
    if (hz == 0) {
        hz = 100;
    }

    memset(s, 0, sizeof(*s));

    for (i = 0; i < n; i++) {
        alive = 0;
        rss = proc_field(pids[i], &ticks, &alive);
        if (rss == UINT64_MAX) {
            continue;
        }
        s->alive += alive;
        s->rss_kb += rss;
        s->cpu_ms += ticks * 1000 / hz;
        s->pid_rss_kb[i] = rss;
        s->pid_cpu_ms[i] = ticks * 1000 / hz;
    }
}


static void
kid_message(cb_child_t *k, uint32_t type, const u_char *p, size_t n)
{
    cb_stats_t  s;
    size_t      rsize;
    uint64_t    i;
    const uint64_t  *a;

    if (n < sizeof(s)) {
        return;
    }

    memcpy(&s, p, sizeof(s));

    if (type == MSG_READY) {
        k->ready = 1;
        fprintf(stderr, "chatbench: client %d: %" PRIu64 "/%" PRIu64
                " connected, %" PRIu64 " ready, %" PRIu64
                " failed to connect, %" PRIu64 " failed to join\n",
                (int) (k - kids), s.connected, s.share, s.ready,
                s.connect_failed, s.join_failed);
        return;
    }

    rsize = opt.rooms * sizeof(uint64_t);

    if (n != sizeof(s) + CB_HIST_N * sizeof(uint64_t) + 3 * rsize) {
        return;
    }

    k->done = 1;
    stats_merge(&tot, &s);

    a = (const uint64_t *) (const void *) (p + sizeof(s));
    for (i = 0; i < CB_HIST_N; i++) {
        tot_hist[i] += a[i];
    }

    a += CB_HIST_N;
    for (i = 0; i < opt.rooms; i++) {
        tot_sent[i] += a[i];
        tot_acked[i] += a[i + opt.rooms];
        tot_deliv[i] += a[i + 2 * opt.rooms];
    }
}


static void
kid_input(cb_child_t *k)
{
    ssize_t   n;
    uint32_t  h[2];
    size_t    need;
    u_char   *nb;
    unsigned  guard;

    if (k->cap - k->len < 65536) {
        nb = realloc(k->buf, k->cap * 2 + 65536);
        if (nb == NULL) {
            die("out of memory");
        }
        k->buf = nb;
        k->cap = k->cap * 2 + 65536;
    }

    n = read(k->rfd, k->buf + k->len, k->cap - k->len);

    if (n <= 0) {
        if (n < 0 && errno == EINTR) {
            return;
        }
        k->eof = 1;
        return;
    }

    k->len += (size_t) n;

    for (guard = 0; guard < 16 && k->len >= sizeof(h); guard++) {
        memcpy(h, k->buf, sizeof(h));
        need = sizeof(h) + h[1];

        if (k->len < need) {
            if (k->cap < need) {
                nb = realloc(k->buf, need);
                if (nb == NULL) {
                    die("out of memory");
                }
                k->buf = nb;
                k->cap = need;
            }
            return;
        }

        kid_message(k, h[0], k->buf + sizeof(h), h[1]);
        memmove(k->buf, k->buf + need, k->len - need);
        k->len -= need;
    }
}


/* wait until every live client has said "ready" (or its result) */
static int
kids_wait(int results, int64_t until)
{
    struct pollfd  pfd[CB_MAX_PROCS];
    int            idx[CB_MAX_PROCS];
    uint64_t       i;
    int            n, m, guard;
    int64_t        now;

    for (guard = 0; guard < 10000000; guard++) {
        n = 0;

        for (i = 0; i < opt.procs; i++) {
            if (kids[i].eof || (results ? kids[i].done : kids[i].ready)) {
                continue;
            }
            pfd[n].fd = kids[i].rfd;
            pfd[n].events = POLLIN;
            idx[n] = (int) i;
            n++;
        }

        if (n == 0) {
            return 0;
        }

        now = mono();
        if (now >= until) {
            return -1;
        }

        m = poll(pfd, (nfds_t) n, (int) ((until - now + CB_MS - 1) / CB_MS));
        if (m < 0 && errno != EINTR) {
            die("poll(): %s", strerror(errno));
        }

        for (i = 0; m > 0 && i < (uint64_t) n; i++) {
            if (pfd[i].revents) {
                kid_input(&kids[idx[i]]);
            }
        }
    }

    return -1;
}


static void
kids_reap(int64_t until)
{
    uint64_t  i, left;
    int       status, guard;
    pid_t     p;

    for (i = 0; i < opt.procs; i++) {
        if (kids[i].wfd >= 0) {
            close(kids[i].wfd);
            kids[i].wfd = -1;
        }
    }

    for (guard = 0; guard < 100000; guard++) {
        left = 0;

        for (i = 0; i < opt.procs; i++) {
            if (kids[i].pid <= 0) {
                continue;
            }
            p = waitpid(kids[i].pid, &status, WNOHANG);
            if (p == kids[i].pid || (p < 0 && errno == ECHILD)) {
                kids[i].pid = 0;
            } else {
                left++;
            }
        }

        if (left == 0) {
            return;
        }

        if (mono() >= until) {
            for (i = 0; i < opt.procs; i++) {
                if (kids[i].pid > 0) {
                    kill(kids[i].pid, SIGKILL);
                    waitpid(kids[i].pid, &status, 0);
                    kids[i].pid = 0;
                }
            }
            return;
        }

        usleep(10000);
    }
}


static void
usage(FILE *f)
{
    fprintf(f,
"usage: chatbench [options]\n"
"  --proto chat|nchan       protocol (chat)\n"
"  --host 127.0.0.1 --port 8080   loopback target\n"
"  --path /chat             chat WebSocket path, ?user=u<i> appended\n"
"  --sub-path /sub/ --pub-path /pub/   nchan locations, room appended\n"
"  --conns N                connections (100)\n"
"  --rooms R                rooms <prefix>0..R-1, connection i in i %% R\n"
"  --room-prefix STR        (b)\n"
"  --procs P                client processes (1)\n"
"  --sources K              source addresses 127.0.1.1.. (1, 0: none)\n"
"  --concurrency C          handshakes in flight per process (200)\n"
"  --connect-timeout S      per connection, until joined (30)\n"
"  --senders S              senders (rooms, capped at conns)\n"
"  --rate M                 messages/s over all senders (0: burst)\n"
"  --duration S             seconds of sending (10)\n"
"  --window W               burst mode: unacknowledged sends per sender"
" (1)\n"
"  --size B                 message text bytes (100, min 25)\n"
"  --hold S                 idle seconds after all joined (0)\n"
"  --drain S                max seconds to wait for deliveries (5)\n"
"  --server-pids a,b        server pids sampled in /proc\n"
"  --other-pids a,b         other pids whose CPU time is reported\n"
"  --timeout S              hard limit on the whole run (300)\n"
"  --churn                  close each connection at its welcome, no join:\n"
"                           --conns handshakes, --concurrency at a time\n"
"  --token-file F           ?token=<line i %% lines> instead of ?user=u<i>\n"
"                           (at most 100000 lines of 4096 bytes)\n"
"  --sub-transport T        ws, sse (Server-Sent Events: ngx_chat's\n"
"                           ?rooms=, nchan's EventSource) or poll (ngx_chat's\n"
"                           long poll, one at a time per connection);\n"
"                           ngx_chat's senders stay WebSockets (ws)\n");
}


static double
num(const char *name, const char *v, double lo, double hi)
{
    char    *e;
    double   d;

    errno = 0;
    d = strtod(v, &e);

    if (errno || e == v || *e != '\0' || d != d || d < lo || d > hi) {
        die("bad value for --%s: \"%s\" (%g..%g)", name, v, lo, hi);
    }

    return d;
}


static int
pid_list(const char *name, const char *v, pid_t *pids)
{
    char  *e;
    long   p;
    int    n;

    for (n = 0; *v != '\0' && n < CB_MAX_PIDS; n++) {
        errno = 0;
        p = strtol(v, &e, 10);
        if (errno || e == v || p <= 0 || (*e != ',' && *e != '\0')) {
            die("bad pid list for --%s: \"%s\"", name, v);
        }
        pids[n] = (pid_t) p;
        v = *e == ',' ? e + 1 : e;
    }

    return n;
}


/* one token a line, URL-safe (base64url and dots): sent as they are */

static void
read_tokens(const char *name)
{
    FILE    *f;
    char     line[CB_MAX_TOKEN_LEN + 2];
    size_t   n, i;
    uint64_t  k;

    f = fopen(name, "r");
    if (f == NULL) {
        die("--token-file %s: %s", name, strerror(errno));
    }

    opt.tokens = calloc(CB_MAX_TOKENS, sizeof(char *));
    if (opt.tokens == NULL) {
        die("out of memory");
    }

    for (k = 0; k <= CB_MAX_TOKENS && fgets(line, sizeof(line), f); k++) {
        n = strlen(line);

        if (n && line[n - 1] == '\n') {
            line[--n] = '\0';

        } else if (!feof(f)) {
            die("--token-file %s: line %" PRIu64 " over %d bytes", name,
                k + 1, CB_MAX_TOKEN_LEN);
        }

        if (n == 0) {
            continue;
        }

        if (n > CB_MAX_TOKEN_LEN || opt.ntokens == CB_MAX_TOKENS) {
            die("--token-file %s: over %d lines or %d bytes a line", name,
                CB_MAX_TOKENS, CB_MAX_TOKEN_LEN);
        }

        for (i = 0; i < n; i++) {
            if (!((line[i] >= 'a' && line[i] <= 'z')
                  || (line[i] >= 'A' && line[i] <= 'Z')
                  || (line[i] >= '0' && line[i] <= '9')
                  || strchr("-_.", line[i])))
            {
                die("--token-file %s: line %" PRIu64 ": not base64url and "
                    "dots", name, k + 1);
            }
        }

        opt.tokens[opt.ntokens] = strdup(line);
        if (opt.tokens[opt.ntokens] == NULL) {
            die("out of memory");
        }
        opt.ntokens++;
    }

    if (ferror(f) || opt.ntokens == 0) {
        die("--token-file %s: %s", name, ferror(f) ? "read error"
                                                  : "no token");
    }

    fclose(f);
}


static void
parse_args(int argc, char **argv)
{
    static const struct option  longopts[] = {
        { "proto", required_argument, NULL, 'a' },
        { "host", required_argument, NULL, 'b' },
        { "port", required_argument, NULL, 'c' },
        { "path", required_argument, NULL, 'd' },
        { "sub-path", required_argument, NULL, 'e' },
        { "pub-path", required_argument, NULL, 'f' },
        { "conns", required_argument, NULL, 'g' },
        { "rooms", required_argument, NULL, 'h' },
        { "room-prefix", required_argument, NULL, 'i' },
        { "procs", required_argument, NULL, 'j' },
        { "sources", required_argument, NULL, 'k' },
        { "concurrency", required_argument, NULL, 'l' },
        { "senders", required_argument, NULL, 'm' },
        { "rate", required_argument, NULL, 'n' },
        { "duration", required_argument, NULL, 'o' },
        { "window", required_argument, NULL, 'p' },
        { "size", required_argument, NULL, 'q' },
        { "hold", required_argument, NULL, 'r' },
        { "drain", required_argument, NULL, 's' },
        { "server-pids", required_argument, NULL, 't' },
        { "other-pids", required_argument, NULL, 'u' },
        { "timeout", required_argument, NULL, 'v' },
        { "connect-timeout", required_argument, NULL, 'w' },
        { "churn", no_argument, NULL, 'x' },
        { "token-file", required_argument, NULL, 'y' },
        { "sub-transport", required_argument, NULL, 'z' },
        { "help", no_argument, NULL, 'H' },
        { NULL, 0, NULL, 0 }
    };

    int          ch, i;
    const char  *s;

    opt.host = "127.0.0.1";
    opt.port = 8080;
    opt.path = "/chat";
    opt.sub_path = "/sub/";
    opt.pub_path = "/pub/";
    opt.prefix = "b";
    opt.conns = 100;
    opt.rooms = 1;
    opt.procs = 1;
    opt.sources = 1;
    opt.concurrency = 200;
    opt.window = 1;
    opt.size = 100;
    opt.duration = 10;
    opt.drain = 5;
    opt.timeout = 300;
    opt.connect_timeout = 30;

    for (i = 0; i < 1000; i++) {
        ch = getopt_long(argc, argv, "", longopts, NULL);
        if (ch == -1) {
            break;
        }

        switch (ch) {
        case 'a':
            if (strcmp(optarg, "chat") == 0) {
                opt.nchan = 0;
            } else if (strcmp(optarg, "nchan") == 0) {
                opt.nchan = 1;
            } else {
                die("--proto is chat or nchan");
            }
            break;
        case 'b': opt.host = optarg; break;
        case 'c': opt.port = (unsigned) num("port", optarg, 1, 65535); break;
        case 'd': opt.path = optarg; break;
        case 'e': opt.sub_path = optarg; break;
        case 'f': opt.pub_path = optarg; break;
        case 'g':
            opt.conns = (uint64_t) num("conns", optarg, 0, CB_MAX_CONNS);
            break;
        case 'h':
            opt.rooms = (uint64_t) num("rooms", optarg, 1, CB_MAX_ROOMS);
            break;
        case 'i': opt.prefix = optarg; break;
        case 'j':
            opt.procs = (uint64_t) num("procs", optarg, 1, CB_MAX_PROCS);
            break;
        case 'k':
            opt.sources = (uint64_t) num("sources", optarg, 0, 65000);
            break;
        case 'l':
            opt.concurrency = (uint64_t) num("concurrency", optarg, 1, 1e6);
            break;
        case 'm':
            opt.senders = (uint64_t) num("senders", optarg, 0,
                                         CB_MAX_CONNS);
            opt.senders++;
            break;
        case 'n': opt.rate = num("rate", optarg, 0, 1e8); break;
        case 'o': opt.duration = num("duration", optarg, 0, 86400); break;
        case 'p':
            opt.window = (uint64_t) num("window", optarg, 1, 1e6);
            break;
        case 'q':
            opt.size = (uint64_t) num("size", optarg, 0, CB_MAX_SIZE);
            break;
        case 'r': opt.hold = num("hold", optarg, 0, 86400); break;
        case 's': opt.drain = num("drain", optarg, 0, 86400); break;
        case 't':
            opt.nserver = pid_list("server-pids", optarg, opt.server_pids);
            break;
        case 'u':
            opt.nother = pid_list("other-pids", optarg, opt.other_pids);
            break;
        case 'v': opt.timeout = num("timeout", optarg, 1, 86400); break;
        case 'w':
            opt.connect_timeout = num("connect-timeout", optarg, 0.1, 86400);
            break;
        case 'x': opt.churn = 1; break;
        case 'y': opt.token_file = optarg; break;
        case 'z':
            if (strcmp(optarg, "ws") == 0) {
                opt.transport = TR_WS;
            } else if (strcmp(optarg, "sse") == 0) {
                opt.transport = TR_SSE;
            } else if (strcmp(optarg, "poll") == 0) {
                opt.transport = TR_POLL;
            } else {
                die("--sub-transport is ws, sse or poll");
            }
            break;
        case 'H':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }

    if (optind < argc) {
        usage(stderr);
        exit(2);
    }

    /* --senders was stored plus one so that 0 can be told from unset */
    if (opt.senders == 0) {
        opt.senders = opt.rooms;
    } else {
        opt.senders--;
    }

    if (opt.senders > opt.conns) {
        opt.senders = opt.conns;
    }

    /* churned connections are gone before anything could be sent */
    if (opt.churn) {
        opt.senders = 0;
    }

    if (opt.churn && opt.transport != TR_WS) {
        die("--churn takes WebSocket handshakes (--sub-transport ws)");
    }

    if (opt.nchan && opt.transport == TR_POLL) {
        die("--sub-transport poll is ngx_chat's long poll (--proto chat)");
    }

    if (opt.token_file) {
        read_tokens(opt.token_file);
    }

    if (opt.size < 25) {
        opt.size = 25;
    }

    if (inet_pton(AF_INET, opt.host, &opt.addr) != 1
        || (ntohl(opt.addr.s_addr) >> 24) != 127)
    {
        die("--host must be an IPv4 loopback address (127.0.0.0/8)");
    }

    if (opt.sources > 0 && opt.sources > 65278) {
        die("--sources too large");
    }

    s = opt.nchan ? opt.sub_path : opt.path;
    if (strlen(s) > 256 || strlen(opt.pub_path) > 256
        || strlen(opt.prefix) > 64 || strlen(opt.host) > 40)
    {
        die("path, host or room prefix too long");
    }

    for (s = opt.prefix; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
              || (*s >= '0' && *s <= '9') || strchr("_.:@-", *s)))
        {
            die("--room-prefix: only A-Z a-z 0-9 _ . : @ -");
        }
    }
}


static uint64_t
members(uint64_t r)
{
    return opt.conns / opt.rooms + (r < opt.conns % opt.rooms ? 1 : 0);
}


/* a counter's growth; a process gone meanwhile reads as 0, not wraps */

static uint64_t
delta(uint64_t from, uint64_t to)
{
    return to > from ? to - from : 0;
}


static double
secs(int64_t a, int64_t b)
{
    return b > a ? (double) (b - a) / 1e9 : 0.0;
}


int
main(int argc, char **argv)
{
    int            i, pin[2], pout[2], rc;
    uint64_t       k, share, need, expected, lost, dup, e, d, u;
    int64_t        t0, deadline, go, end_ns, until;
    double         hs_s, conn_s, dur, sdur, cpu_d;
    struct rlimit  rl;
    struct rusage  ru;
    cb_sample_t    sb, sc, sh, sg, se, og, oe;
    uint64_t       p50, p90, p99, p999, rss_per_conn, srv_cpu, oth_cpu;
    uint64_t       cli_cpu, con_cpu;
    const char    *proto, *transport;

    parse_args(argc, argv);

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stderr, NULL, _IOLBF, 0);

    t0 = mono();
    deadline = t0 + (int64_t) (opt.timeout * CB_NS);
    run_id = (uint32_t) (((uint64_t) t0 * 2654435761u) ^ (uint64_t) getpid()
                         ^ ((uint64_t) time(NULL) << 16));
    proto = opt.nchan ? "nchan" : "chat";
    transport = opt.transport == TR_SSE ? "sse"
                : opt.transport == TR_POLL ? "poll" : "ws";

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }

    share = (opt.conns + opt.procs - 1) / opt.procs;
    need = share + (opt.nchan ? (opt.senders + opt.procs - 1) / opt.procs : 0)
           + 32;

    /* churned connections are closed at their welcome */
    if (opt.churn && opt.concurrency < share) {
        need = opt.concurrency * 2 + 32;
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && need > rl.rlim_cur)
    {
        die("%" PRIu64 " connections per process exceed the open file "
            "limit %llu: use more --procs", share,
            (unsigned long long) rl.rlim_cur);
    }

    if (opt.sources && opt.conns / opt.sources > 28000) {
        fprintf(stderr, "chatbench: warning: %" PRIu64 " connections per "
                "source address may exhaust ephemeral ports: use more "
                "--sources\n", opt.conns / opt.sources);
    }

    memset(&dst, 0, sizeof(dst));
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t) opt.port);
    dst.sin_addr = opt.addr;
    snprintf(hostport, sizeof(hostport), "%s:%u", opt.host, opt.port);

    total_msgs = (uint64_t) (opt.rate * opt.duration + 0.5);

    tot_hist = calloc(CB_HIST_N, sizeof(uint64_t));
    tot_sent = calloc(opt.rooms, sizeof(uint64_t));
    tot_acked = calloc(opt.rooms, sizeof(uint64_t));
    tot_deliv = calloc(opt.rooms, sizeof(uint64_t));
    if (tot_hist == NULL || tot_sent == NULL || tot_acked == NULL
        || tot_deliv == NULL)
    {
        die("out of memory");
    }

    sample(opt.server_pids, opt.nserver, &sb);

    fprintf(stderr, "chatbench: run %08x: %s %s, %" PRIu64 " connections "
            "(%s), %" PRIu64 " rooms, %" PRIu64 " senders, %" PRIu64
            " processes\n", run_id, proto, hostport, opt.conns, transport,
            opt.rooms, opt.senders, opt.procs);

    fflush(stdout);

    for (k = 0; k < opt.procs; k++) {
        if (pipe2(pin, O_CLOEXEC) != 0 || pipe2(pout, O_CLOEXEC) != 0) {
            die("pipe(): %s", strerror(errno));
        }

        kids[k].pid = fork();

        if (kids[k].pid < 0) {
            die("fork(): %s", strerror(errno));
        }

        if (kids[k].pid == 0) {
            close(pin[0]);
            close(pout[1]);
            for (i = 0; (uint64_t) i < k; i++) {
                close(kids[i].rfd);
                close(kids[i].wfd);
            }
            client_main((uint32_t) k, pout[0], pin[1],
                        deadline - CB_NS / 2);
        }

        close(pin[1]);
        close(pout[0]);
        kids[k].rfd = pin[0];
        kids[k].wfd = pout[1];
    }

    rc = kids_wait(0, deadline);
    sample(opt.server_pids, opt.nserver, &sc);

    if (rc == 0) {
        until = mono() + (int64_t) (opt.hold * CB_NS);
        if (until > deadline) {
            until = deadline;
        }

        if (opt.hold > 0) {
            fprintf(stderr, "chatbench: holding %.1f s\n", opt.hold);
            (void) kids_wait(1, until);
            sample(opt.server_pids, opt.nserver, &sh);
        } else {
            sh = sc;
        }

    } else {
        sh = sc;
    }

    go = mono() + 100 * CB_MS;
    sample(opt.server_pids, opt.nserver, &sg);
    sample(opt.other_pids, opt.nother, &og);

    for (k = 0; k < opt.procs; k++) {
        if (!kids[k].eof && write_all(kids[k].wfd, &go, sizeof(go)) != 0) {
            kids[k].eof = 1;
        }
    }

    if (rc == 0) {
        fprintf(stderr, "chatbench: sending for %.1f s\n", opt.duration);
    }

    rc = kids_wait(1, deadline) || rc;
    end_ns = mono();
    sample(opt.server_pids, opt.nserver, &se);
    sample(opt.other_pids, opt.nother, &oe);

    if (rc != 0) {
        tot.timed_out++;
        fprintf(stderr, "chatbench: hard timeout (%.0f s) or client "
                "failure\n", opt.timeout);
    }

    kids_reap(rc ? mono() : end_ns + 30 * CB_NS);

    cli_cpu = 0;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
        cli_cpu = (uint64_t) ru.ru_utime.tv_sec * 1000
                  + (uint64_t) ru.ru_utime.tv_usec / 1000
                  + (uint64_t) ru.ru_stime.tv_sec * 1000
                  + (uint64_t) ru.ru_stime.tv_usec / 1000;
    }

    for (k = 0; k < opt.procs; k++) {
        if (!kids[k].done) {
            tot.timed_out++;
        }
    }

    expected = 0;
    lost = 0;
    dup = 0;

    for (k = 0; k < opt.rooms; k++) {
        e = tot_acked[k] * members(k);
        d = tot_deliv[k];
        expected += e;
        lost += e > d ? e - d : 0;
        dup += d > e ? d - e : 0;
    }

    hs_s = secs(tot.t_first_start, tot.t_last_hs);
    conn_s = secs(tot.t_first_start, tot.t_all_ready);
    dur = secs(go, tot.t_last_delivery);
    sdur = secs(go, tot.t_run_end);
    p50 = hist_pct(tot_hist, tot.lat_n, tot.lat_max, 0.50);
    p90 = hist_pct(tot_hist, tot.lat_n, tot.lat_max, 0.90);
    p99 = hist_pct(tot_hist, tot.lat_n, tot.lat_max, 0.99);
    p999 = hist_pct(tot_hist, tot.lat_n, tot.lat_max, 0.999);

    u = tot.connected ? tot.connected : 1;
    rss_per_conn = sh.rss_kb > sb.rss_kb
                   ? (sh.rss_kb - sb.rss_kb) * 1024 / u : 0;
    srv_cpu = delta(sg.cpu_ms, se.cpu_ms);
    con_cpu = delta(sb.cpu_ms, sc.cpu_ms);
    oth_cpu = delta(og.cpu_ms, oe.cpu_ms);
    cpu_d = tot.delivered ? (double) srv_cpu * 1000.0
                            / (double) tot.delivered : 0.0;

    fprintf(stderr,
            "chatbench: connect: %" PRIu64 "/%" PRIu64 " connected, %"
            PRIu64 " ready in %.3f s (%.0f handshakes/s), %" PRIu64
            " failed, %" PRIu64 " join failures\n",
            tot.connected, opt.conns, tot.ready, conn_s,
            hs_s > 0 ? (double) tot.connected / hs_s : 0.0,
            tot.connect_failed, tot.join_failed);

    if (opt.nchan) {
        fprintf(stderr, "chatbench: publishers: %" PRIu64 "/%" PRIu64
                " connected, %" PRIu64 " failed, %" PRIu64 " reconnects\n",
                tot.pubs_connected, opt.senders, tot.pubs_failed,
                tot.pub_reconnects);
    }

    fprintf(stderr,
            "chatbench: sent %" PRIu64 " (%.0f/s, %" PRIu64 " late, %"
            PRIu64 " skipped, %" PRIu64 " dropped: send queue full), acked %"
            PRIu64 ", errors %" PRIu64 ", unacked %" PRIu64 "\n",
            tot.sent, sdur > 0 ? (double) tot.sent / sdur : 0.0, tot.behind,
            tot.skipped, tot.wbuf_full, tot.acked, tot.errors, tot.unacked);

    for (k = 0; k < tot.ncodes; k++) {
        fprintf(stderr, "chatbench:   error %s: %" PRIu64 "\n",
                tot.codes[k].name, tot.codes[k].n);
    }

    fprintf(stderr,
            "chatbench: delivered %" PRIu64 " of %" PRIu64 " expected (%.0f/s)"
            ", lost %" PRIu64 ", extra %" PRIu64 ", seq gaps %" PRIu64
            ", foreign %" PRIu64 "\n",
            tot.delivered, expected,
            dur > 0 ? (double) tot.delivered / dur : 0.0, lost, dup,
            tot.seq_gaps, tot.foreign);

    fprintf(stderr,
            "chatbench: latency us: p50 %" PRIu64 " p90 %" PRIu64 " p99 %"
            PRIu64 " p99.9 %" PRIu64 " max %" PRIu64 "\n",
            p50, p90, p99, p999, tot.lat_max);

    for (k = 0; k < tot.ncloses; k++) {
        fprintf(stderr, "chatbench:   close code %s: %" PRIu64 "\n",
                tot.closes[k].name, tot.closes[k].n);
    }

    fprintf(stderr,
            "chatbench: closes 1013 %" PRIu64 ", other %" PRIu64
            ", dropped without close %" PRIu64 ", protocol errors %" PRIu64
            ", other events (presence...) %" PRIu64 "\n", tot.closes_1013,
            tot.closes_other, tot.disconnects, tot.proto_errors,
            tot.other_events);

    if (opt.transport == TR_POLL) {
        fprintf(stderr, "chatbench: %" PRIu64 " polls answered from go, %.1f"
                " deliveries each; %" PRIu64 " refused polls polled again\n",
                tot.polls, tot.polls
                ? (double) tot.delivered / (double) tot.polls : 0.0,
                tot.poll_retries);
    }

    if (opt.nserver) {
        fprintf(stderr,
                "chatbench: server RSS kB: base %" PRIu64 " connected %"
                PRIu64 " held %" PRIu64 " end %" PRIu64 " (%" PRIu64
                " B/conn), CPU %" PRIu64 " ms connecting, %" PRIu64
                " ms from go (%.1f us/delivery), %d/%d alive at end\n",
                sb.rss_kb, sc.rss_kb, sh.rss_kb, se.rss_kb, rss_per_conn,
                con_cpu, srv_cpu, cpu_d, se.alive, opt.nserver);

        for (k = 0; k < (uint64_t) opt.nserver; k++) {
            fprintf(stderr,
                    "chatbench:   pid %d: RSS kB base %" PRIu64 " held %"
                    PRIu64 " end %" PRIu64 ", CPU ms connecting %" PRIu64
                    " from go %" PRIu64 "\n",
                    (int) opt.server_pids[k], sb.pid_rss_kb[k],
                    sh.pid_rss_kb[k], se.pid_rss_kb[k],
                    delta(sb.pid_cpu_ms[k], sc.pid_cpu_ms[k]),
                    delta(sg.pid_cpu_ms[k], se.pid_cpu_ms[k]));
        }
    }

    fprintf(stderr, "chatbench: client CPU %" PRIu64 " ms, run %.3f s\n",
            cli_cpu, secs(t0, end_ns));

    printf("RESULT proto=%s sub_transport=%s conns=%" PRIu64 " rooms=%" PRIu64 " procs=%"
           PRIu64 " senders=%" PRIu64 " rate=%g duration=%g window=%" PRIu64
           " size=%" PRIu64 " connected=%" PRIu64 " ready=%" PRIu64
           " connect_failed=%" PRIu64 " join_failed=%" PRIu64
           " connect_s=%.3f handshake_per_s=%.0f",
           proto, transport, opt.conns, opt.rooms, opt.procs, opt.senders,
           opt.rate,
           opt.duration, opt.window, opt.size, tot.connected, tot.ready,
           tot.connect_failed, tot.join_failed, conn_s,
           hs_s > 0 ? (double) tot.connected / hs_s : 0.0);

    if (opt.nchan) {
        printf(" pubs_connected=%" PRIu64 " pubs_failed=%" PRIu64
               " pub_reconnects=%" PRIu64, tot.pubs_connected,
               tot.pubs_failed, tot.pub_reconnects);
    }

    printf(" sent=%" PRIu64 " acked=%" PRIu64 " unacked=%" PRIu64
           " skipped=%" PRIu64 " send_dropped=%" PRIu64 " errors=%" PRIu64,
           tot.sent, tot.acked, tot.unacked, tot.skipped, tot.wbuf_full,
           tot.errors);

    for (k = 0; k < tot.ncodes; k++) {
        printf(" err_%s=%" PRIu64, tot.codes[k].name, tot.codes[k].n);
    }

    printf(" closes_1013=%" PRIu64 " closes_other=%" PRIu64
           " disconnects=%" PRIu64 " proto_errors=%" PRIu64
           " expected=%" PRIu64 " delivered=%" PRIu64 " lost=%" PRIu64
           " dup_or_extra=%" PRIu64 " seq_gaps=%" PRIu64 " foreign=%" PRIu64
           " other_events=%" PRIu64 " polls=%" PRIu64
           " poll_retries=%" PRIu64
           " deliveries_per_s=%.0f sent_per_s=%.0f"
           " lat_p50_us=%" PRIu64 " lat_p90_us=%" PRIu64
           " lat_p99_us=%" PRIu64 " lat_p999_us=%" PRIu64
           " lat_max_us=%" PRIu64,
           tot.closes_1013, tot.closes_other, tot.disconnects,
           tot.proto_errors, expected, tot.delivered, lost, dup,
           tot.seq_gaps, tot.foreign, tot.other_events, tot.polls,
           tot.poll_retries,
           dur > 0 ? (double) tot.delivered / dur : 0.0,
           sdur > 0 ? (double) tot.sent / sdur : 0.0,
           p50, p90, p99, p999, tot.lat_max);

    printf(" server_rss_base_kb=%" PRIu64 " server_rss_connected_kb=%" PRIu64
           " server_rss_held_kb=%" PRIu64 " server_rss_end_kb=%" PRIu64
           " rss_per_conn_b=%" PRIu64 " server_cpu_connect_ms=%" PRIu64
           " server_cpu_ms=%" PRIu64
           " cpu_us_per_delivery=%.2f other_cpu_ms=%" PRIu64
           " client_cpu_ms=%" PRIu64 " behind=%" PRIu64 " timed_out=%u"
           " run=%08x\n",
           sb.rss_kb, sc.rss_kb, sh.rss_kb, se.rss_kb, rss_per_conn,
           con_cpu, srv_cpu, cpu_d, oth_cpu, cli_cpu, tot.behind,
           tot.timed_out, run_id);

    fflush(stdout);

    return tot.timed_out ? 1 : 0;
}
