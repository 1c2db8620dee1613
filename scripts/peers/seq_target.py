#!/usr/bin/python3
"""seq_target.py - issue 6's dynconv1d target and the attention crossover.

Runs build/dcbench sweeps/bench/seq.lua (our kernels, variants interleaved) and torch_peers.py time (PyTorch)
alternately, config by config, for several rounds (a shared, noisy machine slows
both alike), and reports the median over rounds of each variant's median.

  target     C=512, 16 heads, batch 8, K in {3, 31}, T in {256, 1024, 2048}:
             ours (dynconv1d direct / unfold / band) against the fairseq-style
             PyTorch DynamicConv (unfold; band too where T <= 1024); goal >= 5x
  crossover  T in {8, ..., 256}: dynconv1d/direct and lightconv/direct against
             attention (our mhattention/gemm; PyTorch nn.MultiheadAttention, the
             faster of batch_first=False and the batch_first fast path); the
             crossover length is the smallest T from which the conv is faster
             at every larger T measured.

Usage: /usr/bin/python3 scripts/peers/seq_target.py [--threads 1,2] [--rounds 2]
           [--part target,crossover] [--out results.jsonl]
Needs `make` (build/dcbench); prints markdown tables (docs/PERFORMANCE.md).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BENCH = os.path.join(ROOT, "build", "dcbench")
BENCH_SCRIPT = os.path.join(ROOT, "sweeps", "bench", "seq.lua")
PEERS = os.path.join(HERE, "torch_peers.py")
N, C, H = 8, 512, 16


def ours(variants, K, T, threads, reps):
    cmd = [BENCH, BENCH_SCRIPT, "-j", "-r", str(reps), "-t", str(threads), "-N", str(N), "-C", str(C), "-H", str(H),
           "-K", str(K), "-T", str(T), "-v", ",".join(variants)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    res = {}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            res["ours:" + d["variant"]] = d["median"]
    return res


def torch_time(op, variants, K, T, threads, reps):
    cmd = [sys.executable if "torch" in sys.modules else "/usr/bin/python3", PEERS, "time", op,
           "--threads", str(threads), "--reps", str(reps), "--variants", ",".join(variants),
           "--channels", str(C), "--heads", str(H), "--N", str(N), "--T", str(T)]
    if op != "mhattention":
        cmd += ["--kernel_size", str(K)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    d = json.loads(p.stdout.strip().splitlines()[-1])
    return {"torch:%s/%s" % (op, v): r["median"] for v, r in d["variants"].items()}


def measure(configs, rounds, reps, log):
    """configs: list of (key, [callables returning {variant: seconds}]); interleaved per round."""
    acc = {}
    for r in range(rounds):
        for key, fns in configs:
            for f in fns:
                for v, s in f().items():
                    acc.setdefault(key, {}).setdefault(v, []).append(s)
            print("  round %d %s: %s" % (r + 1, key, ", ".join("%s %.2f ms" % (v, 1e3 * s[-1])
                                                              for v, s in acc[key].items())),
                  file=sys.stderr, flush=True)
    out = {key: {v: statistics.median(s) for v, s in d.items()} for key, d in acc.items()}
    if log:
        for key, d in out.items():
            log.write(json.dumps({"key": list(key), "median_s": d, "rounds": rounds}) + "\n")
        log.flush()
    return out


def target(threads, rounds, log):
    configs = []
    for K in (3, 31):
        for T in (256, 1024, 2048):
            tv = ["unfold", "band"] if T <= 1024 else ["unfold"]
            configs.append((("target", threads, K, T), [
                (lambda K=K, T=T: ours(["dynconv1d/direct", "dynconv1d/unfold", "dynconv1d/band"], K, T, threads, 3)),
                (lambda K=K, T=T, tv=tv: torch_time("dynconv1d", tv, K, T, threads, 3))]))
    res = measure(configs, rounds, 3, log)
    print_target(threads, res)
    return res


def print_target(threads, res):
    print("\n### dynconv1d target, %d thread(s): C=512, 16 heads, batch 8 (median ms)\n" % threads)
    print("| K | T | ours direct | ours unfold | ours band | PyTorch unfold | PyTorch band | "
          "PyTorch unfold / ours best | >= 5x | fairseq's own choice / ours best |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (_, th, K, T), d in sorted(res.items()):
        best = min(d["ours:dynconv1d/direct"], d["ours:dynconv1d/unfold"], d["ours:dynconv1d/band"])
        q = d["torch:dynconv1d/unfold"] / best
        # fairseq's DynamicConv1dTBC takes the band (expanded) path for T <= 512
        fs = d["torch:dynconv1d/band"] if T <= 512 else d["torch:dynconv1d/unfold"]
        print("| %d | %d | %.2f | %.2f | %.2f | %.2f | %s | %.2fx | %s | %.2fx |" % (
            K, T, 1e3 * d["ours:dynconv1d/direct"], 1e3 * d["ours:dynconv1d/unfold"],
            1e3 * d["ours:dynconv1d/band"], 1e3 * d["torch:dynconv1d/unfold"],
            "%.2f" % (1e3 * d["torch:dynconv1d/band"]) if "torch:dynconv1d/band" in d else "-",
            q, "yes" if q >= 5 else "NO", fs / best))
    sys.stdout.flush()


def crossover(threads, rounds, log, Ts):
    configs = []
    for K in (3, 31):
        for T in Ts:
            configs.append((("crossover", threads, K, T), [
                (lambda K=K, T=T: ours(["dynconv1d/direct", "lightconv/direct", "mhattention/gemm"], K, T, threads, 3)),
                (lambda K=K, T=T: torch_time("dynconv1d", ["unfold"], K, T, threads, 3)),
                (lambda K=K, T=T: torch_time("mhattention", ["mha", "fastpath"], K, T, threads, 3))]))
    res = measure(configs, rounds, 3, log)
    print_crossover(threads, res)
    return res


def print_crossover(threads, res):
    print("\n### conv against attention, %d thread(s): C=512, 16 heads, batch 8 (median ms)\n" % threads)
    print("| K | T | ours dynconv1d | ours lightconv | ours attention (gemm) | PyTorch fairseq dynconv | "
          "PyTorch MHA (best) |")
    print("|---|---|---|---|---|---|---|")
    for (_, th, K, T), d in sorted(res.items()):
        mha = min(d["torch:mhattention/mha"], d["torch:mhattention/fastpath"])
        print("| %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f |" % (
            K, T, 1e3 * d["ours:dynconv1d/direct"], 1e3 * d["ours:lightconv/direct"],
            1e3 * d["ours:mhattention/gemm"], 1e3 * d["torch:dynconv1d/unfold"], 1e3 * mha))
    print("\nCrossover lengths (smallest measured T from which the conv is faster at every larger T measured):\n")
    pairs = [("ours dynconv1d vs ours attention", "ours:dynconv1d/direct", "ours:mhattention/gemm"),
             ("ours dynconv1d vs PyTorch MHA", "ours:dynconv1d/direct", "torch:mha"),
             ("ours lightconv vs ours attention", "ours:lightconv/direct", "ours:mhattention/gemm"),
             ("ours lightconv vs PyTorch MHA", "ours:lightconv/direct", "torch:mha"),
             ("PyTorch fairseq dynconv vs PyTorch MHA", "torch:dynconv1d/unfold", "torch:mha")]
    for K in (3, 31):
        rows = sorted((T, d) for (_, th, k, T), d in res.items() if k == K)
        for name, a, b in pairs:
            def get(d, key):
                if key == "torch:mha":
                    return min(d["torch:mhattention/mha"], d["torch:mhattention/fastpath"])
                return d[key]
            faster = [get(d, a) < get(d, b) for _, d in rows]
            cross = None
            for i in range(len(rows)):
                if all(faster[i:]):
                    cross = rows[i][0]
                    break
            if cross is None:
                txt = "never within T <= %d" % rows[-1][0]
            elif cross == rows[0][0]:
                txt = "T <= %d (faster at every T measured)" % cross
            else:
                txt = "T = %d (slower at T = %d)" % (cross, rows[[r[0] for r in rows].index(cross) - 1][0])
            print("- K=%d, %d thread(s), %s: %s" % (K, threads, name, txt))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--part", default="target,crossover")
    ap.add_argument("--T", default="8,16,32,64,128,256", help="lengths of the crossover sweep")
    ap.add_argument("--out", default="", help="append the medians as JSON Lines")
    ap.add_argument("--render", default="", help="print the tables of a --out file instead of measuring")
    args = ap.parse_args()
    if args.render:
        res = {}
        for line in open(args.render):
            d = json.loads(line)
            res[tuple(d["key"])] = d["median_s"]
        for th in sorted({k[1] for k in res}):
            t = {k: v for k, v in res.items() if k[0] == "target" and k[1] == th}
            c = {k: v for k, v in res.items() if k[0] == "crossover" and k[1] == th}
            if t:
                print_target(th, t)
            if c:
                print_crossover(th, c)
        return
    if not os.path.exists(BENCH):
        sys.exit("seq_target.py: %s not found (run make)" % BENCH)
    log = open(args.out, "a") if args.out else None
    for th in [int(t) for t in args.threads.split(",")]:
        if "target" in args.part:
            target(th, args.rounds, log)
        if "crossover" in args.part:
            crossover(th, args.rounds, log, [int(t) for t in args.T.split(",")])


if __name__ == "__main__":
    main()
