-- crossover.lua — the crossover maps of issue 14: which CondConv strategy is
-- faster, mixing the experts' kernels first (combine_then_conv) or
-- convolving with every expert and mixing the outputs (conv_then_combine),
-- over experts E x batch N at 128@28, on the im2col and the Winograd engines.
-- It tests the CondConv authors' advice to combine first above 4 experts.
--   build/dcbench sweeps/bench/crossover.lua   -> results/crossover/condconv_<engine>.png
local dcb = require "dcb"
for _, eng in ipairs{"im2col", "winograd"} do
  dcb.sweep{name = "condconv_" .. eng, op = "condconv", base = {cin = 128, cout = 128, k = 3, pad = 1, H = 28},
    grid = {experts = {1, 2, 4, 8, 16}, N = {1, 4, 16}},
    impls = {"combine_then_conv/" .. eng, "conv_then_combine/" .. eng}, repetitions = 3, min_time = 0.01,
    roofline = false, plot = {x = "experts", y = "N", kind = "crossover"}}
end
