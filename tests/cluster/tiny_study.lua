-- tiny_study.lua — a training study small enough for a test (a few seconds per shard): a width-4
-- resnet_fmnist, static against CondConv E=2, 2 seeds, 2 steps' worth of training images.
local dcb = require "dcb"
return dcb.study{
  name = "tiny", title = "tiny study (test)",
  base = {width = 4},
  variants = {{label = "static", conv = "conv", baseline = true},
              {label = "E=2", conv = "condconv", experts = 2, x = 2, paper = {delta = 1, unit = "top-1 pts", source = "test"}}},
  seeds = {1, 2}, x = "experts",
  train = {subset = 128, test_subset = 200, epochs = 1, batch = 64},
  time_repetitions = 2, time_min = 0.001, probe_images = 8,
}
