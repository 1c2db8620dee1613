-- attention.lua — Selective Kernel (branches) and split attention (radix,
-- cardinality): cost and time of the attention over branches.
local dcb = require "dcb"
local lib = require "sweeplib"
local pick = lib.pick

local C = pick(64, 32)
local H = pick({28}, {14})
if lib.have("skconv") then
  dcb.sweep{
    name = "skconv", op = "skconv",
    base = {cin = C, cout = C, L = 16},
    grid = {branches = pick({1, 2, 3, 4}, {2, 3}), groups = pick({1, 8, 32}, {8}), N = pick({1, 8}, {2}), H = H},
    measure = {"time"},
    plot = {x = "branches", y = "time", by = "impl"},
  }
end
if lib.have("splat") then
  dcb.sweep{
    name = "splat", op = "splat",
    base = {cin = C, cout = C, k = 3, pad = 1},
    grid = {radix = pick({1, 2, 4}, {1, 2}), cardinality = pick({1, 2, 4}, {1, 2}), N = pick({1, 8}, {2}), H = H},
    measure = {"time"},
    plot = {x = "radix", y = "time", by = "impl"},
  }
end
