-- seq.lua — the sequence operators against attention (issue 6's dynconv1d
-- target; make bench-seq): dynconv1d and lightconv (every strategy but the
-- naive oracle) and mhattention/gemm on x (N, T, C), C = 512, 16 heads,
-- batch 8 by default, for each kernel width K and length T. Variants are
-- interleaved round-robin within each repetition (dcb.compare) so that a
-- busy machine slows all of them alike; medians and the min-max spread are
-- printed, and with -j one JSON line per (variant, K, T) for
-- scripts/peers/seq_target.py to join with PyTorch's. Weights are seeded
-- (PyTorch's default initialisation), x is N(0, 1).
--
--   build/dcbench sweeps/bench/seq.lua [-r reps] [-t threads] [-N batch] [-C channels] [-H heads]
--                 [-T 256,1024,2048] [-K 3,31] [-v variant,...] [-j] [-p]
--   -p: after each variant's line, one run's per-phase profile.
--   variants: dynconv1d/{unfold,band,direct,naive}, lightconv/{...},
--             mhattention/{gemm,naive}; default: all but the naive ones.
local dcb = require "dcb"
local B = require "bench.benchlib"

local MAXR = 64
local function usage()
  io.stderr:write(("usage: seq.lua [-r reps(1..%d)] [-t threads] [-N batch] [-C channels] [-H heads] "
                   .. "[-T 256,1024,2048] [-K 3,31] [-v op/impl,...] [-j] [-p]\n"):format(MAXR))
  os.exit(2)
end

local o = {r = 5, t = 1, N = 8, C = 512, H = 16, T = {256, 1024, 2048}, K = {3, 31}, j = false, p = false,
           v = {"dynconv1d/direct", "dynconv1d/unfold", "dynconv1d/band", "lightconv/direct", "lightconv/unfold",
                "lightconv/band", "mhattention/gemm"}}
local args = {...}
local i = 1
while i <= #args do
  local a, v = args[i], args[i + 1]
  if a == "-j" or a == "-p" then
    o[a:sub(2)] = true
  else
    if not v then usage() end
    i = i + 1
    local k = a:match("^%-([rtNCHTKv])$")
    if not k then usage() end
    if k == "T" or k == "K" then
      o[k] = B.list(v)
    elseif k == "v" then
      o.v = {}
      for name in v:gmatch("[^,]+") do o.v[#o.v + 1] = name end
    else
      o[k] = math.tointeger(tonumber(v)) or 0
    end
  end
  i = i + 1
end
if o.r < 1 or o.r > MAXR or o.t < 1 or o.N < 1 or o.C < 1 or o.H < 1 or #o.T < 1 or #o.K < 1 then usage() end

print(("# bench/seq: x (N=%d, T, C=%d), %d heads, padding same, weight_softmax, no bias; %d thread(s), "
       .. "%d repetitions"):format(o.N, o.C, o.H, o.t, o.r))
B.header()
print(("%3s %5s | %-18s %10s %7s %9s | %s"):format("K", "T", "variant", "median_ms", "spread", "GFLOP/s",
      "vs mhattention/gemm"))
for _, K in ipairs(o.K) do
  for _, T in ipairs(o.T) do
    local x = dcb.randn({o.N, T, o.C}, 1)
    local list = {}
    for _, name in ipairs(o.v) do
      local op, impl = name:match("^([^/]+)/(.+)$")
      local p = {channels = o.C, heads = o.H}
      if op and B.has_param(op, "kernel_size") then p.kernel_size = K end
      local opv, status, msg
      if op then opv, status, msg = B.op(op, impl, p, o.t) end
      if opv then
        list[#list + 1] = {name = name, op = opv, x = x, flops = 2 * opv:cost(x).executed_macs}
      elseif op then
        io.stderr:write(("bench/seq: %s K=%d T=%d: %s: %s\n"):format(name, K, T, status, msg))
      end
    end
    local r = #list > 0 and dcb.compare{variants = list, repetitions = o.r, min_time = 0.03, profile = o.p,
                                        print = false}
    local got = r and r.by_name or {}
    local att = got["mhattention/gemm"]
    att = att and att.status == "ok" and att.median or nil
    for _, name in ipairs(o.v) do
      local v = got[name]
      if not v or v.status ~= "ok" then
        if v then io.stderr:write(("bench/seq: %s K=%d T=%d: %s\n"):format(name, K, T, v.reason)) end
        print(("%3d %5d | %-18s %10s"):format(K, T, name, "n/a"))
      else
        local ratio = ""
        if att and v.op ~= "mhattention" then ratio = ("%.2fx faster"):format(att / v.median) end
        print(("%3d %5d | %-18s %10.3f %6.1f%% %9.1f | %s"):format(K, T, name, 1e3 * v.median, 100 * v.spread,
              v.gflops, ratio))
        if o.p and v.phases then
          local line = "#   one run's phases (ms):"
          for _, ph in ipairs({"routing", "kernel_gen", "transform", "gemm", "combine"}) do
            if v.phases[ph] > 0 then line = line .. (" %s %.3f"):format(ph, 1e3 * v.phases[ph]) end
          end
          print(line)
        end
        if o.j then
          print(('{"variant": "%s", "N": %d, "C": %d, "H": %d, "K": %d, "T": %d, "threads": %d, "median": %.9g, '
                 .. '"min": %.9g, "max": %.9g}'):format(name, o.N, o.C, o.H, K, T, o.t, v.median, v.min, v.max))
        end
      end
    end
    io.stdout:flush()
  end
end
print("# GFLOP/s = 2 * executed MACs (dcb_op_cost) / median time")
