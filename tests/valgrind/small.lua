-- small.lua — a few operators end to end, small enough for valgrind's memcheck (make valgrind-check):
-- create, weights, cost, forward on several implementations, a backward, a tiny network step.
local dcb = require "dcb"
local x = dcb.randn({2, 8, 10, 10}, 1)
for _, impl in ipairs{"naive", "im2col", "winograd", "direct"} do
  local op = dcb.op("conv2d", {cin = 8, cout = 8, k = 3, pad = 1, impl = impl})
  op:init_weights(1)
  local y = op:forward(x)
  assert(#y == 2 * 8 * 10 * 10)
end
for _, spec in ipairs{{"condconv", {cin = 8, cout = 8, k = 3, pad = 1, experts = 2}},
                      {"dyconv", {cin = 8, cout = 8, k = 3, pad = 1, kernels = 2}},
                      {"se", {channels = 8, reduction = 4}}} do
  local op = dcb.op(spec[1], spec[2])
  op:init_weights(2)
  op:forward(x)
  local dx = op:backward(x, op:forward(x))
  assert(dx)
end
local s = dcb.randn({2, 12, 8}, 3)
local lc = dcb.op("dynconv1d", {channels = 8, heads = 2, kernel_size = 3})
lc:init_weights(1)
lc:forward(s)
local ok, err = pcall(dcb.op, "conv2d", {cin = 1, cout = 1, k = 1, pad = 1e9})
assert(not ok and err:find("pad"))
print("valgrind small.lua: ok")
