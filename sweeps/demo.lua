-- demo.lua — small versions of every shipped sweep (run with --quick, as
-- `make demo` and `dcbench demo` do); an operator that is not registered is
-- skipped with a note. Results: <results>/<sweep>/*.csv and figures.
local dcb = require "dcb"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
if not dcb.quick then print("note: demo.lua is meant for --quick; running the full grids") end
local t0 = os.time()
for _, s in ipairs{"engines", "experts", "weightnet", "drconv", "dynconv1d", "attention", "similarity"} do
  print(("== %s"):format(s))
  dofile(here .. s .. ".lua")
end
-- one ablation study, tiny: SE's reduction ratio, 3 seeds of a 1-epoch run on 2048 images; it leaves
-- the accuracy-against-MACs figure results/demo/ablations/se_acc_macs.png
print("== ablations/se (training)")
dofile(here .. "ablations/se.lua")
print(("demo finished in %d s; results in %s/"):format(os.time() - t0, dcb.results))
