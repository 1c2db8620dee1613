/* End-to-end tests of training through the dcbench program: a run killed
 * with SIGKILL and restarted resumes from its last checkpoint and ends with
 * weights bit-identical to an uninterrupted run of the same seed; a
 * checkpoint of other settings is refused, naming the setting. Runs $DCBENCH
 * (default build/dcbench) on Fashion-MNIST; skipped when it is not installed. */
#include "testutil.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static const char *dcbench;

static const char *script =
    "local dcb = require 'dcb'\n"
    "local ck, out, lr = arg[1], arg[2], tonumber(arg[3] or '0.05')\n"
    "local net = dcb.net('resnet_fmnist', {width = 4, conv = 'condconv', experts = 2, seed = 3, threads = 2})\n"
    "local r = dcb.train{net = net, data = 'fashion-mnist', subset = 480, test_subset = 200, batch = 32,\n"
    "  epochs = 3, lr = lr, seed = 3, threads = 2, checkpoint = ck, checkpoint_every = 4, progress = false}\n"
    "net:save(out)\n"
    "print('steps', r.steps, 'resumed', r.resumed_step, 'epochs', #r.epochs)\n";

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    const int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return strdup("");
    char *s = calloc(1, 1 << 16);
    size_t n = fread(s, 1, (1 << 16) - 1, f);
    s[n] = 0;
    fclose(f);
    return s;
}

/* The step of the checkpoint in dir, relative to tmpdir (-1: none yet). */
static long checkpoint_step(const char *dir) {
    char name[300];
    snprintf(name, sizeof name, "%.200s/manifest.json", dir);
    char *m = slurp(name);
    const char *p = strstr(m, "\"step\": ");
    const long s = p && strstr(m, "\"done\": true") ? atol(p + 8) : -1;
    free(m);
    return s;
}

static int have_data(void) {
    return access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) == 0 ||
           getenv("DCB_DATA_FASHION_MNIST");
}

static void test_kill_and_resume_training(void **state) {
    (void)state;
    if (!have_data()) {
        print_message("SKIP: Fashion-MNIST is not installed (make deps installs dataset-fashion-mnist)\n");
        return;
    }
    /* the uninterrupted run */
    assert_int_equal(sh("cd '%s' && '%s' train.lua ckA outA >outA.txt 2>errA.txt", tmpdir, dcbench), 0);
    char *a = slurp("outA.txt");
    assert_non_null(strstr(a, "steps\t45\tresumed\t-1\tepochs\t3"));
    free(a);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(tmpdir)) _exit(127);
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
        execl(dcbench, dcbench, "train.lua", "ckB", "outB", (char *)NULL);
        _exit(127);
    }
    /* killed once a mid-epoch checkpoint exists, before the run ends */
    long step = -1;
    for (int i = 0; i < 60000 && step < 20; i++) {
        usleep(2000);
        step = checkpoint_step("ckB");
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    assert_true(step >= 20 && step < 45);
    assert_int_equal(sh("cd '%s' && '%s' train.lua ckB outB >outB.txt 2>errB.txt", tmpdir, dcbench), 0);
    char *b = slurp("outB.txt");
    char *p = strstr(b, "resumed\t");
    assert_non_null(p);
    const long resumed = atol(p + 8);
    print_message("killed after the checkpoint of step %ld, resumed from step %ld\n", step, resumed);
    assert_true(resumed >= step && resumed < 45);
    assert_non_null(strstr(b, "steps\t45"));
    free(b);
    /* every weight and buffer bit for bit */
    assert_int_equal(sh("cd '%s' && diff -r outA outB >diff.txt", tmpdir), 0);
    assert_int_equal(sh("cd '%s' && test $(find outA -name '*.npy' | wc -l) -gt 40", tmpdir), 0);

    /* a checkpoint made with other settings is refused, naming the setting */
    assert_int_not_equal(sh("cd '%s' && '%s' train.lua ckA outC 0.1 >outC.txt 2>errC.txt", tmpdir, dcbench), 0);
    char *e = slurp("errC.txt");
    if (!strstr(e, "made with lr=0.05, this run has lr=0.1"))
        fail_msg("the refusal does not name both lr values: %s", e);
    free(e);
}

static int setup(void **state) {
    (void)state;
    if (!(dcbench = tu_dcbench_path("test_harness_train"))) return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dcbench-train-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/train.lua", tmpdir);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fputs(script, f);
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return sh("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_and_resume_training)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
