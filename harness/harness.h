/* harness.h — what the parts of the dcbench program share: command-line
 * options, a string builder, CSV results (results.c), timing of one operator
 * (bench.c), sweeps (sweep.c), figures (plot.c) and the Lua module
 * (lua_dcb.c). Not a public interface. */
#ifndef DCBH_HARNESS_H
#define DCBH_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "dcb.h"
#include "measure.h"

/* ------------------------------------------------------------ options */
typedef struct dcbh_options {
    const char *results_dir;   /* --results (default "results") */
    int shard_i, shard_n;      /* --shard i/n, 1 <= i <= n; 1/1 = everything */
    int quick;                 /* --quick */
    const char *format;        /* --format png|pdf|svg */
    int argc;                  /* the program's own command line, for the machine JSON */
    char **argv;
} dcbh_options;
extern dcbh_options dcbh_opt;

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

/* ---------------------------------------------------------------- CSV */
typedef struct csv_table {
    int ncols;
    char **cols;
    int nrows;
    char ***rows;      /* rows[r][c], never NULL ("" for empty) */
} csv_table;

/* Reads a CSV written by dcbench. repair=1 truncates a torn last line (a
 * row without its newline, left by a kill) in place. Returns 0, or -1 with
 * err; a missing file is -1 with errno ENOENT. */
int csv_read(const char *path, csv_table *t, int repair, char *err, size_t errlen);
void csv_free(csv_table *t);
int csv_col(const csv_table *t, const char *name);   /* -1 if absent */
int csv_parse_line(const char *line, size_t len, char ***fields);   /* count; caller frees */
/* Appends one complete line (ending in '\n') with a single write(2) on an
 * O_APPEND descriptor, then fsync: a reader sees all of it or none. */
int csv_append_line(int fd, const char *line, size_t len);
/* Writes a whole file through a temporary file and rename. */
int write_file_atomic(const char *path, const char *data, size_t len);
int mkdir_p(const char *dir);
int cmd_merge(int argc, char **argv);

/* ---------------------------------------------------------------- bench */
typedef struct dcbh_bench_opts {
    int repetitions;      /* default 9 */
    double min_time;      /* default 0.05 s */
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
    double phase[DCB_PHASE_COUNT];   /* seconds per run */
    int counted;
    dcbh_counters c;                 /* per iteration */
    int rotate_copies;
} dcbh_bench_result;

void dcbh_bench_defaults(dcbh_bench_opts *o);
/* Prepares, plans, runs op on x under the options; status != DCB_OK with msg
 * when the op cannot run (unsupported shape etc.). */
dcb_status dcbh_bench(dcb_op *op, const dcb_tensor *x, const dcbh_bench_opts *o, dcbh_bench_result *r);

/* ------------------------------------------------------ input shapes
 * The one table of how an operator's input is made from a sweep point:
 * image operators take (N, C, H, W), sequence operators (N, T, C). */
typedef struct dcbh_input_kind {
    const char *op;
    int sequence;            /* 1: (N, T, C) */
    int hw_are_params;       /* 1: H and W are hyperparameters as well (localconv) */
} dcbh_input_kind;
const dcbh_input_kind *dcbh_input_kind_of(const char *op);
int dcbh_is_shape_key(const char *op, const char *key);   /* N, H, W, T (not for localconv's H/W) */

/* --------------------------------------------------------------- plot */
typedef struct dcbh_plot_spec {
    const char *x, *y, *by;   /* column names; y "time" = time_median_s with min/max bars */
    const char *title;
    const char *out;          /* output path without extension; NULL: derived from the CSV */
} dcbh_plot_spec;
/* Draws spec from the CSV; returns 0 and the figure's path in out_path. */
int dcbh_plot(const char *csv, const dcbh_plot_spec *spec, char *out_path, size_t outlen,
              char *err, size_t errlen);
int dcbh_plot_roofline(const char *csv, const char *out_base, char *out_path, size_t outlen,
                       char *err, size_t errlen);

/* ---------------------------------------------------------------- lua */
typedef struct lua_State lua_State;
int luaopen_dcb(lua_State *L);
int dcbh_run_script(const char *path, int argc, char **argv);   /* exit code */
int dcbh_lua_sweep(lua_State *L);   /* dcb.sweep (sweep.c) */
/* Lua side helpers sweep.c uses (lua_dcb.c). */
void dcbh_push_tensor(lua_State *L, dcb_tensor *t);   /* takes ownership */
#endif
