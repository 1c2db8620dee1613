-- One layer of every operator, through nothing but dcb.op and dcb.bench, so
-- that two builds of dcbench (before and after a change) can run it side by
-- side: alternate them, e.g.
--   for r in 1 2 3 4 5; do old/dcbench sweeps/bench/layers.lua > old_$r.txt
--                          build/dcbench sweeps/bench/layers.lua > new_$r.txt; done
-- SPEED_THREADS=2 for two threads; SPEED_MODE=count runs each layer 3 times
-- untimed, for valgrind --tool=callgrind --toggle-collect=dcb_op_run.
local dcb = require "dcb"
local mode = os.getenv("SPEED_MODE") or "time"
local threads = tonumber(os.getenv("SPEED_THREADS") or "1")
local L = {
  {"conv2d", "winograd", {cin=64, cout=64, k=3, pad=1}, {1, 64, 56, 56}},
  {"conv2d", "winograd_f2", {cin=128, cout=128, k=3, pad=1}, {1, 128, 28, 28}},
  {"conv2d", "direct", {cin=256, cout=256, k=1}, {1, 256, 14, 14}},
  {"conv2d", "direct", {cin=144, cout=144, k=3, pad=1, groups=144}, {1, 144, 56, 56}},
  {"conv2d", "direct", {cin=64, cout=64, k=3, pad=1}, {1, 64, 28, 28}},
  {"conv2d", "im2col", {cin=64, cout=64, k=3, pad=1}, {1, 64, 56, 56}},
  {"condconv", "combine_then_conv/winograd", {cin=128, cout=128, k=3, pad=1, experts=8}, {8, 128, 28, 28}},
  {"condconv", "combine_then_conv/im2col", {cin=128, cout=128, k=3, pad=1, experts=8}, {8, 128, 28, 28}},
  {"condconv", "conv_then_combine/winograd", {cin=64, cout=64, k=3, pad=1, experts=4}, {2, 64, 28, 28}},
  {"dyconv", "combine_then_conv/winograd", {cin=256, cout=256, k=3, pad=1, kernels=4}, {8, 256, 14, 14}},
  {"dyconv", "combine_then_conv/direct", {cin=64, cout=64, k=3, pad=1, kernels=4}, {2, 64, 28, 28}},
  {"weightnet", "combine_then_conv/winograd", {cin=64, cout=64, k=3, pad=1}, {2, 64, 28, 28}},
  {"skconv", "direct", {cin=64, cout=64, groups=32}, {2, 64, 28, 28}},
  {"splat", "winograd", {cin=64, cout=64, k=3, pad=1}, {2, 64, 28, 28}},
  {"lightconv", "direct", {channels=512, heads=8, kernel_size=7, padding="same"}, {8, 128, 512}},
  {"dynconv1d", "direct", {channels=512, heads=8, kernel_size=7, padding="same"}, {8, 128, 512}},
  {"mhattention", "gemm", {channels=512, heads=8}, {8, 128, 512}},
}
for i, l in ipairs(L) do
  local hp = {impl=l[2], threads=threads}
  for k, v in pairs(l[3]) do hp[k] = v end
  local op = dcb.op(l[1], hp)
  op:init_weights(7)
  local x = dcb.randn(l[4], 1)
  if mode == "count" then
    for r = 1, 3 do op:forward(x) end
  else
    local b = dcb.bench(op, x, {repetitions=7, min_time=0.05})
    print(string.format("%-12s %-30s %10.4f ms", l[1], l[2], b.median * 1e3))
  end
end
