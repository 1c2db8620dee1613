/* oplist.c — `dcbench list [OP [key=value...]]`: the registry, or one
 * operator as a newcomer needs it: its hyperparameters with their defaults,
 * the weights (names and shapes) that the given hyperparameters create, each
 * weight's layout in the words of docs/OPERATORS.md, the input and output
 * shapes, and the forward and backward implementations with what they say of
 * themselves, those that cannot run these hyperparameters marked so.
 * Everything comes from the library (dcb_op_params, dcb_op_create and the
 * weight introspection); the layouts are read from docs/OPERATORS.md under
 * dcbh_home(), the one place that names them. */
#define _GNU_SOURCE
#include "harness.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DCBH_LIST_MAX 64   /* key=value words of one `list OP` */

static const char *const type_names[] = {"int", "float", "bool", "string"};

/* ------------------------------------------------------------- values */
static void fmt_num(char *b, size_t n, dcb_param_type t, double v) {
    if (t == DCB_PT_BOOL)
        snprintf(b, n, "%s", v != 0 ? "true" : "false");
    else if (v == floor(v) && fabs(v) < 9e15)
        snprintf(b, n, "%lld", (long long)v);
    else
        snprintf(b, n, "%g", v);
}

/* The default as the table shows it: a value, or why there is none. */
static void fmt_default(char *b, size_t n, const dcb_param_spec *p) {
    if (p->type == DCB_PT_STRING)
        snprintf(b, n, "%s", p->def_str ? p->def_str : "\"\"");
    else if (!p->derived)
        fmt_num(b, n, p->type, p->def);
    else if (p->doc && strstr(p->doc, "required"))
        snprintf(b, n, "(required)");
    else if (p->doc && strstr(p->doc, "default"))
        snprintf(b, n, "(derived)");
    else
        snprintf(b, n, "(no default)");
}

/* A numeric hyperparameter without a default that its doc does not derive
 * from others: creating the op needs a value for it ("required", or k,
 * which kh and kw may replace). dcb_param_spec says "derived" for both
 * kinds; only the doc line tells them apart. */
static int needs_value(const dcb_param_spec *p) {
    return p->type != DCB_PT_STRING && p->derived && !(p->doc && strstr(p->doc, "default") && !strstr(p->doc, "required"));
}

/* What `list OP` shows when such a hyperparameter is not given: a kernel
 * extent 3, an input height or width the sweeps' default 28, any other size
 * (channels, features) 64. */
static double example_value(const char *name) {
    if (!strcmp(name, "k") || !strcmp(name, "kh") || !strcmp(name, "kw") || !strcmp(name, "kernel_size")) return 3;
    if (!strcmp(name, "H") || !strcmp(name, "W")) return 28;
    return 64;
}

/* What the command line gave: hyperparameters and input sizes. */
typedef struct given {
    dcb_hparam hp[DCBH_LIST_MAX];
    int nhp;
    int64_t N, H, W, T;   /* 0: the default */
} given;

static int parse_int(const char *s, double *out) {
    char *end = NULL;
    const double v = strtod(s, &end);
    if (!*s || !end || *end || !isfinite(v) || v != floor(v)) return -1;
    *out = v;
    return 0;
}

static void valid_keys(const char *op, char *b, size_t n) {
    int np = 0;
    const dcb_param_spec *ps = dcb_op_params(op, &np);
    size_t o = 0;
    b[0] = 0;
    for (int i = 0; i < np && o < n; i++) o += (size_t)snprintf(b + o, n - o, "%s, ", ps[i].name);
    if (o < n)
        snprintf(b + o, n - o, "threads; input sizes %s",
                 dcb_op_input_layout(op) == DCB_INPUT_SEQUENCE ? "N, T" : dcb_op_is_shape_key(op, "H") ? "N, H, W" : "N");
}

/* Every "key=value" read as the operator's hyperparameter of that name (its
 * type decides), threads, or, where dcb_op_is_shape_key says so, an input
 * size. 0, or 2 after the message. The strings stay argv's. */
static int read_given(const char *op, int argc, char **argv, given *g) {
    int np = 0;
    const dcb_param_spec *ps = dcb_op_params(op, &np);
    memset(g, 0, sizeof *g);
    for (int a = 0; a < argc; a++) {
        const char *eq = strchr(argv[a], '=');
        if (!eq || eq == argv[a]) {
            fprintf(stderr, "dcbench list %s: '%s' is not key=value (e.g. cin=64)\n", op, argv[a]);
            return 2;
        }
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - argv[a]), argv[a]);
        const char *val = eq + 1;
        int idx = -1;
        for (int i = 0; i < np; i++)
            if (!strcmp(ps[i].name, key)) idx = i;
        double v = 0;
        if (idx < 0 && dcb_op_is_shape_key(op, key)) {
            if (parse_int(val, &v) || v < 1 || v > 1 << 30) {
                fprintf(stderr, "dcbench list %s: %s=%s: an input size is a positive integer\n", op, key, val);
                return 2;
            }
            int64_t *dst = !strcmp(key, "N") ? &g->N : !strcmp(key, "T") ? &g->T : !strcmp(key, "H") ? &g->H : &g->W;
            *dst = (int64_t)v;
            continue;
        }
        if (idx < 0 && strcmp(key, "threads")) {
            char names[1024];
            valid_keys(op, names, sizeof names);
            fprintf(stderr, "dcbench list %s: unknown hyperparameter '%s' (valid: %s)\n", op, key, names);
            return 2;
        }
        if (g->nhp == DCBH_LIST_MAX) {
            fprintf(stderr, "dcbench list %s: more than %d hyperparameters\n", op, DCBH_LIST_MAX);
            return 2;
        }
        dcb_hparam *h = &g->hp[g->nhp];
        h->name = idx < 0 ? "threads" : ps[idx].name;
        h->str = NULL;
        const dcb_param_type t = idx < 0 ? DCB_PT_INT : ps[idx].type;
        int bad = 0;
        if (t == DCB_PT_STRING) {
            h->str = val;
        } else if (t == DCB_PT_BOOL) {
            if (!strcmp(val, "true") || !strcmp(val, "1")) h->num = 1;
            else if (!strcmp(val, "false") || !strcmp(val, "0")) h->num = 0;
            else bad = 1;
        } else if (t == DCB_PT_INT) {
            bad = parse_int(val, &v) != 0;
            h->num = v;
        } else {
            char *end = NULL;
            h->num = strtod(val, &end);
            bad = !*val || *end || !isfinite(h->num);
        }
        if (bad) {
            fprintf(stderr, "dcbench list %s: %s=%s: %s takes %s\n", op, key, val, key,
                    t == DCB_PT_BOOL  ? "true or false (or 1, 0)"
                    : t == DCB_PT_INT ? "an integer, e.g. 3"
                                      : "a number, e.g. 0.5");
            return 2;
        }
        g->nhp++;
    }
    return 0;
}

/* ------------------------------------------------- docs/OPERATORS.md */
/* The text of docs/OPERATORS.md that names op's weights, newlines as
 * spaces: from "Weights" to the paragraph's end in the operator's own
 * section ("### op ..."), or the cell under "weights" of the table row
 * whose first cell names `op`. NULL when the file does not describe it. */
static char *weights_text(const char *doc, const char *op) {
    char head[96], tick[80];
    snprintf(head, sizeof head, "### %s ", op);
    snprintf(tick, sizeof tick, "`%s`", op);
    const size_t hl = strlen(head);
    for (const char *line = doc; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *eol = strchr(line, '\n');
        const size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len >= hl && !strncmp(line, head, hl)) {
            /* the section runs to the next heading */
            const char *end = line + len;
            while (*end && !(end[0] == '\n' && end[1] == '#')) end++;
            const char *w = strstr(line, "Weights");
            if (!w || w >= end) return NULL;
            const char *stop = strstr(w, "\n\n");
            if (!stop || stop > end) stop = end;
            char *t = strndup(w, (size_t)(stop - w));
            for (char *p = t; *p; p++)
                if (*p == '\n') *p = ' ';
            return t;
        }
        if (line[0] == '|') {
            /* a table row: is op in its first cell? */
            const char *c2 = memchr(line + 1, '|', len - 1);
            if (!c2) continue;
            char *first = strndup(line + 1, (size_t)(c2 - line - 1));
            const int mine = strstr(first, tick) != NULL;
            free(first);
            if (!mine) continue;
            /* the table's header: the first line of this block of rows */
            const char *hdr = line;
            while (hdr > doc + 1 && hdr[-1] == '\n' && hdr[-2] != '\n') {
                const char *prev = hdr - 1;
                while (prev > doc && prev[-1] != '\n') prev--;
                if (prev[0] != '|') break;
                hdr = prev;
            }
            int col = -1, k = 0;
            for (const char *p = hdr + 1; *p && *p != '\n'; k++) {
                const char *q = strchr(p, '|');
                const char *nl = strchr(p, '\n');
                if (!q || (nl && q > nl)) break;
                const char *s = p, *e = q;
                while (s < e && isspace((unsigned char)*s)) s++;
                while (e > s && isspace((unsigned char)e[-1])) e--;
                if ((size_t)(e - s) == 7 && !strncmp(s, "weights", 7)) col = k;
                p = q + 1;
            }
            if (col < 0) return NULL;
            const char *p = line + 1;
            for (k = 0; k < col; k++) {
                p = memchr(p, '|', (size_t)(line + len - p));
                if (!p) return NULL;
                p++;
            }
            const char *q = memchr(p, '|', (size_t)(line + len - p));
            return strndup(p, q ? (size_t)(q - p) : (size_t)(line + len - p));
        }
    }
    return NULL;
}

/* The layout "(cout, cin/groups, kh, kw)" that text gives weight `name`
 * ("`name` (...)"), into b; 0, or -1 when text does not name it. */
static int layout_of(const char *text, const char *name, char *b, size_t n) {
    char tick[80];
    snprintf(tick, sizeof tick, "`%s`", name);
    for (const char *p = strstr(text, tick); p; p = strstr(p + 1, tick)) {
        const char *s = p + strlen(tick);
        while (*s == ' ') s++;
        if (*s != '(') continue;
        int depth = 0;
        const char *e = s;
        for (; *e; e++) {
            depth += *e == '(' ? 1 : *e == ')' ? -1 : 0;
            if (!depth) break;
        }
        if (!*e) continue;
        snprintf(b, n, "%.*s", (int)(e - s + 1), s);
        return 0;
    }
    return -1;
}

/* --------------------------------------------------------------- list */
static int list_all(void) {
    for (int i = 0; i < dcb_op_count(); i++) {
        const char *op = dcb_op_name(i);
        printf("%s:", op);
        for (int k = 0; k < dcb_impl_count(op); k++) printf(" %s", dcb_impl_name(op, k));
        printf("  | backward:");
        for (int k = 0; k < dcb_bwd_count(op); k++) printf(" %s", dcb_bwd_name(op, k));
        printf("\n");
    }
    return 0;
}

static void print_hparams(const char *op) {
    int np = 0;
    const dcb_param_spec *ps = dcb_op_params(op, &np);
    printf("\nhyperparameters (name = default, type, meaning; key=value after the operator sets one):\n");
    if (!np) printf("  none but threads\n");
    char d[64], lhs[DCBH_LIST_MAX + 1][128];
    int w = 0;
    for (int i = 0; i <= np && i <= DCBH_LIST_MAX; i++) {
        if (i < np) fmt_default(d, sizeof d, &ps[i]);
        if (i < np) snprintf(lhs[i], sizeof lhs[i], "%s = %s", ps[i].name, d);
        else snprintf(lhs[i], sizeof lhs[i], "threads = %d", dcb_default_threads());
        if ((int)strlen(lhs[i]) > w) w = (int)strlen(lhs[i]);
    }
    for (int i = 0; i < np && i < DCBH_LIST_MAX; i++)
        printf("  %-*s  %-6s  %s\n", w, lhs[i], type_names[ps[i].type], ps[i].doc ? ps[i].doc : "");
    printf("  %-*s  %-6s  %s\n", w, lhs[np < DCBH_LIST_MAX ? np : DCBH_LIST_MAX], "int",
           "OpenMP team and BLAS threads (every operator; dcbench --threads N: N)");
}

/* The values the op uses (after defaults and derivation), the example values marked. */
static void print_values(const dcb_op *o, const char *op, const given *g, const char *const *examples, int nex) {
    int np = 0;
    const dcb_param_spec *ps = dcb_op_params(op, &np);
    printf("hyperparameters in use:");
    char b[64];
    for (int i = 0; i < np; i++) {
        if (ps[i].type == DCB_PT_STRING) {   /* dcb_op_get_param gives numbers only: the given or the default */
            const char *v = ps[i].def_str ? ps[i].def_str : "";
            for (int j = 0; j < g->nhp; j++)
                if (!strcmp(g->hp[j].name, ps[i].name) && g->hp[j].str) v = g->hp[j].str;
            printf(" %s=%s", ps[i].name, v);
            continue;
        }
        const double v = dcb_op_get_param(o, ps[i].name);
        if (isnan(v)) continue;
        fmt_num(b, sizeof b, ps[i].type, v);
        printf(" %s=%s", ps[i].name, b);
    }
    printf(" threads=%d\n", dcb_op_threads(o));
    if (nex) {
        printf("  (");
        for (int i = 0; i < nex; i++) printf("%s%s", i ? ", " : "", examples[i]);
        printf(": example values of hyperparameters without a default; give key=value to choose them)\n");
    }
}

static void print_shapes(dcb_op *o, const char *op, const given *g) {
    const int seq = dcb_op_input_layout(op) == DCB_INPUT_SEQUENCE;
    const int64_t N = g->N ? g->N : 1, H = g->H ? g->H : 28, W = g->W ? g->W : H, T = g->T ? g->T : 128;
    int64_t xs[DCB_MAX_DIMS], ys[DCB_MAX_DIMS];
    char a[160], b[160];
    const int xn = dcb_op_input_shape(o, N, H, W, T, xs);
    if (xn < 1) return;
    int yn = 0;
    size_t ws = 0;
    printf("input x %s", dcb_shape_str(xn, xs, a, sizeof a));
    if (dcb_op_plan(o, xn, xs, &yn, ys, &ws) == DCB_OK)
        printf(" -> output y %s", dcb_shape_str(yn, ys, b, sizeof b));
    else
        printf(" -> no output: %s", dcb_last_error());
    if (seq)
        printf("  (%s (N, T, C); N=, T= set the sizes)\n", "sequences");
    else if (dcb_op_is_shape_key(op, "H"))
        printf("  (%s (N, C, H, W); N=, H=, W= set the sizes)\n", "images");
    else
        printf("  (%s (N, C, H, W); N= sets the batch)\n", "images");
}

static void print_weights(const dcb_op *o, const char *op) {
    char path[4200];
    snprintf(path, sizeof path, "%s/docs/OPERATORS.md", dcbh_home());
    char *doc = dcbh_read_all(path);
    char *text = doc ? weights_text(doc, op) : NULL;
    const int nw = dcb_op_weight_count(o);
    printf("\nweights (shape for these hyperparameters, layout as docs/OPERATORS.md names it):\n");
    if (!nw) printf("  none\n");
    char sh[160], lay[256];
    for (int i = 0; i < nw; i++) {
        int64_t s[DCB_MAX_DIMS];
        const int n = dcb_op_weight_shape(o, i, s);
        const char *name = dcb_op_weight_name(o, i);
        if (!text || layout_of(text, name, lay, sizeof lay))
            snprintf(lay, sizeof lay, "%s", !doc ? "(layout: no docs/OPERATORS.md under DCB_HOME)"
                                                 : "(layout: not in docs/OPERATORS.md)");
        printf("  %-12s %-26s %s%s\n", name, dcb_shape_str(n, s, sh, sizeof sh), lay,
               dcb_op_weight_is_buffer(o, i) ? "  buffer, not trained" : "");
    }
    /* weights the docs name that these hyperparameters do not create (a bias without bias=true) */
    int first = 1;
    for (const char *p = text ? strchr(text, '`') : NULL; p; p = strchr(p + 1, '`')) {
        const char *e = strchr(p + 1, '`');
        if (!e) break;
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
        const char *s = e + 1;
        while (*s == ' ') s++;
        int have = 0;
        for (int i = 0; i < nw; i++) have |= !strcmp(dcb_op_weight_name(o, i), name);
        if (*s == '(' && !have && !layout_of(text, name, lay, sizeof lay)) {
            printf("%s %s %s", first ? "  not with these hyperparameters:" : ",", name, lay);
            first = 0;
        }
        p = e;
    }
    if (!first) printf("\n");
    free(text);
    free(doc);
}

static void print_impls(const char *op, const dcb_hparam *hp, int nhp, dcb_op *o) {
    int w = 12;
    for (int k = 0; k < dcb_impl_count(op); k++)
        if ((int)strlen(dcb_impl_name(op, k)) > w) w = (int)strlen(dcb_impl_name(op, k));
    printf("\nforward implementations (impl=; the first is the oracle and the default):\n");
    /* the registered ones, then auto where the operator has it */
    for (int k = 0; k < dcb_impl_count(op) + dcb_impl_has_auto(op); k++) {
        const char *name = k < dcb_impl_count(op) ? dcb_impl_name(op, k) : "auto";
        dcb_op *x = NULL;
        const dcb_status st = dcb_op_create(op, name, hp, nhp, &x);
        if (st == DCB_OK)
            printf("  %-*s  %s\n", w, name, dcb_op_get_impl_doc(x));
        else
            printf("  %-*s  %s: %s\n", w, name, dcb_status_name(st), dcb_last_error());
        dcb_op_destroy(x);
    }
    const char *def = dcb_op_get_backward(o);
    printf("\nbackward implementations (op:set_backward; the first is the oracle):\n");
    if (dcb_bwd_count(op) <= 0) printf("  none\n");
    for (int k = 0; k < dcb_bwd_count(op); k++) {
        const char *name = dcb_bwd_name(op, k);
        const dcb_status st = dcb_op_set_backward(o, name);
        if (st == DCB_OK)
            printf("  %-*s  %s%s\n", w, name, dcb_op_get_backward_doc(o),
                   def && !strcmp(def, name) ? "  (the default here)" : "");
        else
            printf("  %-*s  %s: %s\n", w, name, dcb_status_name(st), dcb_last_error());
    }
    dcb_op_set_backward(o, def);
}

static int list_one(const char *op, int argc, char **argv) {
    if (dcb_impl_count(op) < 0) {
        dcbh_sb b = {0};
        for (int i = 0; i < dcb_op_count(); i++) sb_printf(&b, "%s%s", i ? ", " : "", dcb_op_name(i));
        fprintf(stderr, "dcbench list: unknown operator '%s' (valid: %s)\n", op, b.s);
        sb_free(&b);
        return 2;
    }
    given g;
    int rc = read_given(op, argc, argv, &g);
    if (rc) return rc;
    /* the given values alone, else with example values for what has no default */
    dcb_op *o = NULL;
    const char *examples[DCBH_LIST_MAX];
    char exbuf[DCBH_LIST_MAX][80];
    int nex = 0;
    dcb_status st = dcb_op_create(op, NULL, g.hp, g.nhp, &o);
    if (st != DCB_OK) {
        int np = 0;
        const dcb_param_spec *ps = dcb_op_params(op, &np);
        for (int i = 0; i < np && g.nhp < DCBH_LIST_MAX; i++) {
            int set = 0;
            for (int j = 0; j < g.nhp; j++) set |= !strcmp(g.hp[j].name, ps[i].name);
            if (set || !needs_value(&ps[i])) continue;
            g.hp[g.nhp++] = (dcb_hparam){ps[i].name, example_value(ps[i].name), NULL};
            snprintf(exbuf[nex], sizeof exbuf[nex], "%s=%g", ps[i].name, example_value(ps[i].name));
            examples[nex] = exbuf[nex];
            nex++;
        }
        if (nex) st = dcb_op_create(op, NULL, g.hp, g.nhp, &o);
    }
    if (st != DCB_OK) {
        fprintf(stderr, "dcbench list %s: %s: %s", op, dcb_status_name(st), dcb_last_error());
        if (nex) {
            fprintf(stderr, " (with the example values");
            for (int i = 0; i < nex; i++) fprintf(stderr, " %s", examples[i]);
            fprintf(stderr, "; give key=value to choose them)");
        }
        fprintf(stderr, "\n");
        return 2;
    }
    printf("%s: %s\n", op, dcb_op_doc(op) ? dcb_op_doc(op) : "");
    print_hparams(op);
    printf("\n");
    print_values(o, op, &g, examples, nex);
    print_shapes(o, op, &g);
    print_weights(o, op);
    print_impls(op, g.hp, g.nhp, o);
    dcb_op_destroy(o);
    return 0;
}

int dcbh_cmd_list(int argc, char **argv) { return argc < 1 ? list_all() : list_one(argv[0], argc - 1, argv + 1); }
