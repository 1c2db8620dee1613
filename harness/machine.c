/* machine.c — the description of where and how a result was made, as one
 * JSON object. Anything that cannot be found is an empty string (or null
 * for numbers/booleans), never a guess. */
#define _GNU_SOURCE
#include "measure.h"
#include "dcb.h"

#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<papi.h>)
#include <papi.h>
#define DCBH_HAVE_PAPI 1
#endif
#if __has_include(<lua.h>)
#include <lua.h>
#endif
#endif

/* ---------------------------------------------------- growable JSON buffer */
typedef struct jbuf {
    char *s;
    size_t n, cap;
    int oom;
    int first;      /* no comma before the next member */
} jbuf;

static void jb_put(jbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void jb_raw(jbuf *b, const char *s) { jb_put(b, s, strlen(s)); }

static void jb_fmt(jbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) jb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string literal. Bytes >= 0x80 pass through (UTF-8 assumed). */
static void jb_strlit(jbuf *b, const char *s) {
    jb_raw(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': jb_raw(b, "\\\""); break;
        case '\\': jb_raw(b, "\\\\"); break;
        case '\n': jb_raw(b, "\\n"); break;
        case '\r': jb_raw(b, "\\r"); break;
        case '\t': jb_raw(b, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) jb_fmt(b, "\\u%04x", *p);
            else jb_put(b, (const char *)p, 1);
        }
    }
    jb_raw(b, "\"");
}

static void jb_key(jbuf *b, const char *k) {
    if (!b->first) jb_raw(b, ", ");
    b->first = 0;
    jb_strlit(b, k);
    jb_raw(b, ": ");
}

static void jb_str(jbuf *b, const char *k, const char *v) {
    jb_key(b, k);
    jb_strlit(b, v);
}

static void jb_open(jbuf *b, const char *k, const char *brace) {
    if (k) jb_key(b, k);
    jb_raw(b, brace);
    b->first = 1;
}

static void jb_close(jbuf *b, const char *brace) {
    jb_raw(b, brace);
    b->first = 0;
}

/* ------------------------------------------------------------------ facts */
static void chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
}

/* The value of the first "key\t: value" line of /proc/cpuinfo; "" if none. */
static void cpuinfo_field(const char *key, char *out, size_t len) {
    out[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    size_t cap = 0;
    char *line = NULL;
    size_t kl = strlen(key);
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, key, kl) != 0 || (line[kl] != ' ' && line[kl] != '\t' && line[kl] != ':'))
            continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        colon++;
        while (*colon == ' ') colon++;
        snprintf(out, len, "%s", colon);
        chomp(out);
        break;
    }
    free(line);
    fclose(f);
}

static int has_flag(const char *flags, const char *want) {
    size_t n = strlen(want);
    for (const char *p = flags; (p = strstr(p, want)) != NULL; p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

/* First line of a command's output (stderr discarded); -1 if it failed. */
static int run_line(const char *cmd, char *out, size_t len) {
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int got = fgets(out, (int)len, p) != NULL;
    char drain[256];
    while (fgets(drain, sizeof drain, p)) {}
    int st = pclose(p);
    chomp(out);
    if (st != 0) {
        out[0] = 0;
        return -1;
    }
    return got ? 1 : 0;
}

/* The command line as a shell would need it: arguments with anything but
 * [A-Za-z0-9_./=:,+-] go in single quotes. */
static void jb_command_line(jbuf *b, int argc, char **argv) {
    jbuf t = {0};
    t.first = 1;
    for (int i = 0; i < argc && argv && argv[i]; i++) {
        const char *a = argv[i];
        if (i) jb_raw(&t, " ");
        int plain = *a != 0;
        for (const char *p = a; *p; p++)
            if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=:,+-@%",
                        *p))
                plain = 0;
        if (plain) {
            jb_raw(&t, a);
            continue;
        }
        jb_raw(&t, "'");
        for (const char *p = a; *p; p++) {
            if (*p == '\'') jb_raw(&t, "'\\''");
            else jb_put(&t, p, 1);
        }
        jb_raw(&t, "'");
    }
    jb_str(b, "command_line", t.s ? t.s : "");
    free(t.s);
    jb_open(b, "argv", "[");
    for (int i = 0; i < argc && argv && argv[i]; i++) {
        if (i) jb_raw(b, ", ");
        jb_strlit(b, argv[i]);
    }
    jb_close(b, "]");
}

char *dcbh_machine_json(int argc, char **argv) {
    jbuf b = {0};
    char buf[1024];
    jb_open(&b, NULL, "{");

    cpuinfo_field("model name", buf, sizeof buf);
    jb_str(&b, "cpu_model", buf);
    char *flags = malloc(8192);
    if (flags) cpuinfo_field("flags", flags, 8192);
    static const char *const interest[] = {
        "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512dq", "avx512cd",
        "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
        "amx_bf16", "amx_int8"};
    jb_open(&b, "isa_flags", "[");
    int nf = 0;
    for (size_t i = 0; flags && i < sizeof interest / sizeof interest[0]; i++) {
        if (!has_flag(flags, interest[i])) continue;
        if (nf++) jb_raw(&b, ", ");
        jb_strlit(&b, interest[i]);
    }
    jb_close(&b, "]");
    free(flags);

    jb_key(&b, "logical_cores");
    jb_fmt(&b, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    jb_key(&b, "omp_max_threads");
    jb_fmt(&b, "%d", omp_get_max_threads());
    struct sysinfo si;
    jb_key(&b, "memory_bytes");
    if (sysinfo(&si) == 0) jb_fmt(&b, "%llu", (unsigned long long)si.totalram * si.mem_unit);
    else jb_raw(&b, "null");
    struct utsname un;
    jb_str(&b, "kernel", uname(&un) == 0 ? un.release : "");

#if defined(__clang__)
    jb_str(&b, "compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
    jb_str(&b, "compiler", "gcc " __VERSION__);
#else
    jb_str(&b, "compiler", "");
#endif
    jb_str(&b, "build_flags", dcb_build_flags());
    /* the micro-kernels' instruction set in this process, and what the CPU
     * runs (DCB_ISA forces a narrower one) */
    jb_str(&b, "isa", dcb_isa());
    jb_str(&b, "isa_available", dcb_isa_available());
    jb_str(&b, "isa_forced", getenv("DCB_ISA") ? getenv("DCB_ISA") : "");
    jb_key(&b, "default_threads"); /* --threads */
    jb_fmt(&b, "%d", dcb_default_threads());
    /* OpenMP's wait at barriers (coretype.h): dcbench's GOMP_SPINCOUNT, or
     * what the environment set */
    {
        char w[160];
        const char *sc = getenv("GOMP_SPINCOUNT"), *wp = getenv("OMP_WAIT_POLICY");
        snprintf(w, sizeof w, "%s%s%s%s%s", sc ? "GOMP_SPINCOUNT=" : "", sc ? sc : "", sc && wp ? " " : "",
                 wp ? "OMP_WAIT_POLICY=" : "", wp ? wp : "");
        jb_str(&b, "omp_wait", w);
        jb_str(&b, "omp_wait_set_by", getenv("DCB_AUTO_SPINCOUNT") ? "dcbench" : sc || wp ? "environment" : "");
        jb_str(&b, "omp_wait_reason", getenv("DCB_AUTO_SPINCOUNT") && getenv("DCB_WAIT_REASON") ? getenv("DCB_WAIT_REASON") : "");
    }

    jb_str(&b, "blas", dcb_blas_info());
    jb_str(&b, "blas_name", dcb_blas_name());
    jb_str(&b, "blas_core", dcb_blas_core());
    /* coretype.h re-executes without OPENBLAS_CORETYPE and keeps its value in
     * DCB_FORCED_CORETYPE; with DCB_KEEP_CORETYPE the override is in force. */
    const char *forced = getenv("DCB_FORCED_CORETYPE");
    const char *in_force = getenv("OPENBLAS_CORETYPE");
    const char *autoc = getenv("DCB_AUTO_CORETYPE");
    const int chosen = in_force && autoc && !strcmp(in_force, autoc);   /* coretype.h's own choice */
    jb_str(&b, "forced_coretype", forced ? forced : in_force && !chosen ? in_force : "");
    jb_key(&b, "forced_coretype_in_effect");
    jb_raw(&b, in_force && !chosen ? "true" : "false");
    jb_str(&b, "auto_coretype", chosen ? autoc : "");

    jb_open(&b, "versions", "{");
    jb_str(&b, "libdcb", DCB_VERSION);
#ifdef LUA_RELEASE
    jb_str(&b, "lua", LUA_RELEASE);
#else
    jb_str(&b, "lua", "");
#endif
    jb_str(&b, "google_benchmark", dcbh_gbench_version());
#ifdef DCBH_HAVE_PAPI
    snprintf(buf, sizeof buf, "%d.%d.%d.%d", PAPI_VERSION_MAJOR(PAPI_VERSION),
             PAPI_VERSION_MINOR(PAPI_VERSION), PAPI_VERSION_REVISION(PAPI_VERSION),
             PAPI_VERSION_INCREMENT(PAPI_VERSION));
    jb_str(&b, "papi", buf);
#else
    jb_str(&b, "papi", "");
#endif
    jb_close(&b, "}");

    /* The commit of the repository the program runs in (the project's, when
     * run from its checkout as the Makefile and sweeps do). */
    char commit[128];
    int in_repo = run_line("git rev-parse HEAD 2>/dev/null", commit, sizeof commit) > 0;
    jb_str(&b, "git_commit", in_repo ? commit : "");
    jb_key(&b, "git_dirty");
    if (in_repo) {
        int r = run_line("git status --porcelain --untracked-files=no 2>/dev/null", buf, sizeof buf);
        jb_raw(&b, r < 0 ? "null" : r > 0 ? "true" : "false");
    } else {
        jb_raw(&b, "null");
    }

    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    jb_str(&b, "date_utc", buf);
    if (gethostname(buf, sizeof buf) != 0) buf[0] = 0;
    buf[sizeof buf - 1] = 0;
    jb_str(&b, "hostname", buf);
    jb_command_line(&b, argc, argv);
    jb_close(&b, "}");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
