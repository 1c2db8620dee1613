-- weightnet.lua — WeightNet's M, G (lambda = M/G) grid: MACs, parameters,
-- time, and the share of the time spent generating kernels.
local dcb = require "dcb"
local lib = require "sweeplib"
local pick = lib.pick

if lib.have("weightnet") then
  local C = pick(64, 32)
  local r = dcb.sweep{
    name = "weightnet", op = "weightnet",
    base = {cin = C, cout = C, k = 3, pad = 1},
    grid = {M = pick({1, 2, 4, 8, 16}, {2, 4}), G = pick({1, 2, 4}, {1, 2}), N = pick({1, 8}, {4}),
            H = pick({28}, {14})},
    filter = function(p) return p.M % p.G == 0 end,   -- lambda = M/G is an integer
    measure = {"time"},
    plot = {{x = "M", y = "time", by = "impl"},
            {x = "M", y = "params", by = "impl", name = "weightnet_params"},
            {x = "M", y = "macs", by = "impl", name = "weightnet_macs"},
            {x = "M", y = "phase_kernel_gen_s", by = "impl", name = "weightnet_kernel_gen"}},
  }
  -- the share of a forward spent generating kernels, from the per-phase profile
  local rows = dcb.read_csv(r.csv)
  print(("%-28s %4s %4s %6s %12s %10s %8s"):format("impl", "M", "G", "N", "macs", "time_ms", "kgen_%"))
  for _, row in ipairs(rows) do
    if row.status == "ok" and row.time_median_s then
      local total = 0
      for _, ph in ipairs{"routing", "kernel_gen", "transform", "gemm", "combine"} do
        total = total + (tonumber(row["phase_" .. ph .. "_s"]) or 0)
      end
      local kg = tonumber(row.phase_kernel_gen_s) or 0
      print(("%-28s %4s %4s %6s %12s %10.3f %8.1f"):format(row.impl, row.M, row.G, row.N, row.macs,
        1e3 * tonumber(row.time_median_s), total > 0 and 100 * kg / total or 0))
    end
  end
end
