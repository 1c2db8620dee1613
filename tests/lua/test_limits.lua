-- Hostile hyperparameters through Lua (the C side is tests/test_hostile.c): booleans are refused for
-- numbers, sizes past the memory limit are refused with the size and the parameter, and the limit
-- is settable. Run: build/dcbench tests/lua/test_limits.lua
local dcb = require("dcb")
local passed, failed = 0, 0
local function raises(name, fn, ...)
  local ok, err = pcall(fn)
  local good = not ok
  for _, needle in ipairs{...} do good = good and tostring(err):find(needle, 1, true) ~= nil end
  if good then passed = passed + 1 else
    failed = failed + 1
    io.stderr:write("FAIL ", name, ": ", ok and "no error" or tostring(err), "\n")
  end
end
raises("boolean for an integer", function() dcb.op("conv2d", {cin = true, cout = 1, k = 1}) end,
       "cin needs a number, got true")
raises("boolean for a string", function() dcb.op("lightconv", {channels = 4, kernel_size = 3, padding = false}) end,
       "padding needs a string, got false")
raises("se hidden=1e9", function() dcb.op("se", {channels = 4, hidden = 1e9}) end, "hidden=1000000000", "GiB")
raises("lightconv kernel_size=1e9", function() dcb.op("lightconv", {channels = 4, kernel_size = 1e9}) end,
       "kernel_size=1000000000")
raises("conv2d pad=1e9 cost", function()
  dcb.op("conv2d", {cin = 1, cout = 1, k = 1, pad = 1e9}):cost({1, 1, 2147483647, 1})
end, "pad=1000000000")
raises("NaN printed as nan", function() dcb.op("conv2d", {cin = 0 / 0, cout = 1, k = 1}) end, "nan")
raises("load_end without a mark", function() dcb.load_end({}) end, "dcb.load_end", "the mark has no number 'busy'")
raises("load_end threads=0", function() dcb.load_end(dcb.load_begin(), 0) end, "threads=0 must be in 1..1024")
local default = dcb.max_bytes()
if default > 0 then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL default limit\n") end
dcb.max_bytes(1 << 20)
raises("a tensor past the limit", function() dcb.zeros{1024, 1024} end, "limit")
raises("an op's output past the limit", function()
  local op = dcb.op("conv2d", {cin = 1, cout = 64, k = 1})
  op:init_weights(1)
  op:forward(dcb.zeros{1, 1, 64, 64})
end, "DCB_MAX_BYTES")
dcb.max_bytes(0)
if dcb.max_bytes() == default then passed = passed + 1 else failed = failed + 1; io.stderr:write("FAIL reset\n") end
local op = dcb.op("conv2d", {cin = 1, cout = 64, k = 1})
op:init_weights(1)
if op:forward(dcb.zeros{1, 1, 64, 64}) then passed = passed + 1 else failed = failed + 1 end
print(string.format("test_limits: %d passed, %d failed", passed, failed))
if failed > 0 then os.exit(1) end
