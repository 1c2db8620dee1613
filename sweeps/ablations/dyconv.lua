-- dyconv.lua — Dynamic Convolution: kernels K in {1, 2, 4, 8}, all with the paper's temperature
-- annealing (tau from 30 to 1 over the first epoch, here scaled to the short run), and K = 4 with a
-- fixed tau = 1 (the paper's temperature ablation), against the static net.
local lib = require "ablations.ablib"
local P = require "ablations.papers"
local variants = {{label = "static", conv = "conv", baseline = true}}
local anneal = {temperature = {30, 1, epochs = 1}}
for _, k in ipairs{1, 2, 4, 8} do
  variants[#variants + 1] = {label = ("K=%d tau 30->1"):format(k), conv = "dyconv", kernels = k, temperature = 30,
                             train = anneal, x = k, group = "tau annealed 30->1", paper = P.dyconv.kernels[k]}
end
variants[#variants + 1] = {label = "K=4 tau=1", conv = "dyconv", kernels = 4, temperature = 1, x = 4,
                           group = "tau = 1 fixed", paper = P.dyconv.tau1}
return lib.study{
  name = "dyconv", title = "DyConv: kernels K and temperature annealing",
  variants = variants, x = "kernels", xlabel = "kernels K",
  quick = {labels = {"static", "K=4 tau 30->1", "K=4 tau=1"}},
}
