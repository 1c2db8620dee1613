-- direct.lua — the "direct" engine against oneDNN (issue 6, target 4;
-- make bench-direct): on the 1x1 256->64@56 and the depthwise 3x3 C=144@56
-- layers (with "all": also depthwise stride 2, the 3x3 ResNet layers and the
-- 3x3 stride-2 128->256@28 layer), batch 1 and 8, time direct, im2col,
-- winograd and onednn (its reorders included) interleaved round-robin within
-- every repetition (dcb.compare), and print medians, the (max - min) / median
-- spread, GFLOP/s, direct's relative error against the naive oracle (batch
-- 1) and the speed of direct relative to oneDNN (target >= 0.9 on the two
-- issue layers).
--   build/dcbench sweeps/bench/direct.lua [reps] [threads] [all]   (default 9 1)
local dcb = require "dcb"
local B = require "bench.benchlib"

local args = {...}
local reps, threads, all = B.num(args, 1, 9), B.num(args, 2, 1), args[3] == "all"
local layers = {
  {name = "1x1 256->64@56", cin = 256, cout = 64, k = 1, stride = 1, pad = 0, groups = 1, H = 56, target = true},
  {name = "dw3x3 144@56", cin = 144, cout = 144, k = 3, stride = 1, pad = 1, groups = 144, H = 56, target = true},
  {name = "dw3x3 s2 144@56", cin = 144, cout = 144, k = 3, stride = 2, pad = 1, groups = 144, H = 56},
  {name = "3x3 64@56", cin = 64, cout = 64, k = 3, stride = 1, pad = 1, groups = 1, H = 56},
  {name = "3x3 128@28", cin = 128, cout = 128, k = 3, stride = 1, pad = 1, groups = 1, H = 28},
  {name = "3x3 256@14", cin = 256, cout = 256, k = 3, stride = 1, pad = 1, groups = 1, H = 14},
  {name = "3x3 s2 128->256@28", cin = 128, cout = 256, k = 3, stride = 2, pad = 1, groups = 1, H = 28},
}
local engines = {"direct", "im2col", "winograd", "onednn"}

local function params(l)
  return {cin = l.cin, cout = l.cout, k = l.k, stride = l.stride, pad = l.pad, groups = l.groups}
end

print(("# bench/direct: conv2d, %d thread(s), %d repetitions, variants interleaved"):format(threads, reps))
B.header("; oneDNN " .. dcb.build.onednn)
print(("%-19s %2s | %-9s %9s %7s %8s | %s"):format("layer", "N", "variant", "median_ms", "spread", "GFLOP/s", "note"))
local misses = 0
for li = 1, all and #layers or 2 do
  local l = layers[li]
  for _, N in ipairs({1, 8}) do
    local x = dcb.randn({N, l.cin, l.H, l.H}, 1)
    local variants = {}
    for _, e in ipairs(engines) do
      local o = B.op("conv2d", e, params(l), threads)
      if o then variants[#variants + 1] = {name = e, op = o, x = x} end
    end
    -- direct's error against the oracle, on batch 1
    local errs = ""
    if N == 1 and variants[1] and variants[1].name == "direct" then
      local ref = B.op("conv2d", "naive", params(l), threads):forward(x)
      errs = ("rel err %.2g; "):format(dcb.rel_err(variants[1].op:forward(x), ref))
    end
    local Ho = (l.H + 2 * l.pad - l.k) // l.stride + 1
    local r = variants[1] and dcb.compare{variants = variants, repetitions = reps, min_time = 0.02, print = false,
                                          flops = 2.0 * N * l.cout * Ho * Ho * (l.cin // l.groups) * l.k * l.k}
    local got = r and r.by_name or {}
    for _, e in ipairs(engines) do
      if not got[e] or got[e].status ~= "ok" then
        print(("%-19s %2d | %-9s %9s %7s %8s | unsupported"):format(l.name, N, e, "-", "-", "-"))
      end
    end
    for _, e in ipairs(engines) do
      local v = got[e]
      if v and v.status == "ok" then
        local note = ""
        local peer = got.onednn
        if e == "direct" and peer and peer.status == "ok" then
          local q = peer.median / v.median
          note = ("%sspeed / onednn = %.2f%s"):format(errs, q,
                 l.target and (q >= 0.9 and " (target >= 0.9) ok" or " (target >= 0.9) MISS") or "")
          if l.target and q < 0.9 then misses = misses + 1 end
        end
        print(("%-19s %2d | %-9s %9.3f %6.1f%% %8.1f | %s"):format(l.name, N, e, 1e3 * v.median, 100 * v.spread,
              v.gflops, note))
      end
    end
    io.stdout:flush()
  end
end
print("# GFLOP/s = 2 * MACs of the direct convolution / median time; onednn includes its reorders")
print(("# %d target(s) missed"):format(misses))
