/* The harness's measuring side (measure.h): the Google Benchmark timing shim,
 * the counter sources, calibration and the machine description. Timing
 * bounds are deliberately loose: the machines this runs on are shared.
 *
 * The counter source is chosen once per process, so each forced source
 * (DCB_COUNTERS=...) is checked in a fresh copy of this program, re-executed
 * with "--counters-child SOURCE". */
#include "testutil.h"

#include "measure.h"

#include <math.h>
#include <omp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Burns `s` seconds of this thread's CPU time (not wall time: a preempted
 * thread still burns the same amount, so counts are predictable). */
static void spin_cpu(double s) {
    double t0 = thread_cpu_s();
    volatile double x = 0;
    while (thread_cpu_s() - t0 < s)
        for (int i = 0; i < 1000; i++) x += 1.0;
}

static char g_self[4096];   /* this program, for the re-executed children */

/* ----------------------------------------------------------------- timing */
typedef struct spin_ctx {
    double seconds;
    int64_t calls;
    int64_t fail_at;        /* -1: never */
    int out_of_order;
} spin_ctx;

static int spin_body(void *p, int64_t it) {
    spin_ctx *c = p;
    if (it != c->calls) c->out_of_order = 1;
    c->calls++;
    if (it == c->fail_at) return 7;
    if (c->seconds > 0) {
        double t0 = dcbh_now();
        while (dcbh_now() - t0 < c->seconds) {}
    }
    return 0;
}

static void test_time_spin(void **state) {
    (void)state;
    spin_ctx c = {1e-3, 0, -1, 0};
    dcbh_time_opts o = {"spin_1ms", 5, 0.01, 1, NULL};
    dcbh_time_stats s;
    char err[256] = "";
    if (dcbh_time(spin_body, &c, &o, &s, err, sizeof err) != 0) fail_msg("dcbh_time: %s", err);
    assert_int_equal(s.repetitions, 5);
    assert_true(s.iterations >= 1);
    assert_true(s.median >= 0.5e-3 && s.median <= 50e-3);
    assert_true(s.min <= s.median && s.median <= s.max);
    assert_true(s.min <= s.mean && s.mean <= s.max);
    assert_true(s.stddev >= 0 && s.cv >= 0);
    for (int i = 0; i < 5; i++) assert_true(s.rep[i] >= s.min && s.rep[i] <= s.max && s.rep[i] > 0);
    for (int i = 5; i < DCBH_MAX_REPS; i++) assert_true(isnan(s.rep[i]));
    /* every iteration of every repetition (and Google Benchmark's own
     * estimation runs) saw the counter in order */
    assert_false(c.out_of_order);
    assert_true(c.calls >= 5 * s.iterations);
    assert_string_equal(dcbh_gbench_version(), "1.7.1");
}

/* The one clock and the one definition of quick mode's timing. */
static void test_clock_and_quick(void **state) {
    (void)state;
    const double t0 = dcbh_now();
    spin_cpu(0.002);
    const double t1 = dcbh_now();
    assert_true(t0 > 0 && t1 - t0 >= 0.0015 && t1 - t0 < 5);
    dcbh_timing q = dcbh_timing_for(1), n = dcbh_timing_for(0);
    assert_int_equal(q.repetitions, 3);
    assert_true(q.min_time == 0.005);
    assert_int_equal(n.repetitions, 9);
    assert_true(n.min_time == 0.05);
}

static void test_time_repetitions(void **state) {
    (void)state;
    spin_ctx c = {0, 0, -1, 0};
    dcbh_time_stats s;
    char err[256] = "";
    dcbh_time_opts one = {"one_rep", 1, 0.001, 1, NULL};
    assert_int_equal(dcbh_time(spin_body, &c, &one, &s, err, sizeof err), 0);
    assert_int_equal(s.repetitions, 1);
    assert_true(s.median == s.rep[0] && s.min == s.max);
    /* one sample has no spread: unknown, not zero */
    assert_true(isnan(s.stddev) && isnan(s.cv));

    dcbh_time_opts many = {"many_reps", DCBH_MAX_REPS + 10, 0.0005, 1, NULL};
    c.calls = 0;
    assert_int_equal(dcbh_time(spin_body, &c, &many, &s, err, sizeof err), 0);
    assert_int_equal(s.repetitions, DCBH_MAX_REPS);
    assert_true(s.cv >= 0);
    assert_false(c.out_of_order);
}

static void test_time_body_error(void **state) {
    (void)state;
    spin_ctx c = {0, 0, 3, 0};
    dcbh_time_opts o = {"fails", 3, 0.01, 1, NULL};
    dcbh_time_stats s;
    char err[256] = "";
    assert_int_equal(dcbh_time(spin_body, &c, &o, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "returned 7"));
    assert_non_null(strstr(err, "fails"));
    assert_int_equal(c.calls, 4);   /* never called again after the failure */

    /* and the shim still works afterwards */
    c = (spin_ctx){0, 0, -1, 0};
    assert_int_equal(dcbh_time(spin_body, &c, &o, &s, err, sizeof err), 0);
    assert_int_equal(dcbh_time(NULL, &c, &o, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "NULL"));
}

static int braces_balanced(const char *s, size_t n) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = 0;
            continue;
        }
        if (ch == '"') in_str = 1;
        else if (ch == '{' || ch == '[') depth++;
        else if (ch == '}' || ch == ']') {
            if (--depth < 0) return 0;
        }
    }
    return depth == 0 && !in_str;
}

static void test_time_json(void **state) {
    (void)state;
    char path[] = "/tmp/dcb_test_gbench_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    spin_ctx c = {0, 0, -1, 0};
    dcbh_time_opts o = {"json_run", 3, 0.001, 2, path};
    dcbh_time_stats s;
    char err[256] = "";
    assert_int_equal(dcbh_time(spin_body, &c, &o, &s, err, sizeof err), 0);
    o.name = "json \"quoted\" run";
    assert_int_equal(dcbh_time(spin_body, &c, &o, &s, err, sizeof err), 0);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lines = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lines++;
        assert_true(line[0] == '{');
        assert_true(line[len - 1] == '\n');
        assert_non_null(strstr(line, "\"benchmarks\""));
        assert_non_null(strstr(line, "\"context\""));
        assert_non_null(strstr(line, lines == 1 ? "json_run" : "json \\\"quoted\\\" run"));
        assert_true(braces_balanced(line, (size_t)len));
    }
    free(line);
    fclose(f);
    assert_int_equal(lines, 2);
    unlink(path);

    o.json_path = "/nonexistent-dir/x.json";
    assert_int_equal(dcbh_time(spin_body, &c, &o, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.json"));
}

/* --------------------------------------------------------------- counters */
static int valid_source(const char *s) {
    return s && (!strcmp(s, "papi") || !strcmp(s, "perf_sw") || !strcmp(s, "rusage") ||
                 !strcmp(s, "none"));
}

/* The child side: exit 0 = pass, 77 = not applicable here, else failure. */
#define CHILD_CHECK(cond)                                                          \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "counters child %s: failed: %s (line %d)\n", mode, #cond, \
                    __LINE__);                                                     \
            return 1;                                                              \
        }                                                                          \
    } while (0)

static int counters_child(const char *mode) {
    const char *src = dcbh_counters_init();
    dcbh_counters c;
    CHILD_CHECK(valid_source(src));
    if (!strcmp(mode, "auto")) {
        /* Anything but PAPI is a fallback from it, and says why. */
        if (strcmp(src, "papi") != 0) CHILD_CHECK(dcbh_counters_warning()[0] != 0);
        else CHILD_CHECK(dcbh_counters_warning()[0] == 0);
        fprintf(stderr, "counters child auto: source %s; warning: %s\n", src, dcbh_counters_warning());
        return 0;
    }
    if (!strcmp(mode, "bogus")) {
        CHILD_CHECK(strstr(dcbh_counters_warning(), "DCB_COUNTERS=bogus") != NULL);
        return 0;
    }
    if (!strcmp(mode, "perf_sw") && strcmp(src, "perf_sw") != 0) {
        fprintf(stderr, "counters child perf_sw: not available here (%s)\n", dcbh_counters_warning());
        return 77;
    }
    CHILD_CHECK(!strcmp(src, mode));
    CHILD_CHECK(dcbh_counters_stop(&c) == -1);   /* not started */
    CHILD_CHECK(dcbh_counters_start() == 0);
    spin_cpu(0.02);
    CHILD_CHECK(dcbh_counters_stop(&c) == 0);
    CHILD_CHECK(!strcmp(c.source, mode));
    for (int i = DCBH_C_CYCLES; i <= DCBH_C_LLC_MISSES; i++) CHILD_CHECK(isnan(c.v[i]));
    if (!strcmp(mode, "none")) {
        for (int i = 0; i < DCBH_NCOUNTERS; i++) CHILD_CHECK(isnan(c.v[i]));
        return 0;
    }
    CHILD_CHECK(c.v[DCBH_C_TASK_CLOCK_S] >= 0);
    CHILD_CHECK(c.v[DCBH_C_PAGE_FAULTS] >= 0 && c.v[DCBH_C_CTX_SWITCHES] >= 0);
    if (!strcmp(mode, "rusage")) {
        CHILD_CHECK(isnan(c.v[DCBH_C_CPU_MIGRATIONS]));
        /* getrusage's resolution is coarse on some kernels: only sanity */
        CHILD_CHECK(c.v[DCBH_C_TASK_CLOCK_S] < 10);
        return 0;
    }
    /* perf_sw */
    CHILD_CHECK(c.v[DCBH_C_TASK_CLOCK_S] > 0.005 && c.v[DCBH_C_TASK_CLOCK_S] < 10);
    CHILD_CHECK(c.v[DCBH_C_CPU_MIGRATIONS] >= 0);
    /* Threads of an OpenMP pool created BEFORE start must be counted too:
     * two threads burning 30 ms of CPU each give about 60 ms, where counting
     * the calling thread (and its later children) alone gives about 30. */
#pragma omp parallel num_threads(2)
    spin_cpu(0.001);
    CHILD_CHECK(dcbh_counters_start() == 0);
    int team = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        team = omp_get_num_threads();
        spin_cpu(0.03);
    }
    CHILD_CHECK(dcbh_counters_stop(&c) == 0);
    fprintf(stderr, "counters child perf_sw: team of %d, task_clock %.4f s\n", team,
            c.v[DCBH_C_TASK_CLOCK_S]);
    CHILD_CHECK(c.v[DCBH_C_TASK_CLOCK_S] > 0.025 * team);
    /* and threads created after start (inherit) */
    CHILD_CHECK(dcbh_counters_start() == 0);
#pragma omp parallel num_threads(3)
    spin_cpu(0.02);
    CHILD_CHECK(dcbh_counters_stop(&c) == 0);
    CHILD_CHECK(c.v[DCBH_C_TASK_CLOCK_S] > 0.05);
    return 0;
}

/* Runs this program as a counters child with DCB_COUNTERS=env (NULL: unset). */
static int run_child(const char *mode, const char *env) {
    pid_t pid = fork();
    if (pid == 0) {
        if (env) setenv("DCB_COUNTERS", env, 1);
        else unsetenv("DCB_COUNTERS");
        execl(g_self, g_self, "--counters-child", mode, (char *)NULL);
        _exit(127);
    }
    assert_true(pid > 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_counters_auto(void **state) {
    (void)state;
    assert_int_equal(run_child("auto", NULL), 0);
    assert_int_equal(run_child("bogus", "bogus"), 0);
}

static void test_counters_forced(void **state) {
    (void)state;
    assert_int_equal(run_child("rusage", "rusage"), 0);
    assert_int_equal(run_child("none", "none"), 0);
    int r = run_child("perf_sw", "perf_sw");
    if (r == 77) skip();
    assert_int_equal(r, 0);
}

static void test_counters_in_process(void **state) {
    (void)state;
    const char *src = dcbh_counters_init();
    assert_true(valid_source(src));
    assert_string_equal(dcbh_counters_init(), src);   /* chosen once */
    assert_non_null(dcbh_counters_warning());
    for (int i = 0; i < DCBH_NCOUNTERS; i++) assert_non_null(dcbh_counter_names[i]);
    assert_string_equal(dcbh_counter_names[DCBH_C_TASK_CLOCK_S], "task_clock_s");
    dcbh_counters c;
    assert_int_equal(dcbh_counters_start(), 0);
    spin_cpu(0.005);
    assert_int_equal(dcbh_counters_stop(&c), 0);
    assert_string_equal(c.source, src);
    assert_int_equal(dcbh_counters_stop(&c), -1);      /* stopped twice */
    for (int i = 0; i < DCBH_NCOUNTERS; i++) assert_true(isnan(c.v[i]));
}

/* ------------------------------------------------------------ calibration */
static void test_calibrate(void **state) {
    (void)state;
    setenv("DCB_CALIB_QUICK", "1", 1);
    dcbh_calib c;
    double t0 = dcbh_now();
    assert_int_equal(dcbh_calibrate(&c, 2), 0);
    double dt = dcbh_now() - t0;
    unsetenv("DCB_CALIB_QUICK");
    fprintf(stderr, "calibrate (quick, %.2f s): %s peak %.1f / %.1f GFLOP/s, bw %.1f / %.1f GB/s\n",
            dt, c.isa, c.peak_gflops_1t, c.peak_gflops_all, c.bw_gbs_1t, c.bw_gbs_all);
    assert_true(c.peak_gflops_1t > 1 && c.peak_gflops_all > 1);
    assert_true(c.bw_gbs_1t > 0.5 && c.bw_gbs_all > 0.5);
    assert_int_equal(c.threads_all, 2);
    assert_true(!strcmp(c.isa, "avx512") || !strcmp(c.isa, "avx2") || !strcmp(c.isa, "scalar"));
    assert_int_equal((int)strlen(c.when), 20);   /* 2026-01-02T03:04:05Z */
    assert_true(c.when[19] == 'Z');

    char dir[] = "/tmp/dcb_test_calib_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], sub[256];
    snprintf(sub, sizeof sub, "%s/a", dir);
    snprintf(path, sizeof path, "%s/a/b/calibration.json", dir);
    assert_int_equal(dcbh_calib_save(path, &c), 0);   /* creates a/ and a/b/ */
    dcbh_calib d;
    assert_int_equal(dcbh_calib_load(path, &d), 0);
    assert_true(fabs(d.peak_gflops_1t - c.peak_gflops_1t) <= 1e-6 * c.peak_gflops_1t);
    assert_true(fabs(d.peak_gflops_all - c.peak_gflops_all) <= 1e-6 * c.peak_gflops_all);
    assert_true(fabs(d.bw_gbs_1t - c.bw_gbs_1t) <= 1e-6 * c.bw_gbs_1t);
    assert_true(fabs(d.bw_gbs_all - c.bw_gbs_all) <= 1e-6 * c.bw_gbs_all);
    assert_int_equal(d.threads_all, c.threads_all);
    assert_string_equal(d.when, c.when);
    assert_string_equal(d.isa, c.isa);

    /* a second level beside it, then this level again: one entry a level,
     * each replaced only by its own, every reader taking this run's */
    dcbh_calib o = c;
    snprintf(o.isa, sizeof o.isa, "%s", strcmp(c.isa, "scalar") ? "scalar" : "avx2");
    o.peak_gflops_1t = 7;
    assert_int_equal(dcbh_calib_save(path, &o), 1); /* kept this level's */
    dcbh_calib two[DCBH_CALIB_MAX_LEVELS];
    assert_int_equal(dcbh_calib_load_all(path, two, DCBH_CALIB_MAX_LEVELS), 2);
    assert_string_equal(two[0].isa, c.isa);
    assert_string_equal(two[1].isa, o.isa);
    assert_int_equal(dcbh_calib_load(path, &d), 0);
    assert_true(fabs(d.peak_gflops_1t - c.peak_gflops_1t) <= 1e-6 * c.peak_gflops_1t);
    assert_int_equal(dcbh_calib_load_isa(path, o.isa, &d), 0);
    assert_true(d.peak_gflops_1t == 7);
    d.threads_all = 12345;
    assert_int_equal(dcbh_calib_load_isa(path, "none", &d), 1);
    assert_int_equal(d.threads_all, 12345);
    dcbh_calib c2 = c;
    c2.peak_gflops_1t = 3;
    assert_int_equal(dcbh_calib_save(path, &c2), 1); /* kept o */
    assert_int_equal(dcbh_calib_load_all(path, two, 1), -1); /* more than max */
    assert_int_equal(dcbh_calib_load_all(path, two, DCBH_CALIB_MAX_LEVELS), 2);
    assert_true(two[0].peak_gflops_1t == 3 && two[1].peak_gflops_1t == 7);
    assert_int_equal(dcbh_calib_save(path, &c), 1);

    static const char *const bad[] = {
        "",
        "[]",
        "[",
        "[{\"peak_gflops_1t\": 10, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8,"
        " \"threads_all\": 2, \"when\": \"x\", \"isa\": \"scalar\"},]",                /* trailing comma */
        "[{\"peak_gflops_1t\": 10, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8,"
        " \"threads_all\": 2, \"when\": \"x\", \"isa\": \"scalar\"}",                  /* unclosed */
        "[{\"peak_gflops_1t\": 10, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8,"
        " \"threads_all\": 2, \"when\": \"x\", \"isa\": \"scalar\"},"
        " {\"peak_gflops_1t\": 11, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8,"
        " \"threads_all\": 2, \"when\": \"x\", \"isa\": \"scalar\"}]",                 /* a level twice */
        "{",
        "not json",
        "{\"peak_gflops_1t\": 10, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8,"
        " \"threads_all\": 2, \"when\": \"x\"}",                                     /* no isa */
        "{\"peak_gflops_1t\": 10, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": -8,"
        " \"threads_all\": 2, \"when\": \"x\", \"isa\": \"scalar\"}",                  /* negative */
        "{\"peak_gflops_1t\": 10, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8,"
        " \"threads_all\": 2.5, \"when\": \"x\", \"isa\": \"scalar\"}",                /* threads */
        "{\"peak_gflops_1t\": 10, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8,"
        " \"threads_all\": 2, \"when\": \"x\", \"isa\": \"scalar\"} trailing",
        "{\"peak_gflops_1t\": abc, \"peak_gflops_all\": 20, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8,"
        " \"threads_all\": 2, \"when\": \"x\", \"isa\": \"scalar\"}",
        "{\"peak_gflops_1t\": 10 \"peak_gflops_all\": 20}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(bad[i], f);
        fclose(f);
        d.threads_all = 12345;
        if (dcbh_calib_load_isa(path, "scalar", &d) != -1) fail_msg("malformed calibration %zu accepted", i);
        assert_int_equal(d.threads_all, 12345);   /* untouched */
    }
    assert_int_equal(dcbh_calib_save(path, &c), 0); /* the malformed file replaced, nothing kept */
    assert_int_equal(dcbh_calib_load_all(path, two, DCBH_CALIB_MAX_LEVELS), 1);
    /* the good form, written by hand, with whitespace and an unknown key */
    FILE *f = fopen(path, "w");
    fputs("\n{ \"isa\" : \"scalar\", \"peak_gflops_1t\": 1e1, \"peak_gflops_all\": 20,\n"
          "  \"bw_gbs_1t\": 5, \"bw_gbs_all\": 8, \"threads_all\": 2, \"when\": \"x\","
          " \"note\": \"hi\" }\n", f);
    fclose(f);
    assert_int_equal(dcbh_calib_load_isa(path, "scalar", &d), 0); /* a single object: one level */
    assert_true(d.peak_gflops_1t == 10 && d.threads_all == 2);
    assert_int_equal(dcbh_calib_load("/nonexistent/calibration.json", &d), -1);

    unlink(path);
    snprintf(path, sizeof path, "%s/a/b", dir);
    rmdir(path);
    rmdir(sub);
    rmdir(dir);

    unsetenv("DCB_CALIBRATION");
    assert_string_equal(dcbh_calib_path(), "results/calibration.json");
    setenv("DCB_CALIBRATION", "/tmp/x.json", 1);
    assert_string_equal(dcbh_calib_path(), "/tmp/x.json");
    unsetenv("DCB_CALIBRATION");
}

/* ----------------------------------------------------------- machine JSON
 * A strict little JSON checker: enough to say the document parses. */
static const char *jv(const char *p);

static const char *jws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

static const char *jstr(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *jv(const char *p) {
    p = jws(p);
    if (*p == '"') return jstr(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = jws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                if (!(p = jstr(jws(p)))) return NULL;
                p = jws(p);
                if (*p++ != ':') return NULL;
            }
            if (!(p = jv(p))) return NULL;
            p = jws(p);
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
        }
    }
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    if (!strncmp(p, "null", 4)) return p + 4;
    char *end;
    strtod(p, &end);
    return end == p ? NULL : end;
}

static int json_valid(const char *s) {
    const char *e = jv(s);
    return e && *jws(e) == 0;
}

static void test_machine_json(void **state) {
    (void)state;
    assert_true(json_valid("{\"a\": [1, 2.5e3, \"x\\\"y\", true, null], \"b\": {}}"));
    assert_false(json_valid("{\"a\": \"x\"y\"}"));
    assert_false(json_valid("{\"a\": 1,}"));

    char a0[] = "dcbench", a1[] = "run", a2[] = "say \"hi\"", a3[] = "it's\ta\\b", a4[] = "x=1";
    char *argv[] = {a0, a1, a2, a3, a4, NULL};
    char *j = dcbh_machine_json(5, argv);
    assert_non_null(j);
    if (!json_valid(j)) fail_msg("invalid JSON: %s", j);
    static const char *const keys[] = {"\"cpu_model\"", "\"isa_flags\"", "\"logical_cores\"",
                                       "\"memory_bytes\"", "\"compiler\"", "\"build_flags\"",
                                       "\"blas\"", "\"blas_core\"", "\"forced_coretype\"",
                                       "\"versions\"", "\"google_benchmark\": \"1.7.1\"",
                                       "\"libdcb\"", "\"lua\": \"Lua 5.4", "\"papi\"",
                                       "\"git_commit\"", "\"git_dirty\"", "\"date_utc\"",
                                       "\"hostname\"", "\"command_line\"", "\"argv\""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strstr(j, keys[i])) fail_msg("no %s in %s", keys[i], j);
    /* quotes, tabs and backslashes escaped, in argv and in the shell form */
    assert_non_null(strstr(j, "\"say \\\"hi\\\"\""));
    assert_non_null(strstr(j, "\"it's\\ta\\\\b\""));
    assert_non_null(strstr(j, "\"command_line\": \"dcbench run 'say \\\"hi\\\"' 'it'\\\\''s\\ta\\\\b' x=1\""));
    free(j);

    char *empty = dcbh_machine_json(0, NULL);
    assert_non_null(empty);
    assert_true(json_valid(empty));
    assert_non_null(strstr(empty, "\"command_line\": \"\""));
    free(empty);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--counters-child")) return counters_child(argv[2]);
    ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (n <= 0) return 1;
    g_self[n] = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_spin),
        cmocka_unit_test(test_clock_and_quick),
        cmocka_unit_test(test_time_repetitions),
        cmocka_unit_test(test_time_body_error),
        cmocka_unit_test(test_time_json),
        cmocka_unit_test(test_counters_auto),
        cmocka_unit_test(test_counters_forced),
        cmocka_unit_test(test_counters_in_process),
        cmocka_unit_test(test_calibrate),
        cmocka_unit_test(test_machine_json),
    };
    return cmocka_run_group_tests_name("measure", tests, NULL, NULL);
}
