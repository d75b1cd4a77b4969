/*
 * envoy-swift: an HTTP/1.1 proxy on libuv whose filters are written in Swift.
 * main parses the command line; `-t` checks a config in this process, anything else runs the
 * supervisor (supervisor.h), which forks the worker processes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "filters/filter_lib.h"
#include "core/log.h"
#include "supervisor.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: envoy-swift -c FILE [-t] [--watch] [--log-level debug|info|warn|error]\n"
               "  -c, --config FILE  the config (envoy-swift.yaml)\n"
               "  -t, --test         check the config completely (filter libraries loaded, every plugin_config\n"
               "                     validated), print \"FILE: ok\" or the error, and exit 0 or 1\n"
               "  --watch            reload when the config or a filter library (so_path) changes\n"
               "signals: SIGHUP reloads; SIGTERM, SIGINT, SIGQUIT drain and exit (a second SIGTERM/SIGINT: at once)\n");
}

/* -t: everything a worker does before it serves, in this process, like `nginx -t`. */
static int check(const char *path)
{
    es_config_t cfg;
    char err[1024];
    if (es_config_load(&cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "envoy-swift: %s\n", err);
        return 1;
    }
    int rc = es_filters_setup(&cfg, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "envoy-swift: %s\n", err);
    else
        printf("%s: ok\n", path);
    es_filters_teardown();
    es_config_dispose(&cfg);
    es_small_drain();
    return rc != 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int test = 0, watch = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--test") == 0) {
            test = 1;
        } else if (strcmp(argv[i], "--watch") == 0) {
            watch = 1;
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
    if (test)
        return check(path);
    es_supervisor_opts_t opts = {.config_path = path, .watch = watch};
    return es_supervisor_run(&opts);
}
