/* bench_seq — the sequence operators against attention (issue 6's dynconv1d
 * target): dynconv1d and lightconv (every strategy but the naive oracle) and
 * mhattention/gemm on x (N, T, C), C = 512, 16 heads, batch 8 by default, for
 * each kernel width K and length T. Variants are interleaved round-robin
 * within each repetition so that a busy machine slows all of them alike;
 * medians and the min-max spread are printed, and with -j one JSON line per
 * (variant, K, T) for scripts/peers/seq_target.py to join with PyTorch's.
 * Weights are seeded (PyTorch's default initialisation), x is N(0, 1).
 *
 * Usage: bench_seq [-r reps] [-t threads] [-N batch] [-C channels] [-H heads]
 *                  [-T 256,1024,2048] [-K 3,31] [-v variant,...] [-j] [-p]
 *   -p: after each variant's line, one run's per-phase profile.
 *   variants: dynconv1d/{unfold,band,direct,naive}, lightconv/{...},
 *             mhattention/{gemm,naive}; default: all but the naive ones. */
#define _GNU_SOURCE
#include "bench_util.h"
#include "coretype.h"
#include "dcb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1) break;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

#define MAXV 16
#define MAXR 64

static const char *const default_variants[] = {"dynconv1d/direct", "dynconv1d/unfold", "dynconv1d/band",
                                               "lightconv/direct", "lightconv/unfold", "lightconv/band",
                                               "mhattention/gemm"};

int main(int argc, char **argv) {
    dcb_fix_coretype(argv);
    int reps = 5, threads = 1, N = 8, C = 512, H = 16, json = 0, profile = 0;
    int Ts[32] = {256, 1024, 2048}, nT = 3, Ks[8] = {3, 31}, nK = 2;
    const char *vnames[MAXV];
    int nv = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-j") == 0 || strcmp(a, "-p") == 0) {
            json |= a[1] == 'j';
            profile |= a[1] == 'p';
            continue;
        }
        if (!v) goto usage;
        i++;
        if (strcmp(a, "-r") == 0)
            reps = atoi(v);
        else if (strcmp(a, "-t") == 0)
            threads = atoi(v);
        else if (strcmp(a, "-N") == 0)
            N = atoi(v);
        else if (strcmp(a, "-C") == 0)
            C = atoi(v);
        else if (strcmp(a, "-H") == 0)
            H = atoi(v);
        else if (strcmp(a, "-T") == 0)
            nT = parse_list(v, Ts, 32);
        else if (strcmp(a, "-K") == 0)
            nK = parse_list(v, Ks, 8);
        else if (strcmp(a, "-v") == 0) {
            char *s = strdup(v);
            for (char *tok = strtok(s, ","); tok && nv < MAXV; tok = strtok(NULL, ",")) vnames[nv++] = tok;
        } else
            goto usage;
    }
    if (reps < 1 || reps > MAXR || threads < 1 || N < 1 || C < 1 || H < 1 || nT < 1 || nK < 1) goto usage;
    if (nv == 0) {
        nv = (int)(sizeof default_variants / sizeof default_variants[0]);
        for (int v = 0; v < nv; v++) vnames[v] = default_variants[v];
    }
    printf("# bench_seq: x (N=%d, T, C=%d), %d heads, padding same, weight_softmax, no bias; %d thread(s), "
           "%d repetitions\n",
           N, C, H, threads, reps);
    printf("# libdcb %s; flags: %s\n# BLAS: %s\n", DCB_VERSION, dcb_build_flags(), dcb_blas_info());
    const char *forced = getenv("DCB_FORCED_CORETYPE");
    if (forced) printf("# the environment set OPENBLAS_CORETYPE=%s; dropped, OpenBLAS chose its own core\n", forced);
    printf("%3s %5s | %-18s %10s %7s %9s | %s\n", "K", "T", "variant", "median_ms", "spread", "GFLOP/s",
           "vs mhattention/gemm");
    for (int ik = 0; ik < nK; ik++)
        for (int it = 0; it < nT; it++) {
            const int K = Ks[ik], T = Ts[it];
            dcb_op *op[MAXV] = {0};
            void *ws[MAXV] = {0};
            dcb_tensor *x = dcb_tensor_new(3, (int64_t[]){N, T, C});
            dcb_tensor *y = dcb_tensor_new(3, (int64_t[]){N, T, C});
            if (!x || !y) {
                fprintf(stderr, "bench_seq: out of memory at T=%d\n", T);
                return 1;
            }
            dcb_tensor_randn(x, 1);
            double flops[MAXV], t[MAXV][MAXR];
            int inner[MAXV], ok[MAXV];
            for (int v = 0; v < nv; v++) {
                char opname[64];
                const char *slash = strchr(vnames[v], '/');
                ok[v] = 0;
                if (!slash || (size_t)(slash - vnames[v]) >= sizeof opname) continue;
                memcpy(opname, vnames[v], (size_t)(slash - vnames[v]));
                opname[slash - vnames[v]] = 0;
                dcb_hparam hp[] = {{"channels", C, NULL}, {"heads", H, NULL}, {"threads", threads, NULL},
                                   {"kernel_size", K, NULL}};
                const int nhp = strcmp(opname, "mhattention") == 0 ? 3 : 4;
                dcb_status st = dcb_op_create(opname, slash + 1, hp, nhp, &op[v]);
                size_t wsb = 0;
                int yn;
                int64_t ys[DCB_MAX_DIMS];
                if (st == DCB_OK) st = dcb_op_init_weights(op[v], 3);
                if (st == DCB_OK) st = dcb_op_prepare(op[v]);
                if (st == DCB_OK) st = dcb_op_plan(op[v], 3, x->shape, &yn, ys, &wsb);
                if (st == DCB_OK && wsb && !(ws[v] = dcb_aligned_alloc(wsb))) st = DCB_OUT_OF_MEMORY;
                if (st != DCB_OK) {
                    fprintf(stderr, "bench_seq: %s K=%d T=%d: %s: %s\n", vnames[v], K, T, dcb_status_name(st),
                            dcb_last_error());
                    continue;
                }
                dcb_cost cost;
                dcb_op_cost(op[v], 3, x->shape, &cost);
                flops[v] = 2 * cost.executed_macs;
                ok[v] = 1;
                /* inner repetition count so that one sample lasts >= 30 ms */
                dcb_op_run(op[v], x, y, ws[v], NULL);
                inner[v] = 1;
                for (;;) {
                    double t0 = now();
                    for (int i = 0; i < inner[v]; i++) dcb_op_run(op[v], x, y, ws[v], NULL);
                    if (now() - t0 > 0.03 || inner[v] > 1 << 16) break;
                    inner[v] *= 2;
                }
            }
            for (int r = 0; r < reps; r++)
                for (int v = 0; v < nv; v++) {
                    if (!ok[v]) continue;
                    double t0 = now();
                    for (int i = 0; i < inner[v]; i++) dcb_op_run(op[v], x, y, ws[v], NULL);
                    t[v][r] = (now() - t0) / inner[v];
                }
            double med[MAXV], att = NAN;
            for (int v = 0; v < nv; v++) {
                if (!ok[v]) continue;
                qsort(t[v], (size_t)reps, sizeof(double), cmp_double);
                med[v] = t[v][reps / 2];
                if (strcmp(vnames[v], "mhattention/gemm") == 0) att = med[v];
            }
            for (int v = 0; v < nv; v++) {
                if (!ok[v]) {
                    printf("%3d %5d | %-18s %10s\n", K, T, vnames[v], "n/a");
                    continue;
                }
                char ratio[64] = "";
                if (!isnan(att) && strncmp(vnames[v], "mhattention", 11) != 0)
                    snprintf(ratio, sizeof ratio, "%.2fx faster", att / med[v]);
                printf("%3d %5d | %-18s %10.3f %6.1f%% %9.1f | %s\n", K, T, vnames[v], 1e3 * med[v],
                       100 * (t[v][reps - 1] - t[v][0]) / med[v], flops[v] / med[v] * 1e-9, ratio);
                if (profile) {
                    dcb_profile pr = {{0}};
                    dcb_op_run(op[v], x, y, ws[v], &pr);
                    printf("#   one run's phases (ms):");
                    for (int ph = 0; ph < DCB_PHASE_COUNT; ph++)
                        if (pr.seconds[ph] > 0) printf(" %s %.3f", dcb_phase_name(ph), 1e3 * pr.seconds[ph]);
                    printf("\n");
                }
                if (json)
                    printf("{\"variant\": \"%s\", \"N\": %d, \"C\": %d, \"H\": %d, \"K\": %d, \"T\": %d, "
                           "\"threads\": %d, \"median\": %.9g, \"min\": %.9g, \"max\": %.9g}\n",
                           vnames[v], N, C, H, K, T, threads, med[v], t[v][0], t[v][reps - 1]);
            }
            fflush(stdout);
            for (int v = 0; v < nv; v++) {
                dcb_op_destroy(op[v]);
                dcb_aligned_free(ws[v]);
            }
            dcb_tensor_free(x);
            dcb_tensor_free(y);
        }
    printf("# GFLOP/s = 2 * executed MACs (dcb_op_cost) / median time\n");
    return 0;
usage:
    fprintf(stderr, "usage: bench_seq [-r reps(1..%d)] [-t threads] [-N batch] [-C channels] [-H heads] "
                    "[-T 256,1024,2048] [-K 3,31] [-v op/impl,...] [-j] [-p]\n",
            MAXR);
    return 2;
}
