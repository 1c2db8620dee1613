/* fuzz_idx.c — libFuzzer target for the IDX reader (dcb_dataset_load_idx).
 *
 * The input is split into an images file and a labels file, written to
 * memory files (memfd, opened by the reader through /proc/self/fd/N, so no
 * disk), either as they are or gzip-compressed first, so that both zlib's
 * pass-through and its inflate path see structured content:
 *   byte 0   bit 0: gzip the images, bit 1: gzip the labels;
 *   byte 1-2 little-endian length of the images part (clamped);
 *   rest     images part, then labels part.
 * Every load must succeed with consistent fields or fail with
 * DCB_INVALID_FILE (anything else aborts, which libFuzzer reports).
 *
 * Build and run (from the repository root; clang 14, libclang_rt.fuzzer):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -Ikernels tests/fuzz/fuzz_idx.c kernels/dataset_idx.c kernels/tensor.c \
 *       kernels/status.c -lz -lm -o /tmp/fuzz_idx
 *   mkdir -p /tmp/fuzz_idx_corpus && /tmp/fuzz_idx -seed_corpus=1 /tmp/fuzz_idx_corpus
 *   /tmp/fuzz_idx -max_total_time=60 -max_len=4096 -rss_limit_mb=512 /tmp/fuzz_idx_corpus
 * With -seed_corpus=1 (and an empty corpus folder) the target writes a few
 * valid pairs into the folder and exits; a run without seeds still finds the
 * magics within seconds thanks to -fsanitize=fuzzer's comparison tracing.
 * -rss_limit_mb=512 makes any header-driven big allocation a reported bug.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "dcb.h"
#include "fuzz_seeds.h"

/* A memory file holding p[0..n), gzipped when gz: its fd, or -1. */
static int mem_file(const uint8_t *p, size_t n, int gz)
{
    int fd = memfd_create("idx", 0);
    if (fd < 0)
        return -1;
    if (gz) {
        gzFile g = gzdopen(dup(fd), "wb");
        if (!g || (n && gzwrite(g, p, (unsigned)n) != (int)n) || gzclose(g) != Z_OK) {
            close(fd);
            return -1;
        }
    } else if (n && write(fd, p, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    return fd;
}

static void check(dcb_status st, const dcb_dataset *d)
{
    if (st != DCB_OK) {
        if (st != DCB_INVALID_FILE || d) {
            fprintf(stderr, "fuzz_idx: status %s: %s\n", dcb_status_name(st), dcb_last_error());
            abort();
        }
        return;
    }
    int ok = d && d->n >= 1 && d->c == 1 && d->h >= 1 && d->w >= 1 && d->classes >= 1 && d->classes <= 256;
    int maxy = -1;
    for (int64_t i = 0; ok && i < d->n; i++) {
        ok = d->y[i] >= 0 && d->y[i] < d->classes;
        maxy = d->y[i] > maxy ? d->y[i] : maxy;
    }
    ok = ok && maxy + 1 == d->classes;
    for (int64_t i = 0; ok && i < d->n * d->h * d->w; i++)
        ok = d->x[i] >= 0.0f && d->x[i] <= 1.0f;
    if (!ok) {
        fprintf(stderr, "fuzz_idx: inconsistent dataset\n");
        abort();
    }
}

/* A few valid pairs for the corpus (LLVMFuzzerInitialize, -seed_corpus=1). */
static void write_seeds(const char *dir)
{
    static const uint8_t hdr_img[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4};
    static const uint8_t hdr_lbl[] = {0, 0, 8, 1, 0, 0, 0, 3};
    for (int flags = 0; flags < 4; flags++) {
        uint8_t in[64];
        size_t n = 0;
        const size_t ilen = sizeof hdr_img + 24;
        in[n++] = (uint8_t)flags;
        in[n++] = (uint8_t)ilen;
        in[n++] = 0;
        memcpy(in + n, hdr_img, sizeof hdr_img);
        n += sizeof hdr_img;
        for (int i = 0; i < 24; i++)
            in[n++] = (uint8_t)(i * 11);
        memcpy(in + n, hdr_lbl, sizeof hdr_lbl);
        n += sizeof hdr_lbl;
        in[n++] = 0;
        in[n++] = 2;
        in[n++] = 9;
        char path[4096];
        snprintf(path, sizeof path, "%s/seed%d", dir, flags);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(in, 1, n, f);
            fclose(f);
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_write_seeds_if_asked(*argc, *argv, write_seeds);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const int flags = data[0];
    size_t ilen = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (ilen > size)
        ilen = size;
    int fi = mem_file(data, ilen, flags & 1), fl = mem_file(data + ilen, size - ilen, flags & 2);
    if (fi >= 0 && fl >= 0) {
        char pi[64], pl[64];
        snprintf(pi, sizeof pi, "/proc/self/fd/%d", fi);
        snprintf(pl, sizeof pl, "/proc/self/fd/%d", fl);
        dcb_dataset *d = NULL;
        dcb_status st = dcb_dataset_load_idx(pi, pl, &d);
        check(st, d);
        dcb_dataset_free(d);
    }
    if (fi >= 0)
        close(fi);
    if (fl >= 0)
        close(fl);
    return 0;
}
