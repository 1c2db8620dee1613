#!/usr/bin/python3
"""torch_train.py - the PyTorch peer of dcbench's training loop (optional).

Trains the small Fashion-MNIST networks that dcbench's C training loop trains, the
way a researcher would write them in PyTorch (fp32, CPU, torch.set_num_threads), to
compare throughput and accuracy side by side.

Data   the IDX files of Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/,
       or the directory in DCB_DATA_FASHION_MNIST, or --data), read with gzip + numpy
       (no torchvision). Pixels / 255, then (x - mean) / std with the mean and the
       (population) std of the whole training set's pixels (one channel, in float64),
       computed before --subset. --subset N keeps the first N training examples of
       subset_order(60000, seed); the test set is always the full 10000. Every epoch
       visits the training set in epoch_order(n, seed, epoch) (THE function to change
       when dcbench's C order is to be matched bit for bit); the last partial batch is
       kept. No augmentation.

Net    --net resnet_fmnist, --width w (16): stem conv3x3(1->w, pad 1, no bias) BN ReLU
       at 28x28; basic blocks (w->w, s1), (w->2w, s2), (2w->4w, s2); each is
       conv3x3(s) BN ReLU conv3x3 BN [+SE] + shortcut (identity, or conv1x1(s) + BN
       when the shape changes), ReLU; global average pool, Linear(4w -> 10).
       --conv sets the blocks' 3x3 convs (the stem and the 1x1 shortcuts stay static):
         conv      nn.Conv2d
         condconv  r = sigmoid(Linear(cin->E)(gap(x))), kernel_n = sum_e r_ne W_e
                   (--experts E, 4)
         dyconv    pi = softmax(fc2(relu(fc1(gap(x)))) / tau), fc1 cin->max(1, cin//4),
                   fc2 ->K (--kernels K, 4); tau goes linearly from 30 to 1 over the
                   first --tau-epochs (1) epochs, step by step, then stays 1
         se        nn.Conv2d, plus squeeze-excitation after the block's second BN
                   (before the add): hidden max(1, C // --reduction (4)), fc1 ReLU fc2
                   sigmoid, with biases
       condconv and dyconv: weight bank (E, cout, cin, 3, 3), every expert initialised
       like an nn.Conv2d weight (kaiming_uniform, a = sqrt(5)), no bias, executed
       "batch-as-groups": x viewed as (1, N*cin, H, W), one F.conv2d with groups = N.
       Everything else has PyTorch's default initialisation (BN weight 1, bias 0).

Train  F.cross_entropy (mean over the batch, --label-smoothing); SGD(lr, momentum 0.9,
       nesterov, weight_decay on every parameter, or not on BN parameters and biases
       with --no-decay-bn-bias); --schedule onecycle (OneCycleLR, pct_start 0.3, cos,
       div_factor 25, final_div_factor 1e4, no momentum cycling; per batch), cosine
       (CosineAnnealingLR over all steps, per batch), step (x0.1 every --step-epochs
       epochs) or none. Per epoch: train loss / accuracy over the epoch's batches (train
       mode, the values of the forward pass that was trained on), test loss / accuracy
       (eval mode, no_grad; dyconv at the temperature of the next step, which is 1 once
       the annealing is over; the final test is at tau = 1, re-evaluated when needed),
       the seconds of the training part (batch gathering, forward, backward, step) and
       its images/s; the JSON adds the lr of the epoch's first and last steps.

Bench  --bench: no training run. For every T of --threads-list (each in a child process
       of its own: Debian's torch runs its GEMMs in OpenBLAS, whose threads only the
       environment set before loading governs), training throughput (forward, backward,
       optimizer step on batches of the real data: --bench-warmup steps, then the median
       of --repeats timings of --bench-steps steps) and inference throughput (model.eval(),
       torch.no_grad(), batches of --batch), median and min/max images/s.

Output a summary on stdout; --json PATH one object (settings, versions, threads, the
       epochs, final test_acc / test_loss, and/or the bench results); --csv PATH appends
       one row per epoch (net, conv, seed, epoch, train_loss, train_acc, test_loss,
       test_acc, seconds, images_per_s), with a header when the file is new.

Usage: /usr/bin/python3 scripts/peers/torch_train.py --net resnet_fmnist --conv dyconv
           --epochs 3 --threads 2 [--subset 4000] [--json out.json] [--csv out.csv]
       /usr/bin/python3 scripts/peers/torch_train.py --conv condconv --bench --threads-list 1,2

Nothing in the build or in `make test` depends on this script. Run it with a Python
that has torch and numpy (on Debian 12: /usr/bin/python3 with python3-torch).
"""
import argparse
import csv
import gzip
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return None


# As in torch_peers.py: OpenBLAS (Debian's torch GEMMs) takes its thread count from
# the environment when it loads, so it has to be set before torch is imported.
_T = _threads_from_argv(sys.argv)
if _T:
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _T

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # an optional peer: say so and leave
    sys.stderr.write(
        "torch_train.py: this optional peer needs PyTorch and NumPy (%s).\n"
        "  Run it with a Python that has them, e.g. /usr/bin/python3 on Debian 12 with the\n"
        "  python3-torch and python3-numpy packages.\n" % e)
    sys.exit(2)

DATA_DIR = "/usr/share/datasets/fashion-mnist"
CSV_FIELDS = ["net", "conv", "seed", "epoch", "train_loss", "train_acc", "test_loss", "test_acc",
              "seconds", "images_per_s"]

# ------------------------------------------------------------------ order
MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15        # splitmix64's increment (the golden ratio * 2^64)


def splitmix64_stream(state, count):
    """The first `count` outputs of splitmix64 from `state` (uint64 array): output k is
    mix(state + (k+1) * GAMMA), exactly dcb_rand_u64 (kernels/tensor.c) called count
    times. Vectorised in numpy uint64, which wraps modulo 2^64."""
    k = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(state & MASK64) + k * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def splitmix64_next(state):
    """One dcb_rand_u64 step: (new state, output)."""
    state = (state + GAMMA) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def stream_at(state, k):
    """Output k (0-based) of the splitmix64 stream from state."""
    z = (state + (k + 1) * GAMMA) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def mix_state(a, b, c):
    """dataset_idx.c's mix_state: a splitmix64 state from (seed, epoch, tag)."""
    s = a & MASK64
    s, h = splitmix64_next(s)
    s = h ^ ((b * 0xD1B54A32D192ED03) & MASK64)
    s, h = splitmix64_next(s)
    s = h ^ ((c * 0xAEF17502108EF2D9) & MASK64)
    s, h = splitmix64_next(s)
    return h


def fisher_yates_splitmix64(n, state):
    """dcb_dataset_order's shuffle: start from the identity; for i = n-1 down to 1, draw
    j uniformly in [0, i] from the splitmix64 stream of `state` (rejection below
    2^64 mod (i+1), so no modulo bias), swap perm[i] and perm[j]."""
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    r = splitmix64_stream(state, n - 1).tolist()
    perm = list(range(n))
    k = 0                          # outputs of the stream used so far
    for i in range(n - 1, 0, -1):
        bound = i + 1
        threshold = (1 << 64) % bound
        while True:                # a rejection (about never) shifts the rest of the stream
            v = r[k] if k < len(r) else stream_at(state, k)
            k += 1
            if v >= threshold:
                break
        j = v % bound
        perm[i], perm[j] = perm[j], perm[i]
    return np.array(perm, dtype=np.int64)


# ==================================================================================
# epoch_order: THE data order of the training loop, dcbench's dcb_dataset_order bit
# for bit: Fisher-Yates over the splitmix64 stream from
#     state = mix_state(seed, epoch, 0x6f72646572)        ("order")
# A function of (n, seed, epoch) alone.
# ==================================================================================
def epoch_order(n, seed, epoch):
    return fisher_yates_splitmix64(n, mix_state(seed, epoch, 0x6f72646572))


def subset_order(n, seed):
    """The permutation whose first N examples --subset N keeps: dcb_dataset_subset's,
    the first N of epoch_order(n, seed, 0)."""
    return epoch_order(n, seed, 0)


# ------------------------------------------------------------------ data
def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] != 0x08:
        raise SystemExit("torch_train.py: %s: not a uint8 IDX file" % path)
    nd = buf[3]
    dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    off = 4 + 4 * nd
    count = int(np.prod(dims))
    if len(buf) - off < count:
        raise SystemExit("torch_train.py: %s: truncated (%d of %d bytes)" % (path, len(buf) - off, count))
    return np.frombuffer(buf, dtype=np.uint8, count=count, offset=off).reshape(dims)


def load_split(d, split):
    x = read_idx(os.path.join(d, "%s-images-idx3-ubyte.gz" % split))
    y = read_idx(os.path.join(d, "%s-labels-idx1-ubyte.gz" % split))
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise SystemExit("torch_train.py: %s: images %s and labels %s do not match" % (split, x.shape, y.shape))
    return (x.astype(np.float32) / np.float32(255.0)), y.astype(np.int64)


def load_data(d, subset, seed):
    xtr, ytr = load_split(d, "train")
    xte, yte = load_split(d, "t10k")
    mean = float(xtr.mean(dtype=np.float64))
    std = float(xtr.std(dtype=np.float64))
    if subset and subset < xtr.shape[0]:
        keep = subset_order(xtr.shape[0], seed)[:subset]
        xtr, ytr = xtr[keep], ytr[keep]

    def prep(x):
        return torch.from_numpy(((x - np.float32(mean)) / np.float32(std))[:, None].astype(np.float32))

    return prep(xtr), torch.from_numpy(ytr), prep(xte), torch.from_numpy(yte), mean, std


# ------------------------------------------------------------------ layers
class ExpertConv2d(nn.Module):
    """CondConv / DyConv: a bank of E kernels mixed per sample by a routing function of
    gap(x), run as one grouped conv with groups = N (batch-as-groups)."""

    def __init__(self, cin, cout, stride, experts, kind, pad=1):
        super().__init__()
        self.cin, self.cout, self.stride, self.pad, self.kind = cin, cout, stride, pad, kind
        self.weight = nn.Parameter(torch.empty(experts, cout, cin, 3, 3))
        for e in range(experts):                      # each expert like an nn.Conv2d weight
            nn.init.kaiming_uniform_(self.weight[e], a=math.sqrt(5))
        if kind == "condconv":
            self.route = nn.Linear(cin, experts)
        else:
            hidden = max(1, cin // 4)
            self.fc1 = nn.Linear(cin, hidden)
            self.fc2 = nn.Linear(hidden, experts)
            self.tau = 1.0

    def routing(self, x):
        g = x.mean(dim=(2, 3))
        if self.kind == "condconv":
            return torch.sigmoid(self.route(g))
        return torch.softmax(self.fc2(F.relu(self.fc1(g))) / self.tau, dim=1)

    def forward(self, x):
        N, C, H, W = x.shape
        r = self.routing(x)                                                 # (N, E)
        E = self.weight.shape[0]
        w = (r @ self.weight.reshape(E, -1)).reshape(N * self.cout, self.cin, 3, 3)
        y = F.conv2d(x.reshape(1, N * C, H, W), w, None, self.stride, self.pad, 1, N)
        return y.reshape(N, self.cout, y.shape[2], y.shape[3])


class SE(nn.Module):
    def __init__(self, c, reduction):
        super().__init__()
        hidden = max(1, c // reduction)
        self.fc1 = nn.Linear(c, hidden)
        self.fc2 = nn.Linear(hidden, c)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]


def conv3x3(cin, cout, stride, a):
    if a.conv in ("conv", "se"):
        return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    return ExpertConv2d(cin, cout, stride, a.experts if a.conv == "condconv" else a.kernels, a.conv)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, a):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride, a)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout, 1, a)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SE(cout, a.reduction) if a.conv == "se" else None
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.se is not None:
            y = self.se(y)
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNetFMNIST(nn.Module):
    def __init__(self, a, classes=10):
        super().__init__()
        w = a.width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(BasicBlock(w, w, 1, a), BasicBlock(w, 2 * w, 2, a),
                                    BasicBlock(2 * w, 4 * w, 2, a))
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


NETS = {"resnet_fmnist": ResNetFMNIST}


def set_tau(model, tau):
    for m in model.modules():
        if isinstance(m, ExpertConv2d) and m.kind == "dyconv":
            m.tau = tau


def tau_at(step, anneal_steps, t0=30.0, t1=1.0):
    if anneal_steps <= 0 or step >= anneal_steps:
        return t1
    return t0 + (t1 - t0) * step / anneal_steps


# ------------------------------------------------------------------ training
def make_optimizer(model, a):
    if a.no_decay_bn_bias:
        decay, no_decay = [], []
        bn_params = set()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                bn_params.update(id(p) for p in m.parameters(recurse=False))
        for name, p in model.named_parameters():
            (no_decay if id(p) in bn_params or name.endswith(".bias") else decay).append(p)
        groups = [{"params": decay, "weight_decay": a.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
    else:
        groups = [{"params": list(model.parameters()), "weight_decay": a.weight_decay}]
    return torch.optim.SGD(groups, lr=a.lr, momentum=0.9, nesterov=True, weight_decay=a.weight_decay)


def make_scheduler(opt, a, steps_per_epoch):
    """(scheduler, 'batch' | 'epoch' | None)."""
    total = a.epochs * steps_per_epoch
    if a.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=a.lr, total_steps=total, pct_start=0.3, anneal_strategy="cos",
            div_factor=25.0, final_div_factor=1e4, cycle_momentum=False), "batch"
    if a.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total), "batch"
    if a.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=a.step_epochs, gamma=0.1), "epoch"
    return None, None


def evaluate(model, x, y, batch, label_smoothing):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            out = model(x[s:s + batch])
            yb = y[s:s + batch]
            loss_sum += F.cross_entropy(out, yb, reduction="sum", label_smoothing=label_smoothing).item()
            correct += (out.argmax(1) == yb).sum().item()
    return loss_sum / x.shape[0], correct / x.shape[0]


def train(a, model, data, log):
    xtr, ytr, xte, yte = data
    n = xtr.shape[0]
    steps_per_epoch = (n + a.batch - 1) // a.batch
    opt = make_optimizer(model, a)
    sched, when = make_scheduler(opt, a, steps_per_epoch)
    anneal = a.tau_epochs * steps_per_epoch if a.conv == "dyconv" else 0
    step = 0
    epochs = []
    for epoch in range(a.epochs):
        order = torch.from_numpy(epoch_order(n, a.seed, epoch))
        model.train()
        loss_sum, correct = 0.0, 0
        lr_first = lr_last = opt.param_groups[0]["lr"]
        t0 = time.perf_counter()
        for s in range(0, n, a.batch):
            idx = order[s:s + a.batch]
            xb, yb = xtr[idx], ytr[idx]
            if a.conv == "dyconv":
                set_tau(model, tau_at(step, anneal))
            out = model(xb)
            loss = F.cross_entropy(out, yb, label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lr_last = opt.param_groups[0]["lr"]        # the lr this step uses
            opt.step()
            if when == "batch":
                sched.step()
            step += 1
            loss_sum += loss.item() * yb.shape[0]
            correct += (out.detach().argmax(1) == yb).sum().item()
        seconds = time.perf_counter() - t0
        if when == "epoch":
            sched.step()
        tau = tau_at(step, anneal) if a.conv == "dyconv" else None
        if tau is not None:
            set_tau(model, tau)
        te_loss, te_acc = evaluate(model, xte, yte, a.eval_batch, a.label_smoothing)
        e = dict(epoch=epoch + 1, train_loss=loss_sum / n, train_acc=correct / n, test_loss=te_loss,
                 test_acc=te_acc, seconds=seconds, images_per_s=n / seconds, steps=steps_per_epoch,
                 lr_first=lr_first, lr_last=lr_last)
        if tau is not None:
            e["eval_tau"] = tau
        epochs.append(e)
        log("epoch %d/%d  train loss %.4f acc %6.2f%%  test loss %.4f acc %6.2f%%  %7.1f s  %7.1f img/s%s" % (
            epoch + 1, a.epochs, e["train_loss"], 100 * e["train_acc"], te_loss, 100 * te_acc, seconds,
            e["images_per_s"], "  (eval tau %.3g)" % tau if tau is not None else ""))
        if a.csv:
            append_csv(a.csv, a, e)
    final = dict(test_loss=epochs[-1]["test_loss"], test_acc=epochs[-1]["test_acc"]) if epochs else {}
    if a.conv == "dyconv" and (not epochs or epochs[-1].get("eval_tau") != 1.0):
        set_tau(model, 1.0)                            # inference after training: tau = 1
        final["test_loss"], final["test_acc"] = evaluate(model, xte, yte, a.eval_batch, a.label_smoothing)
    return epochs, final


def append_csv(path, a, e):
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(CSV_FIELDS)
        w.writerow([a.net, a.conv, a.seed, e["epoch"], "%.6f" % e["train_loss"], "%.6f" % e["train_acc"],
                    "%.6f" % e["test_loss"], "%.6f" % e["test_acc"], "%.3f" % e["seconds"],
                    "%.2f" % e["images_per_s"]])


# ------------------------------------------------------------------ bench
def summarise(rates):
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "samples": rates}


def bench_one(a, model, data):
    """Throughput at the current thread count: {'train': {...}, 'inference': {...}} in images/s."""
    xtr, ytr, xte, _ = data
    n, B = xtr.shape[0], a.batch
    order = torch.from_numpy(epoch_order(n, a.seed, 0))
    nb = max(1, n // B)                                # full batches only
    batches = [(xtr[order[i * B:(i + 1) * B]], ytr[order[i * B:(i + 1) * B]]) for i in range(min(nb, 64))]
    opt = make_optimizer(model, a)
    k = [0]

    def train_step():
        xb, yb = batches[k[0] % len(batches)]
        k[0] += 1
        loss = F.cross_entropy(model(xb), yb, label_smoothing=a.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(a.bench_warmup):
        train_step()
    rates = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.bench_steps):
            train_step()
        rates.append(a.bench_steps * B / (time.perf_counter() - t0))
    res = {"train": summarise(rates)}

    xi = xte[:B] if xte.shape[0] >= B else xtr[:B]
    model.eval()
    with torch.no_grad():
        for _ in range(a.bench_warmup):
            model(xi)
        rates = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for _ in range(a.bench_steps):
                model(xi)
            rates.append(a.bench_steps * xi.shape[0] / (time.perf_counter() - t0))
    res["inference"] = summarise(rates)
    return res


def bench_children(a, argv, log):
    """Runs every thread count of --threads-list in a child process (the OpenBLAS threads
    are fixed when it loads) and collects their results."""
    out = []
    for t in a.threads_list:
        cmd = [sys.executable, os.path.abspath(__file__)] + strip_opts(argv, ("--threads", "--threads-list",
                                                                             "--json", "--csv")) + \
            ["--threads", str(t), "--bench-child"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            raise SystemExit("torch_train.py: the bench child for %d threads failed (%d)" % (t, p.returncode))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        out.append(r)
        log("threads %d  train %8.1f img/s (min %.1f, max %.1f)  inference %8.1f img/s (min %.1f, max %.1f)" % (
            t, r["train"]["median"], r["train"]["min"], r["train"]["max"],
            r["inference"]["median"], r["inference"]["min"], r["inference"]["max"]))
    return out


def strip_opts(argv, names):
    """argv without the options in names (and their values) and without --bench."""
    res, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in names:
            i += 2
            continue
        if any(a.startswith(n + "=") for n in names) or a == "--bench":
            i += 1
            continue
        res.append(a)
        i += 1
    return res


# ------------------------------------------------------------------ main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="resnet_fmnist", choices=sorted(NETS))
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--conv", default="conv", choices=["conv", "condconv", "dyconv", "se"])
    ap.add_argument("--experts", type=int, default=4, help="condconv experts")
    ap.add_argument("--kernels", type=int, default=4, help="dyconv kernels")
    ap.add_argument("--tau-epochs", type=float, default=1.0, help="dyconv: epochs to anneal tau 30 -> 1 over")
    ap.add_argument("--reduction", type=int, default=4, help="se reduction")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--eval-batch", type=int, default=500, help="test-set evaluation batch")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--no-decay-bn-bias", action="store_true", help="no weight decay on BN parameters and biases")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--schedule", default="onecycle", choices=["onecycle", "cosine", "step", "none"])
    ap.add_argument("--step-epochs", type=int, default=None, help="step schedule: x0.1 every this many epochs "
                    "(default max(1, epochs // 3))")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--subset", type=int, default=0, help="train on the first N of a seeded permutation")
    ap.add_argument("--data", default=os.environ.get("DCB_DATA_FASHION_MNIST", DATA_DIR))
    ap.add_argument("--bench", action="store_true", help="throughput only (see --threads-list)")
    ap.add_argument("--threads-list", default="", help="bench: comma-separated thread counts (default --threads)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bench-steps", type=int, default=20)
    ap.add_argument("--bench-warmup", type=int, default=3)
    ap.add_argument("--bench-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default="")
    ap.add_argument("--csv", default="")
    a = ap.parse_args(argv)
    if a.step_epochs is None:
        a.step_epochs = max(1, a.epochs // 3)
    a.threads_list = [int(t) for t in a.threads_list.split(",") if t] or [a.threads]
    for name in ("width", "experts", "kernels", "reduction", "epochs", "batch", "eval_batch", "threads",
                 "repeats", "bench_steps", "step_epochs"):
        if getattr(a, name) < 1:
            ap.error("--%s must be >= 1" % name.replace("_", "-"))
    return a


def settings(a):
    keys = ["net", "width", "conv", "epochs", "batch", "eval_batch", "lr", "weight_decay", "no_decay_bn_bias",
            "label_smoothing", "schedule", "seed", "subset", "data"]
    s = {k: getattr(a, k) for k in keys}
    s.update({"experts": a.experts} if a.conv == "condconv" else {})
    s.update({"kernels": a.kernels, "tau_epochs": a.tau_epochs, "tau": [30.0, 1.0]} if a.conv == "dyconv" else {})
    s.update({"reduction": a.reduction} if a.conv == "se" else {})
    s.update({"step_epochs": a.step_epochs} if a.schedule == "step" else {})
    if a.bench:
        s.update(threads_list=a.threads_list, repeats=a.repeats, bench_steps=a.bench_steps,
                 bench_warmup=a.bench_warmup)
    s["sgd"] = {"momentum": 0.9, "nesterov": True}
    return s


def main(argv):
    a = parse_args(argv)
    quiet = a.bench_child

    def log(msg):
        if not quiet:
            print(msg, flush=True)

    info = {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "host_cpus": os.cpu_count()}
    if a.bench and not a.bench_child:
        log("torch %s  %s/%s  bench, threads %s" % (torch.__version__, a.net, a.conv,
                                                     ",".join(map(str, a.threads_list))))
        res = bench_children(a, argv, log)
        if a.json:
            write_json(a.json, dict(settings=settings(a), **info, bench=res))
        return

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    xtr, ytr, xte, yte, mean, std = load_data(a.data, a.subset, a.seed)
    model = NETS[a.net](a)
    params = sum(p.numel() for p in model.parameters())
    info.update(threads=torch.get_num_threads(), interop_threads=torch.get_num_interop_threads(),
                params=params, mean=mean, std=std, n_train=int(xtr.shape[0]), n_test=int(xte.shape[0]))
    if a.bench_child:
        r = bench_one(a, model, (xtr, ytr, xte, yte))
        r.update(threads=torch.get_num_threads(), batch=a.batch)
        print(json.dumps(r), flush=True)
        return
    log("torch %s  %s/%s width %d  %d parameters  threads %d  train %d test %d  mean %.4f std %.4f" % (
        torch.__version__, a.net, a.conv, a.width, params, a.threads, xtr.shape[0], xte.shape[0], mean, std))
    epochs, final = train(a, model, (xtr, ytr, xte, yte), log)
    log("final test loss %.4f acc %.2f%%  (%.1f s of training, %.1f img/s overall)" % (
        final["test_loss"], 100 * final["test_acc"], sum(e["seconds"] for e in epochs),
        xtr.shape[0] * len(epochs) / sum(e["seconds"] for e in epochs)))
    if a.json:
        write_json(a.json, dict(settings=settings(a), **info, epochs=epochs, **final))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
