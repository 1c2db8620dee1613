-- Tests of `dcbench compare A.csv B.csv` and dcb.compare_results (harness/lua/compare_results.lua).
-- A tiny real sweep runs twice (two --results directories) and is compared without asserting on
-- its timings; then copies of its CSV with controlled times (one row's times doubled, a row removed
-- or failed, a later row superseding an earlier one, a changed machine) check the ratio, the
-- interval, the flags, the geometric mean, the counts, the CSV, the figure, the notes and the exit
-- statuses (0, 1, 2, 4).
-- Run: build/dcbench tests/lua/test_compare_results.lua
local dcb = require("dcb")

package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local T = require "testlib"
local test, eq, near, contains, raises = T.test, T.eq, T.near, T.contains, T.raises

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- the program running this test (build/dcbench, or dcbench-san under test-san)
local function this_program()
  local e = os.getenv("DCBENCH")
  if e and e ~= "" then return e end
  local p = io.popen("readlink /proc/$PPID/exe")
  local exe = p and p:read("l")
  if p then p:close() end
  if exe and exe ~= "" then return exe end
  return dcb.home .. "/build/dcbench"
end
local DCBENCH = this_program()

local tmp = os.tmpname()
os.remove(tmp)
dcb.mkdir(tmp)

-- Runs dcbench with args (a shell fragment) in tmp: exit status, stdout, stderr.
local function run(args)
  local cmd = string.format("cd %s && %s %s >out.txt 2>err.txt", q(tmp), q(DCBENCH), args)
  local _, how, code = os.execute(cmd)
  if how ~= "exit" then code = 128 end
  return code, slurp(tmp .. "/out.txt"), slurp(tmp .. "/err.txt")
end

-- the tiny sweep, twice: 2 sizes x 2 implementations = 4 rows in each file
local sweep = [[
local dcb = require 'dcb'
dcb.sweep{name='cmp', op='conv2d', base={cin=4, cout=4, k=3, pad=1}, grid={H={6, 8}},
  impls={'naive', 'im2col'}, repetitions=3, min_time=0.001, roofline=false}
]]
dcb.write_file(tmp .. "/cmp.lua", sweep)
local A = tmp .. "/ra/cmp/cmp.csv"
local B = tmp .. "/rb/cmp/cmp.csv"
do
  local c1, _, e1 = run("--results ra cmp.lua")
  local c2, _, e2 = run("--results rb cmp.lua")
  assert(c1 == 0 and c2 == 0, "the tiny sweeps failed:\n" .. e1 .. e2)
  assert(exists(A) and exists(B), "the sweeps wrote no CSV")
end

-- CSV editing: a copy of a sweep CSV with rows changed by edit(row, i) (return false: drop it)
local ROWS, COLS = dcb.read_csv(A)
local function csv_text(cols, rows)
  local out = {}
  local function line(cells)
    for i, c in ipairs(cells) do
      c = tostring(c)
      if c:find('[,"]') then c = '"' .. c:gsub('"', '""') .. '"' end
      cells[i] = c
    end
    out[#out + 1] = table.concat(cells, ",") .. "\n"
  end
  line({table.unpack(cols)})
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(cols) do cells[i] = r[c] or "" end
    line(cells)
  end
  return table.concat(out)
end
local function copy_row(r)
  local u = {}
  for k, v in pairs(r) do u[k] = v end
  return u
end
local TIME_COLS = {"time_median_s", "time_mean_s", "time_min_s", "time_max_s", "time_q1_s", "time_q3_s",
                   "time_stddev_s"}
local function scale(r, f)
  for _, c in ipairs(TIME_COLS) do
    if r[c] then r[c] = string.format("%.17g", tonumber(r[c]) * f) end
  end
end
-- every row's spread made controlled: q1 = 0.9 median, q3 = 1.1 median (spread 0: q1 = q3 = median),
-- min and max twice as far
local function controlled(r, spread)
  local m, sp = tonumber(r.time_median_s), spread or 0.1
  r.time_q1_s = string.format("%.17g", m * (1 - sp))
  r.time_q3_s = string.format("%.17g", m * (1 + sp))
  r.time_min_s = string.format("%.17g", m * (1 - 2 * sp))
  r.time_max_s = string.format("%.17g", m * (1 + 2 * sp))
end
local function write_csv(name, edit, extra_rows, spread)
  local rows = {}
  for i, r0 in ipairs(ROWS) do
    local r = copy_row(r0)
    controlled(r, spread)
    if not edit or edit(r, i) ~= false then rows[#rows + 1] = r end
  end
  for _, r in ipairs(extra_rows or {}) do rows[#rows + 1] = r end
  local path = tmp .. "/" .. name
  dcb.write_file(path, csv_text(COLS, rows))
  return path
end
local function row_by(res, impl, H)
  for _, r in ipairs(res.rows) do
    if r.impl == impl and r.H == H then return r end
  end
  error("no compared row " .. impl .. " H=" .. tostring(H), 2)
end
-- the (impl, H) of a source row
local function who(i) return ROWS[i].impl, tonumber(ROWS[i].H) end
assert(#ROWS == 4, "the tiny sweep has 4 rows, got " .. #ROWS)

-- the real runs -----------------------------------------------------------------------------------
test("two real runs of one sweep", function()
  local res = dcb.compare_results(A, B, {print = false, out = tmp .. "/real.csv"})
  eq(res.compared, 4, "rows compared")
  eq(#res.rows, 4, "#rows")
  eq(res.only_a, 0, "only_a")
  eq(res.only_b, 0, "only_b")
  eq(res.not_ok, 0, "not_ok")
  eq(res.faster + res.slower + res.same, 4, "every row has a flag")
  assert(res.geomean > 0, "geomean")
  eq(res.csv, tmp .. "/real.csv", "csv path")
  eq(res.figure, tmp .. "/real.png", "figure path")
  assert(exists(res.figure), "the figure exists")
  for _, r in ipairs(res.rows) do
    assert(r.lo <= r.ratio and r.ratio <= r.hi, "the ratio lies in its interval")
    near(r.ratio, r.median_b / r.median_a, 1e-12, "ratio = median_b / median_a")
    assert(r.flag == "faster" or r.flag == "slower" or r.flag == "=", "flag " .. tostring(r.flag))
    eq(r.cin, 4, "hyperparameters on the row")
    eq(r.params.k, 3, "row.params")
  end
  -- sorted by point (H), then impl in the sweep's order
  eq(res.rows[1].H, 6, "first row H")
  eq(res.rows[1].impl, "naive", "first row impl")
  eq(res.rows[2].impl, "im2col", "second row impl")
  eq(res.rows[3].H, 8, "third row H")
  -- the command: exit 0 whatever the differences; default output beside B
  local code, out, err = run("compare ra/cmp/cmp.csv rb/cmp/cmp.csv")
  eq(code, 0, "exit status (" .. err .. ")")
  contains(out, "4 row(s) compared", "summary")
  contains(out, "H=6", "rows named by their hyperparameters")
  contains(out, "im2col", "and their impl")
  assert(exists(tmp .. "/rb/cmp/cmp_vs_cmp.csv"), "default CSV beside B")
  assert(exists(tmp .. "/rb/cmp/cmp_vs_cmp.png"), "default figure beside B")
end)

-- the quartiles, or min and max where a CSV has none ---------------------------------------------
test("the interval comes from the quartiles; a CSV without them falls back to min and max", function()
  local a = write_csv("q_a.csv")
  local b = write_csv("q_b.csv", function(r, i) if i == 1 then scale(r, 2) end end)
  local res = dcb.compare_results(a, b, {print = false, plot = false})
  local r = row_by(res, who(1))
  eq(r.spread, "quartiles", "spread source")
  near(r.lo, 2 * 0.9 / 1.1, 1e-9, "lo = q1_B / q3_A")
  -- the same rows without the quartile columns, as an older dcbench wrote them
  local cols = {}
  for _, c in ipairs(COLS) do if c ~= "time_q1_s" and c ~= "time_q3_s" then cols[#cols + 1] = c end end
  local function strip(path, name)
    local rows = dcb.read_csv(path)
    local out = tmp .. "/" .. name
    dcb.write_file(out, csv_text(cols, rows))
    return out
  end
  local oa, ob = strip(a, "old_a.csv"), strip(b, "old_b.csv")
  local code, out = run("compare --no-plot " .. oa .. " " .. ob)
  eq(code, 0, "exit status")
  contains(out, "have no quartiles", "the fallback is said")
  local res2 = dcb.compare_results(oa, ob, {print = false, plot = false})
  local r2 = row_by(res2, who(1))
  eq(r2.spread, "min-max", "spread source without quartiles")
  near(r2.lo, 2 * 0.8 / 1.2, 1e-9, "lo = min_B / max_A")
  near(r2.hi, 2 * 1.2 / 0.8, 1e-9, "hi = max_B / min_A")
end)

-- controlled times --------------------------------------------------------------------------------
local CA = write_csv("ctl_a.csv")
local slow_impl, slow_H = who(3)
local CB2 = write_csv("ctl_b2.csv", function(r, i) if i == 3 then scale(r, 2) end end)

test("one row's times doubled: exactly that row is slower, ratio 2", function()
  local res = dcb.compare_results(CA, CB2, {print = false, plot = false})
  eq(res.compared, 4, "compared")
  eq(res.slower, 1, "slower")
  eq(res.faster, 0, "faster")
  eq(res.same, 3, "same")
  local r = row_by(res, slow_impl, slow_H)
  eq(r.flag, "slower", "the doubled row's flag")
  near(r.ratio, 2, 1e-9, "ratio")
  near(r.lo, 1.8 / 1.1, 1e-9, "lo = q1_B / q3_A")
  near(r.hi, 2.2 / 0.9, 1e-9, "hi = q3_B / q1_A")
  for _, o in ipairs(res.rows) do
    if o ~= r then
      eq(o.flag, "=", "an unchanged row")
      near(o.ratio, 1, 1e-12, "an unchanged row's ratio")
    end
  end
  near(res.geomean, 2 ^ (1 / 4), 1e-9, "geomean over 4 rows")
  eq(res.figure, nil, "plot=false: no figure")
  assert(not exists(tmp .. "/ctl_b2_vs_ctl_a.png"), "plot=false draws nothing")
  -- the CSV
  local rows = dcb.read_csv(res.csv)
  eq(res.csv, tmp .. "/ctl_b2_vs_ctl_a.csv", "default out beside B")
  eq(#rows, 4, "CSV rows")
  local n = 0
  for _, c in ipairs(rows) do
    if c.flag == "slower" then
      n = n + 1
      near(tonumber(c.ratio), 2, 1e-5, "CSV ratio")
      eq(c.impl, slow_impl, "CSV impl")
      eq(tonumber(c.H), slow_H, "CSV H")
      eq(c.point_id, ROWS[3].point_id, "CSV point id")
    end
  end
  eq(n, 1, "one slower row in the CSV")
end)

test("a doubled and a halved row: geomean 1, one slower, one faster", function()
  local fast_impl, fast_H = who(2)
  local path = write_csv("ctl_b3.csv", function(r, i)
    if i == 3 then scale(r, 2) elseif i == 2 then scale(r, 0.5) end
  end)
  local res = dcb.compare_results(CA, path, {print = false, plot = false})
  eq(res.slower, 1, "slower")
  eq(res.faster, 1, "faster")
  eq(res.same, 2, "same")
  eq(row_by(res, fast_impl, fast_H).flag, "faster", "the halved row")
  near(row_by(res, fast_impl, fast_H).ratio, 0.5, 1e-9, "its ratio")
  near(res.geomean, 1, 1e-9, "geomean")
  near(res.by_impl[slow_impl].geomean, slow_impl == fast_impl and 1 or 2 ^ (1 / 2), 1e-9, "per-impl geomean")
end)

test("threshold: 3% with no spread is within 5%, beyond 1%", function()
  local a0 = write_csv("thr_a.csv", nil, nil, 0)
  local b0 = write_csv("thr_b.csv", function(r, i) if i == 1 then scale(r, 1.03) end end, nil, 0)
  local i1, h1 = who(1)
  local res = dcb.compare_results(a0, b0, {print = false, plot = false})
  eq(row_by(res, i1, h1).flag, "=", "3% < 5%")
  eq(res.slower, 0, "none slower at 5%")
  res = dcb.compare_results(a0, b0, {print = false, plot = false, threshold = 0.01})
  eq(row_by(res, i1, h1).flag, "slower", "3% > 1%")
  eq(res.threshold, 0.01, "threshold returned")
  local code, out = run("compare --no-plot --threshold 0.01 thr_a.csv thr_b.csv")
  eq(code, 0, "exit status")
  contains(out, "1 slower", "the command's summary")
  -- the doubled row is within a 200% threshold
  res = dcb.compare_results(CA, CB2, {print = false, plot = false, threshold = 2})
  eq(res.slower, 0, "threshold 2")
end)

test("rows only in A, only in B, not ok on a side, superseded by a later row", function()
  -- B lacks row 1, has row 2 failed, row 4 measured again (its last row, tripled, wins);
  -- A lacks row 3
  local a = write_csv("part_a.csv", function(_, i) if i == 3 then return false end end)
  local again = copy_row(ROWS[4])
  controlled(again)
  scale(again, 3)
  local b = write_csv("part_b.csv", function(r, i)
    if i == 1 then return false end
    if i == 2 then
      r.status = "error"
      r.reason = "invalid_param: made up, for the test"
    end
  end, {again})
  local res = dcb.compare_results(a, b, {print = false, plot = false})
  eq(res.only_a, 1, "only_a")
  eq(res.only_b, 1, "only_b")
  eq(res.not_ok, 1, "not_ok")
  eq(res.compared, 1, "compared")
  local i4, h4 = who(4)
  local r = row_by(res, i4, h4)
  near(r.ratio, 3, 1e-9, "the later row of a point is its result")
  eq(r.flag, "slower", "its flag")
  local code, out = run("compare --no-plot part_a.csv part_b.csv")
  eq(code, 0, "exit status")
  contains(out, "1 only in A, 1 only in B, 1 not ok on a side (B: 1 error)", "counts printed")
  contains(out, "1 earlier attempt(s) superseded", "superseded rows reported")
end)

test("exit statuses: --fail-on-slower, missing file, not a sweep CSV, nothing in common", function()
  local code, _, err = run("compare --no-plot --fail-on-slower ctl_a.csv ctl_b2.csv")
  eq(code, 4, "--fail-on-slower with a slower row (" .. err .. ")")
  contains(err, "--fail-on-slower", "says why")
  code = run("compare --no-plot ctl_a.csv ctl_b2.csv")
  eq(code, 0, "without --fail-on-slower")
  code = run("compare --no-plot --fail-on-slower ctl_b2.csv ctl_a.csv")
  eq(code, 0, "--fail-on-slower when only faster")
  code, _, err = run("compare ctl_a.csv no_such.csv")
  eq(code, 2, "a missing file")
  contains(err, "no_such.csv", "names the file")
  contains(err, "No such file", "and the reason")
  dcb.write_file(tmp .. "/other.csv", "a,b\n1,2\n")
  code, _, err = run("compare other.csv ctl_a.csv")
  eq(code, 2, "not a sweep CSV")
  contains(err, "other.csv (A): not a sweep CSV: it has no point_id column", "why")
  code, _, err = run("compare --no-plot ctl_a.csv " .. q(tmp .. "/ra/cmp/cmp.json"))
  eq(code, 2, "a JSON is no CSV")
  contains(err, "cmp.json (B)", "names it")
  local disjoint = write_csv("disjoint.csv", function(r) r.point_id = "ffff" .. r.point_id:sub(5) end)
  code, _, err = run("compare ctl_a.csv disjoint.csv")
  eq(code, 1, "no row in common")
  contains(err, "no row in common", "says so")
  local failed_b = write_csv("failed_b.csv", function(r) r.status = "unsupported" end)
  code, _, err = run("compare ctl_a.csv failed_b.csv")
  eq(code, 1, "rows in common, none ok on both sides")
  contains(err, "none ok and timed on both sides", "says so")
  assert(failed_b and disjoint, "paths")
  code, _, err = run("compare --out ctl_a.csv ctl_a.csv ctl_b2.csv")
  eq(code, 2, "an output that would overwrite A")
  contains(err, "would overwrite A", "says so")
  code, _, err = run("compare --threshold x ctl_a.csv ctl_b2.csv")
  eq(code, 2, "a bad threshold")
  contains(err, "--threshold", "names the option")
  code, _, err = run("compare --bogus ctl_a.csv ctl_b2.csv")
  eq(code, 2, "an unknown option")
  contains(err, "unknown option '--bogus'", "names it")
  code, _, err = run("compare ctl_a.csv")
  eq(code, 2, "one file")
  contains(err, "two sweep CSVs are needed", "says so")
end)

test("the Lua function raises the refusals", function()
  raises(function() dcb.compare_results(CA, tmp .. "/no_such.csv") end, "dcb.compare_results: ", "prefix")
  raises(function() dcb.compare_results(CA, tmp .. "/no_such.csv") end, "no_such.csv (B): cannot open it",
         "a missing file")
  raises(function() dcb.compare_results(CA, tmp .. "/disjoint.csv", {print = false}) end, "no row in common",
         "nothing in common")
  raises(function() dcb.compare_results(CA, CB2, {thresold = 0.1}) end, "unknown option 'thresold'", "a typo")
  raises(function() dcb.compare_results(CA, CB2, {threshold = -1}) end, "threshold must be a number >= 0",
         "a negative threshold")
  raises(function() dcb.compare_results(CA, CB2, {format = "gif"}) end, "valid formats are png, pdf, svg",
         "a format")
end)

test("figure: --format and out=, log y over a 10x span", function()
  local code = run("--format svg compare --out figs/cmp.csv ctl_a.csv ctl_b2.csv")
  eq(code, 0, "exit status")
  assert(exists(tmp .. "/figs/cmp.csv"), "--out CSV, its directory made")
  assert(exists(tmp .. "/figs/cmp.svg"), "the figure in --format")
  local big = write_csv("big_b.csv", function(r, i) if i == 1 then scale(r, 50) end end)
  local res = dcb.compare_results(CA, big, {print = false, out = tmp .. "/big.csv", format = "pdf"})
  eq(res.figure, tmp .. "/big.pdf", "format= option")
  assert(exists(res.figure), "the PDF exists")
  contains(slurp(tmp .. "/big.gp"), "logy = 1", "log y when the ratios span 50x")
  contains(slurp(tmp .. "/figs/cmp.gp"), "logy = 0", "linear y over 2x")
end)

test("notes: another machine, contended rows", function()
  local ja = slurp(tmp .. "/ra/cmp/cmp.json")
  dcb.write_file(tmp .. "/ctl_a.json", ja)
  local jb = ja:gsub('"cpu_model": "[^"]*"', '"cpu_model": "Test CPU 9000"')
  local cb = write_csv("ctl_c.csv", function(r, i) if i == 2 then r.contended = "1" end end)
  dcb.write_file(tmp .. "/ctl_c.json", jb)
  local code, out = run("compare --no-plot ctl_a.csv ctl_c.csv")
  eq(code, 0, "exit status")
  contains(out, "different machines", "a different CPU model is noted")
  contains(out, "Test CPU 9000", "naming it")
  contains(out, "contended=1): 0 in A, 1 in B", "contended rows counted")
  contains(out, "contended B", "and marked")
  local res = dcb.compare_results(CA, cb, {print = false, plot = false})
  local i2, h2 = who(2)
  eq(row_by(res, i2, h2).contended_b, true, "contended_b on the row")
  eq(res.machine_b.cpu_model, "Test CPU 9000", "machine_b")
  os.remove(tmp .. "/ctl_c.json")
  code, out = run("compare --no-plot ctl_a.csv ctl_c.csv")
  contains(out, "no machine description beside B", "a missing JSON is noted")
end)

os.execute("rm -rf " .. q(tmp))
T.finish("test_compare_results")
