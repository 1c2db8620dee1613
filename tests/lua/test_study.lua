-- Tests of the training studies (harness/lua/study.lua): the statistics (t quantiles, intervals,
-- Welch), trend agreement, stable unit ids, shards whose union is the serial run, resume (nothing
-- trained twice, a torn last row repaired), shared units, the table and the figures, refusals of bad
-- definitions, and dcb.sample_space's reproducible draws.
-- Run: build/dcbench tests/lua/test_study.lua   (DCB_TEST_QUICK=1: without the shard runs)
local dcb = require("dcb")
local study = require("study")
local quick = os.getenv("DCB_TEST_QUICK") and os.getenv("DCB_TEST_QUICK") ~= "0"

package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local T = require "testlib"
local test, eq, near, contains, raises = T.test, T.eq, T.near, T.contains, T.raises

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- statistics ------------------------------------------------------------------------------------
test("t quantiles", function()
  near(study.t975(1), 12.706, 1e-9, "df 1")
  near(study.t975(2), 4.303, 1e-9, "df 2")
  near(study.t975(2.5), (4.303 + 3.182) / 2, 1e-9, "df 2.5 interpolated")
  near(study.t975(1000), 1.96, 0.01, "df 1000")
  assert(study.t975(0) ~= study.t975(0), "df 0 is NaN")
end)

test("summary: mean, std, interval", function()
  local m, s, h, n = study.summary({0.80, 0.82, 0.84})
  near(m, 0.82, 1e-12, "mean")
  near(s, 0.02, 1e-12, "std")
  near(h, 4.303 * 0.02 / math.sqrt(3), 1e-12, "half-width")
  eq(n, 3, "n")
  local _, s1, h1 = study.summary({0.5})
  assert(s1 ~= s1 and h1 ~= h1, "one value: no std, no interval")
end)

test("Welch interval of a difference", function()
  -- equal variances and sizes: df = 2(n-1) = 4, se = sqrt(2 s^2 / n)
  local d, h = study.welch({1, 2, 3}, {0, 1, 2})
  near(d, 1, 1e-12, "delta")
  near(h, 2.776 * math.sqrt(2 / 3), 1e-9, "half-width")
  -- unequal variances: the Welch-Satterthwaite df lies between min(n)-1 and the pooled df
  local _, h2 = study.welch({1, 1.1, 0.9}, {0, 2, 4})
  local se = math.sqrt(0.01 / 3 + 4 / 3)
  assert(h2 > study.t975(4) * se and h2 <= study.t975(2) * se + 1e-12, "Welch df in range: " .. h2)
end)

test("trend agreement", function()
  eq(study.trend(1.0, 0.5, 2.0), "same sign", "both up")
  eq(study.trend(-1.0, 0.5, 2.0), "opposite", "down against up")
  eq(study.trend(0.2, 0.5, 2.0), "not significant at our seeds", "interval spans 0")
  eq(study.trend(1.0, 0.5, nil), "no published value", "no paper value")
  eq(study.trend(1.0, 0 / 0, 1.0), "one seed: no interval", "no interval")
end)

test("canonical text ignores key order", function()
  eq(study.canon({b = 1, a = {y = 2, x = "s"}}), study.canon({a = {x = "s", y = 2}, b = 1}), "order")
  assert(study.canon({a = 1}) ~= study.canon({a = 2}), "values differ")
  eq(dcb.point_id("abc"), dcb.point_id("abc"), "stable hash")
  eq(#dcb.point_id("abc"), 16, "16 hex digits")
end)

-- sample_space ------------------------------------------------------------------------------------
local SPACE = {space = {width = {8, 16}, conv = {"conv", "condconv", "dyconv"}},
               given = {conv = {condconv = {experts = {2, 4}}, dyconv = {kernels = {2, 4}}}}}
test("sample_space: reproducible, distinct, conditional keys", function()
  local function draw(seed, n)
    local t = {seed = seed, n = n}
    for k, v in pairs(SPACE) do t[k] = v end
    return dcb.sample_space(t)
  end
  local a, b, c = draw(7, 8), draw(7, 8), draw(8, 8)
  eq(#a, 8, "n models")
  local same, differ, seen = true, false, {}
  for i = 1, 8 do
    same = same and a[i].label == b[i].label
    differ = differ or a[i].label ~= c[i].label
    assert(not seen[study.canon({a[i].width, a[i].conv, a[i].experts, a[i].kernels})], "a repeated model")
    seen[study.canon({a[i].width, a[i].conv, a[i].experts, a[i].kernels})] = true
    if a[i].conv == "condconv" then assert(a[i].experts and not a[i].kernels, "condconv draws experts only")
    elseif a[i].conv == "dyconv" then assert(a[i].kernels and not a[i].experts, "dyconv draws kernels only")
    else assert(not a[i].experts and not a[i].kernels, "static draws neither") end
  end
  assert(same, "the same seed gives the same models")
  assert(differ, "another seed gives other models")
  -- 2 widths x (1 + 2 + 2) = 10 distinct models: 11 cannot be drawn
  raises(function() draw(1, 11) end, "fewer than 11 distinct models", "too many")
  raises(function() dcb.sample_space{space = {width = {}}} end, "space.width", "empty list")
end)

-- studies -----------------------------------------------------------------------------------------
local tmp = os.tmpname()
os.remove(tmp)
dcb.mkdir(tmp)
local saved_results, saved_shard = dcb.results, dcb.shard

local function tiny(extra)
  local def = {name = "t", base = {width = 4},
               variants = {{label = "static", conv = "conv", baseline = true},
                           {label = "E=2", conv = "condconv", experts = 2, x = 2,
                            paper = {delta = 1, unit = "top-1 pts", source = "test"}},
                           -- the same training as "static": one unit, shared
                           {label = "static again", conv = "conv", width = 4}},
               seeds = {1, 2}, x = "experts",
               train = {subset = 128, test_subset = 100, epochs = 1, batch = 64},
               time_repetitions = 2, time_min = 0.001, probe_images = 8}
  for k, v in pairs(extra or {}) do def[k] = v end
  return def
end

local function ids(csv)
  local rows = dcb.read_csv(csv)
  local t, n = {}, 0
  for _, r in ipairs(rows) do t[r.point_id] = r; n = n + 1 end
  return t, n
end

test("definition errors name the field", function()
  dcb.results = tmp
  raises(function() dcb.study(tiny({bogus = 1})) end, "unknown field 'bogus'", "unknown field")
  raises(function() dcb.study(tiny({name = "a b"})) end, "name must be a word", "bad name")
  raises(function() dcb.study(tiny({baseline = "nope"})) end, "baseline 'nope'", "bad baseline")
  local d = tiny()
  d.variants[3].label = "static"
  raises(function() dcb.study(d) end, "two variants are labelled 'static'", "duplicate label")
end)

local serial
test("a study: units, rows, table, figures", function()
  dcb.results, dcb.shard = tmp .. "/serial", {i = 1, n = 1}
  local r = dcb.study(tiny())
  serial = r.csv
  eq(r.units, 4, "2 distinct variants x 2 seeds (the repeated variant shares its units)")
  eq(r.ran, 4, "all trained")
  eq(r.errors, 0, "no errors")
  local rows, n = ids(r.csv)
  eq(n, 4, "one row per unit")
  for _, row in pairs(rows) do
    eq(row.status, "ok", "status")
    local acc = tonumber(row.test_acc)
    assert(acc > 0 and acc <= 1, "accuracy in (0, 1]: " .. tostring(row.test_acc))
    assert(tonumber(row.macs) > 0 and tonumber(row.params) > 0, "costs")
    assert(tonumber(row.infer_s_per_img_median) > 0, "inference time")
    assert(tonumber(row.train_s_per_img_median) > 0, "training time per image")
    eq(row.isa, dcb.isa, "the unit records the micro-kernels' ISA")
    assert(row.contended == "0" or row.contended == "1", "contended is 0 or 1: " .. tostring(row.contended))
    assert(tonumber(row.loadavg) and tonumber(row.loadavg) >= 0, "the load average: " .. tostring(row.loadavg))
    if row.label == "E=2" then
      assert(tonumber(row.sim_mean) and tonumber(row.sim_init_mean), "a dynamic unit has kernel similarity")
      assert(exists(tmp .. "/serial/ablations/t.units/" .. row.point_id .. "/cosines_trained.txt"), "pair file")
    else
      eq(row.sim_mean, nil, "a static unit has no kernel similarity")
    end
  end
  local aggs = r.aggregates
  eq(#aggs, 3, "a table row per variant")
  eq(aggs[1].is_baseline, true, "baseline")
  eq(aggs[1].n, 2, "two seeds")
  eq(aggs[3].mean, aggs[1].mean, "the shared unit gives the repeated variant the same accuracy")
  assert(aggs[2].delta and aggs[2].delta_half == aggs[2].delta_half, "delta with an interval")
  local md = assert(io.open(r.table_md)):read("a")
  assert(md:find("| static | 2 |", 1, true), "the table lists the baseline")
  assert(md:find("baseline", 1, true) and md:find("+1.00 top-1 pts (test)", 1, true), "the paper's delta")
  assert(exists(r.table_csv), "table CSV")
  assert(#r.figures >= 3, "figures: " .. #r.figures)
  for _, f in ipairs(r.figures) do
    for _, ext in ipairs{"png", "pdf", "svg"} do
      assert(exists((f:gsub("%.png$", "." .. ext))), "figure " .. f .. " as " .. ext)
    end
  end
  assert(exists(tmp .. "/serial/ablations/t.json"), "definition JSON")
end)

test("resume: nothing trained twice; a torn last row is repaired", function()
  dcb.results, dcb.shard = tmp .. "/serial", {i = 1, n = 1}
  local before = select(2, ids(serial))
  local r = dcb.study(tiny())
  eq(r.ran, 0, "every unit done earlier")
  -- a kill in mid-write leaves a row without its newline: dropped on read, the unit retrained
  local rows = dcb.read_csv(serial)
  local f = assert(io.open(serial, "a"))
  f:write(rows[1].point_id .. ",t,static,resnet")
  f:close()
  local r2 = dcb.study(tiny())
  eq(r2.ran, 0, "the torn row's unit is already there whole")
  eq(select(2, ids(serial)), before, "rows after repair")
end)

if not quick then
  test("shards: their union is the serial run, bit for bit", function()
    local union = {}
    for i = 1, 2 do
      dcb.results, dcb.shard = tmp .. "/shards", {i = i, n = 2}
      local r = dcb.study(tiny())
      assert(r.csv:find("t.shard" .. i .. "of2.csv", 1, true), "shard file " .. r.csv)
      eq(r.aggregates, nil, "no table from a shard")
      for id, row in pairs((ids(r.csv))) do
        assert(not union[id], "a unit in two shards")
        union[id] = row
      end
    end
    local s = ids(serial)
    local n = 0
    for id, row in pairs(s) do
      n = n + 1
      assert(union[id], "unit " .. id .. " in no shard")
      eq(union[id].test_acc, row.test_acc, "accuracy of " .. id)
      eq(union[id].sim_mean, row.sim_mean, "similarity of " .. id)
    end
    for id in pairs(union) do assert(s[id], "a shard unit not in the serial run: " .. id) end
    eq(n, 4, "units")
    eq(#dcb.read_csv(tmp .. "/shards/ablations/t.shard1of2.csv"), 2, "balanced: 2 of the 4 units in shard 1")
  end)
end

test("a unit that fails is recorded with its reason, and retried on the next run", function()
  dcb.results, dcb.shard = tmp .. "/err", {i = 1, n = 1}
  local d = tiny({variants = {{label = "static", conv = "conv"}, {label = "bad", conv = "nosuchconv"}}, seeds = {1}})
  local r = dcb.study(d)
  eq(r.errors, 1, "one error")
  local rows = dcb.read_csv(r.csv)
  local bad
  for _, row in ipairs(rows) do if row.label == "bad" then bad = row end end
  eq(bad.status, "error", "status")
  assert(bad.reason:find("nosuchconv", 1, true), "reason names the value: " .. bad.reason)
  local r2 = dcb.study(d)
  eq(r2.ran, 1, "the failed unit runs again, the good one does not")
end)

dcb.results, dcb.shard = saved_results, saved_shard
os.execute("rm -rf '" .. tmp .. "'")
T.finish("test_study")
