/*
 * stats.c: process-wide counters that each worker thread keeps in a block of its own. Threads count at the
 * same time, some with a block of their own and some in the shared block, more threads than there are
 * blocks, and the totals read back must be exact: no count lost to a race, none read twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/stats.h"

#define PER_THREAD 200000

typedef struct {
    bool own;      /* es_stats_thread_init first */
    unsigned n;    /* increments */
    uv_barrier_t *start;
} counter_arg_t;

static void count(void *p)
{
    counter_arg_t *a = p;
    if (a->own)
        es_stats_thread_init();
    uv_barrier_wait(a->start); /* all threads count at once */
    for (unsigned i = 0; i < a->n; i++) {
        es_stats_inc(ES_STAT_FILTER_SKIPPED);
        if (i % 1000 == 0)
            es_stats_add(ES_STAT_CALLOUTS, 3);
    }
}

/* Runs `nthreads` counting threads (every other one with a block of its own) and checks the totals grew by
 * exactly what they counted. */
static void run_threads(unsigned nthreads, unsigned per_thread)
{
    uint64_t skipped0 = es_stats_get(ES_STAT_FILTER_SKIPPED), callouts0 = es_stats_get(ES_STAT_CALLOUTS);
    uv_thread_t t[80];
    counter_arg_t a[80];
    uv_barrier_t start;
    assert_true(nthreads <= 80);
    assert_int_equal(uv_barrier_init(&start, nthreads), 0);
    for (unsigned i = 0; i < nthreads; i++) {
        a[i] = (counter_arg_t){.own = i % 2 == 0, .n = per_thread, .start = &start};
        assert_int_equal(uv_thread_create(&t[i], count, &a[i]), 0);
    }
    for (unsigned i = 0; i < nthreads; i++)
        assert_int_equal(uv_thread_join(&t[i]), 0);
    uv_barrier_destroy(&start);
    uint64_t adds = (per_thread + 999) / 1000;
    assert_int_equal(es_stats_get(ES_STAT_FILTER_SKIPPED) - skipped0, (uint64_t)nthreads * per_thread);
    assert_int_equal(es_stats_get(ES_STAT_CALLOUTS) - callouts0, (uint64_t)nthreads * adds * 3);
}

static void test_threads_count_exactly(void **state)
{
    (void)state;
    run_threads(4, PER_THREAD); /* two with blocks of their own, two sharing block 0 with atomic adds */
}

static void test_more_threads_than_blocks(void **state)
{
    (void)state;
    /* 2 x 75 threads, half asking for a block: the blocks run out, and the rest count in the shared one. */
    run_threads(75, 20000);
    run_threads(75, 20000);
}

static void test_main_thread_and_format(void **state)
{
    (void)state;
    uint64_t before = es_stats_get(ES_STAT_BAD_REQUESTS);
    es_stats_inc(ES_STAT_BAD_REQUESTS); /* this thread has no block: the shared one */
    es_stats_add(ES_STAT_BAD_REQUESTS, 41);
    assert_int_equal(es_stats_get(ES_STAT_BAD_REQUESTS), before + 42);

    char buf[4096], want[64];
    size_t n = es_stats_format(buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    assert_int_equal(strlen(buf), n);
    snprintf(want, sizeof want, "\ndownstream.rq_400 %llu\n", (unsigned long long)(before + 42));
    assert_non_null(strstr(buf, want));
    /* A tiny buffer is cut, still terminated. */
    char small[10];
    n = es_stats_format(small, sizeof small);
    assert_int_equal(n, 9);
    assert_int_equal(strlen(small), 9);
}

/* Under the supervisor: blocks in memory shared across fork(), a block per worker process; a dead worker's
 * block is folded into block 0, so totals only grow, while its gauges go. Runs last: it switches this
 * process's counters to the shared blocks. */
static void test_shared_blocks_survive_their_workers(void **state)
{
    (void)state;
    enum { NBLOCKS = 8 };
    size_t size = es_stats_shared_size(NBLOCKS);
    es_stats_shared_t *sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    es_stats_attach(sh, NBLOCKS);
    es_stats_inc(ES_STAT_RELOADS); /* the supervisor's own count: block 0 */
    for (unsigned w = 1; w <= 3; w++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            es_stats_own_block(w);
            es_stats_add(ES_STAT_BAD_REQUESTS, 10 * w);
            es_stats_inc(ES_STAT_WORKERS);
            es_stats_add(ES_STAT_CONNECTIONS, 5);
            es_stats_sub(ES_STAT_CONNECTIONS, 2);
            _exit(0);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    /* Counted in the workers' blocks, seen by every process. */
    assert_int_equal(es_stats_get(ES_STAT_BAD_REQUESTS), 60);
    assert_int_equal(es_stats_get(ES_STAT_WORKERS), 3);
    assert_int_equal(es_stats_get(ES_STAT_CONNECTIONS), 9);
    assert_int_equal(es_stats_get(ES_STAT_RELOADS), 1);
    /* Worker 2 is gone: its counters stay in the totals, its gauges do not; its block is clean for the next. */
    es_stats_retire(2);
    assert_int_equal(es_stats_get(ES_STAT_BAD_REQUESTS), 60);
    assert_int_equal(es_stats_get(ES_STAT_WORKERS), 2);
    assert_int_equal(es_stats_get(ES_STAT_CONNECTIONS), 6);
    assert_int_equal(atomic_load(&sh->blocks[2].v[ES_STAT_BAD_REQUESTS]), 0);
    assert_int_equal(atomic_load(&sh->blocks[0].v[ES_STAT_BAD_REQUESTS]), 20);
    /* A gauge the supervisor sets, and the per-filter table. */
    es_stats_set(ES_STAT_GENERATION, 7);
    es_stat_filter_t *fs = es_stats_filter("auth");
    assert_non_null(fs);
    assert_ptr_equal(es_stats_filter("auth"), fs);
    atomic_fetch_add(&fs->crashes, 2);
    char buf[8192];
    es_stats_format(buf, sizeof buf);
    assert_non_null(strstr(buf, "\nserver.generation 7\n"));
    assert_non_null(strstr(buf, "\ndownstream.rq_400 60\n"));
    assert_non_null(strstr(buf, "\nfilter.auth.crashes 2\nfilter.auth.quarantined 0\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_count_exactly),
        cmocka_unit_test(test_more_threads_than_blocks),
        cmocka_unit_test(test_main_thread_and_format),
        cmocka_unit_test(test_shared_blocks_survive_their_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
