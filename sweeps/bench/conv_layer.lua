-- conv_layer.lua — one 3x3 conv2d layer in every engine and oneDNN,
-- interleaved (dcb.compare), and impl auto: median, min and max per engine, with the ISA
-- level the micro-kernels ran (DCB_ISA picks a narrower one).
--   build/dcbench sweeps/bench/conv_layer.lua [N] [threads] [C] [H]   (default 1 1 512 7)
local dcb = require "dcb"
local B = require "bench.benchlib"
local args = {...}
local N, t = B.num(args, 1, 1), B.num(args, 2, 1)
local C, H = B.num(args, 3, 512), B.num(args, 4, 7)
local x = dcb.randn({N, C, H, H}, 1)
local vs = {}
for _, e in ipairs({"winograd", "winograd_f2", "winograd_f6", "direct", "im2col", "onednn", "auto"}) do
  local o = B.op("conv2d", e, {cin = C, cout = C, k = 3, stride = 1, pad = 1}, t)
  if o then vs[#vs + 1] = {name = e, op = o, x = x} end
end
local r = dcb.compare{variants = vs, repetitions = 11, min_time = 0.03, print = false}
local isa = dcb.machine():match('"isa": "(%w+)"')
for _, v in ipairs(r.variants) do
  print(("%s 3x3 %d@%d N=%d threads=%d %-12s %8.3f ms [%0.3f, %0.3f] %6.1f GFLOP/s"):format(isa, C, H, N, t, v.name,
    v.median * 1e3, v.min * 1e3, v.max * 1e3, v.gflops or 0))
end
for _, v in ipairs(vs) do
  if v.name == "auto" then print(("# auto picked %s: %s"):format(v.op:picked(), v.op:pick_reason())) end
end
