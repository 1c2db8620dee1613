/* dcbench — the harness program: runs Lua sweep scripts (module `dcb`),
 * merges sharded results, calibrates the machine, and keeps the built-in
 * conv2d engine table (`dcbench engines`). */
#define _GNU_SOURCE
#include "coretype.h"
#include "dcb.h"
#include "harness.h"

#include <limits.h>
#include <omp.h>
#include <sys/stat.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

dcbh_options dcbh_opt = {"results", 1, 1, 0, "png", 0, NULL};

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcbench [OPTIONS] SCRIPT.lua [script arguments...]\n"
            "       dcbench [OPTIONS] COMMAND ...\n"
            "Commands:\n"
            "  run SCRIPT.lua [args]   run a Lua script (the same as giving the script directly);\n"
            "                          it sees `require \"dcb\"`, `arg`, dcb.quick, dcb.shard, dcb.results\n"
            "  demo                    small versions of every shipped sweep: the same as\n"
            "                          dcbench --quick --results results/demo sweeps/demo.lua\n"
            "  calibrate [THREADS]     measure peak fp32 GFLOP/s and memory bandwidth (1 and THREADS\n"
            "                          threads, default all cores) into the calibration file\n"
            "                          (DCB_CALIBRATION, default results/calibration.json); rooflines use it\n"
            "  merge OUT.csv IN.csv... join the CSVs of a sharded sweep by point id (no duplicates)\n"
            "  plot CSV X [Y [BY]]     draw Y (default time) against X, one line per BY (default impl)\n"
            "  tables                  the papers' cost tables: results/tables/*.csv and *.md (published\n"
            "                          MACs/params against ours, from the network descriptions)\n"
            "  list                    every registered operator and implementation\n"
            "  engines                 built-in table: conv2d engines on a few layers (time, GFLOP/s, error)\n"
            "Options:\n"
            "  --results DIR           where sweeps write (default results/): DIR/<script>/<name>.csv,\n"
            "                          .json (machine + definition), .gbench.jsonl, figures\n"
            "  --shard I/N             run only part I of N (1 <= I <= N) of every sweep; points go to\n"
            "                          shards by their id, into <name>.shardIofN.csv; join with merge\n"
            "  --quick                 dcb.quick = true: shipped sweeps shrink their grids; fewer\n"
            "                          repetitions (3) and a shorter minimum time (5 ms)\n"
            "  --format png|pdf|svg    figure format (png via pngcairo; pdf, svg for papers)\n"
            "  --help                  this text\n"
            "Sweeps: dcb.sweep{name=, op=, base={...}, grid={key={values}}, impls={...}, filter=function(p),\n"
            "  measure={\"time\",\"counters\",\"similarity\"}, plot={x=, y=, by=}, repetitions=, min_time=,\n"
            "  rotate=true (cold cache), seed=, dir=}. Grid keys N, H, W (image ops) and T (sequence ops)\n"
            "  give the input shape (defaults N=1, H=W=28, T=128); every other key is a hyperparameter.\n"
            "  A killed sweep resumes where it stopped when run again.\n"
            "Environment: OPENBLAS_CORETYPE is reported and dropped (DCB_KEEP_CORETYPE=1 keeps it);\n"
            "  DCB_COUNTERS=papi|perf_sw|rusage|none; DCB_HOME: where scripts/ and sweeps/ are.\n");
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

static void print_machine(void) {
    const char *forced = getenv("DCB_FORCED_CORETYPE");
    printf("# libdcb %s, built with: %s\n", DCB_VERSION, dcb_build_flags());
    printf("# BLAS: %s%s%s\n", dcb_blas_info(), forced ? "; environment had OPENBLAS_CORETYPE=" : "",
           forced ? forced : "");
}

static int cmd_list(void) {
    for (int i = 0; i < dcb_op_count(); i++) {
        const char *op = dcb_op_name(i);
        printf("%s:", op);
        for (int k = 0; k < dcb_impl_count(op); k++) printf(" %s", dcb_impl_name(op, k));
        printf("\n");
    }
    return 0;
}

typedef struct layer {
    const char *name;
    int N, cin, cout, H, k, stride, pad, groups;
} layer;

/* Median seconds of `reps` runs, each repeated until it lasts >= 20 ms. */
static double time_op(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, int reps, double *spread) {
    double t[16];
    int inner = 1;
    for (;;) {
        double t0 = now();
        for (int i = 0; i < inner; i++) dcb_op_run(op, x, y, ws, NULL);
        double dt = now() - t0;
        if (dt > 0.02 || inner > 1 << 20) break;
        inner *= 2;
    }
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < inner; i++) dcb_op_run(op, x, y, ws, NULL);
        t[r] = (now() - t0) / inner;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    *spread = (t[reps - 1] - t[0]) / t[reps / 2];
    return t[reps / 2];
}

static int cmd_engines(void) {
    static const layer layers[] = {
        {"resnet 3x3 64@56", 1, 64, 64, 56, 3, 1, 1, 1},
        {"resnet 3x3 128@28", 1, 128, 128, 28, 3, 1, 1, 1},
        {"resnet 3x3 256@14", 1, 256, 256, 14, 3, 1, 1, 1},
        {"resnet 3x3 512@7", 1, 512, 512, 7, 3, 1, 1, 1},
        {"1x1 256->64@56", 1, 256, 64, 56, 1, 1, 0, 1},
        {"3x3 s2 128->256@28", 1, 128, 256, 28, 3, 2, 1, 1},
        {"resnext 3x3 g32 128@28", 1, 128, 128, 28, 3, 1, 1, 32},
        {"depthwise 3x3 144@56", 1, 144, 144, 56, 3, 1, 1, 144},
    };
    print_machine();
    printf("%-24s %-12s %10s %8s %9s %10s  %s\n", "layer", "engine", "median_ms", "spread", "GFLOP/s",
           "rel_err", "status");
    int failures = 0;
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        const layer *L = &layers[l];
        dcb_tensor *x = dcb_tensor_new4(L->N, L->cin, L->H, L->H);
        dcb_tensor_randn(x, 1);
        dcb_tensor *ref = NULL;
        for (int k = 0; k < dcb_impl_count("conv2d"); k++) {
            const char *impl = dcb_impl_name("conv2d", k);
            dcb_hparam hp[] = {{"cin", L->cin, NULL},     {"cout", L->cout, NULL},
                               {"k", L->k, NULL},         {"stride", L->stride, NULL},
                               {"pad", L->pad, NULL},     {"groups", L->groups, NULL},
                               {"threads", 1, NULL}};
            dcb_op *op = NULL;
            dcb_status st = dcb_op_create("conv2d", impl, hp, 7, &op);
            if (st != DCB_OK) {
                printf("%-24s %-12s %10s %8s %9s %10s  %s: %s\n", L->name, impl, "", "", "", "",
                       dcb_status_name(st), dcb_last_error());
                if (!dcb_status_is_unsupported(st)) failures++;
                continue;
            }
            dcb_op_init_weights(op, 7);
            dcb_op_prepare(op);
            int yn;
            int64_t ys[DCB_MAX_DIMS];
            size_t wsb = 0;
            dcb_op_plan(op, 4, x->shape, &yn, ys, &wsb);
            dcb_tensor *y = dcb_tensor_new(yn, ys);
            void *ws = wsb ? dcb_aligned_alloc(wsb) : NULL;
            dcb_cost c;
            dcb_op_cost(op, 4, x->shape, &c);
            double spread = 0, t = time_op(op, x, y, ws, 5, &spread);
            double err = 0;
            if (!ref)
                ref = dcb_tensor_clone(y);
            else
                err = dcb_max_rel_err(y, ref, NULL);
            printf("%-24s %-12s %10.3f %7.1f%% %9.1f %10.2e  ok\n", L->name, impl, 1e3 * t, 100 * spread,
                   c.flops / t * 1e-9, err);
            dcb_tensor_free(y);
            dcb_aligned_free(ws);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
    printf("# GFLOP/s counts 2 * MACs of the direct convolution; rel_err is against naive.\n");
    return failures ? 1 : 0;
}

static int cmd_calibrate(int argc, char **argv) {
    int threads = argc > 0 ? atoi(argv[0]) : omp_get_num_procs();
    if (threads < 1) {
        fprintf(stderr, "dcbench calibrate: THREADS must be a positive integer, got '%s'\n", argv[0]);
        return 2;
    }
    dcbh_calib c;
    if (dcbh_calibrate(&c, threads)) {
        fprintf(stderr, "dcbench calibrate: the measurement failed\n");
        return 1;
    }
    const char *path = dcbh_calib_path();
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl) {
        *sl = 0;
        mkdir_p(dir);
    }
    if (dcbh_calib_save(path, &c)) {
        fprintf(stderr, "dcbench calibrate: cannot write %s\n", path);
        return 1;
    }
    printf("peak fp32: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (%d threads), %s\n", c.peak_gflops_1t,
           c.peak_gflops_all, c.threads_all, c.isa);
    printf("memory bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n", c.bw_gbs_1t, c.bw_gbs_all,
           c.threads_all);
    printf("saved to %s\n", path);
    return 0;
}

static int cmd_plot(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dcbench plot CSV X [Y [BY]]\n");
        return 2;
    }
    dcbh_plot_spec sp = {argv[1], argc > 2 ? argv[2] : "time", argc > 3 ? argv[3] : "impl", NULL, NULL};
    char out[PATH_MAX + 64], err[1024];
    if (dcbh_plot(argv[0], &sp, out, sizeof out, err, sizeof err)) {
        fprintf(stderr, "dcbench plot: %s\n", err);
        return 1;
    }
    printf("%s\n", out);
    return 0;
}

static int is_script(const char *a) {
    size_t n = strlen(a);
    return n > 4 && !strcmp(a + n - 4, ".lua");
}

int main(int argc, char **argv) {
    dcb_fix_coretype(argv);
    dcbh_opt.argc = argc;
    dcbh_opt.argv = argv;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quick")) {
            dcbh_opt.quick = 1;
        } else if (!strcmp(a, "--results") || !strcmp(a, "--shard") || !strcmp(a, "--format")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dcbench: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--results")) {
                dcbh_opt.results_dir = v;
            } else if (!strcmp(a, "--format")) {
                if (strcmp(v, "png") && strcmp(v, "pdf") && strcmp(v, "svg")) {
                    fprintf(stderr, "dcbench: --format %s: valid formats are png, pdf, svg\n", v);
                    return 2;
                }
                dcbh_opt.format = v;
            } else {
                int si, sn;
                char extra;
                if (sscanf(v, "%d/%d%c", &si, &sn, &extra) != 2 || sn < 1 || si < 1 || si > sn) {
                    fprintf(stderr, "dcbench: --shard %s: expected I/N with 1 <= I <= N, e.g. 2/4\n", v);
                    return 2;
                }
                dcbh_opt.shard_i = si;
                dcbh_opt.shard_n = sn;
            }
        } else {
            fprintf(stderr, "dcbench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    int rest = argc - i - 1;
    char **rv = argv + i + 1;
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "engines")) return cmd_engines();
    if (!strcmp(cmd, "list")) return cmd_list();
    if (!strcmp(cmd, "merge")) return cmd_merge(rest, rv);
    if (!strcmp(cmd, "calibrate")) return cmd_calibrate(rest, rv);
    if (!strcmp(cmd, "plot")) return cmd_plot(rest, rv);
    if (!strcmp(cmd, "demo")) {
        static char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/sweeps/demo.lua", dcbh_home());
        dcbh_opt.quick = 1;
        if (!strcmp(dcbh_opt.results_dir, "results")) dcbh_opt.results_dir = "results/demo";
        return dcbh_run_script(path, rest, rv);
    }
    if (!strcmp(cmd, "tables")) {
        static char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/sweeps/cost_tables.lua", dcbh_home());
        return dcbh_run_script(path, rest, rv);
    }
    if (!strcmp(cmd, "run")) {
        if (!rest) {
            fprintf(stderr, "usage: dcbench run SCRIPT.lua [args...]\n");
            return 2;
        }
        return dcbh_run_script(rv[0], rest - 1, rv + 1);
    }
    if (is_script(cmd)) return dcbh_run_script(cmd, rest, rv);
    fprintf(stderr, "dcbench: unknown command '%s' (commands: run, demo, tables, calibrate, merge, plot, list, engines; "
                    "or a script ending in .lua)\n", cmd);
    return 2;
}
