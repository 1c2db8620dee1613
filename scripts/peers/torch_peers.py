#!/usr/bin/python3
"""torch_peers.py - the PyTorch peers of dcbench's operators (optional).

What a researcher would write in PyTorch for each operator of
docs/OPERATORS.md (fp32, inference, torch.set_num_threads):

  conv2d       F.conv2d (any groups: 1x1, grouped, depthwise)
  condconv     batch_groups: mix each sample's kernel, x viewed as (1, N*cin, H, W),
  dyconv                     one F.conv2d with groups = N*groups (the public trick)
               expertwise:   F.conv2d with every expert, then the routing-weighted sum
  dynconv1d    fairseq-style DynamicConv1dTBC on (T, B, C):
               unfold: padded x as_strided into (T, B, C, K) windows, per-step kernels
                       from one Linear, softmax over K, torch.bmm (fairseq's path for
                       T > 512);
               band:   (B*H, T, T) band matrices, torch.bmm (fairseq's path for T <= 512)
  lightconv    fairseq-style LightweightConv1dTBC (unfold, band) and F.conv1d with a
               depthwise kernel (groups = C) on (B, C, T)
  mhattention  nn.MultiheadAttention(batch_first=False): (T, N, C), need_weights=False;
               fastpath: batch_first=True, whose inference fast path 1.13 may take

Semantics follow docs/OPERATORS.md: condconv routing = independent sigmoids; dyconv =
softmax(logits / temperature); sequence heads are contiguous channel blocks (channel c
uses head c // (C/H)); padding "same" = left pad K//2, "causal" = left pad K-1; the
nn.MultiheadAttention in_proj layout. (fairseq pads an even K on the left by (K-1)//2;
OPERATORS.md says K//2, and this script follows docs/OPERATORS.md.)

Subcommands
  time  OP [--param value ...] --threads T --reps R [--variants a,b]
        one JSON line: {"op", "params", "threads", "variants": {name: {median, min, max}}}
        (seconds per forward; variants interleaved round-robin in every repetition)
  check DIR [--threads T]
        DIR holds op.json ({"op": ..., "params": {...}}), the weights as <name>.npy
        in docs/OPERATORS.md's names and layouts, x.npy and our output y.npy; prints one
        JSON line with max|ours - torch| / max(1, max|torch|) for every variant.

Nothing in the build or in `make test` depends on this script. Run it with a Python
that has torch and numpy (on Debian 12: /usr/bin/python3 with python3-torch).
"""
import argparse
import json
import os
import statistics
import sys
import time


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return None


# Debian's torch runs its GEMMs (1x1 convs, bmm, Linear) in OpenBLAS, whose own
# pthreads torch.set_num_threads does not govern: a "1-thread" run used both
# cores (CPU time / wall time 1.97). The BLAS thread count has to be in the
# environment before torch (and OpenBLAS) load.
_T = _threads_from_argv(sys.argv)
if _T:
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _T

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # an optional peer: say so and leave
    sys.stderr.write(
        "torch_peers.py: this optional peer needs PyTorch and NumPy (%s).\n"
        "  Run it with a Python that has them, e.g. /usr/bin/python3 on Debian 12 with the\n"
        "  python3-torch and python3-numpy packages.\n" % e)
    sys.exit(2)

# ------------------------------------------------------------------ parameters
# The defaults of docs/OPERATORS.md; "hidden" of dyconv is derived (max(1, cin // 4)).
DEFAULTS = {
    "conv2d": dict(cin=None, cout=None, k=3, stride=1, pad=0, dilation=1, groups=1, bias=0,
                   N=1, H=None, W=None),
    "condconv": dict(cin=None, cout=None, k=3, stride=1, pad=0, dilation=1, groups=1, bias=0,
                     experts=8, N=1, H=None, W=None),
    "dyconv": dict(cin=None, cout=None, k=3, stride=1, pad=0, dilation=1, groups=1, bias=0,
                   kernels=4, hidden=None, temperature=1.0, N=1, H=None, W=None),
    "lightconv": dict(channels=None, heads=1, kernel_size=None, padding="same",
                      weight_softmax=1, bias=0, N=1, T=None),
    "dynconv1d": dict(channels=None, heads=1, kernel_size=None, padding="same",
                      weight_softmax=1, bias=0, N=1, T=None),
    "mhattention": dict(channels=None, heads=1, causal=0, N=1, T=None),
}

VARIANTS = {
    "conv2d": ["conv2d"],
    "condconv": ["batch_groups", "expertwise"],
    "dyconv": ["batch_groups", "expertwise"],
    "lightconv": ["unfold", "band", "conv1d"],
    "dynconv1d": ["unfold", "band"],
    "mhattention": ["mha", "fastpath"],
}


def complete(op, given):
    """The hyperparameters after defaults; raises on missing required ones."""
    if op not in DEFAULTS:
        raise SystemExit("torch_peers.py: unknown op '%s' (known: %s)" % (op, ", ".join(DEFAULTS)))
    p = dict(DEFAULTS[op])
    for k, v in given.items():
        if k in ("kh", "kw"):
            p[k] = int(v)
            continue
        if k == "threads":
            continue
        if k not in p:
            raise SystemExit("torch_peers.py: %s has no parameter '%s'" % (op, k))
        if k == "padding":
            p[k] = str(v)
        elif k == "temperature":
            p[k] = float(v)
        else:
            p[k] = int(float(v))
    if op in ("conv2d", "condconv", "dyconv"):
        p.setdefault("kh", p["k"])
        p.setdefault("kw", p["k"])
        if op == "dyconv" and p["hidden"] is None:
            p["hidden"] = max(1, p["cin"] // 4)
    if op in ("lightconv", "dynconv1d") and p["padding"] not in ("same", "causal"):
        raise SystemExit("torch_peers.py: padding must be same or causal")
    return p


def left_pad(p):
    return p["kernel_size"] - 1 if p["padding"] == "causal" else p["kernel_size"] // 2


# ------------------------------------------------------------------ the peers
# Every peer takes the docs/OPERATORS.md input layout and returns the docs/OPERATORS.md
# output layout, unless it is a "native" variant used for timing (sequence ops
# in fairseq's (T, B, C) layout; see prepare_input).

def conv2d_peer(p, w):
    def f(x):
        return F.conv2d(x, w["weight"], w.get("bias"), p["stride"], p["pad"], p["dilation"], p["groups"])
    return {"conv2d": f}


def routing(op, p, w, x):
    g = x.mean(dim=(2, 3))                                           # (N, cin)
    if op == "condconv":
        return torch.sigmoid(F.linear(g, w["route_w"], w["route_b"]))   # (N, E)
    h = F.relu(F.linear(g, w["fc1_w"], w["fc1_b"]))
    return torch.softmax(F.linear(h, w["fc2_w"], w["fc2_b"]) / p["temperature"], dim=1)


def expert_conv_peer(op, p, w):
    W = w["weight"]                                  # (E, cout, cin/g, kh, kw)
    B = w.get("bias")                                # (E, cout)
    E, cout = W.shape[0], W.shape[1]
    s, pad, d, g = p["stride"], p["pad"], p["dilation"], p["groups"]

    def batch_groups(x):
        N, cin, H, Wd = x.shape
        r = routing(op, p, w, x)                                      # (N, E)
        wn = (r @ W.reshape(E, -1)).reshape(N * cout, *W.shape[2:])   # (N*cout, cin/g, kh, kw)
        bn = (r @ B).reshape(-1) if B is not None else None
        y = F.conv2d(x.reshape(1, N * cin, H, Wd), wn, bn, s, pad, d, g * N)
        return y.reshape(N, cout, y.shape[2], y.shape[3])

    # expert-wise: one F.conv2d whose output channels are all experts' channels. With
    # groups, every group's outputs must stay in that group, so the bank is laid out
    # (groups, E, cout/groups) along the output channels.
    cg = cout // g
    Wg = W.reshape(E, g, cg, *W.shape[2:]).transpose(0, 1).reshape(E * cout, *W.shape[2:])
    Bg = B.reshape(E, g, cg).transpose(0, 1).reshape(-1) if B is not None else None

    def expertwise(x):
        r = routing(op, p, w, x)
        y = F.conv2d(x, Wg, Bg, s, pad, d, g)                         # (N, g*E*cg, H', W')
        y = y.reshape(x.shape[0], g, E, cg, y.shape[2], y.shape[3])
        return torch.einsum("ne,ngeohw->ngohw", r, y).reshape(x.shape[0], cout, y.shape[4], y.shape[5])

    return {"batch_groups": batch_groups, "expertwise": expertwise}


def unfold1d(x, K, pl):
    """(T, B, C) -> (T, B, C, K) windows: x[t + j - pl] with zeros outside (a view)."""
    T, B, C = x.shape
    if K == 1:
        return x.unsqueeze(3)
    xp = F.pad(x, (0, 0, 0, 0, pl, K - 1 - pl))
    return xp.as_strided((T, B, C, K), (B * C, C, 1, B * C))


def band_bmm(kern, x, K, pl):
    """kern (B*H, T, K), x (B*H, T, R) -> (B*H, T, R): out[t] = sum_j kern[t, j] x[t + j - pl]."""
    BH, T, _ = kern.shape
    # row t of the (T, T + K - 1) matrix holds the K taps at columns t .. t+K-1;
    # dropping the first pl columns aligns column s with x[s]
    full = kern.new_zeros(BH, T, T + K - 1)
    full.as_strided((BH, T, K), (T * (T + K - 1), T + K, 1)).copy_(kern)
    return torch.bmm(full[:, :, pl:pl + T], x)


def seqconv_peers(op, p, w):
    """lightconv and dynconv1d. Native variants work on (T, B, C) like fairseq's *TBC
    modules; the wrapper in make_peers converts the (N, T, C) input of docs/OPERATORS.md."""
    K, Hh = p["kernel_size"], p["heads"]
    pl = left_pad(p)
    bias = w.get("bias")

    def kernels(x):                                   # x (T, B, C) -> (T*B*H, K)
        T, B, C = x.shape
        if op == "lightconv":
            k = w["weight"]                           # (H, K)
            if p["weight_softmax"]:
                k = torch.softmax(k, dim=1)
            return k
        k = F.linear(x, w["wlin_w"], w.get("wlin_b")).view(T * B * Hh, K)
        return torch.softmax(k, dim=1) if p["weight_softmax"] else k

    def unfold(x):
        T, B, C = x.shape
        R = C // Hh
        k = kernels(x)
        if op == "lightconv":
            k = k.unsqueeze(0).expand(T * B, Hh, K).reshape(T * B * Hh, K)
        xu = unfold1d(x, K, pl).view(T * B * Hh, R, K)
        y = torch.bmm(xu, k.unsqueeze(2)).view(T, B, C)
        return y + bias if bias is not None else y

    def band(x):
        T, B, C = x.shape
        R = C // Hh
        k = kernels(x)
        if op == "lightconv":
            k = k.unsqueeze(0).expand(T * B, Hh, K)
        k = k.reshape(T, B * Hh, K).transpose(0, 1)           # (B*H, T, K)
        xb = x.view(T, B * Hh, R).transpose(0, 1)             # (B*H, T, R)
        y = band_bmm(k, xb, K, pl).transpose(0, 1).reshape(T, B, C)
        return y + bias if bias is not None else y

    def conv1d(xbct):                                  # lightconv only: x (B, C, T)
        C = xbct.shape[1]
        k = torch.softmax(w["weight"], dim=1) if p["weight_softmax"] else w["weight"]
        kc = k.repeat_interleave(C // Hh, dim=0).unsqueeze(1)   # (C, 1, K): channel c uses head c // R
        xp = F.pad(xbct, (pl, K - 1 - pl))
        return F.conv1d(xp, kc, bias, groups=C)

    peers = {"unfold": unfold, "band": band}
    if op == "lightconv":
        peers["conv1d"] = conv1d
    return peers


def mha_peers(p, w):
    d, Hh = p["channels"], p["heads"]
    mods = {}
    for name, bf in (("mha", False), ("fastpath", True)):
        m = torch.nn.MultiheadAttention(d, Hh, dropout=0.0, bias=True, batch_first=bf)
        with torch.no_grad():
            m.in_proj_weight.copy_(w["in_proj_w"])
            m.in_proj_bias.copy_(w["in_proj_b"])
            m.out_proj.weight.copy_(w["out_proj_w"])
            m.out_proj.bias.copy_(w["out_proj_b"])
        m.eval()
        mods[name] = m
    masks = {}

    def mask(T):
        if not p["causal"]:
            return None
        if T not in masks:
            masks[T] = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        return masks[T]

    def mha(x):                                        # (T, N, C)
        return mods["mha"](x, x, x, need_weights=False, attn_mask=mask(x.shape[0]))[0]

    def fastpath(x):                                   # (N, T, C)
        return mods["fastpath"](x, x, x, need_weights=False, attn_mask=mask(x.shape[1]))[0]

    return {"mha": mha, "fastpath": fastpath}


def make_peers(op, p, w):
    if op == "conv2d":
        return conv2d_peer(p, w)
    if op in ("condconv", "dyconv"):
        return expert_conv_peer(op, p, w)
    if op in ("lightconv", "dynconv1d"):
        return seqconv_peers(op, p, w)
    return mha_peers(p, w)


def native_layout(op, variant):
    """The layout a variant takes: 'ntc' (docs/OPERATORS.md), 'tnc' (fairseq / MHA), 'nct' (conv1d)."""
    if op in ("lightconv", "dynconv1d"):
        return "nct" if variant == "conv1d" else "tnc"
    if op == "mhattention" and variant == "mha":
        return "tnc"
    return "ntc"


def to_native(x, layout):
    if layout == "tnc":
        return x.transpose(0, 1).contiguous()
    if layout == "nct":
        return x.transpose(1, 2).contiguous()
    return x


def from_native(y, layout):
    if layout == "tnc":
        return y.transpose(0, 1)
    if layout == "nct":
        return y.transpose(1, 2)
    return y


# ------------------------------------------------------------------ weights
def weight_shapes(op, p):
    if op == "conv2d":
        s = {"weight": (p["cout"], p["cin"] // p["groups"], p["kh"], p["kw"])}
        if p["bias"]:
            s["bias"] = (p["cout"],)
        return s
    if op in ("condconv", "dyconv"):
        E = p["experts"] if op == "condconv" else p["kernels"]
        s = {"weight": (E, p["cout"], p["cin"] // p["groups"], p["kh"], p["kw"])}
        if p["bias"]:
            s["bias"] = (E, p["cout"])
        if op == "condconv":
            s.update(route_w=(E, p["cin"]), route_b=(E,))
        else:
            s.update(fc1_w=(p["hidden"], p["cin"]), fc1_b=(p["hidden"],),
                     fc2_w=(E, p["hidden"]), fc2_b=(E,))
        return s
    C, Hh, K = p["channels"], p["heads"], p.get("kernel_size")
    if op == "lightconv":
        s = {"weight": (Hh, K)}
        if p["bias"]:
            s["bias"] = (C,)
        return s
    if op == "dynconv1d":
        s = {"wlin_w": (Hh * K, C)}
        if p["bias"]:
            s.update(wlin_b=(Hh * K,), bias=(C,))
        return s
    return {"in_proj_w": (3 * C, C), "in_proj_b": (3 * C,), "out_proj_w": (C, C), "out_proj_b": (C,)}


def random_weights(op, p, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in weight_shapes(op, p).items():
        fan = shape[-1] if len(shape) == 2 else max(1, int(np.prod(shape[1:])) // max(1, shape[0]))
        if op in ("conv2d", "condconv", "dyconv") and name in ("weight", "bias"):
            fan = (p["cin"] // p["groups"]) * p["kh"] * p["kw"]
        bound = 1.0 / fan ** 0.5
        out[name] = (torch.rand(shape, generator=g) * 2 - 1) * bound
    return out


def input_shape(op, p):
    if op in ("conv2d", "condconv", "dyconv"):
        return (p["N"], p["cin"], p["H"], p["W"] if p["W"] is not None else p["H"])
    return (p["N"], p["T"], p["channels"])


# ------------------------------------------------------------------ time
def time_variants(fns, reps, min_sample=0.02):
    """Round-robin: every repetition runs every variant once (each for an inner
    count calibrated so that one sample lasts >= min_sample seconds)."""
    inner = {}
    for name, f in fns.items():
        f()                                            # warm-up (allocations, mkldnn caches)
        n = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            dt = time.perf_counter() - t0
            if dt >= min_sample or n >= 1 << 14:
                break
            n *= 2
        inner[name] = n
    samples = {name: [] for name in fns}
    for _ in range(reps):
        for name, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                f()
            samples[name].append((time.perf_counter() - t0) / inner[name])
    return {name: {"median": statistics.median(s), "min": min(s), "max": max(s), "inner": inner[name]}
            for name, s in samples.items()}


def cmd_time(op, given, threads, reps, variants):
    torch.set_num_threads(threads)
    p = complete(op, given)
    w = random_weights(op, p)
    peers = make_peers(op, p, w)
    names = variants or VARIANTS[op]
    for n in names:
        if n not in peers:
            raise SystemExit("torch_peers.py: %s has no variant '%s' (has: %s)" % (op, n, ", ".join(peers)))
    x = torch.randn(input_shape(op, p), generator=torch.Generator().manual_seed(1))
    fns = {}
    with torch.inference_mode():
        for n in names:
            xn = to_native(x, native_layout(op, n))
            fns[n] = (lambda f, xi: (lambda: f(xi)))(peers[n], xn)
        res = time_variants(fns, reps)
    print(json.dumps({"op": op, "params": p, "threads": threads, "reps": reps,
                      "torch": torch.__version__, "variants": res}), flush=True)


# ------------------------------------------------------------------ check
def cmd_check(d, threads, variants):
    torch.set_num_threads(threads)
    with open(os.path.join(d, "op.json")) as f:
        spec = json.load(f)
    op = spec["op"]
    p = complete(op, {k: v for k, v in spec["params"].items() if k != "threads"})
    w = {}
    for name, shape in weight_shapes(op, p).items():
        a = np.load(os.path.join(d, name + ".npy"))
        if tuple(a.shape) != tuple(shape):
            raise SystemExit("torch_peers.py: %s.npy has shape %s, %s expects %s" % (name, a.shape, op, shape))
        w[name] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy")).astype(np.float32))
    ours = torch.from_numpy(np.load(os.path.join(d, "y.npy")).astype(np.float32))
    if op in ("lightconv", "dynconv1d", "mhattention"):
        p["N"], p["T"] = x.shape[0], x.shape[1]
    else:
        p["N"], p["H"], p["W"] = x.shape[0], x.shape[2], x.shape[3]
    peers = make_peers(op, p, w)
    out = {}
    with torch.inference_mode():
        for n in variants or VARIANTS[op]:
            lay = native_layout(op, n)
            ref = from_native(peers[n](to_native(x, lay)), lay).contiguous()
            if tuple(ref.shape) != tuple(ours.shape):
                out[n] = {"error": "shape %s vs ours %s" % (tuple(ref.shape), tuple(ours.shape))}
                continue
            diff = (ours.double() - ref.double()).abs().max().item()
            scale = max(1.0, ref.abs().max().item())
            out[n] = diff / scale
    print(json.dumps({"op": op, "dir": d, "rel_err": out}), flush=True)
    return out


def parse_params(rest):
    """--name value pairs into a dict."""
    given = {}
    i = 0
    while i < len(rest):
        a = rest[i]
        if not a.startswith("--") or i + 1 >= len(rest):
            raise SystemExit("torch_peers.py: expected --name value, got '%s'" % a)
        given[a[2:].replace("-", "_")] = rest[i + 1]
        i += 2
    return given


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time", help="time the PyTorch variants of one op on one shape")
    t.add_argument("op")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--reps", type=int, default=7)
    t.add_argument("--variants", default="", help="comma-separated subset")
    c = sub.add_parser("check", help="compare our y.npy with PyTorch on the weights in DIR")
    c.add_argument("dir")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--variants", default="")
    args, rest = ap.parse_known_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if args.cmd == "time":
        cmd_time(args.op, parse_params(rest), args.threads, args.reps, variants)
    else:
        if rest:
            raise SystemExit("torch_peers.py: check takes only DIR, --threads, --variants")
        cmd_check(args.dir, args.threads, variants)


if __name__ == "__main__":
    main(sys.argv[1:])
