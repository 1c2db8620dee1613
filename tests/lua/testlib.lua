-- testlib.lua — the few helpers the Lua tests share: test(name, fn) runs fn
-- protected and counts it, eq / near / contains / raises fail with what they
-- got, finish(name) prints the counts and exits 1 when a test failed.
--   package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
--   local T = require "testlib"
local T = {passed = 0, failed = 0}

function T.test(name, fn)
  local ok, err = pcall(fn)
  if ok then
    T.passed = T.passed + 1
  else
    T.failed = T.failed + 1
    io.stderr:write("FAIL ", name, ": ", tostring(err), "\n")
  end
end

function T.eq(got, want, what)
  if got ~= want then error(string.format("%s: got %s, want %s", what, tostring(got), tostring(want)), 2) end
end

function T.near(got, want, tol, what)
  if not (type(got) == "number" and math.abs(got - want) <= tol) then
    error(string.format("%s: got %s, want %.6g (tol %g)", what, tostring(got), want, tol), 2)
  end
end

function T.contains(hay, needle, what)
  if not tostring(hay):find(needle, 1, true) then
    error(string.format("%s: '%s' not found in:\n%s", what, needle, tostring(hay)), 2)
  end
end

-- fn must raise an error whose text holds needle
function T.raises(fn, needle, what)
  local ok, err = pcall(fn)
  if ok then error(what .. ": no error", 2) end
  if not tostring(err):find(needle, 1, true) then
    error(string.format("%s: the error '%s' does not mention '%s'", what, tostring(err), needle), 2)
  end
end

function T.finish(name)
  print(string.format("%s: %d passed, %d failed", name, T.passed, T.failed))
  if T.failed > 0 then os.exit(1) end
end

return T
