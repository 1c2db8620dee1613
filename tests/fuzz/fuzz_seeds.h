/* fuzz_seeds.h — what every target of tests/fuzz/ does first: run with
 * -seed_corpus=1 DIR (run_fuzz.sh --seeds), it writes its seed inputs into DIR
 * with write_seeds and exits; returns 0 otherwise, for the target's own setup. */
#ifndef DCB_FUZZ_SEEDS_H
#define DCB_FUZZ_SEEDS_H
#include <stdlib.h>
#include <string.h>

static int fuzz_write_seeds_if_asked(int argc, char **argv, void (*write_seeds)(const char *dir)) {
    int seeds = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-seed_corpus=1"))
            seeds = 1;
        else if (argv[i][0] != '-')
            dir = argv[i];
    }
    if (seeds && dir) {
        write_seeds(dir);
        exit(0);
    }
    return 0;
}
#endif
