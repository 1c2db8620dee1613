/* End-to-end tests of the dcbench program: Lua scripts written to a temporary
 * directory are run through $DCBENCH (default build/dcbench) and their CSV,
 * figures, exit codes and messages checked. */
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];
static const char *dcbench;

static void write_text(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
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

/* Runs dcbench with args (a shell fragment) in tmpdir; stdout and stderr go
 * to out.txt / err.txt there. Returns the exit code. */
static int run(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >out.txt 2>err.txt", tmpdir, dcbench, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    char *s = read_text(p);
    return s ? s : strdup("");
}

/* Point ids of a CSV, sorted, as one string "id\nid\n..." (NULL: no file). */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static char *ids_of(const char *rel, int *nrows, int *dups) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    char *s = read_text(p);
    if (!s) return NULL;
    char *ids[4096];
    int n = 0;
    char *save = NULL;
    int first = 1;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (first) {
            first = 0;
            continue;
        }
        char *c = strchr(line, ',');
        if (c) *c = 0;
        if (n < 4096) ids[n++] = line;
    }
    qsort(ids, (size_t)n, sizeof ids[0], cmp_str);
    *dups = 0;
    for (int i = 1; i < n; i++) *dups += !strcmp(ids[i], ids[i - 1]);
    *nrows = n;
    char *out = calloc((size_t)n * 20 + 1, 1);
    for (int i = 0; i < n; i++) {
        strcat(out, ids[i]);
        strcat(out, "\n");
    }
    free(s);
    return out;
}

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("expected to find '%s' in:\n%s", needle, hay);
}

/* Writes script as name, runs dcbench with args; fails with its stderr
 * unless it exits 0. Returns its stdout (free it). */
static char *run_ok(const char *name, const char *script, const char *args) {
    write_text(name, script);
    int rc = run(args);
    if (rc) {
        char *err = slurp("err.txt");
        fail_msg("%s failed (%d):\n%s", name, rc, err);
    }
    return slurp("out.txt");
}

/* A point that errors (groups=3 does not divide cin=4: invalid_param, an
 * error and not "unsupported") prints its reason, the sweep ends with the
 * per-impl summary, and dcbench exits 3, or 0 with --keep-going; an unknown
 * key in plot={...} is refused before anything is measured. */
static const char *failing =
    "local dcb = require 'dcb'\n"
    "dcb.sweep{name='failing', op='conv2d', base={cin=4, cout=6, k=3, pad=1}, grid={groups={1,3}, H={8}},\n"
    "  impls={'naive'}, repetitions=2, min_time=0.001, roofline=false}\n";
static const char *badplot =
    "local dcb = require 'dcb'\n"
    "dcb.sweep{name='badplot', op='conv2d', base={cin=4, cout=4, k=3, pad=1}, grid={H={8}},\n"
    "  impls={'naive'}, plot={x='H', Y='time'}}\n";

/* --threads N: the threads of every op, sweep point and net whose script
 * names none, recorded in the machine JSON; refused when not 1..1024. */
static const char *threads_script =
    "local dcb = require 'dcb'\n"
    "assert(dcb.default_threads == 2, 'default_threads ' .. tostring(dcb.default_threads))\n"
    "local o = dcb.op('conv2d', {cin=4, cout=4, k=3})\n"
    "assert(o:params().threads == 2, 'op threads ' .. tostring(o:params().threads))\n"
    "local o1 = dcb.op('conv2d', {cin=4, cout=4, k=3, threads=1})\n"
    "assert(o1:params().threads == 1, 'a script that names threads keeps them')\n"
    "assert(dcb.machine():find('\"default_threads\": 2', 1, true), 'machine JSON')\n"
    "local r = dcb.sweep{name='thr', op='conv2d', base={cin=4, cout=4, k=3, pad=1}, grid={H={8}},\n"
    "  impls={'naive'}, repetitions=2, min_time=0.001, roofline=false}\n"
    "assert(r.written == 1)\n";

static void test_threads_option(void **state) {
    (void)state;
    char *out = run_ok("thr.lua", threads_script, "--results res --threads 2 thr.lua");
    free(out);
    char *csv = slurp("res/thr/thr.csv");
    assert_contains(csv, ",1,8,8,,2,ok,"); /* N=1 H=8 W=8 T= threads=2 */
    free(csv);
    assert_int_equal(run("--threads 0 thr.lua"), 2);
    char *err = slurp("err.txt");
    assert_contains(err, "--threads needs an integer from 1 to 1024, got '0'");
    free(err);
    assert_int_equal(run("--threads two thr.lua"), 2);
    /* dcb.plot{out="x.svg"} writes x.svg (an SVG), not x.svg.png */
    out = run_ok("svg.lua",
                 "local dcb = require 'dcb'\n"
                 "print(dcb.plot('res/thr/thr.csv', {x='H', y='time', by='impl', out='res/fig.svg'}))\n",
                 "svg.lua");
    assert_contains(out, "res/fig.svg\n");
    free(out);
    char *svg = slurp("res/fig.svg");
    assert_contains(svg, "<svg");
    free(svg);
    char *png = slurp("res/fig.svg.png");
    assert_string_equal(png, "");
    free(png);
}

static void test_failed_points(void **state) {
    (void)state;
    write_text("failing.lua", failing);
    assert_int_equal(run("--results res failing.lua"), 3);
    char *err = slurp("err.txt"), *out = slurp("out.txt");
    assert_contains(err, "failed: invalid_param");
    assert_contains(err, "groups=3");
    assert_contains(err, "1 sweep point(s) failed");
    assert_contains(out, "failing: 2 point(s)");
    assert_contains(out, "fastest (median)");
    assert_contains(out, " groups=1");  /* the fastest point's hyperparameters */
    free(err);
    free(out);
    /* resumed: nothing measured, nothing failed in this run */
    assert_int_equal(run("--results res failing.lua"), 0);
    assert_int_equal(run("--results res2 --keep-going failing.lua"), 0);
    err = slurp("err.txt");
    assert_contains(err, "--keep-going: exit status 0");
    free(err);
    write_text("badplot.lua", badplot);
    assert_int_not_equal(run("--results res badplot.lua"), 0);
    err = slurp("err.txt");
    assert_contains(err, "unknown key 'Y' in plot");
    free(err);
    char *csv = slurp("res/badplot/badplot.csv");
    assert_string_equal(csv, ""); /* refused before measuring: no results file */
    free(csv);
}

/* Every row records the ISA level and what else ran: a 1-thread point
 * measured while ncpu + 1 busy loops run is contended (other processes held
 * every core), says so once on stderr and in r.contended. */
static const char *loaded =
    "local dcb = require 'dcb'\n"
    "local n = tonumber(io.popen('nproc'):read('l')) + 1\n"
    "os.execute(('for i in $(seq %d); do timeout 30 sh -c \"while :; do :; done\" & echo $! >> busy.pids; done'):format(n))\n"
    "os.execute('sleep 0.3')\n"
    "local ok, r = pcall(dcb.sweep, {name='loaded', op='conv2d', base={cin=8, cout=8, k=3, pad=1}, grid={H={16}},\n"
    "  impls={'naive'}, repetitions=3, min_time=0.05, measure={'time'}})\n"
    "os.execute('kill $(cat busy.pids) 2>/dev/null')\n"
    "assert(ok, r)\n"
    "assert(r.contended == 1, 'contended ' .. tostring(r.contended))\n";

static void test_load_columns(void **state) {
    (void)state;
    write_text("loaded.lua", loaded);
    char pids[600];
    snprintf(pids, sizeof pids, "%s/busy.pids", tmpdir);
    remove(pids);
    const int rc = run("--results res loaded.lua");
    char *err = slurp("err.txt");
    if (rc) fail_msg("loaded.lua failed (%d), its stderr:\n%s", rc, err); /* once seen on a busy VM */
    assert_contains(err, "contended=1");
    free(err);
    char *csv = slurp("res/loaded/loaded.csv");
    assert_contains(csv, ",isa,loadavg,steal_pct,others_cpus,contended,floor_s,time_over_floor,picked\n");
    char want[64];
    snprintf(want, sizeof want, ",%s,", dcb_isa());
    assert_contains(csv, want);
    /* contended, then the two floor columns (empty: no calibration here) and picked (empty: not auto) */
    const char *nl = strrchr(csv, '\n');
    assert_non_null(nl);
    assert_true(nl - csv > 6 && !strncmp(nl - 5, ",1,,,", 5));
    free(csv);
}

/* Other processes holding the cores when dcbench starts: it takes the
 * contended spin count (coretype.h) and says why in the machine JSON. */
static void test_wait_policy_at_start(void **state) {
    (void)state;
    write_text("wait.lua", "local dcb = require 'dcb'\n"
                           "local m = dcb.machine()\n"
                           "print(m:match('\"omp_wait\": \"[^\"]*\"'), m:match('\"omp_wait_reason\": \"[^\"]*\"'))\n");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && n=$(nproc); for i in $(seq $n); do timeout 20 sh -c 'while :; do :; done' & done; "
             "sleep 0.5; env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY '%s' wait.lua >out.txt 2>err.txt; "
             "kill $(jobs -p) 2>/dev/null; wait",
             tmpdir, dcbench);
    assert_int_equal(system(cmd), 0);
    char *out = slurp("out.txt");
    if (!strstr(out, "\"omp_wait\": \"GOMP_SPINCOUNT=1000\"") || !strstr(out, "other processes used"))
        fail_msg("busy cores at start, expected the contended spin: %s", out);
    free(out);
}

/* A sweep of 2 x 2 points and 2 impls; winograd answers unsupported at stride 2. */
static const char *tiny =
    "local dcb = require 'dcb'\n"
    "local r = dcb.sweep{name='tiny', op='conv2d', base={cin=4, cout=4, k=3, pad=1},\n"
    "  grid={stride={1,2}, H={8,12}}, impls={'naive','winograd'}, repetitions=2, min_time=0.001,\n"
    "  measure={'time','counters','similarity'}, plot={x='H', y='time', by='impl'}}\n"
    "assert(r.total == 8 and r.written + r.skipped == 8, 'totals')\n"
    "print('figures', r.figures[1])\n";

static void test_tiny_sweep(void **state) {
    (void)state;
    write_text("tiny.lua", tiny);
    assert_int_equal(run("--results res tiny.lua"), 0);
    char *csv = slurp("res/tiny/tiny.csv");
    int lines = 0, unsup = 0, ok = 0;
    for (char *p = csv; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 9);   /* header + 8 rows */
    for (char *p = csv; (p = strstr(p, ",unsupported,")); p++) unsup++;
    for (char *p = csv; (p = strstr(p, ",ok,")); p++) ok++;
    assert_int_equal(unsup, 2);
    assert_int_equal(ok, 6);
    static const char head[] = "point_id,sweep,op,impl,cin,cout,k,pad,stride,N,H,W,T,threads,status,reason,"
                               "time_median_s";
    assert_true(!strncmp(csv, head, strlen(head)));
    assert_contains(csv, "counter_source");
    assert_contains(csv, "sim_hist");
    free(csv);
    char *png = slurp("res/tiny/tiny.png");
    assert_true(!memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    free(png);
    char *json = slurp("res/tiny/tiny.json");
    assert_contains(json, "\"machine\"");
    assert_contains(json, "\"grid\"");
    free(json);
    /* Run again: everything is done, nothing is measured twice. */
    assert_int_equal(run("--results res tiny.lua"), 0);
    int n, d;
    char *ids = ids_of("res/tiny/tiny.csv", &n, &d);
    assert_int_equal(n, 8);
    assert_int_equal(d, 0);
    free(ids);
}

/* Phases are a split of the median total: on every row they add up to no
 * more than time_median_s (they were a separate average, which could). */
static void test_phases_within_total(void **state) {
    (void)state;
    write_text("ph.lua",
               "local dcb = require 'dcb'\n"
               "local r = dcb.sweep{name='ph', op='condconv', base={cin=16, cout=16, k=3, pad=1, experts=4},\n"
               "  grid={N={1, 4}, H={6, 10}}, impls={'combine_then_conv/im2col', 'conv_then_combine/winograd'},\n"
               "  repetitions=3, min_time=0.002, roofline=false}\n"
               "local rows = dcb.read_csv(r.csv)\n"
               "local n = 0\n"
               "for _, w in ipairs(rows) do\n"
               "  local sum, any = 0, false\n"
               "  for k, v in pairs(w) do if k:match('^phase_') then sum = sum + tonumber(v); any = true end end\n"
               "  assert(any, 'no phase columns filled')\n"
               "  local t = tonumber(w.time_median_s)\n"
               "  assert(sum <= t * (1 + 1e-9), ('phases %g > total %g'):format(sum, t))\n"
               "  assert(sum > 0.2 * t, ('phases %g cover little of the total %g'):format(sum, t))\n"
               "  n = n + 1\n"
               "end\n"
               "assert(n == 8, n)\n"
               "print('phases ok', n)\n");
    assert_int_equal(run("--results ph ph.lua"), 0);
    char *out = slurp("out.txt");
    assert_contains(out, "phases ok\t8");
    free(out);
}

/* Report-ready figures: the y unit by magnitude, a title with what is
 * fixed and where it ran, legends that name the variable, small multiples
 * with one legend cell, a log axis beyond 10x, 12 styles without reuse,
 * and `dcbench plot` never writing over the sweep's own figure. The
 * checks read the gnuplot script written beside each figure. */
static void test_figures(void **state) {
    (void)state;
    write_text("fig.lua",
               "local dcb = require 'dcb'\n"
               "dcb.sweep{name='f', op='conv2d', base={k=3, pad=1, cout=8, cin=8}, grid={H={4, 16}, N={1, 2}},\n"
               "  impls={'naive', 'im2col'}, repetitions=3, min_time=0.001, roofline=false,\n"
               "  plot={{x='H', y='time', by='impl'}, {x='H', y='macs', by='N', name='f_macs'},\n"
               "        {x='H', y='params', name='f_params'}}}\n"
               "dcb.sweep{name='g', op='condconv', base={k=3, pad=1, cout=4, cin=4, experts=2}, grid={H={4, 6}},\n"
               "  repetitions=3, min_time=0.001, roofline=false, plot={x='H', y='time', by='impl'}}\n");
    assert_int_equal(run("--results fr fig.lua"), 0);
    char *gp = slurp("fr/fig/f.gp");
    /* the time unit follows the data: the largest value drawn, in that unit, lies in [1, 1000)
     * (below 1 only in us); N varies at one H: panels */
    {
        const char *u = strstr(gp, "ylabel = \"time per call (");
        assert_non_null(u);
        u += strlen("ylabel = \"time per call (");
        const double scale = !strncmp(u, "\xc2\xb5s)", 4) ? 1e6 : !strncmp(u, "ms)", 3) ? 1e3 : !strncmp(u, "s)", 2) ? 1 : 0;
        assert_true(scale > 0);
        char *dat = slurp("fr/fig/f.dat");
        double ymax = 0;
        for (char *line = strtok(dat, "\n"); line; line = strtok(NULL, "\n")) {
            double x, y, lo, hi;
            if (line[0] != '#' && sscanf(line, "%lf %lf %lf %lf", &x, &y, &lo, &hi) == 4) ymax = fmax(ymax, y);
        }
        free(dat);
        assert_true(ymax < 1000);
        assert_true(ymax >= 1 || scale == 1e6);
    }
    assert_contains(gp, "plottitle = \"conv2d f: time against H, by impl\\ncin=8 cout=8 k=3 pad=1, 1 thread\\n");
    assert_contains(gp, "npanels = 2\n");
    assert_contains(gp, "ptitles[1] = \"N=1\"");
    assert_contains(gp, "ptitles[2] = \"N=2\"");
    assert_contains(gp, "nlegend = 2\n");
    assert_contains(gp, "keytitle = \"impl\"");
    assert_contains(gp, "xlabel = \"resolution (H = W)\"");
    free(gp);
    gp = slurp("fr/fig/f_macs.gp");
    assert_contains(gp, "titles[1] = \"N=1\"");   /* by= names its variable */
    assert_contains(gp, "titles[2] = \"N=2\"");
    assert_contains(gp, "npanels = 2\n");            /* impl varies at one (H, N): a panel each */
    assert_contains(gp, "logy = 1\n");               /* MACs span 32x */
    assert_contains(gp, "yfmt = \"%.3s%c\"");        /* counts with SI prefixes */
    free(gp);
    gp = slurp("fr/fig/f_params.gp");
    assert_contains(gp, "logy = 0\n");               /* the same params everywhere */
    free(gp);
    /* condconv's 12 implementations (2 strategies x 6 engines): panels of
     * at most 6 lines, each implementation its own style, all 12 in the
     * legend cell */
    gp = slurp("fr/fig/g.gp");
    assert_contains(gp, "npanels = 2\n");
    assert_contains(gp, "ptitles[1] = \"impl 1-6 of 12\"");
    assert_contains(gp, "ptitles[2] = \"impl 7-12 of 12\"");
    assert_contains(gp, "pfirst[2] = 7\nplast[2] = 12\n");
    assert_contains(gp, "nlegend = 12\n");
    for (int i = 1; i <= 12; i++) {
        char want[64];
        snprintf(want, sizeof want, "styles[%d] = %d\n", i, i);
        assert_contains(gp, want);
    }
    free(gp);
    /* dcbench plot: its own name by default, and never the sweep's figure */
    assert_int_equal(run("plot fr/fig/f.csv H time impl"), 0);
    char *out = slurp("out.txt");
    assert_contains(out, "fr/fig/f_time_vs_H.png");
    free(out);
    assert_int_equal(run("plot fr/fig/f.csv N gflops H -o fr/fig/mine.svg"), 0);
    char *svg = slurp("fr/fig/mine.svg");
    assert_contains(svg, "<svg");
    free(svg);
    gp = slurp("fr/fig/mine.gp");
    assert_contains(gp, "titles[1] = \"H=4\"");
    assert_contains(gp, "titles[2] = \"H=16\"");
    assert_contains(gp, "ylabel = \"GFLOP/s (from the median time)\"");
    free(gp);
    assert_int_equal(run("plot fr/fig/f.csv H -o fr/fig/f.png"), 2);
    char *err = slurp("err.txt");
    assert_contains(err, "would overwrite the sweep's own figure");
    free(err);
    /* a crossover map: the winner of each (H, N) cell, four cells */
    assert_int_equal(run("plot fr/fig/f.csv H N --crossover"), 0);
    out = slurp("out.txt");
    assert_contains(out, "fr/fig/f_crossover_H_N.png");
    free(out);
    char *dat = slurp("fr/fig/f_crossover_H_N.dat");
    int cells = 0;
    for (char *p = dat; (p = strstr(p, "x\"\n")); p++) cells++;
    assert_int_equal(cells, 4);
    free(dat);
    gp = slurp("fr/fig/f_crossover_H_N.gp");
    assert_contains(gp, "nx = 2\nny = 2\nnpanels = 1\n");
    assert_contains(gp, "bynames[1] = \"naive\"");
    assert_contains(gp, "bynames[2] = \"im2col\"");
    free(gp);
    assert_int_equal(run("plot fr/fig/f.csv H --crossover"), 2);
    err = slurp("err.txt");
    assert_contains(err, "--crossover: needs CSV X Y");
    free(err);
    {   /* a grid wider than a crossover map holds: refused, naming the limit */
        char big[8192] = "point_id,sweep,op,impl,cin,N,status,time_median_s\n";
        for (int i = 1; i <= 65; i++) {
            char line[96];
            snprintf(line, sizeof line, "%04x,b,conv2d,naive,%d,1,ok,0.001\n", i, i);
            strcat(big, line);
        }
        write_text("big.csv", big);
        assert_int_equal(run("plot big.csv cin N --crossover"), 1);
        err = slurp("err.txt");
        assert_contains(err, "a crossover map takes at most 64 values of cin");
        free(err);
    }
    write_text("badkind.lua", "local dcb = require 'dcb'\nprint(dcb.plot('fr/fig/f.csv', {x='H', y='N', kind='heat'}))\n");
    assert_int_equal(run("badkind.lua"), 1);
    err = slurp("err.txt");
    assert_contains(err, "unknown kind 'heat' of figure (valid: lines, crossover)");
    free(err);
}

/* The physical floor beside every row: FLOPs at the calibrated peak plus
 * bytes at the calibrated bandwidth (t threads: min(t x 1-thread, all)),
 * from the calibration of the ISA level in use; empty without one. */
static void test_floor_columns(void **state) {
    (void)state;
    write_text("floor.lua",
               "local dcb = require 'dcb'\n"
               "local function run(name)\n"
               "  local r = dcb.sweep{name=name, op='condconv', base={cin=8, cout=8, k=3, pad=1, experts=2, H=6},\n"
               "    grid={threads={1, 2}}, impls={'combine_then_conv/im2col'}, repetitions=3, min_time=0.002,\n"
               "    roofline=false}\n"
               "  return dcb.read_csv(r.csv)\n"
               "end\n"
               "for _, w in ipairs(run('nocal')) do assert(w.floor_s == nil and w.time_over_floor == nil, 'no calibration: empty') end\n"
               "local path = os.getenv('DCB_CALIBRATION')\n"
               "local f = assert(io.open(path, 'w'))\n"
               "f:write(('{\"peak_gflops_1t\": 100, \"peak_gflops_all\": 150, \"bw_gbs_1t\": 20, \"bw_gbs_all\": 30, '\n"
               "  .. '\"threads_all\": 2, \"when\": \"2026-12-02\", \"isa\": \"%s\"}\\n'):format(dcb.isa))\n"
               "f:close()\n"
               "local n = 0\n"
               "for _, w in ipairs(run('cal')) do\n"
               "  local t = tonumber(w.threads)\n"
               "  local peak, bw = math.min(100 * t, 150), math.min(20 * t, 30)\n"
               "  local want = tonumber(w.flops) / (peak * 1e9) + tonumber(w.bytes) / (bw * 1e9)\n"
               "  local got = tonumber(w.floor_s)\n"
               "  assert(got and math.abs(got - want) <= 1e-12 + 1e-6 * want, ('floor %s, want %g'):format(w.floor_s, want))\n"
               "  local over = tonumber(w.time_over_floor)\n"
               "  assert(math.abs(over - tonumber(w.time_median_s) / got) <= 1e-6 * over, 'time over floor')\n"
               "  n = n + 1\n"
               "end\n"
               "os.remove(path)\n"
               "assert(n == 2, n)\n"
               "print('floor ok', n)\n");
    assert_int_equal(run("--results fl floor.lua"), 0);
    char *out = slurp("out.txt");
    assert_contains(out, "floor ok\t2");
    free(out);
}

/* The roofline draws the roofs of the ISA level its rows ran at: a
 * calibration file of two levels, a sweep at the narrowest level the CPU
 * runs below its widest (scalar where it runs only AVX2) takes that level's
 * peak and bandwidth, not the other's. */
static void test_roofline_level(void **state) {
    (void)state;
    const char *level = strstr(dcb_isa_available(), "avx2") ? "avx2" : "scalar", *other = "avx512";
    char calj[800];
    snprintf(calj, sizeof calj,
             "[{\"peak_gflops_1t\": 55, \"peak_gflops_all\": 66, \"bw_gbs_1t\": 5, \"bw_gbs_all\": 6, "
             "\"threads_all\": 2, \"when\": \"w\", \"isa\": \"%s\"},\n"
             " {\"peak_gflops_1t\": 77, \"peak_gflops_all\": 99, \"bw_gbs_1t\": 7, \"bw_gbs_all\": 9, "
             "\"threads_all\": 2, \"when\": \"w\", \"isa\": \"%s\"}]\n",
             other, level);
    write_text("calibration.json", calj);
    write_text("rf.lua", "local dcb = require 'dcb'\n"
                         "dcb.sweep{name='rf', op='conv2d', base={cin=8, cout=8, k=3, pad=1}, grid={H={8}, threads={1}},\n"
                         "  impls={'naive'}, repetitions=2, min_time=0.001}\n");
    char args[300];
    snprintf(args, sizeof args, "--results rfres rf.lua");
    const char *was = getenv("DCB_ISA");
    char *saved = was ? strdup(was) : NULL;
    setenv("DCB_ISA", level, 1);
    const int rc = run(args);
    if (saved)
        setenv("DCB_ISA", saved, 1);
    else
        unsetenv("DCB_ISA");
    free(saved);
    char cal[512];
    snprintf(cal, sizeof cal, "%s/calibration.json", tmpdir);
    unlink(cal); /* before any assertion: the other tests run without one */
    if (rc) {
        char *err = slurp("err.txt");
        fail_msg("rf.lua failed (%d):\n%s", rc, err);
    }
    char *gp = slurp("rfres/rf/rf_roofline.gp");
    assert_contains(gp, "\npeak = 77\nbw = 7\n");
    char want[64];
    snprintf(want, sizeof want, ", %s\"", level); /* the title names the rows' level */
    assert_contains(gp, want);
    free(gp);
}

/* impl "auto" in a sweep: the picked column names what it ran (empty for
 * the other impls); `dcbench calibrate` (quick) writes auto's references
 * beside the calibration, a later run picks by them ("calibrated" in the
 * reason), and a malformed reference file is a warning naming it, with the
 * fixed rule. */
static void test_auto_impl(void **state) {
    (void)state;
    write_text("auto.lua",
               "local dcb = require 'dcb'\n"
               "local r = dcb.sweep{name='auto', op='conv2d', base={cin=8, cout=8, k=3, pad=1, N=1},\n"
               "  grid={H={6, 20}}, impls={'auto', 'direct'}, repetitions=2, min_time=0.001, roofline=false}\n"
               "local n = 0\n"
               "for _, w in ipairs(dcb.read_csv(r.csv)) do\n"
               "  if w.impl == 'auto' then\n"
               "    local want = tonumber(w.H) >= 14 and 'winograd' or 'winograd_f2'\n"
               "    assert(w.picked == want, ('H=%s picked %s'):format(w.H, tostring(w.picked)))\n"
               "    n = n + 1\n"
               "  else assert(w.picked == nil, 'picked for ' .. w.impl) end\n"
               "end\n"
               "assert(n == 2)\n"
               "local o = dcb.op('conv2d', {impl='auto', cin=64, cout=64, k=3, pad=1})\n"
               "o:init_weights(1)\n"
               "o:forward(dcb.randn({1, 64, 56, 56}, 1))\n"
               "print('reason: ' .. o:pick_reason())\n");
    assert_int_equal(run("--results au auto.lua"), 0);
    char *out = slurp("out.txt");
    assert_contains(out, "reason: rule");
    free(out);
    /* an unknown impl names auto among the valid ones */
    write_text("auto_bad.lua", "local dcb = require 'dcb'\n"
                               "dcb.sweep{name='ab', op='conv2d', base={cin=8, cout=8, k=3}, grid={H={6}}, impls={'autox'}}\n");
    assert_int_not_equal(run("--results au auto_bad.lua"), 0);
    char *err = slurp("err.txt");
    assert_contains(err, "unknown implementation 'autox'");
    assert_contains(err, ", auto)");
    free(err);
    /* calibrate (quick) writes the references; the next run uses them. An
     * earlier file's rows of another ISA level stay, this level's go. */
    char path[600], line[256];
    snprintf(path, sizeof path, "%s/auto_calibration.csv", tmpdir);
    static const char auto_head[] = "op,impl,isa,threads,point,N,H,W,T,macs,bytes,params,acts,executed_macs,seconds\n";
    static const char other_row[] = "conv2d,direct,otherisa,1,cin=8 cout=8 k=3,1,6,6,0,10368,1000,576,288,10368,0.5\n";
    snprintf(line, sizeof line, "conv2d,direct,%s,1,cin=8 cout=8 k=3,1,6,6,0,10368,1000,576,288,10368,12345\n",
             dcb_isa());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(auto_head, f);
    fputs(other_row, f);
    fputs(line, f);
    fclose(f);
    /* and calibration.json's level of another ISA stays beside this one's */
    write_text("calibration.json", "{\"peak_gflops_1t\": 7, \"peak_gflops_all\": 9, \"bw_gbs_1t\": 1, "
                                   "\"bw_gbs_all\": 2, \"threads_all\": 2, \"when\": \"w\", \"isa\": \"otherisa\"}\n");
    setenv("DCB_CALIB_QUICK", "1", 1);
    assert_int_equal(run("calibrate 2"), 0);
    unsetenv("DCB_CALIB_QUICK");
    out = slurp("out.txt");
    assert_contains(out, "(and kept 1 calibration of other ISA levels)");
    char *calt = slurp("calibration.json");
    assert_contains(calt, "\"isa\": \"otherisa\"}");
    snprintf(line, sizeof line, "\"isa\": \"%s\"}", dcb_isa());
    assert_contains(calt, line);
    free(calt);
    assert_contains(out, "reference points");
    assert_contains(out, "auto_calibration.csv (and kept 1 rows of other ISA levels)");
    free(out);
    char *csvt = slurp("auto_calibration.csv");
    assert_true(!strncmp(csvt, auto_head, strlen(auto_head)));
    assert_contains(csvt, other_row);
    assert_null(strstr(csvt, ",12345\n")); /* this level's old row replaced */
    snprintf(line, sizeof line, "\nconv2d,winograd,%s,1,", dcb_isa());
    assert_contains(csvt, line);
    free(csvt);
    write_text("auto_cal.lua", "local dcb = require 'dcb'\n"
                               "local o = dcb.op('conv2d', {impl='auto', cin=64, cout=64, k=3, pad=1})\n"
                               "o:init_weights(1)\n"
                               "o:forward(dcb.randn({1, 64, 56, 56}, 1))\n"
                               "print('reason: ' .. o:pick_reason())\n");
    assert_int_equal(run("auto_cal.lua"), 0);
    out = slurp("out.txt");
    assert_contains(out, "reason: calibrated");
    free(out);
    /* a torn reference file: a warning that names it, and the rule */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("op,impl,isa,threads\nconv2d,direct,avx2,1\n", f);
    fclose(f);
    write_text("calibration.json", "[{\"peak_gflops_1t\": 7}]\n");
    /* calibrate says it does not keep such a file's rows, nor a torn calibration */
    setenv("DCB_CALIB_QUICK", "1", 1);
    assert_int_equal(run("calibrate 2"), 0);
    unsetenv("DCB_CALIB_QUICK");
    out = slurp("out.txt");
    assert_contains(out, "(and kept 0 calibrations of other ISA levels)");
    free(out);
    err = slurp("err.txt");
    assert_contains(err, "calibration.json is not a calibration file (malformed); it is replaced");
    assert_contains(err, "auto_calibration.csv: not this version's columns (op,impl,isa,threads...): its rows are not kept");
    free(err);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("op,impl,isa,threads\nconv2d,direct,avx2,1\n", f);
    fclose(f);
    assert_int_equal(run("auto_cal.lua"), 0);
    err = slurp("err.txt");
    assert_contains(err, "auto_calibration.csv: no column 'macs'");
    free(err);
    out = slurp("out.txt");
    assert_contains(out, "reason: rule");
    free(out);
    remove(path);
    snprintf(path, sizeof path, "%s/calibration.json", tmpdir);
    remove(path);
}

/* A slower sweep (naive conv, 12 points) for kill/resume and shards. */
static const char *slow =
    "local dcb = require 'dcb'\n"
    "dcb.sweep{name='slow', op='conv2d', base={cin=8, cout=8, k=3, pad=1},\n"
    "  grid={H={8,12,16,20}, N={1,2,3}}, impls={'naive'}, repetitions=3, min_time=0.02, roofline=false}\n";

static void test_kill_and_resume(void **state) {
    (void)state;
    write_text("slow.lua", slow);
    assert_int_equal(run("--results full slow.lua"), 0);
    int nfull, d;
    char *full = ids_of("full/slow/slow.csv", &nfull, &d);
    assert_int_equal(nfull, 12);
    assert_int_equal(d, 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(tmpdir)) _exit(127);
        freopen("/dev/null", "w", stderr);
        execl(dcbench, dcbench, "--results", "killed", "slow.lua", (char *)NULL);
        _exit(127);
    }
    /* Kill it after it wrote some rows but before it finished. */
    int rows = 0;
    for (int i = 0; i < 2000 && rows < 3; i++) {
        usleep(5000);
        int dd;
        char *ids = ids_of("killed/slow/slow.csv", &rows, &dd);
        free(ids);
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    int nk;
    char *part = ids_of("killed/slow/slow.csv", &nk, &d);
    assert_true(nk >= 3 && nk < 12);
    free(part);
    /* A torn last row, as a kill in the middle of a write would leave. */
    char p[512];
    snprintf(p, sizeof p, "%s/killed/slow/slow.csv", tmpdir);
    FILE *f = fopen(p, "a");
    fputs("deadbeefdeadbeef,slow,conv2d,naive,8,8,3", f);
    fclose(f);
    assert_int_equal(run("--results killed slow.lua"), 0);
    int nr;
    char *resumed = ids_of("killed/slow/slow.csv", &nr, &d);
    assert_int_equal(nr, 12);
    assert_int_equal(d, 0);
    assert_string_equal(resumed, full);
    free(resumed);
    free(full);
}

static void test_shards_merge(void **state) {
    (void)state;
    write_text("slow.lua", slow);
    assert_int_equal(run("--results sh --shard 1/2 slow.lua"), 0);
    assert_int_equal(run("--results sh --shard 2/2 slow.lua"), 0);
    int n1, n2, d;
    free(ids_of("sh/slow/slow.shard1of2.csv", &n1, &d));
    free(ids_of("sh/slow/slow.shard2of2.csv", &n2, &d));
    assert_int_equal(n1 + n2, 12);
    assert_true(n1 > 0 && n2 > 0);
    /* the same shard twice: merge drops the duplicates */
    assert_int_equal(run("merge sh/merged.csv sh/slow/slow.shard1of2.csv sh/slow/slow.shard2of2.csv "
                         "sh/slow/slow.shard1of2.csv"), 0);
    int nm, nu;
    char *merged = ids_of("sh/merged.csv", &nm, &d);
    assert_int_equal(d, 0);
    assert_int_equal(run("--results un slow.lua"), 0);
    char *unsharded = ids_of("un/slow/slow.csv", &nu, &d);
    assert_string_equal(merged, unsharded);
    free(merged);
    free(unsharded);
    /* files with other columns are refused */
    write_text("other.csv", "point_id,sweep,x\n1,a,2\n");
    assert_int_not_equal(run("merge sh/bad.csv sh/merged.csv other.csv"), 0);
    char *err = slurp("err.txt");
    assert_contains(err, "different columns");
    free(err);
}

/* A results file is keyed by its definition: an edited copy of a script
 * under the same name is refused with what changed (nothing appended),
 * --fresh moves the earlier results aside, another script of the same
 * basename is refused, and merged shards resume as the whole sweep. */
static void test_definition_change(void **state) {
    (void)state;
    static const char *const def = "local dcb = require 'dcb'\n"
                                   "dcb.sweep{name='d', op='conv2d', base={k=3, pad=1, cout=8}, grid={cin={%d}, H={6}},\n"
                                   "  impls={'naive'}, repetitions=%d, min_time=0.001}\n";
    char text[512];
    snprintf(text, sizeof text, def, 32, 5);
    write_text("exp.lua", text);
    assert_int_equal(run("--results dr exp.lua"), 0);
    int n, d;
    free(ids_of("dr/exp/d.csv", &n, &d));
    assert_int_equal(n, 1);
    char *rec = slurp("dr/exp/d.definition");
    assert_contains(rec, "grid.cin: 32");
    assert_contains(rec, "repetitions: 5");
    free(rec);
    assert_int_equal(run("--results dr exp.lua"), 0);   /* the same definition resumes */
    free(ids_of("dr/exp/d.csv", &n, &d));
    assert_int_equal(n, 1);
    snprintf(text, sizeof text, def, 48, 7);
    write_text("exp.lua", text);
    assert_int_equal(run("--results dr exp.lua"), 1);
    char *err = slurp("err.txt");
    assert_contains(err, "another definition of sweep 'd'");
    assert_contains(err, "grid.cin: 32 -> 48");
    assert_contains(err, "repetitions: 5 -> 7");
    assert_contains(err, "--fresh");
    free(err);
    free(ids_of("dr/exp/d.csv", &n, &d));
    assert_int_equal(n, 1);   /* nothing appended */
    assert_int_equal(run("--fresh --results dr exp.lua"), 0);
    err = slurp("err.txt");
    assert_contains(err, "--fresh: the earlier results of sweep 'd' are in dr/exp/replaced-");
    free(err);
    char *csv = slurp("dr/exp/d.csv");
    assert_contains(csv, "naive,48,");
    assert_null(strstr(csv, "naive,32,"));
    free(csv);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -q 'naive,32,' '%s'/dr/exp/replaced-*/d.csv && test -f '%s'/dr/exp/replaced-*/d.definition",
             tmpdir, tmpdir);
    assert_int_equal(system(cmd), 0);   /* moved aside, not lost */
    /* another script of the same basename */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/other' && cp '%s/exp.lua' '%s/other/exp.lua'", tmpdir, tmpdir, tmpdir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run("--results dr other/exp.lua"), 1);
    err = slurp("err.txt");
    assert_contains(err, "/other/exp.lua");
    assert_contains(err, "the definition is the same, the script is not");
    free(err);
    /* shards of one definition merge into a file the whole sweep resumes;
     * shards of two are refused */
    snprintf(text, sizeof text, def, 16, 3);
    write_text("sh.lua", text);
    assert_int_equal(run("--results ds --shard 1/2 sh.lua"), 0);
    assert_int_equal(run("--results ds --shard 2/2 sh.lua"), 0);
    assert_int_equal(run("merge ds/sh/d.csv ds/sh/d.shard1of2.csv ds/sh/d.shard2of2.csv"), 0);
    assert_int_equal(run("--results ds sh.lua"), 0);
    err = slurp("err.txt");
    assert_contains(err, "1 done earlier");
    free(err);
    snprintf(text, sizeof text, def, 16, 4);
    write_text("sh.lua", text);
    assert_int_equal(run("--results ds --fresh --shard 2/2 sh.lua"), 0);
    assert_int_equal(run("merge ds/sh/m.csv ds/sh/d.shard1of2.csv ds/sh/d.shard2of2.csv"), 1);
    err = slurp("err.txt");
    assert_contains(err, "repetitions: 3 -> 4");
    assert_contains(err, "nothing merged");
    free(err);
}

static void test_script_errors(void **state) {
    (void)state;
    write_text("boom.lua", "local function f() error('boom here') end\nf()\n");
    assert_int_equal(run("boom.lua"), 1);
    char *err = slurp("err.txt");
    assert_contains(err, "boom here");
    assert_contains(err, "stack traceback");
    free(err);
    struct {
        const char *script, *needle1, *needle2;
    } cases[] = {
        {"require('dcb').op('nope', {})", "unknown operator 'nope'", "valid: conv2d"},
        {"require('dcb').op('conv2d', {cin=4, cout=4, k=3, impl='fast'})", "unknown implementation 'fast'",
         "naive, im2col"},
        {"require('dcb').op('conv2d', {cin=4, cout=4, k=3, colour=1})", "unknown hyperparameter 'colour'",
         "cin"},
        {"require('dcb').impls('nope')", "dcb.impls: unknown operator 'nope'", "conv2d"},
        {"require('dcb').sweep{name='x', op='conv2d', base={cin=4,cout=4,k=3}, grid={foo={1}}}",
         "unknown hyperparameter 'foo'", "threads"},
        {"require('dcb').sweep{name='x', op='conv2d', impls={'fast'}, base={cin=4,cout=4,k=3}}",
         "unknown implementation 'fast'", "winograd"},
        {"require('dcb').sweep{name='x', op='conv2d', colour=1}", "unknown field 'colour'", "grid"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text("bad.lua", cases[i].script);
        assert_int_equal(run("bad.lua"), 1);
        err = slurp("err.txt");
        assert_contains(err, cases[i].needle1);
        assert_contains(err, cases[i].needle2);
        free(err);
    }
    assert_int_equal(run("--help"), 0);
    char *out = slurp("out.txt");
    assert_contains(out, "--shard");
    assert_contains(out, "calibrate");
    free(out);
    assert_int_not_equal(run("--shard 3/2 x.lua"), 0);
    assert_int_not_equal(run("frobnicate"), 0);
    /* OpenBLAS on an old core's kernels (forced here) on an AVX2 CPU: warned */
    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    setenv("DCB_KEEP_CORETYPE", "1", 1);
    assert_int_equal(run("list"), 0);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("DCB_KEEP_CORETYPE");
    err = slurp("err.txt");
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && strstr(dcb_blas_name(), "openblas"))
        assert_contains(err, "OpenBLAS runs its Prescott kernels");
#endif
    free(err);
    assert_int_equal(run("list"), 0);
    err = slurp("err.txt");
    assert_null(strstr(err, "kernels on a CPU"));
    free(err);
}

/* dcbench list OP [key=value...]: the hyperparameters with their defaults
 * (integers as integers), the weights' shapes for the values given, their
 * layouts as docs/OPERATORS.md names them, the implementations; an unknown
 * operator or key, a bad value or an invalid combination exit 2 naming it. */
static void test_list_op(void **state) {
    (void)state;
    assert_int_equal(run("list conv2d"), 0);
    char *out = slurp("out.txt");
    assert_contains(out, "stride = 1 ");
    assert_contains(out, "pad = 0 ");
    assert_contains(out, "groups = 1 ");
    assert_contains(out, "bias = false ");
    assert_null(strstr(out, "= 1.0"));
    assert_null(strstr(out, "= 0.0"));
    assert_contains(out, "cin = (required)");
    assert_contains(out, "kh = (derived)");
    /* no default for cin, cout, k: example values, said so, and the shape they give */
    assert_contains(out, "cin=64, cout=64, k=3: example values");
    assert_contains(out, "weight       (64, 64, 3, 3)");
    assert_contains(out, "(cout, cin/groups, kh, kw)");
    assert_contains(out, "not with these hyperparameters: bias (cout)");
    assert_contains(out, "\n  naive ");
    assert_contains(out, "\n  winograd ");
    assert_contains(out, "backward implementations");
    assert_contains(out, "\n  gemm ");
    free(out);

    assert_int_equal(run("list conv2d cin=8 cout=16 k=5 groups=2 bias=true N=2 H=10"), 0);
    out = slurp("out.txt");
    assert_contains(out, "weight       (16, 4, 5, 5)");
    assert_contains(out, "bias         (16)");
    assert_contains(out, "input x (2, 8, 10, 10) -> output y (2, 16, 6, 6)");
    assert_contains(out, "cin=8 cout=16 k=5 kh=5 kw=5 stride=1 pad=0 dilation=1 groups=2 bias=true");
    assert_null(strstr(out, "example values"));
    /* Winograd cannot run a 5x5 kernel: said, not hidden */
    assert_contains(out, "winograd      unsupported_param");
    free(out);

    assert_int_equal(run("list condconv cin=64 cout=64 k=3 experts=8"), 0);
    out = slurp("out.txt");
    assert_contains(out, "experts = 8 ");
    assert_contains(out, "weight       (8, 64, 64, 3, 3) ");
    assert_contains(out, " (E, cout, cin/groups, kh, kw)\n");
    assert_contains(out, "route_w      (8, 64)");
    assert_contains(out, "combine_then_conv/im2col");
    free(out);

    assert_int_equal(run("list lightconv channels=8 heads=2 kernel_size=5 padding=causal"), 0);
    out = slurp("out.txt");
    assert_contains(out, "padding = same ");
    assert_contains(out, "padding=causal");
    assert_contains(out, "weight       (2, 5)");
    assert_contains(out, "input x (1, 128, 8) -> output y (1, 128, 8)");
    free(out);

    assert_int_equal(run("list batchnorm channels=16"), 0);
    out = slurp("out.txt");
    assert_contains(out, "eps = 1e-05 ");
    assert_contains(out, "running_var  (16)");
    assert_contains(out, "buffer, not trained");
    free(out);

    /* every registered operator lists, and docs/OPERATORS.md names every weight's layout */
    for (int i = 0; i < dcb_op_count(); i++) {
        char args[128];
        snprintf(args, sizeof args, "list %s", dcb_op_name(i));
        if (run(args)) {
            char *err = slurp("err.txt");
            fail_msg("dcbench %s failed:\n%s", args, err);
        }
        out = slurp("out.txt");
        if (strstr(out, "(layout:")) fail_msg("dcbench %s: a weight without a layout:\n%s", args, out);
        free(out);
    }

    struct {
        const char *args, *needle1, *needle2;
    } bad[] = {
        {"list nope", "unknown operator 'nope'", "valid: conv2d, se"},
        {"list conv2d colour=1", "unknown hyperparameter 'colour'", "cin, cout, k"},
        {"list conv2d k=abc", "k=abc", "an integer"},
        {"list conv2d k=2.5", "k=2.5", "an integer"},
        {"list conv2d bias=maybe", "bias=maybe", "true or false"},
        {"list conv2d cin", "'cin' is not key=value", "cin=64"},
        {"list conv2d cin=64 cout=64 k=3 groups=3", "groups=3", "cin=64"},
        {"list lightconv padding=left", "padding='left'", "same, causal"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(run(bad[i].args), 2);
        char *err = slurp("err.txt");
        assert_contains(err, bad[i].needle1);
        assert_contains(err, bad[i].needle2);
        free(err);
        out = slurp("out.txt");
        assert_string_equal(out, "");
        free(out);
    }
    assert_int_equal(run("--help"), 0);
    out = slurp("out.txt");
    assert_contains(out, "list OP [key=value...]");
    assert_contains(out, "docs/LUA.md");
    free(out);
    /* without an operator: the registry, as before */
    assert_int_equal(run("list"), 0);
    out = slurp("out.txt");
    assert_contains(out, "conv2d: naive im2col");
    free(out);
}

/* The start of the scripts that check errors: fails(pattern, f, ...) asserts
 * that f(...) raises an error containing pattern. */
#define LUA_FAILS_PRELUDE \
    "local dcb = require 'dcb'\n" \
    "local function fails(pat, f, ...)\n" \
    "  local ok, e = pcall(f, ...)\n" \
    "  assert(not ok, 'expected an error matching ' .. pat)\n" \
    "  assert(tostring(e):find(pat, 1, true), 'error \"' .. tostring(e) .. '\" lacks \"' .. pat .. '\"')\n" \
    "end\n"

/* Every API function on valid and invalid input, checked inside Lua. */
static const char *api =
    LUA_FAILS_PRELUDE
    "local x = dcb.randn({2, 4, 6, 6}, 7)\n"
    "assert(#x == 288 and x.size == 288 and x.ndim == 4 and x.shape[2] == 4 and x:shape()[4] == 6)\n"
    "assert(dcb.randn({2, 4, 6, 6}, 7):get(2, 3, 4, 5) == x:get(2, 3, 4, 5))\n"
    "fails('outside', x.get, x, 3, 1, 1, 1)\n"
    "fails('positive integer', dcb.randn, {2, 0})\n"
    "fails('shape', dcb.zeros, 'big')\n"
    "assert(dcb.zeros({3}):get(2) == 0)\n"
    "dcb.save(x, 'x.npy')\n"
    "local x2 = dcb.load('x.npy')\n"
    "assert(x2:get(1, 2, 3, 4) == x:get(1, 2, 3, 4))\n"
    "fails('dcb.load', dcb.load, 'missing.npy')\n"
    "fails('must be a tensor', dcb.save, 3, 'y.npy')\n"
    "local names = dcb.impls('conv2d')\n"
    "assert(names[1] == 'naive' and #names >= 3)\n"
    "assert(dcb.ops()[1] == 'conv2d')\n"
    "assert(#dcb.params('conv2d') > 3)\n"
    "local pd = {}\n"
    "for _, p in ipairs(dcb.params('conv2d')) do pd[p.name] = p end\n"
    "assert(math.type(pd.stride.default) == 'integer' and pd.stride.default == 1 and pd.stride.type == 'int')\n"
    "assert(pd.bias.default == false and pd.cin.default == 'derived' and pd.cin.doc:find('required'))\n"
    "for _, p in ipairs(dcb.params('dyconv')) do pd[p.name] = p end\n"
    "assert(pd.temperature.default == 1.0 and pd.temperature.type == 'float')\n"
    "local op = dcb.op('conv2d', {cin=4, cout=3, k=3, pad=1, impl='im2col', threads=1})\n"
    "assert(op:impl() == 'im2col' and op:name() == 'conv2d' and op:params().cout == 3)\n"
    "fails('dcb.op', dcb.op, 'conv2d', {cin=4, cout=3, k=3, groups=3})\n"
    "fails('weight', op.forward, op, x)\n"
    "op:init_weights(3)\n"
    "local w = op:weights()\n"
    "assert(w.weight.shape[1] == 3)\n"
    "local y = op:forward(x)\n"
    "assert(y.shape[2] == 3 and y.shape[3] == 6)\n"
    "fails('invalid_shape', op.forward, op, dcb.randn({2, 5, 6, 6}))\n"
    "local c = op:cost()\n"
    "assert(c.macs == 2 * 3 * 4 * 9 * 36 and c.flops == 2 * c.macs and c.params == 108)\n"
    "assert(op:cost({1, 4, 6, 6}).macs == c.macs / 2)\n"
    "fails('unsupported', op.kernels, op, x)\n"
    "fails('unsupported', op.routing, op, x)\n"
    "local fresh = dcb.op('conv2d', {cin=4, cout=3, k=3})\n"
    "fails('input shape', fresh.cost, fresh)\n"
    "fresh:load_weights('.') -- reads ./weight.npy\n"
    "assert(fresh:weights().weight:get(1, 1, 1, 1) == w.weight:get(1, 1, 1, 1))\n"
    "fails('load_weights', fresh.load_weights, fresh, 'nowhere')\n"
    "local k = dcb.randn({5, 3, 4, 3, 3}, 1)\n"
    "local s = dcb.similarity(k)\n"
    "assert(s.pairs == 10 and s.mean >= -1 and s.max <= 1 and #s.hist == 20 and s.per_channel.pairs == 30)\n"
    "fails('dcb.similarity', dcb.similarity, dcb.randn({1, 3}))\n"
    "local b = dcb.bench(op, x, {repetitions=3, min_time=0.001})\n"
    "assert(b.median > 0 and b.min <= b.median and b.median <= b.max and b.repetitions == 3)\n"
    "assert(b.phases and b.counters.source and b.cost.macs == c.macs and b.prepare_s >= 0)\n"
    "local cold = dcb.bench(op, x, {repetitions=2, min_time=0.001, rotate=true})\n"
    "assert(cold.rotate_copies >= 2)\n"
    "fails('unknown option', dcb.bench, op, x, {reps=3})\n"
    "fails('must be an operator', dcb.bench, x, x)\n"
    "local cal, msg = dcb.calibration()\n"
    "assert(cal or msg:find('calibrate'))\n"
    "assert(type(dcb.version) == 'string' and dcb.quick == false and dcb.shard.n == 1)\n"
    "fails('measure', dcb.sweep, {name='m', op='conv2d', base={cin=4,cout=4,k=3}, measure={'speed'}})\n"
    "print('api ok')\n";

static void test_api(void **state) {
    (void)state;
    write_text("api.lua",
               "local dcb = require 'dcb'\n"
               "local op = dcb.op('conv2d', {cin=4, cout=3, k=3, pad=1}); op:init_weights(3)\n"
               "dcb.save(op:weights().weight, 'weight.npy')\n");
    assert_int_equal(run("api.lua"), 0);
    char *out = run_ok("api.lua", api, "api.lua");
    assert_contains(out, "api ok");
    free(out);
}

/* The shipped sweeps/peers.lua in --quick form, without PyTorch (DCB_PYTHON
 * points nowhere) and with a calibration of this ISA level whose 1-thread
 * peak is 50 GFLOP/s:
 * every layer has our best implementation against oneDNN, the ratio is the
 * ratio of the medians, the % of peak columns follow the calibration, the
 * markdown table repeats the CSV's ratios, and the figure is a PNG. */
static void test_peers_sweep(void **state) {
    (void)state;
    char repo[1024], args[1400];
    assert_non_null(getcwd(repo, sizeof repo));
    /* of this run's ISA level: peers.lua ignores a calibration of another */
    char calj[512];
    snprintf(calj, sizeof calj,
             "{\"peak_gflops_1t\": 50, \"peak_gflops_all\": 90, \"bw_gbs_1t\": 10, \"bw_gbs_all\": 20, "
             "\"threads_all\": 2, \"when\": \"2026-01-01T00:00:00Z\", \"isa\": \"%s\"}\n",
             dcb_isa());
    write_text("calibration.json", calj);
    snprintf(args, sizeof args, "--quick --results res '%s/sweeps/peers.lua'", repo);
    setenv("DCB_PYTHON", "/nonexistent/python3", 1);
    int rc = run(args);
    unsetenv("DCB_PYTHON");
    if (rc) {
        char *err = slurp("err.txt");
        fail_msg("peers.lua --quick failed (%d):\n%s", rc, err);
    }
    char *out = slurp("out.txt");
    assert_contains(out, "only oneDNN is compared");
    free(out);
    char *csv = slurp("res/peers/peers.csv");
    static const char head[] = "layer,op,threads,ours_impl,ours_median_s,ours_min_s,ours_max_s,ours_gflops,"
                               "ours_pct_peak,peer,peer_variant,peer_median_s,peer_min_s,peer_max_s,peer_gflops,"
                               "peer_pct_peak,ours_over_peer\n";
    assert_true(!strncmp(csv, head, strlen(head)));
    int rows = 0;
    double ratios[8] = {0};
    char *save = NULL;
    for (char *line = strtok_r(csv + strlen(head), "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[17];
        int n = 0;
        for (char *q = line, *c; n < 17; q = c + 1) {
            f[n++] = q;
            if (!(c = strchr(q, ','))) break;
            *c = 0;
        }
        assert_int_equal(n, 17);
        assert_string_equal(f[2], "1");        /* --quick: one thread */
        assert_string_equal(f[9], "onednn");   /* the only peer without PyTorch */
        const double om = atof(f[4]), omin = atof(f[5]), omax = atof(f[6]), og = atof(f[7]), op = atof(f[8]);
        const double pm = atof(f[11]), pg = atof(f[14]), pp = atof(f[15]), ratio = atof(f[16]);
        assert_true(om > 0 && omin <= om && om <= omax && pm > 0 && og > 0);
        assert_true(fabs(ratio - om / pm) <= 1e-4 * ratio);
        assert_true(fabs(op - 2 * og) <= 1e-4 * op);   /* peak 50 GFLOP/s */
        assert_true(fabs(pg - og * om / pm) <= 1e-4 * pg);
        assert_true(fabs(pp - 2 * pg) <= 1e-4 * pp);
        if (rows < 8) ratios[rows] = ratio;
        rows++;
    }
    assert_int_equal(rows, 6);   /* 4 ResNet layers at batch 1, the 1x1 and the depthwise layer */
    free(csv);
    /* peers.md: the same rows as a markdown table; ours/oneDNN in column 8 */
    char *md = slurp("res/peers/peers.md");
    assert_true(!strncmp(md, "| layer | thr | ours (best impl) |", 34));
    int mrows = 0;
    save = NULL;
    for (char *line = strtok_r(md, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "| ", 2) || !strncmp(line, "| layer", 7)) continue;
        char *cell[16];
        int n = 0;
        for (char *q = line + 1, *c; n < 16 && (c = strchr(q, '|')); q = c + 1) {
            *c = 0;
            cell[n++] = q;
        }
        assert_int_equal(n, 14);
        assert_string_equal(cell[12], " - "); /* no floor: static layers */
        assert_string_equal(cell[13], " - ");
        assert_true(mrows < 6);
        char want[32];
        snprintf(want, sizeof want, " %.2f ", ratios[mrows]);
        assert_string_equal(cell[7], want);
        assert_string_equal(cell[1], " 1 ");
        assert_string_equal(cell[8], " - "); /* no PyTorch */
        mrows++;
    }
    assert_int_equal(mrows, 6);
    free(md);
    char *png = slurp("res/peers/peers.png");
    assert_true(!memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    free(png);
    char cal[512];
    snprintf(cal, sizeof cal, "%s/calibration.json", tmpdir);
    unlink(cal);   /* the other tests run without a calibration */
}

/* sweeplib.dyn_floor_extra, point 3's floor beyond the static conv, against
 * its formula by hand: a calibration of this run's ISA with peak 100 / 150
 * GFLOP/s and bandwidth 10 / 16 GB/s (1 thread / all 2), condconv-like
 * hyperparameters with groups; on 2 threads the all-thread figures cap the
 * doubled ones; nil with a reason without experts or with a calibration of
 * another ISA. */
static void test_dyn_floor(void **state) {
    (void)state;
    write_text("floor.lua",
               "local dcb = require 'dcb'\n"
               "local lib = require 'sweeplib'\n"
               "local function cal(isa)\n"
               "  local f = assert(io.open(os.getenv('DCB_CALIBRATION'), 'w'))\n"
               "  f:write(('{\"peak_gflops_1t\": 100, \"peak_gflops_all\": 150, \"bw_gbs_1t\": 10, '\n"
               "    .. '\"bw_gbs_all\": 16, \"threads_all\": 2, \"when\": \"2026-01-01T00:00:00Z\", \"isa\": \"%s\"}'):format(isa))\n"
               "  f:close()\n"
               "end\n"
               "cal(dcb.isa)\n"
               "local p = {cin = 64, cout = 32, groups = 2, kh = 3, kw = 3, experts = 4}\n"
               "local s1, q = lib.dyn_floor_extra(p, 8, 'winograd', 1)\n"
               "local s2 = lib.dyn_floor_extra(p, 8, 'winograd', 2)\n"
               "local s3, q3 = lib.dyn_floor_extra({cin = 64, cout = 32, groups = 2, k = 3, kernels = 4}, 8, 'im2col', 1)\n"
               "print(('floor %.17g %.17g %.17g %.17g %.17g %.17g'):format(s1, q.bytes, q.flops, s2, s3, q3.flops))\n"
               "print('noexp', lib.dyn_floor_extra({cin = 64, cout = 32, k = 3}, 8, 'winograd', 1))\n"
               "print('here', lib.calibration_here().peak_gflops_1t)\n"
               "cal('other')\n"
               "print('otherisa', lib.dyn_floor_extra(p, 8, 'winograd', 1))\n"
               "print('otherhere', lib.calibration_here())\n"
               "print('asked', dcb.calibration('other').isa)\n"
               "local f = assert(io.open(os.getenv('DCB_CALIBRATION'), 'w'))\n"
               "f:write(('[{\"peak_gflops_1t\": 7, \"peak_gflops_all\": 9, \"bw_gbs_1t\": 1, \"bw_gbs_all\": 2, '\n"
               "  .. '\"threads_all\": 2, \"when\": \"w\", \"isa\": \"other\"},\\n'\n"
               "  .. ' {\"peak_gflops_1t\": 100, \"peak_gflops_all\": 150, \"bw_gbs_1t\": 10, \"bw_gbs_all\": 16, '\n"
               "  .. '\"threads_all\": 2, \"when\": \"w\", \"isa\": \"%s\"}]'):format(dcb.isa))\n"
               "f:close()\n"
               "print('twolevels', lib.calibration_here().peak_gflops_1t, dcb.calibration('other').peak_gflops_1t)\n");
    if (run("floor.lua")) {
        char *err = slurp("err.txt");
        fail_msg("floor.lua failed:\n%s", err);
    }
    char *out = slurp("out.txt");
    double s1, bytes, flops, s2, s3, f3;
    const char *at = strstr(out, "floor ");
    assert_non_null(at);
    assert_int_equal(sscanf(at, "floor %lf %lf %lf %lf %lf %lf", &s1, &bytes, &flops, &s2, &s3, &f3), 6);
    /* one kernel: 32 outputs x 32 inputs a group x 9 taps */
    const double P = 32.0 * 32 * 9, wbytes = 4 * (4 * P + 8 * P), wmix = 2 * 8 * 4 * P;
    const double wtr = 2.0 * 8 * 32 * 32 * (9 * 6 + 3 * 36); /* F(4x4): a = 6 */
    assert_true(bytes == wbytes && flops == wmix + wtr);
    assert_true(fabs(s1 - (wbytes / 10e9 + (wmix + wtr) / 100e9)) <= 1e-12 * s1);
    assert_true(fabs(s2 - (wbytes / 16e9 + (wmix + wtr) / 150e9)) <= 1e-12 * s2);
    assert_true(f3 == wmix && fabs(s3 - (wbytes / 10e9 + wmix / 100e9)) <= 1e-12 * s3); /* im2col: no transform */
    assert_contains(out, "noexp\tnil\tno experts or kernels");
    /* a file of another level only: none of this one, and which it holds */
    char want[256];
    snprintf(want, sizeof want, "otherisa\tnil\tno calibration of %s in ", dcb_isa());
    assert_contains(out, want);
    snprintf(want, sizeof want, " (it holds other; run: DCB_ISA=%s dcbench calibrate)", dcb_isa());
    assert_contains(out, want);
    assert_contains(out, "here\t100\n");
    snprintf(want, sizeof want, "otherhere\tnil\tno calibration of %s in ", dcb_isa());
    assert_contains(out, want);
    assert_contains(out, "asked\tother\n");
    /* both levels in one file: each run reads its own */
    assert_contains(out, "twolevels\t100\t7\n");
    free(out);
    char cal[512];
    snprintf(cal, sizeof cal, "%s/calibration.json", tmpdir);
    unlink(cal);
}

/* dcb.compare under --quick: three variants (two ops and a bare GEMM) and
 * one that cannot run, interleaved; the returned table, the printed table
 * and the CSV are checked. */
static const char *compare_script =
    LUA_FAILS_PRELUDE
    "local x = dcb.randn({1, 4, 8, 8}, 1)\n"
    "local function mk(impl) local o = dcb.op('conv2d', {cin=4, cout=4, k=3, pad=1, impl=impl}); "
    "o:init_weights(3); return o end\n"
    "local naive, im2col = mk('naive'), mk('im2col')\n"
    "local r = dcb.compare{title='tiny compare', baseline='im2col', steal=true, profile=true, csv='cmp/c.csv',\n"
    "  variants={{name='naive', op=naive, x=x}, {name='im2col', op=im2col, x=x},\n"
    "            {name='gemm', gemm={M=4, N=64, K=36}},\n"
    "            {name='bad', op=mk('naive'), x=dcb.randn({1, 5, 8, 8}, 1)}}}\n"
    "assert(r.repetitions == dcb.timing.repetitions and r.repetitions == 3, 'quick repetitions')\n"
    "assert(r.min_time == dcb.timing.min_time and r.baseline == 'im2col')\n"
    "assert(#r.variants == 4 and r.variants[1].name == 'naive' and r.by_name.gemm == r.variants[3])\n"
    "assert(table.concat(r.order, ' ') == 'naive im2col gemm naive im2col gemm naive im2col gemm', "
    "table.concat(r.order, ' '))\n"
    "for i = 1, 3 do\n"
    "  local v = r.variants[i]\n"
    "  assert(v.status == 'ok' and v.median > 0 and v.inner >= 1 and #v.reps == 3, v.name)\n"
    "  assert(v.min <= v.q1 and v.q1 <= v.median and v.median <= v.q3 and v.q3 <= v.max, v.name)\n"
    "  assert(v.gflops > 0 and v.ratio > 0 and v.spread >= 0 and v.threads == 1, v.name)\n"
    "end\n"
    "assert(r.by_name.im2col.ratio == 1, 'the baseline is 1')\n"
    "assert(math.abs(r.by_name.naive.ratio - r.by_name.naive.median / r.by_name.im2col.median) < 1e-12)\n"
    "assert(r.by_name.naive.replans == 0 and r.by_name.im2col.phases.gemm >= 0 and not r.by_name.gemm.phases)\n"
    "assert(r.by_name.gemm.flops == 2 * 4 * 64 * 36 and r.by_name.naive.flops == naive:cost(x).flops)\n"
    "assert(r.by_name.bad.status == 'error' and r.by_name.bad.reason:find('invalid_shape') and "
    "not r.by_name.bad.median)\n"
    "assert(r.steal == nil or r.steal >= 0)\n"
    "fails('baseline', dcb.compare, {variants={{op=naive, x=x}}, baseline='none'})\n"
    "fails('two variants', dcb.compare, {variants={{op=naive, x=x}, {op=naive, x=x}}})\n"
    "fails('unknown option', dcb.compare, {variants={{op=naive, x=x}}, reps=3})\n"
    "fails('threads=2', dcb.compare, {variants={{op=naive, x=x, threads=2}}})\n"
    "fails('x (the', dcb.compare, {variants={{op=naive}}})\n"
    "fails('has 0 entries', dcb.compare, {variants={}})\n"
    "print('compare ok')\n";

static void test_compare(void **state) {
    (void)state;
    char *out = run_ok("cmp.lua", compare_script, "--quick cmp.lua");
    assert_contains(out, "compare ok");
    assert_contains(out, "# tiny compare\n");
    /* one printed row per variant; the baseline's ratio is 1.00 */
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[32];
        if (sscanf(line, "%31s", name) != 1 ||
            (strcmp(name, "naive") && strcmp(name, "im2col") && strcmp(name, "gemm") && strcmp(name, "bad")))
            continue;
        rows++;
        const char *bar = strrchr(line, '|');
        if (!strcmp(name, "im2col")) {
            assert_non_null(bar);
            assert_string_equal(bar, "| 1.00");
        }
        if (!strcmp(name, "bad")) assert_non_null(strstr(line, "error: invalid_shape"));
    }
    assert_int_equal(rows, 4);
    free(out);
    char *csv = slurp("cmp/c.csv");
    static const char head[] = "title,variant,op,impl,threads,status,reason,repetitions,inner,median_s,";
    assert_true(!strncmp(csv, head, strlen(head)));
    int lines = 0;
    for (char *p = csv; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 5);   /* header + 4 variants */
    assert_contains(csv, "tiny compare,gemm,gemm,cblas_sgemm,1,ok,");
    /* the baseline's row: ..., baseline, ratio, steal_pct */
    char *row = strstr(csv, "\ntiny compare,im2col,conv2d,im2col,1,ok,");
    assert_non_null(row);
    char *end = strchr(row + 1, '\n');
    assert_non_null(end);
    *end = 0;
    char *f[32];
    int n = 0;
    for (char *q = row + 1, *c; n < 32; q = c + 1) {
        f[n++] = q;
        if (!(c = strchr(q, ','))) break;
        *c = 0;
    }
    assert_int_equal(n, 21);
    assert_string_equal(f[18], "im2col");
    assert_string_equal(f[19], "1");
    assert_true(atof(f[9]) > 0);   /* median_s */
    free(csv);
}

/* op:forward of every implementation against the library's naive conv. */
static void test_forward_matches_naive(void **state) {
    (void)state;
    write_text("fwd.lua",
               "local dcb = require 'dcb'\n"
               "local x = dcb.randn({2, 6, 9, 7}, 5)\n"
               "dcb.save(x, 'fx.npy')\n"
               "for _, impl in ipairs(dcb.impls('conv2d')) do\n"
               "  local op = dcb.op('conv2d', {cin=6, cout=5, k=3, pad=1, impl=impl})\n"
               "  op:init_weights(11)\n"
               "  dcb.save(op:weights().weight, 'fw.npy')\n"
               "  dcb.save(op:forward(x), 'fy_' .. impl .. '.npy')\n"
               "end\n");
    assert_int_equal(run("fwd.lua"), 0);
    char p[512];
    dcb_tensor *x = NULL, *w = NULL;
    snprintf(p, sizeof p, "%s/fx.npy", tmpdir);
    assert_ok(dcb_npy_load(p, &x));
    snprintf(p, sizeof p, "%s/fw.npy", tmpdir);
    assert_ok(dcb_npy_load(p, &w));
    dcb_hparam hp[] = {TU_HP("cin", 6), TU_HP("cout", 5), TU_HP("k", 3), TU_HP("pad", 1)};
    dcb_op *op = NULL;
    assert_ok(dcb_op_create("conv2d", "naive", hp, 4, &op));
    assert_ok(dcb_op_set_weight(op, "weight", w));
    dcb_tensor *ref = NULL;
    assert_ok(dcb_op_forward(op, x, &ref));
    for (int i = 0; i < dcb_impl_count("conv2d"); i++) {
        dcb_tensor *y = NULL;
        snprintf(p, sizeof p, "%s/fy_%s.npy", tmpdir, dcb_impl_name("conv2d", i));
        assert_ok(dcb_npy_load(p, &y));
        double err = dcb_max_rel_err(y, ref, NULL);
        if (!(err <= 1e-5)) fail_msg("%s: relative error %g against naive", dcb_impl_name("conv2d", i), err);
        dcb_tensor_free(y);
    }
    dcb_tensor_free(ref);
    dcb_tensor_free(x);
    dcb_tensor_free(w);
    dcb_op_destroy(op);
}

static int setup(void **state) {
    (void)state;
    if (!(dcbench = tu_dcbench_path("test_harness_e2e"))) return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dcbench-e2e-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    /* no calibration file of the developer's leaks into the tests */
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
        cmocka_unit_test(test_tiny_sweep),     cmocka_unit_test(test_phases_within_total),
        cmocka_unit_test(test_figures),        cmocka_unit_test(test_floor_columns), cmocka_unit_test(test_roofline_level),
        cmocka_unit_test(test_load_columns),
        cmocka_unit_test(test_failed_points),
        cmocka_unit_test(test_threads_option),     cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_shards_merge),   cmocka_unit_test(test_definition_change),
        cmocka_unit_test(test_script_errors),  cmocka_unit_test(test_list_op),
        cmocka_unit_test(test_api),            cmocka_unit_test(test_forward_matches_naive),
        cmocka_unit_test(test_peers_sweep),    cmocka_unit_test(test_dyn_floor),    cmocka_unit_test(test_compare),
        cmocka_unit_test(test_auto_impl),      cmocka_unit_test(test_wait_policy_at_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
