-- engines.lua — the foundation's speed check (make bench): on the 3x3 ResNet
-- layers, batch 1 and 8, compare
--   gemm        the bare sgemm of the im2col shape (cout x 9cin x H*W, N times),
--   im2col      target: >= 75% of gemm's GFLOP/s,
--   winograd    F(4x4,3x3), target: faster than im2col,
--   winograd_f2,
--   onednn      the oneDNN peer (its reorders included; see the per-phase
--               profile of dcbench for the primitive alone).
-- Variants are interleaved round-robin within each repetition (dcb.compare),
-- so a busy machine slows all of them alike; medians and min-max spread are
-- printed.
--   build/dcbench sweeps/bench/engines.lua [reps] [threads]   (default 9 1)
local dcb = require "dcb"
local B = require "bench.benchlib"

local args = {...}
local reps, threads = B.num(args, 1, 9), B.num(args, 2, 1)
local layers = {{64, 56}, {128, 28}, {256, 14}, {512, 7}}
local engines = {"im2col", "winograd", "winograd_f2", "onednn"}

print(("# bench/engines: conv2d 3x3 stride 1 pad 1, cin = cout, %d thread(s), %d repetitions"):format(threads, reps))
B.header()
print(("%-10s %2s | %-12s %9s %7s %8s | %s"):format("layer", "N", "variant", "median_ms", "spread", "GFLOP/s", "ratio"))
local misses = 0
for _, l in ipairs(layers) do
  for _, N in ipairs({1, 8}) do
    local C, H = l[1], l[2]
    local x = dcb.randn({N, C, H, H}, 1)
    local variants = {{name = "gemm", gemm = {M = C, N = H * H, K = 9 * C}, batch = N, threads = threads}}
    for _, e in ipairs(engines) do
      local o, status, msg = B.op("conv2d", e, {cin = C, cout = C, k = 3, pad = 1}, threads)
      if not o then error(("bench/engines: %s: %s: %s"):format(e, status, msg), 0) end
      variants[#variants + 1] = {name = e, op = o, x = x}
    end
    local r = dcb.compare{variants = variants, baseline = "gemm", repetitions = reps, min_time = 0.03,
                          flops = 2.0 * N * C * 9 * C * H * H, print = false}
    local m = {}
    for _, v in ipairs(r.variants) do
      if v.status ~= "ok" then error(("bench/engines: %s: %s"):format(v.name, v.reason), 0) end
      m[v.name] = v.median
    end
    for _, v in ipairs(r.variants) do
      local ratio = ""
      if v.name == "im2col" then
        local q = m.gemm / v.median
        ratio = ("%.2f of gemm (target >= 0.75) %s"):format(q, q >= 0.75 and "ok" or "MISS")
        if q < 0.75 then misses = misses + 1 end
      elseif v.name == "winograd" or v.name == "winograd_f2" then
        local q = m.im2col / v.median
        ratio = ("%.2fx im2col"):format(q)
        if v.name == "winograd" then
          ratio = ratio .. (q > 1 and " (target > 1) ok" or " (target > 1) MISS")
          if q <= 1 then misses = misses + 1 end
        end
      elseif v.name == "onednn" then
        local best = math.min(m.winograd, m.winograd_f2, m.im2col)
        ratio = ("our best / onednn = %.2f"):format(best / v.median)
      end
      print(("%4d@%-5d %2d | %-12s %9.3f %6.1f%% %8.1f | %s"):format(C, H, N, v.name, 1e3 * v.median,
            100 * v.spread, v.gflops, ratio))
    end
    io.stdout:flush()
  end
end
print("# GFLOP/s = 2 * 9 * C * C * H * W * N / median time (direct-convolution FLOPs for every variant)")
print(("# %d target(s) missed"):format(misses))
