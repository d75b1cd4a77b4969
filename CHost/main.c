/*
 * envoy-swift: an HTTP/1.1 proxy on libuv whose filters are written in Swift.
 * main parses the command line and config, binds every listener, starts the workers and waits
 * for SIGINT or SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "filter_lib.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: envoy-swift -c FILE [--log-level debug|info|warn|error]\n");
}

static int start(const es_config_t *cfg, es_worker_t *workers)
{
    char err[512];
    unsigned n = cfg->workers;
    int *fds = calloc(n, sizeof(*fds));
    unsigned *ports = calloc(cfg->nlisteners, sizeof(*ports));
    unsigned inited = 0;
    int rc = -1;
    if (fds == NULL || ports == NULL) {
        fprintf(stderr, "envoy-swift: out of memory\n");
        goto out;
    }
    for (; inited < n; inited++) {
        int e = es_worker_init(&workers[inited], inited, cfg);
        if (e) {
            fprintf(stderr, "envoy-swift: cannot start worker %u: %s\n", inited, uv_strerror(e));
            goto out;
        }
    }
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const es_listener_config_t *lc = &cfg->listeners[l];
        if (es_listener_bind(lc, fds, n, &ports[l], err, sizeof(err)) != 0) {
            fprintf(stderr, "envoy-swift: %s:%d: listeners[%zu].port: %s\n", cfg->path, lc->port_line, l, err);
            goto out;
        }
        for (unsigned w = 0; w < n; w++) {
            int e = es_worker_listen(&workers[w], l, fds[w]);
            if (e) {
                fprintf(stderr, "envoy-swift: %s:%d: listeners[%zu]: cannot listen on %s:%u: %s\n", cfg->path,
                        lc->port_line, l, lc->address, ports[l], uv_strerror(e));
                for (unsigned k = w + 1; k < n; k++)
                    close(fds[k]);
                goto out;
            }
        }
    }
    for (unsigned w = 0; w < n; w++) {
        if (es_worker_start(&workers[w]) != 0) {
            fprintf(stderr, "envoy-swift: cannot start worker thread %u\n", w);
            /* Workers already running are stopped by the caller. */
            for (unsigned k = w; k < n; k++)
                es_worker_dispose(&workers[k]);
            rc = (int)w;
            goto out_started;
        }
    }
    for (size_t l = 0; l < cfg->nlisteners; l++)
        es_info("listener \"%s\" listening on %s:%u", cfg->listeners[l].name, cfg->listeners[l].address, ports[l]);
    rc = (int)n;
    goto out_started;
out:
    for (unsigned w = 0; w < inited; w++)
        es_worker_dispose(&workers[w]);
out_started:
    free(fds);
    free(ports);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            if (es_log_parse_level(argv[++i], &es_log_level) != 0) {
                fprintf(stderr, "envoy-swift: unknown log level \"%s\" (debug, info, warn, error)\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL) {
        usage(stderr);
        return 2;
    }

    es_config_t cfg;
    char err[1024];
    if (es_config_load(&cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "envoy-swift: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < cfg.nclusters; i++)
        if (cfg.clusters[i].tls_ctx != NULL && !cfg.clusters[i].tls_verify)
            es_warn("cluster \"%s\": tls.verify is false: upstream certificates and host names are not checked",
                    cfg.clusters[i].name);
    if (es_filters_setup(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "envoy-swift: %s\n", err);
        es_filters_teardown();
        es_config_dispose(&cfg);
        return 1;
    }

    /* Workers inherit this mask; only the main thread takes the signals, in sigwait below. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    es_worker_t *workers = calloc(cfg.workers, sizeof(*workers));
    if (workers == NULL) {
        fprintf(stderr, "envoy-swift: out of memory\n");
        es_filters_teardown();
        es_config_dispose(&cfg);
        return 1;
    }
    int running = start(&cfg, workers);
    if (running != (int)cfg.workers) {
        for (int w = 0; w < running; w++) {
            es_worker_stop(&workers[w]);
            es_worker_join(&workers[w]);
        }
        free(workers);
        es_filters_teardown();
        es_config_dispose(&cfg);
        return 1;
    }
    es_info("envoy-swift started: %u worker%s, config %s", cfg.workers, cfg.workers == 1 ? "" : "s", cfg.path);

    int sig = 0;
    sigwait(&set, &sig);
    es_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    for (unsigned w = 0; w < cfg.workers; w++)
        es_worker_stop(&workers[w]);
    for (unsigned w = 0; w < cfg.workers; w++)
        es_worker_join(&workers[w]);
    free(workers);
    es_filters_teardown();
    es_config_dispose(&cfg);
    es_small_drain();
    return 0;
}
