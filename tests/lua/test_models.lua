-- Tests of the network cost models (harness/lua/models.lua, netcost.lua).
-- Run: build/dcbench tests/lua/test_models.lua   (or lua5.4 with LUA_PATH set to harness/lua/?.lua)
local models = require("models")

package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local T = require "testlib"
local test, eq, near, contains, raises = T.test, T.eq, T.near, T.contains, T.raises

-- The exact pycls complexity integers at 224x224 (macs, params, acts).
local PYCLS = {
  {"RegNetX-200MF", 199040872, 2684792, 2164056},
  {"ResNet-50", 4089185256, 25557032, 11315688},
  {"ResNeXt-50-32x4d", 4230480872, 25028904, 14602216},
  {"EfficientNet-B0", 385825092, 5288548, 6748036},
}
for _, m in ipairs(PYCLS) do
  test("pycls exact " .. m[1], function()
    local c = models.model(m[1]):cost()
    eq(c.macs, m[2], m[1] .. " macs")
    eq(c.params, m[3], m[1] .. " params")
    eq(c.acts, m[4], m[1] .. " acts")
  end)
end

test("dcb.regnet with RegNetX-200MF's parameters equals the named model", function()
  local a = models.regnet{d = 13, w0 = 24, wa = 36.44, wm = 2.49, g = 8, b = 1, se = false}:cost()
  local b = models.model("RegNetX-200MF"):cost()
  for _, k in ipairs({"macs", "params", "acts", "flops"}) do eq(a[k], b[k], k) end
end)

-- Per-layer breakdown sums to the totals, for every model.
local COLS = {"macs", "flops", "params", "acts", "dynamic_macs"}
for _, name in ipairs(models.names()) do
  test("layers sum to totals: " .. name, function()
    local net = models.model(name)
    local total = net:cost()
    local sum = {}
    for _, k in ipairs(COLS) do sum[k] = 0 end
    local layers = net:layers()
    assert(#layers > 0, "no layers")
    for _, r in ipairs(layers) do
      assert(type(r.name) == "string" and type(r.op) == "string", "row without name/op")
      assert(#r.out_shape == 3, "row without out_shape")
      for _, k in ipairs(COLS) do sum[k] = sum[k] + r[k] end
    end
    for _, k in ipairs(COLS) do eq(sum[k], total[k], name .. " " .. k) end
    assert(total.macs > 0 and total.params > 0 and total.acts > 0, "empty totals")
    assert(total.flops >= 2 * total.macs, "flops below 2*macs")
    -- every classifier ends on 1000 classes
    local last = layers[#layers].out_shape
    eq(last[1], 1000, name .. " output channels")
  end)
end

test("models.names lists every model once, including the issue's", function()
  local seen = {}
  for _, n in ipairs(models.names()) do
    assert(not seen[n], "duplicate " .. n); seen[n] = true
  end
  for _, n in ipairs({"ResNet-50", "ResNet-50-stride1x1", "ResNeXt-50-32x4d", "SE-ResNet-50", "SKNet-50",
                      "SKNet-50-M3", "ResNeSt-50", "ResNeSt-50-fast", "MobileNetV2-1.0", "MobileNetV2-0.5",
                      "DY-MobileNetV2-1.0", "DY-MobileNetV2-0.5", "EfficientNet-B0", "EfficientNet-B1",
                      "CondConv-EfficientNet-B0-4e", "CondConv-EfficientNet-B0-8e",
                      "WeightNet-ShuffleNetV2-0.5x", "WeightNet-ShuffleNetV2-2.0x-4x",
                      "DRConv-ShuffleNetV2-0.5x", "RegNetX-4.0GF", "RegNetY-200MF", "RegNetY-4.0GF"}) do
    assert(seen[n], "missing model " .. n)
  end
end)

local function stages_are(p, want, what)
  local st = models.regnet_stages(p)
  eq(#st, #want, what .. " number of stages")
  for i, w in ipairs(want) do
    eq(st[i].w, w[1], string.format("%s stage %d width", what, i))
    eq(st[i].d, w[2], string.format("%s stage %d depth", what, i))
    eq(st[i].g, w[3], string.format("%s stage %d group width", what, i))
  end
end
test("RegNetX-200MF stages (24,1)(56,1)(152,4)(368,7), group width 8", function()
  stages_are(models.regnet_configs["RegNetX-200MF"], {{24, 1, 8}, {56, 1, 8}, {152, 4, 8}, {368, 7, 8}}, "X-200MF")
  local net = models.model("RegNetX-200MF")
  eq(#net.stages, 4, "net.stages")
end)
test("RegNetX-1.6GF stages (72,2)(168,4)(408,10)(912,2), group width 24", function()
  -- 80 * 2.25 / 8 = 22.5 exactly: round-half-even gives 176, which the adjustment takes to 168
  stages_are(models.regnet_configs["RegNetX-1.6GF"], {{72, 2, 24}, {168, 4, 24}, {408, 10, 24}, {912, 2, 24}}, "X-1.6GF")
end)

test("round_even is Python's round", function()
  eq(models.round_even(22.5), 22, "22.5"); eq(models.round_even(23.5), 24, "23.5")
  eq(models.round_even(2.4), 2, "2.4"); eq(models.round_even(2.6), 3, "2.6")
end)

local function expect_error(p, pattern)
  local ok, err = pcall(models.regnet, p)
  assert(not ok, "no error for " .. pattern)
  assert(tostring(err):find(pattern, 1, true), string.format("error %q lacks %q", tostring(err), pattern))
end
local base = {d = 13, w0 = 24, wa = 36.44, wm = 2.49, g = 8}
local function with(k, v) local t = {} for a, b in pairs(base) do t[a] = b end t[k] = v return t end
test("regnet: wm <= 1 is refused", function()
  expect_error(with("wm", 1.0), "width multiplier wm must be > 1, got 1.0")
  expect_error(with("wm", 0.5), "wm must be > 1")
end)
test("regnet: w0 not a multiple of 8 is refused", function()
  expect_error(with("w0", 20), "initial width w0 must be a positive multiple of 8, got 20")
  expect_error(with("w0", 0), "w0 must be a positive multiple of 8")
  expect_error(with("w0", -8), "w0 must be a positive multiple of 8")
end)
test("regnet: negative wa is refused", function()
  expect_error(with("wa", -1), "slope wa must be >= 0, got -1")
end)
test("regnet: d < 1 and bad group widths are refused", function()
  expect_error(with("d", 0), "depth d must be an integer >= 1")
  expect_error(with("d", 2.5), "depth d must be an integer >= 1")
  expect_error(with("g", 0), "group width g must be an integer >= 1")
  expect_error(with("wm", "2"), "wm must be a number")
  local ok, err = pcall(models.regnet, nil)
  assert(not ok and tostring(err):find("expects a table", 1, true), tostring(err))
end)
test("regnet: wa = 0 gives one stage", function()
  local st = models.regnet_stages{d = 4, w0 = 32, wa = 0, wm = 2, g = 8}
  eq(#st, 1, "stages"); eq(st[1].w, 32, "width"); eq(st[1].d, 4, "depth")
end)
test("unknown model gives a clear error", function()
  local ok, err = pcall(models.model, "ResNet-51")
  assert(not ok and tostring(err):find("unknown model 'ResNet-51'", 1, true), tostring(err))
end)

-- Structural checks of the dynamic models.
test("CondConv-B0: parameters grow by (E-1) x the stage-5..7 conv weights plus one router per block", function()
  local b0 = models.model("EfficientNet-B0"):cost()
  local c4 = models.model("CondConv-EfficientNet-B0-4e"):cost()
  local c8 = models.model("CondConv-EfficientNet-B0-8e"):cost()
  -- stage 5..7 conv weights of B0: 2,673,600; routers: 8 blocks, E*cin + E each
  local P = 2673600
  local cins = {80, 112, 112, 112, 192, 192, 192, 192}
  local function routers(E) local s = 0 for _, c in ipairs(cins) do s = s + E * c + E end return s end
  eq(c4.params - b0.params, 3 * P + routers(4), "4 experts params")
  eq(c8.params - b0.params, 7 * P + routers(8), "8 experts params")
  eq(c4.macs - b0.macs, 4 * P + routers(4), "4 experts macs (kernel generation E*P + routers)")
end)
test("SE-ResNet-50 adds the SE weights to ResNet-50 (stride on the 1x1)", function()
  local r = models.model("ResNet-50-stride1x1"):cost()
  local s = models.model("SE-ResNet-50"):cost()
  eq(s.params - r.params, 2530992, "SE params")
end)
test("ResNeSt-50-fast differs from ResNeSt-50 only in where the avd pool sits", function()
  local a, b = models.model("ResNeSt-50"):cost(), models.model("ResNeSt-50-fast"):cost()
  eq(a.params, b.params, "params"); assert(a.macs > b.macs, "fast must be cheaper")
end)

-- Reproduction tables.
local tables = require("tables")
test("tables: CSV fields are quoted when needed", function()
  eq(tables.csv_field("plain"), "plain", "plain")
  eq(tables.csv_field("a,b"), '"a,b"', "comma")
  eq(tables.csv_field('say "FLOPs"'), '"say ""FLOPs"""', "quotes")
  eq(tables.csv_field("two\nlines"), '"two\nlines"', "newline")
end)
test("tables: pycls rows exact, every row beyond 1.5% explained", function()
  local n = 0
  for _, t in ipairs(tables.build()) do
    for _, r in ipairs(t.rows) do
      n = n + 1
      if t.name == "pycls_exact" then eq(r.deviation_pct, 0.0, r.model .. " " .. r.metric .. " deviation") end
      if math.abs(r.deviation_pct) > 1.5 then
        assert(#r.note > 0, r.model .. " " .. r.metric .. ": deviation without a note")
      end
      assert(r.unit ~= "" and r.source ~= "", "unit and source must be given")
    end
  end
  assert(n >= 100, "too few table rows: " .. n)
end)
test("tables.write writes CSV and Markdown files", function()
  local dir = os.tmpname()
  os.remove(dir)
  local files = tables.write(dir)
  assert(#files >= 4, "too few files")
  local f = assert(io.open(dir .. "/pycls_exact.csv"))
  local header = f:read("l"); f:close()
  eq(header, "model,variant,metric,published,unit,source,ours,deviation_pct,note", "header")
  for _, name in ipairs(files) do os.remove(dir .. "/" .. name) end
  os.remove(dir)
end)

T.finish("test_models")
