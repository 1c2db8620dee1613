-- sweeplib.lua — small helpers the shipped sweeps share (require "sweeplib").
local dcb = require "dcb"
local M = {}

-- true if the operator is registered; otherwise a printed note (the sweep is skipped)
function M.have(op)
  for _, name in ipairs(dcb.ops()) do if name == op then return true end end
  print(("note: operator '%s' is not registered in this build; skipping its sweep"):format(op))
  return false
end

-- the registered implementations of op whose names start with one of the prefixes
function M.impls(op, prefixes)
  local out = {}
  for _, name in ipairs(dcb.impls(op)) do
    for _, p in ipairs(prefixes) do
      if name == p or name:sub(1, #p + 1) == p .. "/" or (p:sub(-1) == "/" and name:sub(1, #p) == p) then
        out[#out + 1] = name
        break
      end
    end
  end
  if #out == 0 then
    print(("note: %s has none of the implementations %s; using all of %s"):format(op,
      table.concat(prefixes, ", "), table.concat(dcb.impls(op), ", ")))
    return dcb.impls(op)
  end
  return out
end

-- the full list, or the short one under --quick
function M.pick(full, quick) if dcb.quick then return quick else return full end end

return M
