-- sk_splat.lua — Selective Kernel with 2 against 3 branches, and ResNeSt split attention with radix
-- in {1, 2, 4}, against the static net.
local lib = require "ablations.ablib"
local P = require "ablations.papers"
local variants = {{label = "static", conv = "conv", baseline = true}}
for _, b in ipairs{2, 3} do
  variants[#variants + 1] = {label = ("SK M=%d"):format(b), conv = "skconv", branches = b, x = b,
                             group = "SK branches", paper = P.sk.branches[b]}
end
for _, r in ipairs{1, 2, 4} do
  variants[#variants + 1] = {label = ("splat radix=%d"):format(r), conv = "splat", radix = r, x = r,
                             group = "split-attention radix", paper = P.splat.radix[r]}
end
return lib.study{
  name = "sk_splat", title = "SK branches and split-attention radix",
  variants = variants, x = "branches", xlabel = "SK branches M, or radix (see legend)", logx = false,
  quick = {labels = {"static", "SK M=2", "splat radix=2"}},
}
