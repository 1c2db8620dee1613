-- Training and inference throughput of dcbench's networks against PyTorch's, side by side.
--
--   build/dcbench sweeps/bench/train.lua [rounds] [threads...]      (default: 2 rounds, threads 1 2)
--
-- For every net (resnet_fmnist width 16 with conv, condconv E=4, dyconv K=4), every thread count and
-- every round, dcbench and scripts/peers/torch_train.py --bench are measured one after the other
-- (interleaved, so both see the same machine): training images/s (forward, backward, SGD step on
-- batches of 64 real Fashion-MNIST images; the median of `reps` timings of `steps` steps after a
-- warm-up) and inference images/s (net:time, batch 64). Rows go to <results>/bench-train/train.csv;
-- the table printed at the end gives the medians over the rounds and the ratio dcbench / PyTorch.
-- Without /usr/bin/python3 and torch, dcbench's side is measured alone.
local dcb = require("dcb")

local rounds = tonumber(arg[1] or "2")
local threads = {}
for i = 2, #arg do threads[#threads + 1] = tonumber(arg[i]) end
if #threads == 0 then threads = {1, 2} end
local quick = dcb.quick
local steps, reps, warm = quick and 4 or 12, quick and 2 or 5, 3
local NETS = {{conv = "conv"}, {conv = "condconv", experts = 4}, {conv = "dyconv", kernels = 4}}

local out_dir = dcb.results .. "/bench-train"
os.execute("mkdir -p '" .. out_dir .. "'")
local csv_path = out_dir .. "/train.csv"
local csv = assert(io.open(csv_path, "w"))
csv:write("round,net,conv,threads,impl,train_img_s,train_min,train_max,infer_img_s,infer_min,infer_max\n")

local median = require("study").median

local data = dcb.dataset("fashion-mnist", "train")
local mean, std = data:stats()
data:normalize(mean, std)
local x = data:batch(1, 64)

local function ours(spec, th)
  local o = {width = 16, threads = th, seed = 1}
  for k, v in pairs(spec) do o[k] = v end
  local net = dcb.net("resnet_fmnist", o)
  -- training: dcb.train on the first 64 * (warm + steps * reps) images, timing each block of steps
  local times, t0, done = {}, nil, 0
  dcb.train{net = net, data = data, test_data = data, normalize = false, subset = 64 * (warm + steps * reps),
            test_subset = 64, batch = 64, epochs = 1, lr = 0.05, seed = 1, threads = th, progress = false,
            max_steps = warm + steps * reps,
            on_step = function(p)
              if p.step == warm then t0 = dcb.now() end
              if p.step > warm and (p.step - warm) % steps == 0 then
                local t1 = dcb.now()
                times[#times + 1] = 64 * steps / (t1 - t0)
                t0 = t1
              end
              return false
            end}
  local inf = net:time(x, {repetitions = reps})
  local mn, mx = math.huge, 0
  for _, v in ipairs(times) do mn, mx = math.min(mn, v), math.max(mx, v) end
  return {train = median(times), train_min = mn, train_max = mx, infer = inf.images_per_s,
          infer_min = 64 / inf.max, infer_max = 64 / inf.min}
end

local have_torch = os.execute("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == true
local function theirs(spec, th)
  if not have_torch then return nil end
  local cmd = string.format("/usr/bin/python3 %s/scripts/peers/torch_train.py --net resnet_fmnist --conv %s " ..
                            "--bench --threads-list %d --bench-steps %d --repeats %d 2>&1", dcb.home, spec.conv, th,
                            steps, reps)
  local p = io.popen(cmd)
  local text = p:read("a")
  p:close()
  local tr, tmin, tmax, inf, imin, imax = text:match(
    "train%s+([%d.]+) img/s %(min ([%d.]+), max ([%d.]+)%)%s+inference%s+([%d.]+) img/s %(min ([%d.]+), max ([%d.]+)%)")
  if not tr then
    io.stderr:write("torch_train.py gave no numbers:\n", text, "\n")
    return nil
  end
  return {train = tonumber(tr), train_min = tonumber(tmin), train_max = tonumber(tmax), infer = tonumber(inf),
          infer_min = tonumber(imin), infer_max = tonumber(imax)}
end

local rows = {}
local function record(round, spec, th, impl, r)
  if not r then return end
  csv:write(string.format("%d,resnet_fmnist,%s,%d,%s,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\n", round, spec.conv, th, impl,
                          r.train, r.train_min, r.train_max, r.infer, r.infer_min, r.infer_max))
  csv:flush()
  local key = spec.conv .. "/" .. th .. "/" .. impl
  rows[key] = rows[key] or {train = {}, infer = {}}
  table.insert(rows[key].train, r.train)
  table.insert(rows[key].infer, r.infer)
end

for round = 1, rounds do
  for _, spec in ipairs(NETS) do
    for _, th in ipairs(threads) do
      -- alternate which side goes first, so that neither always meets the warmer machine
      local a, b = ours, theirs
      if round % 2 == 0 then a, b = theirs, ours end
      local ra, rb = a(spec, th), b(spec, th)
      if round % 2 == 0 then ra, rb = rb, ra end
      record(round, spec, th, "dcbench", ra)
      record(round, spec, th, "torch", rb)
      io.stderr:write(string.format("round %d %s threads %d: dcbench %.0f / %.0f img/s, torch %s\n", round, spec.conv,
                                    th, ra.train, ra.infer,
                                    rb and string.format("%.0f / %.0f", rb.train, rb.infer) or "n/a"))
    end
  end
end
csv:close()

print(string.format("%-9s %-7s | %-21s | %-21s | %-13s", "net", "threads", "train img/s (ours, pt)", "infer img/s (ours, pt)",
                    "ratio tr / inf"))
for _, spec in ipairs(NETS) do
  for _, th in ipairs(threads) do
    local o, t = rows[spec.conv .. "/" .. th .. "/dcbench"], rows[spec.conv .. "/" .. th .. "/torch"]
    local ot, oi = median(o.train), median(o.infer)
    local tt, ti = t and median(t.train) or 0 / 0, t and median(t.infer) or 0 / 0
    print(string.format("%-9s %-7d | %9.0f %9.0f   | %9.0f %9.0f   | %5.2fx %5.2fx", spec.conv, th, ot, tt, oi, ti,
                        ot / tt, oi / ti))
  end
end
print("rows: " .. csv_path)
