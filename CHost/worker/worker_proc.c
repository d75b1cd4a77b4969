#include "worker/worker_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "filters/filter_chain.h"
#include "filters/filter_lib.h"
#include "core/log.h"
#include "core/stats.h"
#include "obs/access_log.h"
#include "obs/builtin_metrics.h"
#include "obs/metrics.h"
#include "worker/worker.h"

typedef struct {
    es_worker_t worker;
    uv_pipe_t ctl;
    uv_signal_t term;
    uv_signal_t usr1;             /* SIGUSR1, relayed by the supervisor: reopen the access logs */
    uint64_t drain_timeout_ms;
    char rbuf[64];
} proc_t;

static void on_quiet_close(uv_handle_t *h)
{
}

/* The worker stopped (drained, or told to stop): let go of the supervisor's pipe and the signal. */
static void on_worker_exit(es_worker_t *w)
{
    proc_t *p = (proc_t *)w;
    uv_close((uv_handle_t *)&p->ctl, on_quiet_close);
    uv_close((uv_handle_t *)&p->term, on_quiet_close);
    uv_close((uv_handle_t *)&p->usr1, on_quiet_close);
}

static void drain(proc_t *p, const char *why)
{
    if (p->worker.env.draining || p->worker.env.stopping)
        return;
    es_debug("draining (%s)", why);
    es_stats_sub(ES_STAT_WORKERS, 1);
    es_worker_drain(&p->worker, p->drain_timeout_ms);
}

static void alloc_ctl(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    proc_t *p = h->data;
    buf->base = p->rbuf;
    buf->len = sizeof(p->rbuf);
}

static void on_ctl(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    proc_t *p = s->data;
    if (n < 0) {
        /* The supervisor is gone: nobody will relay, reload or respawn; leave no orphan serving. */
        es_warn("the supervisor is gone; stopping");
        es_worker_stop_now(&p->worker);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf->base[i] == 'D') {
            drain(p, "asked by the supervisor");
        } else if (buf->base[i] == 'Q') {
            es_worker_stop_now(&p->worker);
            return;
        }
    }
}

static void on_term(uv_signal_t *s, int sig)
{
    drain(s->data, "SIGTERM");
}

static void on_usr1(uv_signal_t *s, int sig)
{
    proc_t *p = s->data;
    es_debug("SIGUSR1: reopening the access logs");
    es_access_logs_reopen(p->worker.env.access_logs);
}

/* ---- fatal signals: note the request, then die as before -------------------------------------- */

static const int fatal_signals[] = {SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
static struct sigaction previous[NSIG];

static void on_fatal(int sig, siginfo_t *si, void *ctx)
{
    es_filters_crash_note();
    /* Hand the signal to whoever had it before (the Swift runtime's backtracer, a sanitizer, or the default:
     * death). A fault returns to the faulting instruction and faults again; a signal sent with kill() or
     * raise() (abort), or a trap that resumes after its instruction, is raised again. */
    sigaction(sig, &previous[sig], NULL);
    if (si->si_code <= 0 || sig == SIGTRAP)
        raise(sig);
}

/* After the libraries are loaded, so that their runtime's handlers are the ones chained to. */
static void catch_fatal_signals(void)
{
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_fatal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(fatal_signals[i], &sa, &previous[fatal_signals[i]]);
    }
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

/* Closes every inherited descriptor >= 3 but those in keep[]: the other workers' pipes and sockets, the
 * supervisor's signalfd and inotify descriptors. */
static void close_inherited(int *keep, size_t n)
{
    qsort(keep, n, sizeof(*keep), cmp_int);
    unsigned from = 3;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)keep[i] > from)
            close_range(from, (unsigned)keep[i] - 1, 0);
        if ((unsigned)keep[i] + 1 > from)
            from = (unsigned)keep[i] + 1;
    }
    close_range(from, ~0u, 0);
}

static void report(int ctl, const char *msg)
{
    size_t len = strlen(msg), off = 0;
    while (off < len) {
        ssize_t w = write(ctl, msg + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

void es_worker_proc_main(const es_worker_proc_t *a)
{
    /* Die with the supervisor, even if it was SIGKILLed; it may have died before this line. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != a->supervisor)
        _exit(1);
    /* The supervisor blocked its signals for its signalfd; a terminal's Ctrl-C, Ctrl-\ and hang-up reach
     * the whole process group: the supervisor decides for its workers. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN); /* until the loop watches it (on_usr1): a relayed SIGUSR1 must not kill a new worker */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Lines of es_log go to the log itself; anything else written to stdout or stderr (the Swift
     * runtime's "Fatal error: ...", a sanitizer's report) goes to the supervisor, which tags it. */
    /* The access log's "-" is the real standard output: kept before the relay takes its place. */
    int log_fd = dup(STDERR_FILENO);
    int out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    if (log_fd < 0 || out_fd < 0 || dup2(a->relay, STDOUT_FILENO) < 0 || dup2(a->relay, STDERR_FILENO) < 0)
        _exit(1);
    es_log_fd = log_fd;
    size_t nkeep = a->cfg->nlisteners + 3;
    int *keep = malloc(nkeep * sizeof(*keep));
    if (keep == NULL)
        _exit(1);
    keep[0] = a->ctl;
    keep[1] = log_fd;
    keep[2] = out_fd;
    for (size_t i = 0; i < a->cfg->nlisteners; i++)
        keep[3 + i] = a->listen_fds[i];
    close_inherited(keep, nkeep);
    free(keep);

    char tag[16];
    snprintf(tag, sizeof(tag), "w%u.g%u", a->index, a->generation);
    es_log_set_tag(tag);
    es_stats_own_block(a->stats_block);
    es_metrics_own_block(a->stats_block);
    es_proc_slot = a->slot;

    char err[1024], line[1100];
    if (es_filters_setup(a->cfg, err, sizeof(err)) != 0) {
        snprintf(line, sizeof(line), "E%s\n", err);
        report(a->ctl, line);
        _exit(1); /* what was loaded is abandoned with the process */
    }
    if (es_builtin_metrics_init(a->cfg, err, sizeof(err)) != 0) {
        snprintf(line, sizeof(line), "E%s\n", err);
        report(a->ctl, line);
        _exit(1);
    }
    catch_fatal_signals();
    proc_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        report(a->ctl, "Eout of memory\n");
        _exit(1);
    }
    p->drain_timeout_ms = a->cfg->drain_timeout_ms;
    es_worker_t *w = &p->worker;
    int e = es_worker_init(w, a->index, a->cfg);
    if (e)
        snprintf(err, sizeof(err), "cannot start the worker's loop: %s", uv_strerror(e));
    for (size_t l = 0; !e && l < a->cfg->nlisteners; l++) {
        e = es_worker_listen(w, l, a->listen_fds[l]);
        if (e)
            snprintf(err, sizeof(err), "%s:%d: listeners[%zu]: cannot listen: %s", a->cfg->path,
                     a->cfg->listeners[l].port_line, l, uv_strerror(e));
    }
    if (!e && ((e = uv_pipe_init(&w->loop, &p->ctl, 0)) != 0 || (e = uv_pipe_open(&p->ctl, a->ctl)) != 0))
        snprintf(err, sizeof(err), "cannot use the supervisor's pipe: %s", uv_strerror(e));
    if (!e) {
        /* SIGUSR1 is watched before the files are opened: one sent meanwhile reopens them, harmlessly. */
        uv_signal_init(&w->loop, &p->usr1);
        p->usr1.data = p;
        uv_signal_start(&p->usr1, on_usr1, SIGUSR1);
        if ((w->env.access_logs = es_access_logs_open(&w->loop, a->cfg, out_fd, err, sizeof(err))) == NULL)
            e = -1;
    }
    if (e) {
        snprintf(line, sizeof(line), "E%s\n", err);
        report(a->ctl, line);
        _exit(1);
    }
    snprintf(w->tag, sizeof(w->tag), "%s", tag);
    p->ctl.data = p;
    uv_signal_init(&w->loop, &p->term);
    p->term.data = p;
    uv_signal_start(&p->term, on_term, SIGTERM);
    w->on_exit = on_worker_exit;
    uv_read_start((uv_stream_t *)&p->ctl, alloc_ctl, on_ctl);

    es_stats_inc(ES_STAT_WORKERS);
    report(a->ctl, "R");
    es_worker_run(w); /* until drained or stopped */
    es_debug("exiting");
    free(p);
    es_filters_teardown();
    es_builtin_metrics_free();
    es_small_drain();
    exit(0);
}
