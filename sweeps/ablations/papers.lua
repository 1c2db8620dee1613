-- papers.lua — the published ImageNet deltas the ablation tables print beside ours, in top-1
-- accuracy points (a drop in error is a positive delta). Only numbers read in the paper or in the
-- authors' own repository are here; `source` says which. Where the paper's ablation table could not be
-- checked (the figures of CondConv's experts and DyConv's K, DRConv's regions, SK's three branches,
-- WeightNet's G, the LightConv BLEU table) the cell stays empty: no number from memory.
local M = {}

local WN = "WeightNet (Ma et al. 2020), ShuffleNetV2 %s, top-1 err %.1f -> %.1f; megvii-model/WeightNet README"
M.weightnet = {
  lambda = {
    [1] = {delta = 3.0, unit = "top-1 pts", source = "WeightNet 0.5x λ=1", detail = WN:format("0.5x, λ=1 (same FLOPs and params)", 39.7, 36.7)},
    [4] = {delta = 3.3, unit = "top-1 pts", source = "WeightNet 1.0x λ=4", detail = WN:format("1.0x, λ=4 (same FLOPs)", 30.9, 27.6)},
    [8] = {delta = 5.7, unit = "top-1 pts", source = "WeightNet 0.5x λ=8", detail = WN:format("0.5x, λ=8 (same FLOPs)", 39.7, 34.0)},
  },
  G = {},
}

local CC = "CondConv (Yang et al. 2019), EfficientNet-B0, top-1 acc 77.3 -> %.1f with %d experts; tensorflow/tpu condconv README"
M.condconv = {experts = {
  [4] = {delta = 0.5, unit = "top-1 pts", source = "CondConv B0 E=4", detail = CC:format(77.8, 4)},
  [8] = {delta = 1.0, unit = "top-1 pts", source = "CondConv B0 E=8", detail = CC:format(78.3, 8)},
}}

M.dyconv = {
  kernels = {[4] = {delta = 3.2, unit = "top-1 pts", source = "DyConv MBv2 K=4",
                    detail = "Dynamic Convolution (Chen et al. 2020), MobileNetV2 x1.0, top-1 acc 72.0 -> 75.2 with K=4 " ..
                             "(CVPR version; read in a transcription, not in the paper)"}},
  tau1 = nil,
}

M.drconv = {regions = {}}

M.sk = {branches = {[2] = {delta = 1.44, unit = "top-1 pts", source = "SKNet-50 M=2",
                           detail = "SKNet (Li et al. 2019) Table 2, ResNeXt-50 -> SKNet-50, top-1 err 22.23 -> 20.79; " ..
                                    "implus/SKNet README"}}}

local RS = "ResNeSt (Zhang et al. 2020) Table 2, ResNeSt-50-fast, top-1 acc 79.41 (0s1x64d) -> %.2f (%s); " ..
           "the radix values match zhanghang1989/ResNeSt ablation.md (Gluon), the 79.41 baseline was read in a transcription"
M.splat = {radix = {
  [1] = {delta = 0.94, unit = "top-1 pts", source = "ResNeSt 1s1x64d", detail = RS:format(80.35, "1s1x64d")},
  [2] = {delta = 1.23, unit = "top-1 pts", source = "ResNeSt 2s1x64d", detail = RS:format(80.64, "2s1x64d")},
  [4] = {delta = 1.49, unit = "top-1 pts", source = "ResNeSt 4s1x64d", detail = RS:format(80.90, "4s1x64d")},
}}

local SE = "SE (Hu et al., TPAMI version, arXiv 1709.01507) Table 10, SE-ResNet-50, top-1 err 23.30 (ResNet-50) -> %.2f at r=%d"
M.se = {reduction = {
  [4] = {delta = 1.05, unit = "top-1 pts", source = "SE Table 10 r=4", detail = SE:format(22.25, 4)},
  [8] = {delta = 1.04, unit = "top-1 pts", source = "SE Table 10 r=8", detail = SE:format(22.26, 8)},
  [16] = {delta = 1.02, unit = "top-1 pts", source = "SE Table 10 r=16", detail = SE:format(22.28, 16)},
  [32] = {delta = 0.58, unit = "top-1 pts", source = "SE Table 10 r=32", detail = SE:format(22.72, 32)},
}}

M.seq = {}

M.similarity_note = "WeightNet's similarity figure is a plot without printed numbers, so this study has no " ..
  "published column; the figure `similarity_figure.png` is the comparison."

return M
