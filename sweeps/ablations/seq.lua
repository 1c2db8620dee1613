-- seq.lua — the row-sequence classifier: LightConv and DynamicConv with kernel width K in
-- {3, 7, 15} and heads in {1, 4, 8} (at K = 7), against multi-head self-attention with the
-- parameters of DynamicConv K = 7 (the dim that matches them) and the static skeleton without any
-- mixing across steps. The paper's deltas are against self-attention, so it is the baseline here.
local lib = require "ablations.ablib"
local P = require "ablations.papers"
local dim = 64
local target = lib.params_of("seq_fmnist", {dim = dim, mixer = "dynconv1d", kernel_size = 7, heads = 4})
local adim = lib.match_params("seq_fmnist", {mixer = "mhattention", heads = 4}, "dim", target, 32, 96)
adim = adim - adim % 4
local variants = {{label = ("attention dim=%d"):format(adim), mixer = "mhattention", heads = 4, dim = adim, baseline = true},
                  {label = "no mixing (static)", mixer = "none"}}
for _, m in ipairs{"lightconv", "dynconv1d"} do
  for _, k in ipairs{3, 7, 15} do
    variants[#variants + 1] = {label = ("%s K=%d"):format(m, k), mixer = m, kernel_size = k, heads = 4, x = k,
                               group = m .. ", 4 heads", paper = P.seq[m] and P.seq[m][k]}
  end
end
for _, h in ipairs{1, 8} do
  variants[#variants + 1] = {label = ("dynconv1d K=7 heads=%d"):format(h), mixer = "dynconv1d", kernel_size = 7,
                             heads = h}
end
return lib.study{
  name = "seq", title = "LightConv / DynamicConv against attention (row sequences)",
  family = "seq_fmnist", base = {dim = dim, layers = 2}, variants = variants, x = "kernel_size",
  xlabel = "kernel width K", logx = false,
  quick = {labels = {("attention dim=%d"):format(adim), "lightconv K=7", "dynconv1d K=7"}},
}
