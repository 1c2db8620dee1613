/* dcbench — the harness program: reads the command line into the options
 * context and hands it down; runs Lua sweep scripts (module `dcb`), merges
 * sharded results, calibrates the machine. The built-in tables (`dcbench
 * tables`, `dcbench engines`) are Lua scripts in sweeps/. */
#define _GNU_SOURCE
#include "coretype.h"
#include "dcb.h"
#include "harness.h"

#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "                          (DCB_CALIBRATION, default results/calibration.json); rooflines use it;\n"
            "                          then times impl auto's candidates on reference layers into\n"
            "                          auto_calibration.csv beside it (DCB_AUTO_CALIBRATION), auto's model;\n"
            "                          both are of this ISA level (DCB_ISA): the CSV keeps other levels' rows\n"
            "  merge OUT.csv IN.csv... join the CSVs of a sharded sweep by point id (no duplicates; a\n"
            "                          point's last row in a file is its result; a torn row is refused)\n"
            "  compare A.csv B.csv     two runs of one sweep (two commits, two machines), row by row (point\n"
            "                          id and impl; ok on both sides): the ratio B/A of the median times,\n"
            "                          its interval [q1_B/q3_A, q3_B/q1_A] (quartiles of the repetitions;\n"
            "                          min/max for older CSVs), slower/faster where that\n"
            "                          excludes 1 and |ratio-1| > the threshold; a table, the geometric\n"
            "                          mean, the rows not compared, machine/ISA/contention notes, a CSV\n"
            "                          and a figure. --threshold T (default 0.05), --out CMP.csv (default\n"
            "                          beside B: <B>_vs_<A>.csv; the figure beside it in --format),\n"
            "                          --no-plot, --fail-on-slower (exit 4 when a row is slower beyond the\n"
            "                          noise). Exit 0 compared (with or without differences), 1 no row ok\n"
            "                          on both sides, 2 a missing file, not a sweep CSV or a bad option\n"
            "  plot CSV X [Y [BY]] [-o OUT] [--title T] [--crossover]\n"
            "                          draw Y (default time) against X, one line per BY (default impl),\n"
            "                          panels per other varying hyperparameter, into OUT (.png/.pdf/.svg;\n"
            "                          default <csv>_<Y>_vs_<X>[_by_<BY>]; never the sweep's own figure);\n"
            "                          --crossover: which BY is fastest over the grid of X and Y\n"
            "  tables                  the papers' cost tables: results/tables/*.csv and *.md (published\n"
            "                          MACs/params against ours, from the network descriptions)\n"
            "  list                    every registered operator, its implementations and its backward ones\n"
            "  list OP [key=value...]  one operator: its hyperparameters and defaults, its weights' shapes\n"
            "                          for these hyperparameters (example values where one has no default)\n"
            "                          and their layouts (docs/OPERATORS.md), the input and output shapes\n"
            "                          (N=, H=, W=, T= set the sizes), its forward and backward\n"
            "                          implementations; e.g. dcbench list condconv cin=64 cout=64 k=3 experts=8\n"
            "  isa                     the micro-kernels' instruction set in use, then every level this CPU\n"
            "                          runs (DCB_ISA=avx2|scalar forces a narrower one)\n"
            "  engines                 built-in table: conv2d engines on a few layers (time, GFLOP/s, error)\n"
            "Options:\n"
            "  --results DIR           where sweeps write (default results/): DIR/<script>/<name>.csv,\n"
            "                          .json (machine + definition), .gbench.jsonl, figures\n"
            "  --shard I/N             run only part I of N (1 <= I <= N) of every sweep; points go to\n"
            "                          shards by their id, into <name>.shardIofN.csv; join with merge\n"
            "  --quick                 dcb.quick = true: shipped sweeps shrink their grids; fewer\n"
            "                          repetitions (3) and a shorter minimum time (5 ms)\n"
            "  --format png|pdf|svg    figure format (png via pngcairo; pdf, svg for papers)\n"
            "  --retry-errors          a resumed sweep measures again the points whose last row says\n"
            "                          error (the new row, appended after it, is their result); without\n"
            "                          it they stay done and the summary counts them\n"
            "  --fresh                 a sweep whose results were written by another definition (grid,\n"
            "                          base, impls, filter, measure, repetitions, min_time, rotate, seed,\n"
            "                          build) or another script of the same basename moves them to\n"
            "                          <dir>/replaced-<time>/ and starts again; without it such a run is\n"
            "                          refused, with what changed (a resume never mixes two experiments)\n"
            "  --threads N             the thread count of every op, net, study and sweep point whose\n"
            "                          script names none (default 1); results record it\n"
            "  --keep-going            exit 0 although sweep points errored (otherwise: exit 3; each\n"
            "                          error's reason is printed, and every sweep ends with a table of\n"
            "                          ok / unsupported / error points and the fastest, per impl)\n"
            "  --help                  this text\n"
            "The Lua API: docs/LUA.md has every function and field of the module dcb, every option of\n"
            "  dcb.sweep, dcb.compare, dcb.train, dcb.study and dcb.plot, and what each returns, with examples.\n"
            "Sweeps: dcb.sweep{name=, op=, base={...}, grid={key={values}}, impls={...}, filter=function(p),\n"
            "  measure={\"time\",\"counters\",\"similarity\"}, plot={x=, y=, by=, title=, name=} (or a list),\n"
            "  repetitions=, min_time=,\n"
            "  rotate=true (cold cache), seed=, dir=}. Grid keys N, H, W (image ops) and T (sequence ops)\n"
            "  give the input shape (defaults N=1, H=W=28, T=128); every other key is a hyperparameter.\n"
            "  A killed sweep resumes where it stopped when run again. One run of a sweep at a time\n"
            "  (a lock on its CSV; shards write their own files); a write that fails (disk full) stops it.\n"
            "Comparisons: dcb.compare{variants={{name=, op=, x=} or {name=, gemm={M=, N=, K=}, batch=, threads=}},\n"
            "  baseline=, repetitions=, min_time=, steal=true, profile=true, csv=, print=false}: the variants\n"
            "  alternate within every repetition; median, quartiles, min, max, GFLOP/s and the ratio to the\n"
            "  baseline, printed and returned. The focused benchmarks: sweeps/bench/*.lua (make bench-*).\n"
            "  dcb.compare_results(a, b, {threshold=, out=, plot=, print=}): dcbench compare from Lua; returns\n"
            "  .rows, .geomean, .faster, .slower, .same, .only_a, .only_b, .csv, .figure.\n"
            "Training: dcb.net(family, {...}), dcb.train{net=, epochs=, ...} (docs/TRAINING.md).\n"
            "Studies: dcb.study{name=, base={...}, variants={{label=, ...}}, seeds={1,2,3}, train={...}}:\n"
            "  every (variant, seed) trained once, a row each in <results>/ablations/<name>.csv (sharded,\n"
            "  resumed and merged like sweep points), then a table with intervals and published deltas and\n"
            "  figures; dcb.sample_space{space=, given=, n=, seed=}. sweeps/ablations/ (make ablations,\n"
            "  docs/ABLATIONS.md).\n"
            "Environment: OPENBLAS_CORETYPE is reported and dropped (DCB_KEEP_CORETYPE=1 keeps it);\n"
            "  DCB_COUNTERS=papi|perf_sw|rusage|none; DCB_HOME: where scripts/ and sweeps/ are;\n"
            "  DCB_STUDY_THREADS: threads per training unit of a study (default 1).\n");
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
    const char *path = dcbh_calib_path(); /* dcbh_calib_save makes its directory */
    dcbh_calib had[DCBH_CALIB_MAX_LEVELS];
    if (access(path, F_OK) == 0 && dcbh_calib_load_all(path, had, DCBH_CALIB_MAX_LEVELS) < 0)
        fprintf(stderr, "dcbench calibrate: %s is not a calibration file (malformed); it is replaced\n", path);
    const int kept = dcbh_calib_save(path, &c);
    if (kept < 0) {
        fprintf(stderr, "dcbench calibrate: cannot write %s\n", path);
        return 1;
    }
    printf("peak fp32: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (%d threads), %s\n", c.peak_gflops_1t,
           c.peak_gflops_all, c.threads_all, c.isa);
    printf("memory bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n", c.bw_gbs_1t, c.bw_gbs_all,
           c.threads_all);
    printf("saved to %s (and kept %d calibration%s of other ISA levels)\n", path, kept, kept == 1 ? "" : "s");
    /* impl "auto"'s references: every candidate on the reference grid */
    const char *q = getenv("DCB_CALIB_QUICK");
    printf("timing auto's candidates on the reference layers (%s, 1 and %d threads)...\n", dcb_isa(), threads);
    fflush(stdout);
    return dcbh_auto_calibrate(threads, q && *q && strcmp(q, "0"), stdout) ? 1 : 0;
}

/* dcbench plot CSV X [Y [BY]] [-o OUT]: a figure of a results CSV, by
 * default <csv>_<y>_vs_<x>[_by_<by>].<format>; never the sweep's own figure. */
static int cmd_plot(const dcbh_options *o, int argc, char **argv) {
    const char *pos[4] = {NULL, NULL, NULL, NULL}, *out = NULL, *title = NULL, *kind = NULL;
    int np = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--crossover")) {
            kind = "crossover";
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--title")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dcbench plot: %s needs a value\n", argv[i]);
                return 2;
            }
            if (argv[i][1] == 'o')
                out = argv[++i];
            else
                title = argv[++i];
        } else if (np < 4) {
            pos[np++] = argv[i];
        } else {
            fprintf(stderr, "dcbench plot: too many arguments ('%s')\n", argv[i]);
            return 2;
        }
    }
    if (np < 2) {
        fprintf(stderr, "usage: dcbench plot CSV X [Y [BY]] [-o OUT[.png|.pdf|.svg]] [--title TEXT] [--crossover]\n");
        return 2;
    }
    if (out) {
        /* the sweep's own figures (<csv>.<ext>, <csv>_roofline.<ext>) are not overwritten */
        char stem[PATH_MAX], ostem[PATH_MAX];
        snprintf(stem, sizeof stem, "%s", pos[0]);
        size_t n = strlen(stem);
        if (n > 4 && !strcmp(stem + n - 4, ".csv")) stem[n - 4] = 0;
        snprintf(ostem, sizeof ostem, "%s", out);
        n = strlen(ostem);
        if (n > 4 && (!strcmp(ostem + n - 4, ".png") || !strcmp(ostem + n - 4, ".pdf") || !strcmp(ostem + n - 4, ".svg")))
            ostem[n - 4] = 0;
        char roof[PATH_MAX + 16];
        snprintf(roof, sizeof roof, "%s_roofline", stem);
        if (!strcmp(ostem, stem) || !strcmp(ostem, roof)) {
            fprintf(stderr, "dcbench plot: -o %s would overwrite the sweep's own figure; give another name\n", out);
            return 2;
        }
    }
    if (kind && np < 3) {
        fprintf(stderr, "dcbench plot --crossover: needs CSV X Y (two hyperparameters of the grid)\n");
        return 2;
    }
    dcbh_plot_spec sp = {pos[1], np > 2 ? pos[2] : "time", np > 3 ? pos[3] : "impl", title, out, kind};
    char path[PATH_MAX + 64], err[1024];
    if (dcbh_plot(o, pos[0], &sp, path, sizeof path, err, sizeof err)) {
        fprintf(stderr, "dcbench plot: %s\n", err);
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

static int is_script(const char *a) {
    size_t n = strlen(a);
    return n > 4 && !strcmp(a + n - 4, ".lua");
}

/* A script's exit status: 3 where it ran but sweep points errored (their
 * reasons and the per-implementation summary are above), unless
 * --keep-going; unsupported points are not errors. */
static int finish(const dcbh_options *o, int rc) {
    const int n = dcbh_sweep_errors();
    if (rc || !n) return rc;
    fprintf(stderr, "dcbench: %d sweep point(s) failed with an error (reasons above)%s\n", n,
            o->keep_going ? "; --keep-going: exit status 0" : "; exit status 3 (--keep-going: 0)");
    return o->keep_going ? 0 : 3;
}

/* A script shipped in sweeps/ (the built-in commands). */
static int run_shipped(const dcbh_options *o, const char *script, int argc, char **argv) {
    static char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/sweeps/%s", dcbh_home(), script);
    return finish(o, dcbh_run_script(o, path, argc, argv));
}

/* dcbench isa: the micro-kernels' instruction set in this process, then
 * every level this CPU runs, widest first ("avx512 avx512,avx2,scalar"). */
static int cmd_isa(void) {
    printf("%s %s\n", dcb_isa(), dcb_isa_available());
    return 0;
}

int main(int argc, char **argv) {
    const int wait_changed = dcb_set_wait_policy();
    dcb_fix_coretype(argv);
    if (wait_changed) dcb_apply_wait_policy(argv);
    {
        char why[256];
        if (dcb_isa_check(why, sizeof why) != DCB_OK) {
            fprintf(stderr, "dcbench: %s\n", why);
            return 2;
        }
    }
    {   /* impl "auto"'s references, where dcbench calibrate wrote them */
        char err[600];
        if (dcbh_auto_load(dcbh_auto_path(), err, sizeof err) < 0)
            fprintf(stderr, "dcbench: warning: impl auto runs by its fixed rule: %s\n", err);
    }
    dcbh_options opt = DCBH_OPTIONS_DEFAULT;
    opt.argc = argc;
    opt.argv = argv;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quick")) {
            opt.quick = 1;
        } else if (!strcmp(a, "--retry-errors")) {
            opt.retry_errors = 1;
        } else if (!strcmp(a, "--keep-going")) {
            opt.keep_going = 1;
        } else if (!strcmp(a, "--fresh")) {
            opt.fresh = 1;
        } else if (!strcmp(a, "--threads")) {
            char *end = NULL;
            const long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || !end || *end || end == argv[i + 1] || dcb_set_default_threads((int)(n > 1024 ? 0 : n)) != DCB_OK) {
                fprintf(stderr, "dcbench: --threads needs an integer from 1 to 1024, got '%s'\n",
                        i + 1 < argc ? argv[i + 1] : "");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--results") || !strcmp(a, "--shard") || !strcmp(a, "--format")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dcbench: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--results")) {
                opt.results_dir = v;
            } else if (!strcmp(a, "--format")) {
                if (strcmp(v, "png") && strcmp(v, "pdf") && strcmp(v, "svg")) {
                    fprintf(stderr, "dcbench: --format %s: valid formats are png, pdf, svg\n", v);
                    return 2;
                }
                opt.format = v;
            } else {
                int si, sn;
                char extra;
                if (sscanf(v, "%d/%d%c", &si, &sn, &extra) != 2 || sn < 1 || si < 1 || si > sn) {
                    fprintf(stderr, "dcbench: --shard %s: expected I/N with 1 <= I <= N, e.g. 2/4\n", v);
                    return 2;
                }
                opt.shard_i = si;
                opt.shard_n = sn;
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
    if (!strcmp(cmd, "engines")) return run_shipped(&opt, "engine_table.lua", rest, rv);
    if (!strcmp(cmd, "list")) return dcbh_cmd_list(rest, rv);
    if (!strcmp(cmd, "isa")) return cmd_isa();
    if (!strcmp(cmd, "merge")) return cmd_merge(rest, rv);
    if (!strcmp(cmd, "calibrate")) return cmd_calibrate(rest, rv);
    if (!strcmp(cmd, "plot")) return cmd_plot(&opt, rest, rv);
    if (!strcmp(cmd, "compare")) return dcbh_run_lua_main(&opt, "compare_results", rest, rv);
    if (!strcmp(cmd, "demo")) {
        opt.quick = 1;
        if (!strcmp(opt.results_dir, "results")) opt.results_dir = "results/demo";
        return run_shipped(&opt, "demo.lua", rest, rv);
    }
    if (!strcmp(cmd, "tables")) return run_shipped(&opt, "cost_tables.lua", rest, rv);
    if (!strcmp(cmd, "run")) {
        if (!rest) {
            fprintf(stderr, "usage: dcbench run SCRIPT.lua [args...]\n");
            return 2;
        }
        return finish(&opt, dcbh_run_script(&opt, rv[0], rest - 1, rv + 1));
    }
    if (is_script(cmd)) return finish(&opt, dcbh_run_script(&opt, cmd, rest, rv));
    fprintf(stderr, "dcbench: unknown command '%s' (commands: run, demo, tables, calibrate, merge, compare, plot, list, isa, "
                    "engines; or a script ending in .lua)\n", cmd);
    return 2;
}
