-- dynamic.lua — dynamic convolutions against our own static conv (issue 6,
-- target 2; make bench-dynamic): on the 3x3 layers C=128@28x28 and
-- C=256@14x14, batch 8, compare
--   conv2d winograd        the static reference (our best engine there),
--   conv2d onednn          the peer,
--   condconv E=8, dyconv K=4 in every strategy on the fast engines;
-- target: dynamic / static winograd <= 1.10 for combine_then_conv on the
-- winograd engine. Variants are interleaved round-robin within each
-- repetition (dcb.compare), so a busy machine slows all of them alike;
-- medians and (max-min)/median spread are printed, x_stat (the ratio to the
-- static conv of the same layer and thread count), and the per-phase split
-- of one extra run of each dynamic variant. GFLOP/s counts direct-convolution
-- FLOPs (2*9*C*C*H*W*N) for every variant, so that the column compares times,
-- not each engine's own work.
--   build/dcbench sweeps/bench/dynamic.lua [reps] [threads...]   (default: 7 repetitions, 1 2)
local dcb = require "dcb"
local B = require "bench.benchlib"
local lib = require "sweeplib"

local args = {...}
local reps = math.max(1, math.min(B.num(args, 1, 7), 64))
local thr = {1, 2}
if #args > 1 then
  thr = {}
  for i = 2, math.min(#args, 9) do thr[#thr + 1] = B.num(args, i, 1) end
end
local layers = {{128, 28}, {256, 14}}
local N = 8
-- the static reference first: x_stat divides by it
local variants = {
  {"conv2d", "winograd"},
  {"conv2d", "onednn"},
  {"condconv", "combine_then_conv/winograd"},
  {"condconv", "combine_then_conv/winograd_f2"},
  {"condconv", "combine_then_conv/im2col"},
  {"condconv", "conv_then_combine/winograd"},
  {"dyconv", "combine_then_conv/winograd"},
  {"dyconv", "combine_then_conv/winograd_f2"},
  {"dyconv", "combine_then_conv/im2col"},
  {"dyconv", "conv_then_combine/winograd"},
}
-- the implementation the target is checked on, named by its identity
local function is_target(o) return o:strategy() == "combine_then_conv" and o:engine() == "winograd" end

print(("# bench/dynamic: 3x3 stride 1 pad 1, cin = cout, batch %d, %d repetitions"):format(N, reps))
B.header()
print(("%-8s %3s | %-8s %-30s %9s %7s %7s %7s %8s %7s | %s"):format("layer", "thr", "op", "impl", "median_ms", "spread",
      "GFLOP/s", "x_stat", "floor_ms", "x_floor", "phases ms: routing kernel_gen transform gemm combine"))
local misses, checked = 0, 0
local floor_note
local static_ms = {}
for li, l in ipairs(layers) do
  static_ms[li] = {}
  for ti, threads in ipairs(thr) do
    local C, H = l[1], l[2]
    local x = dcb.randn({N, C, H, H}, 1)
    local list = {}
    for vi, v in ipairs(variants) do
      local o, status, msg = B.op(v[1], v[2], {cin = C, cout = C, k = 3, pad = 1}, threads)
      if not o then
        io.stderr:write(("bench/dynamic: %s %s: %s: %s\n"):format(v[1], v[2], status, msg))
        os.exit(1)
      end
      list[vi] = {name = v[1] .. " " .. v[2], op = o, x = x}
    end
    local r = dcb.compare{variants = list, baseline = list[1].name, repetitions = reps, min_time = 0.04,
                          max_inner = 1 << 12, profile = true, print = false, flops = 2.0 * N * 9 * C * C * H * H}
    for vi, v in ipairs(r.variants) do
      if v.status ~= "ok" then
        io.stderr:write(("bench/dynamic: %s: %s\n"):format(v.name, v.reason))
        os.exit(1)
      end
      local note, fl, xf = "", "", ""
      if v.op ~= "conv2d" then
        -- point 3's floor: the static conv of this run plus the least the dynamic path adds
        local extra, why = lib.dyn_floor_extra(list[vi].op:params(), N, "winograd", threads)
        if extra then
          local floor = r.variants[1].median + extra
          fl, xf = ("%.3f"):format(1e3 * floor), ("%.2f"):format(v.median / floor)
        elseif not floor_note then
          floor_note = "# no floor columns: " .. tostring(why) .. " (dcbench calibrate)"
        end
        local p, q = v.phases, v.ratio
        note = ("%.2f %.2f %.2f %.2f %.2f"):format(1e3 * p.routing, 1e3 * p.kernel_gen, 1e3 * p.transform,
                                                   1e3 * p.gemm, 1e3 * p.combine)
        if is_target(list[vi].op) then
          note = note .. (q <= 1.10 and "  target <= 1.10 ok" or "  target <= 1.10 MISS")
          if xf ~= "" then note = note .. (tonumber(xf) <= 1.2 and ", floor <= 1.2 ok" or ", floor <= 1.2 MISS") end
          checked = checked + 1
          if q > 1.10 then misses = misses + 1 end
        end
      end
      print(("%4d@%-3d %3d | %-8s %-30s %9.3f %6.1f%% %7.1f %7.2f %8s %7s | %s"):format(C, H, threads, v.op, v.impl,
            1e3 * v.median, 100 * v.spread, v.gflops, v.ratio, fl, xf, note))
    end
    static_ms[li][ti] = 1e3 * r.variants[1].median
    io.stdout:flush()
  end
end
for li, l in ipairs(layers) do
  for ti = 2, #thr do
    print(("# static winograd %d@%d: %d -> %d threads: %.2fx"):format(l[1], l[2], thr[1], thr[ti],
          static_ms[li][1] / static_ms[li][ti]))
  end
end
print("# x_stat = median / median of conv2d winograd in the same run and thread count")
print(floor_note or ("# floor_ms = that static median + the bank once and the N mixed kernels at the calibrated "
  .. "bandwidth + their mixing and F(4x4) transform at the calibrated peak (sweeplib.dyn_floor_extra); "
  .. "x_floor = median / floor_ms"))
print(("# %d of %d combine_then_conv/winograd targets missed"):format(misses, checked))
