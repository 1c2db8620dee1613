-- peers.lua — our best implementation of each layer of the performance issue
-- against its peers, side by side in one run: oneDNN (registered as conv2d
-- "onednn", timed by the same machinery) and, when Debian's python3-torch is
-- there, PyTorch (scripts/peers/torch_peers.py, timed in its own process on
-- the same shapes and threads). Writes results/peers/peers.csv (medians with
-- min and max, the ratios), peers.md (the same as a markdown table, a row per
-- layer and thread count) and peers.png: our time over each peer's time per
-- layer (below 1: we are faster).
--   build/dcbench sweeps/peers.lua            (--quick: batch 1 layers, 1 thread)
local dcb = require "dcb"
local lib = require "sweeplib"
local pick = lib.pick

local out = (dcb.results or "results") .. "/peers"
os.execute("mkdir -p '" .. out .. "'")
local threads_list = pick({1, 2}, {1})
local reps, min_time = pick(7, 3), pick(0.05, 0.01)
local home = dcb.home or "."
local python = os.getenv("DCB_PYTHON") or "/usr/bin/python3"
local have_torch = os.execute(python .. " -c 'import torch' 2>/dev/null") == true
if not have_torch then
  print("note: no PyTorch for " .. python .. " (python3-torch); only oneDNN is compared")
end

-- the layers of the issue's targets; `static` names our static conv of the
-- same shape that a dynamic op is held against (target 2)
local L = {}
local function add(t) L[#L + 1] = t end
for _, N in ipairs(pick({1, 8}, {1})) do
  for _, ch in ipairs({{64, 56}, {128, 28}, {256, 14}, {512, 7}}) do
    add{name = ("3x3 %d@%d N=%d"):format(ch[1], ch[2], N), op = "conv2d", shape = {N, ch[1], ch[2], ch[2]},
        params = {cin = ch[1], cout = ch[1], k = 3, pad = 1}, ours = {"winograd", "winograd_f2", "winograd_f6", "direct", "im2col"},
        onednn = true, torch = "conv2d"}
  end
end
add{name = "1x1 256->64@56 N=1", op = "conv2d", shape = {1, 256, 56, 56}, params = {cin = 256, cout = 64, k = 1},
    ours = {"direct", "im2col"}, onednn = true, torch = "conv2d"}
add{name = "dw3x3 144@56 N=1", op = "conv2d", shape = {1, 144, 56, 56},
    params = {cin = 144, cout = 144, k = 3, pad = 1, groups = 144},
    ours = {"direct", "winograd", "im2col"}, onednn = true, torch = "conv2d"}
if not dcb.quick then
  for _, ch in ipairs({{128, 28}, {256, 14}}) do
    for _, d in ipairs({{"condconv", "experts", 8}, {"dyconv", "kernels", 4}}) do
      add{name = ("%s %s=%d %d@%d N=8"):format(d[1], d[2], d[3], ch[1], ch[2]), op = d[1], shape = {8, ch[1], ch[2], ch[2]},
          params = {cin = ch[1], cout = ch[1], k = 3, pad = 1, [d[2]] = d[3]},
          ours = {"combine_then_conv/winograd", "combine_then_conv/winograd_f2", "combine_then_conv/direct",
                  "conv_then_combine/winograd"},
          torch = d[1], static = {op = "conv2d", impl = "winograd", params = {cin = ch[1], cout = ch[1], k = 3, pad = 1}}}
    end
  end
  for _, K in ipairs({3, 31}) do
    for _, T in ipairs({256, 1024, 2048}) do
      add{name = ("dynconv1d K=%d T=%d N=8"):format(K, T), op = "dynconv1d", shape = {8, T, 512},
          params = {channels = 512, heads = 16, kernel_size = K}, ours = {"direct", "band", "unfold"}, torch = "dynconv1d"}
    end
  end
end

local function bench(op, params, impl, threads, x)
  local p = {impl = impl, threads = threads}
  for k, v in pairs(params) do p[k] = v end
  local ok, o = pcall(dcb.op, op, p)
  if not ok then
    print(("note: %s %s (%d thr) not measured: %s"):format(op, impl, threads, tostring(o)))
    return nil
  end
  o:init_weights(1)
  local b = dcb.bench(o, x, {repetitions = reps, min_time = min_time})
  return b
end

-- one JSON line from torch_peers.py -> {variant = {median=, min=, max=}}
local function torch_time(op, params, shape, threads)
  local args = {}
  for k, v in pairs(params) do args[#args + 1] = ("--%s %s"):format(k, tostring(v)) end
  if #shape == 4 then
    args[#args + 1] = ("--N %d --H %d --W %d"):format(shape[1], shape[3], shape[4])
  else
    args[#args + 1] = ("--N %d --T %d"):format(shape[1], shape[2])
  end
  local cmd = ("%s '%s/scripts/peers/torch_peers.py' time %s --threads %d --reps %d %s 2>/dev/null")
    :format(python, home, op, threads, reps, table.concat(args, " "))
  local f = io.popen(cmd)
  local line = f and f:read("a") or ""
  if f then f:close() end
  local res = {}
  local variants = line:match('"variants":%s*(%b{})') or ""
  for name, body in variants:sub(2, -2):gmatch('"([%w_]+)":%s*(%b{})') do
    local med = body:match('"median":%s*([%d%.eE%-+]+)')
    if med then
      res[name] = {median = tonumber(med), min = tonumber(body:match('"min":%s*([%d%.eE%-+]+)')),
                   max = tonumber(body:match('"max":%s*([%d%.eE%-+]+)'))}
    end
  end
  return res
end

local function fmt(v) return v and ("%.6g"):format(v) or "" end
-- % of the calibrated fp32 peak (dcbench calibrate: FMA-bound loops, 1 thread
-- and all threads); absent without a calibration of this run's ISA level
local calib, calib_why = lib.calibration_here()
local function pct(gflops, threads)
  local pk = calib and lib.calibrated_rates(calib, threads)
  return (gflops and pk) and 100 * gflops / pk or nil
end
if not calib then print(("note: %s: the %% of peak columns stay empty"):format(calib_why)) end
local csv = out .. "/peers.csv"
local f = assert(io.open(csv .. ".tmp", "w"))
f:write("layer,op,threads,ours_impl,ours_median_s,ours_min_s,ours_max_s,ours_gflops,ours_pct_peak,peer,peer_variant,",
        "peer_median_s,peer_min_s,peer_max_s,peer_gflops,peer_pct_peak,ours_over_peer\n")
local rows = {}
local md_lines = {} -- one per layer and thread count, for peers.md
for li, layer in ipairs(L) do
  if lib.have(layer.op) then
    for _, threads in ipairs(threads_list) do
      local x = dcb.randn(layer.shape, li)
      local best, best_impl
      for _, impl in ipairs(layer.ours) do
        local b = bench(layer.op, layer.params, impl, threads, x)
        if b and (not best or b.median < best.median) then best, best_impl = b, impl end
      end
      if best then
        local peers = {}
        local line = {layer = layer.name, threads = threads, impl = best_impl, best = best, torch = {}}
        md_lines[#md_lines + 1] = line
        if layer.onednn then
          local b = bench(layer.op, layer.params, "onednn", threads, x)
          if b then peers[#peers + 1] = {"onednn", "onednn", b.median, b.min, b.max} end
        end
        if layer.static then
          local b = bench(layer.static.op, layer.static.params, layer.static.impl, threads, x)
          if b then
            peers[#peers + 1] = {"our static conv", layer.static.impl, b.median, b.min, b.max}
            -- point 3's floor: that static conv plus the least the dynamic path adds
            local extra = lib.dyn_floor_extra(layer.params, layer.shape[1], layer.static.impl, threads)
            if extra then line.floor = b.median + extra end
          end
        end
        if have_torch and layer.torch then
          local p = {}
          for k, v in pairs(layer.params) do p[k] = v end
          for name, t in pairs(torch_time(layer.torch, p, layer.shape, threads)) do
            peers[#peers + 1] = {"pytorch", name, t.median, t.min, t.max}
          end
        end
        for _, pr in ipairs(peers) do
          local ratio = best.median / pr[3]
          if pr[1] == "onednn" then line.onednn = pr[3]
          elseif pr[1] == "pytorch" then line.torch[#line.torch + 1] = {pr[2], pr[3]}
          else line.static = pr[3] end
          -- the peer does the same operator, so the same FLOPs (the operator's own, not executed_*)
          local peer_gflops = best.gflops and best.gflops * best.median / pr[3]
          f:write(('"%s",%s,%d,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n'):format(layer.name, layer.op, threads,
            best_impl, fmt(best.median), fmt(best.min), fmt(best.max), fmt(best.gflops), fmt(pct(best.gflops, threads)),
            pr[1], pr[2], fmt(pr[3]), fmt(pr[4]), fmt(pr[5]), fmt(peer_gflops), fmt(pct(peer_gflops, threads)),
            fmt(ratio)))
          local label = pr[1] == pr[2] and pr[1] or (pr[1] .. " " .. pr[2])
          rows[#rows + 1] = {li = li, layer = layer.name, threads = threads, peer = label, ratio = ratio}
          print(("%-28s %d thr  ours %-28s %9.3f ms  %-24s %9.3f ms  ours/peer %.2f"):format(layer.name, threads,
            best_impl, 1e3 * best.median, pr[1] .. " " .. pr[2], 1e3 * pr[3], ratio))
        end
      end
    end
  end
end
f:close()
os.rename(csv .. ".tmp", csv)

-- the same as a markdown table (docs/PERFORMANCE.md): a row per layer and
-- thread count, ratios against each peer (PyTorch: its fastest variant)
local function ms(v) return v and ("%.3f"):format(1e3 * v) or "-" end
local function ratio(a, b) return (a and b) and ("%.2f"):format(a / b) or "-" end
local mdf = assert(io.open(out .. "/peers.md", "w"))
mdf:write("| layer | thr | ours (best impl) | ms | GFLOP/s | % peak | oneDNN ms | ours/oneDNN | PyTorch ms (variant) |",
          " ours/PyTorch | our static conv ms | ours/static | floor ms | ours/floor |\n|", ("---|"):rep(14), "\n")
for _, m in ipairs(md_lines) do
  table.sort(m.torch, function(a, b) return a[1] < b[1] end)
  local tv, fastest = {}, nil
  for _, t in ipairs(m.torch) do
    tv[#tv + 1] = ("%.2f (%s)"):format(1e3 * t[2], t[1])
    if not fastest or t[2] < fastest then fastest = t[2] end
  end
  local b = m.best
  local pc = pct(b.gflops, m.threads)
  mdf:write(("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n"):format(m.layer, m.threads,
    m.impl, ms(b.median), b.gflops and ("%.0f"):format(b.gflops) or "-", pc and ("%.0f%%"):format(pc) or "-",
    ms(m.onednn), ratio(b.median, m.onednn), #tv > 0 and table.concat(tv, "; ") or "-", ratio(b.median, fastest),
    ms(m.static), ratio(b.median, m.static), ms(m.floor), ratio(b.median, m.floor)))
end
mdf:close()

-- the figure: ours / peer per layer, one series per peer and thread count
local series, order = {}, {}
for _, r in ipairs(rows) do
  local key = ("%s, %d thr"):format(r.peer, r.threads)
  if not series[key] then series[key] = {}; order[#order + 1] = key end
  table.insert(series[key], r)
end
local dat = out .. "/peers.dat"
local d = assert(io.open(dat, "w"))
for _, key in ipairs(order) do
  for _, r in ipairs(series[key]) do d:write(("%d %.6g\n"):format(r.li, r.ratio)) end
  d:write("\n\n")
end
d:close()
local gp = out .. "/peers.gp"
local g = assert(io.open(gp, "w"))
g:write(('fmt = "%s"\noutfile = "%s/peers.%s"\nload "%s/scripts/style.gp"\n'):format(dcb.format or "png", out,
  dcb.format or "png", home))
g:write('set title "our best implementation over each peer (below 1: ours is faster)"\n')
g:write('set ylabel "time ratio ours / peer"\nset logscale y 10\nset format y "%.3g"\nset ytics (0.01, 0.03, 0.1, 0.3, 1, 3, 10)\nset key outside right top noenhanced\n')
g:write('set bmargin 13\n')
g:write("set xtics noenhanced rotate by 45 right (")
for li, layer in ipairs(L) do g:write(('%s"%s" %d'):format(li > 1 and ", " or "", layer.name, li)) end
g:write(")\nset xrange [0.5:" .. (#L + 0.5) .. "]\nset arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#555555'\n")
g:write("plot ")
for i, key in ipairs(order) do
  -- 12 styles (style.gp: colour and marker), then the colours again with open markers
  g:write(('%s"%s" index %d using 1:2 with points lt %d%s ps 1.3 title "%s"'):format(i > 1 and ", " or "", dat,
    i - 1, (i - 1) % 12 + 1, i > 12 and (" pt %d"):format(({4, 6, 8, 10, 12, 14})[(i - 13) % 6 + 1]) or "", key))
end
g:write("\n")
g:close()
if #order > 0 then os.execute("gnuplot '" .. gp .. "'") end
print("peers: " .. #rows .. " comparisons -> " .. csv .. " and " .. out .. "/peers." .. (dcb.format or "png"))
