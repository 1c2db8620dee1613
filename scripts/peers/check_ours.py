#!/usr/bin/python3
"""check_ours.py - cross-check libdcb against PyTorch, without the Lua harness.

For every implementation of conv2d, condconv, dyconv, dynconv1d, lightconv and
mhattention on a few shapes, this script loads build/libdcb.so through ctypes,
creates the operator (kernels/dcb.h), initialises its weights with a seed, runs
it on a seeded N(0, 1) input, and writes op.json, the weights (<name>.npy, in
docs/OPERATORS.md's names and layouts), x.npy and y.npy into a temporary directory.
Then it runs `torch_peers.py check DIR` on it (a separate process with the
Python that has torch) and prints one line per (op, shape, impl) with the max
relative error max|ours - torch| / max(1, max|torch|) of every PyTorch variant.

Usage: /usr/bin/python3 scripts/peers/check_ours.py [--lib build/libdcb.so]
           [--python /usr/bin/python3] [--only op,op] [--json FILE] [--keep]
Exit status 1 when an error exceeds its bound (1e-4; 1e-3 for Winograd F(4x4)),
2 when a check could not run. Only the standard library is needed here.
"""
import argparse
import ctypes as ct
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MAX_DIMS = 6


class Tensor(ct.Structure):
    _fields_ = [("ndim", ct.c_int), ("shape", ct.c_int64 * MAX_DIMS), ("size", ct.c_int64),
                ("data", ct.POINTER(ct.c_float))]


class HParam(ct.Structure):
    _fields_ = [("name", ct.c_char_p), ("num", ct.c_double), ("str", ct.c_char_p)]


def load(path):
    lib = ct.CDLL(path)
    sig = {
        "dcb_op_create": (ct.c_int, [ct.c_char_p, ct.c_char_p, ct.POINTER(HParam), ct.c_int,
                                     ct.POINTER(ct.c_void_p)]),
        "dcb_op_destroy": (None, [ct.c_void_p]),
        "dcb_op_init_weights": (ct.c_int, [ct.c_void_p, ct.c_uint64]),
        "dcb_op_weight_count": (ct.c_int, [ct.c_void_p]),
        "dcb_op_weight_name": (ct.c_char_p, [ct.c_void_p, ct.c_int]),
        "dcb_op_get_weight": (ct.POINTER(Tensor), [ct.c_void_p, ct.c_char_p]),
        "dcb_op_get_param": (ct.c_double, [ct.c_void_p, ct.c_char_p]),
        "dcb_op_forward": (ct.c_int, [ct.c_void_p, ct.POINTER(Tensor), ct.POINTER(ct.POINTER(Tensor))]),
        "dcb_tensor_new": (ct.POINTER(Tensor), [ct.c_int, ct.POINTER(ct.c_int64)]),
        "dcb_tensor_free": (None, [ct.POINTER(Tensor)]),
        "dcb_tensor_randn": (None, [ct.POINTER(Tensor), ct.c_uint64]),
        "dcb_npy_save": (ct.c_int, [ct.c_char_p, ct.POINTER(Tensor)]),
        "dcb_impl_count": (ct.c_int, [ct.c_char_p]),
        "dcb_impl_name": (ct.c_char_p, [ct.c_char_p, ct.c_int]),
        "dcb_last_error": (ct.c_char_p, []),
        "dcb_status_name": (ct.c_char_p, [ct.c_int]),
        "dcb_status_is_unsupported": (ct.c_int, [ct.c_int]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


# (op, hyperparameters, input shape): a few shapes per operator, covering
# padding, stride, dilation, groups (1x1, grouped, depthwise), bias, heads,
# even and odd K, same and causal.
CASES = [
    ("conv2d", dict(cin=16, cout=24, k=3, pad=1), (2, 16, 13, 11)),
    ("conv2d", dict(cin=16, cout=32, k=1), (2, 16, 9, 9)),
    ("conv2d", dict(cin=32, cout=32, k=3, pad=1, groups=32, bias=1), (2, 32, 12, 12)),
    ("conv2d", dict(cin=16, cout=16, k=3, pad=2, dilation=2, groups=4, stride=2, bias=1), (1, 16, 15, 15)),
    ("conv2d", dict(cin=64, cout=64, k=3, pad=1), (1, 64, 28, 28)),
    ("condconv", dict(cin=16, cout=24, k=3, pad=1, experts=4, bias=1), (3, 16, 10, 10)),
    ("condconv", dict(cin=32, cout=32, k=3, pad=1, groups=32, experts=8), (2, 32, 9, 9)),
    ("condconv", dict(cin=16, cout=32, k=1, stride=2, experts=8), (2, 16, 14, 14)),
    ("dyconv", dict(cin=16, cout=24, k=3, pad=1, kernels=4, bias=1, temperature=30), (3, 16, 10, 10)),
    ("dyconv", dict(cin=32, cout=32, k=3, pad=1, groups=4, kernels=4), (2, 32, 9, 9)),
    ("dyconv", dict(cin=16, cout=16, k=1, kernels=2, hidden=8), (2, 16, 7, 7)),
    ("lightconv", dict(channels=64, heads=4, kernel_size=7), (2, 33, 64)),
    ("lightconv", dict(channels=32, heads=8, kernel_size=4, padding="causal", bias=1), (2, 20, 32)),
    ("lightconv", dict(channels=48, heads=3, kernel_size=6, weight_softmax=0, bias=1), (3, 17, 48)),
    ("lightconv", dict(channels=16, heads=2, kernel_size=31), (1, 12, 16)),
    ("dynconv1d", dict(channels=64, heads=4, kernel_size=7), (2, 33, 64)),
    ("dynconv1d", dict(channels=32, heads=8, kernel_size=4, padding="causal", bias=1), (2, 20, 32)),
    ("dynconv1d", dict(channels=48, heads=3, kernel_size=6, weight_softmax=0, bias=1), (3, 17, 48)),
    ("dynconv1d", dict(channels=512, heads=16, kernel_size=31), (2, 64, 512)),
    ("mhattention", dict(channels=64, heads=4), (2, 33, 64)),
    ("mhattention", dict(channels=48, heads=3, causal=1), (3, 17, 48)),
    ("mhattention", dict(channels=512, heads=16), (2, 64, 512)),
]


def bound(op, impl):
    return 1e-3 if impl.endswith("winograd") else 1e-4


def run_case(lib, op, hp, xshape, impl, d, seed):
    hps = [(k, v) for k, v in hp.items()] + [("threads", 1)]
    arr = (HParam * len(hps))()
    for i, (k, v) in enumerate(hps):
        if isinstance(v, str):
            arr[i] = HParam(k.encode(), 0.0, v.encode())
        else:
            arr[i] = HParam(k.encode(), float(v), None)
    h = ct.c_void_p()
    st = lib.dcb_op_create(op.encode(), impl.encode(), arr, len(hps), ct.byref(h))
    if st != 0:
        if lib.dcb_status_is_unsupported(st):
            return "unsupported"
        raise RuntimeError("%s/%s create: %s: %s" % (op, impl, lib.dcb_status_name(st).decode(),
                                                      lib.dcb_last_error().decode()))
    try:
        if lib.dcb_op_init_weights(h, seed) != 0:
            raise RuntimeError("%s/%s init_weights: %s" % (op, impl, lib.dcb_last_error().decode()))
        for i in range(lib.dcb_op_weight_count(h)):
            name = lib.dcb_op_weight_name(h, i)
            t = lib.dcb_op_get_weight(h, name)
            if lib.dcb_npy_save(os.path.join(d, name.decode() + ".npy").encode(), t) != 0:
                raise RuntimeError(lib.dcb_last_error().decode())
        shape = (ct.c_int64 * len(xshape))(*xshape)
        x = lib.dcb_tensor_new(len(xshape), shape)
        lib.dcb_tensor_randn(x, seed + 1)
        y = ct.POINTER(Tensor)()
        st = lib.dcb_op_forward(h, x, ct.byref(y))
        if st != 0:
            lib.dcb_tensor_free(x)
            if lib.dcb_status_is_unsupported(st):
                return "unsupported"
            raise RuntimeError("%s/%s forward: %s" % (op, impl, lib.dcb_last_error().decode()))
        lib.dcb_npy_save(os.path.join(d, "x.npy").encode(), x)
        lib.dcb_npy_save(os.path.join(d, "y.npy").encode(), y)
        lib.dcb_tensor_free(x)
        lib.dcb_tensor_free(y)
        # the hyperparameters after defaults and derivation, as the library sees them
        params = dict(hp)
        if op == "dyconv":
            params["hidden"] = int(lib.dcb_op_get_param(h, b"hidden"))
        with open(os.path.join(d, "op.json"), "w") as f:
            json.dump({"op": op, "impl": impl, "params": params}, f)
    finally:
        lib.dcb_op_destroy(h)
    return "ok"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libdcb.so"))
    ap.add_argument("--python", default="/usr/bin/python3", help="a Python with torch, for torch_peers.py")
    ap.add_argument("--only", default="", help="comma-separated ops")
    ap.add_argument("--json", default="", help="also write the results as JSON Lines")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = ap.parse_args()
    if not os.path.exists(args.lib):
        sys.exit("check_ours.py: %s not found (run make first)" % args.lib)
    lib = load(args.lib)
    only = [o for o in args.only.split(",") if o]
    peers = os.path.join(HERE, "torch_peers.py")
    worst, failures, errors = {}, 0, 0
    out = open(args.json, "w") if args.json else None
    print("%-11s %-52s %-28s %s" % ("op", "params / x shape", "impl", "max rel err vs torch (per variant)"))
    for ci, (op, hp, xshape) in enumerate(CASES):
        if only and op not in only:
            continue
        impls = [lib.dcb_impl_name(op.encode(), i).decode() for i in range(lib.dcb_impl_count(op.encode()))]
        for impl in impls:
            d = tempfile.mkdtemp(prefix="dcb_check_")
            desc = ",".join("%s=%s" % kv for kv in hp.items()) + " x" + "x".join(map(str, xshape))
            try:
                r = run_case(lib, op, hp, xshape, impl, d, 1000 + ci)
            except RuntimeError as e:
                print("%-11s %-52s %-28s ERROR %s" % (op, desc, impl, e))
                errors += 1
                continue
            if r == "unsupported":
                print("%-11s %-52s %-28s n/a (unsupported)" % (op, desc, impl))
                continue
            p = subprocess.run([args.python, peers, "check", d], capture_output=True, text=True)
            if p.returncode != 0:
                print("%-11s %-52s %-28s ERROR torch_peers: %s" % (op, desc, impl, p.stderr.strip()[-300:]))
                errors += 1
                continue
            res = json.loads(p.stdout.strip().splitlines()[-1])["rel_err"]
            b = bound(op, impl)
            bad = [v for v, e in res.items() if not isinstance(e, float) or e > b]
            failures += bool(bad)
            key = (op, impl.split("/")[-1] if op in ("condconv", "dyconv") else impl)
            for e in res.values():
                if isinstance(e, float):
                    worst[key] = max(worst.get(key, 0.0), e)
            print("%-11s %-52s %-28s %s%s" % (op, desc, impl,
                                              "  ".join("%s=%s" % (v, ("%.2e" % e) if isinstance(e, float) else e)
                                                        for v, e in res.items()),
                                              "  FAIL (bound %.0e)" % b if bad else ""), flush=True)
            if out:
                out.write(json.dumps({"op": op, "params": hp, "x": xshape, "impl": impl, "rel_err": res}) + "\n")
            if not args.keep:
                for f in os.listdir(d):
                    os.unlink(os.path.join(d, f))
                os.rmdir(d)
            else:
                print("    kept in", d)
    print("\nworst max relative error per (op, implementation or engine):")
    for (op, impl), e in sorted(worst.items()):
        print("  %-11s %-22s %.2e" % (op, impl, e))
    print("%d failure(s), %d error(s)" % (failures, errors))
    sys.exit(2 if errors else 1 if failures else 0)


if __name__ == "__main__":
    main()
