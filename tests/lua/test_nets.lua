-- Tests of trainable networks (harness/lua/nets.lua, harness/lua_net.c): instantiation from the cost
-- descriptions, costs against the analytic counter, forward/backward shapes, op:backward, errors,
-- and a short training run whose loss must fall and whose accuracy must beat chance by far.
-- Run: build/dcbench tests/lua/test_nets.lua   (DCB_TEST_QUICK=1: shorter training runs)
local dcb = require("dcb")
local quick = os.getenv("DCB_TEST_QUICK") and os.getenv("DCB_TEST_QUICK") ~= "0"

package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local T = require "testlib"
local test, eq, near, contains, raises = T.test, T.eq, T.near, T.contains, T.raises

local have_data = io.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb")
if have_data then have_data:close() end

local COLS = {"macs", "flops", "params", "acts"}
local function same_cost(net, what)
  local c, a = net:cost(1), net:analytic_cost()
  for _, k in ipairs(COLS) do eq(c[k], a[k], what .. " " .. k) end
  return c
end

-- Every 3x3 operator of the ResNet family, and every mixer of the sequence classifier: the C
-- network's count (the sum of its nodes' dcb_op_cost) equals the description's.
local CONVS = {"conv", "condconv", "dyconv", "weightnet", "drconv", "skconv", "splat", "se"}
for _, conv in ipairs(CONVS) do
  test("resnet_fmnist conv=" .. conv .. ": cost equals the analytic counter, forward and backward run", function()
    local net = dcb.net("resnet_fmnist", {width = 8, conv = conv, seed = 3})
    local c = same_cost(net, conv)
    assert(c.macs > 0 and c.params > 0)
    local x = dcb.randn({3, 1, 28, 28}, 1)
    local y = net:forward(x)
    eq(#y, 3 * 10, conv .. " output elements")
    local yt = net:forward_train(x)
    net:backward(dcb.randn({3, 10}, 2))
    local nonzero = 0
    for i, p in ipairs(net:params()) do
      if p.kind ~= "buffer" then
        -- rel_err against zeros is max |g| (its denominator is at least 1)
        if dcb.rel_err(net:grad(i), dcb.zeros(p.shape)) > 0 then nonzero = nonzero + 1 end
      end
    end
    assert(nonzero > #net:params() // 2, conv .. ": most parameters get a gradient")
    assert(#yt == 30)
  end)
end
for _, mixer in ipairs({"lightconv", "dynconv1d", "mhattention"}) do
  test("seq_fmnist mixer=" .. mixer .. ": cost equals the analytic counter, forward runs", function()
    local net = dcb.net("seq_fmnist", {mixer = mixer, dim = 16, layers = 1})
    same_cost(net, mixer)
    local y = net:forward(dcb.randn({2, 1, 28, 28}, 1))
    eq(#y, 20, mixer .. " output elements")
  end)
end

for _, m in ipairs({"ResNet-50", "RegNetX-200MF"}) do
  test("a model of the cost tables instantiates with the same count (" .. m .. ")", function()
    same_cost(dcb.net(m), m)
  end)
end

test("the layer-list form: residual blocks with a shortcut, pools, costs", function()
  local net = dcb.net{input = {1, 12, 12}, seed = 2,
    {"conv", cout = 8, k = 3}, {"bn"}, {"relu"},
    {"residual", body = {{"conv", cout = 8, k = 3}, {"bn"}, {"relu"}, {"conv", cout = 8, k = 3}, {"bn"}}},
    {"relu"},
    {"residual", shortcut = {{"conv", cout = 16, k = 1, stride = 2, pad = 0}},
                 body = {{"conv", cout = 16, k = 3, stride = 2}, {"silu"}}},
    {"maxpool", k = 2}, {"avgpool", k = 3, stride = 1, pad = 1}, {"gap"}, {"linear", cout = 5}}
  same_cost(net, "layers")
  local y = net:forward(dcb.randn({2, 1, 12, 12}, 1))
  eq(#y, 10, "output elements")
end)

test("cost-only descriptions are refused with the reason", function()
  raises(function() dcb.net("ShuffleNetV2-1.0x") end, "cost-only", "ShuffleNetV2")
end)

test("errors name the bad layer, option, optimiser and dataset", function()
  raises(function() dcb.net{{"convv", cout = 3}} end, "unknown layer 'convv'", "layer")
  raises(function() dcb.net("resnet_fmnist", {widht = 8}) end, "no option 'widht'", "net option")
  raises(function() dcb.net("nonet") end, "unknown network 'nonet'", "net name")
  raises(function() dcb.net("resnet_fmnist", {conv = "nope"}) end, "conv must be", "conv kind")
  local net = dcb.net("resnet_fmnist", {width = 4})
  raises(function() dcb.train{net = net, data = "nodata", epochs = 1} end, "nodata", "dataset")
  raises(function() dcb.train{net = net, data = {images = "/nonexistent/x.gz", labels = "/nonexistent/y.gz"}} end,
         "/nonexistent/x.gz", "missing file")
  raises(function() dcb.train{net = net, optimizer = "sgdd", subset = 64, test_subset = 64, epochs = 1,
                              progress = false} end, "unknown optimizer 'sgdd'", "optimizer")
  raises(function() dcb.train{net = net, schedule = "linear", subset = 64, epochs = 1, progress = false} end,
         "unknown schedule 'linear'", "schedule")
  raises(function() dcb.train{net = net, epochz = 1} end, "unknown option 'epochz'", "train option")
  if have_data then
    local five = dcb.net("resnet_fmnist", {width = 4, classes = 5})
    raises(function() dcb.train{net = five, subset = 64, test_subset = 64, epochs = 1, progress = false} end,
           "gives 5 scores per image", "classes")
  end
  raises(function() net:backward(dcb.randn({2, 10}, 1)) end, "without a training forward", "backward first")
  net:forward_train(dcb.randn({2, 1, 28, 28}, 1))
  raises(function() net:backward(dcb.randn({3, 10}, 1)) end, "dy has shape (3, 10)", "dy shape")
end)

test("op:backward gives dx and the gradient of every named weight", function()
  local op = dcb.op("condconv", {cin = 4, cout = 6, k = 3, pad = 1, experts = 3, bias = true})
  op:init_weights(1)
  local x = dcb.randn({2, 4, 5, 5}, 1)
  local dx, dw = op:backward(x, dcb.randn({2, 6, 5, 5}, 2))
  eq(dx:shape()[2], 4, "dx channels")
  for _, w in ipairs({"weight", "bias", "route_w", "route_b"}) do assert(dw[w], "dw." .. w) end
  eq(dw.route_w:shape()[1], 3, "route_w gradient rows")
  raises(function() op:backward(x, dcb.randn({2, 6, 4, 5}, 2)) end, "dy has shape", "op dy shape")
  assert(op:backward_impl(), "a backward implementation is chosen")
  op:set_backward("naive")
  eq(op:backward_impl(), "naive", "set_backward")
  raises(function() op:set_backward("bogus") end, "unknown backward implementation 'bogus'", "bwd name")
end)

test("net:save and op:load_weights: a trained node's weights load into an inference op", function()
  local net = dcb.net("resnet_fmnist", {width = 4, conv = "condconv", experts = 2, seed = 5})
  local dir = os.tmpname()
  os.remove(dir)
  net:save(dir)
  local x = dcb.randn({2, 4, 28, 28}, 3)
  local op = dcb.op("condconv", {cin = 4, cout = 4, k = 3, pad = 1, experts = 2, impl = "combine_then_conv/im2col"})
  op:load_weights(dir .. "/s1.b1.conv1")
  local k = op:kernels(x)
  eq(k:shape()[1], 2, "per-sample kernels")
  local net2 = dcb.net("resnet_fmnist", {width = 4, conv = "condconv", experts = 2, seed = 6})
  net2:load(dir)
  local xi = dcb.randn({2, 1, 28, 28}, 4)
  eq(dcb.rel_err(net:forward(xi), net2:forward(xi)), 0, "loaded net computes the same")
  local ks = net:kernels(xi)
  assert(ks["s1.b1.conv1"] and ks["s3.b1.conv2"], "net:kernels names the generating nodes")
  local sim = dcb.similarity(ks["s1.b1.conv1"])
  eq(sim.pairs, 1, "one pair of per-sample kernels")
  assert(sim.mean >= -1 and sim.mean <= 1 and sim.per_channel.pairs == 4, "similarity of the generated kernels")
  os.execute("rm -rf '" .. dir .. "'")
end)

test("dyconv temperature annealing, AdamW, step schedule, label smoothing, augmentation run", function()
  if not have_data then return end
  local net = dcb.net("resnet_fmnist", {width = 4, conv = "dyconv", kernels = 2, seed = 2})
  local lrs, gn = {}, 0
  local r = dcb.train{net = net, subset = 256, test_subset = 128, batch = 32, epochs = 2, optimizer = "adamw",
                      lr = 0.01, weight_decay = 0.01, schedule = "step", step_epochs = 1, gamma = 0.5,
                      label_smoothing = 0.1, flip = true, crop_pad = 2, temperature = {30, 1, epochs = 1},
                      progress = false, no_decay_bn_bias = true,
                      on_step = function(p) lrs[#lrs + 1] = p.lr; gn = gn + p.grad_norm end}
  eq(r.steps, 16, "steps")
  eq(lrs[1], 0.01, "lr of epoch 1")
  eq(lrs[16], 0.005, "lr of epoch 2 (step schedule)")
  assert(gn > 0 and r.test_loss == r.test_loss, "gradient norms and a finite loss")
end)

test("onecycle follows PyTorch's OneCycleLR", function()
  if not have_data then return end
  local net = dcb.net("resnet_fmnist", {width = 4, seed = 2})
  local lrs = {}
  dcb.train{net = net, subset = 320, test_subset = 64, batch = 32, epochs = 1, lr = 0.1, progress = false,
            on_step = function(p) lrs[#lrs + 1] = p.lr end}
  -- total 10 steps, pct 0.3: up to step 2 (= 0.3*10 - 1), from 0.1/25 to 0.1, then down to 0.1/25/1e4
  assert(math.abs(lrs[1] - 0.004) < 1e-12, "initial lr " .. lrs[1])
  assert(math.abs(lrs[3] - 0.1) < 1e-12, "peak lr " .. lrs[3])
  assert(math.abs(lrs[10] - 4e-7) < 1e-15, "final lr " .. lrs[10])
end)

-- 300 steps (the issue's test) on a 2000-image subset; DCB_TEST_QUICK (the sanitizer run) trains 60.
for _, conv in ipairs({"conv", "condconv"}) do
  test("training " .. conv .. ": the loss falls and the test accuracy is far above chance", function()
    if not have_data then
      print("SKIP: Fashion-MNIST is not installed (make deps installs dataset-fashion-mnist)")
      return
    end
    local steps, subset = quick and 60 or 300, quick and 1200 or 2000  -- batch 40: 30 or 50 steps an epoch
    local net = dcb.net("resnet_fmnist", {width = quick and 4 or 8, conv = conv, experts = 2, seed = 1, threads = 2})
    local first, last = nil, {}
    local r = dcb.train{net = net, data = "fashion-mnist", subset = subset, test_subset = 1000, batch = 40,
                        epochs = steps * 40 // subset, lr = 0.05, seed = 1,
                        threads = 2, progress = false, schedule = "cosine",
                        on_step = function(p)
                          if p.step <= 10 then first = (first or 0) + p.loss / 10 end
                          last[#last + 1] = p.loss
                          return false
                        end}
    eq(r.steps, steps, "steps")
    local tail = 0
    for i = #last - 9, #last do tail = tail + last[i] / 10 end
    assert(tail < 0.7 * first, string.format("%s: loss %.3f at the start, %.3f at the end", conv, first, tail))
    local acc = r.epochs[#r.epochs].test_acc
    local bound = quick and 0.4 or 0.65
    assert(acc > bound, string.format("%s: test accuracy %.3f <= %.2f", conv, acc, bound))
    print(string.format("  %s: %d steps, loss %.3f -> %.3f, test accuracy %.3f", conv, steps, first, tail, acc))
  end)
end

T.finish("test_nets")
