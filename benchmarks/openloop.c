/* Open-loop (constant-rate) HTTP/1.1 load generator for loopback benchmarks.
 *
 * Request i is *due* at start + i / rate, whatever happened to earlier requests, and its latency is
 * measured from that due time to the last byte of its response. So a stalled server is charged for
 * every request that should have been sent meanwhile (no coordinated omission), as in wrk2.
 * Requests go round-robin over C keep-alive connections, one request in flight per connection (as a
 * SIP proxy's HTTP client does); a request due while its connection still waits is sent as soon as
 * the previous answer arrives, and the wait counts in its latency.
 *
 * Usage: openloop HOST PORT RATE SECONDS CONNECTIONS REQUEST_FILE [MAX_WAIT_S [MARKER]]
 * MARKER: also count the answers whose body contains this string (e.g. a reason code).
 *        openloop --jitter SECONDS
 * REQUEST_FILE holds complete raw requests separated by NUL bytes; they are sent in turn, cycling.
 * Prints one JSON object: counts, achieved rate, latency percentiles in ms, non-200 answers, and the
 * client's own scheduling lag (how late it sent requests whose connection was free: if large, the
 * generator itself was starved of CPU and the figures are not trustworthy).
 * Built by benchmarks/firewall.py with `cc -O2`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int busy;          /* a request is in flight */
    long next_k;       /* this connection's k-th request is global request conn + k * C */
    long inflight_i;   /* global index of the request in flight */
    size_t sent;       /* bytes of it written so far */
    double free_since; /* when the last answer arrived */
    char buf[65536];
    size_t len;
} conn_t;

static struct sockaddr_in addr;
static char **reqs;
static size_t *req_lens;
static long n_reqs;
static double t0, rate;
static long total, C;
static double *lat_ms;
static long done, errors, non200, reconnects, marked;
static const char *marker;
static double max_lag_ms, sum_lag_ms;
static long lag_n;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double due(long i) { return t0 + (double)i / rate; }

static int connect_one(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); exit(2); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("connect"); exit(2); }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void load_requests(const char *path) {
    FILE *fh = fopen(path, "rb");
    if (!fh) { perror(path); exit(2); }
    struct stat st;
    fstat(fileno(fh), &st);
    char *all = malloc(st.st_size + 1);
    if (fread(all, 1, st.st_size, fh) != (size_t)st.st_size) { perror("read"); exit(2); }
    fclose(fh);
    all[st.st_size] = 0;
    long cap = 1024;
    reqs = malloc(cap * sizeof *reqs);
    req_lens = malloc(cap * sizeof *req_lens);
    char *p = all, *end = all + st.st_size;
    while (p < end) {
        size_t n = strlen(p);
        if (n) {
            if (n_reqs == cap) {
                cap *= 2;
                reqs = realloc(reqs, cap * sizeof *reqs);
                req_lens = realloc(req_lens, cap * sizeof *req_lens);
            }
            reqs[n_reqs] = p;
            req_lens[n_reqs++] = n;
        }
        p += n + 1;
    }
    if (!n_reqs) { fprintf(stderr, "no requests in %s\n", path); exit(2); }
}

static void try_write(conn_t *c) {
    const char *r = reqs[c->inflight_i % n_reqs];
    size_t n = req_lens[c->inflight_i % n_reqs];
    while (c->sent < n) {
        ssize_t w = write(c->fd, r + c->sent, n - c->sent);
        if (w < 0) {
            if (errno == EAGAIN) return;  /* rare on loopback; EPOLLIN-only loop retries on the next pass */
            perror("write");
            exit(2);
        }
        c->sent += (size_t)w;
    }
}

static void send_next(conn_t *c) {
    c->busy = 1;
    c->sent = 0;
    try_write(c);
}

/* Returns 1 when a whole response is in the buffer (and consumes it). */
static int parse_response(conn_t *c, int *status) {
    if (c->len < 12) return 0;
    char *head_end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!head_end) return 0;
    size_t head_len = (size_t)(head_end - c->buf) + 4;
    long body = 0;
    for (char *line = c->buf; line < head_end;) {
        char *eol = memmem(line, (size_t)(head_end - line) + 2, "\r\n", 2);
        if (!eol) break;
        if ((size_t)(eol - line) > 15 && strncasecmp(line, "content-length:", 15) == 0) body = atol(line + 15);
        line = eol + 2;
    }
    if (c->len < head_len + (size_t)body) return 0;
    *status = atoi(c->buf + 9);
    if (marker && body > 0 && memmem(c->buf + head_len, (size_t)body, marker, strlen(marker))) marked++;
    memmove(c->buf, c->buf + head_len + body, c->len - head_len - (size_t)body);
    c->len -= head_len + (size_t)body;
    return 1;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double p) {
    if (done == 0) return 0;
    long k = (long)(p / 100.0 * (double)done + 0.5);
    if (k < 1) k = 1;
    if (k > done) k = done;
    return lat_ms[k - 1];
}

/* --jitter SECONDS: how late a process that only sleeps 1 ms at a time wakes up. On an idle
   machine this is well under a millisecond; here it measures the platform's own stalls (other
   processes, the hypervisor taking the CPUs away), which no server running on it can avoid. */
static int jitter(double seconds) {
    double end = now_s() + seconds, worst = 0;
    long n = 0, over5 = 0, over20 = 0;
    struct timespec ms = {0, 1000000};
    while (now_s() < end) {
        double t = now_s();
        nanosleep(&ms, NULL);
        double late = (now_s() - t - 0.001) * 1000.0;
        if (late > worst) worst = late;
        over5 += late > 5;
        over20 += late > 20;
        n++;
    }
    printf("{\"samples\": %ld, \"worst_ms\": %.3f, \"over_5ms\": %ld, \"over_20ms\": %ld}\n", n, worst, over5, over20);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--jitter") == 0) return jitter(atof(argv[2]));
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT RATE SECONDS CONNECTIONS REQUEST_FILE [MAX_WAIT_S]\n", argv[0]);
        return 2;
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", argv[1]); return 2; }
    rate = atof(argv[3]);
    double seconds = atof(argv[4]);
    C = atol(argv[5]);
    double max_wait = argc > 7 ? atof(argv[7]) : 30.0;
    marker = argc > 8 && argv[8][0] ? argv[8] : NULL;
    if (rate <= 0 || seconds <= 0 || C < 1) { fprintf(stderr, "rate, seconds and connections must be positive\n"); return 2; }
    load_requests(argv[6]);
    total = (long)(rate * seconds);
    lat_ms = calloc((size_t)total + 1, sizeof *lat_ms);
    conn_t *conns = calloc((size_t)C, sizeof *conns);
    int ep = epoll_create1(0);
    for (long k = 0; k < C; k++) {
        conns[k].fd = connect_one();
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)k};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[k].fd, &ev);
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    t0 = now_s() + 0.02;
    double deadline = t0 + seconds + max_wait;
    long sent_total = 0;
    struct epoll_event events[256];
    while (done + errors < total) {
        double t = now_s();
        if (t > deadline) break;
        double next_due = 1e300;
        for (long k = 0; k < C; k++) {
            conn_t *c = &conns[k];
            if (c->busy) continue;
            long i = k + c->next_k * C;
            if (i >= total) continue;
            double d = due(i);
            if (d <= t) {
                /* the client's own lateness: from when both the request was due and its
                   connection was free (waiting for a slow answer is the server's, not counted here) */
                double lag = (t - (d > c->free_since ? d : c->free_since)) * 1000.0;
                sum_lag_ms += lag;
                lag_n++;
                if (lag > max_lag_ms) max_lag_ms = lag;
                c->inflight_i = i;
                c->next_k++;
                send_next(c);
                sent_total++;
            } else if (d < next_due) {
                next_due = d;
            }
        }
        if (next_due < 1e300) {
            struct itimerspec its = {0};
            its.it_value.tv_sec = (time_t)next_due;
            its.it_value.tv_nsec = (long)((next_due - (double)(time_t)next_due) * 1e9);
            if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int wait_ms = (int)((deadline - t) * 1000.0) + 1;
        int n = epoll_wait(ep, events, 256, wait_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 2;
        }
        for (int e = 0; e < n; e++) {
            if (events[e].data.u64 == UINT64_MAX) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) perror("timerfd");
                continue;
            }
            conn_t *c = &conns[events[e].data.u64];
            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
                if (r > 0) {
                    c->len += (size_t)r;
                    if (c->len == sizeof c->buf) { fprintf(stderr, "response too large\n"); return 2; }
                    continue;
                }
                if (r == 0 || (r < 0 && errno != EAGAIN)) {  /* the server closed: count and reconnect */
                    if (c->busy) { errors++; c->busy = 0; }
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = connect_one();
                    c->len = 0;
                    reconnects++;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = events[e].data.u64};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                }
                break;
            }
            int status;
            double t_done = now_s();
            while (c->busy && parse_response(c, &status)) {
                lat_ms[done++] = (t_done - due(c->inflight_i)) * 1000.0;
                if (status != 200) non200++;
                c->busy = 0;
                c->free_since = t_done;
            }
            if (c->busy && c->sent < req_lens[c->inflight_i % n_reqs]) try_write(c);
        }
    }
    double elapsed = now_s() - t0;
    long answered = done;
    /* requests unanswered (or never sent) by the deadline count with their wait so far: a lower
       bound, never omitted */
    double t_end = now_s();
    for (long k = 0; k < C; k++) {
        if (conns[k].busy && done < total) lat_ms[done++] = (t_end - due(conns[k].inflight_i)) * 1000.0;
        for (long i = k + conns[k].next_k * C; i < total && done < total; i += C)
            lat_ms[done++] = (t_end - due(i)) * 1000.0;
    }
    long unanswered = done - answered;
    qsort(lat_ms, (size_t)done, sizeof *lat_ms, cmp);
    printf("{\"requests\": %ld, \"answered\": %ld, \"unanswered\": %ld, \"errors\": %ld, \"non_200\": %ld, "
           "\"reconnects\": %ld, \"rate\": %.1f, \"achieved_rate\": %.1f, \"connections\": %ld, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, "
           "\"client_lag_mean_ms\": %.3f, \"client_lag_max_ms\": %.3f, \"sent\": %ld, \"marked\": %ld}\n",
           total, answered, unanswered, errors, non200, reconnects, rate, (double)answered / elapsed, C,
           pct(50), pct(90), pct(99), pct(99.9), done ? lat_ms[done - 1] : 0.0,
           lag_n ? sum_lag_ms / (double)lag_n : 0.0, max_lag_ms, sent_total, marked);
    return 0;
}
