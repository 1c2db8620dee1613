-- dynconv1d.lua — LightConv and DynamicConv against multi-head attention over
-- the sequence length T and the kernel width K: where convolution overtakes
-- attention (attention grows as T^2, the convolutions as T*K).
local dcb = require "dcb"
local lib = require "sweeplib"
local pick = lib.pick

local C = pick(256, 64)
local T = pick({64, 128, 256, 512, 1024, 2048, 4096}, {64, 256})
local K = pick({3, 7, 15, 31}, {3, 15})
for _, op in ipairs{"lightconv", "dynconv1d"} do
  if lib.have(op) then
    dcb.sweep{
      name = op, op = op,
      base = {channels = C, heads = 8},
      grid = {T = T, kernel_size = K, N = {1}},
      measure = {"time"},
      plot = {x = "T", y = "time", by = "impl"},
    }
  end
end
if lib.have("mhattention") then
  dcb.sweep{
    name = "mhattention", op = "mhattention",
    base = {channels = C, heads = 8},
    grid = {T = T, N = {1}},
    measure = {"time"},
    plot = {x = "T", y = "time", by = "impl"},
  }
end
