-- weightnet.lua — WeightNet: lambda = M/G in {1, 2, 4, 8} at G = 2, and G in {1, 2, 4} at lambda = 2,
-- against the static net of the same FLOPs (WeightNet adds few MACs, lambda times the kernel params)
-- and a wider static net with the parameters of lambda = 4.
local lib = require "ablations.ablib"
local P = require "ablations.papers"
local variants = {{label = "static", conv = "conv", baseline = true}}
for _, lam in ipairs{1, 2, 4, 8} do
  variants[#variants + 1] = {label = ("lambda=%d G=2"):format(lam), conv = "weightnet", M = 2 * lam, G = 2,
                             x = lam, group = "lambda at G=2", paper = P.weightnet.lambda[lam]}
end
for _, g in ipairs{1, 4} do
  variants[#variants + 1] = {label = ("lambda=2 G=%d"):format(g), conv = "weightnet", M = 2 * g, G = g, x = g,
                             group = "G at lambda=2", paper = P.weightnet.G[g]}
end
local target = lib.params_of("resnet_fmnist", {width = lib.WIDTH, conv = "weightnet", M = 8, G = 2})
local w = lib.match_params("resnet_fmnist", {conv = "conv"}, "width", target, 8, 64)
variants[#variants + 1] = {label = ("static width=%d (params of lambda=4)"):format(w), conv = "conv", width = w}
return lib.study{
  name = "weightnet", title = "WeightNet: lambda and G",
  variants = variants, x = "lambda", xlabel = "lambda = M/G, or G (see legend)",
  quick = {labels = {"static", "lambda=1 G=2", "lambda=4 G=2"}},
}
