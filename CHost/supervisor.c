#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "net/listen_set.h"
#include "core/log.h"
#include "core/proc_slot.h"
#include "relay.h"
#include "core/stats.h"
#include "obs/metrics.h"
#include "watch.h"
#include "worker/worker_proc.h"

#define MAX_PROCS 512               /* shared slots; slot 0 is the supervisor's stats block */
#define START_TIMEOUT_MS 60000      /* a generation not ready by then failed */
#define WATCH_DEBOUNCE_MS 300       /* a library being written is not loaded half-written */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define QUICK_DEATH_MS 10000        /* a worker that dies sooner after its start keeps failing */
#define KILL_GRACE_MS 5000          /* past drain_timeout, a worker that has not exited is killed */

typedef struct gen_s gen_t;

typedef struct proc_s {
    struct proc_s *next;
    gen_t *gen;
    pid_t pid;
    unsigned index, block;
    int ctl;                        /* -1 once at end of file */
    es_relay_t relay;               /* its stdout and stderr */
    int ready, told;                /* told: asked to drain or killed: its exit is no crash */
    uint64_t started_ms;
    char err[1024];                 /* "E..." from the worker */
    size_t errlen;
    int in_err;
} proc_t;

enum { GEN_STARTING, GEN_SERVING, GEN_DRAINING, GEN_FAILED };

struct gen_s {
    gen_t *next;
    unsigned number;
    es_config_t cfg;
    es_lsock_t **socks;             /* per listener of cfg */
    int state;
    uint64_t started_ms, drain_started_ms;
    unsigned nready;
    uint64_t *respawn_at;           /* per worker index; 0 = nothing due */
    unsigned *fails;                /* per worker index: deaths soon after a start, in a row */
    const es_filter_config_t *filters[ES_MAX_FILTERS];
    unsigned nfilters;
    uint8_t quarantine[ES_MAX_FILTERS];
    uint64_t *crash_times[ES_MAX_FILTERS]; /* ring of the last quarantine_after crash times */
    unsigned crash_next[ES_MAX_FILTERS];
};

static struct {
    const char *path;
    int watching;                   /* --watch */
    pid_t self;
    int sfd;
    es_watch_t watch;
    es_proc_slot_t *slots;
    uint8_t used[MAX_PROCS];
    gen_t *gens;                    /* newest first */
    gen_t *serving;
    proc_t *procs;
    es_lsock_t *socks;
    unsigned last_gen;
    int stopping, reload_pending, startup_failed;
    uint64_t stop_deadline, watch_due;
    int exit_code;
} S;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- listening sockets -------------------------------------------------------------------- */

/* Sockets no starting or serving generation needs are closed: a removed listener, or sockets past a lowered
 * `workers` (nobody accepts there any more, and a connection queued there would wait for nothing). */
static void lsock_trim(void)
{
    for (es_lsock_t *l = S.socks, *next; l != NULL; l = next) {
        next = l->next;
        unsigned need = 0;
        for (gen_t *g = S.gens; g != NULL; g = g->next) {
            if (g->state != GEN_STARTING && g->state != GEN_SERVING)
                continue;
            for (size_t i = 0; i < g->cfg.nlisteners; i++)
                if (g->socks[i] == l && g->cfg.workers > need)
                    need = g->cfg.workers;
        }
        if (need == 0 && S.serving != NULL && !S.stopping)
            es_info("listener \"%s\" on %s:%u closed", l->name, l->address, l->port);
        es_lsock_keep(&S.socks, l, need);
    }
}

/* Finds or opens the sockets of every listener of g, enough for its workers. */
static int lsock_acquire(gen_t *g, char *err, size_t errlen)
{
    g->socks = calloc(g->cfg.nlisteners ? g->cfg.nlisteners : 1, sizeof(*g->socks));
    if (g->socks == NULL)
        return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < g->cfg.nlisteners; i++)
        if ((g->socks[i] = es_lsock_acquire(&S.socks, &g->cfg, i, err, errlen)) == NULL)
            return -1;
    return 0;
}

static void lsock_close_all(void)
{
    for (gen_t *g = S.gens; g != NULL; g = g->next)
        for (size_t i = 0; g->socks != NULL && i < g->cfg.nlisteners; i++)
            g->socks[i] = NULL;
    es_lsock_free_all(&S.socks);
}

/* ---- generations -------------------------------------------------------------------------- */

static unsigned live_procs(const gen_t *g)
{
    unsigned n = 0;
    for (proc_t *p = S.procs; p != NULL; p = p->next)
        n += p->gen == g;
    return n;
}

static void gen_free(gen_t *g)
{
    for (gen_t **pg = &S.gens; *pg != NULL; pg = &(*pg)->next)
        if (*pg == g) {
            *pg = g->next;
            break;
        }
    for (unsigned i = 0; i < ES_MAX_FILTERS; i++)
        free(g->crash_times[i]);
    free(g->socks);
    free(g->respawn_at);
    free(g->fails);
    es_config_dispose(&g->cfg);
    free(g);
}

/* A generation that no longer serves and has no process left is done with. */
static void gen_maybe_free(gen_t *g)
{
    if (g->state != GEN_SERVING && g->state != GEN_STARTING && live_procs(g) == 0)
        gen_free(g);
}

static gen_t *gen_new(es_config_t *cfg)
{
    gen_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->cfg = *cfg;
    g->number = ++S.last_gen;
    g->started_ms = now_ms();
    g->respawn_at = calloc(cfg->workers, sizeof(*g->respawn_at));
    g->fails = calloc(cfg->workers, sizeof(*g->fails));
    for (size_t l = 0; l < cfg->nlisteners; l++)
        for (size_t f = 0; f < cfg->listeners[l].nfilters && g->nfilters < ES_MAX_FILTERS; f++) {
            g->filters[g->nfilters++] = &cfg->listeners[l].filters[f];
            es_stats_filter(cfg->listeners[l].filters[f].name); /* listed in /stats from the start */
        }
    g->next = S.gens;
    S.gens = g;
    if (g->respawn_at == NULL || g->fails == NULL) {
        memset(&g->cfg, 0, sizeof(g->cfg)); /* the caller still owns cfg */
        gen_free(g);
        return NULL;
    }
    return g;
}

/* ---- worker processes --------------------------------------------------------------------- */

static int slot_alloc(void)
{
    for (int i = 1; i < MAX_PROCS; i++)
        if (!S.used[i]) {
            S.used[i] = 1;
            return i;
        }
    return -1;
}

static void send_ctl(proc_t *p, char c)
{
    if (p->ctl >= 0 && write(p->ctl, &c, 1) < 0 && errno != EAGAIN)
        es_debug("worker %u (pid %d): cannot write to its pipe: %s", p->index, (int)p->pid, strerror(errno));
}

static int spawn(gen_t *g, unsigned index)
{
    int sv[2] = {-1, -1}, rl[2] = {-1, -1};
    int slot = slot_alloc();
    proc_t *p = calloc(1, sizeof(*p));
    int *fds = calloc(g->cfg.nlisteners ? g->cfg.nlisteners : 1, sizeof(int));
    if (slot < 0 || p == NULL || fds == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(rl) != 0) {
        es_error("cannot start worker %u of generation %u: %s", index, g->number,
                 slot < 0 ? "too many worker processes" : strerror(errno));
        if (slot >= 0)
            S.used[slot] = 0;
        for (int i = 0; i < 2; i++) {
            if (sv[i] >= 0)
                close(sv[i]);
            if (rl[i] >= 0)
                close(rl[i]);
        }
        free(p);
        free(fds);
        return -1;
    }
    es_proc_slot_t *ps = &S.slots[slot];
    memset(ps, 0, sizeof(*ps));
    atomic_store(&ps->filter, ES_SLOT_NO_FILTER);
    for (unsigned f = 0; f < g->nfilters; f++)
        atomic_store(&ps->quarantine[f], g->quarantine[f]);
    for (size_t l = 0; l < g->cfg.nlisteners; l++)
        fds[l] = g->socks[l]->fds[index];
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        es_worker_proc_t a = {
            .cfg = &g->cfg, .index = index, .generation = g->number, .supervisor = S.self, .ctl = sv[1],
            .relay = rl[1], .listen_fds = fds, .stats_block = (unsigned)slot, .slot = ps,
        };
        es_worker_proc_main(&a);
    }
    free(fds);
    close(sv[1]);
    close(rl[1]);
    if (pid < 0) {
        es_error("cannot fork worker %u of generation %u: %s", index, g->number, strerror(errno));
        close(sv[0]);
        close(rl[0]);
        S.used[slot] = 0;
        free(p);
        return -1;
    }
    set_nonblock(sv[0]);
    set_nonblock(rl[0]);
    p->gen = g;
    p->pid = pid;
    p->index = index;
    p->block = (unsigned)slot;
    p->ctl = sv[0];
    p->relay.fd = rl[0];
    snprintf(p->relay.tag, sizeof(p->relay.tag), "w%u.g%u", index, g->number);
    p->started_ms = now_ms();
    p->next = S.procs;
    S.procs = p;
    es_debug("worker %u of generation %u: pid %d", index, g->number, (int)pid);
    return 0;
}

static void kill_gen(gen_t *g)
{
    for (proc_t *p = S.procs; p != NULL; p = p->next)
        if (p->gen == g) {
            p->told = 1;
            kill(p->pid, SIGKILL);
        }
}

static void gen_serving(gen_t *g);

static void gen_drain(gen_t *g)
{
    g->state = GEN_DRAINING;
    g->drain_started_ms = now_ms();
    for (proc_t *p = S.procs; p != NULL; p = p->next)
        if (p->gen == g) {
            p->told = 1;
            send_ctl(p, 'D');
        }
    lsock_trim();
    gen_maybe_free(g);
}

/* A generation that could not start: at startup the proxy exits, on a reload the old one serves on. */
static void gen_fail(gen_t *g, const char *why)
{
    if (g->state != GEN_STARTING)
        return;
    g->state = GEN_FAILED;
    kill_gen(g);
    if (S.serving == NULL && !S.stopping) {
        fprintf(stderr, "envoy-swift: %s\n", why);
        S.startup_failed = 1;
        S.stopping = 1;
    } else if (!S.stopping) {
        es_stats_inc(ES_STAT_RELOAD_FAILURES);
        es_error("reload failed: %s; generation %u serves on", why, S.serving->number);
    }
    lsock_trim();
    gen_maybe_free(g);
}

static void start_gen(es_config_t *cfg)
{
    char err[1024];
    gen_t *g = gen_new(cfg);
    if (g == NULL) {
        es_config_dispose(cfg);
        if (S.serving == NULL) {
            fprintf(stderr, "envoy-swift: out of memory\n");
            S.startup_failed = S.stopping = 1;
        } else {
            es_stats_inc(ES_STAT_RELOAD_FAILURES);
            es_error("reload failed: out of memory");
        }
        return;
    }
    if (lsock_acquire(g, err, sizeof(err)) != 0) {
        gen_fail(g, err);
        return;
    }
    for (unsigned i = 0; i < g->cfg.workers; i++)
        if (spawn(g, i) != 0) {
            gen_fail(g, "cannot start its worker processes");
            return;
        }
}

static void reload(const char *why)
{
    if (S.stopping)
        return;
    for (gen_t *g = S.gens; g != NULL; g = g->next)
        if (g->state == GEN_STARTING) {
            S.reload_pending = 1; /* after the one starting now is ready or has failed */
            return;
        }
    es_info("%s: reloading %s", why, S.path);
    es_config_t cfg;
    char err[1024];
    if (es_config_load(&cfg, S.path, err, sizeof(err)) != 0) {
        es_stats_inc(ES_STAT_RELOAD_FAILURES);
        es_error("reload failed: %s; generation %u serves on", err, S.serving->number);
        return;
    }
    start_gen(&cfg);
}

static void watch_setup(void);

static void gen_serving(gen_t *g)
{
    gen_t *old = S.serving;
    g->state = GEN_SERVING;
    S.serving = g;
    es_stats_set(ES_STAT_GENERATION, g->number);
    for (unsigned f = 0; f < g->nfilters; f++) {
        es_stat_filter_t *fs = es_stats_filter(g->filters[f]->name);
        if (fs != NULL)
            atomic_store(&fs->quarantined, 0); /* a successful reload clears every quarantine */
    }
    for (size_t l = 0; l < g->cfg.nlisteners; l++) {
        int known = 0; /* the old generation served it already */
        for (size_t k = 0; old != NULL && k < old->cfg.nlisteners; k++)
            known |= old->socks[k] == g->socks[l];
        if (!known)
            es_info("listener \"%s\" listening on %s:%u", g->cfg.listeners[l].name, g->cfg.listeners[l].address,
                    g->socks[l]->port);
    }
    uint64_t took = now_ms() - g->started_ms;
    if (old == NULL) {
        es_info("envoy-swift started: %u worker%s, config %s, generation %u in %llu ms", g->cfg.workers,
                g->cfg.workers == 1 ? "" : "s", g->cfg.path, g->number, (unsigned long long)took);
    } else {
        es_stats_inc(ES_STAT_RELOADS);
        es_info("generation %u serving (%u worker%s, ready in %llu ms); generation %u drains", g->number,
                g->cfg.workers, g->cfg.workers == 1 ? "" : "s", (unsigned long long)took, old->number);
        gen_drain(old);
    }
    if (S.watching)
        watch_setup();
    if (S.reload_pending) {
        S.reload_pending = 0;
        reload("another reload was asked for meanwhile");
    }
}

/* ---- a worker's messages and output ----------------------------------------------------- */

static void on_ready(proc_t *p)
{
    gen_t *g = p->gen;
    p->ready = 1;
    g->nready++;
    if (g->state == GEN_STARTING && g->nready == g->cfg.workers)
        gen_serving(g);
    else if (g->state == GEN_SERVING)
        es_info("worker %u of generation %u is back (pid %d)", p->index, g->number, (int)p->pid);
}

static void read_ctl(proc_t *p)
{
    char buf[512];
    for (;;) {
        ssize_t n = read(p->ctl, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close(p->ctl);
            p->ctl = -1;
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (p->in_err) {
                if (c == '\n')
                    p->in_err = 0;
                else if (p->errlen + 1 < sizeof(p->err))
                    p->err[p->errlen++] = c;
                p->err[p->errlen] = '\0';
                if (c == '\n')
                    gen_fail(p->gen, p->err);
            } else if (c == 'R') {
                on_ready(p);
            } else if (c == 'E') {
                p->in_err = 1;
            }
        }
    }
}

/* ---- a worker's end: crash report, quarantine, respawn -------------------------------------- */

static void describe_status(int st, char *buf, size_t len)
{
    if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d (SIG%s)", WTERMSIG(st),
                 sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
}

static void quarantine_check(gen_t *g, unsigned f)
{
    const es_filter_config_t *fc = g->filters[f];
    unsigned after = fc->quarantine_after;
    uint64_t now = now_ms();
    if (g->crash_times[f] == NULL && (g->crash_times[f] = calloc(after, sizeof(uint64_t))) == NULL)
        return;
    g->crash_times[f][g->crash_next[f]++ % after] = now;
    unsigned recent = 0;
    for (unsigned i = 0; i < after && i < g->crash_next[f]; i++)
        recent += now - g->crash_times[f][i] <= fc->crash_window_ms;
    if (recent < after || g->quarantine[f] != ES_QUARANTINE_NONE)
        return;
    g->quarantine[f] = fc->quarantine_bypass ? ES_QUARANTINE_BYPASS : ES_QUARANTINE_REJECT;
    for (proc_t *p = S.procs; p != NULL; p = p->next)
        if (p->gen == g)
            atomic_store(&S.slots[p->block].quarantine[f], g->quarantine[f]);
    es_stat_filter_t *fs = es_stats_filter(fc->name);
    if (fs != NULL)
        atomic_store(&fs->quarantined, 1);
    es_error("filter \"%s\" (plugin %s) quarantined: %u crashes within %llu ms; %s until the next reload", fc->name,
             fc->plugin_name, after, (unsigned long long)fc->crash_window_ms,
             fc->quarantine_bypass ? "it is bypassed" : "requests on its chains are answered 503");
}

/* What the slot says the worker was doing when it died: " in filter ..., hook, request ...". */
static int blame(const proc_t *p, char *buf, size_t len)
{
    return es_proc_slot_blame(&S.slots[p->block], p->gen->filters, p->gen->nfilters, buf, len);
}

static void proc_exited(proc_t *p, int st)
{
    /* A dead process writes no more: what it wrote is in the pipes, read it all before saying why it died. */
    es_relay_read(&p->relay);
    if (p->ctl >= 0)
        read_ctl(p);
    for (proc_t **pp = &S.procs; *pp != NULL; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (p->relay.fd >= 0)
        close(p->relay.fd);
    if (p->ctl >= 0)
        close(p->ctl);
    gen_t *g = p->gen;
    int failed = WIFSIGNALED(st) || WEXITSTATUS(st) != 0;
    char how[96], where[600];
    describe_status(st, how, sizeof(how));
    int filter = blame(p, where, sizeof(where));
    es_stats_retire(p->block);
    es_metrics_retire(p->block);
    S.used[p->block] = 0;

    if (g->state == GEN_FAILED) {
        es_debug("worker %u (pid %d) of generation %u, which failed to start: %s", p->index, (int)p->pid, g->number,
                 how);
    } else if (g->state == GEN_STARTING) {
        char why[800];
        snprintf(why, sizeof(why), "worker %u (pid %d) %s while starting%s", p->index, (int)p->pid, how, where);
        free(p);
        gen_fail(g, why); /* which frees the generation when this was its last process: not touched again */
        return;
    } else if (p->told) {
        if (failed && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
            /* A crash all the same (a filter's trap while finishing a request), or a sanitizer's report at exit. */
            es_stats_inc(ES_STAT_WORKER_CRASHES);
            es_error("worker %u (pid %d, generation %u) %s while draining%s", p->index, (int)p->pid, g->number, how,
                     where);
            if (S.stopping)
                S.exit_code = 1; /* the stop did not go cleanly: say so to whoever waits for the exit */
        } else {
            es_debug("worker %u (pid %d, generation %u) %s", p->index, (int)p->pid, g->number, how);
        }
    } else {
        uint64_t lived = now_ms() - p->started_ms;
        unsigned *fails = &g->fails[p->index];
        *fails = lived < QUICK_DEATH_MS ? *fails + 1 : 1;
        uint64_t delay = *fails <= 1 ? 0 : BACKOFF_FIRST_MS << (*fails - 2 < 6 ? *fails - 2 : 6);
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
        if (failed) {
            es_stats_inc(ES_STAT_WORKER_CRASHES);
            if (filter >= 0) {
                es_stat_filter_t *fs = es_stats_filter(g->filters[filter]->name);
                if (fs != NULL)
                    atomic_fetch_add(&fs->crashes, 1);
            }
        }
        es_error("worker %u (pid %d, generation %u) %s%s; respawning %s%llu ms", p->index, (int)p->pid, g->number,
                 failed ? how : "exited unasked", where, delay ? "in " : "after ", (unsigned long long)delay);
        if (failed && filter >= 0)
            quarantine_check(g, (unsigned)filter);
        if (g->state == GEN_SERVING && !S.stopping) {
            if (delay == 0 && spawn(g, p->index) != 0)
                delay = BACKOFF_FIRST_MS;
            if (delay > 0)
                g->respawn_at[p->index] = now_ms() + delay;
        }
    }
    free(p);
    gen_maybe_free(g);
}

static void reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (proc_t *p = S.procs; p != NULL; p = p->next)
            if (p->pid == pid) {
                proc_exited(p, st);
                break;
            }
    }
}

/* ---- stopping ---------------------------------------------------------------------------- */

static void stop(int sig)
{
    if (S.stopping && (sig == SIGTERM || sig == SIGINT)) {
        es_warn("received SIG%s again: stopping at once", sigabbrev_np(sig));
        for (proc_t *p = S.procs; p != NULL; p = p->next) {
            p->told = 1;
            kill(p->pid, SIGKILL);
        }
        return;
    }
    if (S.stopping)
        return;
    S.stopping = 1;
    es_info("received SIG%s: draining (a second SIGTERM or SIGINT stops at once)", sigabbrev_np(sig));
    /* Closed now, so that a load balancer's health check fails fast; the workers close theirs as they drain. */
    lsock_close_all();
    uint64_t longest = 0;
    for (gen_t *g = S.gens; g != NULL; g = g->next) {
        if (g->cfg.drain_timeout_ms > longest)
            longest = g->cfg.drain_timeout_ms;
        if (g->state == GEN_STARTING) {
            g->state = GEN_FAILED;
            kill_gen(g);
        } else if (g->state == GEN_SERVING) {
            gen_drain(g);
        }
    }
    S.serving = NULL;
    S.stop_deadline = now_ms() + longest + KILL_GRACE_MS;
}

/* ---- watching files ------------------------------------------------------------------------ */

static void watch_setup(void)
{
    if (es_watch_reset(&S.watch) != 0)
        return;
    es_watch_add(&S.watch, S.path);
    if (S.serving != NULL)
        for (unsigned f = 0; f < S.serving->nfilters; f++)
            es_watch_add(&S.watch, S.serving->filters[f]->so_path);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void on_signal(void)
{
    struct signalfd_siginfo si;
    while (read(S.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap();
            break;
        case SIGHUP:
            reload("SIGHUP");
            break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            stop((int)si.ssi_signo);
            break;
        case SIGUSR1:
            /* nginx's convention: the master's SIGUSR1 reopens the logs, every worker its own access logs. */
            for (proc_t *p = S.procs; p != NULL; p = p->next)
                kill(p->pid, SIGUSR1);
            break;
        default:
            break;
        }
    }
}

static int timers(void)
{
    uint64_t now = now_ms(), next = UINT64_MAX;
    for (gen_t *g = S.gens, *gn; g != NULL; g = gn) {
        gn = g->next;
        if (g->state == GEN_SERVING && !S.stopping) {
            for (unsigned i = 0; i < g->cfg.workers; i++) {
                if (g->respawn_at[i] == 0)
                    continue;
                if (g->respawn_at[i] <= now) {
                    g->respawn_at[i] = 0;
                    if (spawn(g, i) != 0)
                        g->respawn_at[i] = now + BACKOFF_MAX_MS;
                }
                if (g->respawn_at[i] != 0 && g->respawn_at[i] < next)
                    next = g->respawn_at[i];
            }
        } else if (g->state == GEN_STARTING) {
            if (now >= g->started_ms + START_TIMEOUT_MS)
                gen_fail(g, "its workers were not ready in time");
            else if (g->started_ms + START_TIMEOUT_MS < next)
                next = g->started_ms + START_TIMEOUT_MS;
        } else if (g->state == GEN_DRAINING && !S.stopping) {
            uint64_t kill_at = g->drain_started_ms + g->cfg.drain_timeout_ms + KILL_GRACE_MS;
            if (now >= kill_at) {
                es_warn("generation %u: workers still running %llu ms after drain_timeout; killing them", g->number,
                        (unsigned long long)KILL_GRACE_MS);
                kill_gen(g);
            } else if (kill_at < next) {
                next = kill_at;
            }
        }
    }
    if (S.stopping && S.stop_deadline != 0) {
        if (now >= S.stop_deadline) {
            es_warn("workers still running past drain_timeout; killing them");
            for (proc_t *p = S.procs; p != NULL; p = p->next)
                kill(p->pid, SIGKILL);
            S.stop_deadline = 0;
        } else if (S.stop_deadline < next) {
            next = S.stop_deadline;
        }
    }
    if (S.watch_due != 0) {
        if (now >= S.watch_due) {
            S.watch_due = 0;
            reload("a watched file changed");
        } else if (S.watch_due < next) {
            next = S.watch_due;
        }
    }
    return next == UINT64_MAX ? -1 : (int)(next - now_ms() > 60000 ? 60000 : next - now_ms());
}

static int make_shared(void)
{
    size_t ssize = es_stats_shared_size(MAX_PROCS);
    void *st = mmap(NULL, ssize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    void *sl = mmap(NULL, MAX_PROCS * sizeof(es_proc_slot_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
    /* Labelled metrics: a block per stats block, ~470 KiB each, mostly never touched (pages come on first use). */
    void *mt = mmap(NULL, es_metrics_shared_size(MAX_PROCS), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (st == MAP_FAILED || sl == MAP_FAILED || mt == MAP_FAILED)
        return -1;
    es_stats_attach(st, MAX_PROCS);
    es_metrics_attach(mt, MAX_PROCS);
    S.slots = sl;
    return 0;
}

int es_supervisor_run(const es_supervisor_opts_t *o)
{
    memset(&S, 0, sizeof(S));
    S.path = o->config_path;
    S.watching = o->watch;
    S.self = getpid();
    es_watch_init(&S.watch);
    es_log_set_tag("main");

    es_config_t cfg;
    char err[1024];
    if (es_config_load(&cfg, S.path, err, sizeof(err)) != 0) {
        fprintf(stderr, "envoy-swift: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < cfg.nclusters; i++)
        if (cfg.clusters[i].tls_ctx != NULL && !cfg.clusters[i].tls_verify)
            es_warn("cluster \"%s\": tls.verify is false: upstream certificates and host names are not checked",
                    cfg.clusters[i].name);
    if (make_shared() != 0) {
        fprintf(stderr, "envoy-swift: cannot map shared memory: %s\n", strerror(errno));
        es_config_dispose(&cfg);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    S.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (S.sfd < 0) {
        fprintf(stderr, "envoy-swift: signalfd: %s\n", strerror(errno));
        es_config_dispose(&cfg);
        return 1;
    }
    start_gen(&cfg);

    for (;;) {
        reap(); /* a SIGCHLD merged with one already read */
        if (S.stopping && S.procs == NULL)
            break;
        int timeout = timers();
        if (S.stopping && S.procs == NULL)
            break;
        size_t n = 0, cap = 2;
        for (proc_t *p = S.procs; p != NULL; p = p->next)
            cap += 2;
        struct pollfd *pf = calloc(cap, sizeof(*pf));
        proc_t **who = calloc(cap, sizeof(*who));
        if (pf == NULL || who == NULL) {
            free(pf);
            free(who);
            poll(NULL, 0, 10);
            continue;
        }
        pf[n++] = (struct pollfd){.fd = S.sfd, .events = POLLIN};
        if (S.watch.fd >= 0)
            pf[n++] = (struct pollfd){.fd = S.watch.fd, .events = POLLIN};
        size_t first = n;
        for (proc_t *p = S.procs; p != NULL; p = p->next) {
            if (p->ctl >= 0) {
                who[n] = p;
                pf[n++] = (struct pollfd){.fd = p->ctl, .events = POLLIN};
            }
            if (p->relay.fd >= 0) {
                who[n] = p;
                pf[n++] = (struct pollfd){.fd = p->relay.fd, .events = POLLIN};
            }
        }
        int r = poll(pf, n, timeout);
        if (r > 0) {
            /* Output first, so a worker's last words come before the line that reports its death. */
            for (size_t i = first; i < n; i++)
                if (pf[i].revents != 0 && pf[i].fd == who[i]->relay.fd)
                    es_relay_read(&who[i]->relay);
            for (size_t i = first; i < n; i++)
                if (pf[i].revents != 0 && pf[i].fd == who[i]->ctl) {
                    /* read_ctl may end a generation (and free its processes): look the process up again. */
                    for (proc_t *p = S.procs; p != NULL; p = p->next)
                        if (p == who[i] && p->ctl == pf[i].fd) {
                            read_ctl(p);
                            break;
                        }
                }
            if (S.watch.fd >= 0 && pf[1].revents != 0 && es_watch_read(&S.watch))
                S.watch_due = now_ms() + WATCH_DEBOUNCE_MS;
            if (pf[0].revents != 0)
                on_signal();
        }
        free(pf);
        free(who);
    }
    lsock_close_all();
    while (S.gens != NULL)
        gen_free(S.gens);
    es_watch_close(&S.watch);
    close(S.sfd);
    if (S.startup_failed)
        return 1;
    es_info("envoy-swift stopped");
    return S.exit_code;
}
