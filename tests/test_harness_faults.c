/* The harness's result files under faults: a torn row given to merge, a
 * full disk (RLIMIT_FSIZE in a child, so writes fail with EFBIG, or
 * /dev/full), error rows measured again with --retry-errors, and two runs of
 * one sweep at once (the CSV's advisory lock). The end-to-end cases run
 * $DCBENCH (default build/dcbench) in a temporary directory; the unit cases
 * call the harness library directly. Nothing here is timed. */
#include "testutil.h"

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static const char *dcbench;

static void path_of(char *p, size_t n, const char *rel) { snprintf(p, n, "%s/%s", tmpdir, rel); }

static void write_text(const char *rel, const char *text) {
    char p[512];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "wb");
    if (!f) fail_msg("cannot write %s", p);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

static char *slurp(const char *rel) {
    char p[512];
    path_of(p, sizeof p, rel);
    char *s = read_text(p);
    return s ? s : strdup("");
}

static long size_of(const char *rel) {
    char p[512];
    path_of(p, sizeof p, rel);
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("expected to find '%s' in:\n%s", needle, hay);
}

/* Runs dcbench with args (a shell fragment) in tmpdir, stdout and stderr to
 * out.txt / err.txt there; fsize > 0: under RLIMIT_FSIZE of that many bytes
 * with SIGXFSZ ignored, so that a write past it fails with EFBIG. Returns
 * the exit code. */
static int run_limited(const char *args, long fsize) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >out.txt 2>err.txt", tmpdir, dcbench, args);
    pid_t pid = fork();
    if (pid < 0) return 128;
    if (pid == 0) {
        if (fsize > 0) {
            struct rlimit rl = {(rlim_t)fsize, (rlim_t)fsize};
            signal(SIGXFSZ, SIG_IGN);   /* inherited across exec */
            if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(126);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) return 128;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int run(const char *args) { return run_limited(args, 0); }

static void run_ok(const char *args) {
    int rc = run(args);
    if (rc) {
        char *err = slurp("err.txt");
        fail_msg("dcbench %s failed (%d):\n%s", args, rc, err);
    }
}

/* Four points of a small naive conv; no figures (nothing else grows past
 * the file size limits below). Prints what dcb.sweep returned. */
static const char *sweep_f =
    "local dcb = require 'dcb'\n"
    "local r = dcb.sweep{name='f', op='conv2d', base={cin=4, cout=4, k=3, pad=1},\n"
    "  grid={H={8,12}, N={1,2}}, impls={'naive'}, repetitions=2, min_time=0.001, roofline=false}\n"
    "print(string.format('result written=%d skipped=%d errors=%d errors_earlier=%s', r.written, r.skipped,\n"
    "  r.errors, tostring(r.errors_earlier)))\n";

/* The rows of a CSV (header left out) as a list of lines; *n their count. */
static char **rows_of(const char *rel, int *n) {
    char *s = slurp(rel);
    char **rows = calloc((size_t)count_lines(s) + 2, sizeof *rows);
    *n = 0;
    char *save = NULL;
    int first = 1;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (first) {
            first = 0;
            continue;
        }
        rows[(*n)++] = strdup(line);
    }
    free(s);
    return rows;
}

static void rows_free(char **rows) {
    for (char **r = rows; *r; r++) free(*r);
    free(rows);
}

static int nrows_of(const char *rel) {
    int n;
    rows_free(rows_of(rel, &n));
    return n;
}

/* Field c (0-based) of an unquoted CSV line, into buf. */
static const char *field(const char *line, int c, char *buf, size_t len) {
    const char *p = line;
    for (int i = 0; i < c && p; i++) {
        p = strchr(p, ',');
        if (p) p++;
    }
    if (!p) return "";
    size_t n = strcspn(p, ",");
    if (n >= len) n = len - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

static int col_of(const char *rel, const char *name) {
    char *s = slurp(rel);
    char *nl = strchr(s, '\n');
    if (nl) *nl = 0;
    int c = 0, found = -1;
    char *save = NULL;
    for (char *f = strtok_r(s, ",", &save); f; f = strtok_r(NULL, ",", &save), c++)
        if (!strcmp(f, name)) found = c;
    free(s);
    return found;
}

/* ------------------------------------------------------------- merge */
/* Issue 4: a torn last row (no newline) was left out silently, rc 0. */
static void test_merge_refuses_torn_row(void **state) {
    (void)state;
    write_text("f.lua", sweep_f);
    run_ok("--results sh --shard 1/2 f.lua");
    run_ok("--results sh --shard 2/2 f.lua");
    const int n1 = nrows_of("sh/f/f.shard1of2.csv"), n2 = nrows_of("sh/f/f.shard2of2.csv");
    assert_int_equal(n1 + n2, 4);
    const char *torn = n1 ? "sh/f/f.shard1of2.csv" : "sh/f/f.shard2of2.csv";
    const int last_line = 1 + (n1 ? n1 : n2);
    /* cut the last row in the middle, its newline with it */
    char *s = slurp(torn), p[512];
    const size_t len = strlen(s);
    path_of(p, sizeof p, torn);
    assert_int_equal(truncate(p, (off_t)(len - 25)), 0);
    free(s);
    assert_int_equal(run("merge sh/m.csv sh/f/f.shard1of2.csv sh/f/f.shard2of2.csv"), 1);
    char *err = slurp("err.txt"), want[600];
    snprintf(want, sizeof want, "%s:%d:", torn, last_line);
    assert_contains(err, want);
    assert_contains(err, "torn");
    free(err);
    assert_int_equal(size_of("sh/m.csv"), -1);               /* nothing written */
    assert_int_equal(size_of(torn), (long)(len - 25));      /* and the input left alone */

    /* resuming the shard repairs the row and measures that point again */
    char args[600];
    snprintf(args, sizeof args, "--results sh --shard %d/2 f.lua", n1 ? 1 : 2);
    run_ok(args);
    run_ok("merge sh/m.csv sh/f/f.shard1of2.csv sh/f/f.shard2of2.csv");
    char *out = slurp("out.txt");
    assert_contains(out, "4 rows from 2 files");
    free(out);

    /* a row with the wrong number of fields names its file and line too */
    char *good = slurp("sh/m.csv");
    char *second = strchr(good, '\n') + 1;
    char bad[8192];
    snprintf(bad, sizeof bad, "%.*s\n1,2,3\n%s", (int)(second - good), good, second);
    write_text("sh/bad.csv", bad);   /* the header, a blank line, a short row, the rows */
    assert_int_equal(run("merge sh/m2.csv sh/bad.csv"), 1);
    err = slurp("err.txt");
    assert_contains(err, "sh/bad.csv:3:");
    free(err);
    free(good);
}

/* csv_read's three ways with a torn last line. */
static void test_csv_read_modes(void **state) {
    (void)state;
    char p[512], err[1024];
    path_of(p, sizeof p, "modes.csv");
    csv_table t;
    write_text("modes.csv", "a,b\n1,2\n3,");
    assert_int_equal(csv_read(p, &t, CSV_STRICT, err, sizeof err), -1);
    assert_contains(err, "modes.csv:3:");
    assert_int_equal(size_of("modes.csv"), 10);
    assert_int_equal(csv_read(p, &t, CSV_TOLERANT, err, sizeof err), 0);   /* plots, dcb.read_csv */
    assert_int_equal(t.nrows, 1);
    csv_free(&t);
    assert_int_equal(size_of("modes.csv"), 10);
    assert_int_equal(csv_read(p, &t, CSV_REPAIR, err, sizeof err), 0);     /* resume */
    assert_int_equal(t.nrows, 1);
    csv_free(&t);
    assert_int_equal(size_of("modes.csv"), 8);
    assert_int_equal(csv_read(p, &t, CSV_STRICT, err, sizeof err), 0);
    assert_int_equal(t.nrows, 1);
    csv_free(&t);
}

/* ---------------------------------------------------------- disk full */
/* Issue 5: one line appended with one write; a write that runs out of room
 * leaves no part of the line behind and reports the real errno. Checked in
 * a child under RLIMIT_FSIZE (its exit code says which check failed). */
static void test_append_line_disk_full(void **state) {
    (void)state;
    char p[512];
    path_of(p, sizeof p, "append.txt");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        char fill[4000], line[200];
        memset(fill, 'x', sizeof fill);
        fill[sizeof fill - 1] = '\n';
        memset(line, 'y', sizeof line);
        line[sizeof line - 1] = '\n';
        if (fd < 0 || write(fd, fill, sizeof fill) != (ssize_t)sizeof fill) _exit(10);
        struct rlimit rl = {4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(11);
        errno = ENOENT;   /* a stale errno must not be reported */
        if (csv_append_line(fd, line, sizeof line) != -1) _exit(12);
        if (errno != EFBIG) _exit(13);
        struct stat st;
        if (fstat(fd, &st) || st.st_size != (off_t)sizeof fill) _exit(14);   /* no torn line */
        if (csv_append_line(fd, line + 150, 50) != 0) _exit(15);             /* fits */
        if (fstat(fd, &st) || st.st_size != (off_t)sizeof fill + 50) _exit(16);
        close(fd);
        fd = open("/dev/full", O_WRONLY | O_APPEND);
        if (fd >= 0) {
            errno = 0;
            if (csv_append_line(fd, line, sizeof line) != -1 || errno != ENOSPC) _exit(17);
            close(fd);
        }
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static int spin_body(void *ctx, int64_t it) {
    (void)ctx;
    (void)it;
    return 0;
}

/* Google Benchmark's JSON that cannot be appended is the harness's I/O
 * failure (json_failed, the file and strerror), not the body's. */
static void test_gbench_json_io_error(void **state) {
    (void)state;
    dcbh_time_opts o = {"io", 1, 0.0005, 1, "/dev/full"};
    dcbh_time_stats s;
    char err[512] = "", want[256];
    assert_int_equal(dcbh_time(spin_body, NULL, &o, &s, err, sizeof err), -1);
    assert_true(s.json_failed);
    assert_int_equal(s.repetitions, 1);   /* the timing itself ran */
    snprintf(want, sizeof want, "/dev/full: %s", strerror(ENOSPC));
    assert_contains(err, want);
    char p[512];
    path_of(p, sizeof p, "no/such/dir/x.gbench.jsonl");
    o.json_path = p;
    assert_int_equal(dcbh_time(spin_body, NULL, &o, &s, err, sizeof err), -1);
    assert_true(s.json_failed);
    assert_contains(err, p);
    assert_contains(err, strerror(ENOENT));
    o.json_path = NULL;
    assert_int_equal(dcbh_time(spin_body, NULL, &o, &s, err, sizeof err), 0);
    assert_false(s.json_failed);

    /* through dcbh_bench: DCB_IO_ERROR, marked as the harness's failure */
    dcb_hparam hp[] = {TU_HP("cin", 2), TU_HP("cout", 2), TU_HP("k", 3), TU_HP("pad", 1)};
    dcb_op *op = NULL;
    assert_ok(dcb_op_create("conv2d", "naive", hp, 4, &op));
    assert_ok(dcb_op_init_weights(op, 1));
    int64_t shape[4] = {1, 2, 6, 6};
    dcb_tensor *x = dcb_tensor_new(4, shape);
    dcb_tensor_randn(x, 2);
    dcbh_bench_opts bo;
    dcbh_bench_defaults(&bo, 1);
    bo.repetitions = 1;
    bo.min_time = 0.0005;
    bo.json_path = "/dev/full";
    dcbh_bench_result r;
    assert_int_equal(dcbh_bench(op, x, &bo, &r), DCB_IO_ERROR);
    assert_true(r.io_failed);
    assert_contains(r.msg, "/dev/full");
    bo.json_path = NULL;
    assert_int_equal(dcbh_bench(op, x, &bo, &r), DCB_OK);
    assert_false(r.io_failed);
    dcb_tensor_free(x);
    dcb_op_destroy(op);
}

/* Every line of a JSON Lines file from `from` on is one whole document. */
static void assert_whole_records(const char *rel, long from, int want) {
    char *s = slurp(rel);
    int n = 0;
    char *save = NULL;
    assert_true((long)strlen(s) >= from);
    assert_true(!s[0] || s[strlen(s) - 1] == '\n');
    for (char *line = strtok_r(s + from, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        if (line[0] != '{' || line[l - 1] != '}' || !strstr(line, "\"benchmarks\""))
            fail_msg("%s: a torn record: %.80s...", rel, line);
        n++;
    }
    assert_int_equal(n, want);
    free(s);
}

#define FSIZE_LIMIT 65536L

/* Issue 5: a full disk stops the sweep with the file and strerror, and
 * leaves no row (no error row that resume would take as done) and no torn
 * record; once there is room, the same command measures what is missing. */
static void test_disk_full_stops_sweep(void **state) {
    (void)state;
    write_text("f.lua", sweep_f);
    /* the JSONL full: room for 16 bytes more */
    char p[512];
    path_of(p, sizeof p, "df");
    mkdir(p, 0777);
    path_of(p, sizeof p, "df/f");
    mkdir(p, 0777);
    const long pad = FSIZE_LIMIT - 16;
    char *fill = malloc((size_t)pad + 1);
    memset(fill, 'x', (size_t)pad);
    memcpy(fill, "{\"benchmarks\": \"", 16);
    memcpy(fill + pad - 3, "\"}\n", 3);
    fill[pad] = 0;
    write_text("df/f/f.gbench.jsonl", fill);
    free(fill);
    /* 1: the script's error, not a crash or a sanitizer's report */
    assert_int_equal(run_limited("--results df f.lua", FSIZE_LIMIT), 1);
    char *err = slurp("err.txt"), want[256];
    snprintf(want, sizeof want, "df/f/f.gbench.jsonl: %s", strerror(EFBIG));
    assert_contains(err, want);
    assert_null(strstr(err, strerror(ENOENT)));   /* no stale errno */
    free(err);
    int n;
    char **rows = rows_of("df/f/f.csv", &n);
    assert_int_equal(n, 0);   /* no row for the point that could not be recorded */
    rows_free(rows);
    assert_int_equal(size_of("df/f/f.gbench.jsonl"), pad);   /* and no torn record */

    /* room again: everything measured, all ok */
    run_ok("--results df f.lua");
    err = slurp("err.txt");
    assert_contains(err, "4 measured");
    assert_contains(err, "0 errors");
    free(err);
    rows = rows_of("df/f/f.csv", &n);
    assert_int_equal(n, 4);
    const int stc = col_of("df/f/f.csv", "status");
    char buf[64];
    for (int i = 0; i < n; i++) assert_string_equal(field(rows[i], stc, buf, sizeof buf), "ok");
    rows_free(rows);
    assert_whole_records("df/f/f.gbench.jsonl", pad, 4);

    /* the CSV full: two rows measured, then rows that match no point (done
     * ids of nothing) until the next real row cannot fit */
    char *csv = slurp("df/f/f.csv");
    char *cut = csv;
    for (int i = 0; i < 3; i++) cut = strchr(cut, '\n') + 1;
    *cut = 0;
    int nf = 1;
    for (const char *q = csv; *q != '\n'; q++) nf += *q == ',';
    dcbh_sb b = {0};
    sb_add(&b, csv);
    for (unsigned k = 0; b.n + 20 + (size_t)nf + 16 <= (size_t)FSIZE_LIMIT - 20; k++) {
        sb_printf(&b, "ffff%012x", k);
        for (int c = 1; c < nf; c++) sb_add(&b, ",");
        sb_add(&b, "\n");
    }
    write_text("df/f/f.csv", b.s);
    const long csv_size = (long)b.n;
    sb_free(&b);
    free(csv);
    path_of(p, sizeof p, "df/f/f.gbench.jsonl");
    unlink(p);
    assert_int_equal(run_limited("--results df f.lua", FSIZE_LIMIT), 1);
    err = slurp("err.txt");
    snprintf(want, sizeof want, "df/f/f.csv: %s", strerror(EFBIG));
    assert_contains(err, want);
    free(err);
    assert_int_equal(size_of("df/f/f.csv"), csv_size);   /* no torn row */
    run_ok("--results df f.lua");
    err = slurp("err.txt");
    assert_contains(err, "2 measured");
    free(err);
    rows = rows_of("df/f/f.csv", &n);
    int real = 0;
    for (int i = 0; i < n; i++) real += strncmp(rows[i], "ffff", 4) != 0;
    assert_int_equal(real, 4);
    rows_free(rows);
}

/* ------------------------------------------------------- retry errors */
/* Rewrites the status and reason of data row `r` (0-based) of a CSV. */
static void set_status(const char *rel, int r, const char *status, const char *reason) {
    const int stc = col_of(rel, "status"), rc = col_of(rel, "reason");
    assert_true(stc >= 0 && rc == stc + 1);
    char *s = slurp(rel);
    dcbh_sb b = {0};
    int line = -1;
    for (char *q = s; *q; line++) {
        char *nl = strchr(q, '\n');
        size_t l = nl ? (size_t)(nl - q) + 1 : strlen(q);
        if (line != r) {
            sb_addn(&b, q, l);
        } else {
            const char *f = q;
            for (int c = 0; c < stc; c++) f = strchr(f, ',') + 1;
            const char *after = f;
            for (int c = 0; c < 2; c++) after = strchr(after, ',') + 1;
            sb_addn(&b, q, (size_t)(f - q));
            sb_printf(&b, "%s,%s,", status, reason);
            sb_addn(&b, after, l - (size_t)(after - q));
        }
        q += l;
    }
    write_text(rel, b.s);
    sb_free(&b);
    free(s);
}

/* Issue 5: error rows stay done (and are counted) unless --retry-errors;
 * retried, the last row of a point is its result, for resume and merge. */
static void test_retry_errors(void **state) {
    (void)state;
    write_text("f.lua", sweep_f);
    run_ok("--results rt f.lua");
    set_status("rt/f/f.csv", 0, "error", "io_error: injected");
    set_status("rt/f/f.csv", 2, "error", "io_error: injected");
    char *before = slurp("rt/f/f.csv");

    run_ok("--results rt f.lua");
    char *err = slurp("err.txt"), *out = slurp("out.txt"), *now = slurp("rt/f/f.csv");
    assert_string_equal(now, before);   /* error rows are done without the option */
    assert_contains(err, "0 measured");
    assert_contains(err, "2 errors, 2 of them done earlier");
    assert_contains(err, "--retry-errors");
    assert_contains(out, "written=0 skipped=4 errors=0 errors_earlier=2");
    free(err);
    free(out);
    free(now);

    run_ok("--results rt --retry-errors f.lua");
    err = slurp("err.txt");
    out = slurp("out.txt");
    assert_contains(err, "2 measured");
    assert_contains(err, "0 errors)");
    assert_contains(out, "written=2 skipped=2 errors=0 errors_earlier=0");
    free(err);
    free(out);
    int n;
    char **rows = rows_of("rt/f/f.csv", &n);
    assert_int_equal(n, 6);   /* the error rows stay; the new rows after them are the result */
    const int stc = col_of("rt/f/f.csv", "status");
    char a[64], bb[64];
    assert_string_equal(field(rows[0], stc, a, sizeof a), "error");
    assert_string_equal(field(rows[4], stc, a, sizeof a), "ok");
    assert_string_equal(field(rows[4], 0, a, sizeof a), field(rows[0], 0, bb, sizeof bb));
    assert_string_equal(field(rows[5], 0, a, sizeof a), field(rows[2], 0, bb, sizeof bb));
    rows_free(rows);

    /* merge: one row per point, every one ok, and no duplicates */
    run_ok("merge rt/m.csv rt/f/f.csv");
    out = slurp("out.txt");
    assert_contains(out, "4 rows from 1 files");
    assert_contains(out, "0 duplicates dropped");
    free(out);
    rows = rows_of("rt/m.csv", &n);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) assert_string_equal(field(rows[i], stc, a, sizeof a), "ok");
    rows_free(rows);

    /* and nothing is left to retry */
    run_ok("--results rt --retry-errors f.lua");
    out = slurp("out.txt");
    assert_contains(out, "written=0 skipped=4 errors=0 errors_earlier=0");
    free(out);

    assert_int_equal(run("--help"), 0);
    out = slurp("out.txt");
    assert_contains(out, "--retry-errors");
    free(out);
    free(before);
}

/* --------------------------------------------------------------- lock */
/* Issue 6: a second unsharded run of a sweep refuses while another holds
 * the CSV's lock; shards write other files and run. */
static void test_lock_refuses_second_run(void **state) {
    (void)state;
    write_text("f.lua", sweep_f);
    char p[512];
    path_of(p, sizeof p, "lk");
    mkdir(p, 0777);
    path_of(p, sizeof p, "lk/f");
    mkdir(p, 0777);
    path_of(p, sizeof p, "lk/f/f.csv");
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(run("--results lk f.lua"), 1);
    char *err = slurp("err.txt");
    assert_contains(err, "lk/f/f.csv");
    assert_contains(err, "another run");
    free(err);
    assert_int_equal(size_of("lk/f/f.csv"), 0);   /* nothing written to it */
    run_ok("--results lk --shard 1/2 f.lua");
    close(fd);
    run_ok("--results lk f.lua");
    assert_int_equal(nrows_of("lk/f/f.csv"), 4);
    int n;

    /* two runs started together: one measures, the other refuses or (if it
     * starts after the first has finished) finds everything done */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && { '%s' --results two f.lua >o1.txt 2>e1.txt; echo $? >rc1.txt; } & "
             "cd '%s' && { '%s' --results two f.lua >o2.txt 2>e2.txt; echo $? >rc2.txt; }; wait",
             tmpdir, dcbench, tmpdir, dcbench);
    assert_int_equal(system(cmd), 0);
    for (int i = 1; i <= 2; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "rc%d.txt", i);
        char *rc = slurp(rel);
        if (atoi(rc) != 0) {
            assert_int_equal(atoi(rc), 1);
            snprintf(rel, sizeof rel, "e%d.txt", i);
            err = slurp(rel);
            assert_contains(err, "another run");
            free(err);
        }
        free(rc);
    }
    char **rows = rows_of("two/f/f.csv", &n);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) {
            char a[32], b[32];
            assert_string_not_equal(field(rows[i], 0, a, sizeof a), field(rows[j], 0, b, sizeof b));
        }
    rows_free(rows);
}

static int setup(void **state) {
    (void)state;
    if (!(dcbench = tu_dcbench_path("test_harness_faults"))) return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dcbench-faults-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    static char cal[300];
    snprintf(cal, sizeof cal, "DCB_CALIBRATION=%s/calibration.json", tmpdir);
    putenv(cal);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_read_modes),         cmocka_unit_test(test_append_line_disk_full),
        cmocka_unit_test(test_gbench_json_io_error),   cmocka_unit_test(test_merge_refuses_torn_row),
        cmocka_unit_test(test_disk_full_stops_sweep),  cmocka_unit_test(test_retry_errors),
        cmocka_unit_test(test_lock_refuses_second_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
