/*
 * envoy-swift.yaml -> es_config_t.
 *
 * The file is loaded whole with libyaml's document API, then walked against a fixed schema.
 * Every error names the file, the 1-based line and the key path (listeners[0].routes[1].cluster),
 * because that one line is all an operator sees when the proxy refuses to start.
 *
 * Anchors and aliases are resolved (libyaml shares the aliased node). Since an alias may point
 * at its own ancestor or be repeated exponentially ("billion laughs"), every walk is bounded:
 * plugin_config by depth, everything by a budget of node visits.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "net/tls.h"
#include "obs/access_format.h"

#define MAX_FILE_SIZE  (16u << 20)
#define MAX_VISITS     1000000u      /* node visits, aliases counted each time they are used */
#define MAX_JSON_DEPTH 64
#define MAX_JSON_SIZE  (16u << 20)

/* A route's `cluster:` waits here until every cluster is known (they may come later in the file). */
typedef struct {
    size_t listener, route;
    const yaml_node_t *key, *value;
} pending_t;

typedef struct {
    es_config_t *cfg;
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t errlen;
    char path[512];            /* key path of what is being read, for messages */
    size_t pathlen;
    char got[128];             /* scratch for describe() */
    size_t visits;
    pending_t *pending;
    size_t npending, cappending;
} parser_t;

/* One key of a schema mapping: its name from the table, and its nodes when present. */
typedef struct {
    const char *name;
    const yaml_node_t *key;
    const yaml_node_t *value;
} field_t;

enum { OPTIONAL = 0, REQUIRED = 1 };

/* ---- messages ---------------------------------------------------------------------------- */

static unsigned long line_of(const yaml_node_t *n)
{
    return n ? (unsigned long)n->start_mark.line + 1 : 1;
}

static int fail(parser_t *p, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(parser_t *p, const yaml_node_t *at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->err && p->errlen) {
        if (p->pathlen)
            snprintf(p->err, p->errlen, "%s:%lu: %s: %s", p->file, line_of(at), p->path, msg);
        else
            snprintf(p->err, p->errlen, "%s:%lu: %s", p->file, line_of(at), msg);
    }
    return -1;
}

static int oom(parser_t *p)
{
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "%s: out of memory", p->file);
    return -1;
}

static const char *text_of(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = text_of(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Copies at most `max` bytes of s into out, keeping the message on one printable line. */
static size_t put_printable(char *out, size_t cap, const char *s, size_t len, size_t max, bool escape_quote)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < max && o + 3 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (escape_quote && (c == '"' || c == '\\')) out[o++] = '\\';
        out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (len > max && o + 4 < cap) { memcpy(out + o, "...", 3); o += 3; }
    out[o] = 0;
    return o;
}

/* What a node is, for "got ...": a mapping, a list, null, or the quoted scalar. */
static const char *describe(parser_t *p, const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (is_null(n)) return "null";
    p->got[0] = '"';
    size_t o = 1 + put_printable(p->got + 1, sizeof p->got - 2, text_of(n), n->data.scalar.length, 60, true);
    p->got[o] = '"';
    p->got[o + 1] = 0;
    return p->got;
}

/* ---- key path ---------------------------------------------------------------------------- */

static size_t path_key(parser_t *p, const char *key, size_t len)
{
    size_t mark = p->pathlen;
    size_t cap = sizeof p->path;
    if (p->pathlen && p->pathlen + 1 < cap) p->path[p->pathlen++] = '.';
    p->pathlen += put_printable(p->path + p->pathlen, cap - p->pathlen, key, len, 64, false);
    return mark;
}

static size_t path_index(parser_t *p, size_t i)
{
    size_t mark = p->pathlen;
    int n = snprintf(p->path + p->pathlen, sizeof p->path - p->pathlen, "[%zu]", i);
    if (n > 0) p->pathlen += (size_t)n < sizeof p->path - p->pathlen ? (size_t)n : 0;
    p->path[p->pathlen] = 0;
    return mark;
}

static void path_restore(parser_t *p, size_t mark)
{
    p->pathlen = mark;
    p->path[mark] = 0;
}

static size_t enter(parser_t *p, const field_t *f)
{
    return path_key(p, f->name, strlen(f->name));
}

static int visit(parser_t *p, const yaml_node_t *n)
{
    if (++p->visits > MAX_VISITS)
        return fail(p, n, "too many nodes once aliases are expanded (limit %u)", MAX_VISITS);
    return 0;
}

/* ---- the "expect keys" helper ------------------------------------------------------------ */

static const yaml_node_t *node_at(parser_t *p, int index)
{
    return yaml_document_get_node(p->doc, index);
}

/*
 * Reads a mapping against a NULL-terminated table of allowed keys: unknown and duplicate keys
 * are errors; out[i] gets keys[i]'s nodes. `at` is where a type error points (the key line).
 */
static int read_fields(parser_t *p, const yaml_node_t *at, const yaml_node_t *map,
                       const char *const keys[], field_t out[])
{
    size_t n = 0;
    for (; keys[n]; n++) out[n] = (field_t){ .name = keys[n] };
    if (map->type != YAML_MAPPING_NODE) return fail(p, at, "expected a mapping, got %s", describe(p, map));
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = node_at(p, pair->key), *v = node_at(p, pair->value);
        if (visit(p, k)) return -1;
        if (k->type != YAML_SCALAR_NODE) return fail(p, k, "expected a string key, got %s", describe(p, k));
        size_t i = 0;
        while (i < n && (strlen(keys[i]) != k->data.scalar.length || strcmp(keys[i], text_of(k)) != 0)) i++;
        size_t mark = path_key(p, text_of(k), k->data.scalar.length);
        if (i == n) {
            char expected[256] = "";
            for (size_t j = 0; j < n; j++) {
                size_t used = strlen(expected);
                snprintf(expected + used, sizeof expected - used, "%s%s", j ? ", " : "", keys[j]);
            }
            return fail(p, k, "unknown key (expected one of: %s)", expected);
        }
        if (out[i].key) return fail(p, k, "duplicate key (first at line %lu)", line_of(out[i].key));
        path_restore(p, mark);
        out[i].key = k;
        out[i].value = v;
    }
    return 0;
}

/* Present with a non-null value: an explicit `key:` with nothing after it counts as absent. */
static bool has(const field_t *f)
{
    return f->key && !is_null(f->value);
}

/* 1: go on and read the value; 0: absent and optional; -1: absent and required (reported). */
static int wanted(parser_t *p, const yaml_node_t *map, const field_t *f, int required)
{
    if (has(f)) return 1;
    if (!required) return 0;
    if (f->key) return 1;     /* present but null: the type check says "got null" */
    return fail(p, map, "missing required key \"%s\"", f->name);
}

/* ---- scalars ----------------------------------------------------------------------------- */

static char *memdup0(const void *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

static int check_string(parser_t *p, const yaml_node_t *at, const yaml_node_t *v, bool nonempty)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v)) return fail(p, at, "expected a string, got %s", describe(p, v));
    if (nonempty && v->data.scalar.length == 0) return fail(p, at, "must not be empty");
    return 0;
}

/* Names, addresses and paths: non-empty, and no NUL since they are used as C strings. */
static int take_string(parser_t *p, const yaml_node_t *map, const field_t *f, int required, char **out)
{
    int w = wanted(p, map, f, required);
    if (w <= 0) return w;
    size_t mark = enter(p, f);
    if (check_string(p, f->key, f->value, true)) return -1;
    if (memchr(text_of(f->value), 0, f->value->data.scalar.length))
        return fail(p, f->key, "must not contain a NUL character");
    if (!(*out = memdup0(text_of(f->value), f->value->data.scalar.length))) return oom(p);
    path_restore(p, mark);
    return 0;
}

/* A plain decimal integer ("8080", "+1", "-3"), quoted or not. */
static bool parse_long(const yaml_node_t *v, long *out)
{
    if (v->type != YAML_SCALAR_NODE) return false;
    const char *s = text_of(v);
    bool neg = *s == '-';
    if (*s == '-' || *s == '+') s++;
    long n = 0;
    size_t digits = 0;
    for (; isdigit((unsigned char)*s); s++, digits++) {
        if (digits == 18) return false;
        n = n * 10 + (*s - '0');
    }
    if (!digits || *s) return false;
    *out = neg ? -n : n;
    return true;
}

static int take_int(parser_t *p, const yaml_node_t *map, const field_t *f, int required,
                    long min, long max, long *out)
{
    int w = wanted(p, map, f, required);
    if (w <= 0) return w;
    size_t mark = enter(p, f);
    long n;
    if (!parse_long(f->value, &n) || n < min || n > max)
        return fail(p, f->key, "expected an integer %ld-%ld, got %s", min, max, describe(p, f->value));
    *out = n;
    path_restore(p, mark);
    return 0;
}

enum { NONZERO = 0, ZERO_IS_OFF = 1 };

/* A duration; with ZERO_IS_OFF, "0" (or "0s") turns the timer off and is stored as 0. */
static int take_timeout(parser_t *p, const yaml_node_t *map, const field_t *f, int zero, uint64_t *ms)
{
    if (wanted(p, map, f, OPTIONAL) <= 0) return 0;
    size_t mark = enter(p, f);
    uint64_t v;
    if (f->value->type != YAML_SCALAR_NODE || es_config_parse_duration(text_of(f->value), &v) != 0)
        return fail(p, f->key, "expected a duration like \"1s\" or \"250ms\", got %s", describe(p, f->value));
    if (v == 0 && zero != ZERO_IS_OFF) return fail(p, f->key, "must be greater than 0, got %s", describe(p, f->value));
    *ms = v;
    path_restore(p, mark);
    return 0;
}

static int take_duration(parser_t *p, const yaml_node_t *map, const field_t *f, uint64_t *ms)
{
    return take_timeout(p, map, f, NONZERO, ms);
}

static int take_size(parser_t *p, const yaml_node_t *map, const field_t *f, uint64_t min, uint64_t max,
                     uint64_t *bytes)
{
    if (wanted(p, map, f, OPTIONAL) <= 0) return 0;
    size_t mark = enter(p, f);
    uint64_t n;
    if (f->value->type != YAML_SCALAR_NODE || es_config_parse_size(text_of(f->value), &n) != 0)
        return fail(p, f->key, "expected a size like \"65536\", \"64KiB\" or \"1MiB\", got %s", describe(p, f->value));
    if (n < min || n > max)
        return fail(p, f->key, "must be between %llu and %llu bytes, got %s", (unsigned long long)min,
                    (unsigned long long)max, describe(p, f->value));
    *bytes = n;
    path_restore(p, mark);
    return 0;
}

/* The sequence under f, or NULL when optional and absent. */
static int take_list(parser_t *p, const yaml_node_t *map, const field_t *f, int required,
                     bool nonempty, const yaml_node_t **out)
{
    *out = NULL;
    int w = wanted(p, map, f, required);
    if (w <= 0) return w;
    size_t mark = enter(p, f);
    if (f->value->type != YAML_SEQUENCE_NODE)
        return fail(p, f->key, "expected a list, got %s", describe(p, f->value));
    if (nonempty && f->value->data.sequence.items.top == f->value->data.sequence.items.start)
        return fail(p, f->key, "expected a non-empty list");
    path_restore(p, mark);
    *out = f->value;
    return 0;
}

static size_t list_len(const yaml_node_t *seq)
{
    return seq ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start) : 0;
}

static const yaml_node_t *list_item(parser_t *p, const yaml_node_t *seq, size_t i)
{
    return node_at(p, seq->data.sequence.items.start[i]);
}

/* ---- addresses --------------------------------------------------------------------------- */

/*
 * "localhost" is 127.0.0.1 on purpose: /etc/hosts may list ::1 first, and the upstreams and
 * tests bind 127.0.0.1. Listeners take literals only (no DNS at bind time); endpoints may be
 * host names, resolved once at load.
 */
static int resolve(parser_t *p, const field_t *f, const char *address, uint16_t port, bool literal_only,
                   struct sockaddr_storage *ss, socklen_t *sslen)
{
    size_t mark = enter(p, f);
    char host[256];
    size_t len = strlen(address);
    if (len >= sizeof host) return fail(p, f->key, "cannot resolve %s: too long", describe(p, f->value));
    if (len > 2 && address[0] == '[' && address[len - 1] == ']') {   /* "[::1]" as in URLs */
        memcpy(host, address + 1, len - 2);
        host[len - 2] = 0;
    } else {
        memcpy(host, address, len + 1);
    }
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");

    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | (literal_only ? AI_NUMERICHOST : 0) };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc == EAI_MEMORY) return oom(p);
    if (rc != 0 || !res || res->ai_addrlen > sizeof *ss) {
        if (res) freeaddrinfo(res);
        if (literal_only)
            return fail(p, f->key, "cannot resolve %s: a listener address must be an IPv4 or IPv6 literal or \"localhost\"",
                        describe(p, f->value));
        return fail(p, f->key, "cannot resolve %s: %s", describe(p, f->value), gai_strerror(rc));
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    path_restore(p, mark);
    return 0;
}

/* ---- plugin_config -> JSON --------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
} buf_t;

static int put(parser_t *p, const yaml_node_t *at, buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        if (b->len + n + 1 > MAX_JSON_SIZE)
            return fail(p, at, "larger than %u bytes once converted to JSON", MAX_JSON_SIZE);
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *s2 = realloc(b->s, cap);
        if (!s2) return oom(p);
        b->s = s2;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

static int put_json_string(parser_t *p, const yaml_node_t *at, buf_t *b, const char *s, size_t len)
{
    if (put(p, at, b, "\"", 1)) return -1;
    size_t run = 0;   /* bytes that need no escaping, copied in one go */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                e = esc;
            }
        }
        if (!e) continue;
        if (put(p, at, b, s + run, i - run) || put(p, at, b, e, strlen(e))) return -1;
        run = i + 1;
    }
    return put(p, at, b, s + run, len - run) || put(p, at, b, "\"", 1);
}

static bool all_digits(const char *s, size_t n, int base)
{
    for (size_t i = 0; i < n; i++)
        if (base == 16 ? !isxdigit((unsigned char)s[i]) : (s[i] < '0' || s[i] > (base == 8 ? '7' : '9')))
            return false;
    return n > 0;
}

/*
 * A plain scalar that is a YAML 1.2 core-schema number, rewritten as a JSON number into out
 * (which has room for len + 8 bytes): "+5" -> 5, "007" -> 7, ".5" -> 0.5, "0x1F" -> 31.
 * Returns false for anything else (including .inf and .nan, which JSON cannot carry).
 */
static bool json_number(const char *s, size_t len, char *out)
{
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        int base = s[1] == 'x' ? 16 : 8;
        if (!all_digits(s + 2, len - 2, base) || len - 2 > (base == 16 ? 15 : 20)) return false;
        sprintf(out, "%llu", strtoull(s + 2, NULL, base));
        return true;
    }
    size_t i = 0, o = 0;
    if (s[i] == '-' || s[i] == '+') {
        if (s[i] == '-') out[o++] = '-';
        i++;
    }
    size_t int_start = i;
    while (i < len && isdigit((unsigned char)s[i])) i++;
    size_t int_len = i - int_start;
    size_t frac_start = 0, frac_len = 0;
    bool dot = i < len && s[i] == '.';
    if (dot) {
        frac_start = ++i;
        while (i < len && isdigit((unsigned char)s[i])) i++;
        frac_len = i - frac_start;
    }
    if (!int_len && !frac_len) return false;
    size_t exp_start = i;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) i++;
        size_t d = i;
        while (i < len && isdigit((unsigned char)s[i])) i++;
        if (i == d) return false;
    }
    if (i != len) return false;

    /* JSON forbids leading zeros and a bare '.', so normalise the integer part. */
    while (int_len > 1 && s[int_start] == '0') {
        int_start++;
        int_len--;
    }
    if (int_len) {
        memcpy(out + o, s + int_start, int_len);
        o += int_len;
    } else {
        out[o++] = '0';
    }
    if (dot) {
        out[o++] = '.';
        if (frac_len) {
            memcpy(out + o, s + frac_start, frac_len);
            o += frac_len;
        } else {
            out[o++] = '0';
        }
    }
    if (exp_start < len) {
        out[o++] = 'e';
        memcpy(out + o, s + exp_start + 1, len - exp_start - 1);
        o += len - exp_start - 1;
    }
    out[o] = 0;
    return true;
}

static int scalar_to_json(parser_t *p, buf_t *b, const yaml_node_t *n)
{
    const char *s = text_of(n);
    size_t len = n->data.scalar.length;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (is_null(n)) return put(p, n, b, "null", 4);
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return put(p, n, b, "true", 4);
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return put(p, n, b, "false", 5);
        if (len < 64) {
            char num[64 + 8];
            if (json_number(s, len, num)) return put(p, n, b, num, strlen(num));
        }
    }
    return put_json_string(p, n, b, s, len);
}

static int cmp_key_nodes(const void *a, const void *b)
{
    const yaml_node_t *x = *(const yaml_node_t *const *)a, *y = *(const yaml_node_t *const *)b;
    size_t lx = x->data.scalar.length, ly = y->data.scalar.length;
    int c = memcmp(x->data.scalar.value, y->data.scalar.value, lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x->start_mark.index < y->start_mark.index ? -1 : x->start_mark.index > y->start_mark.index;
}

/* JSON objects with repeated keys mean different things to different decoders: refuse them. */
static int check_json_keys(parser_t *p, const yaml_node_t *map)
{
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n < 2) return 0;
    const yaml_node_t **keys = malloc(n * sizeof *keys);
    if (!keys) return oom(p);
    for (size_t i = 0; i < n; i++) keys[i] = node_at(p, map->data.mapping.pairs.start[i].key);
    qsort(keys, n, sizeof *keys, cmp_key_nodes);
    for (size_t i = 1; i < n; i++) {
        const yaml_node_t *a = keys[i - 1], *k = keys[i];
        if (a->data.scalar.length == k->data.scalar.length &&
            !memcmp(a->data.scalar.value, k->data.scalar.value, a->data.scalar.length)) {
            unsigned long first = line_of(a);
            free(keys);
            path_key(p, text_of(k), k->data.scalar.length);
            return fail(p, k, "duplicate key (first at line %lu)", first);
        }
    }
    free(keys);
    return 0;
}

static int to_json(parser_t *p, buf_t *b, const yaml_node_t *n, int depth)
{
    if (visit(p, n)) return -1;
    if (n->type == YAML_SCALAR_NODE) return scalar_to_json(p, b, n);
    if (depth >= MAX_JSON_DEPTH) return fail(p, n, "nested deeper than %d levels (an alias cycle?)", MAX_JSON_DEPTH);

    if (n->type == YAML_SEQUENCE_NODE) {
        if (put(p, n, b, "[", 1)) return -1;
        for (size_t i = 0; i < list_len(n); i++) {
            size_t mark = path_index(p, i);
            if ((i && put(p, n, b, ",", 1)) || to_json(p, b, list_item(p, n, i), depth + 1)) return -1;
            path_restore(p, mark);
        }
        return put(p, n, b, "]", 1);
    }

    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = node_at(p, pair->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail(p, k, "mapping keys must be strings to become JSON, got %s", describe(p, k));
    }
    if (check_json_keys(p, n) || put(p, n, b, "{", 1)) return -1;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = node_at(p, pair->key);
        size_t mark = path_key(p, text_of(k), k->data.scalar.length);
        if ((pair != n->data.mapping.pairs.start && put(p, n, b, ",", 1)) ||
            put_json_string(p, k, b, text_of(k), k->data.scalar.length) || put(p, k, b, ":", 1) ||
            to_json(p, b, node_at(p, pair->value), depth + 1))
            return -1;
        path_restore(p, mark);
    }
    return put(p, n, b, "}", 1);
}

/* ---- the schema -------------------------------------------------------------------------- */

/* crash_policy: { quarantine_after: N, window: DURATION, then: reject | bypass }: a filter that crashed
 * workers N times within the window is quarantined. */
static int parse_crash_policy(parser_t *p, es_filter_config_t *flt, const field_t *cf)
{
    static const char *const keys[] = { "quarantine_after", "window", "then", NULL };
    enum { AFTER, WINDOW, THEN, NKEYS };
    field_t f[NKEYS];
    if (!has(cf)) return 0;
    size_t mark = enter(p, cf);
    const yaml_node_t *node = cf->value;
    if (node->type != YAML_MAPPING_NODE) return fail(p, cf->key, "expected a mapping, got %s", describe(p, node));
    long n = flt->quarantine_after;
    char *then = NULL;
    if (read_fields(p, node, node, keys, f) || take_int(p, node, &f[AFTER], OPTIONAL, 1, 1000, &n) ||
        take_duration(p, node, &f[WINDOW], &flt->crash_window_ms) || take_string(p, node, &f[THEN], OPTIONAL, &then))
        return -1;
    flt->quarantine_after = (unsigned)n;
    if (then != NULL) {
        int ok = !strcmp(then, "reject") || !strcmp(then, "bypass");
        flt->quarantine_bypass = !strcmp(then, "bypass");
        free(then);
        if (!ok) {
            enter(p, &f[THEN]);
            return fail(p, f[THEN].key, "expected reject or bypass, got %s", describe(p, f[THEN].value));
        }
    }
    path_restore(p, mark);
    return 0;
}

static int parse_filter(parser_t *p, es_listener_config_t *l, size_t fi, const yaml_node_t *node)
{
    static const char *const keys[] = { "name", "so_path", "plugin_name", "plugin_config", "timeout",
                                        "timeout_status", "crash_policy", NULL };
    enum { NAME, SO_PATH, PLUGIN_NAME, PLUGIN_CONFIG, TIMEOUT, TIMEOUT_STATUS, CRASH_POLICY, NKEYS };
    field_t f[NKEYS];
    es_filter_config_t *flt = &l->filters[fi];
    char *so_path = NULL;
    long status = 504;

    flt->line = (int)line_of(node);
    flt->timeout_ms = 30000;
    flt->quarantine_after = 3;
    flt->crash_window_ms = 60000;
    if (read_fields(p, node, node, keys, f) || take_string(p, node, &f[NAME], REQUIRED, &flt->name))
        return -1;
    for (size_t i = 0; i < fi; i++)
        if (!strcmp(l->filters[i].name, flt->name)) {
            enter(p, &f[NAME]);
            return fail(p, f[NAME].key, "duplicate filter name \"%s\" (first at line %d)", flt->name, l->filters[i].line);
        }

    if (take_string(p, node, &f[SO_PATH], REQUIRED, &so_path)) return -1;
    if (so_path[0] == '/') {
        flt->so_path = so_path;
    } else {
        int n = asprintf(&flt->so_path, "%s/%s", p->cfg->dir, so_path);
        free(so_path);
        if (n < 0) {
            flt->so_path = NULL;
            return oom(p);
        }
    }
    if (take_string(p, node, &f[PLUGIN_NAME], REQUIRED, &flt->plugin_name) ||
        take_duration(p, node, &f[TIMEOUT], &flt->timeout_ms) ||
        take_int(p, node, &f[TIMEOUT_STATUS], OPTIONAL, 400, 599, &status) || parse_crash_policy(p, flt, &f[CRASH_POLICY]))
        return -1;
    flt->timeout_status = (int)status;

    if (!has(&f[PLUGIN_CONFIG])) {
        if (!(flt->plugin_config_json = strdup("null"))) return oom(p);
        return 0;
    }
    buf_t b = { 0 };
    size_t mark = enter(p, &f[PLUGIN_CONFIG]);
    if (to_json(p, &b, f[PLUGIN_CONFIG].value, 0)) {
        free(b.s);
        return -1;
    }
    path_restore(p, mark);
    flt->plugin_config_json = b.s;
    return 0;
}

/* match.headers: a mapping of header name to the exact value it must have. */
static int parse_header_matches(parser_t *p, es_route_config_t *r, const field_t *h)
{
    const yaml_node_t *map = h->value;
    size_t mark = enter(p, h);
    if (map->type != YAML_MAPPING_NODE) return fail(p, h->key, "expected a mapping, got %s", describe(p, map));
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (!(r->headers = calloc(n ? n : 1, sizeof *r->headers))) return oom(p);
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = node_at(p, pair->key), *v = node_at(p, pair->value);
        if (visit(p, k) || check_string(p, k, k, true)) return -1;
        size_t kmark = path_key(p, text_of(k), k->data.scalar.length);
        if (check_string(p, k, v, false)) return -1;
        es_header_match_t *m = &r->headers[r->nheaders];
        if (!(m->name = memdup0(text_of(k), k->data.scalar.length))) return oom(p);
        if (!(m->value = memdup0(text_of(v), v->data.scalar.length))) {
            free(m->name);
            return oom(p);
        }
        r->nheaders++;
        for (char *c = m->name; *c; c++) *c = (char)tolower((unsigned char)*c);
        path_restore(p, kmark);
    }
    path_restore(p, mark);
    return 0;
}

static int parse_match(parser_t *p, es_route_config_t *r, const field_t *m)
{
    static const char *const keys[] = { "prefix", "host", "headers", NULL };
    enum { PREFIX, HOST, HEADERS, NKEYS };
    field_t f[NKEYS];
    size_t mark = enter(p, m);
    if (read_fields(p, m->key, m->value, keys, f) || take_string(p, m->value, &f[PREFIX], REQUIRED, &r->prefix))
        return -1;
    if (r->prefix[0] != '/') {
        enter(p, &f[PREFIX]);
        return fail(p, f[PREFIX].key, "must start with '/', got %s", describe(p, f[PREFIX].value));
    }
    r->prefix_len = strlen(r->prefix);
    if (take_string(p, m->value, &f[HOST], OPTIONAL, &r->host)) return -1;
    for (char *c = r->host; c && *c; c++) *c = (char)tolower((unsigned char)*c);   /* Host compares case-insensitively */
    if (has(&f[HEADERS]) && parse_header_matches(p, r, &f[HEADERS])) return -1;
    path_restore(p, mark);
    return 0;
}

static int parse_direct_response(parser_t *p, es_route_config_t *r, const field_t *d)
{
    static const char *const keys[] = { "status", "body", NULL };
    enum { STATUS, BODY, NKEYS };
    field_t f[NKEYS];
    long status = 0;
    size_t mark = enter(p, d);
    if (read_fields(p, d->key, d->value, keys, f) || take_int(p, d->value, &f[STATUS], REQUIRED, 100, 599, &status))
        return -1;
    r->direct_status = (int)status;

    /* The body may be empty and may hold any bytes (a "\0" escape included), so keep its length. */
    const char *body = "";
    size_t len = 0;
    if (has(&f[BODY])) {
        enter(p, &f[BODY]);
        if (check_string(p, f[BODY].key, f[BODY].value, false)) return -1;
        body = text_of(f[BODY].value);
        len = f[BODY].value->data.scalar.length;
    }
    if (!(r->direct_body = memdup0(body, len))) return oom(p);
    r->direct_body_len = len;
    path_restore(p, mark);
    return 0;
}

/* upgrades: [websocket] or []: the protocols an HTTP/1.1 Upgrade may switch to on this route. */
static int parse_upgrades(parser_t *p, es_route_config_t *r, const field_t *u)
{
    const yaml_node_t *list;
    if (take_list(p, NULL, u, REQUIRED, false, &list)) return -1;
    size_t mark = enter(p, u);
    r->upgrade_websocket = 0;
    for (size_t i = 0; i < list_len(list); i++) {
        const yaml_node_t *v = list_item(p, list, i);
        size_t m = path_index(p, i);
        if (visit(p, v) || check_string(p, u->key, v, true)) return -1;
        if (strcmp(text_of(v), "websocket") != 0)
            return fail(p, v, "unknown upgrade %s (expected websocket, or an empty list for none)", describe(p, v));
        r->upgrade_websocket = 1;
        path_restore(p, m);
    }
    path_restore(p, mark);
    return 0;
}

/* A key whose value must be {} (or null): an action or option that takes no settings yet. */
static int take_empty(parser_t *p, const field_t *fl)
{
    const yaml_node_t *v = fl->value;
    size_t mark = enter(p, fl);
    if (!is_null(v) && (v->type != YAML_MAPPING_NODE || v->data.mapping.pairs.top != v->data.mapping.pairs.start))
        return fail(p, fl->key, "expected {} (it takes no options yet), got %s", describe(p, v));
    path_restore(p, mark);
    return 0;
}

/* Whether a filter_config value is the switch { disabled: true | false } rather than a plugin_config. */
static int disabled_switch(parser_t *p, const yaml_node_t *v, int *disabled)
{
    if (v->type != YAML_MAPPING_NODE || v->data.mapping.pairs.top - v->data.mapping.pairs.start != 1) return 0;
    const yaml_node_t *k = node_at(p, v->data.mapping.pairs.start->key);
    const yaml_node_t *b = node_at(p, v->data.mapping.pairs.start->value);
    if (k->type != YAML_SCALAR_NODE || strcmp(text_of(k), "disabled") != 0 || b->type != YAML_SCALAR_NODE) return 0;
    if (!strcmp(text_of(b), "true")) *disabled = 1;
    else if (!strcmp(text_of(b), "false")) *disabled = 0;
    else return 0;
    return 1;
}

/* filter_config: { <filter name>: <plugin_config> | { disabled: true } }: what a listener's filters do on this
 * route. The plugin_config replaces the filter's for requests on the route; the library checks it at startup. */
static int parse_route_filter_config(parser_t *p, const es_listener_config_t *l, es_route_config_t *r,
                                     const field_t *fc)
{
    const yaml_node_t *map = fc->value;
    size_t mark = enter(p, fc);
    if (map->type != YAML_MAPPING_NODE) return fail(p, fc->key, "expected a mapping, got %s", describe(p, map));
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (!(r->filter_configs = calloc(n ? n : 1, sizeof *r->filter_configs))) return oom(p);
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = node_at(p, pair->key), *v = node_at(p, pair->value);
        if (visit(p, k) || check_string(p, k, k, true)) return -1;
        size_t kmark = path_key(p, text_of(k), k->data.scalar.length);
        size_t fi = 0;
        while (fi < l->nfilters && strcmp(l->filters[fi].name, text_of(k)) != 0) fi++;
        if (fi == l->nfilters)
            return fail(p, k, "no filter named %s in this listener's http_filters", describe(p, k));
        for (size_t i = 0; i < r->nfilter_configs; i++)
            if (r->filter_configs[i].index == fi) return fail(p, k, "given twice");
        es_route_filter_config_t *rf = &r->filter_configs[r->nfilter_configs];
        rf->index = fi;
        rf->line = (int)line_of(k);
        if (!(rf->filter = strdup(l->filters[fi].name))) return oom(p);
        r->nfilter_configs++;
        int disabled = 0;
        if (disabled_switch(p, v, &disabled)) {
            rf->disabled = disabled;
            if (!disabled && !(rf->plugin_config_json = strdup(l->filters[fi].plugin_config_json))) return oom(p);
        } else {
            buf_t b = { 0 };
            if (to_json(p, &b, v, 0)) {
                free(b.s);
                return -1;
            }
            rf->plugin_config_json = b.s;
        }
        path_restore(p, kmark);
    }
    /* In http_filters order: the chain walks them so. */
    for (size_t i = 1; i < r->nfilter_configs; i++)
        for (size_t j = i; j > 0 && r->filter_configs[j - 1].index > r->filter_configs[j].index; j--) {
            es_route_filter_config_t t = r->filter_configs[j];
            r->filter_configs[j] = r->filter_configs[j - 1];
            r->filter_configs[j - 1] = t;
        }
    path_restore(p, mark);
    return 0;
}

static int parse_route(parser_t *p, size_t li, size_t ri, const yaml_node_t *node)
{
    static const char *const keys[] = { "match", "cluster", "direct_response", "stats", "upgrades", "connect", "name",
                                        "filter_config", "ready", NULL };
    enum { MATCH, CLUSTER, DIRECT, STATS, UPGRADES, CONNECT, NAME, FILTER_CONFIG, READY, NKEYS };
    field_t f[NKEYS];
    es_listener_config_t *l = &p->cfg->listeners[li];
    es_route_config_t *r = &l->routes[ri];

    r->line = (int)line_of(node);
    r->index = ri;
    r->upgrade_websocket = 1;
    if (read_fields(p, node, node, keys, f)) return -1;
    if (!f[MATCH].key) return fail(p, node, "missing required key \"match\"");
    if (take_string(p, node, &f[NAME], OPTIONAL, &r->name)) return -1;
    for (size_t i = 0; r->name && i < ri; i++)
        if (l->routes[i].name && !strcmp(l->routes[i].name, r->name)) {
            enter(p, &f[NAME]);
            return fail(p, f[NAME].key, "duplicate route name \"%s\" (first at line %d)", r->name, l->routes[i].line);
        }
    if (parse_match(p, r, &f[MATCH])) return -1;
    if (has(&f[CLUSTER]) + has(&f[DIRECT]) + (f[STATS].key != NULL) + (f[READY].key != NULL) != 1)
        return fail(p, node, "exactly one of \"cluster\", \"direct_response\", \"stats\" or \"ready\" is required");
    /* Tunnels go to a cluster: a route that answers by itself has nothing to tunnel to. */
    for (int k = UPGRADES; k <= CONNECT; k++)
        if (f[k].key && !has(&f[CLUSTER])) {
            enter(p, &f[k]);
            return fail(p, f[k].key, "only a route with a \"cluster\" can tunnel (%s)",
                        has(&f[DIRECT]) ? "this one has direct_response"
                        : f[STATS].key  ? "this one has stats"
                                        : "this one has ready");
        }
    if (f[FILTER_CONFIG].key && parse_route_filter_config(p, l, r, &f[FILTER_CONFIG])) return -1;
    if (f[READY].key) {
        /* ready: {} answers 200 while the proxy serves and 503 once it drains, for load balancers. */
        if (take_empty(p, &f[READY])) return -1;
        r->ready = 1;
        r->direct_status = 200;
        return 0;
    }
    if (f[UPGRADES].key && parse_upgrades(p, r, &f[UPGRADES])) return -1;
    if (f[CONNECT].key) {
        /* connect: {} tunnels CONNECT requests to the route's cluster. */
        const yaml_node_t *v = f[CONNECT].value;
        size_t mark = enter(p, &f[CONNECT]);
        if (!is_null(v) && (v->type != YAML_MAPPING_NODE || v->data.mapping.pairs.top != v->data.mapping.pairs.start))
            return fail(p, f[CONNECT].key, "expected {} (it takes no options yet), got %s", describe(p, v));
        path_restore(p, mark);
        r->connect = 1;
    }

    if (has(&f[DIRECT])) return parse_direct_response(p, r, &f[DIRECT]);
    if (f[STATS].key) {
        /* stats: {} answers with the counters, one "name value" line each. */
        const yaml_node_t *v = f[STATS].value;
        size_t mark = enter(p, &f[STATS]);
        if (!is_null(v) && (v->type != YAML_MAPPING_NODE || v->data.mapping.pairs.top != v->data.mapping.pairs.start))
            return fail(p, f[STATS].key, "expected {} (it takes no options yet), got %s", describe(p, v));
        path_restore(p, mark);
        r->stats = 1;
        r->direct_status = 200;
        return 0;
    }

    size_t mark = enter(p, &f[CLUSTER]);
    if (check_string(p, f[CLUSTER].key, f[CLUSTER].value, true)) return -1;
    path_restore(p, mark);
    if (p->npending == p->cappending) {
        size_t cap = p->cappending ? p->cappending * 2 : 16;
        pending_t *pd = realloc(p->pending, cap * sizeof *pd);
        if (!pd) return oom(p);
        p->pending = pd;
        p->cappending = cap;
    }
    p->pending[p->npending++] = (pending_t){ li, ri, f[CLUSTER].key, f[CLUSTER].value };
    return 0;
}

/* A file path, resolved against the config file's folder when relative. */
static int take_path(parser_t *p, const yaml_node_t *map, const field_t *f, int required, char **out)
{
    char *raw = NULL;
    int r = take_string(p, map, f, required, &raw);
    if (r != 0 || raw == NULL) return r;
    if (raw[0] == '/') {
        *out = raw;
        return 0;
    }
    int n = asprintf(out, "%s/%s", p->cfg->dir, raw);
    free(raw);
    if (n < 0) {
        *out = NULL;
        return oom(p);
    }
    return 0;
}

/* listeners[].tls: { cert: PATH, key: PATH, handshake_timeout: DURATION } */
static int parse_listener_tls(parser_t *p, es_listener_config_t *l, const field_t *tf)
{
    static const char *const keys[] = { "cert", "key", "handshake_timeout", NULL };
    enum { CERT, KEY, HANDSHAKE_TIMEOUT, NKEYS };
    field_t f[NKEYS];
    l->tls_handshake_timeout_ms = 10000;
    if (!has(tf)) return 0;
    size_t mark = enter(p, tf);
    const yaml_node_t *node = tf->value;
    if (node->type != YAML_MAPPING_NODE) return fail(p, tf->key, "expected a mapping, got %s", describe(p, node));
    if (read_fields(p, node, node, keys, f) || take_path(p, node, &f[CERT], REQUIRED, &l->tls_cert) ||
        take_path(p, node, &f[KEY], REQUIRED, &l->tls_key) ||
        take_duration(p, node, &f[HANDSHAKE_TIMEOUT], &l->tls_handshake_timeout_ms))
        return -1;
    char err[512];
    SSL_CTX *ctx;
    if (es_tls_server_ctx(&ctx, l->tls_cert, l->tls_key, err, sizeof err) != 0) {
        int about_key = !strncmp(err, "cannot read key", 15) || !strncmp(err, "cannot load the key", 19) ||
                        !strncmp(err, "the key", 7);
        const field_t *at = about_key ? &f[KEY] : &f[CERT];
        enter(p, at);
        return fail(p, at->key, "%s", err);
    }
    l->tls_ctx = ctx;
    path_restore(p, mark);
    return 0;
}

/* buffer_limits: { high: SIZE, low: SIZE, max_body: SIZE }; low must stay below high. */
static int parse_buffer_limits(parser_t *p, es_listener_config_t *l, const field_t *lf)
{
    static const char *const keys[] = { "high", "low", "max_body", NULL };
    enum { HIGH, LOW, MAX_BODY, NKEYS };
    field_t f[NKEYS];
    uint64_t high = 256 * 1024, low = 64 * 1024, max_body = 8u << 20;
    if (has(lf)) {
        size_t mark = enter(p, lf);
        const yaml_node_t *node = lf->value;
        if (node->type != YAML_MAPPING_NODE) return fail(p, lf->key, "expected a mapping, got %s", describe(p, node));
        if (read_fields(p, node, node, keys, f) || take_size(p, node, &f[HIGH], 4096, 1ull << 30, &high) ||
            take_size(p, node, &f[LOW], 0, 1ull << 30, &low) ||
            take_size(p, node, &f[MAX_BODY], 1024, 1ull << 30, &max_body))
            return -1;
        if (has(&f[HIGH]) && !has(&f[LOW]))
            low = high / 4;
        if (low >= high) {
            enter(p, has(&f[LOW]) ? &f[LOW] : &f[HIGH]);
            return fail(p, has(&f[LOW]) ? f[LOW].key : f[HIGH].key, "low (%llu) must be below high (%llu)",
                        (unsigned long long)low, (unsigned long long)high);
        }
        path_restore(p, mark);
    }
    l->buffer_high = (size_t)high;
    l->buffer_low = (size_t)low;
    l->max_body = (size_t)max_body;
    return 0;
}

/* http2: { max_concurrent_streams: N }: what the listener's HTTP/2 connections allow (SETTINGS). */
static int parse_listener_http2(parser_t *p, es_listener_config_t *l, const field_t *hf)
{
    static const char *const keys[] = { "max_concurrent_streams", NULL };
    enum { MAX_STREAMS, NKEYS };
    field_t f[NKEYS];
    long streams = 100;
    l->h2_max_concurrent_streams = 100;
    if (!has(hf)) return 0;
    size_t mark = enter(p, hf);
    const yaml_node_t *node = hf->value;
    if (node->type != YAML_MAPPING_NODE) return fail(p, hf->key, "expected a mapping, got %s", describe(p, node));
    if (read_fields(p, node, node, keys, f) || take_int(p, node, &f[MAX_STREAMS], OPTIONAL, 1, 10000, &streams))
        return -1;
    l->h2_max_concurrent_streams = (uint32_t)streams;
    path_restore(p, mark);
    return 0;
}

/* Envoy's default access-log format. */
static const char default_access_format[] =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% "
    "%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
    "\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" "
    "\"%UPSTREAM_HOST%\"\n";

/* json_format: { key: "format", ... }: values are format strings (a nested object is refused). */
static es_access_format_t *parse_json_format(parser_t *p, const field_t *jf)
{
    const yaml_node_t *map = jf->value;
    size_t mark = enter(p, jf);
    if (map->type != YAML_MAPPING_NODE) {
        fail(p, jf->key, "expected a mapping of keys to format strings, got %s", describe(p, map));
        return NULL;
    }
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n == 0) {
        fail(p, jf->key, "expected at least one key");
        return NULL;
    }
    if (check_json_keys(p, map)) return NULL;
    const char **keys = calloc(n, sizeof *keys), **formats = calloc(n, sizeof *formats);
    es_access_format_t *fmt = NULL;
    if (!keys || !formats) {
        oom(p);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *k = node_at(p, map->data.mapping.pairs.start[i].key);
        const yaml_node_t *v = node_at(p, map->data.mapping.pairs.start[i].value);
        if (visit(p, k) || visit(p, v)) goto out;
        if (k->type != YAML_SCALAR_NODE) {
            fail(p, k, "expected a string key, got %s", describe(p, k));
            goto out;
        }
        size_t m = path_key(p, text_of(k), k->data.scalar.length);
        if (v->type != YAML_SCALAR_NODE || is_null(v)) {
            fail(p, k, "expected a format string, got %s%s", describe(p, v),
                 v->type == YAML_SCALAR_NODE ? "" : " (nested objects are not supported)");
            goto out;
        }
        if (memchr(text_of(k), 0, k->data.scalar.length) || memchr(text_of(v), 0, v->data.scalar.length)) {
            fail(p, k, "must not contain a NUL character");
            goto out;
        }
        /* Compiled one by one first, so that an error names its key. */
        char err[256];
        es_access_format_t *one = es_access_format_json(&(const char *){ text_of(k) }, &(const char *){ text_of(v) },
                                                        1, err, sizeof err);
        if (!one) {
            fail(p, k, "%s", err);
            goto out;
        }
        es_access_format_free(one);
        path_restore(p, m);
        keys[i] = text_of(k);
        formats[i] = text_of(v);
    }
    char err[256];
    if (!(fmt = es_access_format_json(keys, formats, n, err, sizeof err))) {
        fail(p, jf->key, "%s", err);
        goto out;
    }
    path_restore(p, mark);
out:
    free(keys);
    free(formats);
    return fmt;
}

/* access_log: [ { path: FILE | "-", format: "..." | json_format: { key: "...", ... } } ]; the formats are
 * compiled here, so that a mistake in one is a startup error. */
static int parse_access_logs(parser_t *p, es_listener_config_t *l, const field_t *af)
{
    static const char *const keys[] = { "path", "format", "json_format", NULL };
    enum { PATH, FORMAT, JSON_FORMAT, NKEYS };
    const yaml_node_t *list;
    if (take_list(p, NULL, af, OPTIONAL, false, &list)) return -1;
    if (!list_len(list)) return 0;
    size_t mark = enter(p, af);
    if (!(l->access_logs = calloc(list_len(list), sizeof *l->access_logs))) return oom(p);
    for (size_t i = 0; i < list_len(list); i++) {
        size_t m = path_index(p, i);
        const yaml_node_t *node = list_item(p, list, i);
        es_access_log_config_t *a = &l->access_logs[i];
        field_t f[NKEYS];
        l->naccess_logs = i + 1;
        a->line = (int)line_of(node);
        if (read_fields(p, node, node, keys, f)) return -1;
        if (has(&f[PATH]) && f[PATH].value->type == YAML_SCALAR_NODE && !strcmp(text_of(f[PATH].value), "-")) {
            if (!(a->path = strdup("-"))) return oom(p);
        } else if (take_path(p, node, &f[PATH], REQUIRED, &a->path)) {
            return -1;
        }
        if (f[PATH].key) a->line = (int)line_of(f[PATH].key);
        if (has(&f[FORMAT]) && has(&f[JSON_FORMAT])) {
            enter(p, &f[JSON_FORMAT]);
            return fail(p, f[JSON_FORMAT].key, "give \"format\" or \"json_format\", not both");
        }
        if (has(&f[JSON_FORMAT])) {
            if (!(a->format = parse_json_format(p, &f[JSON_FORMAT]))) return -1;
        } else {
            const char *text = default_access_format;
            if (has(&f[FORMAT])) {
                size_t fm = enter(p, &f[FORMAT]);
                if (check_string(p, f[FORMAT].key, f[FORMAT].value, true)) return -1;
                if (memchr(text_of(f[FORMAT].value), 0, f[FORMAT].value->data.scalar.length))
                    return fail(p, f[FORMAT].key, "must not contain a NUL character");
                path_restore(p, fm);
                text = text_of(f[FORMAT].value);
            }
            char err[256];
            if (!(a->format = es_access_format_text(text, err, sizeof err))) {
                enter(p, &f[FORMAT]);
                return fail(p, f[FORMAT].key, "%s", err);
            }
        }
        path_restore(p, m);
    }
    path_restore(p, mark);
    return 0;
}

static int parse_listener(parser_t *p, size_t li, const yaml_node_t *node)
{
    static const char *const keys[] = { "name", "address", "port", "http_filters", "routes", "buffer_limits",
                                        "request_headers_timeout", "idle_timeout", "request_timeout",
                                        "delayed_close_timeout", "max_request_headers_kb", "tls", "http2",
                                        "tunnel_idle_timeout", "stream_idle_timeout", "access_log", NULL };
    enum { NAME, ADDRESS, PORT, FILTERS, ROUTES, LIMITS, HEADERS_TIMEOUT, IDLE_TIMEOUT, REQUEST_TIMEOUT,
           DELAYED_CLOSE, MAX_HEADERS_KB, TLS, HTTP2, TUNNEL_IDLE, STREAM_IDLE, ACCESS_LOG, NKEYS };
    field_t f[NKEYS];
    es_listener_config_t *l = &p->cfg->listeners[li];
    const yaml_node_t *filters, *routes;
    long port = 0, headers_kb = 60;

    l->line = (int)line_of(node);
    if (read_fields(p, node, node, keys, f) || take_string(p, node, &f[NAME], REQUIRED, &l->name)) return -1;
    for (size_t i = 0; i < li; i++)
        if (!strcmp(p->cfg->listeners[i].name, l->name)) {
            enter(p, &f[NAME]);
            return fail(p, f[NAME].key, "duplicate listener name \"%s\" (first at line %d)", l->name,
                        p->cfg->listeners[i].line);
        }
    if (take_string(p, node, &f[ADDRESS], REQUIRED, &l->address) ||
        take_int(p, node, &f[PORT], REQUIRED, 0, 65535, &port))
        return -1;
    l->port = (uint16_t)port;
    l->port_line = (int)line_of(f[PORT].key);
    if (resolve(p, &f[ADDRESS], l->address, l->port, true, &l->addr, &l->addrlen)) return -1;
    if (parse_buffer_limits(p, l, &f[LIMITS])) return -1;
    l->request_headers_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->request_timeout_ms = 0;
    l->delayed_close_timeout_ms = 1000;
    l->tunnel_idle_timeout_ms = 300000;
    l->stream_idle_timeout_ms = 300000;
    if (take_timeout(p, node, &f[HEADERS_TIMEOUT], NONZERO, &l->request_headers_timeout_ms) ||
        take_timeout(p, node, &f[IDLE_TIMEOUT], ZERO_IS_OFF, &l->idle_timeout_ms) ||
        take_timeout(p, node, &f[REQUEST_TIMEOUT], ZERO_IS_OFF, &l->request_timeout_ms) ||
        take_timeout(p, node, &f[DELAYED_CLOSE], NONZERO, &l->delayed_close_timeout_ms) ||
        take_timeout(p, node, &f[TUNNEL_IDLE], ZERO_IS_OFF, &l->tunnel_idle_timeout_ms) ||
        take_timeout(p, node, &f[STREAM_IDLE], ZERO_IS_OFF, &l->stream_idle_timeout_ms) ||
        take_int(p, node, &f[MAX_HEADERS_KB], OPTIONAL, 1, 1024, &headers_kb))
        return -1;
    l->max_request_headers = (uint32_t)headers_kb * 1024;
    if (parse_listener_tls(p, l, &f[TLS]) || parse_listener_http2(p, l, &f[HTTP2]) ||
        parse_access_logs(p, l, &f[ACCESS_LOG]))
        return -1;

    if (take_list(p, node, &f[FILTERS], OPTIONAL, false, &filters)) return -1;
    if (list_len(filters)) {
        size_t mark = enter(p, &f[FILTERS]);
        if (!(l->filters = calloc(list_len(filters), sizeof *l->filters))) return oom(p);
        l->nfilters = list_len(filters);
        for (size_t i = 0; i < l->nfilters; i++) {
            size_t m = path_index(p, i);
            if (parse_filter(p, l, i, list_item(p, filters, i))) return -1;
            path_restore(p, m);
        }
        path_restore(p, mark);
    }

    if (take_list(p, node, &f[ROUTES], REQUIRED, true, &routes)) return -1;
    size_t mark = enter(p, &f[ROUTES]);
    if (!(l->routes = calloc(list_len(routes), sizeof *l->routes))) return oom(p);
    l->nroutes = list_len(routes);
    for (size_t i = 0; i < l->nroutes; i++) {
        size_t m = path_index(p, i);
        if (parse_route(p, li, i, list_item(p, routes, i))) return -1;
        path_restore(p, m);
    }
    path_restore(p, mark);
    return 0;
}

static int parse_endpoint(parser_t *p, es_endpoint_config_t *e, const yaml_node_t *node)
{
    static const char *const keys[] = { "address", "port", NULL };
    enum { ADDRESS, PORT, NKEYS };
    field_t f[NKEYS];
    long port = 0;

    e->line = (int)line_of(node);
    if (read_fields(p, node, node, keys, f) || take_string(p, node, &f[ADDRESS], REQUIRED, &e->address) ||
        take_int(p, node, &f[PORT], REQUIRED, 1, 65535, &port))
        return -1;
    e->port = (uint16_t)port;
    /* "host:port" ("[v6]:port"), as the access log and filters name the upstream. */
    if (asprintf(&e->hostport, strchr(e->address, ':') ? "[%s]:%u" : "%s:%u", e->address, e->port) < 0) {
        e->hostport = NULL;
        return oom(p);
    }
    return resolve(p, &f[ADDRESS], e->address, e->port, false, &e->addr, &e->addrlen);
}

/* retries: { on_reset: N }: how often a request whose reused connection died before any response
 * byte is sent again on a new connection (idempotent requests with no body sent only). */
static int parse_retries(parser_t *p, es_cluster_config_t *c, const field_t *rf)
{
    static const char *const keys[] = { "on_reset", NULL };
    enum { ON_RESET, NKEYS };
    field_t f[NKEYS];
    if (!has(rf)) return 0;
    size_t mark = enter(p, rf);
    const yaml_node_t *node = rf->value;
    if (node->type != YAML_MAPPING_NODE) return fail(p, rf->key, "expected a mapping, got %s", describe(p, node));
    long n = c->retries_on_reset;
    if (read_fields(p, node, node, keys, f) || take_int(p, node, &f[ON_RESET], OPTIONAL, 0, 10, &n)) return -1;
    c->retries_on_reset = (unsigned)n;
    path_restore(p, mark);
    return 0;
}

/* clusters[].tls: { sni: NAME, ca: PATH, verify: BOOL } */
static int parse_cluster_tls(parser_t *p, es_cluster_config_t *c, const field_t *tf)
{
    static const char *const keys[] = { "sni", "ca", "verify", NULL };
    enum { SNI, CA, VERIFY, NKEYS };
    field_t f[NKEYS];
    c->tls_verify = 1;
    if (!has(tf)) return 0;
    size_t mark = enter(p, tf);
    const yaml_node_t *node = tf->value;
    if (node->type != YAML_MAPPING_NODE) return fail(p, tf->key, "expected a mapping, got %s", describe(p, node));
    if (read_fields(p, node, node, keys, f) || take_string(p, node, &f[SNI], OPTIONAL, &c->tls_sni) ||
        take_path(p, node, &f[CA], OPTIONAL, &c->tls_ca))
        return -1;
    if (has(&f[VERIFY])) {
        size_t m = enter(p, &f[VERIFY]);
        const char *v = f[VERIFY].value->type == YAML_SCALAR_NODE ? text_of(f[VERIFY].value) : "";
        if (!strcmp(v, "true"))
            c->tls_verify = 1;
        else if (!strcmp(v, "false"))
            c->tls_verify = 0;
        else
            return fail(p, f[VERIFY].key, "expected true or false, got %s", describe(p, f[VERIFY].value));
        path_restore(p, m);
    }
    if (!c->tls_verify && c->tls_ca != NULL) {
        enter(p, &f[CA]);
        return fail(p, f[CA].key, "a CA file with verify: false would be ignored; remove one of them");
    }
    char err[512];
    SSL_CTX *ctx;
    if (es_tls_client_ctx(&ctx, c->tls_ca, c->tls_verify, err, sizeof err) != 0) {
        enter(p, has(&f[CA]) ? &f[CA] : tf);
        return fail(p, has(&f[CA]) ? f[CA].key : tf->key, "%s", err);
    }
    c->tls_ctx = ctx;
    path_restore(p, mark);
    return 0;
}

static int parse_cluster(parser_t *p, size_t ci, const yaml_node_t *node)
{
    static const char *const keys[] = { "name", "endpoints", "connect_timeout", "idle_timeout", "retries", "tls",
                                        "http2", NULL };
    enum { NAME, ENDPOINTS, CONNECT_TIMEOUT, IDLE_TIMEOUT, RETRIES, TLS, HTTP2, NKEYS };
    field_t f[NKEYS];
    es_cluster_config_t *c = &p->cfg->clusters[ci];
    const yaml_node_t *endpoints;

    c->index = ci;
    c->line = (int)line_of(node);
    c->connect_timeout_ms = 1000;
    c->idle_timeout_ms = 4000;
    c->retries_on_reset = 1;
    if (read_fields(p, node, node, keys, f) || take_string(p, node, &f[NAME], REQUIRED, &c->name)) return -1;
    for (size_t i = 0; i < ci; i++)
        if (!strcmp(p->cfg->clusters[i].name, c->name)) {
            enter(p, &f[NAME]);
            return fail(p, f[NAME].key, "duplicate cluster name \"%s\" (first at line %d)", c->name,
                        p->cfg->clusters[i].line);
        }

    if (take_list(p, node, &f[ENDPOINTS], REQUIRED, true, &endpoints)) return -1;
    size_t mark = enter(p, &f[ENDPOINTS]);
    if (!(c->endpoints = calloc(list_len(endpoints), sizeof *c->endpoints))) return oom(p);
    c->nendpoints = list_len(endpoints);
    for (size_t i = 0; i < c->nendpoints; i++) {
        size_t m = path_index(p, i);
        if (parse_endpoint(p, &c->endpoints[i], list_item(p, endpoints, i))) return -1;
        path_restore(p, m);
    }
    path_restore(p, mark);
    if (take_duration(p, node, &f[CONNECT_TIMEOUT], &c->connect_timeout_ms) ||
        take_duration(p, node, &f[IDLE_TIMEOUT], &c->idle_timeout_ms))
        return -1;
    if (parse_retries(p, c, &f[RETRIES])) return -1;
    if (has(&f[HTTP2])) {
        size_t m = enter(p, &f[HTTP2]);
        const char *v = f[HTTP2].value->type == YAML_SCALAR_NODE ? text_of(f[HTTP2].value) : "";
        if (!strcmp(v, "true"))
            c->http2 = 1;
        else if (strcmp(v, "false") != 0)
            return fail(p, f[HTTP2].key, "expected true or false, got %s", describe(p, f[HTTP2].value));
        path_restore(p, m);
    }
    if (parse_cluster_tls(p, c, &f[TLS])) return -1;
    if (c->http2 && c->tls_ctx != NULL)
        es_tls_ctx_alpn_h2(c->tls_ctx); /* offer h2 alone: an upstream that cannot speak it fails the handshake's check */
    return 0;
}

/* Routes name clusters that may be defined anywhere in the file: link them once all are read. */
static int resolve_clusters(parser_t *p)
{
    es_config_t *cfg = p->cfg;
    for (size_t i = 0; i < p->npending; i++) {
        const pending_t *pd = &p->pending[i];
        const char *name = text_of(pd->value);
        es_route_config_t *r = &cfg->listeners[pd->listener].routes[pd->route];
        for (size_t c = 0; c < cfg->nclusters && !r->cluster; c++)
            if (!strcmp(cfg->clusters[c].name, name)) r->cluster = &cfg->clusters[c];
        if (r->cluster) continue;

        char known[200] = "";
        for (size_t c = 0; c < cfg->nclusters; c++) {
            size_t used = strlen(known);
            snprintf(known + used, sizeof known - used, "%s%s", c ? ", " : "", cfg->clusters[c].name);
        }
        snprintf(p->path, sizeof p->path, "listeners[%zu].routes[%zu].cluster", pd->listener, pd->route);
        p->pathlen = strlen(p->path);
        if (cfg->nclusters)
            return fail(p, pd->key, "unknown cluster %s (defined: %s)", describe(p, pd->value), known);
        return fail(p, pd->key, "unknown cluster %s (no clusters are defined)", describe(p, pd->value));
    }
    return 0;
}

static int parse_top(parser_t *p, const yaml_node_t *root)
{
    static const char *const keys[] = { "workers", "listeners", "clusters", "drain_timeout", NULL };
    enum { WORKERS, LISTENERS, CLUSTERS, DRAIN_TIMEOUT, NKEYS };
    field_t f[NKEYS];
    es_config_t *cfg = p->cfg;
    const yaml_node_t *listeners, *clusters;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long workers = cpus < 1 ? 1 : cpus > 256 ? 256 : cpus;

    if (root->type != YAML_MAPPING_NODE)
        return fail(p, root, "expected a mapping at the top level, got %s", describe(p, root));
    if (read_fields(p, root, root, keys, f) || take_int(p, root, &f[WORKERS], OPTIONAL, 1, 256, &workers) ||
        take_duration(p, root, &f[DRAIN_TIMEOUT], &cfg->drain_timeout_ms))
        return -1;
    cfg->workers = (unsigned)workers;

    /* Sections are read in file order so the first error reported is the first in the file. */
    bool clusters_first = f[CLUSTERS].key && f[LISTENERS].key &&
                          f[CLUSTERS].key->start_mark.index < f[LISTENERS].key->start_mark.index;
    for (int pass = 0; pass < 2; pass++) {
        if ((pass == 0) == clusters_first) {
            if (take_list(p, root, &f[CLUSTERS], OPTIONAL, false, &clusters)) return -1;
            if (!list_len(clusters)) continue;
            size_t mark = enter(p, &f[CLUSTERS]);
            if (!(cfg->clusters = calloc(list_len(clusters), sizeof *cfg->clusters))) return oom(p);
            cfg->nclusters = list_len(clusters);
            for (size_t i = 0; i < cfg->nclusters; i++) {
                size_t m = path_index(p, i);
                if (parse_cluster(p, i, list_item(p, clusters, i))) return -1;
                path_restore(p, m);
            }
            path_restore(p, mark);
        } else {
            if (take_list(p, root, &f[LISTENERS], REQUIRED, true, &listeners)) return -1;
            size_t mark = enter(p, &f[LISTENERS]);
            if (!(cfg->listeners = calloc(list_len(listeners), sizeof *cfg->listeners))) return oom(p);
            cfg->nlisteners = list_len(listeners);
            for (size_t i = 0; i < cfg->nlisteners; i++) {
                size_t m = path_index(p, i);
                if (parse_listener(p, i, list_item(p, listeners, i))) return -1;
                path_restore(p, m);
            }
            path_restore(p, mark);
        }
    }
    return resolve_clusters(p);
}

/* ---- loading ----------------------------------------------------------------------------- */

/* The whole file, so a directory or an oversized file is refused before libyaml sees it. */
static int read_file(const char *path, char **out, size_t *outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    struct stat st;
    int e = fstat(fd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (e) {
        close(fd);
        return e;
    }
    size_t len = 0, cap = 0;
    char *buf = NULL;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_FILE_SIZE) {
                free(buf);
                close(fd);
                return EFBIG;
            }
            cap = cap ? cap * 2 : 4096;
            char *b2 = realloc(buf, cap);
            if (!b2) {
                free(buf);
                close(fd);
                return ENOMEM;
            }
            buf = b2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            e = errno;
            free(buf);
            close(fd);
            return e;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    *out = buf;
    *outlen = len;
    return 0;
}

static int yaml_error(parser_t *p, const yaml_parser_t *yp, const char *text, size_t len)
{
    size_t line = yp->problem_mark.line;
    if (yp->error == YAML_READER_ERROR) {   /* reader errors carry an offset, not a mark */
        line = 0;
        for (size_t i = 0; i < yp->problem_offset && i < len; i++) line += text[i] == '\n';
    }
    const char *problem = yp->error == YAML_MEMORY_ERROR ? "out of memory" : yp->problem ? yp->problem : "parse error";
    if (p->err && p->errlen) {
        if (yp->context)
            snprintf(p->err, p->errlen, "%s:%zu: invalid YAML: %s (%s that starts at line %zu)", p->file, line + 1,
                     problem, yp->context, yp->context_mark.line + 1);
        else
            snprintf(p->err, p->errlen, "%s:%zu: invalid YAML: %s", p->file, line + 1, problem);
    }
    return -1;
}

static int set_paths(parser_t *p, const char *path)
{
    es_config_t *cfg = p->cfg;
    const char *slash = strrchr(path, '/');
    cfg->path = strdup(path);
    if (!slash) cfg->dir = strdup(".");
    else cfg->dir = memdup0(path, slash == path ? 1 : (size_t)(slash - path));   /* "/x.yaml" -> "/" */
    return cfg->path && cfg->dir ? 0 : oom(p);
}

int es_config_load(es_config_t *cfg, const char *path, char *err, size_t errlen)
{
    parser_t p = { .cfg = cfg, .file = path, .err = err, .errlen = errlen };
    memset(cfg, 0, sizeof *cfg);
    if (err && errlen) err[0] = 0;

    char *text = NULL;
    size_t len = 0;
    int e = read_file(path, &text, &len);
    if (e) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
        return -1;
    }

    yaml_parser_t yp;
    yaml_document_t doc, next;
    int rc = -1;
    if (!yaml_parser_initialize(&yp)) {
        free(text);
        return oom(&p);
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
    if (!yaml_parser_load(&yp, &doc)) {
        yaml_error(&p, &yp, text, len);
        goto out_parser;
    }
    p.doc = &doc;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        fail(&p, NULL, "expected a mapping at the top level");
        goto out_doc;
    }

    /* A second document would be silently ignored: say so instead (and report its syntax errors). */
    if (!yaml_parser_load(&yp, &next)) {
        yaml_error(&p, &yp, text, len);
        goto out_doc;
    }
    const yaml_node_t *extra = yaml_document_get_root_node(&next);
    if (extra) fail(&p, extra, "only one YAML document is allowed");
    yaml_document_delete(&next);
    if (extra) goto out_doc;

    cfg->workers = 1;
    cfg->drain_timeout_ms = 30000;
    rc = set_paths(&p, path) || parse_top(&p, root) ? -1 : 0;

out_doc:
    yaml_document_delete(&doc);
out_parser:
    yaml_parser_delete(&yp);
    free(text);
    free(p.pending);
    if (rc) es_config_dispose(cfg);
    return rc;
}

void es_config_dispose(es_config_t *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        es_listener_config_t *l = &cfg->listeners[i];
        for (size_t r = 0; r < l->nroutes; r++) {
            for (size_t k = 0; k < l->routes[r].nfilter_configs; k++) {
                free(l->routes[r].filter_configs[k].filter);
                free(l->routes[r].filter_configs[k].plugin_config_json);
            }
            free(l->routes[r].filter_configs);
            free(l->routes[r].name);
            free(l->routes[r].prefix);
            free(l->routes[r].host);
            free(l->routes[r].direct_body);
            for (size_t h = 0; h < l->routes[r].nheaders; h++) {
                free(l->routes[r].headers[h].name);
                free(l->routes[r].headers[h].value);
            }
            free(l->routes[r].headers);
        }
        for (size_t f = 0; f < l->nfilters; f++) {
            free(l->filters[f].name);
            free(l->filters[f].so_path);
            free(l->filters[f].plugin_name);
            free(l->filters[f].plugin_config_json);
        }
        free(l->routes);
        free(l->filters);
        free(l->name);
        free(l->address);
        free(l->tls_cert);
        free(l->tls_key);
        for (size_t a = 0; a < l->naccess_logs; a++) {
            free(l->access_logs[a].path);
            es_access_format_free(l->access_logs[a].format);
        }
        free(l->access_logs);
        es_tls_ctx_free(l->tls_ctx);
    }
    for (size_t i = 0; i < cfg->nclusters; i++) {
        es_cluster_config_t *c = &cfg->clusters[i];
        for (size_t e = 0; e < c->nendpoints; e++) {
            free(c->endpoints[e].address);
            free(c->endpoints[e].hostport);
        }
        free(c->endpoints);
        free(c->name);
        free(c->tls_sni);
        free(c->tls_ca);
        es_tls_ctx_free(c->tls_ctx);
    }
    free(cfg->listeners);
    free(cfg->clusters);
    free(cfg->path);
    free(cfg->dir);
    memset(cfg, 0, sizeof *cfg);
}

int es_config_parse_size(const char *s, uint64_t *bytes)
{
    uint64_t n = 0;
    size_t digits = 0;
    if (!s) return -1;
    for (; isdigit((unsigned char)*s); s++, digits++) {
        if (n > (UINT64_MAX - 9) / 10) return -1;
        n = n * 10 + (uint64_t)(*s - '0');
    }
    if (!digits) return -1;
    static const struct { const char *suffix; unsigned shift; } units[] = {
        { "", 0 }, { "B", 0 }, { "k", 10 }, { "K", 10 }, { "KB", 10 }, { "KiB", 10 },
        { "m", 20 }, { "M", 20 }, { "MB", 20 }, { "MiB", 20 }, { "g", 30 }, { "G", 30 }, { "GB", 30 }, { "GiB", 30 },
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].suffix) != 0) continue;
        if (n > (UINT64_MAX >> units[i].shift)) return -1;
        *bytes = n << units[i].shift;
        return 0;
    }
    return -1;
}

int es_config_parse_duration(const char *s, uint64_t *ms)
{
    /* Fixed-point by hand: strtod would accept "inf", hex floats and the locale's decimal point. */
    uint64_t whole = 0, frac = 0, frac_scale = 1;
    size_t digits = 0;
    if (!s) return -1;
    for (; isdigit((unsigned char)*s); s++, digits++) {
        if (whole > (UINT64_MAX - 9) / 10) return -1;
        whole = whole * 10 + (uint64_t)(*s - '0');
    }
    if (*s == '.') {
        s++;
        for (; isdigit((unsigned char)*s); s++, digits++)
            if (frac_scale < 1000000000u) {   /* digits past nanoseconds cannot matter */
                frac = frac * 10 + (uint64_t)(*s - '0');
                frac_scale *= 10;
            }
    }
    if (!digits) return -1;

    uint64_t unit;
    if (!strcmp(s, "ms")) unit = 1;
    else if (!strcmp(s, "s") || !*s) unit = 1000;
    else if (!strcmp(s, "m")) unit = 60 * 1000;
    else if (!strcmp(s, "h")) unit = 60 * 60 * 1000;
    else return -1;

    if (whole >= UINT64_MAX / unit) return -1;
    *ms = whole * unit + frac * unit / frac_scale;   /* sub-millisecond remainders truncate */
    return 0;
}
