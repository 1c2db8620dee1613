-- The papers' cost tables (issue 5): every network description's totals
-- against the published MACs and params, into results/tables/.
local dcb = require "dcb"
local tables = require "tables"
local dir = (dcb.results or "results") .. "/tables"
os.execute("mkdir -p '" .. dir .. "'")
tables.write(dir)
print("tables written to " .. dir)
