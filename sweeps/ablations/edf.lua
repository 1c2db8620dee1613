-- edf.lua — a RegNet-style look at a design space (Radosavovic et al. 2020): n models drawn at random
-- (width, depth, which 3x3 conv and its own hyperparameter), each trained briefly with 3 seeds; the
-- error EDF per design choice, and error against MACs with its Pareto front.
-- DRConv is left out of the space: it trains 4x slower than the others here.
local dcb = require "dcb"
local lib = require "ablations.ablib"
local study = require "study"
local n = lib.pick(32, 8)
local models = dcb.sample_space{
  seed = 2020, n = n,
  space = {width = {8, 12, 16, 24}, depth = {1, 2}, conv = {"conv", "condconv", "dyconv", "weightnet", "se", "splat"}},
  given = {conv = {condconv = {experts = {2, 4, 8}}, dyconv = {kernels = {2, 4}}, weightnet = {M = {2, 4, 8}},
                   se = {reduction = {4, 16}}, splat = {radix = {2, 4}}}},
}
local variants = {{label = "static width=16 depth=1", conv = "conv", width = 16, depth = 1, baseline = true}}
for _, m in ipairs(models) do variants[#variants + 1] = m end

local function edf_figures(def, aggs, base, result)
  -- error EDF: the fraction of models with error below e, per value of each design choice
  local dat = base .. "_edf.dat"
  local fd = assert(io.open(dat, "w"))
  local panels = {}
  for _, key in ipairs{"conv", "width", "depth"} do
    local groups, order = {}, {}
    for _, a in ipairs(aggs) do
      if not a.is_baseline and a.n > 0 then
        local v = tostring(a.variant[key])
        if not groups[v] then groups[v] = {}; order[#order + 1] = v end
        table.insert(groups[v], 100 * (1 - a.mean))
      end
    end
    table.sort(order, function(x, y)
      local nx, ny = tonumber(x), tonumber(y)
      if nx and ny then return nx < ny end
      return x < y
    end)
    local idx = {}
    for _, v in ipairs(order) do
      local errs = groups[v]
      table.sort(errs)
      fd:write(("# %s=%s\n"):format(key, v))
      fd:write(("%.6f 0\n"):format(errs[1]))
      for i, e in ipairs(errs) do fd:write(("%.6f %.6f\n"):format(e, i / #errs)) end
      fd:write("\n\n")
      idx[#idx + 1] = {title = ("%s=%s (n=%d)"):format(key, v, #errs)}
    end
    panels[#panels + 1] = {key = key, series = idx}
  end
  fd:close()
  local lines = {'set multiplot layout 1,3 title "Error EDFs of ' .. #aggs - 1 .. ' sampled models, per design choice (mean over ' ..
                 #def.seeds .. ' seeds)"', 'set xlabel "test error (%)"', 'set ylabel "fraction of models"',
                 "set yrange [0:1]", "set key bottom right", "set key font \",8\""}
  local block = 0
  for _, p in ipairs(panels) do
    local plots = {}
    for i, s in ipairs(p.series) do
      plots[#plots + 1] = ("%s index %d using 1:2 with steps lt %d title %s noenhanced"):format(study.gp_str(dat), block, i,
                                                                                         study.gp_str(s.title))
      block = block + 1
    end
    lines[#lines + 1] = ("set title %s"):format(study.gp_str(p.key))
    lines[#lines + 1] = "plot " .. table.concat(plots, ", ")
  end
  lines[#lines + 1] = "unset multiplot"
  local fig = study.figure(base .. "_edf", table.concat(lines, "\n"):gsub("set terminal", "set terminal"))
  if fig then result.figures[#result.figures + 1] = fig end
  -- error against MACs, the Pareto front (no other model with fewer MACs and lower error)
  local pts = {}
  for _, a in ipairs(aggs) do if a.n > 0 then pts[#pts + 1] = a end end
  table.sort(pts, function(x, y) return x.macs < y.macs end)
  local sd = base .. "_pareto.dat"
  local f2 = assert(io.open(sd, "w"))
  f2:write("# models\n")
  for _, a in ipairs(pts) do f2:write(("%.6f %.6f %s\n"):format(a.macs / 1e6, 100 * (1 - a.mean), study.gp_str(a.variant.conv))) end
  f2:write("\n\n# front\n")
  local best = math.huge
  for _, a in ipairs(pts) do
    local e = 100 * (1 - a.mean)
    if e < best then best = e; f2:write(("%.6f %.6f\n"):format(a.macs / 1e6, e)) end
  end
  f2:write("\n\n# baseline\n")
  for _, a in ipairs(pts) do if a.is_baseline then f2:write(("%.6f %.6f\n"):format(a.macs / 1e6, 100 * (1 - a.mean))) end end
  f2:close()
  local fig2 = study.figure(base .. "_pareto", table.concat({
    'set title "Test error against MACs of the sampled models, with the Pareto front"',
    'set xlabel "MMACs per image"', 'set ylabel "test error (%)"', "set logscale x 2", 'set format x "%g"',
    "set key outside right top vertical",
    ("plot %s index 0 using 1:2 with points lt 1 pt 7 title \"sampled models\", %s index 0 using 1:2:3 with labels offset char 0.6,0.5 left font \",7\" noenhanced notitle, %s index 1 using 1:2 with steps lt 2 lw 2 title \"Pareto front\", %s index 2 using 1:2 with points lt 7 pt 5 ps 1.6 title \"static baseline\""):format(
      study.gp_str(sd), study.gp_str(sd), study.gp_str(sd), study.gp_str(sd))}, "\n"))
  if fig2 then result.figures[#result.figures + 1] = fig2 end
end

return lib.study{
  name = "edf", title = "Design space: width, depth, conv type",
  variants = variants, figures = edf_figures,
  train = lib.pick({subset = 2000, test_subset = 2000, epochs = 1, batch = 64, lr = 0.1, optimizer = "sgd",
                    schedule = "onecycle"},
                   {subset = 1024, test_subset = 1000, epochs = 1, batch = 64, lr = 0.1, optimizer = "sgd",
                    schedule = "onecycle"}),
  note = "Models drawn by dcb.sample_space{seed = 2020, n = " .. n .. "}; `m<i>` labels list each model's choices.",
}
