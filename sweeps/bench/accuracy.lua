-- Test accuracy after 3 epochs, dcbench against PyTorch, over seeds: the same net, data order,
-- normalisation and optimiser settings on both sides (docs/TRAINING.md).
--
--   build/dcbench sweeps/bench/accuracy.lua [conv] [seeds...]     (default: conv, seeds 1 2 3)
--
-- Each seed trains once in dcbench (1 thread) while scripts/peers/torch_train.py trains the same seed
-- (1 thread) beside it, so the two share the 2-core machine evenly. Rows go to
-- <results>/bench-accuracy/<conv>.csv; the table gives each side's mean, std and 95% interval (t
-- distribution over the seeds) and the difference of the means.
local dcb = require("dcb")

local conv = arg[1] or "conv"
local seeds = {}
for i = 2, #arg do seeds[#seeds + 1] = tonumber(arg[i]) end
if #seeds == 0 then seeds = {1, 2, 3} end
local epochs = dcb.quick and 1 or 3
local extra = {condconv = {experts = 4}, dyconv = {kernels = 4}}

local out_dir = dcb.results .. "/bench-accuracy"
os.execute("mkdir -p '" .. out_dir .. "'")
local csv_path = out_dir .. "/" .. conv .. ".csv"
local csv = assert(io.open(csv_path, "w"))
csv:write("impl,conv,seed,epochs,test_acc,test_loss,train_seconds,images_per_s\n")

local have_torch = os.execute("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == true
local T_975 = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262}   -- t(0.975, n-1)

local function stats(v)
  local n, s = #v, 0
  for _, x in ipairs(v) do s = s + x end
  local m = s / n
  local q = 0
  for _, x in ipairs(v) do q = q + (x - m) ^ 2 end
  local sd = n > 1 and math.sqrt(q / (n - 1)) or 0 / 0
  local half = n > 1 and (T_975[n - 1] or 1.96) * sd / math.sqrt(n) or 0 / 0
  return m, sd, half
end

local ours, theirs = {}, {}
for _, seed in ipairs(seeds) do
  local json = string.format("%s/torch_%s_%d.json", out_dir, conv, seed)
  local peer
  if have_torch then
    peer = io.popen(string.format("/usr/bin/python3 %s/scripts/peers/torch_train.py --net resnet_fmnist --conv %s " ..
                                  "--epochs %d --batch 64 --lr 0.1 --schedule onecycle --seed %d --threads 1 " ..
                                  "--json '%s' 2>&1", dcb.home, conv, epochs, seed, json))
  end
  local o = {width = 16, conv = conv, seed = seed, threads = 1}
  for k, v in pairs(extra[conv] or {}) do o[k] = v end
  local net = dcb.net("resnet_fmnist", o)
  local t = {net = net, data = "fashion-mnist", epochs = epochs, batch = 64, lr = 0.1, schedule = "onecycle",
             seed = seed, threads = 1, progress = false}
  if conv == "dyconv" then t.temperature = {30, 1, epochs = 1} end
  local r = dcb.train(t)
  local secs, ips = 0, 0
  for _, e in ipairs(r.epochs) do secs = secs + e.seconds end
  ips = 60000 * epochs / secs
  ours[#ours + 1] = r.test_acc
  csv:write(string.format("dcbench,%s,%d,%d,%.4f,%.4f,%.1f,%.0f\n", conv, seed, epochs, r.test_acc, r.test_loss, secs,
                          ips))
  io.stderr:write(string.format("seed %d: dcbench %.2f%%", seed, 100 * r.test_acc))
  if peer then
    local text = peer:read("a")
    peer:close()
    local loss_s, acc_s = text:match("final test loss ([%d.]+) acc%s+([%d.]+)%%")
    local tsecs, tips = text:match("%(([%d.]+) s of training, ([%d.]+) img/s")
    if acc_s then
      local loss, acc = tonumber(loss_s), tonumber(acc_s) / 100
      theirs[#theirs + 1] = acc
      csv:write(string.format("torch,%s,%d,%d,%.4f,%.4f,%s,%s\n", conv, seed, epochs, acc, loss, tsecs or "",
                              tips or ""))
      io.stderr:write(string.format(", torch %.2f%%", 100 * acc))
    else
      io.stderr:write("\ntorch_train.py gave no result:\n" .. text)
    end
  end
  io.stderr:write("\n")
  csv:flush()
end
csv:close()

local m, sd, h = stats(ours)
print(string.format("resnet_fmnist width 16, conv=%s, %d epochs, seeds %s", conv, epochs, table.concat(seeds, " ")))
print(string.format("dcbench  test accuracy %.2f%% (std %.2f, 95%% interval +-%.2f)", 100 * m, 100 * sd, 100 * h))
if #theirs > 0 then
  local tm, tsd, th = stats(theirs)
  print(string.format("pytorch  test accuracy %.2f%% (std %.2f, 95%% interval +-%.2f)", 100 * tm, 100 * tsd, 100 * th))
  print(string.format("difference of the means: %+.2f points", 100 * (m - tm)))
end
print("rows: " .. csv_path)
