-- engine_table.lua — `dcbench engines`: the built-in table of every conv2d
-- engine on a few layers, one thread: median time and spread of 5 samples
-- (each at least 20 ms of runs; one engine after the other), GFLOP/s and the
-- relative error against the naive oracle. Exits 1 when an engine fails
-- other than by answering unsupported.
local dcb = require "dcb"

local layers = {
  {"resnet 3x3 64@56", 1, 64, 64, 56, 3, 1, 1, 1},
  {"resnet 3x3 128@28", 1, 128, 128, 28, 3, 1, 1, 1},
  {"resnet 3x3 256@14", 1, 256, 256, 14, 3, 1, 1, 1},
  {"resnet 3x3 512@7", 1, 512, 512, 7, 3, 1, 1, 1},
  {"1x1 256->64@56", 1, 256, 64, 56, 1, 1, 0, 1},
  {"3x3 s2 128->256@28", 1, 128, 256, 28, 3, 2, 1, 1},
  {"resnext 3x3 g32 128@28", 1, 128, 128, 28, 3, 1, 1, 32},
  {"depthwise 3x3 144@56", 1, 144, 144, 56, 3, 1, 1, 144},
}

local forced = os.getenv("DCB_FORCED_CORETYPE")
print(("# libdcb %s, built with: %s"):format(dcb.version, dcb.build.flags))
print(("# BLAS: %s%s%s"):format(dcb.build.blas, forced and "; environment had OPENBLAS_CORETYPE=" or "", forced or ""))
print(("%-24s %-12s %10s %8s %9s %10s  %s"):format("layer", "engine", "median_ms", "spread", "GFLOP/s", "rel_err",
      "status"))
local failures = 0
for _, l in ipairs(layers) do
  local name, N, cin, cout, H, k, stride, pad, groups = table.unpack(l)
  local x = dcb.randn({N, cin, H, H}, 1)
  local ref
  for _, impl in ipairs(dcb.impls("conv2d")) do
    local ok, op = pcall(dcb.op, "conv2d", {cin = cin, cout = cout, k = k, stride = stride, pad = pad,
                                            groups = groups, threads = 1, impl = impl})
    local status, msg
    if ok then
      op:init_weights(7)
      local v = dcb.compare{variants = {{name = impl, op = op, x = x}}, repetitions = 5, min_time = 0.02,
                            max_inner = 1 << 20, print = false}.variants[1]
      if v.status == "ok" then
        local y = op:forward(x)
        local err = 0
        if not ref then ref = y else err = dcb.rel_err(y, ref) end
        print(("%-24s %-12s %10.3f %7.1f%% %9.1f %10.2e  ok"):format(name, impl, 1e3 * v.median, 100 * v.spread,
              v.gflops, err))
      else
        status, msg = v.reason:match("^([%w_]+): (.*)$")
      end
    else
      status, msg = tostring(op):match("^dcb%.op: ([%w_]+): (.*)$")
      status, msg = status or "error", msg or tostring(op)
    end
    if status then
      print(("%-24s %-12s %10s %8s %9s %10s  %s: %s"):format(name, impl, "", "", "", "", status, msg))
      if not status:match("^unsupported") then failures = failures + 1 end
    end
  end
end
print("# GFLOP/s counts 2 * MACs of the direct convolution; rel_err is against naive.")
if failures > 0 then os.exit(1) end
