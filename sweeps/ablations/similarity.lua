-- similarity.lua — WeightNet's kernel-similarity figure: the distribution of pairwise cosine
-- similarity of per-sample kernels, after training and at initialisation, for CondConv E=4, DyConv
-- K=4 and WeightNet lambda=4 (M=8, G=2): all three hold 4 kernels' worth of parameters per conv.
local lib = require "ablations.ablib"
local study = require "study"
local P = require "ablations.papers"
local variants = {{label = "static", conv = "conv", baseline = true},
                  {label = "CondConv E=4", conv = "condconv", experts = 4},
                  {label = "DyConv K=4", conv = "dyconv", kernels = 4, temperature = 30,
                   train = {temperature = {30, 1, epochs = 1}}},
                  {label = "WeightNet lambda=4", conv = "weightnet", M = 8, G = 2}}
return lib.study{
  name = "similarity", title = "Per-sample kernel similarity, trained against initial",
  variants = variants, note = P.similarity_note,
  figures = function(def, aggs, base, result)
    local entries = {}
    for _, a in ipairs(aggs) do
      local c0, c1 = study.load_cosines(base, a)
      if c1 then entries[#entries + 1] = {label = a.label, init = c0, trained = c1} end
    end
    local path = study.fig_similarity("Per-sample kernels of CondConv, DyConv, WeightNet (matched params)\n" ..
                                      "64 test images, every dynamic conv, " .. #def.seeds .. " seeds pooled",
                                      entries, base .. "_figure")
    if path then result.figures[#result.figures + 1] = path end
  end,
}
