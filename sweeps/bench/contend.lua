-- contend.lua — a depthwise (dw3x3 144@56 N=1, direct) and a Winograd
-- (3x3 256@14 N=8) layer at 1 and 2 threads, interleaved: what
-- scripts/wait_policy.sh runs per OpenMP wait policy, quiet and with a
-- second copy of itself running (docs/PERFORMANCE.md, "Under load").
--   build/dcbench sweeps/bench/contend.lua
local dcb = require "dcb"
local B = require "bench.benchlib"
local x = dcb.randn({1, 144, 56, 56}, 1)
local xs = dcb.randn({8, 256, 14, 14}, 1)
local vs = {}
for _, t in ipairs({1, 2}) do
  vs[#vs + 1] = {name = "dw_direct_t" .. t, x = x,
                 op = B.op("conv2d", "direct", {cin = 144, cout = 144, k = 3, stride = 1, pad = 1, groups = 144}, t)}
  vs[#vs + 1] = {name = "c256_wino_t" .. t, x = xs,
                 op = B.op("conv2d", "winograd", {cin = 256, cout = 256, k = 3, stride = 1, pad = 1}, t)}
end
local r = dcb.compare{variants = vs, repetitions = 15, min_time = 0.02, print = false}
for _, v in ipairs(r.variants) do
  print(("%-14s %8.3f ms  [%0.3f, %0.3f]"):format(v.name, v.median * 1e3, v.min * 1e3, v.max * 1e3))
end
