/* harness.h — what the parts of the dcbench program share: the options
 * context, a string builder, CSV results (results.c), timing of one operator
 * (bench.c), interleaved comparisons (compare.c), sweeps (sweep.c), figures
 * (plot.c) and the Lua module (lua_dcb.c). Not a public interface.
 *
 * The harness knows no operator: what an operator takes as input comes from
 * the library (dcb_op_input_layout, dcb_op_is_shape_key, dcb_op_input_shape).
 * Everything here but main (dcbench.c) is the harness library (libdcbh.a):
 * it reads the options from the pointer it is given, never from a global. */
#ifndef DCBH_HARNESS_H
#define DCBH_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dcb.h"
#include "measure.h"

/* ------------------------------------------------------------ options
 * The context of one run of dcbench, made by main from the command line and
 * passed down: to dcbh_run_script, which keeps a copy in the Lua state
 * (dcbh_lua_options), and from there to sweeps, comparisons and figures. */
typedef struct dcbh_options {
    const char *results_dir;   /* --results (default "results") */
    int shard_i, shard_n;      /* --shard i/n, 1 <= i <= n; 1/1 = everything */
    int quick;                 /* --quick */
    const char *format;        /* --format png|pdf|svg */
    int argc;                  /* the program's own command line, for the machine JSON */
    char **argv;
    int retry_errors;          /* --retry-errors: resume measures points whose last row says error */
    int keep_going;            /* --keep-going: exit 0 although points errored */
    int fresh;                 /* --fresh: a sweep whose results hold another definition moves them aside */
} dcbh_options;
#define DCBH_OPTIONS_DEFAULT {"results", 1, 1, 0, "png", 0, NULL, 0, 0, 0}

/* Directory of a data file shipped with dcbench (scripts/, sweeps/): the
 * DCB_HOME environment variable, else the executable's ../, else ".". */
const char *dcbh_home(void);

/* ------------------------------------------------------- string builder */
typedef struct dcbh_sb {
    char *s;
    size_t n, cap;
} dcbh_sb;
void sb_add(dcbh_sb *b, const char *s);
void sb_addn(dcbh_sb *b, const char *s, size_t n);
void sb_printf(dcbh_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(dcbh_sb *b);
/* A number as a CSV cell / JSON value: shortest round-trip form; NAN -> "" */
void sb_num(dcbh_sb *b, double v);
/* A CSV field, quoted when needed; newlines become spaces so a row is one line. */
void sb_csv_field(dcbh_sb *b, const char *s);
void sb_json_str(dcbh_sb *b, const char *s);
/* A whole file as a NUL-terminated string (free it), or NULL where it cannot be opened. */
char *dcbh_read_all(const char *path);

/* ---------------------------------------------------------------- CSV */
typedef struct csv_table {
    int ncols;
    char **cols;
    int nrows;
    char ***rows;      /* rows[r][c], never NULL ("" for empty) */
} csv_table;

/* What csv_read does with a torn last line (a row without its newline, left
 * by a kill or a full disk): leaves it out and the file alone (plots,
 * dcb.read_csv), truncates it in place (resume, which measures that point
 * again), or fails naming the file and line (merge). */
enum { CSV_TOLERANT = 0, CSV_REPAIR = 1, CSV_STRICT = 2 };
/* Reads a CSV written by dcbench; repair is one of the above. Returns 0, or
 * -1 with err ("path:line: ..." for a bad row); a missing file is -1 with
 * errno ENOENT. */
int csv_read(const char *path, csv_table *t, int repair, char *err, size_t errlen);
void csv_free(csv_table *t);
int csv_col(const csv_table *t, const char *name);   /* -1 if absent */
int csv_parse_line(const char *line, size_t len, char ***fields);   /* count; caller frees */
/* Writes a whole file through a temporary file and rename. */
int write_file_atomic(const char *path, const char *data, size_t len);
int mkdir_p(const char *dir);
/* A sweep's recorded definition (<base>.definition: "key: value" lines,
 * sweep.c): the value of one key into val (NULL where absent), and
 * "key: old -> new; ..." for the lines that differ between two of them. */
const char *dcbh_def_line(const char *text, const char *key, char *val, size_t len);
/* A whole file appended to b (b->s holds text even when empty); 0, or -1 where it cannot be opened. */
int dcbh_read_whole(const char *path, dcbh_sb *b);
void dcbh_def_diff(const char *old, const char *cur, dcbh_sb *b);
/* The p-quantile (0..1) of the n sorted values s, linear between order
 * statistics (dcb.compare's quartiles, the sweep's time_q1_s/time_q3_s). */
double dcbh_quantile(const double *s, int n, double p);
int dcbh_cmp_double(const void *a, const void *b);   /* qsort's ascending order of doubles */
uint64_t dcbh_fnv1a(const char *s);   /* FNV-1a 64: point ids */
int cmd_merge(int argc, char **argv);
/* dcbench list [OP [key=value...]] (oplist.c): the registry, or one operator's
 * hyperparameters, weights, layouts and implementations; exit status 2 for an
 * unknown operator or key or a bad value. */
int dcbh_cmd_list(int argc, char **argv);

/* impl "auto"'s references (calibrate_auto.c): every candidate timed on the
 * reference grid on 1 and threads_all threads (quick: one point in six, one
 * short repetition), written to dcbh_auto_path(), given to the library, and
 * checked leave-one-out (printed to log). 0, or -1 (message on stderr). */
int dcbh_auto_calibrate(int threads_all, int quick, FILE *log);
/* DCB_AUTO_CALIBRATION, else auto_calibration.csv beside dcbh_calib_path(). */
const char *dcbh_auto_path(void);
/* Gives the library the references of a file: 0; 1 when it does not exist;
 * -1 with err naming the file and row. */
int dcbh_auto_load(const char *path, char *err, size_t errlen);

/* ---------------------------------------------------------------- bench */
typedef struct dcbh_bench_opts {
    int repetitions;      /* default dcbh_timing_for(0) */
    double min_time;      /* seconds per repetition, default dcbh_timing_for(0) */
    int rotate;           /* cold cache: cycle through input copies larger than the LLC */
    int time;             /* measure time (else only prepare, profile, counters) */
    int counters;
    int profile;
    const char *json_path;   /* Google Benchmark's JSON, appended */
    const char *name;
} dcbh_bench_opts;

typedef struct dcbh_bench_result {
    dcb_status status;
    char msg[512];
    int timed;
    dcbh_time_stats t;
    double prepare_s;
    int profiled;
    int io_failed;        /* a result file (json_path) could not be written: the harness's
                             failure, not the operator's; status DCB_IO_ERROR, msg names it */
    double phase[DCB_PHASE_COUNT];   /* seconds per run: the median-wall profiled run's split of t.median */
    int counted;
    dcbh_counters c;                 /* per iteration */
    int rotate_copies;
} dcbh_bench_result;

/* Defaults; quick: dcbh_timing_for(1)'s repetitions and min_time. */
void dcbh_bench_defaults(dcbh_bench_opts *o, int quick);
/* Prepares, plans, runs op on x under the options; status != DCB_OK with msg
 * when the op cannot run (unsupported shape etc.). */
dcb_status dcbh_bench(dcb_op *op, const dcb_tensor *x, const dcbh_bench_opts *o, dcbh_bench_result *r);

/* --------------------------------------------------------------- plot */
typedef struct dcbh_plot_spec {
    const char *x, *y, *by;   /* column names; y "time" = time_median_s with min/max bars */
    const char *title;
    const char *out;          /* output path without extension; NULL: derived from the CSV */
    const char *kind;         /* NULL or "lines": y against x; "crossover": over the grid of x and
                                 y (two hyperparameters), which `by` (default impl) is fastest,
                                 labelled with the runner-up's time over the winner's */
} dcbh_plot_spec;
/* Draws spec from the CSV in o's format; returns 0 and the figure's path in out_path. */
int dcbh_plot(const dcbh_options *o, const char *csv, const dcbh_plot_spec *spec, char *out_path,
              size_t outlen, char *err, size_t errlen);
int dcbh_plot_roofline(const dcbh_options *o, const char *csv, const char *out_base, char *out_path,
                       size_t outlen, char *err, size_t errlen);

/* ---------------------------------------------------------------- lua */
typedef struct lua_State lua_State;
/* The module `dcb`, for the options that dcbh_lua_set_options gave L (the
 * defaults without). */
int luaopen_dcb(lua_State *L);
/* Runs a script with the module preloaded for the options o; exit code. */
int dcbh_run_script(const dcbh_options *o, const char *path, int argc, char **argv);
/* A command written in Lua: require(module).main({argv...}) in a state made
 * as for a script; the integer it returns is the exit code (1 where it raises
 * an error, which is printed). */
int dcbh_run_lua_main(const dcbh_options *o, const char *module, int argc, char **argv);
/* A copy of o kept in L's registry; what dcbh_lua_options returns after. */
void dcbh_lua_set_options(lua_State *L, const dcbh_options *o);
const dcbh_options *dcbh_lua_options(lua_State *L);
int dcbh_lua_sweep(lua_State *L);     /* dcb.sweep (sweep.c) */
/* Points that errored (status "error", not "unsupported") in the sweeps this
 * process measured: dcbench exits 3 when there were any, unless --keep-going. */
int dcbh_sweep_errors(void);
int dcbh_lua_compare(lua_State *L);   /* dcb.compare (compare.c) */
/* Training (lua_net.c): adds dcb.cnet, dcb.dataset, dcb.train_raw,
 * dcb.softmax_ce, dcb.backward_impls to the module table at the top, and
 * the op methods backward, set_backward, backward_impl. */
void dcbh_lua_net_register(lua_State *L);
int dcbh_op_backward(lua_State *L);
int dcbh_op_set_backward(lua_State *L);
int dcbh_op_backward_impl(lua_State *L);
/* Lua side helpers sweep.c and compare.c use (lua_dcb.c). */
void dcbh_push_tensor(lua_State *L, dcb_tensor *t);   /* takes ownership */
dcb_tensor *dcbh_check_tensor(lua_State *L, int idx, const char *fn);
dcb_op *dcbh_check_op(lua_State *L, int idx, const char *fn);
/* The hyperparameter table at idx (nil: none) into hp (at most max; names
 * and strings stay owned by the table); impl non-NULL takes the key "impl"
 * out into *impl. Errors name fn. Returns the count. */
int dcbh_read_hparams(lua_State *L, int idx, const char *fn, dcb_hparam *hp, int max, const char **impl);
/* t[k] = v for the table at the top: an integer when v is one, absent when NAN. */
void dcbh_set_num(lua_State *L, const char *k, double v);
void dcbh_set_nums(lua_State *L, const char *const *names, const double *v);   /* names NULL-ended */
/* Raises "fn: unknown option 'k' (valid: ...)" for a key of the table at idx not in valid. */
void dcbh_check_keys(lua_State *L, int idx, const char *fn, const char *const *valid);
#endif
