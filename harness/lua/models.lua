-- Network descriptions for the cost model: every model of issue 5 and the RegNet generator.
-- The se operator's cost includes its pooling and channel scaling (in flops), so no separate
-- scale rows follow it.
-- Each builder returns a netcost network (see netcost.lua): net:cost() gives the totals,
-- net:layers() the per-layer rows. Costs follow docs/OPERATORS.md COSTS (the pycls rules).

local netcost = require("netcost")

local models = {}
local registry = {}     -- name -> {build = function() ... end, desc = "..."}
local order = {}

local function register(name, desc, build)
  assert(not registry[name], "duplicate model " .. name)
  registry[name] = {build = build, desc = desc}
  order[#order + 1] = name
end

-- Python's round(): halves go to the even neighbour (numpy's np.round does the same). RegNet's
-- quantisation depends on it: RegNetX-1.6GF has 180 / 8 = 22.5 exactly, which must round to 22.
local function round_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 then return f + 1 end
  if d < 0.5 then return f end
  return (f % 2 == 0) and f or f + 1
end
models.round_even = round_even

local function gcd(a, b) while b ~= 0 do a, b = b, a % b end return a end

local function toint(x)
  local i = math.tointeger(x)
  if i then return i end
  return math.tointeger(math.floor(x)) -- callers pass values that are already whole
end

------------------------------------------------------------------------------------------------
-- RegNet (pycls): quantised linear widths, then the block-compatibility adjustment.
------------------------------------------------------------------------------------------------

local function check_number(name, v)
  if type(v) ~= "number" or v ~= v then
    error(string.format("regnet: %s must be a number, got %s", name, tostring(v)), 0)
  end
end

-- Returns per-stage widths, depths, bottleneck ratios and group widths, as pycls computes them.
function models.regnet_stages(p)
  if type(p) ~= "table" then error("regnet: expects a table {d=, w0=, wa=, wm=, g=, b=, se=}", 0) end
  local d, w0, wa, wm = p.d, p.w0, p.wa, p.wm
  local g, b = p.g or p.group_w or 8, p.b or 1.0
  check_number("d", d); check_number("w0", w0); check_number("wa", wa); check_number("wm", wm)
  check_number("g", g); check_number("b", b)
  local q = 8
  if d < 1 or math.type(d) ~= "integer" and d ~= math.floor(d) then
    error(string.format("regnet: depth d must be an integer >= 1, got %s", tostring(d)), 0)
  end
  if wa < 0 then error(string.format("regnet: slope wa must be >= 0, got %s", tostring(wa)), 0) end
  if w0 <= 0 or w0 % q ~= 0 then
    error(string.format("regnet: initial width w0 must be a positive multiple of %d, got %s", q, tostring(w0)), 0)
  end
  if wm <= 1 then error(string.format("regnet: width multiplier wm must be > 1, got %s", tostring(wm)), 0) end
  if g < 1 or g ~= math.floor(g) then
    error(string.format("regnet: group width g must be an integer >= 1, got %s", tostring(g)), 0)
  end
  if b <= 0 then error(string.format("regnet: bottleneck ratio b must be > 0, got %s", tostring(b)), 0) end
  if b > 1 and b ~= math.floor(b) then
    error(string.format("regnet: a bottleneck ratio b > 1 must be an integer, got %s", tostring(b)), 0)
  end
  d = toint(d)
  -- quantised linear rule: u_j = w0 + wa*j, snapped to w0 * wm^k, rounded to a multiple of q
  local ws_all, ks_max = {}, 0
  for j = 0, d - 1 do
    local u = j * wa + w0
    local k = round_even(math.log(u / w0) / math.log(wm))
    if k > ks_max then ks_max = k end
    ws_all[#ws_all + 1] = toint(round_even(w0 * wm ^ k / q)) * q
  end
  -- stages: the distinct widths (sorted, like np.unique) and their counts
  local counts, ws = {}, {}
  for _, w in ipairs(ws_all) do
    if not counts[w] then counts[w] = 0; ws[#ws + 1] = w end
    counts[w] = counts[w] + 1
  end
  table.sort(ws)
  local stages = {}
  for i, w in ipairs(ws) do
    -- block compatibility: bottleneck width a multiple of the group width
    local v = math.max(1, toint(math.floor(w * b)))
    local gi = math.min(toint(g), v)
    local m = gi
    if b > 1 then local bi = toint(b); m = gi * bi // gcd(gi, bi) end
    v = math.max(m, toint(round_even(v / m)) * m)
    local wi = toint(math.floor(v / b))
    stages[i] = {w = wi, d = counts[w], b = b, g = gi, stride = 2}
  end
  return stages, toint(ks_max) + 1
end

local function regnet_build(p, name)
  local stages = models.regnet_stages(p)
  local se = p.se
  local se_r = (se == true) and 0.25 or (type(se) == "number" and se > 0 and se) or nil
  local net = netcost.new(name or "regnet", {res = p.res or 224})
  net.stages = stages
  local stem_w = p.stem_w or 32
  net:scope("stem", function()
    net:conv{cout = stem_w, k = 3, stride = 2, name = "conv"}; net:bn(); net:relu()
  end)
  for i, st in ipairs(stages) do
    net:stage(i, function()
      for j = 1, st.d do
        net:block(j, function()
          local w_in, w_out = net.C, st.w
          local stride = (j == 1) and st.stride or 1
          local w_b = toint(round_even(w_out * st.b))
          if w_in ~= w_out or stride ~= 1 then
            net:branch(function() net:conv{cout = w_out, k = 1, stride = stride, name = "proj"}; net:bn() end)
          end
          net:conv{cout = w_b, k = 1, name = "a"}; net:bn(); net:relu()
          net:conv{cout = w_b, k = 3, stride = stride, groups = w_b // st.g, name = "b"}; net:bn(); net:relu()
          if se_r then
            net:op("se", {channels = w_b, hidden = toint(round_even(w_in * se_r))}, {name = "se"})
          end
          net:conv{cout = w_out, k = 1, name = "c"}; net:bn()
          net:add(); net:relu()
        end)
      end
    end)
  end
  net:scope("head", function() net:gap(); net:linear{cout = p.classes or 1000, name = "fc"} end)
  return net
end

function models.regnet(p)
  return regnet_build(p, p and p.name)
end

local REGNET = {
  -- name            d    w0    wa     wm    g   se   (pycls configs/dds_baselines)
  {"RegNetX-200MF", 13, 24, 36.44, 2.49,  8, false},
  {"RegNetX-400MF", 22, 24, 24.48, 2.54, 16, false},
  {"RegNetX-600MF", 16, 48, 36.97, 2.24, 24, false},
  {"RegNetX-800MF", 16, 56, 35.73, 2.28, 16, false},
  {"RegNetX-1.6GF", 18, 80, 34.01, 2.25, 24, false},
  {"RegNetX-3.2GF", 25, 88, 26.31, 2.25, 48, false},
  {"RegNetX-4.0GF", 23, 96, 38.65, 2.43, 40, false},
  {"RegNetY-200MF", 13, 24, 36.44, 2.49,  8, true},
  {"RegNetY-400MF", 16, 48, 27.89, 2.09,  8, true},
  {"RegNetY-600MF", 15, 48, 32.54, 2.32, 16, true},
  {"RegNetY-800MF", 14, 56, 38.84, 2.40, 16, true},
  {"RegNetY-1.6GF", 27, 48, 20.71, 2.65, 24, true},
  {"RegNetY-3.2GF", 21, 80, 42.63, 2.66, 24, true},
  {"RegNetY-4.0GF", 22, 96, 31.41, 2.24, 64, true},
}
models.regnet_configs = {}
for _, c in ipairs(REGNET) do
  local p = {d = c[2], w0 = c[3], wa = c[4], wm = c[5], g = c[6], b = 1.0, se = c[7]}
  models.regnet_configs[c[1]] = p
  register(c[1], string.format("pycls %s: d=%d w0=%d wa=%.2f wm=%.2f g=%d b=1%s", c[1], c[2], c[3], c[4], c[5],
                               c[6], c[7] and " se=0.25" or ""),
           function() return regnet_build(p, c[1]) end)
end

------------------------------------------------------------------------------------------------
-- ResNet family: ResNet-50 (stride on the 3x3 = pycls, or on the 1x1 = original Caffe),
-- ResNeXt-50 32x4d, SE-ResNet-50, SKNet-50, ResNeSt-50.
------------------------------------------------------------------------------------------------

-- opts: groups, width_per_group, stride_1x1, middle = function(net, w_b, stride, st) (replaces the
-- 3x3 conv+bn+relu), se = reduction (SE after the last 1x1), stem = "in" | "deep", avg_down,
-- avd = "after" | "before" (ResNeSt average downsampling around the middle conv).
local function resnet_build(name, opts)
  local net = netcost.new(name, {res = opts.res or 224})
  local ds = opts.depths or {3, 4, 6, 3}
  local g, gw = opts.groups or 1, opts.width_per_group or 64
  net:scope("stem", function()
    if opts.stem == "deep" then
      local sw = opts.stem_width or 32
      net:conv{cout = sw, k = 3, stride = 2, name = "conv1"}; net:bn(); net:relu()
      net:conv{cout = sw, k = 3, name = "conv2"}; net:bn(); net:relu()
      net:conv{cout = 2 * sw, k = 3, name = "conv3"}; net:bn(); net:relu()
    else
      net:conv{cout = 64, k = 7, stride = 2, name = "conv"}; net:bn(); net:relu()
    end
    net:pool{k = 3, stride = 2, pad = 1, kind = "max", name = "pool"}
  end)
  for i = 1, 4 do
    local w_out = 256 * 2 ^ (i - 1) // 1
    w_out = toint(w_out)
    local w_b = toint(gw * g * 2 ^ (i - 1))
    local s = (i == 1) and 1 or 2
    net:stage(i, function()
      for j = 1, ds[i] do
        net:block(j, function()
          local stride = (j == 1) and s or 1
          local w_in = net.C
          if w_in ~= w_out or stride ~= 1 then
            net:branch(function()
              if opts.avg_down and stride ~= 1 then
                net:pool{k = stride, stride = stride, kind = "avg", ceil = true, name = "proj_pool"}
                net:conv{cout = w_out, k = 1, name = "proj"}
              else
                net:conv{cout = w_out, k = 1, stride = stride, name = "proj"}
              end
              net:bn()
            end)
          end
          local s1, s3 = 1, stride
          if opts.stride_1x1 then s1, s3 = stride, 1 end
          net:conv{cout = w_b, k = 1, stride = s1, name = "a"}; net:bn(); net:relu()
          local avd = opts.avd and (stride > 1 or j == 1)
          if avd and opts.avd == "before" then
            net:pool{k = 3, stride = s3, pad = 1, kind = "avg", name = "avd"}; s3 = 1
          end
          local s_mid = (avd and opts.avd == "after") and 1 or s3
          if opts.middle then
            opts.middle(net, w_b, s_mid, g)
          else
            net:conv{cout = w_b, k = 3, stride = s_mid, groups = g, name = "b"}; net:bn(); net:relu()
          end
          if avd and opts.avd == "after" then
            net:pool{k = 3, stride = s3, pad = 1, kind = "avg", name = "avd"}
          end
          net:conv{cout = w_out, k = 1, name = "c"}; net:bn()
          if opts.se then
            net:op("se", {channels = w_out, reduction = opts.se, hidden = w_out // opts.se}, {name = "se"})
          end
          net:add(); net:relu()
        end)
      end
    end)
  end
  net:scope("head", function() net:gap(); net:linear{cout = 1000, name = "fc"} end)
  return net
end

register("ResNet-50", "pycls R-50-1x64d: stride on the 3x3 (torchvision v1.5)",
  function() return resnet_build("ResNet-50", {}) end)
register("ResNet-50-stride1x1", "ResNet-50 with the stride on the first 1x1 (original Caffe model)",
  function() return resnet_build("ResNet-50-stride1x1", {stride_1x1 = true}) end)
register("ResNeXt-50-32x4d", "pycls X-50-32x4d: stride on the 3x3",
  function() return resnet_build("ResNeXt-50-32x4d", {groups = 32, width_per_group = 4}) end)
register("SE-ResNet-50", "SENet's SE-ResNet-50: stride on the 1x1, SE (r = 16) after the last 1x1",
  function() return resnet_build("SE-ResNet-50", {stride_1x1 = true, se = 16}) end)

local function sk_middle(M)
  return function(net, w_b, stride, g)
    net:op("skconv", {cout = w_b, branches = M, groups = g, stride = stride, reduction = 16, L = 32}, {name = "sk"})
    net:relu()
  end
end
register("SKNet-50", "SKNet-50: ResNeXt-50 32x4d with SK[M=2, G=32, r=16, L=32] in place of each 3x3",
  function() return resnet_build("SKNet-50", {groups = 32, width_per_group = 4, middle = sk_middle(2)}) end)
register("SKNet-50-M3", "SKNet-50 with three branches (dilations 1, 2, 3)",
  function() return resnet_build("SKNet-50-M3", {groups = 32, width_per_group = 4, middle = sk_middle(3)}) end)

local function splat_middle(net, w_b, stride, g)
  net:op("splat", {cout = w_b, k = 3, stride = stride, radix = 2, cardinality = 1}, {name = "splat"})
end
register("ResNeSt-50", "ResNeSt-50 2s1x64d: deep stem, avg-down shortcuts, avd after the split-attention conv",
  function() return resnet_build("ResNeSt-50", {stem = "deep", avg_down = true, avd = "after", middle = splat_middle}) end)
register("ResNeSt-50-fast", "ResNeSt-50-fast 2s1x64d: as ResNeSt-50 with avd before the split-attention conv",
  function() return resnet_build("ResNeSt-50-fast", {stem = "deep", avg_down = true, avd = "before", middle = splat_middle}) end)

------------------------------------------------------------------------------------------------
-- MobileNetV2 (torchvision layout) and DY-MobileNetV2 (K = 4; first conv and last 1x1 static).
------------------------------------------------------------------------------------------------

local function make_divisible(v, div)
  local new = math.max(div, toint(math.floor(v + div / 2)) // div * div)
  if new < 0.9 * v then new = new + div end
  return new
end
models.make_divisible = make_divisible

local function mobilenetv2_build(name, wm, K)
  local net = netcost.new(name)
  local setting = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}}
  local function conv(cout, k, stride, groups, nm)
    if K then
      net:op("dyconv", {cout = cout, k = k, stride = stride, groups = groups or 1, kernels = K}, {name = nm})
    else
      net:conv{cout = cout, k = k, stride = stride, groups = groups, name = nm}
    end
  end
  net:scope("stem", function()
    net:conv{cout = make_divisible(32 * wm, 8), k = 3, stride = 2, name = "conv"}; net:bn(); net:relu()
  end)
  for i, s in ipairs(setting) do
    local t, c, n, st = s[1], s[2], s[3], s[4]
    local oup = make_divisible(c * wm, 8)
    net:stage(i, function()
      for j = 1, n do
        net:block(j, function()
          local inp = net.C
          local stride = (j == 1) and st or 1
          local hidden = toint(round_even(inp * t))
          if t ~= 1 then conv(hidden, 1, 1, 1, "expand"); net:bn(); net:relu() end
          conv(hidden, 3, stride, hidden, "dw"); net:bn(); net:relu()
          conv(oup, 1, 1, 1, "project"); net:bn()
          if stride == 1 and inp == oup then net:add() end
        end)
      end
    end)
  end
  net:scope("head", function()
    net:conv{cout = make_divisible(1280 * math.max(1.0, wm), 8), k = 1, name = "conv"}; net:bn(); net:relu()
    net:gap(); net:linear{cout = 1000, name = "fc"}
  end)
  return net
end
register("MobileNetV2-1.0", "MobileNetV2 x1.0 (torchvision layout)", function() return mobilenetv2_build("MobileNetV2-1.0", 1.0) end)
register("MobileNetV2-0.5", "MobileNetV2 x0.5 (torchvision layout)", function() return mobilenetv2_build("MobileNetV2-0.5", 0.5) end)
register("DY-MobileNetV2-1.0", "DY-MobileNetV2 x1.0: dyconv K=4 in every block conv; first conv, last 1x1 and classifier static",
  function() return mobilenetv2_build("DY-MobileNetV2-1.0", 1.0, 4) end)
register("DY-MobileNetV2-0.5", "DY-MobileNetV2 x0.5: dyconv K=4 in every block conv; first conv, last 1x1 and classifier static",
  function() return mobilenetv2_build("DY-MobileNetV2-0.5", 0.5, 4) end)

------------------------------------------------------------------------------------------------
-- EfficientNet (pycls effnet) and CondConv-EfficientNet-B0 (CondConv in every conv of the MBConv
-- blocks of the last three stages, one sigmoid router per block on the block input).
------------------------------------------------------------------------------------------------

local EN = {
  B0 = {depths = {1, 2, 2, 3, 3, 4, 1}, res = 224},
  B1 = {depths = {2, 3, 3, 4, 4, 5, 2}, res = 240},
}
local function effnet_build(name, variant, experts)
  local cfg = EN[variant]
  local widths = {16, 24, 40, 80, 112, 192, 320}
  local exp_rs = {1, 6, 6, 6, 6, 6, 6}
  local kernels = {3, 3, 5, 3, 5, 5, 3}
  local strides = {1, 2, 2, 2, 1, 2, 1}
  local se_r = 0.25
  local net = netcost.new(name, {res = cfg.res})
  net:scope("stem", function() net:conv{cout = 32, k = 3, stride = 2, name = "conv"}; net:bn(); net:swish() end)
  for i = 1, 7 do
    local cc = experts and i >= 5
    net:stage(i, function()
      for j = 1, cfg.depths[i] do
        net:block(j, function()
          local w_in, w_out = net.C, widths[i]
          local stride = (j == 1) and strides[i] or 1
          local w_exp = toint(math.floor(w_in * exp_rs[i]))
          local k = kernels[i]
          local function conv(cout, kk, s, groups, nm)
            if cc then
              net:op("condconv", {cout = cout, k = kk, stride = s, groups = groups or 1, experts = experts},
                     {name = nm, shared = {cin = net.C, cout = experts}})
            else
              net:conv{cout = cout, k = kk, stride = s, groups = groups, name = nm}
            end
          end
          if cc then  -- one router per block, on the pooled block input
            net:branch(function() net:gap("router_pool"); net:linear{cout = experts, name = "router", dynamic = true} end)
          end
          if w_exp ~= w_in then conv(w_exp, 1, 1, 1, "expand"); net:bn(); net:swish() end
          conv(w_exp, k, stride, w_exp, "dw"); net:bn(); net:swish()
          net:op("se", {channels = w_exp, hidden = toint(math.floor(w_in * se_r))}, {name = "se"})
          conv(w_out, 1, 1, 1, "project"); net:bn()
          if stride == 1 and w_in == w_out then net:add() end
        end)
      end
    end)
  end
  net:scope("head", function()
    net:conv{cout = 1280, k = 1, name = "conv"}; net:bn(); net:swish()
    net:gap(); net:linear{cout = 1000, name = "fc"}
  end)
  return net
end
register("EfficientNet-B0", "pycls EN-B0 (224x224)", function() return effnet_build("EfficientNet-B0", "B0") end)
register("EfficientNet-B1", "pycls EN-B1 (240x240)", function() return effnet_build("EfficientNet-B1", "B1") end)
register("CondConv-EfficientNet-B0-4e", "EN-B0 with CondConv (4 experts) in the MBConv convs of stages 5-7, one router per block",
  function() return effnet_build("CondConv-EfficientNet-B0-4e", "B0", 4) end)
register("CondConv-EfficientNet-B0-8e", "EN-B0 with CondConv (8 experts) in the MBConv convs of stages 5-7, one router per block",
  function() return effnet_build("CondConv-EfficientNet-B0-8e", "B0", 8) end)

------------------------------------------------------------------------------------------------
-- ShuffleNetV2: official widths, WeightNet's reduced widths (static and with WeightNet), and
-- DRConv-ShuffleNetV2-0.5x.
------------------------------------------------------------------------------------------------

local SNV2_OFFICIAL = {["0.5x"] = {24, 48, 96, 192, 1024}, ["1.0x"] = {24, 116, 232, 464, 1024},
                       ["1.5x"] = {24, 176, 352, 704, 1024}, ["2.0x"] = {24, 244, 488, 976, 2048}}
local SNV2_WEIGHTNET = {["0.5x"] = {24, 48, 96, 192, 1024}, ["1.0x"] = {24, 112, 224, 448, 1024},
                       ["1.5x"] = {24, 176, 352, 704, 1024}, ["2.0x"] = {24, 248, 496, 992, 1024}}
models.shufflenet_widths = {official = SNV2_OFFICIAL, weightnet = SNV2_WEIGHTNET}

-- kind: "static" | "weightnet" | "drconv"; o: {M=, G=, bias=, regions=}
local function shufflenet_build(name, ch, kind, o)
  o = o or {}
  local net = netcost.new(name)
  local bias = o.bias or false
  net:scope("stem", function()
    net:conv{cout = ch[1], k = 3, stride = 2, bias = bias, name = "conv"}; net:bn(); net:relu()
    net:pool{k = 3, stride = 2, pad = 1, kind = "max", name = "pool"}
  end)
  local repeats = {4, 8, 4}
  for i = 1, 3 do
    local oup = ch[i + 1]
    net:stage(i, function()
      for j = 1, repeats[i] do
        net:block(j, function()
          local stride = (j == 1) and 2 or 1
          local full = net.C
          local inp = (stride == 2) and full or full // 2
          local mid = oup // 2
          local right = oup - inp
          local hidden = math.max(16, inp // 16)
          local left_c = 0
          -- static / weightnet / drconv versions of a 1x1 conv and of a depthwise 3x3
          local function pw(cout, nm, dyn)
            if kind == "weightnet" then
              net:op("weightnet", {cout = cout, k = 1, M = o.M, G = o.G, hidden = hidden},
                     {name = nm, shared = {cin = net.C, cout = hidden}})
            elseif kind == "drconv" and dyn then
              net:op("drconv", {cout = cout, k = 1, regions = o.regions or 8}, {name = nm})
            else
              net:conv{cout = cout, k = 1, name = nm}
            end
          end
          local function dw(s, nm)
            if kind == "weightnet" then
              net:op("weightnet", {k = 3, stride = s, depthwise = true, M = o.M, G = o.G, hidden = hidden},
                     {name = nm, shared = {cin = net.C, cout = hidden}})
            else
              net:conv{cout = net.C, k = 3, stride = s, groups = net.C, name = nm}
            end
          end
          if stride == 2 then
            local out = net:branch(function()
              dw(2, "left_dw"); net:bn(); pw(inp, "left_pw", false); net:bn(); net:relu()
            end)
            left_c = out[1]
          else
            left_c = inp
            net:split(inp)
          end
          if kind == "weightnet" then  -- the block's shared reduction FC on the pooled branch input
            net:branch(function()
              net:gap("reduce_pool"); net:linear{cout = hidden, name = "reduce", dynamic = true}
            end)
          end
          pw(mid, "a", true); net:bn(); net:relu()
          dw(stride, "dw"); net:bn()
          pw(right, "c", true); net:bn(); net:relu()
          net:concat(left_c)
        end)
      end
    end)
  end
  net:scope("head", function()
    net:conv{cout = ch[5], k = 1, bias = bias, name = "conv"}; net:bn(); net:relu()
    net:gap(); net:linear{cout = 1000, bias = o.fc_bias or false, name = "fc"}
  end)
  return net
end

-- models.shufflenet{size = "0.5x", widths = "official" | "weightnet", kind = "static" | "weightnet" |
-- "drconv", M =, G =, regions =, bias =}: any ShuffleNetV2 variant, for design-space sweeps.
function models.shufflenet(p)
  local ws = models.shufflenet_widths[p.widths or "official"]
  if not ws then error("shufflenet: widths must be 'official' or 'weightnet'", 2) end
  local ch = ws[p.size or "1.0x"]
  if not ch then error("shufflenet: size must be 0.5x, 1.0x, 1.5x or 2.0x", 2) end
  return shufflenet_build(p.name or ("ShuffleNetV2-" .. (p.size or "1.0x")), ch, p.kind or "static",
                          {M = p.M, G = p.G, regions = p.regions, bias = p.bias, fc_bias = p.bias})
end

for _, sz in ipairs({"0.5x", "1.0x", "1.5x", "2.0x"}) do
  register("ShuffleNetV2-" .. sz, "ShuffleNetV2 " .. sz .. ", official widths (Megvii release, no biases)",
    function() return shufflenet_build("ShuffleNetV2-" .. sz, SNV2_OFFICIAL[sz], "static") end)
end
for _, sz in ipairs({"0.5x", "1.0x", "1.5x", "2.0x"}) do
  register("ShuffleNetV2-" .. sz .. "-wnwidths", "ShuffleNetV2 " .. sz .. " with WeightNet's reduced widths, static convs",
    function() return shufflenet_build("ShuffleNetV2-" .. sz .. "-wnwidths", SNV2_WEIGHTNET[sz], "static",
                                       {bias = true, fc_bias = true}) end)
end
-- WeightNet variants: lambda = M / G. The README gives only lambda for the same-FLOPs models, not M
-- and G (which set the size of the FC before the grouped kernel FC: hidden x M*cout). Of the two
-- natural choices, (M = 2*lambda, G = 2) and (M = lambda, G = 1), each row uses the one whose
-- parameter count matches the README; tables.lua states the other one's count.
local WN_VARIANTS = {
  {"0.5x", 2, 2, ""}, {"1.0x", 2, 2, ""}, {"1.5x", 2, 2, ""}, {"2.0x", 2, 2, ""},
  {"0.5x", 8, 1, "-8x"}, {"1.0x", 8, 2, "-4x"}, {"1.5x", 4, 1, "-4x"}, {"2.0x", 8, 2, "-4x"},
}
models.weightnet_variants = WN_VARIANTS
for _, v in ipairs(WN_VARIANTS) do
  local nm = "WeightNet-ShuffleNetV2-" .. v[1] .. v[4]
  register(nm, string.format("ShuffleNetV2 %s (WeightNet widths) with WeightNet M=%d G=%d (lambda=%d) in every block conv",
                             v[1], v[2], v[3], v[2] // v[3]),
    function() return shufflenet_build(nm, SNV2_WEIGHTNET[v[1]], "weightnet",
                                       {M = v[2], G = v[3], bias = true, fc_bias = true}) end)
end
register("DRConv-ShuffleNetV2-0.5x",
  "ShuffleNetV2 0.5x with paper-form DRConv (m = 8) in both 1x1 convs of every block's right branch",
  function() return shufflenet_build("DRConv-ShuffleNetV2-0.5x", SNV2_OFFICIAL["0.5x"], "drconv",
                                     {regions = 8, bias = true, fc_bias = true}) end)

------------------------------------------------------------------------------------------------

function models.names()
  local t = {}
  for i, n in ipairs(order) do t[i] = n end
  return t
end

function models.describe(name)
  local r = registry[name]
  return r and r.desc
end

function models.model(name)
  local r = registry[name]
  if not r then
    error(string.format("unknown model '%s' (dcb.models() lists the %d names)", tostring(name), #order), 2)
  end
  return r.build()
end

return models
