-- similarity.lua — per-sample kernel similarity of CondConv, DyConv and
-- WeightNet at matched parameter counts (E experts ~ K kernels ~ lambda = M):
-- how different are the kernels each input gets?
local dcb = require "dcb"
local lib = require "sweeplib"
local pick = lib.pick

local C = pick(64, 16)
local sizes = pick({2, 4, 8, 16}, {2, 8})
local base = {cin = C, cout = C, k = 3, pad = 1}
local function one(op, key, extra)
  if not lib.have(op) then return end
  local b = {}
  for k, v in pairs(base) do b[k] = v end
  for k, v in pairs(extra or {}) do b[k] = v end
  dcb.sweep{
    name = op, op = op, base = b,
    grid = {[key] = sizes, N = pick({16}, {8}), H = pick({14}, {8})},
    impls = {dcb.impls(op)[1]},          -- similarity does not depend on the implementation
    measure = {"similarity"},
    plot = {{x = key, y = "sim_mean", by = "impl"}, {x = key, y = "params", by = "impl", name = op .. "_params"}},
    roofline = false,
  }
end
one("condconv", "experts")
one("dyconv", "kernels")
one("weightnet", "M", {G = 1})
