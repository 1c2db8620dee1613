/* calibrate.c — what this machine can do at best, so that results can be
 * read as a fraction of it: fp32 FMA throughput and triad memory bandwidth,
 * on one thread and on all. Best of several runs, since a shared machine
 * only ever makes a run slower.
 *
 * DCB_CALIB_QUICK=1 (for the tests) uses short runs and small, cache-resident
 * arrays: the peak is still roughly right, the "bandwidth" then is a cache
 * bandwidth and means nothing beyond sanity. */
#define _GNU_SOURCE
#include "measure.h"
#include "dcb.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int quick(void) {
    const char *q = getenv("DCB_CALIB_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

/* ------------------------------------------------------------- peak FLOPs
 * NACC independent accumulators hide the FMA latency (4 cycles x 2 pipes on
 * Zen 3 needs 8; 12 leaves room for 5-cycle cores). acc = acc*m + a with
 * m just below 1 converges instead of overflowing, so no denormals appear. */
#define NACC 12

/* One kernel per ISA level, each compiled for its own instructions
 * (target attributes: the file's baseline is x86-64-v3), and the peak is the
 * one of the level the process runs (dcb_isa(): DCB_ISA=avx2 calibrates the
 * AVX2 peak), which is the peak its micro-kernels can reach. */
static float fma_scalar(long steps, float seed) {
    float acc[NACC];
    for (int j = 0; j < NACC; j++) acc[j] = seed + (float)j;
    for (long i = 0; i < steps; i++)
        for (int j = 0; j < NACC; j++) acc[j] = acc[j] * 0.999999f + 1e-6f;
    float s = 0;
    for (int j = 0; j < NACC; j++) s += acc[j];
    return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static float fma_avx2(long steps, float seed) {
    __m256 acc[NACC];
    const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
    for (int j = 0; j < NACC; j++) acc[j] = _mm256_set1_ps(seed + (float)j);
    for (long i = 0; i < steps; i++)
        for (int j = 0; j < NACC; j++) acc[j] = _mm256_fmadd_ps(acc[j], m, a);
    __m256 s = acc[0];
    for (int j = 1; j < NACC; j++) s = _mm256_add_ps(s, acc[j]);
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma"))) static float fma_avx512(long steps, float seed) {
    __m512 acc[NACC];
    const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
    for (int j = 0; j < NACC; j++) acc[j] = _mm512_set1_ps(seed + (float)j);
    for (long i = 0; i < steps; i++)
        for (int j = 0; j < NACC; j++) acc[j] = _mm512_fmadd_ps(acc[j], m, a);
    __m512 s = acc[0];
    for (int j = 1; j < NACC; j++) s = _mm512_add_ps(s, acc[j]);
    return _mm512_reduce_add_ps(s);
}
#endif

/* the level's kernel and its FLOPs per step */
static float (*fma_kernel_of(int *flops_per_step))(long, float) {
#if defined(__x86_64__)
    if (!strcmp(dcb_isa(), "avx512")) {
        *flops_per_step = NACC * 16 * 2;
        return fma_avx512;
    }
    if (!strcmp(dcb_isa(), "avx2")) {
        *flops_per_step = NACC * 8 * 2;
        return fma_avx2;
    }
#endif
    *flops_per_step = NACC * 2;
    return fma_scalar;
}

static float fma_kernel(long steps, float seed) {
    int f;
    return fma_kernel_of(&f)(steps, seed);
}

static int flops_per_step(void) {
    int f;
    fma_kernel_of(&f);
    return f;
}

static volatile float g_sink;

/* GFLOP/s of `threads` threads each running `steps` steps. The clock runs
 * from a barrier that all threads have reached to the end of the slowest, so
 * waking the OpenMP team up is not counted but any imbalance is. */
static double peak_once(int threads, long steps) {
    double t0 = 0, t1 = 0;
    float s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
    {
#pragma omp barrier
#pragma omp master
        t0 = dcbh_now();
#pragma omp barrier
        s += fma_kernel(steps, (float)omp_get_thread_num());
#pragma omp barrier
#pragma omp master
        t1 = dcbh_now();
    }
    g_sink = s;
    return (double)threads * (double)steps * flops_per_step() / (t1 - t0) * 1e-9;
}

/* Steps for one run of about target_s on one thread (the work per thread
 * does not depend on the thread count). */
static long steps_for(double target_s) {
    long steps = 1000;
    double dt;
    for (;;) {
        double t0 = dcbh_now();
        g_sink = fma_kernel(steps, 1.0f);
        dt = dcbh_now() - t0;
        if (dt >= 0.05 * target_s || steps > (1L << 40)) break;
        steps *= 8;
    }
    return (long)((double)steps * target_s / dt) + 1;
}

static double peak(int threads, long steps, int runs) {
    double best = 0;
    for (int r = 0; r < runs; r++) {
        double g = peak_once(threads, steps);
        if (g > best) best = g;
    }
    return best;
}

/* -------------------------------------------------------------- bandwidth
 * a = b + s*c: 2 streams read, 1 written; counted as 12 bytes per element
 * (the write-allocate read of a, which the hardware also does, is not
 * counted — the usual STREAM convention). */
static double triad_once(float *a, const float *b, const float *c, long n, int threads) {
    const float s = 1.0001f;
    double t0 = 0, t1 = 0;
#pragma omp parallel num_threads(threads)
    {
#pragma omp barrier
#pragma omp master
        t0 = dcbh_now();
#pragma omp barrier
#pragma omp for schedule(static)
        for (long i = 0; i < n; i++) a[i] = b[i] + s * c[i];
#pragma omp master
        t1 = dcbh_now();
    }
    g_sink = a[n / 2];
    return 12.0 * (double)n / (t1 - t0) * 1e-9;
}

static int bandwidth(int threads_all, long n, int runs, double *bw1, double *bwall) {
    size_t bytes = (size_t)n * sizeof(float);
    float *a = dcb_aligned_alloc(bytes), *b = dcb_aligned_alloc(bytes), *c = dcb_aligned_alloc(bytes);
    if (!a || !b || !c) {
        dcb_aligned_free(a);
        dcb_aligned_free(b);
        dcb_aligned_free(c);
        return -1;
    }
    /* First touch with the schedule of the measurement (NUMA placement). */
#pragma omp parallel for num_threads(threads_all) schedule(static)
    for (long i = 0; i < n; i++) {
        a[i] = 0;
        b[i] = (float)(i & 1023);
        c[i] = 1.0f;
    }
    *bw1 = *bwall = 0;
    for (int r = 0; r < runs; r++) {
        double g1 = triad_once(a, b, c, n, 1);
        double ga = triad_once(a, b, c, n, threads_all);
        if (g1 > *bw1) *bw1 = g1;
        if (ga > *bwall) *bwall = ga;
    }
    dcb_aligned_free(a);
    dcb_aligned_free(b);
    dcb_aligned_free(c);
    return 0;
}

static void iso_now(char *buf, size_t len) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int dcbh_calibrate(dcbh_calib *c, int threads_all) {
    if (!c) return -1;
    memset(c, 0, sizeof *c);
    if (threads_all < 1) threads_all = omp_get_num_procs();
    const int q = quick();
    /* 3 x 128 MiB, far beyond any LLC of today's servers; quick: 3 x 4 MiB. */
    const long n = q ? (4L << 20) / 4 : (128L << 20) / 4;
    c->threads_all = threads_all;
    const int runs = 5;
    const long steps = steps_for(q ? 0.01 : 0.2);
    c->peak_gflops_1t = peak(1, steps, runs);
    c->peak_gflops_all = threads_all == 1 ? c->peak_gflops_1t : peak(threads_all, steps, runs);
    if (bandwidth(threads_all, n, q ? 5 : 10, &c->bw_gbs_1t, &c->bw_gbs_all) != 0) return -1;
    iso_now(c->when, sizeof c->when);
    snprintf(c->isa, sizeof c->isa, "%s", dcb_isa());
    return 0;
}

/* ------------------------------------------------------------ save / load */
const char *dcbh_calib_path(void) {
    const char *p = getenv("DCB_CALIBRATION");
    return p && *p ? p : "results/calibration.json";
}

void dcbh_mkdir_parent(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return;
    *slash = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(dir, 0755);
        *p = '/';
    }
    mkdir(dir, 0755);
}

/* The file: a JSON array of flat objects, one per ISA level, each written on
 * its own line. when and isa are produced here (ISO date, a fixed set of
 * names): no character in them needs escaping. */
int dcbh_calib_save(const char *path, const dcbh_calib *c) {
    if (!path || !c) return -1;
    dcbh_calib all[DCBH_CALIB_MAX_LEVELS];
    int n = dcbh_calib_load_all(path, all, DCBH_CALIB_MAX_LEVELS);
    if (n < 0) n = 0; /* absent or malformed: replaced */
    int at = n, kept = n;
    for (int i = 0; i < n; i++)
        if (!strcmp(all[i].isa, c->isa)) at = i, kept = n - 1;
    if (at == DCBH_CALIB_MAX_LEVELS) return -1; /* a file of that many other levels, made by hand */
    all[at] = *c;
    if (at == n) n++;
    dcbh_mkdir_parent(path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    int ok = fputs("[\n", f) >= 0;
    for (int i = 0; i < n && ok; i++)
        ok = fprintf(f,
                     " {\"peak_gflops_1t\": %.9g, \"peak_gflops_all\": %.9g, \"bw_gbs_1t\": %.9g, "
                     "\"bw_gbs_all\": %.9g, \"threads_all\": %d, \"when\": \"%s\", \"isa\": \"%s\"}%s\n",
                     all[i].peak_gflops_1t, all[i].peak_gflops_all, all[i].bw_gbs_1t, all[i].bw_gbs_all,
                     all[i].threads_all, all[i].when, all[i].isa, i + 1 < n ? "," : "") > 0;
    ok = ok && fputs("]\n", f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return kept;
}

/* A small strict reader for what save writes: an array of flat objects (or
 * one flat object, the file of earlier versions) with string keys and number
 * or string values, nothing else. */
typedef struct { const char *p; } rd;

static void ws(rd *r) {
    while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r') r->p++;
}

static int rd_string(rd *r, char *out, size_t len) {
    ws(r);
    if (*r->p != '"') return -1;
    r->p++;
    size_t k = 0;
    while (*r->p && *r->p != '"') {
        if (*r->p == '\\') return -1;   /* never written by save */
        if ((unsigned char)*r->p < 0x20) return -1;
        if (k + 1 >= len) return -1;
        out[k++] = *r->p++;
    }
    if (*r->p != '"') return -1;
    r->p++;
    out[k] = 0;
    return 0;
}

/* One flat object at r: 0 and *c, or -1. */
static int rd_calib(rd *r, dcbh_calib *c) {
    dcbh_calib t;
    memset(&t, 0, sizeof t);
    double num[5] = {NAN, NAN, NAN, NAN, NAN};
    static const char *const keys[5] = {"peak_gflops_1t", "peak_gflops_all", "bw_gbs_1t",
                                        "bw_gbs_all", "threads_all"};
    int have_when = 0, have_isa = 0;
    ws(r);
    if (*r->p++ != '{') return -1;
    for (;;) {
        char key[64], sval[64];
        if (rd_string(r, key, sizeof key) != 0) return -1;
        ws(r);
        if (*r->p++ != ':') return -1;
        ws(r);
        if (*r->p == '"') {
            if (rd_string(r, sval, sizeof sval) != 0) return -1;
            if (strcmp(key, "when") == 0) {
                if (strlen(sval) >= sizeof t.when) return -1;
                strcpy(t.when, sval);
                have_when = 1;
            } else if (strcmp(key, "isa") == 0) {
                if (strlen(sval) >= sizeof t.isa) return -1;
                strcpy(t.isa, sval);
                have_isa = 1;
            }
        } else {
            char *end;
            errno = 0;
            double v = strtod(r->p, &end);
            if (end == r->p || errno) return -1;
            r->p = end;
            for (int i = 0; i < 5; i++)
                if (strcmp(key, keys[i]) == 0) num[i] = v;
        }
        ws(r);
        if (*r->p == ',') { r->p++; continue; }
        if (*r->p == '}') { r->p++; break; }
        return -1;
    }
    for (int i = 0; i < 5; i++)
        if (!isfinite(num[i]) || num[i] <= 0) return -1;
    if (!have_when || !have_isa || num[4] != floor(num[4]) || num[4] > 1e6) return -1;
    t.peak_gflops_1t = num[0];
    t.peak_gflops_all = num[1];
    t.bw_gbs_1t = num[2];
    t.bw_gbs_all = num[3];
    t.threads_all = (int)num[4];
    *c = t;
    return 0;
}

int dcbh_calib_load_all(const char *path, dcbh_calib *out, int max) {
    if (!path || !out || max < 1) return -1;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[16384];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    int toolong = !feof(f);
    fclose(f);
    if (toolong) return -1;
    buf[len] = 0;
    dcbh_calib t[DCBH_CALIB_MAX_LEVELS];
    if (max > DCBH_CALIB_MAX_LEVELS) max = DCBH_CALIB_MAX_LEVELS;
    int n = 0;
    rd r = {buf};
    ws(&r);
    const int array = *r.p == '[';
    if (array) r.p++;
    for (;;) {
        if (n == max || rd_calib(&r, &t[n]) != 0) return -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(t[i].isa, t[n].isa)) return -1; /* one calibration a level */
        n++;
        ws(&r);
        if (!array) break;
        if (*r.p == ',') {
            r.p++;
            continue;
        }
        if (*r.p++ != ']') return -1;
        break;
    }
    ws(&r);
    if (*r.p) return -1;
    memcpy(out, t, sizeof *t * (size_t)n);
    return n;
}

int dcbh_calib_load_isa(const char *path, const char *isa, dcbh_calib *c) {
    dcbh_calib all[DCBH_CALIB_MAX_LEVELS];
    const int n = dcbh_calib_load_all(path, all, DCBH_CALIB_MAX_LEVELS);
    if (n < 0 || !c || !isa) return -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(all[i].isa, isa)) {
            *c = all[i];
            return 0;
        }
    return 1;
}

int dcbh_calib_load(const char *path, dcbh_calib *c) { return dcbh_calib_load_isa(path, dcb_isa(), c); }
