/*
 * Config errors end the process at startup: a non-zero exit, within seconds (nothing left running),
 * and exactly one line on stderr, "envoy-swift: FILE:LINE: KEY...: what is wrong", or
 * "envoy-swift: FILE: ..." for a file that cannot be read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* The checks every config error shares; `line` 0 = no line number expected. */
static void expect_one_line_error(es_run_t *run, int line, const char *const *needles) {
    if (run->timed_out) fail_msg("the proxy was still running after 5 s (stderr: %s)", run->err);
    if (!run->exited) fail_msg("the proxy did not exit by itself (a crash?); stderr: %s", run->err);
    if (run->exit_code == 0) fail_msg("exit status 0 for a bad config; stderr: %s", run->err);

    size_t len = strlen(run->err);
    const char *nl = strchr(run->err, '\n');
    if (len == 0 || nl != run->err + len - 1) fail_msg("stderr is not exactly one line: \"%s\"", run->err);
    if (strncmp(run->err, "envoy-swift: ", 13) != 0) fail_msg("stderr does not start with \"envoy-swift: \": %s", run->err);
    if (strstr(run->err, run->config_path) == NULL) fail_msg("stderr does not name %s: %s", run->config_path, run->err);
    if (line > 0) {
        char at[600 + 16];
        snprintf(at, sizeof at, "%s:%d:", run->config_path, line);
        if (strstr(run->err, at) == NULL) fail_msg("stderr does not say \"%s\": %s", at, run->err);
    }
    for (size_t i = 0; needles && needles[i]; i++) {
        if (strstr(run->err, needles[i]) == NULL) fail_msg("stderr does not mention \"%s\": %s", needles[i], run->err);
    }
}

static void test_unknown_key(void **state) {
    es_run_t run;
    es_run_config(&run,
                  "workers: 1\n"
                  "listeners:\n"
                  "  - name: main\n"
                  "    address: 127.0.0.1\n"
                  "    port: 0\n"
                  "    routes:\n"
                  "      - match: { prefix: / }\n"
                  "        cluster: backend\n"
                  "clusters:\n"
                  "  - name: backend\n"
                  "    endpoints: [ { address: 127.0.0.1, port: 8080 } ]\n"
                  "    conect_timeout: 1s\n");
    expect_one_line_error(&run, 12, (const char *const[]){ "conect_timeout", NULL });
    es_run_dispose(&run);
}

static void test_wrong_type(void **state) {
    es_run_t run;
    es_run_config(&run,
                  "workers: 1\n"
                  "listeners:\n"
                  "  - name: main\n"
                  "    address: 127.0.0.1\n"
                  "    port: [ 10000 ]\n"
                  "    routes:\n"
                  "      - match: { prefix: / }\n"
                  "        direct_response: { status: 200, body: \"hi\" }\n");
    expect_one_line_error(&run, 5, (const char *const[]){ "port", NULL });
    es_run_dispose(&run);

    /* A string where a number belongs is a wrong type too. */
    es_run_config(&run,
                  "workers: many\n"
                  "listeners:\n"
                  "  - name: main\n"
                  "    address: 127.0.0.1\n"
                  "    port: 0\n"
                  "    routes:\n"
                  "      - match: { prefix: / }\n"
                  "        direct_response: { status: 200, body: \"hi\" }\n");
    expect_one_line_error(&run, 1, (const char *const[]){ "workers", NULL });
    es_run_dispose(&run);
}

static void test_missing_cluster(void **state) {
    es_run_t run;
    es_run_config(&run,
                  "workers: 1\n"
                  "listeners:\n"
                  "  - name: main\n"
                  "    address: 127.0.0.1\n"
                  "    port: 0\n"
                  "    routes:\n"
                  "      - match: { prefix: /api }\n"
                  "        cluster: nowhere\n"
                  "clusters:\n"
                  "  - name: backend\n"
                  "    endpoints: [ { address: 127.0.0.1, port: 8080 } ]\n");
    expect_one_line_error(&run, 8, (const char *const[]){ "cluster", "nowhere", NULL });
    es_run_dispose(&run);
}

static void test_port_in_use(void **state) {
    /* Someone else listens on the port, without SO_REUSEPORT. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &slen), 0);
    unsigned port = ntohs(sa.sin_port);

    /* The first listener would bind fine: the process must still end, not half-start. */
    es_run_t run;
    es_run_config(&run,
                  "workers: 2\n"
                  "listeners:\n"
                  "  - name: first\n"
                  "    address: 127.0.0.1\n"
                  "    port: 0\n"
                  "    routes:\n"
                  "      - match: { prefix: / }\n"
                  "        direct_response: { status: 200, body: \"a\" }\n"
                  "  - name: second\n"
                  "    address: 127.0.0.1\n"
                  "    port: %u\n"
                  "    routes:\n"
                  "      - match: { prefix: / }\n"
                  "        direct_response: { status: 200, body: \"b\" }\n",
                  port);
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%u", port);
    expect_one_line_error(&run, 11, (const char *const[]){ "listeners[1]", "port", port_text, NULL });
    es_run_dispose(&run);
    close(fd);
}

static void test_unreadable_file(void **state) {
    char path[700];
    const char *build = getenv("ES_BUILD");
    snprintf(path, sizeof path, "%s/test-tmp/no-such-dir/missing.yaml", build && *build ? build : "build");
    es_run_t run;
    es_run_path(&run, path);
    expect_one_line_error(&run, 0, NULL);
    es_run_dispose(&run);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_missing_cluster),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_unreadable_file),
    };
    return cmocka_run_group_tests_name("proxy_config_errors", tests, NULL, NULL);
}
