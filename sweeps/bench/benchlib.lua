-- benchlib.lua — what the focused benchmarks of sweeps/bench/ share
-- (require "bench.benchlib"): the build lines of their headers, operators
-- made the same way (weights from seed 3), and their command lines.
local dcb = require "dcb"
local M = {}

-- "# libdcb ...; flags: ...", "# BLAS: ...<extra>" and, when the environment
-- forced an OpenBLAS core, the line that says it was dropped
function M.header(blas_extra)
  print(("# libdcb %s; flags: %s"):format(dcb.version, dcb.build.flags))
  print(("# BLAS: %s%s"):format(dcb.build.blas, blas_extra or ""))
  local forced = os.getenv("DCB_FORCED_CORETYPE")
  if forced then
    print(("# the environment set OPENBLAS_CORETYPE=%s; dropped, OpenBLAS chose its own core"):format(forced))
  end
end

-- op/impl with params and threads, weights from seed (default 3); nil, the
-- status name and the message when the library refuses it
function M.op(name, impl, params, threads, seed)
  local p = {impl = impl, threads = threads}
  for k, v in pairs(params or {}) do p[k] = v end
  local ok, o = pcall(dcb.op, name, p)
  if not ok then
    local e = tostring(o)
    local status, msg = e:match("^dcb%.op: ([%w_]+): (.*)$")
    if not status and e:match("^dcb%.op: unknown operator") then status, msg = "unknown_op", e:sub(9) end
    return nil, status or "error", msg or e
  end
  o:init_weights(seed or 3)
  return o
end

-- true if op is registered and has a hyperparameter of that name
function M.has_param(op, name)
  local ok, params = pcall(dcb.params, op)
  for _, p in ipairs(ok and params or {}) do if p.name == name then return true end end
  return false
end

-- the positional arguments as numbers: M.num(args, i, default)
function M.num(args, i, default)
  local v = args[i]
  if v == nil then return default end
  return math.tointeger(tonumber(v)) or tonumber(v) or default
end

-- a list of positive integers "256,1024" -> {256, 1024}
function M.list(s)
  local out = {}
  for v in tostring(s):gmatch("[^,]+") do
    local n = math.tointeger(tonumber(v))
    if not n or n < 1 then break end
    out[#out + 1] = n
  end
  return out
end

-- NaN for an absent number, so that "%.1f" prints nan as C's printf did
function M.nan(v) if v == nil then return 0 / 0 end return v end

return M
