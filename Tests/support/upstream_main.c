/*
 * build/es-upstream: the test upstream as a standalone server (what `make run` puts behind the proxy).
 *
 *   es-upstream [--port N] [--silent] [--quiet]
 *
 * Listens on 127.0.0.1:N (default 8080; 0 = ephemeral), prints "es-upstream listening on 127.0.0.1:PORT"
 * on stderr, and serves until SIGINT or SIGTERM. See upstream.h for what it answers.
 */
#include "upstream.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: es-upstream [--port N] [--silent] [--quiet]\n"
               "  --port N   listen on 127.0.0.1:N (default 8080, 0 = any free port)\n"
               "  --silent   accept connections but never answer\n"
               "  --quiet    no line per request on stderr\n");
}

int main(int argc, char **argv) {
    es_upstream_t u;
    memset(&u, 0, sizeof u);
    u.want_port = 8080;
    u.verbose = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            long port = strtol(argv[++i], &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "es-upstream: --port: expected 0-65535, got \"%s\"\n", argv[i]);
                return 2;
            }
            u.want_port = (uint16_t)port;
        } else if (strcmp(argv[i], "--silent") == 0) {
            u.silent = 1;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            u.verbose = 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    /* Block the stop signals in every thread; main waits for them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int err = es_upstream_start(&u);
    if (err != 0) {
        fprintf(stderr, "es-upstream: cannot listen on 127.0.0.1:%u: %s\n", u.want_port, strerror(-err));
        return 1;
    }
    fprintf(stderr, "es-upstream listening on 127.0.0.1:%u\n", u.port);

    int sig = 0;
    sigwait(&set, &sig);
    es_upstream_stop(&u);
    fprintf(stderr, "es-upstream: stopped (%lu connections, %lu requests)\n", es_upstream_connections(&u),
            es_upstream_requests(&u));
    return 0;
}
