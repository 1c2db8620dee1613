-- nets: trainable networks from the same descriptions as the cost tables, and dcb.train.
--
-- A description is a netcost network (harness/lua/netcost.lua): its rows carry the graph (inputs) and
-- each layer's hyperparameters, so dcb.net instantiates it as a C network (dcb.cnet) whose nodes are
-- the registry's operators. net:cost() is the C network's count and net:analytic_cost() the
-- description's; tests/lua/test_nets.lua checks that they agree.
--
--   dcb.net("resnet_fmnist", {width = 16, conv = "condconv", experts = 4, seed = 1, threads = 2})
--   dcb.net("seq_fmnist", {mixer = "dynconv1d", kernel_size = 7})
--   dcb.net("ResNet-50")                       -- any model of dcb.models() that has no shared parts
--   dcb.net{input = {1, 28, 28}, {"conv", cout = 8, k = 3}, {"bn"}, {"relu"}, {"gap"}, {"linear", cout = 10}}
--   dcb.train{net = net, data = "fashion-mnist", epochs = 3, batch = 64, lr = 0.1, seed = 1, ...}

local netcost = require("netcost")

local M = {}
local dcb_module
local function dcb()
  if not dcb_module then dcb_module = package.loaded.dcb or require("dcb") end
  return dcb_module
end

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- The forward implementation each operator runs in a network (the registry's implementation 0 is
-- the oracle): one name, or a list in order of preference, the first that runs the node's
-- hyperparameters taken (Winograd F(4x4) for the 3x3 stride-1 convs, im2col for the rest: the
-- fastest whole-net inference of the fmnist nets, docs/PERFORMANCE.md). Training runs the backward
-- implementations' own forwards where they have one. A user overrides them with
-- impls = {conv2d = "im2col", ...}.
local CTC = {"combine_then_conv/winograd", "combine_then_conv/im2col"}
M.default_impls = {
  conv2d = {"winograd", "im2col"}, condconv = CTC, dyconv = CTC, weightnet = CTC,
  skconv = {"winograd", "im2col"}, splat = {"winograd", "im2col"}, drconv = "gather",
  localconv = "im2col", lightconv = "band", dynconv1d = "band", mhattention = "gemm", linear = "blas",
}

------------------------------------------------------------------------------------------------
-- Families for 28x28 inputs
------------------------------------------------------------------------------------------------
local FAMILIES, FAMILY_DOC, FAMILY_KEYS = {}, {}, {}

local function gcd(a, b) while b ~= 0 do a, b = b, a % b end return a end

-- The block's 3x3 conv, as o.conv says.
local function conv3x3(net, o, cout, stride, name)
  local kind = o.conv or "conv"
  local cin = net.C
  if kind == "conv" or kind == "conv2d" or kind == "se" then
    return net:conv{cout = cout, k = 3, stride = stride, name = name}
  elseif kind == "condconv" then
    return net:op("condconv", {cout = cout, k = 3, stride = stride, experts = o.experts or 4}, {name = name})
  elseif kind == "dyconv" then
    return net:op("dyconv", {cout = cout, k = 3, stride = stride, kernels = o.kernels or 4,
                             temperature = o.temperature or 1}, {name = name})
  elseif kind == "weightnet" then
    return net:op("weightnet", {cout = cout, k = 3, stride = stride, M = o.M or 2, G = o.G or 2}, {name = name})
  elseif kind == "drconv" then
    return net:op("drconv", {cout = cout, k = 3, stride = stride, regions = o.regions or 4}, {name = name})
  elseif kind == "skconv" then
    local g = o.groups or gcd(gcd(cin, cout), 8)
    return net:op("skconv", {cout = cout, stride = stride, branches = o.branches or 2, groups = g,
                             reduction = o.reduction or 4, L = o.L or 8}, {name = name})
  elseif kind == "splat" then
    return net:op("splat", {cout = cout, k = 3, stride = stride, radix = o.radix or 2,
                            cardinality = o.cardinality or 1}, {name = name})
  end
  fail("resnet_fmnist: conv must be conv, condconv, dyconv, weightnet, drconv, skconv, splat or se, got '%s'",
       tostring(kind))
end

FAMILY_DOC.resnet_fmnist = "ResNet-style net for 28x28x1: stem conv3x3 + BN + ReLU, 3 stages of basic blocks " ..
  "(width, 2*width, 4*width; stride 1, 2, 2), GAP, linear; conv = the blocks' 3x3 conv"
FAMILY_KEYS.resnet_fmnist = {"width", "depth", "conv", "classes", "experts", "kernels", "temperature", "M", "G",
                             "regions", "branches", "groups", "reduction", "L", "radix", "cardinality"}
function FAMILIES.resnet_fmnist(o)
  local w = o.width or 16
  local conv = o.conv or "conv"
  local net = netcost.new("resnet_fmnist", {channels = 1, res = 28})
  net:scope("stem", function() net:conv{cout = w, k = 3, name = "conv"}; net:bn(nil, "bn"); net:relu("relu") end)
  local widths = {w, 2 * w, 4 * w}
  for i = 1, 3 do
    net:stage(i, function()
      for j = 1, (o.depth or 1) do
        net:block(j, function()
          local stride = (j == 1 and i > 1) and 2 or 1
          local cout = widths[i]
          if net.C ~= cout or stride ~= 1 then
            net:branch(function()
              net:conv{cout = cout, k = 1, stride = stride, pad = 0, name = "proj"}; net:bn(nil, "proj_bn")
            end)
          end
          conv3x3(net, o, cout, stride, "conv1"); net:bn(nil, "bn1"); net:relu("relu1")
          conv3x3(net, o, cout, 1, "conv2"); net:bn(nil, "bn2")
          if conv == "se" then net:op("se", {channels = cout, reduction = o.reduction or 4}, {name = "se"}) end
          net:add("add"); net:relu("relu2")
        end)
      end
    end)
  end
  net:scope("head", function() net:gap("gap"); net:linear{cout = o.classes or 10, name = "fc"} end)
  return net
end

FAMILY_DOC.seq_fmnist = "row-sequence classifier: a 28x28 image as 28 steps of 28 features, a linear " ..
  "embedding, `layers` residual blocks of mixer (lightconv | dynconv1d | mhattention | none: the static " ..
  "baseline, no mixing across steps) and a " ..
  "linear+ReLU feed-forward, mean over the steps, linear"
FAMILY_KEYS.seq_fmnist = {"dim", "layers", "mixer", "heads", "kernel_size", "padding", "classes"}
function FAMILIES.seq_fmnist(o)
  local d, mixer = o.dim or 64, o.mixer or "lightconv"
  local net = netcost.new("seq_fmnist", {channels = 1, res = 28})
  net:image_rows("rows")
  net:seq_linear{cout = d, name = "embed"}; net:relu("embed_relu")
  for l = 1, (o.layers or 2) do
    net:block(l, function()
      if mixer ~= "none" then net:block("mix", function()
        local p = {heads = o.heads or 4}
        if mixer == "lightconv" or mixer == "dynconv1d" then
          p.kernel_size = o.kernel_size or 7
          p.padding = o.padding or "same"
        elseif mixer ~= "mhattention" then
          fail("seq_fmnist: mixer must be lightconv, dynconv1d, mhattention or none, got '%s'", tostring(mixer))
        end
        net:seq_op(mixer, p, {name = mixer})
        net:add("add")
      end) end
      net:block("ffn", function()
        net:seq_linear{cout = d, name = "fc"}; net:relu("relu"); net:add("add")
      end)
    end)
  end
  net:seq_gap("gap")
  net:linear{cout = o.classes or 10, name = "fc"}
  return net
end

function M.names()
  local t = {}
  for k in pairs(FAMILIES) do t[#t + 1] = k end
  table.sort(t)
  return t
end
function M.describe(name) return FAMILY_DOC[name] end

------------------------------------------------------------------------------------------------
-- dcb.net{...}: a sequential list of layers, with residual blocks
------------------------------------------------------------------------------------------------
local LAYER_FNS = {}
local function apply_layers(net, list, where)
  for i, l in ipairs(list) do
    if type(l) ~= "table" or type(l[1]) ~= "string" then
      fail("dcb.net: %s layer %d must be a table whose first entry names the layer, e.g. {\"conv\", cout = 16, k = 3}",
           where, i)
    end
    local kind = l[1]
    local a = {}
    for k, v in pairs(l) do if k ~= 1 then a[k] = v end end
    local fn = LAYER_FNS[kind]
    if fn then fn(net, a, where .. " layer " .. i)
    elseif kind == "sigmoid" or kind == "relu" then net[kind](net, a.name)
    else
      local ok = false
      for _, n in ipairs(dcb().ops()) do ok = ok or n == kind end
      if not ok then
        local names = {}
        for k in pairs(LAYER_FNS) do names[#names + 1] = k end
        table.sort(names)
        fail("dcb.net: %s layer %d: unknown layer '%s' (valid: %s, relu, sigmoid, or an operator of dcb.ops())",
             where, i, kind, table.concat(names, ", "))
      end
      local name = a.name; a.name = nil
      if net.seq then net:seq_op(kind, a, {name = name}) else net:op(kind, a, {name = name}) end
    end
  end
end
LAYER_FNS.conv = function(net, a) net:conv(a) end
LAYER_FNS.conv2d = LAYER_FNS.conv
LAYER_FNS.bn = function(net, a) net:bn(nil, a.name) end
LAYER_FNS.batchnorm = LAYER_FNS.bn
LAYER_FNS.silu = function(net, a) net:swish(a.name) end
LAYER_FNS.swish = LAYER_FNS.silu
LAYER_FNS.maxpool = function(net, a) a.kind = "max"; net:pool(a) end
LAYER_FNS.avgpool = function(net, a) a.kind = "avg"; net:pool(a) end
LAYER_FNS.gap = function(net, a) if net.seq then net:seq_gap(a.name) else net:gap(a.name) end end
LAYER_FNS.linear = function(net, a) if net.seq then net:seq_linear(a) else net:linear(a) end end
LAYER_FNS.rows = function(net, a) net:image_rows(a.name) end
LAYER_FNS.residual = function(net, a, where)
  if type(a.body) ~= "table" then fail("dcb.net: %s: residual needs body = {layers...}", where) end
  net.nres = (net.nres or 0) + 1
  net:block(a.name or ("res" .. net.nres), function()
    if a.shortcut then net:branch(function() apply_layers(net, a.shortcut, where .. " shortcut") end) end
    apply_layers(net, a.body, where .. " body")
    net:add("add")
  end)
end

local function from_layers(t)
  local input = t.input or {1, 28, 28}
  local net = netcost.new(t.name or "net", {channels = input[1], h = input[2], w = input[3]})
  apply_layers(net, t, "the")
  return net
end

------------------------------------------------------------------------------------------------
-- Instantiation
------------------------------------------------------------------------------------------------
local Net = {}
Net.__index = Net

local ROW_OPS = {bn = "batchnorm", relu = "relu", swish = "silu", sigmoid = "sigmoid", maxpool = "maxpool",
                 avgpool = "avgpool", gap = "gap", linear = "linear", seq_linear = "linear", seq_gap = "gap"}

local function node_params(r)
  if r.op == "bn" then return {channels = r.in_shape[1]} end
  if r.op == "linear" then return {["in"] = r.hyper.cin, out = r.hyper.cout, bias = r.hyper.bias} end
  if r.op == "seq_gap" then return {layout = "sequence"} end
  if r.hyper then
    local q = {}
    for k, v in pairs(r.hyper) do q[k] = v end
    return q
  end
  return {}
end

local NET_KEYS = {threads = true, seed = true, impls = true, backward = true, name = true}

local function instantiate(desc, o)
  if desc.untrainable then
    fail("dcb.net: %s has %s: it is a cost-only description", desc.name, desc.untrainable)
  end
  local d = dcb()
  local threads = o.threads or dcb().default_threads or 1
  local c = d.cnet(threads)
  local impls = o.impls or {}
  local bwds = o.backward or {}
  for i, r in ipairs(desc.rows) do
    local id
    if r.op == "add" then
      id = c:add_sum(r.name, r.inputs[1], r.inputs[2])
    elseif r.op == "rows" then
      id = c:add_rows(r.name, r.inputs[1])
    else
      local op = ROW_OPS[r.op] or r.op
      if r.op == "scale" or r.op == "concat" then fail("dcb.net: %s: layer %s is cost-only", desc.name, r.op) end
      -- an implementation, or a list in order of preference: the first that runs this node's
      -- hyperparameters (dcb.net raises when none does; net:nodes() says which each node got)
      local want = impls[op] or M.default_impls[op] or "naive"
      if type(want) ~= "table" then want = {want} end
      for k, impl in ipairs(want) do
        local ok, res = pcall(c.add, c, r.name, op, impl, bwds[op], node_params(r), r.inputs[1])
        if ok then id = res break end
        if k == #want or not tostring(res):find("unsupported", 1, true) then error(res, 0) end
      end
    end
    assert(id == i - 1, "nets: node ids follow the rows")
  end
  local self = setmetatable({c = c, desc = desc, name = desc.name, threads = threads,
                             input = {desc.rows[1].in_shape[1], desc.rows[1].in_shape[2], desc.rows[1].in_shape[3]}},
                            Net)
  if desc.rows[1].op == "rows" then self.input = desc.rows[1].in_shape end
  c:init(o.seed or 1)
  return self
end

function M.net(a, b)
  local desc, o
  if type(a) == "string" then
    o = b or {}
    if type(o) ~= "table" then fail("dcb.net: the options must be a table, got %s", type(o)) end
    if FAMILIES[a] then
      local valid = {}
      for _, k in ipairs(FAMILY_KEYS[a]) do valid[k] = true end
      for k in pairs(o) do
        if not valid[k] and not NET_KEYS[k] then
          local names = {}
          for _, n in ipairs(FAMILY_KEYS[a]) do names[#names + 1] = n end
          for n in pairs(NET_KEYS) do names[#names + 1] = n end
          table.sort(names)
          fail("dcb.net: %s has no option '%s' (valid: %s)", a, tostring(k), table.concat(names, ", "))
        end
      end
      desc = FAMILIES[a](o)
    else
      local ok, m = pcall(require("models").model, a)
      if not ok then
        fail("dcb.net: unknown network '%s' (families: %s; or a model of dcb.models())", a, table.concat(M.names(), ", "))
      end
      desc = m
    end
  elseif type(a) == "table" then
    o = a
    desc = from_layers(a)
  else
    fail("dcb.net: give a family name and options, or a table of layers, got %s", type(a))
  end
  return instantiate(desc, o)
end

-- The input shape for N images.
function Net:input_shape(N) return {N or 1, self.input[1], self.input[2], self.input[3]} end
function Net:forward(x) return self.c:forward(x, false) end
function Net:forward_train(x) return self.c:forward(x, true) end
function Net:backward(dy) self.c:backward(dy); return self end
-- The C network's count, for N images (default 1), and the description's (per image).
function Net:cost(N) return self.c:cost(self:input_shape(N)) end
function Net:analytic_cost() return self.desc:cost() end
function Net:layers()
  local rows, nodes = self.desc:layers(), self.c:nodes()
  for i, r in ipairs(rows) do r.impl = nodes[i].impl; r.backward = nodes[i].backward end
  return rows
end
function Net:nodes() return self.c:nodes() end
function Net:params() return self.c:params() end
function Net:param(i) return self.c:param(i) end
function Net:grad(i) return self.c:grad(i) end
function Net:save(dir) self.c:save(dir); return self end
function Net:load(dir) self.c:load(dir); return self end
function Net:init(seed) self.c:init(seed or 1); return self end
function Net:kernels(x) return self.c:kernels(x) end
-- Whole-network inference timing: {median, min, max, cv, repetitions, images_per_s}.
function Net:time(x, opts) return self.c:time(x, opts) end
-- Seconds per node in forwards and backwards since the last reset: {{name, op, forward_s, backward_s,
-- forwards, backwards}, ...}; reset = true starts the count again.
function Net:profile(reset) return self.c:profile(reset) end
function Net:train(t)
  local u = {}
  for k, v in pairs(t or {}) do u[k] = v end
  u.net = self
  return M.train(u)
end

------------------------------------------------------------------------------------------------
-- dcb.train
------------------------------------------------------------------------------------------------
local TRAIN_KEYS = {"net", "data", "test_data", "subset", "test_subset", "normalize", "epochs", "batch", "lr",
                    "optimizer", "momentum", "weight_decay", "nesterov", "no_decay_bn_bias", "beta1", "beta2",
                    "eps", "schedule", "pct_start", "div_factor", "final_div_factor", "step_epochs", "gamma",
                    "label_smoothing", "flip", "crop_pad", "temperature", "seed", "threads", "checkpoint",
                    "checkpoint_every", "max_steps", "eval_batch", "progress", "results", "on_step"}

local function fmt_time(s)
  if not s or s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  return string.format("%d:%02d", s // 60, s % 60)
end

local function progress_bar(p, is_tty)
  local width = 24
  local frac = p.batches > 0 and p.batch / p.batches or 1
  local fill = math.floor(frac * width + 0.5)
  local line = string.format("epoch %d/%d [%s%s] %d/%d loss %.4f acc %.2f%% %.0f img/s ETA %s", p.epoch, p.epochs,
                             string.rep("#", fill), string.rep(".", width - fill), p.batch, p.batches, p.loss,
                             100 * p.acc, p.images_per_s, fmt_time(p.eta_s))
  if is_tty then io.stderr:write("\r", line) else io.stderr:write(line, "\n") end
end

local function load_data(spec, split, seed)
  local d = dcb()
  if type(spec) == "userdata" then return spec end
  if type(spec) == "string" then return d.dataset(spec, split) end
  if type(spec) == "table" then
    local im = split == "train" and (spec.images or spec.train_images) or spec.test_images
    local lb = split == "train" and (spec.labels or spec.train_labels) or spec.test_labels
    if not im then return nil end
    return d.dataset{images = im, labels = lb}
  end
  fail("dcb.train: data must be a dataset name (\"fashion-mnist\"), a table {images=, labels=, test_images=, " ..
       "test_labels=} or a dataset, got %s", type(spec))
end

local function write_curve(dir, r, name)
  local d = dcb()
  os.execute("mkdir -p '" .. dir .. "'")
  local csv = dir .. "/curve.csv"
  local f = assert(io.open(csv .. ".tmp", "w"))
  f:write("epoch,train_loss,train_acc,test_loss,test_acc,seconds,images_per_s,grad_norm,lr\n")
  for _, e in ipairs(r.epochs) do
    f:write(string.format("%d,%.6g,%.6g,%.6g,%.6g,%.4g,%.4g,%.4g,%.4g\n", e.epoch, e.train_loss, e.train_acc,
                          e.test_loss or 0 / 0, e.test_acc or 0 / 0, e.seconds, e.images_per_s, e.grad_norm, e.lr))
  end
  f:close()
  os.rename(csv .. ".tmp", csv)
  local fmt = d.format or "png"
  local out = dir .. "/curve." .. fmt
  local term = fmt == "pdf" and "pdfcairo size 8in,3in" or fmt == "svg" and "svg size 900,340" or
               "pngcairo size 900,340"
  local gp = io.popen("gnuplot 2>/dev/null", "w")
  if gp then
    gp:write(string.format([[
set terminal %s noenhanced
set output '%s'
set datafile separator ','
set xtics 1
set multiplot layout 1,2 title '%s'
set xlabel 'epoch'; set ylabel 'loss'; set grid
plot '%s' using 1:2 with linespoints title 'train', '' using 1:4 with linespoints title 'test'
set ylabel 'accuracy'; set yrange [*:1]
plot '%s' using 1:3 with linespoints title 'train', '' using 1:5 with linespoints title 'test'
unset multiplot
]], term, out, name, csv, csv))
    gp:close()
  end
  return csv, out
end

function M.train(t)
  if type(t) ~= "table" then fail("dcb.train: expects a table {net=, data=, epochs=, ...}") end
  local valid = {}
  for _, k in ipairs(TRAIN_KEYS) do valid[k] = true end
  for k in pairs(t) do
    if not valid[k] then fail("dcb.train: unknown option '%s' (valid: %s)", tostring(k), table.concat(TRAIN_KEYS, ", ")) end
  end
  local net = t.net
  if getmetatable(net) ~= Net then fail("dcb.train: net must be a network from dcb.net, got %s", type(net)) end
  local seed = t.seed or 1
  local data = t.data or "fashion-mnist"
  local train = load_data(data, "train", seed)
  local test = t.test_data and load_data(t.test_data, "test", seed) or load_data(data, "test", seed)
  -- normalised with the whole training set's statistics (before any subset), as the PyTorch peer does
  local mean, std
  if t.normalize ~= false then
    mean, std = train:stats()
    if type(t.normalize) == "table" then mean, std = t.normalize.mean, t.normalize.std end
  end
  if t.subset then train = train:subset(t.subset, seed) end
  if t.test_subset and test then test = test:subset(t.test_subset, seed + 1) end
  if t.normalize ~= false then
    train:normalize(mean, std)
    if test then test:normalize(mean, std) end
  end
  local cfg = {}
  for _, k in ipairs({"epochs", "batch", "lr", "optimizer", "momentum", "weight_decay", "nesterov",
                      "no_decay_bn_bias", "beta1", "beta2", "eps", "schedule", "pct_start", "div_factor",
                      "final_div_factor", "step_epochs", "gamma", "label_smoothing", "flip", "crop_pad",
                      "checkpoint", "checkpoint_every", "max_steps", "eval_batch"}) do
    cfg[k] = t[k]
  end
  cfg.seed = seed
  cfg.threads = t.threads or net.threads
  if cfg.threads ~= net.threads then
    fail("dcb.train: threads=%d, but the net was made with threads=%d (dcb.net{..., threads=})", cfg.threads, net.threads)
  end
  if t.temperature then
    local tt = t.temperature
    if type(tt) ~= "table" then fail("dcb.train: temperature must be {start, stop, epochs = e}") end
    cfg.tau_start, cfg.tau_end, cfg.tau_epochs = tt[1] or tt.start, tt[2] or tt.stop, tt.epochs or 1
  end
  local is_tty = os.getenv("TERM") and os.getenv("TERM") ~= "dumb" and os.execute("test -t 2") == true
  local show = t.progress ~= false
  local last = -1
  local on_step = t.on_step
  local function progress(p)
    if show then
      if p.epoch_done then
        if is_tty then io.stderr:write("\n") end
        local e = p.epoch_done
        io.stderr:write(string.format("epoch %d: train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%, %.1f s, %.0f img/s\n",
                                      e.epoch, e.train_loss, 100 * e.train_acc, e.test_loss or 0 / 0,
                                      100 * (e.test_acc or 0 / 0), e.seconds, e.images_per_s))
      else
        local tick = is_tty and p.batch or (p.batch * 10 // p.batches)
        if tick ~= last then progress_bar(p, is_tty); last = tick end
      end
    end
    if on_step then return on_step(p) end
    return false
  end
  local r = dcb().train_raw(net.c, train, test, cfg, progress)
  local dir = t.results or t.checkpoint
  if dir and #r.epochs > 0 then r.curve_csv, r.curve_figure = write_curve(dir, r, net.name) end
  r.seed = seed
  return r
end

return M
