/*
 * The C integration-test harness (see harness.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

extern char **environ;

#define START_TIMEOUT_MS  15000
#define STOP_TIMEOUT_MS   10000
#define RUN_TIMEOUT_MS    5000
#define IO_TIMEOUT_S      10
#define CLIENT_BUF        65536
#define DEFAULT_KEEP      (1u << 20)

/* ---- small helpers ---- */

uint64_t es_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int es_poll_until(int (*fn)(void *arg), void *arg, int timeout_ms) {
    uint64_t deadline = es_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (fn(arg)) return 1;
        if (es_now_ms() >= deadline) return 0;
        sleep_ms(10);
    }
}

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return strdup("");
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
        size_t n = fread(s + len, 1, cap - len - 1, f);
        if (n == 0) break;
        len += n;
    }
    fclose(f);
    s[len] = '\0';
    return s;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void make_tmpdir(char *dir, size_t len) {
    const char *build = env_or("ES_BUILD", "build");
    char base[400];
    snprintf(base, sizeof base, "%s/test-tmp", build);
    mkdir(build, 0755);
    if (mkdir(base, 0755) != 0 && errno != EEXIST) fail_msg("cannot create %s: %s", base, strerror(errno));
    snprintf(dir, len, "%s/XXXXXX", base);
    if (mkdtemp(dir) == NULL) fail_msg("mkdtemp %s: %s", dir, strerror(errno));
}

/* Removes the files a test wrote into its temp folder, then the folder. */
static void remove_tmpdir(const char *dir) {
    if (dir[0] == '\0') return;
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char path[1100];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static const char *es_bin(void) {
    return env_or("ES_BIN", "build/asan/envoy-swift");
}

static void check_bin(void) {
    const char *bin = es_bin();
    if (access(bin, X_OK) != 0) fail_msg("ES_BIN %s is not an executable: %s", bin, strerror(errno));
}

/*
 * environ plus `extra` (NULL-terminated), in a malloc'd array whose strings are borrowed. The Swift runtime's
 * crash backtracer is off unless `extra` says otherwise: it reads the dying process's memory in ways
 * AddressSanitizer reports as overflows, which turns a filter's trap into a sanitizer report and a slow exit(1)
 * instead of the signal a release build dies of.
 */
static char **make_env(const char *const *extra_in) {
    const char *extra_buf[32];
    size_t m = 0, n = 0;
    extra_buf[m++] = "SWIFT_BACKTRACE=enable=no";
    for (size_t j = 0; extra_in && extra_in[j] && m < 31; j++) {
        if (strncmp(extra_in[j], "SWIFT_BACKTRACE=", 16) == 0) extra_buf[0] = extra_in[j];
        else extra_buf[m++] = extra_in[j];
    }
    extra_buf[m] = NULL;
    const char *const *extra = extra_buf;
    while (environ[n]) n++;
    char **env = calloc(n + m + 1, sizeof *env);
    assert_non_null(env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        /* an extra entry replaces the inherited one of the same name */
        const char *eq = strchr(environ[i], '=');
        size_t nlen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int replaced = 0;
        for (size_t j = 0; j < m; j++) {
            if (strncmp(extra[j], environ[i], nlen) == 0 && extra[j][nlen] == '=') replaced = 1;
        }
        if (!replaced) env[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++) env[k++] = (char *)extra[j];
    env[k] = NULL;
    return env;
}

/*
 * fork + exec with stdout and stderr redirected. The child dies with the test (PR_SET_PDEATHSIG), so a
 * crashed test program leaves no proxy behind.
 */
static pid_t spawn(const char *const *argv, const char *const *extra_env, const char *out_path,
                   const char *err_path) {
    char **env = make_env(extra_env);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = strcmp(out_path, err_path) == 0 ? out : open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(126);
        execve(argv[0], (char *const *)argv, env);
        dprintf(2, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(env);
    return pid;
}

/* waitpid with a timeout. Returns 1 and the status when the child ended, 0 on timeout. */
static int wait_child(pid_t pid, int timeout_ms, int *status) {
    uint64_t deadline = es_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno != EINTR) {
            *status = 0;
            return 1;
        }
        if (es_now_ms() >= deadline) return 0;
        sleep_ms(5);
    }
}

static void describe_status(int status, char *buf, size_t len) {
    if (WIFEXITED(status)) {
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        snprintf(buf, len, "status 0x%x", status);
    }
}

/* ---- the proxy ---- */

void es_proxy_print_log(const es_proxy_t *p) {
    char *log = es_proxy_log(p);
    size_t len = strlen(log);
    const size_t max = 32768;
    fprintf(stderr, "----- proxy log %s%s -----\n", p->log_path, len > max ? " (last 32 KiB)" : "");
    fputs(len > max ? log + len - max : log, stderr);
    if (len && log[len - 1] != '\n') fputc('\n', stderr);
    fprintf(stderr, "----- end of proxy log -----\n");
    free(log);
}

char *es_proxy_log(const es_proxy_t *p) {
    return read_file(p->log_path);
}

size_t es_proxy_log_count(const es_proxy_t *p, const char *needle) {
    char *log = es_proxy_log(p);
    size_t n = 0, nlen = strlen(needle);
    for (const char *s = log; nlen && (s = strstr(s, needle)) != NULL; s += nlen) n++;
    free(log);
    return n;
}

/* Collects the listeners the log says are listening. Returns how many distinct ones. */
static size_t scan_listeners(es_proxy_t *p, const char *log) {
    regex_t re;
    if (regcomp(&re, "listener \"([^\"]*)\" listening on [^ \n]*:([0-9]+)", REG_EXTENDED) != 0) {
        fail_msg("regcomp failed");
    }
    regmatch_t m[3];
    const char *s = log;
    while (p->nlisteners < ES_MAX_LISTENERS && regexec(&re, s, 3, m, 0) == 0) {
        char name[64];
        size_t nlen = (size_t)(m[1].rm_eo - m[1].rm_so);
        if (nlen >= sizeof name) nlen = sizeof name - 1;
        memcpy(name, s + m[1].rm_so, nlen);
        name[nlen] = '\0';
        long port = strtol(s + m[2].rm_so, NULL, 10);
        int known = 0;
        for (size_t i = 0; i < p->nlisteners; i++) known |= strcmp(p->names[i], name) == 0;
        if (!known && port > 0 && port < 65536) {
            memcpy(p->names[p->nlisteners], name, nlen + 1);
            p->ports[p->nlisteners] = (uint16_t)port;
            p->nlisteners++;
        }
        s += m[0].rm_eo;
    }
    regfree(&re);
    return p->nlisteners;
}

void es_proxy_start(es_proxy_t *p, size_t nlisteners, const char *yaml_fmt, ...) {
    check_bin();
    assert_true(nlisteners >= 1 && nlisteners <= ES_MAX_LISTENERS);
    p->pid = 0;
    p->port = 0;
    p->nlisteners = 0;
    make_tmpdir(p->dir, sizeof p->dir);
    snprintf(p->config_path, sizeof p->config_path, "%s/config.yaml", p->dir);
    snprintf(p->log_path, sizeof p->log_path, "%s/proxy.log", p->dir);

    va_list ap;
    va_start(ap, yaml_fmt);
    char *yaml = NULL;
    if (vasprintf(&yaml, yaml_fmt, ap) < 0) fail_msg("vasprintf");
    va_end(ap);
    write_file(p->config_path, yaml);
    free(yaml);

    const char *level = p->log_level ? p->log_level : "debug";
    const char *argv[16] = { es_bin(), "-c", p->config_path };
    size_t argc = 3;
    for (size_t i = 0; p->extra_args != NULL && p->extra_args[i] != NULL && argc < 12; i++) argv[argc++] = p->extra_args[i];
    if (*level) {
        argv[argc++] = "--log-level";
        argv[argc++] = level;
    }
    argv[argc] = NULL;
    p->pid = spawn(argv, p->extra_env, p->log_path, p->log_path);

    uint64_t deadline = es_now_ms() + START_TIMEOUT_MS;
    for (;;) {
        char *log = es_proxy_log(p);
        size_t n = scan_listeners(p, log);
        free(log);
        if (n >= nlisteners) break;
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            char why[128];
            describe_status(status, why, sizeof why);
            p->pid = 0;
            es_proxy_print_log(p);
            fail_msg("the proxy exited (%s) before listening; config %s", why, p->config_path);
        }
        if (es_now_ms() >= deadline) {
            es_proxy_print_log(p);
            es_proxy_kill(p);
            fail_msg("the proxy did not log `listening on` for %zu listener(s) within %d ms", nlisteners,
                     START_TIMEOUT_MS);
        }
        sleep_ms(10);
    }
    p->port = p->ports[0];
}

void es_proxy_start_backend(es_proxy_t *p, unsigned workers, uint16_t upstream_port) {
    es_proxy_start(p, 1,
                   "workers: %u\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "    connect_timeout: 1s\n",
                   workers, upstream_port);
}

uint16_t es_proxy_port(const es_proxy_t *p, const char *name) {
    for (size_t i = 0; i < p->nlisteners; i++) {
        if (strcmp(p->names[i], name) == 0) return p->ports[i];
    }
    fail_msg("no listener \"%s\" in the proxy log", name);
    return 0;
}

void es_proxy_stop(es_proxy_t *p) {
    if (p->pid <= 0) fail_msg("es_proxy_stop: the proxy is not running");
    pid_t pid = p->pid;
    kill(pid, SIGTERM);
    int status = 0;
    if (!wait_child(pid, STOP_TIMEOUT_MS, &status)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        p->pid = 0;
        es_proxy_print_log(p);
        fail_msg("the proxy did not exit within %d ms of SIGTERM", STOP_TIMEOUT_MS);
    }
    p->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[128];
        describe_status(status, why, sizeof why);
        es_proxy_print_log(p);
        fail_msg("the proxy ended with %s after SIGTERM (a sanitizer report or leak is in its log)", why);
    }
    remove_tmpdir(p->dir);
}

void es_proxy_kill(es_proxy_t *p) {
    if (p->pid <= 0) return;      /* never kill(0, ...): that is our own process group */
    fprintf(stderr, "harness: killing the proxy (pid %d) that is still running\n", (int)p->pid);
    es_proxy_print_log(p);
    kill(p->pid, SIGKILL);
    int status;
    waitpid(p->pid, &status, 0);
    p->pid = 0;
}

void es_proxy_write_config(es_proxy_t *p, const char *yaml_fmt, ...) {
    va_list ap;
    va_start(ap, yaml_fmt);
    char *yaml = NULL;
    if (vasprintf(&yaml, yaml_fmt, ap) < 0) fail_msg("vasprintf");
    va_end(ap);
    /* A new file renamed over the old one: the proxy never reads half a file. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", p->config_path);
    write_file(tmp, yaml);
    free(yaml);
    if (rename(tmp, p->config_path) != 0) fail_msg("rename %s: %s", tmp, strerror(errno));
}

int es_proxy_wait_log(const es_proxy_t *p, const char *needle, size_t n, int timeout_ms) {
    uint64_t deadline = es_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (es_proxy_log_count(p, needle) >= n) return 1;
        if (es_now_ms() >= deadline) return 0;
        sleep_ms(5);
    }
}

int es_proxy_reload(es_proxy_t *p) {
    size_t served = es_proxy_log_count(p, " serving ("), failed = es_proxy_log_count(p, "reload failed");
    if (p->pid <= 0) fail_msg("es_proxy_reload: the proxy is not running");
    kill(p->pid, SIGHUP);
    uint64_t deadline = es_now_ms() + 30000;
    for (;;) {
        if (es_proxy_log_count(p, " serving (") > served) return 1;
        if (es_proxy_log_count(p, "reload failed") > failed) return 0;
        if (es_now_ms() >= deadline) {
            es_proxy_print_log(p);
            fail_msg("no outcome of the reload in the log within 30 s");
        }
        sleep_ms(5);
    }
}

uint64_t es_proxy_wait_exit(es_proxy_t *p, int timeout_ms) {
    if (p->pid <= 0) fail_msg("es_proxy_wait_exit: the proxy is not running");
    uint64_t t0 = es_now_ms();
    int status = 0;
    if (!wait_child(p->pid, timeout_ms, &status)) {
        es_proxy_print_log(p);
        es_proxy_kill(p);
        fail_msg("the proxy did not exit within %d ms", timeout_ms);
    }
    p->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[128];
        describe_status(status, why, sizeof why);
        es_proxy_print_log(p);
        fail_msg("the proxy ended with %s", why);
    }
    return es_now_ms() - t0;
}

size_t es_proxy_workers(const es_proxy_t *p, pid_t *pids, size_t max) {
    DIR *d = opendir("/proc");
    if (d == NULL) fail_msg("opendir /proc: %s", strerror(errno));
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it. */
        char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (rp == NULL || sscanf(rp + 1, " %c %d", &state, &ppid) != 2 || state == 'Z') continue;
        if (ppid == (int)p->pid) {
            if (n < max) pids[n] = (pid_t)atoi(e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

long es_proc_status_kb(pid_t pid, const char *key) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    char line[256];
    size_t klen = strlen(key);
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

int es_proc_threads(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n;
}

/* ---- running the binary to see it fail ---- */

static void run_bin(es_run_t *r, const char *config, int check) {
    check_bin();
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", r->dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", r->dir);
    const char *argv[] = { es_bin(), "-c", config, check ? "-t" : NULL, NULL };
    pid_t pid = spawn(argv, NULL, out_path, err_path);
    int status = 0;
    if (wait_child(pid, RUN_TIMEOUT_MS, &status)) {
        r->exited = WIFEXITED(status);
        r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (WIFSIGNALED(status)) fprintf(stderr, "harness: %s killed by signal %d\n", es_bin(), WTERMSIG(status));
    } else {
        r->timed_out = 1;
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    r->out = read_file(out_path);
    r->err = read_file(err_path);
}

/* Writes the YAML to a new temp folder and runs the binary on it (with -t when `check`). */
static void run_yaml(es_run_t *r, int check, const char *yaml_fmt, va_list ap) {
    memset(r, 0, sizeof *r);
    make_tmpdir(r->dir, sizeof r->dir);
    snprintf(r->config_path, sizeof r->config_path, "%s/config.yaml", r->dir);
    char *yaml = NULL;
    if (vasprintf(&yaml, yaml_fmt, ap) < 0) fail_msg("vasprintf");
    write_file(r->config_path, yaml);
    free(yaml);
    run_bin(r, r->config_path, check);
}

void es_run_config(es_run_t *r, const char *yaml_fmt, ...) {
    va_list ap;
    va_start(ap, yaml_fmt);
    run_yaml(r, 0, yaml_fmt, ap);
    va_end(ap);
}

void es_run_check(es_run_t *r, const char *yaml_fmt, ...) {
    va_list ap;
    va_start(ap, yaml_fmt);
    run_yaml(r, 1, yaml_fmt, ap);
    va_end(ap);
}

void es_run_path(es_run_t *r, const char *path) {
    memset(r, 0, sizeof *r);
    make_tmpdir(r->dir, sizeof r->dir);
    snprintf(r->config_path, sizeof r->config_path, "%s", path);
    run_bin(r, path, 0);
}

void es_run_dispose(es_run_t *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    remove_tmpdir(r->dir);
    r->dir[0] = '\0';
}

/* ---- the client ---- */

/*
 * The two I/O choke points of a TLS client: like recv / send on a socket with SO_RCVTIMEO / SO_SNDTIMEO:
 * bytes, 0 at EOF (the server's close_notify, or a bare TCP close), or -1 with errno: EINTR, EAGAIN (the
 * 10 s timeout, or nothing yet on a non-blocking socket), ECONNRESET, EPIPE, or EPROTO (a TLS error:
 * io_error() says which). After a fatal error no close_notify is sent (OpenSSL forbids it).
 */
static ssize_t tls_recv(es_client_t *c, void *buf, size_t len) {
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) return n;
    int err = SSL_get_error(c->ssl, n);
    switch (err) {
    case SSL_ERROR_ZERO_RETURN:
        c->tls_close_notify = 1;
        return 0;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        if (errno != EINTR) errno = EAGAIN;
        return -1;
    case SSL_ERROR_SYSCALL:
        SSL_set_quiet_shutdown(c->ssl, 1);
        if (errno == 0) return 0;
        return -1;
    default:
        SSL_set_quiet_shutdown(c->ssl, 1);
        if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return 0;
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_send(es_client_t *c, const void *data, size_t len) {
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(c->ssl, data, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) return n;
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (errno != EINTR) errno = EAGAIN;
        return -1;
    }
    SSL_set_quiet_shutdown(c->ssl, 1);
    if (err != SSL_ERROR_SYSCALL || errno == 0) errno = err == SSL_ERROR_SYSCALL ? EPIPE : EPROTO;
    return -1;
}

/* strerror(errno), or for EPROTO on a TLS client the reason OpenSSL gave. */
static const char *io_error(const es_client_t *c, char *buf, size_t len) {
    int e = errno;
    if (c->ssl && e == EPROTO && ERR_peek_last_error() != 0) {
        char why[200];
        ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
        snprintf(buf, len, "TLS: %s", why);
        return buf;
    }
    return strerror(e);
}

int es_try_client_connect(es_client_t *c, uint16_t port) {
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(c->error, sizeof c->error, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = { .tv_sec = IO_TIMEOUT_S, .tv_usec = 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(c->error, sizeof c->error, "connect 127.0.0.1:%u: %s", port, strerror(errno));
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->cap = CLIENT_BUF;
    c->buf = malloc(c->cap);
    assert_non_null(c->buf);
    return 0;
}

void es_client_connect(es_client_t *c, uint16_t port) {
    if (es_try_client_connect(c, port) != 0) fail_msg("%s", c->error);
}

void es_client_close(es_client_t *c) {
    if (c->ssl) {
        /* close_notify, best effort: never wait for a server that reads nothing, nor for its reply. */
        if (c->fd >= 0) {
            int fl = fcntl(c->fd, F_GETFL);
            if (fl >= 0) fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
            ERR_clear_error();
            SSL_shutdown(c->ssl);
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->off = c->len = c->cap = 0;
}

int es_try_client_send(es_client_t *c, const void *data, size_t len) {
    const char *p = data;
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = c->ssl ? tls_send(c, p + sent, len - sent) : send(c->fd, p + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            char why[224];
            snprintf(c->error, sizeof c->error, "send (after %zu of %zu bytes): %s", sent, len,
                     errno == EAGAIN ? "timed out" : io_error(c, why, sizeof why));
            return -1;
        }
        sent += (size_t)n;
    }
    return 0;
}

void es_client_send(es_client_t *c, const void *data, size_t len) {
    if (es_try_client_send(c, data, len) != 0) fail_msg("%s", c->error);
}

void es_client_sendf(es_client_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) fail_msg("vasprintf");
    int rc = es_try_client_send(c, s, (size_t)n);
    free(s);
    if (rc != 0) fail_msg("%s", c->error);
}

void es_client_send_pattern(es_client_t *c, uint64_t offset, uint64_t len, int chunked, size_t chunk) {
    if (chunk == 0) chunk = 65536;
    /* The pattern repeats every 256 bytes: one buffer serves every offset. */
    size_t head = chunked ? 32 : 0;
    unsigned char *buf = malloc(head + chunk + 256 + 2);
    assert_non_null(buf);
    es_pattern_fill(buf + head, 0, chunk + 256);
    unsigned char *frame = chunked ? malloc(head + chunk + 2) : NULL;
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < chunk ? (size_t)(len - done) : chunk;
        const unsigned char *data = buf + head + ((offset + done) & 0xff);
        int rc;
        if (chunked) {
            int k = snprintf((char *)frame, head, "%zx\r\n", n);
            memcpy(frame + k, data, n);
            memcpy(frame + k + n, "\r\n", 2);
            rc = es_try_client_send(c, frame, (size_t)k + n + 2);
        } else {
            rc = es_try_client_send(c, data, n);
        }
        if (rc != 0) {
            free(buf);
            free(frame);
            fail_msg("sending the pattern at offset %" PRIu64 ": %s", done, c->error);
        }
        done += n;
    }
    free(buf);
    free(frame);
}

typedef struct {
    es_response_t *r;
    const es_read_opts_t *o;
    size_t keep;
    size_t body_cap;
    int done;
    int aborted;
    char *field, *value;
    size_t flen, vlen;
    int in_value;
    int headers_done;
} read_ctx_t;

static void append(char **s, size_t *len, const char *at, size_t n) {
    char *p = realloc(*s, *len + n + 1);
    assert_non_null(p);
    memcpy(p + *len, at, n);
    *len += n;
    p[*len] = '\0';
    *s = p;
}

static void flush_header(read_ctx_t *x) {
    if (x->field == NULL && !x->in_value) return;
    es_test_header_t **list = x->headers_done ? &x->r->trailers : &x->r->headers;
    size_t *n = x->headers_done ? &x->r->ntrailers : &x->r->nheaders;
    es_test_header_t *h = realloc(*list, (*n + 1) * sizeof *h);
    assert_non_null(h);
    h[*n].name = x->field ? x->field : strdup("");
    h[*n].value = x->value ? x->value : strdup("");
    *list = h;
    (*n)++;
    x->field = x->value = NULL;
    x->flen = x->vlen = 0;
    x->in_value = 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    read_ctx_t *x = p->data;
    if (x->in_value) flush_header(x);
    append(&x->field, &x->flen, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    read_ctx_t *x = p->data;
    x->in_value = 1;
    append(&x->value, &x->vlen, at, len);
    return 0;
}

static int on_headers_complete(llhttp_t *p) {
    read_ctx_t *x = p->data;
    flush_header(x);
    x->headers_done = 1;
    x->r->status = p->status_code;
    x->r->http_major = p->http_major;
    x->r->http_minor = p->http_minor;
    x->r->chunked = (p->flags & F_CHUNKED) != 0;
    int s = p->status_code;
    int no_body = x->o->head || (s >= 100 && s < 200 && s != 101) || s == 204 || s == 304;
    x->r->keep_alive = no_body ? 1 : llhttp_should_keep_alive(p);
    if (no_body) {
        /* llhttp_should_keep_alive() does not know the body is skipped; only the Connection header counts. */
        const char *conn = es_response_header(x->r, "connection");
        if (conn && strcasestr(conn, "close")) x->r->keep_alive = 0;
        if (p->http_major == 1 && p->http_minor == 0 && !(conn && strcasestr(conn, "keep-alive"))) {
            x->r->keep_alive = 0;
        }
    }
    return no_body ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    read_ctx_t *x = p->data;
    es_response_t *r = x->r;
    uint64_t offset = r->body_total;
    r->body_total += len;
    r->body_fnv = es_fnv1a(r->body_fnv, at, len);
    if (r->body_len < x->keep) {
        size_t n = x->keep - r->body_len < len ? x->keep - r->body_len : len;
        if (r->body_len + n + 1 > x->body_cap) {
            size_t cap = x->body_cap * 2;
            while (cap < r->body_len + n + 1) cap *= 2;
            char *b = realloc(r->body, cap);
            assert_non_null(b);
            r->body = b;
            x->body_cap = cap;
        }
        memcpy(r->body + r->body_len, at, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
    }
    if (x->o->on_body && x->o->on_body(x->o->ctx, at, len, offset) != 0) {
        x->aborted = 1;
        return HPE_USER;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    read_ctx_t *x = p->data;
    flush_header(x);
    x->done = 1;
    return HPE_PAUSED;          /* leave the next pipelined response in the buffer */
}

static const llhttp_settings_t read_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int es_try_client_read(es_client_t *c, es_response_t *r, const es_read_opts_t *opts) {
    static const es_read_opts_t dflt;
    memset(r, 0, sizeof *r);
    read_ctx_t x = { .r = r, .o = opts ? opts : &dflt };
    x.keep = x.o->keep ? x.o->keep : DEFAULT_KEEP;
    x.body_cap = 256;
    r->body = calloc(1, x.body_cap);
    assert_non_null(r->body);
    r->body_fnv = ES_FNV_INIT;
    c->error[0] = '\0';

    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &read_settings);
    p.data = &x;
    int rc = -1;
    for (;;) {
        if (c->off < c->len) {
            size_t avail = c->len - c->off;
            const char *data = c->buf + c->off;
            llhttp_errno_t err = llhttp_execute(&p, data, avail);
            /* Paused (or failed): llhttp says where it stopped; otherwise it took every byte. */
            size_t k = err == HPE_OK ? avail : (size_t)(llhttp_get_error_pos(&p) - data);
            c->off += k;
            if (x.done) {
                rc = 0;
                break;
            }
            if (err == HPE_PAUSED_UPGRADE) {
                snprintf(c->error, sizeof c->error, "the parser stopped early (upgrade?)");
                break;
            }
            if (err != HPE_OK) {
                snprintf(c->error, sizeof c->error, "%s", x.aborted ? "the body callback stopped the read"
                         : llhttp_get_error_reason(&p) ? llhttp_get_error_reason(&p) : llhttp_errno_name(err));
                break;
            }
        }
        if (c->off == c->len) c->off = c->len = 0;
        if (c->eof) {
            llhttp_finish(&p);    /* completes a response that the close delimits */
            if (x.done) {
                r->eof_delimited = 1;
                r->keep_alive = 0;
                rc = 0;
            } else {
                snprintf(c->error, sizeof c->error,
                         "the connection closed before a complete response (status %d, %" PRIu64 " body bytes)",
                         r->status, r->body_total);
            }
            break;
        }
        if (c->len == c->cap) {
            memmove(c->buf, c->buf + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        ssize_t n = c->ssl ? tls_recv(c, c->buf + c->len, c->cap - c->len)
                           : recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
        } else if (n == 0 || errno == ECONNRESET) {
            c->eof = 1;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            snprintf(c->error, sizeof c->error, "no complete response within %d s (status %d, %" PRIu64
                     " body bytes so far)", IO_TIMEOUT_S, r->status, r->body_total);
            break;
        } else {
            char why[224];
            snprintf(c->error, sizeof c->error, "recv: %s", io_error(c, why, sizeof why));
            break;
        }
    }
    free(x.field);
    free(x.value);
    return rc;
}

void es_client_read(es_client_t *c, es_response_t *r, const es_read_opts_t *opts) {
    if (es_try_client_read(c, r, opts) != 0) fail_msg("reading a response: %s", c->error);
}

int es_client_wait_closed(es_client_t *c, int timeout_ms) {
    if (c->off < c->len) return -1;
    if (c->eof) return 1;
    uint64_t deadline = es_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = es_now_ms();
        if (now >= deadline) return 0;
        if (c->ssl == NULL || SSL_pending(c->ssl) == 0) {
            struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
            int n = poll(&pfd, 1, (int)(deadline - now));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return 0;
        }
        char b[4096];
        ssize_t k;
        if (c->ssl) {
            /* Non-blocking: a record without data (a session ticket) or half a record is not "more bytes". */
            int fl = fcntl(c->fd, F_GETFL);
            fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
            k = tls_recv(c, b, sizeof b);
            int e = errno;
            fcntl(c->fd, F_SETFL, fl);
            errno = e;
            if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (k < 0 && errno == EPROTO) {          /* an alert, a broken record: the end too */
                c->eof = 1;
                return 1;
            }
        } else {
            k = recv(c->fd, b, sizeof b, MSG_DONTWAIT);
        }
        if (k == 0 || (k < 0 && errno == ECONNRESET)) {
            c->eof = 1;
            return 1;
        }
        if (k > 0) {
            if (c->len + (size_t)k <= c->cap) {
                memcpy(c->buf + c->len, b, (size_t)k);
                c->len += (size_t)k;
            }
            return -1;
        }
    }
}

void es_response_dispose(es_response_t *r) {
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    for (size_t i = 0; i < r->ntrailers; i++) {
        free(r->trailers[i].name);
        free(r->trailers[i].value);
    }
    free(r->headers);
    free(r->trailers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static const char *find_header(const es_test_header_t *h, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(h[i].name, name) == 0) return h[i].value;
    }
    return NULL;
}

const char *es_response_header(const es_response_t *r, const char *name) {
    return find_header(r->headers, r->nheaders, name);
}

const char *es_response_trailer(const es_response_t *r, const char *name) {
    return find_header(r->trailers, r->ntrailers, name);
}

size_t es_response_header_count(const es_response_t *r, const char *name) {
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++) n += strcasecmp(r->headers[i].name, name) == 0;
    return n;
}

/* es_roundtrip on a connected client, which it closes. */
static void roundtrip_on(es_client_t *c, const char *raw, es_response_t *r, const es_read_opts_t *opts) {
    es_client_send(c, raw, strlen(raw));
    int rc = es_try_client_read(c, r, opts);
    char err[256];
    memcpy(err, c->error, sizeof err);
    es_client_close(c);
    if (rc != 0) fail_msg("reading the response to %.*s: %s", (int)strcspn(raw, "\r\n"), raw, err);
}

void es_roundtrip_tls(uint16_t port, const char *ca_file, const char *sni, const char *raw, es_response_t *r,
                      const es_read_opts_t *opts) {
    es_client_t c;
    es_client_connect_tls(&c, port, ca_file, sni);
    roundtrip_on(&c, raw, r, opts);
}

void es_get_tls(uint16_t port, const char *ca_file, const char *sni, const char *path, es_response_t *r) {
    char raw[2048];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    es_roundtrip_tls(port, ca_file, sni, raw, r, NULL);
}

void es_roundtrip(uint16_t port, const char *raw, es_response_t *r, const es_read_opts_t *opts) {
    es_client_t c;
    es_client_connect(&c, port);
    roundtrip_on(&c, raw, r, opts);
}

void es_get(uint16_t port, const char *path, es_response_t *r) {
    char raw[2048];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    es_roundtrip(port, raw, r, NULL);
}

/* ---- TLS: the client ---- */

/* Client SSL_CTXs, one per CA file (NULL: no verification), kept for the process: loading a CA costs
 * more than a handshake under ASan. A CA file made anew at the same path gets a new context. */
typedef struct {
    char ca[600];
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    SSL_CTX *ctx;
} client_ctx_t;

static pthread_mutex_t client_ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static client_ctx_t client_ctxs[8];
static size_t client_nctx;

static void free_client_ctxs(void) {
    pthread_mutex_lock(&client_ctx_mu);
    for (size_t i = 0; i < client_nctx; i++) SSL_CTX_free(client_ctxs[i].ctx);
    client_nctx = 0;
    pthread_mutex_unlock(&client_ctx_mu);
}

/* A reference to the context for ca_file (SSL_CTX_free it), or NULL with why in err. */
static SSL_CTX *client_ctx(const char *ca_file, char *err, size_t errlen) {
    struct stat st;
    memset(&st, 0, sizeof st);
    if (ca_file && stat(ca_file, &st) != 0) {
        snprintf(err, errlen, "CA file %s: %s", ca_file, strerror(errno));
        return NULL;
    }
    const char *key = ca_file ? ca_file : "";
    pthread_mutex_lock(&client_ctx_mu);
    SSL_CTX *ctx = NULL;
    size_t i;
    for (i = 0; i < client_nctx; i++) {
        if (strcmp(client_ctxs[i].ca, key) == 0) break;
    }
    client_ctx_t *e = i < client_nctx ? &client_ctxs[i] : NULL;
    if (e && e->dev == st.st_dev && e->ino == st.st_ino && e->mtime.tv_sec == st.st_mtim.tv_sec &&
        e->mtime.tv_nsec == st.st_mtim.tv_nsec) {
        ctx = e->ctx;
        SSL_CTX_up_ref(ctx);
        pthread_mutex_unlock(&client_ctx_mu);
        return ctx;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)) {
        char why[200] = "SSL_CTX_new failed";
        if (ERR_peek_last_error()) ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
        snprintf(err, errlen, "loading CA file %s: %s", ca_file ? ca_file : "(none)", why);
        SSL_CTX_free(ctx);
        ERR_clear_error();
        pthread_mutex_unlock(&client_ctx_mu);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, ca_file ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (e == NULL && client_nctx < sizeof client_ctxs / sizeof client_ctxs[0]) {
        if (client_nctx == 0) atexit(free_client_ctxs);
        e = &client_ctxs[client_nctx++];
    }
    if (e) {
        if (e->ctx) SSL_CTX_free(e->ctx);      /* clients still using it hold their own reference */
        snprintf(e->ca, sizeof e->ca, "%s", key);
        e->dev = st.st_dev;
        e->ino = st.st_ino;
        e->mtime = st.st_mtim;
        e->ctx = ctx;
        SSL_CTX_up_ref(ctx);
    }
    pthread_mutex_unlock(&client_ctx_mu);
    return ctx;
}

/* Why the handshake failed, in words a test failure can show. */
static void describe_handshake_error(SSL *ssl, int ret, char *buf, size_t len) {
    int err = SSL_get_error(ssl, ret);
    long verify = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();
    char why[200] = "";
    if (e) ERR_error_string_n(e, why, sizeof why);
    if (verify != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed: %.80s (%.100s)", X509_verify_cert_error_string(verify), why);
    } else if (e) {
        snprintf(buf, len, "%s", why);
    } else if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        snprintf(buf, len, "no handshake within %d s", IO_TIMEOUT_S);
    } else if (err == SSL_ERROR_SYSCALL) {
        snprintf(buf, len, "%s", errno ? strerror(errno) : "the server closed the connection (EOF)");
    } else {
        snprintf(buf, len, "SSL_get_error %d", err);
    }
}

int es_try_client_connect_tls(es_client_t *c, uint16_t port, const char *ca_file, const char *sni) {
    if (es_try_client_connect(c, port) != 0) return -1;
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);

    char err[224];
    SSL_CTX *ctx = client_ctx(ca_file, err, sizeof err);
    if (ctx == NULL) {
        es_client_close(c);
        snprintf(c->error, sizeof c->error, "%s", err);
        return -1;
    }
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);                          /* the SSL holds its own reference */
    assert_non_null(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    static const unsigned char h11[] = "\x08http/1.1";
    SSL_set_alpn_protos(c->ssl, h11, sizeof h11 - 1);
    if (sni && *sni) {
        unsigned char addr[16];
        if (inet_pton(AF_INET, sni, addr) == 1 || inet_pton(AF_INET6, sni, addr) == 1) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), sni);
        } else {
            SSL_set_tlsext_host_name(c->ssl, sni);
            SSL_set1_host(c->ssl, sni);
        }
    }
    int r;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        r = SSL_connect(c->ssl);
        if (r == 1) break;
        int e = SSL_get_error(c->ssl, r);
        if (errno == EINTR && (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)) continue;
        describe_handshake_error(c->ssl, r, err, sizeof err);
        SSL_set_quiet_shutdown(c->ssl, 1);
        es_client_close(c);
        snprintf(c->error, sizeof c->error, "TLS handshake with 127.0.0.1:%u (SNI %.40s): %.170s", port,
                 sni ? sni : "none", err);
        return -1;
    }
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn_len >= sizeof c->alpn) alpn_len = sizeof c->alpn - 1;
    if (alpn) memcpy(c->alpn, alpn, alpn_len);
    c->alpn[alpn_len] = '\0';
    c->tls_version = SSL_version(c->ssl);
    return 0;
}

void es_client_connect_tls(es_client_t *c, uint16_t port, const char *ca_file, const char *sni) {
    if (es_try_client_connect_tls(c, port, ca_file, sni) != 0) fail_msg("%s", c->error);
}

/* ---- TLS: certificates ---- */

/* Runs `openssl ARGS...` quietly; fails the test with its output when it fails. */
static void run_openssl(const char *dir, const char *const *args) {
    const char *argv[24] = { "openssl" };
    size_t n = 1;
    while (args[n - 1] && n < sizeof argv / sizeof argv[0] - 1) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    char log_path[600];
    snprintf(log_path, sizeof log_path, "%s/openssl.log", dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int err = posix_spawnp(&pid, "openssl", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) fail_msg("cannot run openssl: %s (is the openssl command installed?)", strerror(err));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    char why[128];
    describe_status(status, why, sizeof why);
    char *out = read_file(log_path);
    fprintf(stderr, "harness: openssl %s failed (%s):\n%s\n", args[0], why, out);
    char line[512];
    snprintf(line, sizeof line, "%s", out);
    free(out);
    fail_msg("openssl %s failed (%s): %s", args[0], why, line);
}

static void genkey(const char *dir, const char *path) {
    const char *args[] = { "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path, NULL };
    run_openssl(dir, args);
}

/* A leaf for CN `cn` with the extensions of config section `ext`, signed by the CA. */
static void sign_leaf(const char *dir, const es_tls_certs_t *t, const char *cnf, const char *key, const char *cn,
                      const char *ext, const char *out) {
    char csr[640], subj[128], serial[40];
    snprintf(csr, sizeof csr, "%s/%s.csr", dir, ext);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    uint64_t rnd = 0;
    if (RAND_bytes((unsigned char *)&rnd, sizeof rnd) != 1) rnd = es_now_ms();
    snprintf(serial, sizeof serial, "0x%016" PRIx64, rnd >> 1 | UINT64_C(1) << 62);
    const char *req[] = { "req", "-new", "-config", cnf, "-key", key, "-subj", subj, "-out", csr, NULL };
    run_openssl(dir, req);
    const char *x509[] = { "x509", "-req", "-in", csr, "-CA", t->ca_cert, "-CAkey", t->ca_key, "-set_serial", serial,
                           "-days", "3650", "-sha256", "-extfile", cnf, "-extensions", ext, "-out", out, NULL };
    run_openssl(dir, x509);
    unlink(csr);
}

/* Writes the concatenation of files a and b to out. */
static void cat_files(const char *a, const char *b, const char *out) {
    char *x = read_file(a), *y = read_file(b);
    size_t xl = strlen(x);
    FILE *f = fopen(out, "wb");
    if (f == NULL) fail_msg("cannot write %s: %s", out, strerror(errno));
    fputs(x, f);
    if (xl && x[xl - 1] != '\n') fputc('\n', f);
    fputs(y, f);
    fclose(f);
    free(x);
    free(y);
}

static const char certs_cnf[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = envoy-swift test\n"
    "[ca_ext]\n"
    "basicConstraints = critical, CA:TRUE\n"
    "keyUsage = critical, keyCertSign, cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[server_ext]\n"
    "basicConstraints = critical, CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth, clientAuth\n"
    "subjectAltName = DNS:localhost, DNS:upstream.test, IP:127.0.0.1\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid\n"
    "[wrong_ext]\n"
    "basicConstraints = critical, CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth, clientAuth\n"
    "subjectAltName = DNS:wrong.example\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid\n"
    "[untrusted_ext]\n"
    "basicConstraints = critical, CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth, clientAuth\n"
    "subjectAltName = DNS:localhost, DNS:upstream.test, IP:127.0.0.1\n"
    "subjectKeyIdentifier = hash\n";

static void make_certs_in(const char *dir, es_tls_certs_t *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "%s", dir);
#define FILE_IN(field, name) snprintf(t->field, sizeof t->field, "%s/" name, dir)
    FILE_IN(ca_cert, "ca.pem");
    FILE_IN(ca_key, "ca.key");
    FILE_IN(server_cert, "server.pem");
    FILE_IN(server_key, "server.key");
    FILE_IN(server_leaf, "server-leaf.pem");
    FILE_IN(wrong_cert, "wrong.pem");
    FILE_IN(wrong_key, "wrong.key");
    FILE_IN(other_key, "other.key");
    FILE_IN(untrusted_cert, "untrusted.pem");
    FILE_IN(untrusted_key, "untrusted.key");
#undef FILE_IN
    char cnf[600], wrong_leaf[600];
    snprintf(cnf, sizeof cnf, "%s/openssl.cnf", dir);
    snprintf(wrong_leaf, sizeof wrong_leaf, "%s/wrong-leaf.pem", dir);
    write_file(cnf, certs_cnf);

    genkey(dir, t->ca_key);
    const char *ca[] = { "req", "-new", "-x509", "-config", cnf, "-key", t->ca_key, "-subj", "/CN=envoy-swift test CA",
                         "-extensions", "ca_ext", "-days", "3650", "-sha256", "-out", t->ca_cert, NULL };
    run_openssl(dir, ca);

    genkey(dir, t->server_key);
    sign_leaf(dir, t, cnf, t->server_key, "localhost", "server_ext", t->server_leaf);
    cat_files(t->server_leaf, t->ca_cert, t->server_cert);

    genkey(dir, t->wrong_key);
    sign_leaf(dir, t, cnf, t->wrong_key, "wrong.example", "wrong_ext", wrong_leaf);
    cat_files(wrong_leaf, t->ca_cert, t->wrong_cert);
    unlink(wrong_leaf);

    genkey(dir, t->other_key);

    genkey(dir, t->untrusted_key);
    const char *self[] = { "req", "-new", "-x509", "-config", cnf, "-key", t->untrusted_key, "-subj", "/CN=localhost",
                           "-extensions", "untrusted_ext", "-days", "3650", "-sha256", "-out", t->untrusted_cert, NULL };
    run_openssl(dir, self);

    char log_path[600];
    snprintf(log_path, sizeof log_path, "%s/openssl.log", dir);
    unlink(log_path);
    unlink(cnf);
}

static pthread_mutex_t certs_mu = PTHREAD_MUTEX_INITIALIZER;
static es_tls_certs_t certs_cache;
static int certs_made;

static void remove_certs_cache(void) {
    if (certs_made) remove_tmpdir(certs_cache.dir);
}

int es_tls_make_certs(const char *dir, es_tls_certs_t *out) {
    char abs[PATH_MAX];
    if (dir != NULL) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) fail_msg("cannot create %s: %s", dir, strerror(errno));
        if (realpath(dir, abs) == NULL) fail_msg("realpath %s: %s", dir, strerror(errno));
        if (strlen(abs) >= sizeof out->dir) fail_msg("%s: path too long", abs);
        make_certs_in(abs, out);
        return 0;
    }
    pthread_mutex_lock(&certs_mu);
    if (!certs_made) {
        char tmp[512];
        const char *build = env_or("ES_BUILD", "build");
        snprintf(tmp, sizeof tmp, "%s/test-tmp", build);
        mkdir(build, 0755);
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            pthread_mutex_unlock(&certs_mu);
            fail_msg("cannot create %s: %s", tmp, strerror(errno));
        }
        snprintf(tmp, sizeof tmp, "%s/test-tmp/certs-XXXXXX", build);
        if (mkdtemp(tmp) == NULL || realpath(tmp, abs) == NULL || strlen(abs) >= sizeof out->dir) {
            pthread_mutex_unlock(&certs_mu);
            fail_msg("cannot create a certs folder %s: %s", tmp, strerror(errno));
        }
        es_tls_certs_t t;
        make_certs_in(abs, &t);              /* a failure leaves the cache empty (and the folder) */
        certs_cache = t;
        certs_made = 1;
        atexit(remove_certs_cache);
    }
    *out = certs_cache;
    pthread_mutex_unlock(&certs_mu);
    return 0;
}

/* ---- /headers bodies ---- */

/* The value of the (skip+1)-th header line called `name` after the request line, or NULL. */
static const char *head_find(const char *head, const char *name, size_t skip, size_t *vlen) {
    size_t nlen = strlen(name);
    const char *line = strchr(head, '\n');
    while (line && *++line) {
        const char *end = strchr(line, '\n');
        size_t llen = end ? (size_t)(end - line) : strlen(line);
        if (llen > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            if (skip == 0) {
                const char *v = line + nlen + 1;
                while (*v == ' ' || *v == '\t') v++;
                *vlen = (size_t)(line + llen - v);
                return v;
            }
            skip--;
        }
        line = end;
    }
    return NULL;
}

size_t es_head_count(const char *head, const char *name) {
    size_t n = 0, vlen;
    while (head_find(head, name, n, &vlen)) n++;
    return n;
}

char *es_head_value(const char *head, const char *name) {
    size_t vlen;
    const char *v = head_find(head, name, 0, &vlen);
    return v ? strndup(v, vlen) : NULL;
}

char *es_head_request_line(const char *head) {
    return strndup(head, strcspn(head, "\n"));
}

/* ---- odds and ends ---- */

uint64_t es_pattern_fnv(uint64_t n) {
    unsigned char buf[65536];
    es_pattern_fill(buf, 0, sizeof buf);    /* sizeof buf is a multiple of the 256-byte period */
    uint64_t h = ES_FNV_INIT;
    for (uint64_t done = 0; done < n;) {
        size_t k = n - done < sizeof buf ? (size_t)(n - done) : sizeof buf;
        h = es_fnv1a(h, buf, k);
        done += k;
    }
    return h;
}

/* es_upload_pattern on a connected client, which it closes. */
static void upload_on(es_client_t *c, uint64_t n, int chunked, size_t chunk) {
    if (chunked)
        es_client_sendf(c, "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    else
        es_client_sendf(c, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %llu\r\n\r\n", (unsigned long long)n);
    es_client_send_pattern(c, 0, n, chunked, chunk);
    if (chunked)
        es_client_send(c, "0\r\n\r\n", 5);
    es_response_t r;
    es_client_read(c, &r, NULL);
    if (r.status != 200) fail_msg("upload of %llu bytes: status %d", (unsigned long long)n, r.status);
    char want[96];
    snprintf(want, sizeof want, "len=%llu fnv=%016llx", (unsigned long long)n, (unsigned long long)es_pattern_fnv(n));
    if (strstr(r.body, want) == NULL)
        fail_msg("upstream saw \"%s\", want \"%s\"", r.body, want);
    es_response_dispose(&r);
    es_client_close(c);
}

void es_upload_pattern(uint16_t port, uint64_t n, int chunked, size_t chunk) {
    es_client_t c;
    es_client_connect(&c, port);
    upload_on(&c, n, chunked, chunk);
}

void es_upload_pattern_tls(uint16_t port, const char *ca_file, const char *sni, uint64_t n, int chunked,
                           size_t chunk) {
    es_client_t c;
    es_client_connect_tls(&c, port, ca_file, sni);
    upload_on(&c, n, chunked, chunk);
}

const char *es_swift_filter_lib(void) {
    static char path[1200];
    const char *b = getenv("ES_BUILD");
    b = b && *b ? b : "build";
    char cwd[600] = "";
    if (b[0] != '/' && getcwd(cwd, sizeof cwd) == NULL) fail_msg("getcwd failed");
    snprintf(path, sizeof path, "%s%s%s/libswiftfilter.so", cwd, cwd[0] ? "/" : "", b);
    return path;
}

char *es_swift_filter_yaml(const char *name, const char *plugin, const char *config, const char *extra) {
    char *s = NULL;
    if (asprintf(&s, "      - name: %s\n        so_path: %s\n        plugin_name: %s\n        plugin_config: %s\n%s", name,
                 es_swift_filter_lib(), plugin, config, extra ? extra : "") < 0)
        fail_msg("asprintf");
    return s;
}

uint16_t es_closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- the fixture ---- */

int es_fixture_setup(void **state) {
    signal(SIGPIPE, SIG_IGN);
    es_fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->hole.listen_fd = -1;
    int err = es_upstream_start(&f->up);
    if (err != 0) fail_msg("es_upstream_start: %s", strerror(-err));
    *state = f;
    return 0;
}

int es_fixture_teardown(void **state) {
    es_fixture_t *f = *state;
    if (f == NULL) return 0;
    es_proxy_kill(&f->px);
    es_proxy_kill(&f->px2);
    es_upstream_stop(&f->up);
    es_upstream_stop(&f->up2);
    if (f->hole.nfds > 0) es_blackhole_stop(&f->hole);
    free(f);
    *state = NULL;
    return 0;
}

unsigned long long es_wait_stalled(atomic_ullong *value, unsigned long long limit) {
    unsigned long long last = atomic_load(value);
    uint64_t since = es_now_ms(), deadline = since + 15000;
    for (;;) {
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL);
        unsigned long long now = atomic_load(value);
        if (now >= limit) return now;
        if (now != last) {
            last = now;
            since = es_now_ms();
        } else if (es_now_ms() - since >= 300) {
            return now;
        }
        if (es_now_ms() > deadline) return now;
    }
}

uint64_t es_stat_in(const char *stats, const char *name) {
    size_t n = strlen(name);
    for (const char *at = strstr(stats, name); at != NULL; at = strstr(at + 1, name)) {
        if ((at == stats || at[-1] == '\n') && at[n] == ' ') return strtoull(at + n + 1, NULL, 10);
    }
    fail_msg("no counter %s in:\n%s", name, stats);
    return 0;
}

uint64_t es_stat(uint16_t port, const char *path, const char *name) {
    es_response_t r;
    es_get(port, path, &r);
    if (r.status != 200) fail_msg("GET %s: %d", path, r.status);
    uint64_t v = es_stat_in(r.body, name);
    es_response_dispose(&r);
    return v;
}

/* ---- external tools ---- */

int es_run_tool(char **out, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (p == NULL) {
        *out = strdup("popen failed");
        return -1;
    }
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    if (buf == NULL) abort();
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (len + 1 == cap && (buf = realloc(buf, cap *= 2)) == NULL) abort();
    }
    buf[len] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *es_kv(const char *out, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = out; line != NULL && *line; ) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=')
            return strndup(line + klen + 1, len - klen - 1);
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

void es_expect_kv(const char *out, const char *key, const char *want)
{
    char *v = es_kv(out, key);
    if (v == NULL || strcmp(v, want) != 0)
        fail_msg("%s=%s, expected %s, in:\n%s", key, v ? v : "(none)", want, out);
    free(v);
}

const char *es_python(void)
{
    static char path[700];
    if (path[0] == 0) {
        const char *b = getenv("ES_BUILD");
        snprintf(path, sizeof path, "%s/venv/bin/python", b ? b : "build");
    }
    return path;
}

const char *es_py_tools(void)
{
    static char path[700];
    if (path[0] == 0) {
        const char *b = getenv("ES_BUILD");
        snprintf(path, sizeof path, "%s/../Tests/py", b ? b : "build");
    }
    return path;
}

pid_t es_spawn_server(uint16_t *port, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    const char *b = getenv("ES_BUILD");
    char dir[600], log[700];
    snprintf(dir, sizeof dir, "%s/test-tmp", b ? b : "build");
    mkdir(dir, 0755);
    snprintf(log, sizeof log, "%s/server-XXXXXX", dir);
    int fd = mkstemp(log);
    if (fd < 0) abort();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        setpgid(0, 0);
        char full[2100];
        snprintf(full, sizeof full, "exec %s", cmd);
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    close(fd);
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(log, "r");
        char line[256];
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "port=", 5) == 0) {
                *port = (uint16_t)atoi(line + 5);
                fclose(f);
                unlink(log);
                return pid;
            }
        }
        if (f != NULL) fclose(f);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) break;
        usleep(50 * 1000);
    }
    char *out = NULL;
    FILE *f = fopen(log, "r");
    if (f != NULL) {
        size_t cap = 4096, n = fread(out = calloc(1, cap), 1, cap - 1, f);
        (void)n;
        fclose(f);
    }
    fprintf(stderr, "harness: %s did not report its port:\n%s\n", cmd, out ? out : "");
    free(out);
    es_stop_server(pid);
    abort();
}

void es_stop_server(pid_t pid)
{
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 60; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return;
        usleep(50 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}
