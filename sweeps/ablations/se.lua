-- se.lua — Squeeze-and-Excitation on every block's residual branch: reduction r in {4, 8, 16, 32}
-- (hidden = max(1, C/r)), against the static net.
local lib = require "ablations.ablib"
local P = require "ablations.papers"
local variants = {{label = "static", conv = "conv", baseline = true}}
for _, r in ipairs{4, 8, 16, 32} do
  variants[#variants + 1] = {label = ("SE r=%d"):format(r), conv = "se", reduction = r, x = r, group = "SE",
                             paper = P.se.reduction[r]}
end
return lib.study{
  name = "se", title = "SE: reduction ratio",
  variants = variants, x = "reduction", xlabel = "reduction r",
  quick = {labels = {"static", "SE r=4", "SE r=16"}},
}
