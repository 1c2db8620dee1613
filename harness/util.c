/* util.c — what every part of the harness uses: its one clock, the one
 * definition of quick mode's timing, and where the shipped data files are. */
#define _GNU_SOURCE
#include "harness.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
