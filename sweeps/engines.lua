-- engines.lua — the conv2d engines over the ResNet 3x3 layers and a few 1x1
-- and depthwise ones (GFLOP/s against the layer).
local dcb = require "dcb"
local lib = require "sweeplib"
local pick = lib.pick

if lib.have("conv2d") then
  -- ResNet stages: C channels at H x H with C * H constant (64@56 ... 512@7)
  local CH = pick(64 * 56, 64 * 28)
  dcb.sweep{
    name = "resnet3x3", op = "conv2d",
    base = {k = 3, pad = 1},
    grid = {cin = {64, 128, 256, 512}, cout = {64, 128, 256, 512}, H = {56, 28, 14, 7}, N = pick({1, 8}, {1})},
    filter = function(p) return p.cin == p.cout and p.cin * p.H == CH end,
    measure = {"time", "counters"},
    plot = {{x = "cin", y = "gflops", by = "impl"}, {x = "cin", y = "time", by = "impl", name = "resnet3x3_time"}},
  }
  dcb.sweep{
    name = "pointwise", op = "conv2d",
    base = {k = 1, cin = pick(256, 128), cout = 64},
    grid = {H = pick({56, 28, 14}, {28, 14})},
    impls = lib.impls("conv2d", {"naive", "im2col"}),
    measure = {"time"},
    plot = {x = "H", y = "gflops", by = "impl"},
  }
  dcb.sweep{
    name = "depthwise", op = "conv2d",
    base = {k = 3, pad = 1},
    grid = {cin = pick({32, 144, 384}, {32, 144}), cout = pick({32, 144, 384}, {32, 144}),
            groups = pick({32, 144, 384}, {32, 144}), H = pick({56, 28}, {28})},
    filter = function(p) return p.cin == p.cout and p.cin == p.groups end,
    measure = {"time"},
    plot = {x = "cin", y = "time", by = "impl"},
  }
end
