-- ablib.lua — what the ablation studies share (require "ablations.ablib"): the training budgets,
-- a width search for same-params baselines, and dcb.study with those defaults.
local dcb = require "dcb"
local M = {}

local function pick(full, quick) if dcb.quick then return quick else return full end end
M.pick = pick

-- Image studies: the width-16 resnet_fmnist, SGD + Nesterov, one-cycle, as docs/TRAINING.md.
-- Full: 2 epochs on 4000 training images, tested on 5000 (a binomial std of about 0.5 points at 85%).
-- --quick: 1 epoch on 2048, tested on 1000.
M.IMAGE_TRAIN = pick({subset = 4000, test_subset = 5000, epochs = 2, batch = 64, lr = 0.1, optimizer = "sgd",
                      schedule = "onecycle"},
                     {subset = 2048, test_subset = 1000, epochs = 1, batch = 64, lr = 0.1, optimizer = "sgd",
                      schedule = "onecycle"})
-- Row-sequence studies: cheap per image, so the whole training set, AdamW.
M.SEQ_TRAIN = pick({subset = 30000, test_subset = 5000, epochs = 2, batch = 64, lr = 2e-3, optimizer = "adamw",
                    weight_decay = 0.01, schedule = "onecycle"},
                   {subset = 4096, test_subset = 1000, epochs = 1, batch = 64, lr = 2e-3, optimizer = "adamw",
                    weight_decay = 0.01, schedule = "onecycle"})
M.SEEDS = {1, 2, 3}
M.WIDTH = 16

-- The value of key (an integer) in [lo, hi] whose network has the parameter count nearest to
-- target (family, options without key).
function M.match_params(family, opts, key, target, lo, hi)
  local best, bestd
  for v = lo, hi do
    local o = {}
    for k, x in pairs(opts) do o[k] = x end
    o[key] = v
    local ok, net = pcall(dcb.net, family, o)
    if ok then
      local d = math.abs(net:cost(1).params - target)
      if not bestd or d < bestd then best, bestd = v, d end
    end
  end
  return best
end

function M.params_of(family, opts) return dcb.net(family, opts):cost(1).params end

-- dcb.study with the shared defaults (base width, seeds, training budget).
function M.study(def)
  def.base = def.base or {width = M.WIDTH}
  def.seeds = def.seeds or M.SEEDS
  def.train = def.train or (def.family == "seq_fmnist" and M.SEQ_TRAIN or M.IMAGE_TRAIN)
  return dcb.study(def)
end

return M
