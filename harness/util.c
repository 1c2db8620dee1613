/* util.c — what every part of the harness uses: its one clock, the one
 * definition of quick mode's timing, and where the shipped data files are. */
#define _GNU_SOURCE
#include "harness.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double dcbh_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dcbh_timing dcbh_timing_for(int quick) {
    dcbh_timing t = {9, 0.05};
    if (quick) t = (dcbh_timing){3, 0.005};
    return t;
}

const char *dcbh_home(void) {
    static char home[PATH_MAX + 32];
    if (home[0]) return home;
    const char *e = getenv("DCB_HOME");
    if (e && *e) {
        snprintf(home, sizeof home, "%s", e);
        return home;
    }
    /* build/dcbench -> the checkout; otherwise the working directory */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *sl = strrchr(exe, '/');
        if (sl) {
            *sl = 0;
            char probe[PATH_MAX + 64];
            struct stat st;
            snprintf(probe, sizeof probe, "%s/../scripts/style.gp", exe);
            if (stat(probe, &st) == 0) {
                snprintf(home, sizeof home, "%s/..", exe);
                return home;
            }
            /* installed: PREFIX/bin/dcbench and PREFIX/share/dcbench */
            snprintf(probe, sizeof probe, "%s/../share/dcbench/scripts/style.gp", exe);
            if (stat(probe, &st) == 0) {
                snprintf(home, sizeof home, "%s/../share/dcbench", exe);
                return home;
            }
        }
    }
    snprintf(home, sizeof home, ".");
    return home;
}

/* ------------------------------------------------------------ machine load */
void dcbh_cpu_ticks(unsigned long long *busy, unsigned long long *steal, unsigned long long *total) {
    unsigned long long t[8] = {0};
    *busy = *steal = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    const int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &t[0], &t[1], &t[2], &t[3], &t[4], &t[5],
                         &t[6], &t[7]);
    fclose(f);
    if (n < 8) return;
    for (int i = 0; i < 8; i++) *total += t[i];
    *busy = t[0] + t[1] + t[2] + t[5] + t[6]; /* user nice system irq softirq (guest is within user) */
    *steal = t[7];
}

static double self_cpu_s(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return NAN;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

void dcbh_load_begin(dcbh_load_mark *m) {
    dcbh_cpu_ticks(&m->busy, &m->steal, &m->total);
    m->self_s = self_cpu_s();
    m->wall = dcbh_now();
}

void dcbh_load_end(const dcbh_load_mark *m, int threads, dcbh_load *out) {
    dcbh_load_mark e;
    dcbh_load_begin(&e);
    out->loadavg = out->steal_pct = out->others_cpus = NAN;
    out->contended = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &out->loadavg) != 1) out->loadavg = NAN;
        fclose(f);
    }
    const double wall = e.wall - m->wall;
    const long hz = sysconf(_SC_CLK_TCK), ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (!m->total || e.total <= m->total || wall < 0.05 || hz <= 0 || ncpu <= 0) return;
    out->steal_pct = 100.0 * (double)(e.steal - m->steal) / (double)(e.total - m->total);
    const double busy_s = (double)(e.busy - m->busy) / (double)hz;
    double others = (busy_s - (e.self_s - m->self_s)) / wall;
    if (!(others >= 0)) others = 0; /* tick rounding */
    out->others_cpus = others;
    out->contended = others > (double)ncpu - threads + 0.25 || out->steal_pct > 10.0;
}
