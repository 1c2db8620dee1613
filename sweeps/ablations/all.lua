-- all.lua — every ablation study in turn (make ablations), then the summary: one figure of accuracy
-- against MACs over all image studies and <results>/ablations/README.md, which collects the tables.
-- Run it sharded (scripts/parallel_sweep.sh, scripts/slurm_sweep.sbatch): each shard trains its
-- share of every study; the run after the merge writes the tables and figures.
local dcb = require "dcb"
local study = require "study"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local names = arg and arg[1] and {} or {"weightnet", "condconv", "dyconv", "drconv", "sk_splat", "se", "seq",
                                        "similarity", "edf"}
if arg and arg[1] then for s in arg[1]:gmatch("[^,]+") do names[#names + 1] = s end end
local t0 = dcb.now()
local results = {}
for _, name in ipairs(names) do
  io.stderr:write("== ablation ", name, "\n")
  results[#results + 1] = {name = name, r = dofile(here .. name .. ".lua")}
end
if dcb.shard and dcb.shard.n > 1 then
  print(("ablations: shard %d/%d done in %.0f s"):format(dcb.shard.i, dcb.shard.n, dcb.now() - t0))
  return
end

local dir = dcb.results .. "/ablations"
-- every image study's variants on one accuracy-per-MAC figure; the static baseline once
local series, base = {}, nil
for _, e in ipairs(results) do
  local aggs = e.r.aggregates
  if aggs and e.name ~= "seq" and e.name ~= "edf" then
    local pts = {}
    for _, a in ipairs(aggs) do
      if a.n > 0 and a.macs then
        local p = {macs = a.macs, mean = a.mean, half = a.half == a.half and a.half or 0, label = a.label}
        if a.is_baseline then base = base or p else pts[#pts + 1] = p end
      end
    end
    if #pts > 0 then series[#series + 1] = {title = e.name, points = pts} end
  end
end
if base then series[#series + 1] = {title = "static baseline", points = {base}, pt = 5, labels = true} end
local fig = #series > 0 and study.fig_acc_macs("Fashion-MNIST test accuracy against MACs, every image study " ..
                                               "(mean and 95% interval over seeds)", series, dir .. "/acc_macs_all")
local md = {"# Ablation studies\n",
            ("Written by `make ablations` (sweeps/ablations/all.lua) in %.0f s of this run. Each study's table " ..
             "follows; figures beside it in this directory (PNG, PDF, SVG).\n"):format(dcb.now() - t0)}
if fig then md[#md + 1] = "![accuracy against MACs](acc_macs_all.png)\n" end
for _, e in ipairs(results) do
  local p = e.r.table_md
  local f = p and io.open(p)
  if f then
    local text = f:read("a")
    f:close()
    md[#md + 1] = (text:gsub("^# ", "## "))
    for _, g in ipairs(e.r.figures or {}) do
      local b = g:match("([^/]+)$")
      md[#md + 1] = ("![%s](%s)"):format(b, b)
    end
    md[#md + 1] = ""
  end
end
dcb.write_file(dir .. "/README.md", table.concat(md, "\n") .. "\n")
print(("ablations: %d studies in %.0f s; summary %s/README.md"):format(#results, dcb.now() - t0, dir))
