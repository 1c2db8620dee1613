/* fuzz_csv.c — libFuzzer target for the results-CSV reader of resume and
 * merge (csv_parse_line, csv_read in harness/results.c).
 *
 * The input is a CSV file, as a killed or corrupted sweep may leave it:
 *   1. csv_parse_line on the whole input as one line: at least one field,
 *      none NULL; and the fields written back with sb_csv_field (the
 *      writer of every results row) parse back to themselves (with CR and
 *      LF as spaces, which sb_csv_field writes for them).
 *   2. csv_read (CSV_TOLERANT, as plots read) on a memory file (memfd,
 *      through /proc/self/fd/N): 0 with a table whose rows all have the
 *      header's field count, or -1 with a message that starts with the
 *      file's name; never more rows than lines.
 *   3. CSV_STRICT (as merge reads): a torn last line fails with its line
 *      number ("path:N: torn last row"); otherwise the answer of 2.
 *   4. CSV_REPAIR (as resume reads): the answer of 2, and the torn last
 *      line is cut off the file, which then reads the same table again,
 *      strictly. (Its "dropped an incomplete last row" line on stderr goes
 *      to /dev/null; 2 ran the same parser with stderr open.)
 *
 * Build and run: tests/fuzz/run_fuzz.sh 60 fuzz_csv. By hand, from the
 * repository root (results.c needs only libc; dcb.h for its types):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -Iharness -Ikernels tests/fuzz/fuzz_csv.c harness/results.c -lm -o /tmp/fuzz_csv
 *   /tmp/fuzz_csv -seed_corpus=1 DIR   writes the seed corpus into DIR and exits
 *   /tmp/fuzz_csv -max_total_time=60 -max_len=4096 -dict=tests/fuzz/csv.dict CORPUS_DIR
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "fuzz_seeds.h"

static void die(const char *what)
{
    fprintf(stderr, "fuzz_csv: %s\n", what);
    abort();
}

static void free_fields(char **f, int n)
{
    for (int i = 0; i < n; i++)
        free(f[i]);
    free(f);
}

/* s with CR and LF as spaces: what sb_csv_field writes for a field. */
static int same_as_written(const char *orig, const char *back)
{
    for (; *orig && *back; orig++, back++) {
        char c = *orig == '\n' || *orig == '\r' ? ' ' : *orig;
        if (c != *back)
            return 0;
    }
    return !*orig && !*back;
}

static void check_line(const uint8_t *data, size_t size)
{
    char **f = NULL;
    int n = csv_parse_line((const char *)data, size, &f);
    if (n < 1 || !f)
        die("csv_parse_line gave no field");
    for (int i = 0; i < n; i++)
        if (!f[i])
            die("csv_parse_line gave a NULL field");
    dcbh_sb b = {0};
    for (int i = 0; i < n; i++) {
        if (i)
            sb_add(&b, ",");
        sb_csv_field(&b, f[i]);
    }
    sb_add(&b, "");   /* b.s non-NULL for an empty line */
    char **g = NULL;
    int m = csv_parse_line(b.s, b.n, &g);
    if (m != n) {
        fprintf(stderr, "fuzz_csv: %d fields written as \"%s\" read back as %d\n", n, b.s, m);
        abort();
    }
    for (int i = 0; i < n; i++)
        if (!same_as_written(f[i], g[i])) {
            fprintf(stderr, "fuzz_csv: field %d \"%s\" written as \"%s\" read back as \"%s\"\n", i,
                    f[i], b.s, g[i]);
            abort();
        }
    free_fields(f, n);
    free_fields(g, m);
    sb_free(&b);
}

static void check_table(const csv_table *t, const uint8_t *data, size_t size)
{
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (!t->cols && (t->ncols || t->nrows))
        die("a table without a header has columns or rows");
    if (t->cols && t->ncols < 1)
        die("a header without columns");
    if ((size_t)t->nrows + (t->cols != NULL) > lines)
        die("more rows than lines");
    for (int c = 0; c < t->ncols; c++) {
        if (!t->cols[c])
            die("a NULL column name");
        int k = csv_col(t, t->cols[c]);
        if (k < 0 || k > c)
            die("csv_col does not find a column");
    }
    for (int r = 0; r < t->nrows; r++) {
        if (!t->rows[r])
            die("a NULL row");
        for (int c = 0; c < t->ncols; c++)
            if (!t->rows[r][c])
                die("a NULL cell");
    }
}

static int same_table(const csv_table *a, const csv_table *b)
{
    if (a->ncols != b->ncols || a->nrows != b->nrows || !a->cols != !b->cols)
        return 0;
    for (int c = 0; c < a->ncols; c++)
        if (strcmp(a->cols[c], b->cols[c]))
            return 0;
    for (int r = 0; r < a->nrows; r++)
        for (int c = 0; c < a->ncols; c++)
            if (strcmp(a->rows[r][c], b->rows[r][c]))
                return 0;
    return 1;
}

static int mem_file(const uint8_t *p, size_t n)
{
    int fd = memfd_create("csv", 0);
    if (fd < 0)
        return -1;
    if (n && write(fd, p, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* csv_read with stderr on /dev/null (repair's notice), restored after. */
static int quiet_read(const char *path, csv_table *t, int repair, char *err, size_t errlen)
{
    static int devnull = -2;
    if (devnull == -2)
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    fflush(stderr);
    int saved = devnull >= 0 ? dup(2) : -1;
    if (saved >= 0)
        dup2(devnull, 2);
    int rc = csv_read(path, t, repair, err, errlen);
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
    }
    return rc;
}

/* A failure's message: "path: ..." or "path:line: ...". */
static void check_error(const char *err, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(err, path, n) != 0 || err[n] != ':' ||
        !(err[n + 1] == ' ' || (err[n + 1] >= '1' && err[n + 1] <= '9'))) {
        fprintf(stderr, "fuzz_csv: message \"%s\" does not start with \"%s:\"\n", err, path);
        abort();
    }
}

static void check_read(const uint8_t *data, size_t size)
{
    int fd = mem_file(data, size);
    if (fd < 0)
        return;
    char path[64], err[1024] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    csv_table t;
    int rc = csv_read(path, &t, CSV_TOLERANT, err, sizeof err);
    if (rc != 0 && rc != -1)
        die("csv_read returned neither 0 nor -1");
    if (rc == -1) {
        check_error(err, path);
        if (t.cols || t.rows || t.ncols || t.nrows)
            die("a failed csv_read left a table behind");
    } else {
        check_table(&t, data, size);
    }
    const uint8_t *nl = size ? memrchr(data, '\n', size) : NULL;
    const size_t keep = nl ? (size_t)(nl - data) + 1 : 0;

    /* CSV_STRICT (merge): a torn last line fails, naming its line; without
     * one, the same answer as CSV_TOLERANT. */
    csv_table s;
    char errs[1024] = "";
    int rcs = csv_read(path, &s, CSV_STRICT, errs, sizeof errs);
    if (keep < size) {
        if (rcs != -1)
            die("CSV_STRICT accepts a torn last line");
        int line = 1;   /* the torn line is the error, before any row is parsed */
        for (size_t i = 0; i < keep; i++)
            line += data[i] == '\n';
        char want[128];
        snprintf(want, sizeof want, "%s:%d: torn last row", path, line);
        if (strncmp(errs, want, strlen(want)) != 0) {
            fprintf(stderr, "fuzz_csv: CSV_STRICT says \"%s\", want \"%s...\"\n", errs, want);
            abort();
        }
    } else {
        if (rcs != rc)
            die("CSV_STRICT answers otherwise than CSV_TOLERANT on a file without a torn line");
        if (rc == 0) {
            if (!same_table(&t, &s))
                die("CSV_STRICT reads another table than CSV_TOLERANT");
            csv_free(&s);
        }
    }

    /* CSV_REPAIR (resume): the same answer; the file then ends with its last '\n'. */
    csv_table u;
    char err2[1024] = "";
    int rc2 = quiet_read(path, &u, CSV_REPAIR, err2, sizeof err2);
    if (rc2 != rc)
        die("csv_read with repair answers otherwise than without");
    if (rc == 0 && !same_table(&t, &u))
        die("csv_read with repair reads another table");
    struct stat sb;
    if (fstat(fd, &sb) == 0 && sb.st_size != (off_t)keep) {
        fprintf(stderr, "fuzz_csv: repair left %lld bytes, the last line ends at %lld\n",
                (long long)sb.st_size, (long long)keep);
        abort();
    }
    if (rc == 0) {
        csv_table v;
        char err3[1024] = "";
        if (csv_read(path, &v, CSV_STRICT, err3, sizeof err3) != 0 || !same_table(&t, &v))
            die("a repaired file reads another table");
        csv_free(&v);
        csv_free(&u);
        csv_free(&t);
    }
    close(fd);
}

/* ------------------------------------------------------------ seeds */

static void put(const char *dir, const char *name, const char *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

/* Rows as sweeps, studies and merges write them, and what a kill leaves. */
static void write_seeds(const char *dir)
{
    put(dir, "sweep.csv",
        "point_id,op,impl,cin,cout,N,H,W,status,reason,median_s,gflops\n"
        "a1b2c3d4e5f60718,conv2d,naive,8,8,1,8,8,ok,,0.00123,1.5\n"
        "a1b2c3d4e5f60718,conv2d,winograd,8,8,1,8,8,unsupported,\"needs a 3x3 kernel, stride 1\",,\n");
    put(dir, "torn.csv",
        "point_id,status,time\n"
        "1,ok,0.5\n"
        "2,error,\n"
        "3,ok,0.");
    put(dir, "quoted.csv",
        "name,note\r\n"
        "\"a \"\"b\"\" c\",\"x,y\"\r\n"
        "\"unterminated,z\r\n");
    put(dir, "fields_mismatch.csv", "a,b,c\n1,2\n");
    put(dir, "empty_lines.csv", "\n\nh\n\nv\n");
    put(dir, "study.csv",
        "unit_id,variant,seed,test_acc,curve_csv\n"
        "u1,static,1,0.91,results/run/curve.csv\n"
        "u2,\"condconv, E=4\",2,0.92,\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_write_seeds_if_asked(*argc, *argv, write_seeds);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_line(data, size);
    check_read(data, size);
    return 0;
}
