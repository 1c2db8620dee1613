/* measure.h — the harness's measuring side: timing through Google Benchmark
 * (a C shim over one C++ file), hardware/software counters with graceful
 * fallbacks, machine calibration and the machine/build description that
 * every result carries. The Lua API and sweeps (lua_dcb.c, sweep.c) use only
 * this header. */
#ifndef DCBH_MEASURE_H
#define DCBH_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ files */
/* Appends one complete line (ending in '\n') with a single write(2) on an
 * O_APPEND descriptor, then fsync: a reader sees all of it or none. A write
 * that runs out of room is undone (the file cut back to its size before) and
 * -1 returned with the errno of the failure (ENOSPC, EFBIG), never a stale
 * one. The CSV rows (results.c) and the JSON Lines of dcbh_time use it. */
int csv_append_line(int fd, const char *line, size_t len);

/* ----------------------------------------------------------------- timing */
#define DCBH_MAX_REPS 64

/* The harness's one clock: monotonic seconds. */
double dcbh_now(void);

/* What else ran on the machine while a point was measured (/proc/stat,
 * /proc/loadavg, getrusage): begin before the point, end after it.
 *   loadavg      the 1-minute load average at the end
 *   steal_pct    % of all CPU time the hypervisor gave to other guests
 *   others_cpus  cores' worth of CPU time other processes used (all busy
 *                time minus this process's own), on average over the point
 *   contended    others_cpus left fewer than `threads` cores free (0.25
 *                of slack), or steal above 10%: the times are distorted
 * NAN (and contended 0) where /proc cannot be read or the point was too
 * short for the 10 ms ticks to say (under 50 ms). */
typedef struct dcbh_load_mark {
    unsigned long long busy, steal, total;
    double self_s, wall;
} dcbh_load_mark;
typedef struct dcbh_load {
    double loadavg, steal_pct, others_cpus;
    int contended;
} dcbh_load;
void dcbh_load_begin(dcbh_load_mark *m);
void dcbh_load_end(const dcbh_load_mark *m, int threads, dcbh_load *out);
/* The cpu line of /proc/stat: busy ticks (user, nice, system, irq, softirq),
 * steal ticks and all ticks; 0 where unreadable. */
void dcbh_cpu_ticks(unsigned long long *busy, unsigned long long *steal, unsigned long long *total);

/* The one definition of quick mode (--quick) for timing: repetitions and the
 * minimum time of one repetition, quick (3, 5 ms) or normal (9, 50 ms). */
typedef struct dcbh_timing {
    int repetitions;
    double min_time;
} dcbh_timing;
dcbh_timing dcbh_timing_for(int quick);

typedef struct dcbh_time_opts {
    const char *name;        /* benchmark name (shows in Google Benchmark's JSON) */
    int repetitions;         /* >= 1 (default 9); capped at DCBH_MAX_REPS */
    double min_time;         /* seconds per repetition (default 0.05) */
    int threads;             /* recorded only; the body sets its own threads */
    const char *json_path;   /* if non-NULL: Google Benchmark's own JSON for this run is
                                appended there (one JSON document per line, i.e. JSON
                                Lines; the file is created if missing) */
} dcbh_time_opts;

typedef struct dcbh_time_stats {
    int repetitions;
    int64_t iterations;              /* per repetition, chosen by Google Benchmark */
    double median, mean, min, max, stddev, cv;   /* seconds per iteration; stddev is the
                                        sample one (n-1), cv = stddev/mean; both NAN
                                        when repetitions == 1 */
    double rep[DCBH_MAX_REPS];       /* per-repetition seconds per iteration (wall time);
                                        NAN past `repetitions` */
    int json_failed;                 /* dcbh_time returned -1 because json_path could not
                                        be written (a full disk), not because of the body */
} dcbh_time_stats;

/* The timed body: one call is one iteration. `iteration` counts up from 0
 * over the whole measurement, so a body can rotate through input buffers
 * (cold-cache timing). Returns 0 on success; non-zero aborts the timing. */
typedef int (*dcbh_body)(void *ctx, int64_t iteration);

/* Runs body under Google Benchmark with opts' repetitions and min_time
 * (iterations chosen on wall time, no warm-up of Google Benchmark's own: warm
 * up before calling). Google Benchmark also calls the body in its estimation
 * runs before the first repetition. After a body error the body is not called
 * again. Not reentrant (Google Benchmark's state is global): calls are
 * serialised, and a body must not call dcbh_time.
 * 0 on success; otherwise -1 and a message in err. out->json_failed tells
 * the caller's failure from the harness's: 1 when the timing ran (out is
 * filled) but json_path could not be appended (err names the file and
 * strerror; no part of the record is left there). */
int dcbh_time(dcbh_body body, void *ctx, const dcbh_time_opts *opts, dcbh_time_stats *out,
              char *err, size_t errlen);
const char *dcbh_gbench_version(void);   /* e.g. "1.7.1" */

/* --------------------------------------------------------------- counters
 * A fixed set of columns; the source decides which can be filled:
 *   papi     PAPI low-level event set (cycles, instructions, l1d_misses,
 *            llc_misses) plus the software ones through perf_event;
 *   perf_sw  Linux perf_event software events (task_clock_s, page_faults,
 *            ctx_switches, cpu_migrations);
 *   rusage   getrusage (task_clock_s from user+sys time, page_faults from
 *            minflt+majflt, ctx_switches from nvcsw+nivcsw);
 *   none.
 * A value a source cannot give is NAN (written as an empty CSV cell), never 0. */
enum {
    DCBH_C_CYCLES, DCBH_C_INSTRUCTIONS, DCBH_C_L1D_MISSES, DCBH_C_LLC_MISSES,
    DCBH_C_TASK_CLOCK_S, DCBH_C_PAGE_FAULTS, DCBH_C_CTX_SWITCHES, DCBH_C_CPU_MIGRATIONS,
    DCBH_NCOUNTERS
};
extern const char *const dcbh_counter_names[DCBH_NCOUNTERS];

typedef struct dcbh_counters {
    const char *source;              /* "papi" | "perf_sw" | "rusage" | "none" */
    double v[DCBH_NCOUNTERS];        /* totals over the measured region; NAN = unavailable */
} dcbh_counters;

/* Chooses the best source once (DCB_COUNTERS=papi|perf_sw|rusage|none forces
 * one). The first call that falls back prints one warning to stderr that
 * says why (PAPI's own reason). Returns the source name. */
const char *dcbh_counters_init(void);
const char *dcbh_counters_warning(void);   /* "" if none */
/* Counts the calling thread and the threads it creates afterwards (inherit).
 * perf_sw also counts every other thread that exists at start (an OpenMP or
 * BLAS pool created earlier), so its columns cover the whole process; PAPI's
 * hardware columns cover only the calling thread and its later children
 * (see counters.c). One region at a time; start and stop on one thread.
 * stop returns -1 (all NAN) when no region was started. */
int dcbh_counters_start(void);
int dcbh_counters_stop(dcbh_counters *out);

/* ------------------------------------------------------------ calibration */
typedef struct dcbh_calib {
    double peak_gflops_1t, peak_gflops_all;   /* fp32 FMA throughput */
    double bw_gbs_1t, bw_gbs_all;             /* memory bandwidth (triad-like) */
    int threads_all;
    char when[32];                            /* ISO date of the measurement */
    char isa[32];                             /* "avx512" | "avx2" | "scalar": dcb_isa() when measured */
} dcbh_calib;

/* Takes a few seconds (arrays of 3 x 128 MiB); threads_all < 1 means all
 * processors. DCB_CALIB_QUICK=1: short runs on cache-sized arrays, for tests
 * (the bandwidth is then a cache bandwidth). */
int dcbh_calibrate(dcbh_calib *c, int threads_all);
/* The file holds one calibration per ISA level: a JSON array of flat objects
 * {peak_gflops_1t, peak_gflops_all, bw_gbs_1t, bw_gbs_all, threads_all,
 * when, isa} (a single such object, as earlier versions wrote, reads as one
 * level). A peak holds only for the instructions it was measured with, so
 * readers take the level of this run (dcb_isa()), never another's.
 *   save      replaces c->isa's calibration and keeps the other levels of a
 *             valid file (an absent or malformed one is replaced); temp +
 *             rename, makes dirs. The number of other levels kept, or -1.
 *   load_all  every level (at most max), in file order: their number, or -1
 *             where the file is absent or malformed (a level twice included).
 *   load_isa  isa's: 0 (and *c), 1 where the file is valid but has none of
 *             it, -1 where absent or malformed (*c untouched unless 0).
 *   load      load_isa of dcb_isa(), the level this process runs. */
#define DCBH_CALIB_MAX_LEVELS 8
int dcbh_calib_save(const char *path, const dcbh_calib *c);
int dcbh_calib_load_all(const char *path, dcbh_calib *out, int max);
int dcbh_calib_load_isa(const char *path, const char *isa, dcbh_calib *c);
int dcbh_calib_load(const char *path, dcbh_calib *c);
/* mkdir -p of the directory part of path (calibration files). */
void dcbh_mkdir_parent(const char *path);
/* Default location: results/calibration.json (DCB_CALIBRATION overrides). */
const char *dcbh_calib_path(void);

/* ------------------------------------------------------------ machine info
 * A JSON object (malloc'd, caller frees) describing where a result was made:
 * cpu model, ISA flags of interest, cores, memory, compiler and flags, BLAS
 * with its core type and threads (and the OPENBLAS_CORETYPE the environment
 * had, if any), library versions (libdcb, Lua, Google Benchmark, PAPI,
 * oneDNN if linked), the project's git commit, date, hostname and the
 * command line. */
char *dcbh_machine_json(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
