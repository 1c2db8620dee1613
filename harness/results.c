/* results.c — CSV results: building rows, reading them back (resume,
 * merge, plots), atomic appends and the merge command. */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------- string builder */
static void sb_grow(dcbh_sb *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        fprintf(stderr, "dcbench: out of memory\n");
        exit(1);
    }
    b->s = s;
    b->cap = cap;
}

void sb_addn(dcbh_sb *b, const char *s, size_t n) {
    sb_grow(b, n);
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void sb_add(dcbh_sb *b, const char *s) { sb_addn(b, s, strlen(s)); }

char *dcbh_read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    dcbh_sb b = {0};
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_addn(&b, buf, n);
    fclose(f);
    if (!b.s) sb_add(&b, "");
    return b.s;
}

void sb_printf(dcbh_sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void sb_free(dcbh_sb *b) {
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}

void sb_num(dcbh_sb *b, double v) {
    if (isnan(v)) return;
    if (isinf(v)) {
        sb_add(b, v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        sb_printf(b, "%.0f", v);
        return;
    }
    char buf[40];
    for (int p = 6; p <= 17; p++) {   /* shortest form that reads back exactly */
        snprintf(buf, sizeof buf, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    sb_add(b, buf);
}

void sb_csv_field(dcbh_sb *b, const char *s) {
    if (!s) return;
    if (!strpbrk(s, ",\"\n\r")) {
        sb_add(b, s);
        return;
    }
    sb_add(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            sb_add(b, "\"\"");
        else if (*p == '\n' || *p == '\r')
            sb_add(b, " ");
        else
            sb_addn(b, p, 1);
    }
    sb_add(b, "\"");
}

void sb_json_str(dcbh_sb *b, const char *s) {
    sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            sb_printf(b, "\\u%04x", *p);
        else
            sb_addn(b, (const char *)p, 1);
    }
    sb_add(b, "\"");
}

/* FNV-1a, 64 bits: the point ids of sweeps and studies. */
uint64_t dcbh_fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* ---------------------------------------------------------------- files */
int mkdir_p(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
    return 0;
}

int write_file_atomic(const char *path, const char *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t off = 0;
    int e = 0;
    while (off < len && !e) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno != EINTR) e = errno;
        if (w > 0) off += (size_t)w;
    }
    if (!e && fsync(fd)) e = errno;
    if (close(fd) && !e) e = errno;
    if (!e && rename(tmp, path)) e = errno;
    if (e) {
        unlink(tmp);
        errno = e;   /* the caller reports the write's errno, not unlink's */
        return -1;
    }
    return 0;
}

int csv_append_line(int fd, const char *line, size_t len) {
    /* One write of the whole row: with O_APPEND, a kill leaves either the
     * complete row or a prefix without its newline, which csv_read repairs. */
    struct stat st;
    const off_t before = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
    ssize_t w;
    do w = write(fd, line, len);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)len) return fsync(fd);
    /* A short write sets no errno: the rest, written again, fails with the
     * reason (ENOSPC, EFBIG) or, with room made meanwhile, completes it. */
    int e = w < 0 ? errno : 0;
    size_t off = w > 0 ? (size_t)w : 0;
    while (!e && off < len) {
        w = write(fd, line + off, len - off);
        if (w < 0 && errno != EINTR) e = errno;
        if (w > 0) off += (size_t)w;
        if (w == 0) e = ENOSPC;
    }
    if (!e) return fsync(fd);
    /* No prefix of the line stays behind: the next line would join it. The
     * caller holds the file (a sweep's lock), so nobody appended since. */
    if (off && before >= 0 && ftruncate(fd, before)) {
        /* nothing better to do: the write's errno is the one to report */
    }
    errno = e;
    return -1;
}

/* ----------------------------------------------------------------- CSV */
int csv_parse_line(const char *line, size_t len, char ***fields) {
    int n = 0, cap = 16;
    char **f = malloc(sizeof *f * (size_t)cap);
    size_t i = 0;
    dcbh_sb cur = {0};
    for (;;) {
        cur.n = 0;
        sb_add(&cur, "");
        if (i < len && line[i] == '"') {
            i++;
            while (i < len) {
                if (line[i] == '"') {
                    if (i + 1 < len && line[i + 1] == '"') {
                        sb_addn(&cur, "\"", 1);
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                sb_addn(&cur, line + i, 1);
                i++;
            }
            while (i < len && line[i] != ',') i++;
        } else {
            size_t j = i;
            while (j < len && line[j] != ',') j++;
            sb_addn(&cur, line + i, j - i);
            i = j;
        }
        if (n == cap) f = realloc(f, sizeof *f * (size_t)(cap *= 2));
        f[n++] = strdup(cur.s);
        if (i < len && line[i] == ',') {
            i++;
            continue;
        }
        break;
    }
    sb_free(&cur);
    *fields = f;
    return n;
}

void csv_free(csv_table *t) {
    for (int c = 0; c < t->ncols; c++) free(t->cols[c]);
    free(t->cols);
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) free(t->rows[r][c]);
        free(t->rows[r]);
    }
    free(t->rows);
    memset(t, 0, sizeof *t);
}

int csv_col(const csv_table *t, const char *name) {
    for (int c = 0; c < t->ncols; c++)
        if (!strcmp(t->cols[c], name)) return c;
    return -1;
}

int csv_read(const char *path, csv_table *t, int repair, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    dcbh_sb all = {0};
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) sb_addn(&all, buf, got);
    const int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        snprintf(err, errlen, "%s: read error", path);
        sb_free(&all);
        errno = EIO;
        return -1;
    }
    size_t len = all.n;
    if (len && all.s[len - 1] != '\n') {
        /* A torn last row from a killed writer: drop it (and repair the file). */
        char *nl = memrchr(all.s, '\n', len);
        size_t keep = nl ? (size_t)(nl - all.s) + 1 : 0;
        if (repair == CSV_STRICT) {
            int line = 1;
            for (size_t i = 0; i < keep; i++) line += all.s[i] == '\n';
            snprintf(err, errlen,
                     "%s:%d: torn last row (%zu bytes without a newline, left by an interrupted write); "
                     "run its sweep again to repair it and measure that point, or delete the line",
                     path, line, len - keep);
            sb_free(&all);
            errno = EINVAL;
            return -1;
        }
        if (repair == CSV_REPAIR) {
            if (truncate(path, (off_t)keep)) {
                snprintf(err, errlen, "%s: cannot truncate a torn last line: %s", path, strerror(errno));
                sb_free(&all);
                return -1;
            }
            fprintf(stderr, "dcbench: %s: dropped an incomplete last row (interrupted run)\n", path);
        }
        len = keep;
    }
    int cap = 0, line = 0;
    size_t pos = 0;
    while (pos < len) {
        char *nl = memchr(all.s + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - all.s) : len;
        size_t l = end - pos;
        line++;
        if (l && all.s[pos + l - 1] == '\r') l--;
        if (l) {
            char **fields;
            int n = csv_parse_line(all.s + pos, l, &fields);
            if (!t->cols) {
                t->cols = fields;
                t->ncols = n;
            } else {
                if (n != t->ncols) {
                    snprintf(err, errlen, "%s:%d: the row has %d fields, the header has %d", path, line, n,
                             t->ncols);
                    for (int c = 0; c < n; c++) free(fields[c]);
                    free(fields);
                    sb_free(&all);
                    csv_free(t);
                    errno = EINVAL;
                    return -1;
                }
                if (t->nrows == cap) t->rows = realloc(t->rows, sizeof *t->rows * (size_t)(cap = cap ? 2 * cap : 64));
                t->rows[t->nrows++] = fields;
            }
        }
        pos = end + 1;
    }
    sb_free(&all);
    return 0;
}

/* ---------------------------------------------------------------- merge */
static char *sibling(const char *csv, const char *ext) {
    size_t n = strlen(csv);
    if (n > 4 && !strcmp(csv + n - 4, ".csv")) n -= 4;
    char *s = malloc(n + strlen(ext) + 1);
    memcpy(s, csv, n);
    strcpy(s + n, ext);
    return s;
}

/* The result of a point is the LAST row of its id in a file: a sweep run
 * with --retry-errors (and a study) appends a new attempt after an error row
 * and never rewrites the file, so resume, merge and the studies' tables all
 * read the last row. Earlier rows of that id in the same file are
 * superseded, not duplicates. Across files the order says nothing, so a
 * point in several inputs (a shard given twice, a shard copied back) is a
 * duplicate: an ok row wins over one that is not, otherwise the first
 * input's row is kept. */
typedef struct id_order {
    const csv_table *t;
    int idcol;
} id_order;

static int cmp_row_id(const void *a, const void *b, void *ctx) {
    const int x = *(const int *)a, y = *(const int *)b;
    const id_order *o = ctx;
    int c = strcmp(o->t->rows[x][o->idcol], o->t->rows[y][o->idcol]);
    return c ? c : (x > y) - (x < y);
}

/* Frees the rows of t that a later row of the same id supersedes, keeping
 * the others in file order; returns how many went. */
static int drop_superseded(csv_table *t, int idcol) {
    if (t->nrows < 2) return 0;
    int *ix = malloc(sizeof *ix * (size_t)t->nrows);
    for (int r = 0; r < t->nrows; r++) ix[r] = r;
    id_order o = {t, idcol};
    qsort_r(ix, (size_t)t->nrows, sizeof *ix, cmp_row_id, &o);
    int gone = 0;
    for (int k = 0; k + 1 < t->nrows; k++) {
        if (strcmp(t->rows[ix[k]][idcol], t->rows[ix[k + 1]][idcol])) continue;
        char **row = t->rows[ix[k]];
        for (int c = 0; c < t->ncols; c++) free(row[c]);
        free(row);
        t->rows[ix[k]] = NULL;
        gone++;
    }
    free(ix);
    int n = 0;
    for (int r = 0; r < t->nrows; r++)
        if (t->rows[r]) t->rows[n++] = t->rows[r];
    t->nrows = n;
    return gone;
}

/* A sweep's recorded definition (<name>.definition, sweep.c): line `key: value` of it into val (without the newline);
 * NULL where absent. */
const char *dcbh_def_line(const char *text, const char *name, char *val, size_t len) {
    const size_t kl = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, kl) || p[kl] != ':') continue;
        const char *v = p + kl + 1 + (p[kl + 1] == ' ');
        const char *e = strchr(v, '\n');
        const size_t n = e ? (size_t)(e - v) : strlen(v);
        snprintf(val, len, "%.*s", (int)n, v);
        return val;
    }
    return NULL;
}

/* "key: old -> new" for every line that differs between two definition
 * texts (keys of either), into b; the points line only where no line of
 * the grid, base or impls explains it (a filter or the default threads). */
void dcbh_def_diff(const char *old, const char *cur, dcbh_sb *b) {
    int explained = 0;
    const char *texts[2] = {cur, old};
    for (int t = 0; t < 2; t++)
        for (const char *p = texts[t]; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
            const char *c = strchr(p, ':'), *nl = strchr(p, '\n');
            if (!c || (nl && c > nl) || *p == '#') continue;
            char k[256], a[1024], v[1024];
            snprintf(k, sizeof k, "%.*s", (int)(c - p), p);
            if (!strcmp(k, "script") || !strcmp(k, "hash")) continue;
            const char *x = dcbh_def_line(old, k, a, sizeof a), *y = dcbh_def_line(cur, k, v, sizeof v);
            if (t == 1 && y) continue;   /* both: listed in the first pass */
            if (x && y && !strcmp(x, y)) continue;
            if (!strcmp(k, "points") && explained) continue;
            explained |= !strncmp(k, "grid.", 5) || !strncmp(k, "base.", 5) || !strcmp(k, "impls");
            sb_printf(b, "%s%s: %s -> %s", b->n ? "; " : "", k, x ? x : "(none)", y ? y : "(none)");
        }
}

int dcbh_read_whole(const char *path, dcbh_sb *b) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char buf[8192];
    size_t got;
    sb_add(b, "");
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) sb_addn(b, buf, got);
    fclose(f);
    return 0;
}

/* The shards' recorded definitions (<in>.definition, sweep.c) must agree:
 * shards of two experiments are never merged. The first one found goes
 * into def (empty where no input has one). 0, or -1 after the message. */
static int merge_definitions(int argc, char **argv, dcbh_sb *def) {
    char *first = NULL;
    char h0[64] = "", h[64];
    for (int i = 1; i < argc; i++) {
        char *p = sibling(argv[i], ".definition");
        dcbh_sb d = {0};
        if (dcbh_read_whole(p, &d)) {
            free(p);
            continue;
        }
        if (!first) {
            first = p;
            *def = d;
            if (!dcbh_def_line(d.s, "hash", h0, sizeof h0)) h0[0] = 0;
            continue;
        }
        if (!dcbh_def_line(d.s, "hash", h, sizeof h) || strcmp(h, h0)) {
            dcbh_sb why = {0};
            sb_add(&why, "");
            dcbh_def_diff(def->s, d.s, &why);
            fprintf(stderr, "dcbench merge: %s and %s record different definitions (%s); these are shards of "
                            "two experiments: nothing merged\n", first, p, why.n ? why.s : "their hashes differ");
            sb_free(&why);
            sb_free(&d);
            free(p);
            free(first);
            return -1;
        }
        sb_free(&d);
        free(p);
    }
    free(first);
    return 0;
}

int cmd_merge(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dcbench merge OUT.csv IN1.csv [IN2.csv ...]\n");
        return 2;
    }
    const char *out = argv[0];
    dcbh_sb def = {0};
    if (merge_definitions(argc, argv, &def)) return 1;
    csv_table m = {0};
    char err[1024];
    int idcol = -1, stcol = -1, dups = 0, superseded = 0;
    for (int i = 1; i < argc; i++) {
        csv_table t;
        /* strict: a torn row is refused with its file and line, never dropped */
        if (csv_read(argv[i], &t, CSV_STRICT, err, sizeof err)) {
            fprintf(stderr, "dcbench merge: %s; nothing merged\n", err);
            csv_free(&m);
            sb_free(&def);
            return 1;
        }
        if (!t.cols) {   /* an empty shard (nothing selected) */
            csv_free(&t);
            continue;
        }
        if (!m.cols) {
            idcol = csv_col(&t, "point_id");
            stcol = csv_col(&t, "status");
            if (idcol < 0) {
                fprintf(stderr, "dcbench merge: %s has no point_id column; not a dcbench result\n", argv[i]);
                csv_free(&t);
                sb_free(&def);
                return 1;
            }
            m.ncols = t.ncols;
            m.cols = t.cols;
            t.cols = NULL;
        } else {
            int same = t.ncols == m.ncols;
            for (int c = 0; same && c < t.ncols; c++) same = !strcmp(t.cols[c], m.cols[c]);
            if (!same) {
                fprintf(stderr,
                        "dcbench merge: %s has different columns from %s (a different sweep definition?);"
                        " refusing to merge\n", argv[i], argv[1]);
                csv_free(&t);
                csv_free(&m);
                sb_free(&def);
                return 1;
            }
            for (int c = 0; c < t.ncols; c++) free(t.cols[c]);
            free(t.cols);
            t.cols = NULL;
        }
        superseded += drop_superseded(&t, idcol);
        const int before = m.nrows;   /* ids repeat within this file no more */
        for (int r = 0; r < t.nrows; r++) {
            char **row = t.rows[r];
            int found = -1;
            for (int k = 0; k < before && found < 0; k++)
                if (!strcmp(m.rows[k][idcol], row[idcol])) found = k;
            if (found >= 0) {
                dups++;
                if (stcol >= 0 && strcmp(m.rows[found][stcol], "ok") && !strcmp(row[stcol], "ok")) {
                    char **tmp = m.rows[found];
                    m.rows[found] = row;
                    row = tmp;
                }
                for (int c = 0; c < m.ncols; c++) free(row[c]);
                free(row);
                continue;
            }
            m.rows = realloc(m.rows, sizeof *m.rows * (size_t)(m.nrows + 1));
            m.rows[m.nrows++] = row;
        }
        free(t.rows);
        t.rows = NULL;
        t.nrows = 0;
        t.ncols = 0;
    }
    if (!m.cols) {
        fprintf(stderr, "dcbench merge: every input is empty\n");
        sb_free(&def);
        return 1;
    }
    dcbh_sb b = {0};
    for (int c = 0; c < m.ncols; c++) {
        if (c) sb_add(&b, ",");
        sb_csv_field(&b, m.cols[c]);
    }
    sb_add(&b, "\n");
    for (int r = 0; r < m.nrows; r++) {
        for (int c = 0; c < m.ncols; c++) {
            if (c) sb_add(&b, ",");
            sb_csv_field(&b, m.rows[r][c]);
        }
        sb_add(&b, "\n");
    }
    int rc = write_file_atomic(out, b.s, b.n);
    sb_free(&b);
    if (rc) {
        fprintf(stderr, "dcbench merge: cannot write %s: %s\n", out, strerror(errno));
        csv_free(&m);
        sb_free(&def);
        return 1;
    }
    /* The first input's machine/definition JSON describes the merged file
     * too, and the shards' common definition keys it (a rerun of the whole
     * sweep on it resumes). */
    char *jin = sibling(argv[1], ".json"), *jout = sibling(out, ".json"), *dout = sibling(out, ".definition");
    dcbh_sb j = {0};
    if (!dcbh_read_whole(jin, &j) && strcmp(jin, jout) && j.n && write_file_atomic(jout, j.s, j.n)) {
        fprintf(stderr, "dcbench merge: cannot write %s: %s\n", jout, strerror(errno));
        rc = 1;
    }
    if (def.n && write_file_atomic(dout, def.s, def.n)) {
        fprintf(stderr, "dcbench merge: cannot write %s: %s\n", dout, strerror(errno));
        rc = 1;
    }
    sb_free(&j);
    sb_free(&def);
    free(jin);
    free(jout);
    free(dout);
    printf("dcbench merge: %d rows from %d files into %s (%d duplicates dropped", m.nrows, argc - 1, out, dups);
    if (superseded) printf(", %d earlier attempts superseded by a later row of their point", superseded);
    printf(")\n");
    csv_free(&m);
    return rc;
}
