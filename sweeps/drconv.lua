-- drconv.lua — DRConv over the number of regions, every strategy
-- (all_regions, gather, region_sorted), against the static conv2d of the
-- same shape (a separate CSV, conv2d_baseline, drawn beside it).
local dcb = require "dcb"
local lib = require "sweeplib"
local pick = lib.pick

local C = pick(64, 16)
local H = pick({28}, {14})
local N = pick({1, 8}, {2})
if lib.have("drconv") then
  dcb.sweep{
    name = "drconv", op = "drconv",
    base = {cin = C, cout = C, k = 3, pad = 1},
    grid = {regions = pick({1, 2, 4, 8, 16, 32}, {2, 8}), N = N, H = H},
    impls = lib.impls("drconv", {"all_regions", "gather", "region_sorted"}),
    measure = {"time"},
    plot = {x = "regions", y = "time", by = "impl"},
  }
  dcb.sweep{
    name = "conv2d_baseline", op = "conv2d",
    base = {cin = C, cout = C, k = 3, pad = 1},
    grid = {N = N, H = H},
    impls = lib.impls("conv2d", {"im2col", "winograd"}),
    plot = {x = "N", y = "time", by = "impl"},
  }
end
