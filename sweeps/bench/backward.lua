-- Fast backward against the naive oracle, per operator, on the training shapes (batch 64 of the
-- fmnist nets): the time of op:backward(x, dy) (a training forward and the backward) with the
-- operator's default backward and with "naive", interleaved, medians.
--
--   build/dcbench sweeps/bench/backward.lua [reps] [threads]      (default 3 repetitions, 1 thread)
--
-- The target of the training issue: 10x or more for conv2d and every dynamic operator.
local dcb = require("dcb")
local reps, threads = tonumber(arg[1] or "3"), tonumber(arg[2] or "1")
local N = dcb.quick and 8 or 64

local CASES = {
  {"conv2d", {cin = 16, cout = 16, k = 3, pad = 1, impl = "im2col"}, {N, 16, 28, 28}},
  {"conv2d", {cin = 64, cout = 64, k = 3, pad = 1, impl = "im2col"}, {N, 64, 7, 7}},
  {"condconv", {cin = 16, cout = 16, k = 3, pad = 1, experts = 4, impl = "combine_then_conv/im2col"}, {N, 16, 28, 28}},
  {"dyconv", {cin = 32, cout = 32, k = 3, pad = 1, kernels = 4, impl = "combine_then_conv/im2col"}, {N, 32, 14, 14}},
  {"weightnet", {cin = 32, cout = 32, k = 3, pad = 1, M = 2, G = 2, impl = "combine_then_conv/im2col"}, {N, 32, 14, 14}},
  {"weightnet", {cin = 32, cout = 32, k = 3, pad = 1, M = 2, G = 2, depthwise = true, impl = "combine_then_conv/im2col"},
   {N, 32, 14, 14}},
  {"drconv", {cin = 16, cout = 16, k = 3, pad = 1, regions = 4, impl = "gather"}, {N, 16, 14, 14}},
  {"skconv", {cin = 32, cout = 32, groups = 8, branches = 2, impl = "im2col"}, {N, 32, 14, 14}},
  {"splat", {cin = 32, cout = 32, k = 3, pad = 1, radix = 2, impl = "im2col"}, {N, 32, 14, 14}},
  {"se", {channels = 64, reduction = 4}, {N, 64, 7, 7}},
  {"lightconv", {channels = 64, heads = 4, kernel_size = 7, impl = "band"}, {N, 28, 64}},
  {"dynconv1d", {channels = 64, heads = 4, kernel_size = 7, impl = "band"}, {N, 28, 64}},
  {"mhattention", {channels = 64, heads = 4, impl = "gemm"}, {N, 28, 64}},
  {"localconv", {cin = 8, cout = 8, k = 3, pad = 1, H = 14, W = 14, impl = "im2col"}, {N, 8, 14, 14}},
}
-- the operators whose kernel or attention depends on the input (lightconv's kernel is a weight, and
-- attention is the baseline they are measured against)
local DYNAMIC = {condconv = true, dyconv = true, weightnet = true, drconv = true, skconv = true, splat = true,
                 se = true, dynconv1d = true}

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local out = dcb.results .. "/bench-backward"
os.execute("mkdir -p '" .. out .. "'")
local csv = assert(io.open(out .. "/backward.csv", "w"))
csv:write("op,case,threads,fast,naive_ms,fast_ms,ratio\n")
print(string.format("%-12s %-34s %-8s %10s %10s %8s", "op", "case", "fast", "naive ms", "fast ms", "ratio"))
local missed = 0
for _, c in ipairs(CASES) do
  local name, hp, shape = c[1], {}, c[3]
  for k, v in pairs(c[2]) do hp[k] = v end
  hp.threads = threads
  local op = dcb.op(name, hp)
  op:init_weights(1)
  local x = dcb.randn(shape, 1)
  local y = op:forward(x)
  local dy = dcb.randn(y.shape, 2)
  local fast = op:backward_impl()
  local tn, tf = {}, {}
  for r = 1, reps do
    for _, which in ipairs({"naive", fast}) do
      op:set_backward(which)
      op:backward(x, dy)   -- warm
      local k = which == "naive" and 1 or 5
      local t0 = dcb.now()
      for _ = 1, k do op:backward(x, dy) end
      local t = (dcb.now() - t0) / k
      table.insert(which == "naive" and tn or tf, t)
    end
  end
  local mn, mf = median(tn), median(tf)
  local desc = string.format("%s", table.concat({shape[2], shape[3], shape[4] or ""}, "x"))
  local ratio = mn / mf
  local target = (name == "conv2d" or DYNAMIC[name]) and ratio < 10
  if target then missed = missed + 1 end
  print(string.format("%-12s %-34s %-8s %10.2f %10.2f %7.1fx%s", name, desc .. " " .. (hp.impl or ""), fast, mn * 1e3,
                      mf * 1e3, ratio, target and "  (below 10x)" or ""))
  csv:write(string.format("%s,%s,%d,%s,%.3f,%.3f,%.2f\n", name, desc, threads, fast, mn * 1e3, mf * 1e3, ratio))
end
csv:close()
print(string.format("# batch %d, %d thread(s), %d repetitions interleaved; %d below 10x", N, threads, reps, missed))
