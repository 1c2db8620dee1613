-- condconv.lua — CondConv: experts E in {1, 2, 4, 8, 16}, every block conv with its own routing
-- function (sigmoid routing weights per example), against the static net.
local lib = require "ablations.ablib"
local P = require "ablations.papers"
local variants = {{label = "static", conv = "conv", baseline = true}}
for _, e in ipairs{1, 2, 4, 8, 16} do
  variants[#variants + 1] = {label = ("E=%d"):format(e), conv = "condconv", experts = e, x = e, group = "CondConv",
                             paper = P.condconv.experts[e]}
end
return lib.study{
  name = "condconv", title = "CondConv: number of experts",
  variants = variants, x = "experts", xlabel = "experts E",
  quick = {labels = {"static", "E=2", "E=8"}},
}
