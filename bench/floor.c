/*
 * floor: the CPU cost per delivered WebSocket frame of plain write()s
 * to N loopback TCP connections, with no server logic at all.
 *
 *   floor --conns N [--frames F] [--size B] [--batch K] [--port P]
 *
 * On loopback the receiver's TCP path runs in the sender's context, so
 * the writer's own CPU time per frame is the floor a chat server sending
 * the same frames cannot go below.  The reader is a separate process so
 * that its CPU time is not counted.
 *
 * Build: cc -O2 -g -Wall -Wextra -Werror -o floor bench/floor.c
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define HARD_TIMEOUT_S      60
#define DEFAULT_BUDGET_S    10.0
#define EXPLICIT_BUDGET_S   45.0
#define TARGET_DELIVERIES   1000000L
#define MIN_ROUNDS          10L
#define MAX_BATCH           1024
#define MAX_SIZE            (1 << 20)
#define READ_BUF_SIZE       (256 * 1024)
#define FD_RESERVE          16

static pid_t  reader_pid = -1;
static double t_start;

static double
now_mono(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
now_cpu(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
tv_sec(struct timeval tv)
{
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
    va_list  ap;
    int      err = errno;

    fprintf(stderr, "floor[%s]: ", reader_pid == 0 ? "reader" : "writer");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (err != 0) {
        fprintf(stderr, ": %s", strerror(err));
    }
    fputc('\n', stderr);

    if (reader_pid > 0) {
        kill(reader_pid, SIGKILL);
        waitpid(reader_pid, NULL, 0);
    }
    _exit(1);
}

/* Milliseconds left before the hard timeout, for epoll_wait/poll. */
static int
ms_left(void)
{
    double  left = HARD_TIMEOUT_S - (now_mono() - t_start);

    if (left <= 0) {
        errno = ETIMEDOUT;
        die("hard timeout of %d s reached", HARD_TIMEOUT_S);
    }
    return (int) (left * 1000) + 1;
}

static void
set_nonblock(int fd)
{
    int  flags = fcntl(fd, F_GETFL);

    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
        die("fcntl(O_NONBLOCK)");
    }
}

static void
write_full(int fd, const void *buf, size_t len)
{
    const char  *p = buf;
    ssize_t      n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("pipe write");
        }
        p += n;
        len -= (size_t) n;
    }
}

/* Blocking pipe read, but never past the hard timeout. */
static void
read_full(int fd, void *buf, size_t len)
{
    char     *p = buf;
    ssize_t   n;
    int       ep;
    struct epoll_event  ev = { .events = EPOLLIN };

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        die("epoll for pipe");
    }

    while (len > 0) {
        if (epoll_wait(ep, &ev, 1, ms_left()) < 0 && errno != EINTR) {
            die("epoll_wait(pipe)");
        }
        n = read(fd, p, len);
        if (n == 0) {
            errno = 0;
            die("reader exited early");
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            die("pipe read");
        }
        p += n;
        len -= (size_t) n;
    }
    close(ep);
}

/*
 * The reader: accept nconns, announce that, then drain everything until
 * every peer has closed, and report the byte count for a sanity check.
 */
static void __attribute__((noreturn))
reader(int lfd, long nconns, int out)
{
    static char          buf[READ_BUF_SIZE];
    struct epoll_event   evs[256];
    struct epoll_event   ev;
    long                 accepted = 0, closed = 0;
    uint64_t             total = 0;
    int                  ep, i, n, fd;
    ssize_t              r;
    char                 ready = 'R';

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) == -1) {
        die("epoll_ctl(listen)");
    }

    while (closed < nconns) {
        n = epoll_wait(ep, evs, 256, ms_left());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }

        for (i = 0; i < n; i++) {
            fd = evs[i].data.fd;

            if (fd == lfd) {
                while (accepted < nconns) {
                    int  c = accept4(lfd, NULL, NULL,
                                     SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c == -1) {
                        if (errno == EAGAIN || errno == EINTR) {
                            break;
                        }
                        die("accept4");
                    }
                    ev.events = EPOLLIN | EPOLLRDHUP;
                    ev.data.fd = c;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) == -1) {
                        die("epoll_ctl(conn)");
                    }
                    if (++accepted == nconns) {
                        epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
                        close(lfd);
                        write_full(out, &ready, 1);
                    }
                }
                continue;
            }

            /*
             * Level-triggered and one big read per wakeup: whatever is left
             * shows up in the next epoll_wait without an extra EAGAIN read.
             */
            r = read(fd, buf, sizeof(buf));
            if (r > 0) {
                total += (uint64_t) r;
                continue;
            }
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            if (r < 0 && errno != ECONNRESET) {
                die("read");
            }
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            closed++;
        }
    }

    write_full(out, &total, sizeof(total));
    _exit(0);
}

static long
parse_num(const char *opt, const char *s, long min, long max)
{
    char  *end;
    long   v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        errno = 0;
        die("%s wants an integer in [%ld, %ld], got \"%s\"",
            opt, min, max, s);
    }
    return v;
}

static void __attribute__((noreturn))
usage(void)
{
    fprintf(stderr,
            "usage: floor --conns N [--frames F] [--size B] [--batch K]"
            " [--port P]\n");
    exit(2);
}

/*
 * A server-to-client text frame: FIN|text, unmasked, 'x' payload.  Sizes
 * 128 and 129 get a 16-bit length though 124 and 125 would fit in 7 bits.
 */
static size_t
make_frame(unsigned char *p, size_t size)
{
    size_t  hdr, len;

    if (size - 2 < 126) {
        hdr = 2;
        len = size - 2;
        p[1] = (unsigned char) len;
    } else if (size - 4 <= 0xffff) {
        hdr = 4;
        len = size - 4;
        p[1] = 126;
        p[2] = (unsigned char) (len >> 8);
        p[3] = (unsigned char) len;
    } else {
        hdr = 10;
        len = size - 10;
        p[1] = 127;
        for (int i = 0; i < 8; i++) {
            p[2 + i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
        }
    }
    p[0] = 0x81;
    memset(p + hdr, 'x', len);
    return size;
}

/*
 * Queue one batch on fd.  The common case is a single write()/writev();
 * a short write or EAGAIN waits for writability and finishes the rest.
 */
static void
send_batch(int fd, int ep, unsigned char *bbuf, struct iovec *iov,
    int batch, size_t total, long *eagain)
{
    size_t              done = 0;
    ssize_t             n;
    struct epoll_event  ev;

    while (done < total) {
        if (done == 0) {
            n = batch == 1 ? write(fd, bbuf, total)
                           : writev(fd, iov, batch);
        } else {
            n = write(fd, bbuf + done, total - done);
        }

        if (n > 0) {
            done += (size_t) n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            die("write to connection");
        }
        if (errno == EINTR) {
            continue;
        }

        (*eagain)++;
        ev.events = EPOLLOUT;
        ev.data.fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
            die("epoll_ctl(ADD)");
        }
        if (epoll_wait(ep, &ev, 1, ms_left()) < 0 && errno != EINTR) {
            die("epoll_wait(EPOLLOUT)");
        }
        if (epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) == -1) {
            die("epoll_ctl(DEL)");
        }
    }
}

int
main(int argc, char **argv)
{
    long                 nconns = 0, frames = 0, size = 100, batch = 1;
    long                 port = 0, rounds, r, i, eagain = 0, max_conns;
    int                  lfd, ep, one = 1, pfd[2], status;
    int                 *fds;
    unsigned char       *bbuf;
    struct iovec        *iov;
    struct sockaddr_in   sin;
    socklen_t            slen;
    struct rlimit        rl;
    struct rusage        ru0, ru1, rr;
    size_t               total;
    uint64_t             expected, received = 0;
    uint16_t             lport;
    char                 ready;
    double               budget, w0, w1, c0, c1, tsetup, cpu, wall;
    long                 deliveries;

    t_start = now_mono();
    alarm(HARD_TIMEOUT_S + 5);
    signal(SIGPIPE, SIG_IGN);

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        die("getrlimit");
    }
    max_conns = rl.rlim_cur == RLIM_INFINITY ? 100000
                : (long) rl.rlim_cur - FD_RESERVE;

    for (i = 1; i < argc; i++) {
        const char  *o = argv[i];

        if (i + 1 >= argc) {
            usage();
        }
        if (strcmp(o, "--conns") == 0) {
            nconns = parse_num(o, argv[++i], 1, max_conns);
        } else if (strcmp(o, "--frames") == 0) {
            frames = parse_num(o, argv[++i], 1, LONG_MAX / 2);
        } else if (strcmp(o, "--size") == 0) {
            size = parse_num(o, argv[++i], 2, MAX_SIZE);
        } else if (strcmp(o, "--batch") == 0) {
            batch = parse_num(o, argv[++i], 1, MAX_BATCH);
        } else if (strcmp(o, "--port") == 0) {
            port = parse_num(o, argv[++i], 0, 65535);
        } else {
            usage();
        }
    }
    if (nconns == 0) {
        usage();
    }
    if (size * batch > 64L * MAX_SIZE) {
        errno = 0;
        die("--size times --batch is too large");
    }

    rounds = frames;
    budget = EXPLICIT_BUDGET_S;
    if (rounds == 0) {
        rounds = (TARGET_DELIVERIES + nconns * batch - 1) / (nconns * batch);
        if (rounds < MIN_ROUNDS) {
            rounds = MIN_ROUNDS;
        }
        budget = DEFAULT_BUDGET_S;
    }

    /* Reader side of the setup. */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd == -1) {
        die("socket");
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t) port);
    if (bind(lfd, (struct sockaddr *) &sin, sizeof(sin)) == -1) {
        die("bind 127.0.0.1:%ld", port);
    }
    if (listen(lfd, nconns > INT_MAX ? INT_MAX : (int) nconns) == -1) {
        die("listen");
    }
    slen = sizeof(sin);
    if (getsockname(lfd, (struct sockaddr *) &sin, &slen) == -1) {
        die("getsockname");
    }
    lport = ntohs(sin.sin_port);

    if (pipe2(pfd, O_CLOEXEC) == -1) {
        die("pipe2");
    }
    fflush(NULL);
    reader_pid = fork();
    if (reader_pid == -1) {
        die("fork");
    }
    if (reader_pid == 0) {
        alarm(HARD_TIMEOUT_S + 5);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) {
            _exit(1);
        }
        close(pfd[0]);
        reader(lfd, nconns, pfd[1]);
    }
    close(pfd[1]);
    close(lfd);

    /* Writer side of the setup: blocking connects, then non-blocking. */
    fds = calloc((size_t) nconns, sizeof(int));
    total = (size_t) size * (size_t) batch;
    bbuf = malloc(total);
    iov = calloc((size_t) batch, sizeof(struct iovec));
    if (fds == NULL || bbuf == NULL || iov == NULL) {
        die("out of memory");
    }
    for (i = 0; i < batch; i++) {
        make_frame(bbuf + i * size, (size_t) size);
        iov[i].iov_base = bbuf + i * size;
        iov[i].iov_len = (size_t) size;
    }

    for (i = 0; i < nconns; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] == -1) {
            die("socket #%ld", i);
        }
        /* A chat server wants every frame out now, not Nagle-merged. */
        if (setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
            == -1)
        {
            die("TCP_NODELAY");
        }
        while (connect(fds[i], (struct sockaddr *) &sin, sizeof(sin))
               == -1)
        {
            if (errno != EINTR) {
                die("connect #%ld to 127.0.0.1:%u", i, lport);
            }
            ms_left();
        }
        set_nonblock(fds[i]);
    }
    read_full(pfd[0], &ready, 1);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    /* One unmeasured round, so first-use allocations are not counted. */
    for (i = 0; i < nconns; i++) {
        send_batch(fds[i], ep, bbuf, iov, (int) batch, total, &eagain);
    }
    eagain = 0;
    tsetup = now_mono() - t_start;

    getrusage(RUSAGE_SELF, &ru0);
    c0 = now_cpu();
    w0 = now_mono();

    for (r = 0; r < rounds; r++) {
        for (i = 0; i < nconns; i++) {
            send_batch(fds[i], ep, bbuf, iov, (int) batch, total, &eagain);
        }
        if (now_mono() - w0 > budget) {
            r++;
            break;
        }
    }

    c1 = now_cpu();
    w1 = now_mono();
    getrusage(RUSAGE_SELF, &ru1);

    for (i = 0; i < nconns; i++) {
        close(fds[i]);
    }
    close(ep);

    read_full(pfd[0], &received, sizeof(received));
    if (wait4(reader_pid, &status, 0, &rr) == -1) {
        die("wait4");
    }
    reader_pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = 0;
        die("reader failed (status %d)", status);
    }

    rounds = r;
    deliveries = rounds * nconns * batch;
    expected = (uint64_t) (rounds + 1) * (uint64_t) nconns * total;
    if (received != expected) {
        errno = 0;
        die("reader got %llu bytes, expected %llu",
            (unsigned long long) received, (unsigned long long) expected);
    }

    cpu = c1 - c0;
    wall = w1 - w0;

    printf("FLOOR conns=%ld size=%ld batch=%ld deliveries=%ld cpu_ms=%.1f"
           " us_per_delivery=%.3f wall_s=%.3f eagain=%ld\n",
           nconns, size, batch, deliveries, cpu * 1e3,
           cpu * 1e6 / (double) deliveries, wall, eagain);
    fflush(stdout);

    fprintf(stderr,
            "floor: %ld conns x %ld rounds x %ld frame(s) of %ld B"
            " = %ld deliveries (%.1f MB)\n"
            "floor: writer cpu %.1f ms (user %.1f, sys %.1f),"
            " wall %.3f s, %.0f deliveries/s\n"
            "floor: %.3f us cpu per delivery, %.3f us per write call,"
            " %ld EAGAIN waits\n"
            "floor: setup %.2f s, reader cpu %.1f ms (not counted)\n",
            nconns, rounds, batch, size, deliveries,
            (double) deliveries * (double) size / 1e6,
            cpu * 1e3,
            (tv_sec(ru1.ru_utime) - tv_sec(ru0.ru_utime)) * 1e3,
            (tv_sec(ru1.ru_stime) - tv_sec(ru0.ru_stime)) * 1e3,
            wall, (double) deliveries / wall,
            cpu * 1e6 / (double) deliveries,
            cpu * 1e6 / (double) (rounds * nconns), eagain,
            tsetup, (tv_sec(rr.ru_utime) + tv_sec(rr.ru_stime)) * 1e3);

    free(iov);
    free(bbuf);
    free(fds);
    return 0;
}
