-- drconv.lua — DRConv: regions m in {1, 2, 4, 8, 16}, against the static net and a wider static net
-- with the parameters of m = 8 (a region holds a kernel of its own: m times the static params).
local lib = require "ablations.ablib"
local P = require "ablations.papers"
local variants = {{label = "static", conv = "conv", baseline = true}}
for _, m in ipairs{1, 2, 4, 8, 16} do
  variants[#variants + 1] = {label = ("m=%d"):format(m), conv = "drconv", regions = m, x = m, group = "DRConv",
                             paper = P.drconv.regions[m]}
end
local target = lib.params_of("resnet_fmnist", {width = lib.WIDTH, conv = "drconv", regions = 8})
local w = lib.match_params("resnet_fmnist", {conv = "conv"}, "width", target, 8, 64)
variants[#variants + 1] = {label = ("static width=%d (params of m=8)"):format(w), conv = "conv", width = w}
-- DRConv trains 4x slower than the static conv here, so this study halves the training set.
local train = {}
for k, v in pairs(lib.IMAGE_TRAIN) do train[k] = v end
if not require("dcb").quick then train.subset = 2000 end
return lib.study{
  name = "drconv", train = train, title = "DRConv: number of regions",
  variants = variants, x = "regions", xlabel = "regions m",
  quick = {labels = {"static", "m=4"}},
}
