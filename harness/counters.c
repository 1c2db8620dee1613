/* counters.c — the counter columns of measure.h from the best source the
 * machine has: PAPI hardware events, else Linux perf_event software events,
 * else getrusage, else nothing. A column a source cannot give is NAN.
 *
 * Which threads are counted (the reason for the per-thread design below):
 * a perf event opened on the calling thread with inherit=1 follows only the
 * threads created AFTER it was opened. OpenMP and OpenBLAS create their
 * thread pools once and keep them, so by the time a sweep measures, the
 * workers already exist and would be missed. perf_event_open(pid=getpid())
 * does not help either: it names the main thread's task, not the process.
 * So perf_sw opens its events on EVERY thread listed in /proc/self/task at
 * start, each with inherit=1 (threads those create later are then counted
 * too), and sums them at stop. Remaining gap: a thread created in the
 * instant between reading /proc/self/task and opening its parent's event.
 *
 * PAPI (hardware columns) counts the calling thread, plus its later children
 * when the component accepts PAPI_INHERIT. Workers of a pool that existed
 * before start are NOT in the hardware columns; the software columns (through
 * perf_event, per thread as above) are. With source "papi" and threads > 1
 * read cycles/instructions/misses as the calling thread's share.
 *
 * rusage (RUSAGE_SELF) covers every thread of the process, including ones
 * that have exited; it has no migration count.
 *
 * Not thread-safe: one measured region at a time, started and stopped by
 * the same thread. */
#define _GNU_SOURCE
#include "measure.h"

#include <dirent.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<papi.h>)
#define DCBH_HAVE_PAPI 1
#include <papi.h>
#endif
#endif

const char *const dcbh_counter_names[DCBH_NCOUNTERS] = {
    "cycles", "instructions", "l1d_misses", "llc_misses",
    "task_clock_s", "page_faults", "ctx_switches", "cpu_migrations",
};

enum { SRC_PAPI, SRC_PERF_SW, SRC_RUSAGE, SRC_NONE };
static const char *const src_names[] = {"papi", "perf_sw", "rusage", "none"};

static int g_src = -1;
static char g_warning[512];

/* ------------------------------------------------------------- perf_event */
#define NSW 4
static const unsigned long long sw_config[NSW] = {
    PERF_COUNT_SW_TASK_CLOCK, PERF_COUNT_SW_PAGE_FAULTS, PERF_COUNT_SW_CONTEXT_SWITCHES,
    PERF_COUNT_SW_CPU_MIGRATIONS};
static const int sw_column[NSW] = {DCBH_C_TASK_CLOCK_S, DCBH_C_PAGE_FAULTS, DCBH_C_CTX_SWITCHES,
                                   DCBH_C_CPU_MIGRATIONS};
static int g_sw_ok[NSW];     /* which software events opened at init */
static int g_sw_usable;      /* perf_sw can fill the software columns */
static int g_excl_kernel;    /* retry with exclude_kernel after EACCES */
#define MAX_THREADS 128      /* 4 descriptors per thread; stay far below RLIMIT_NOFILE */
static int *g_fds;
static int g_nfds;

static int sw_open(pid_t tid, unsigned long long config) {
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_SOFTWARE;
    a.config = config;
    a.inherit = 1;
    a.exclude_hv = 1;
    a.exclude_kernel = (unsigned)g_excl_kernel;
    return (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/* Which software events this kernel lets us open; 0 if task-clock works. */
static int sw_probe(char *why, size_t len) {
    int any = 0;
    for (int k = 0; k < NSW; k++) {
        int fd = sw_open(0, sw_config[k]);
        if (fd < 0 && errno == EACCES && k == 0) {
            g_excl_kernel = 1;
            fd = sw_open(0, sw_config[k]);
        }
        if (fd < 0) {
            if (k == 0) {
                int e = errno;
                int paranoid = -9;
                FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
                if (f) {
                    if (fscanf(f, "%d", &paranoid) != 1) paranoid = -9;
                    fclose(f);
                }
                if (paranoid != -9)
                    snprintf(why, len, "perf_event_open(task-clock): %s (perf_event_paranoid=%d)",
                             strerror(e), paranoid);
                else
                    snprintf(why, len, "perf_event_open(task-clock): %s", strerror(e));
                return -1;
            }
            g_sw_ok[k] = 0;
            continue;
        }
        g_sw_ok[k] = 1;
        any = 1;
        close(fd);
    }
    return any ? 0 : -1;
}

static void sw_close_all(void) {
    for (int i = 0; i < g_nfds; i++)
        if (g_fds[i] >= 0) close(g_fds[i]);
    free(g_fds);
    g_fds = NULL;
    g_nfds = 0;
}

static int sw_start(void) {
    sw_close_all();
    g_fds = malloc(sizeof(int) * NSW * MAX_THREADS);
    if (!g_fds) return -1;
    pid_t self = (pid_t)syscall(SYS_gettid);
    /* The calling thread first: its events are the ones that must open. */
    for (int k = 0; k < NSW; k++) g_fds[g_nfds++] = g_sw_ok[k] ? sw_open(self, sw_config[k]) : -1;
    if (g_fds[0] < 0) {
        sw_close_all();
        return -1;
    }
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;  /* then the calling thread and its later children only */
    struct dirent *e;
    while ((e = readdir(d)) != NULL && g_nfds + NSW <= NSW * MAX_THREADS) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid == self) continue;
        /* A thread that exits meanwhile just fails to open (ESRCH): skip it. */
        for (int k = 0; k < NSW; k++) g_fds[g_nfds++] = g_sw_ok[k] ? sw_open(tid, sw_config[k]) : -1;
    }
    closedir(d);
    return 0;
}

static void sw_stop(double *v) {
    double sum[NSW] = {0};
    int seen[NSW] = {0};
    for (int i = 0; i < g_nfds; i++) {
        uint64_t x;
        if (g_fds[i] < 0) continue;
        if (read(g_fds[i], &x, sizeof x) == (ssize_t)sizeof x) {
            sum[i % NSW] += (double)x;
            seen[i % NSW] = 1;
        }
    }
    sw_close_all();
    for (int k = 0; k < NSW; k++) {
        if (!seen[k]) continue;
        v[sw_column[k]] = sw_config[k] == PERF_COUNT_SW_TASK_CLOCK ? sum[k] * 1e-9 : sum[k];
    }
}

/* ------------------------------------------------------------------- PAPI */
#ifdef DCBH_HAVE_PAPI
static int g_papi_es = PAPI_NULL;
static int g_papi_col[4];     /* column of each event added, in order */
static int g_papi_n;

static int papi_add(int code, int column) {
    if (PAPI_add_event(g_papi_es, code) != PAPI_OK) return -1;
    g_papi_col[g_papi_n++] = column;
    return 0;
}

static int papi_probe(char *why, size_t len) {
    int r = PAPI_library_init(PAPI_VER_CURRENT);
    if (r != PAPI_VER_CURRENT) {
        snprintf(why, len, "PAPI_library_init: %s",
                 r > 0 ? "header and library versions differ" : PAPI_strerror(r));
        return -1;
    }
    if (PAPI_num_hwctrs() <= 0) {
        int cidx = PAPI_get_component_index("perf_event");
        const PAPI_component_info_t *ci = cidx >= 0 ? PAPI_get_component_info(cidx) : NULL;
        if (ci && ci->disabled && ci->disabled_reason[0])
            snprintf(why, len, "PAPI reports 0 hardware counters; perf_event component disabled: %.160s",
                     ci->disabled_reason);
        else
            snprintf(why, len, "PAPI reports 0 hardware counters");
        goto fail;
    }
    g_papi_n = 0;
    g_papi_es = PAPI_NULL;
    if ((r = PAPI_create_eventset(&g_papi_es)) != PAPI_OK) {
        snprintf(why, len, "PAPI_create_eventset: %s", PAPI_strerror(r));
        goto fail;
    }
    /* Inheritance must be set before events are added, and needs the event
     * set bound to its component first. Without it: calling thread only. */
    int cidx = PAPI_get_component_index("perf_event");
    if (PAPI_assign_eventset_component(g_papi_es, cidx >= 0 ? cidx : 0) == PAPI_OK) {
        PAPI_option_t opt;
        memset(&opt, 0, sizeof opt);
        opt.inherit.eventset = g_papi_es;
        opt.inherit.inherit = PAPI_INHERIT_ALL;
        (void)PAPI_set_opt(PAPI_INHERIT, &opt);
    }
    static const struct { int code; const char *name; } need[] = {
        {PAPI_TOT_CYC, "PAPI_TOT_CYC"}, {PAPI_TOT_INS, "PAPI_TOT_INS"}};
    for (int i = 0; i < 2; i++) {
        if ((r = PAPI_add_event(g_papi_es, need[i].code)) != PAPI_OK) {
            snprintf(why, len, "PAPI_add_event(%s): %s", need[i].name, PAPI_strerror(r));
            goto fail;
        }
        g_papi_col[g_papi_n++] = i == 0 ? DCBH_C_CYCLES : DCBH_C_INSTRUCTIONS;
    }
    (void)papi_add(PAPI_L1_DCM, DCBH_C_L1D_MISSES);        /* optional */
    if (papi_add(PAPI_L3_TCM, DCBH_C_LLC_MISSES) != 0) (void)papi_add(PAPI_L3_DCM, DCBH_C_LLC_MISSES);
    /* Some VMs accept the events and fail at start: try once. */
    long long tmp[4];
    if ((r = PAPI_start(g_papi_es)) != PAPI_OK) {
        snprintf(why, len, "PAPI_start: %s", PAPI_strerror(r));
        goto fail;
    }
    if ((r = PAPI_stop(g_papi_es, tmp)) != PAPI_OK) {
        snprintf(why, len, "PAPI_stop: %s", PAPI_strerror(r));
        goto fail;
    }
    return 0;
fail:
    if (g_papi_es != PAPI_NULL) {
        PAPI_cleanup_eventset(g_papi_es);
        PAPI_destroy_eventset(&g_papi_es);
    }
    g_papi_es = PAPI_NULL;
    PAPI_shutdown();
    return -1;
}
#else
static int papi_probe(char *why, size_t len) {
    snprintf(why, len, "built without PAPI (papi.h not found)");
    return -1;
}
#endif

/* ----------------------------------------------------------------- choose */
static int source_index(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, src_names[i]) == 0) return i;
    return -1;
}

static void fallback_warning(const char *from, const char *why, int to) {
    snprintf(g_warning, sizeof g_warning, "%s unavailable (%.440s); counters from %s", from, why,
             src_names[to]);
    fprintf(stderr, "dcbench: warning: %s\n", g_warning);
}

const char *dcbh_counters_init(void) {
    if (g_src >= 0) return src_names[g_src];
    int want = SRC_PAPI;
    const char *env = getenv("DCB_COUNTERS");
    char why[256] = "", bad[160] = "";
    if (env && *env) {
        int i = source_index(env);
        if (i >= 0) want = i;
        else snprintf(bad, sizeof bad, "DCB_COUNTERS=%.64s is not papi|perf_sw|rusage|none; ", env);
    }
    int src = want;
    const char *first_failure = NULL;
    char first_why[256] = "";
    if (src == SRC_PAPI) {
        if (papi_probe(why, sizeof why) == 0) goto chosen;
        first_failure = "PAPI";
        snprintf(first_why, sizeof first_why, "%s", why);
        src = SRC_PERF_SW;
    }
    if (src == SRC_PERF_SW) {
        if (sw_probe(why, sizeof why) == 0) {
            g_sw_usable = 1;
            goto chosen;
        }
        if (!first_failure) {
            first_failure = "perf_event";
            snprintf(first_why, sizeof first_why, "%s", why);
        }
        src = SRC_RUSAGE;
    }
chosen:
    g_src = src;
    /* With PAPI, the software columns still come from perf_event. */
    if (src == SRC_PAPI && sw_probe(why, sizeof why) == 0) g_sw_usable = 1;
    if (first_failure) {
        char all[sizeof bad + sizeof first_why];
        snprintf(all, sizeof all, "%s%s", bad, first_why);
        fallback_warning(first_failure, all, src);
    } else if (bad[0]) {
        snprintf(g_warning, sizeof g_warning, "%scounters from %s", bad, src_names[src]);
        fprintf(stderr, "dcbench: warning: %s\n", g_warning);
    }
    return src_names[g_src];
}

const char *dcbh_counters_warning(void) { return g_warning; }

static int g_running;
static struct rusage g_ru0;

int dcbh_counters_start(void) {
    dcbh_counters_init();
    g_running = 0;
    if (g_src == SRC_RUSAGE && getrusage(RUSAGE_SELF, &g_ru0) != 0) return -1;
    if ((g_src == SRC_PERF_SW || g_src == SRC_PAPI) && g_sw_usable && sw_start() != 0) return -1;
#ifdef DCBH_HAVE_PAPI
    if (g_src == SRC_PAPI && PAPI_start(g_papi_es) != PAPI_OK) {
        sw_close_all();
        return -1;
    }
#endif
    g_running = 1;
    return 0;
}

static double tv_s(struct timeval t) { return (double)t.tv_sec + 1e-6 * (double)t.tv_usec; }

int dcbh_counters_stop(dcbh_counters *out) {
    if (!out) return -1;
    out->source = src_names[g_src < 0 ? SRC_NONE : g_src];
    for (int i = 0; i < DCBH_NCOUNTERS; i++) out->v[i] = NAN;
    if (!g_running) return -1;
    g_running = 0;
    if (g_src == SRC_RUSAGE) {
        struct rusage r;
        if (getrusage(RUSAGE_SELF, &r) != 0) return -1;
        out->v[DCBH_C_TASK_CLOCK_S] = tv_s(r.ru_utime) - tv_s(g_ru0.ru_utime) +
                                      tv_s(r.ru_stime) - tv_s(g_ru0.ru_stime);
        out->v[DCBH_C_PAGE_FAULTS] =
            (double)(r.ru_minflt - g_ru0.ru_minflt + r.ru_majflt - g_ru0.ru_majflt);
        out->v[DCBH_C_CTX_SWITCHES] =
            (double)(r.ru_nvcsw - g_ru0.ru_nvcsw + r.ru_nivcsw - g_ru0.ru_nivcsw);
        return 0;
    }
    int rc = 0;
#ifdef DCBH_HAVE_PAPI
    if (g_src == SRC_PAPI) {
        long long val[4] = {0};
        if (PAPI_stop(g_papi_es, val) == PAPI_OK) {
            for (int i = 0; i < g_papi_n; i++) out->v[g_papi_col[i]] = (double)val[i];
        } else {
            rc = -1;
        }
    }
#endif
    if ((g_src == SRC_PERF_SW || g_src == SRC_PAPI) && g_sw_usable) sw_stop(out->v);
    return rc;
}
