-- experts.lua — CondConv and DyConv: the number of experts E (kernels K) and
-- the batch N: mixing the kernels first (combine_then_conv) against
-- convolving with every expert and mixing the outputs (conv_then_combine);
-- <op>_crossover.png maps which strategy wins over E x N.
local dcb = require "dcb"
local lib = require "sweeplib"
local pick = lib.pick

local C = pick(128, 32)
local E = pick({1, 2, 4, 8, 16, 32}, {2, 8})
local N = pick({1, 4, 16, 64}, {1, 4})
local H = pick({28}, {14})
local strategies = {"combine_then_conv/im2col", "conv_then_combine/im2col"}

for _, s in ipairs{{op = "condconv", key = "experts"}, {op = "dyconv", key = "kernels"}} do
  if lib.have(s.op) then
    dcb.sweep{
      name = s.op, op = s.op,
      base = {cin = C, cout = C, k = 3, pad = 1},
      grid = {[s.key] = E, N = N, H = H},
      impls = lib.impls(s.op, strategies),
      measure = {"time", "counters"},
      -- the crossover map tests the CondConv authors' advice: combine first above 4 experts
      plot = {{x = s.key, y = "time", by = "impl"},
              {x = s.key, y = "N", kind = "crossover", name = s.op .. "_crossover"}},
    }
  end
end
