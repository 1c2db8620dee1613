-- compare_results.lua — two runs of one sweep compared row by row: `dcbench compare A.csv B.csv`
-- (M.main) and dcb.compare_results(a, b [, opts]) (M.compare) share M.run.
--
-- A row is a sweep point and an implementation (the point_id column hashes the op, the impl and
-- every hyperparameter, the input shape and the threads; impl is matched too); a point's last row
-- in a file is its result, as in dcbench merge. Rows ok on both sides are compared: the ratio
-- B/A of the median times and its interval [q1_B / q3_A, q3_B / q1_A] from the quartiles of the
-- repetitions (time_q1_s, time_q3_s), or [min_B / max_A, max_B / min_A] where a CSV has no
-- quartiles (an older dcbench). A row is slower (faster) beyond the noise when the
-- whole interval lies above (below) 1 and |ratio - 1| exceeds the threshold (default 0.05);
-- otherwise it is "=". The other rows are counted: only in A, only in B, not ok on a side, ok
-- without a time.
--
-- Refusals carry the exit status of dcbench compare: 2 for the input (a missing or unreadable
-- file, not a sweep CSV, an output that would overwrite an input, a bad option), 1 when no row is
-- ok and timed on both sides. dcb.compare_results raises them as errors.
local M = {}

local function dcb() return require "dcb" end

local Refusal = {}
Refusal.__tostring = function(r) return r.msg end
local function refuse(code, fmt, ...)
  error(setmetatable({code = code, msg = string.format(fmt, ...)}, Refusal), 0)
end

M.DEFAULT_THRESHOLD = 0.05
local REQUIRED = {"point_id", "impl", "status", "time_median_s"}

------------------------------------------------------------------------------------------------
-- small helpers
------------------------------------------------------------------------------------------------
local function num(s)
  local v = tonumber(s or "")
  if v and v == v and v ~= math.huge and v ~= -math.huge then return v end
  return nil
end

local function basename(p) return p:match("([^/]*)$") end
local function dirname(p) return p:match("^(.*)/[^/]*$") end
local function strip_csv(p) return (p:gsub("%.csv$", "")) end
local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Two names of one file: the same text, or (when both exist) the same inode.
local function same_file(p, q)
  if p == q or p:gsub("^%./", "") == q:gsub("^%./", "") then return true end
  if not (exists(p) and exists(q)) then return false end
  return os.execute("[ " .. sh_quote(p) .. " -ef " .. sh_quote(q) .. " ]") == true
end

local function csv_field(s)
  s = tostring(s == nil and "" or s)
  if s:find('[,"\r\n]') then s = '"' .. s:gsub("[\r\n]", " "):gsub('"', '""') .. '"' end
  return s
end

local function fmt_num(v)
  if v == nil then return "" end
  return string.format("%.6g", v)
end

-- Seconds in the unit that keeps 1 to 3 digits before the point.
function M.fmt_time(s)
  if s == nil then return "-" end
  local a = math.abs(s)
  if a < 1e-6 then return string.format("%.4g ns", s * 1e9) end
  if a < 1e-3 then return string.format("%.4g us", s * 1e6) end
  if a < 1 then return string.format("%.4g ms", s * 1e3) end
  return string.format("%.4g s", s)
end

local function fmt_ratio(r)
  if r == nil then return "-" end
  if r < 10 then return string.format("%.3f", r) end
  if r < 1000 then return string.format("%.1f", r) end
  return string.format("%.4g", r)
end

-- The value of a string member "key" of a JSON text (the first one), unescaped; nil if absent.
local function json_string(text, key)
  local _, e = text:find('"' .. key .. '"%s*:%s*"')
  if not e then return nil end
  local out, i = {}, e + 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == '"' then return table.concat(out) end
    if c == "\\" then
      local n = text:sub(i + 1, i + 1)
      if n == "u" then
        local cp = tonumber(text:sub(i + 2, i + 5), 16)
        out[#out + 1] = cp and cp < 128 and string.char(cp) or "?"
        i = i + 6
      else
        out[#out + 1] = ({n = "\n", t = "\t", r = "\r", b = "\b", f = "\f"})[n] or n
        i = i + 2
      end
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return nil
end

-- The machine description beside a sweep's CSV (<name>.json), or nil.
local function read_machine(csv)
  local path = strip_csv(csv) .. ".json"
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a") or ""
  f:close()
  local m = {path = path}
  for _, k in ipairs{"cpu_model", "isa", "hostname", "git_commit", "date_utc", "blas_name"} do
    local v = json_string(text, k)
    if v and v ~= "" then m[k] = v end
  end
  m.git_dirty = text:match('"git_dirty"%s*:%s*true') ~= nil
  return m
end

------------------------------------------------------------------------------------------------
-- reading one side
------------------------------------------------------------------------------------------------
local function read_side(path, which)
  if type(path) ~= "string" or path == "" then refuse(2, "%s: a path to a sweep CSV is needed", which) end
  local f, why = io.open(path, "rb")
  if not f then
    local reason = tostring(why)
    if reason:sub(1, #path + 2) == path .. ": " then reason = reason:sub(#path + 3) end
    refuse(2, "%s (%s): cannot open it: %s", path, which, reason)
  end
  local _, rerr = f:read(0)   -- a directory opens, and fails here
  f:close()
  if rerr then refuse(2, "%s (%s): cannot read it: %s", path, which, tostring(rerr)) end
  local ok, rows, cols = pcall(dcb().read_csv, path)
  if not ok then
    refuse(2, "%s (%s): not a readable CSV: %s", path, which, (tostring(rows):gsub("^dcb%.read_csv: ", "")))
  end
  if #cols == 0 then refuse(2, "%s (%s): not a sweep CSV: the file is empty", path, which) end
  local idx = {}
  for i, c in ipairs(cols) do idx[c] = idx[c] or i end
  for _, c in ipairs(REQUIRED) do
    if not idx[c] then
      refuse(2, "%s (%s): not a sweep CSV: it has no %s column (a sweep's CSV has %s, ...)", path, which, c,
             table.concat(REQUIRED, ", "))
    end
  end
  -- the hyperparameters, the input shape and the threads: the columns between impl and status
  local hp = {}
  for i = idx.impl + 1, idx.status - 1 do hp[#hp + 1] = cols[i] end
  local by_key, order, superseded = {}, {}, 0
  for _, r in ipairs(rows) do
    local id, impl = r.point_id, r.impl
    if id and impl then
      local key = id .. "\0" .. impl
      if by_key[key] then superseded = superseded + 1 else order[#order + 1] = key end
      by_key[key] = r   -- the last row of a point is its result
    end
  end
  return {path = path, which = which, cols = cols, hp = hp, rows = by_key, order = order, nrows = #rows,
          superseded = superseded, machine = read_machine(path)}
end

------------------------------------------------------------------------------------------------
-- the comparison
------------------------------------------------------------------------------------------------
local function flag_of(ratio, lo, hi, threshold)
  if lo > 1 and ratio - 1 > threshold then return "slower" end
  if hi < 1 and 1 - ratio > threshold then return "faster" end
  return "="
end

-- Orders hyperparameter values: numbers by value, before text; text as text.
local function value_less(x, y)
  local a, b = tonumber(x), tonumber(y)
  if a and b then return a < b end
  if a or b then return a ~= nil end
  return tostring(x) < tostring(y)
end

local RESERVED = {point_id = 1, impl = 1, op = 1, label = 1, params = 1, median_a = 1, median_b = 1,
                  ratio = 1, lo = 1, hi = 1, flag = 1, min_a = 1, max_a = 1, min_b = 1, max_b = 1,
                  isa_a = 1, isa_b = 1, contended_a = 1, contended_b = 1, note = 1}

local VALID_OPTS = {threshold = true, out = true, plot = true, print = true, format = true}

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then refuse(2, "the options must be a table, got a %s", type(opts)) end
  for k in pairs(opts) do
    if not VALID_OPTS[k] then
      refuse(2, "unknown option '%s' (valid: threshold, out, plot, print, format)", tostring(k))
    end
  end
  local t = opts.threshold
  if t ~= nil and not (type(t) == "number" and t >= 0 and t < math.huge) then
    refuse(2, "threshold must be a number >= 0 (a fraction: 0.05 is 5%%), got %s", tostring(t))
  end
  if opts.out ~= nil and (type(opts.out) ~= "string" or opts.out == "") then
    refuse(2, "out must be a path, got %s", tostring(opts.out))
  end
  for _, k in ipairs{"plot", "print"} do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      refuse(2, "%s must be true or false, got %s", k, tostring(opts[k]))
    end
  end
  local f = opts.format
  if f ~= nil and f ~= "png" and f ~= "pdf" and f ~= "svg" then
    refuse(2, "format %s: valid formats are png, pdf, svg", tostring(f))
  end
  return opts
end

-- Columns that vary among the rows, in column order; W is left out where it always equals H.
local function varying(hp, rows)
  local v, all = {}, {}
  for _, c in ipairs(hp) do
    local first, differs, any = nil, false, false
    for _, r in ipairs(rows) do
      local x = r.row_a[c] or ""
      if x ~= "" then any = true end
      if first == nil then first = x elseif x ~= first then differs = true end
    end
    if any then all[#all + 1] = c end
    if differs then v[#v + 1] = c end
  end
  local function drop_w(list)
    local has_h = false
    for _, c in ipairs(list) do has_h = has_h or c == "H" end
    if not has_h then return list end
    for _, r in ipairs(rows) do
      if (r.row_a.W or "") ~= (r.row_a.H or "") then return list end
    end
    local out = {}
    for _, c in ipairs(list) do if c ~= "W" then out[#out + 1] = c end end
    return out
  end
  return drop_w(v), all
end

local function label_of(row, cols)
  local parts = {}
  for _, c in ipairs(cols) do
    local x = row[c]
    if x and x ~= "" then parts[#parts + 1] = c .. "=" .. x end
  end
  return table.concat(parts, " ")
end

local function status_counts(list)
  local n, keys = {}, {}
  for _, s in ipairs(list) do
    if not n[s] then keys[#keys + 1] = s end
    n[s] = (n[s] or 0) + 1
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = n[k] .. " " .. k end
  return table.concat(parts, ", ")
end

local function compare_sides(A, B, threshold)
  local impl_rank, nimpl = {}, 0
  local res = {rows = {}, only_a = 0, only_b = 0, not_ok = 0, untimed = 0, no_spread = 0, min_max = 0,
               not_ok_a = {}, not_ok_b = {}, impl_rank = impl_rank}
  for _, key in ipairs(A.order) do
    local ra, rb = A.rows[key], B.rows[key]
    if not impl_rank[ra.impl] then
      nimpl = nimpl + 1
      impl_rank[ra.impl] = nimpl
    end
    if not rb then
      res.only_a = res.only_a + 1
    elseif ra.status ~= "ok" or rb.status ~= "ok" then
      res.not_ok = res.not_ok + 1
      if ra.status ~= "ok" then res.not_ok_a[#res.not_ok_a + 1] = ra.status or "?" end
      if rb.status ~= "ok" then res.not_ok_b[#res.not_ok_b + 1] = rb.status or "?" end
    else
      local ma, mb = num(ra.time_median_s), num(rb.time_median_s)
      if not (ma and mb and ma > 0 and mb > 0) then
        res.untimed = res.untimed + 1
      else
        local r = {row_a = ra, row_b = rb, point_id = ra.point_id, impl = ra.impl, op = ra.op,
                   median_a = ma, median_b = mb, ratio = mb / ma,
                   min_a = num(ra.time_min_s), max_a = num(ra.time_max_s),
                   min_b = num(rb.time_min_s), max_b = num(rb.time_max_s),
                   isa_a = ra.isa, isa_b = rb.isa,
                   contended_a = ra.contended == "1", contended_b = rb.contended == "1"}
        local q1a, q3a, q1b, q3b = num(ra.time_q1_s), num(ra.time_q3_s), num(rb.time_q1_s), num(rb.time_q3_s)
        if q1a and q3a and q1b and q3b and q1a > 0 and q3a > 0 then
          r.lo, r.hi, r.spread = q1b / q3a, q3b / q1a, "quartiles"
        elseif r.min_a and r.max_a and r.min_b and r.max_b and r.min_a > 0 and r.max_a > 0 then
          r.lo, r.hi, r.spread = r.min_b / r.max_a, r.max_b / r.min_a, "min-max"
          res.min_max = res.min_max + 1
        else
          r.lo, r.hi = r.ratio, r.ratio   -- no spread recorded: the ratio alone
          res.no_spread = res.no_spread + 1
        end
        r.flag = flag_of(r.ratio, r.lo, r.hi, threshold)
        res.rows[#res.rows + 1] = r
      end
    end
  end
  for _, key in ipairs(B.order) do
    if not A.rows[key] then res.only_b = res.only_b + 1 end
  end
  local hp = A.hp
  table.sort(res.rows, function(x, y)
    for _, c in ipairs(hp) do
      local a, b = x.row_a[c] or "", y.row_a[c] or ""
      if a ~= b then return value_less(a, b) end
    end
    if x.impl ~= y.impl then return impl_rank[x.impl] < impl_rank[y.impl] end
    return x.point_id < y.point_id
  end)
  return res
end

------------------------------------------------------------------------------------------------
-- notes on where A and B ran
------------------------------------------------------------------------------------------------
local function distinct(rows, field)
  local seen, list = {}, {}
  for _, r in ipairs(rows) do
    local v = r[field]
    if v and v ~= "" and not seen[v] then
      seen[v] = true
      list[#list + 1] = v
    end
  end
  table.sort(list)
  return table.concat(list, ",")
end

local function machine_notes(A, B, rows)
  local notes = {}
  local ma, mb = A.machine, B.machine
  if ma and mb then
    if ma.cpu_model and mb.cpu_model and ma.cpu_model ~= mb.cpu_model then
      notes[#notes + 1] = string.format("A and B ran on different machines: A on '%s', B on '%s' (%s, %s); "
                                        .. "the ratios compare the machines as well as the code",
                                        ma.cpu_model, mb.cpu_model, ma.path, mb.path)
    elseif ma.hostname and mb.hostname and ma.hostname ~= mb.hostname then
      notes[#notes + 1] = string.format("A and B ran on different hosts (A %s, B %s) with the same CPU model '%s'",
                                        ma.hostname, mb.hostname, ma.cpu_model or "?")
    end
    if ma.isa and mb.isa and ma.isa ~= mb.isa then
      notes[#notes + 1] = string.format("the micro-kernels ran different ISA levels: A %s, B %s", ma.isa, mb.isa)
    end
  elseif ma or mb then
    local missing = ma and B or A
    notes[#notes + 1] = string.format("no machine description beside %s (%s): whether A and B ran on one "
                                      .. "machine is not known", missing.which, strip_csv(missing.path) .. ".json")
  end
  local ia, ib = distinct(rows, "isa_a"), distinct(rows, "isa_b")
  local differ = 0
  for _, r in ipairs(rows) do
    if (r.isa_a or "") ~= (r.isa_b or "") then differ = differ + 1 end
  end
  if differ > 0 and not (ma and mb and ma.isa and mb.isa and ma.isa ~= mb.isa) then
    notes[#notes + 1] = string.format("%d row(s) ran another ISA level in B than in A (isa column: A %s, B %s)",
                                      differ, ia ~= "" and ia or "?", ib ~= "" and ib or "?")
  end
  local ca, cb = 0, 0
  for _, r in ipairs(rows) do
    if r.contended_a then ca = ca + 1 end
    if r.contended_b then cb = cb + 1 end
  end
  if ca + cb > 0 then
    notes[#notes + 1] = string.format("rows measured while other processes held cores (contended=1): %d in A, "
                                      .. "%d in B; their ratios are less reliable (marked in the note column)", ca, cb)
  end
  return notes
end

------------------------------------------------------------------------------------------------
-- output: table, CSV, figure
------------------------------------------------------------------------------------------------
local function row_note(r)
  local n = {}
  if r.contended_a and r.contended_b then n[#n + 1] = "contended A,B"
  elseif r.contended_a then n[#n + 1] = "contended A"
  elseif r.contended_b then n[#n + 1] = "contended B" end
  if (r.isa_a or "") ~= (r.isa_b or "") then n[#n + 1] = "isa " .. (r.isa_a or "?") .. "->" .. (r.isa_b or "?") end
  return table.concat(n, "; ")
end

local function print_table(res)
  local head = {"point", "impl", "A median", "B median", "B/A", "interval", "flag", "note"}
  local lines = {}
  for _, r in ipairs(res.rows) do
    lines[#lines + 1] = {r.label ~= "" and r.label or "-", r.impl, M.fmt_time(r.median_a), M.fmt_time(r.median_b),
                         fmt_ratio(r.ratio), "[" .. fmt_ratio(r.lo) .. ", " .. fmt_ratio(r.hi) .. "]", r.flag, r.note}
  end
  local w = {}
  for i, h in ipairs(head) do w[i] = #h end
  for _, l in ipairs(lines) do
    for i, c in ipairs(l) do w[i] = math.max(w[i], #c) end
  end
  local right = {false, false, true, true, true, false, false, false}
  local function emit(cells)
    local out = {}
    for i, c in ipairs(cells) do
      if i == #cells then
        out[i] = c
      elseif right[i] then
        out[i] = string.rep(" ", w[i] - #c) .. c
      else
        out[i] = c .. string.rep(" ", w[i] - #c)
      end
    end
    io.write((table.concat(out, "  "):gsub("%s+$", "")), "\n")
  end
  emit(head)
  for _, l in ipairs(lines) do emit(l) end
end

local function write_csv(path, res, hp)
  local head = {"point_id", "op", "impl"}
  for _, c in ipairs(hp) do head[#head + 1] = c end
  for _, c in ipairs{"median_a_s", "median_b_s", "ratio", "lo", "hi", "flag", "min_a_s", "max_a_s", "min_b_s",
                     "max_b_s", "isa_a", "isa_b", "contended_a", "contended_b"} do
    head[#head + 1] = c
  end
  local out = {}
  local function line(cells)
    for i, c in ipairs(cells) do cells[i] = csv_field(c) end
    out[#out + 1] = table.concat(cells, ",") .. "\n"
  end
  line(head)
  for _, r in ipairs(res.rows) do
    local cells = {r.point_id, r.op or "", r.impl}
    for _, c in ipairs(hp) do cells[#cells + 1] = r.row_a[c] or "" end
    for _, v in ipairs{r.row_a.time_median_s, r.row_b.time_median_s} do cells[#cells + 1] = v end
    cells[#cells + 1] = fmt_num(r.ratio)
    cells[#cells + 1] = fmt_num(r.lo)
    cells[#cells + 1] = fmt_num(r.hi)
    cells[#cells + 1] = r.flag
    for _, v in ipairs{r.row_a.time_min_s, r.row_a.time_max_s, r.row_b.time_min_s, r.row_b.time_max_s,
                       r.isa_a, r.isa_b} do
      cells[#cells + 1] = v or ""
    end
    cells[#cells + 1] = r.contended_a and "1" or "0"
    cells[#cells + 1] = r.contended_b and "1" or "0"
    line(cells)
  end
  local text = table.concat(out)
  local dir = dirname(path)
  if dir and dir ~= "" then pcall(dcb().mkdir, dir) end
  local ok, err = pcall(dcb().write_file, path, text)
  if not ok then refuse(2, "%s", (tostring(err):gsub("^dcb%.write_file: ", ""))) end
end

local function gp_str(s)
  return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"'):gsub("\n", "\\n") .. '"'
end

-- The figure: the ratio per row with its interval as error bars, a line at 1, the rows labelled
-- below the axis; log y when the plotted range spans more than 10x. Returns its path, or nil and
-- why gnuplot failed. base: the path without extension (base.dat, base.gp stay beside it).
local function draw(base, fmt, res, title)
  local kinds = {{"slower", "slower beyond the noise", 2}, {"faster", "faster beyond the noise", 3},
                 {"=", "within the noise", 1}}
  local n = #res.rows
  local every = math.max(1, math.ceil(n / 60))   -- at most about 60 labels
  local lo_all, hi_all = 1, 1
  for _, r in ipairs(res.rows) do
    lo_all = math.min(lo_all, r.lo, r.ratio)
    hi_all = math.max(hi_all, r.hi, r.ratio)
  end
  local logy = hi_all / lo_all > 10
  local ymin, ymax
  if logy then
    ymin, ymax = lo_all / 1.3, hi_all * 1.3
  else
    local pad = math.max((hi_all - lo_all) * 0.08, 0.02)
    ymin, ymax = math.max(0, lo_all - pad), hi_all + pad
  end
  local blocks, titles, lts = {}, {}, {}
  for _, k in ipairs(kinds) do
    local b = {}
    for i, r in ipairs(res.rows) do
      if r.flag == k[1] then
        local lab = (i - 1) % every == 0 and (r.impl .. (r.label ~= "" and " " .. r.label or "")) or ""
        b[#b + 1] = string.format('%d %.9g %.9g %.9g "%s"\n', i, r.ratio, r.lo, r.hi, (lab:gsub('"', "'")))
      end
    end
    if #b > 0 then
      blocks[#blocks + 1] = "# " .. k[1] .. "\n" .. table.concat(b) .. "\n\n"
      titles[#titles + 1] = string.format("%s (%d)", k[2], #b)
      lts[#lts + 1] = k[3]
    end
  end
  local dat, gp, out, log = base .. ".dat", base .. ".gp", base .. "." .. fmt, base .. ".gp.log"
  local ok, err = pcall(dcb().write_file, dat, table.concat(blocks))
  if not ok then return nil, tostring(err) end
  local home = dcb().home or "."
  local g = {"# generated by dcbench compare; run: gnuplot this-file",
             "fmt = " .. gp_str(fmt), "outfile = " .. gp_str(out), "datafile = " .. gp_str(dat),
             "styledir = " .. gp_str(home .. "/scripts"),
             "plottitle = " .. gp_str(title),
             "ylabel = " .. gp_str(res.min_max > 0 and "time B / time A (median; bars: quartiles, or min and max)"
                                   or "time B / time A (median; bars from the quartiles)"),
             string.format("logy = %d", logy and 1 or 0),
             string.format("ymin = %.9g", ymin), string.format("ymax = %.9g", ymax),
             string.format("npoints = %d", n),
             string.format("nseries = %d", #titles),
             string.format("array titles[%d]", #titles), string.format("array lts[%d]", #titles)}
  for i, t in ipairs(titles) do
    g[#g + 1] = string.format("titles[%d] = %s", i, gp_str(t))
    g[#g + 1] = string.format("lts[%d] = %d", i, lts[i])
  end
  g[#g + 1] = "load " .. gp_str(home .. "/scripts/compare.gp")
  ok, err = pcall(dcb().write_file, gp, table.concat(g, "\n") .. "\n")
  if not ok then return nil, tostring(err) end
  if not os.execute("gnuplot " .. sh_quote(gp) .. " 2>" .. sh_quote(log)) then
    local lf = io.open(log)
    local msg = lf and lf:read("a") or "?"
    if lf then lf:close() end
    return nil, "gnuplot failed on " .. gp .. " (is gnuplot installed?): " .. msg
  end
  os.remove(log)
  return out
end

------------------------------------------------------------------------------------------------
-- the whole comparison
------------------------------------------------------------------------------------------------
local function side_line(S)
  local parts = {string.format("%d rows", S.nrows)}
  if S.superseded > 0 then
    parts[#parts + 1] = string.format("%d earlier attempt(s) superseded by a later row of their point", S.superseded)
  end
  local m = S.machine
  if m then
    if m.cpu_model then parts[#parts + 1] = m.cpu_model end
    if m.isa then parts[#parts + 1] = m.isa end
    if m.git_commit then parts[#parts + 1] = "commit " .. m.git_commit:sub(1, 12) .. (m.git_dirty and " (dirty)" or "") end
    if m.date_utc then parts[#parts + 1] = m.date_utc end
  end
  return string.format("%s: %s (%s)", S.which, S.path, table.concat(parts, ", "))
end

function M.run(a, b, opts)
  opts = check_opts(opts)
  local threshold = opts.threshold or M.DEFAULT_THRESHOLD
  local A = read_side(a, "A")
  local B = read_side(b, "B")
  local out = opts.out or ((dirname(b) and dirname(b) .. "/" or "") .. strip_csv(basename(b)) .. "_vs_"
                           .. strip_csv(basename(a)) .. ".csv")
  local fmt = opts.format or dcb().format or "png"
  local plot = opts.plot ~= false
  local fig_base = strip_csv(out)
  local written = {out}
  if plot then
    for _, ext in ipairs{"." .. fmt, ".gp", ".dat"} do written[#written + 1] = fig_base .. ext end
  end
  for _, w in ipairs(written) do
    for _, S in ipairs{A, B} do
      if same_file(w, S.path) then
        refuse(2, "the output %s would overwrite %s (%s); give another --out", w, S.which, S.path)
      end
    end
  end

  local res = compare_sides(A, B, threshold)
  local common = #res.rows + res.not_ok + res.untimed
  if #res.rows == 0 then
    if common == 0 then
      refuse(1, "%s and %s have no row in common (point id and impl: %d rows in A, %d in B); "
             .. "not two runs of the same sweep?", a, b, #A.order, #B.order)
    end
    refuse(1, "%s and %s have %d row(s) in common, none ok and timed on both sides (%d not ok on a side, "
           .. "%d without a time)", a, b, common, res.not_ok, res.untimed)
  end

  local vary, all = varying(A.hp, res.rows)
  local label_cols = #vary > 0 and vary or all
  local fixed = {}
  if #vary > 0 then
    local in_vary = {}
    for _, c in ipairs(vary) do in_vary[c] = true end
    for _, c in ipairs(all) do
      if not in_vary[c] and not (c == "W" and not in_vary.W and in_vary.H) then fixed[#fixed + 1] = c end
    end
  end
  local logsum, by_impl, impl_order = 0, {}, {}
  res.faster, res.slower, res.same = 0, 0, 0
  for _, r in ipairs(res.rows) do
    r.label = label_of(r.row_a, label_cols)
    r.note = row_note(r)
    r.params = {}
    for _, c in ipairs(A.hp) do
      local v = r.row_a[c]
      if v and v ~= "" then r.params[c] = tonumber(v) or v end
    end
    logsum = logsum + math.log(r.ratio)
    if r.flag == "slower" then res.slower = res.slower + 1
    elseif r.flag == "faster" then res.faster = res.faster + 1
    else res.same = res.same + 1 end
    local bi = by_impl[r.impl]
    if not bi then
      bi = {n = 0, logsum = 0, faster = 0, slower = 0, same = 0}
      by_impl[r.impl] = bi
      impl_order[#impl_order + 1] = r.impl
    end
    bi.n = bi.n + 1
    bi.logsum = bi.logsum + math.log(r.ratio)
    bi[r.flag == "=" and "same" or r.flag] = bi[r.flag == "=" and "same" or r.flag] + 1
  end
  res.geomean = math.exp(logsum / #res.rows)
  table.sort(impl_order, function(x, y) return res.impl_rank[x] < res.impl_rank[y] end)
  for _, impl in ipairs(impl_order) do
    local bi = by_impl[impl]
    bi.geomean = math.exp(bi.logsum / bi.n)
    bi.logsum = nil
  end
  res.by_impl = by_impl
  res.notes = machine_notes(A, B, res.rows)

  write_csv(out, res, A.hp)
  res.csv = out
  local title = string.format("%s vs %s: geomean B/A %.3f, %d slower, %d faster, %d within the noise (threshold %g%%)",
                              b, a, res.geomean, res.slower, res.faster, res.same, threshold * 100)
  if plot then
    local fig, why = draw(fig_base, fmt, res, title)
    res.figure, res.figure_error = fig, why
  end

  if opts.print ~= false then
    io.write(side_line(A), "\n", side_line(B), "\n")
    io.write(string.format("ratio = median time B / A; interval = [q1_B/q3_A, q3_B/q1_A] of the repetitions' "
                           .. "quartiles; slower or faster beyond the noise when the interval excludes 1 and "
                           .. "|ratio-1| > %g%%\n", threshold * 100))
    if #fixed > 0 then
      local parts = {}
      for _, c in ipairs(fixed) do
        local v = res.rows[1].row_a[c]
        if v and v ~= "" then parts[#parts + 1] = c .. "=" .. v end
      end
      io.write("every row: ", table.concat(parts, " "), "\n")
    end
    print_table(res)
    local g = res.geomean
    io.write(string.format("%d row(s) compared: geometric mean B/A %.3f (B %.1f%% %s); %d slower, %d faster, "
                           .. "%d within the noise\n", #res.rows, g, math.abs(g - 1) * 100,
                           g >= 1 and "slower" or "faster", res.slower, res.faster, res.same))
    if #impl_order > 1 then
      local parts = {}
      for _, impl in ipairs(impl_order) do
        local bi = by_impl[impl]
        parts[#parts + 1] = string.format("%s %.3f (%d: %d slower, %d faster)", impl, bi.geomean, bi.n,
                                          bi.slower, bi.faster)
      end
      io.write("  per impl: ", table.concat(parts, "; "), "\n")
    end
    local nc = {string.format("%d only in A", res.only_a), string.format("%d only in B", res.only_b),
                string.format("%d not ok on a side", res.not_ok)}
    if res.not_ok > 0 then
      local d = {}
      if #res.not_ok_a > 0 then d[#d + 1] = "A: " .. status_counts(res.not_ok_a) end
      if #res.not_ok_b > 0 then d[#d + 1] = "B: " .. status_counts(res.not_ok_b) end
      nc[#nc] = nc[#nc] .. " (" .. table.concat(d, "; ") .. ")"
    end
    if res.untimed > 0 then nc[#nc + 1] = string.format("%d ok without a time", res.untimed) end
    io.write("not compared: ", table.concat(nc, ", "), "\n")
    if res.min_max > 0 then
      io.write(string.format("note: %d row(s) have no quartiles (an older dcbench's CSV): their interval is "
                             .. "[min_B/max_A, max_B/min_A], wider\n", res.min_max))
    end
    if res.no_spread > 0 then
      io.write(string.format("note: %d row(s) have no spread at all: their interval is the ratio alone\n", res.no_spread))
    end
    for _, n in ipairs(res.notes) do io.write("note: ", n, "\n") end
    io.write("wrote ", out, res.figure and (" and " .. res.figure) or "", "\n")
    io.flush()
    if res.figure_error then io.stderr:write("compare: no figure: ", res.figure_error, "\n") end
  end

  -- the returned rows: no references to the raw CSV rows
  for _, r in ipairs(res.rows) do
    for c, v in pairs(r.params) do
      if not RESERVED[c] then r[c] = v end
    end
    r.row_a, r.row_b = nil, nil
  end
  res.a, res.b, res.threshold, res.compared = a, b, threshold, #res.rows
  res.machine_a, res.machine_b = A.machine, B.machine
  res.not_ok_a, res.not_ok_b, res.impl_rank = nil, nil, nil
  return res
end

-- dcb.compare_results(a, b [, opts]): refusals become errors naming the function.
function M.compare(a, b, opts)
  local ok, r = pcall(M.run, a, b, opts)
  if ok then return r end
  if getmetatable(r) == Refusal then error("dcb.compare_results: " .. r.msg, 2) end
  error(r, 0)
end

local USAGE = [[
usage: dcbench [--format png|pdf|svg] compare [--threshold T] [--out CMP.csv] [--no-plot]
                                              [--fail-on-slower] A.csv B.csv
  Compares two runs of one sweep row by row (point id and impl): the ratio B/A of the median
  times, its interval [q1_B/q3_A, q3_B/q1_A] from the repetitions' quartiles (min and max for
  a CSV without them), and a flag: slower or faster where the interval
  excludes 1 and |ratio-1| > T (default 0.05), else =. Prints the table and a summary, writes
  CMP.csv (default beside B: <B>_vs_<A>.csv) and a figure beside it (CMP.png in --format).
  Exit status: 0 compared (differences or not), 1 no row ok and timed on both sides, 2 a missing
  file, not a sweep CSV or a bad option, 4 with --fail-on-slower when a row is slower beyond the
  noise.
]]

-- dcbench compare ARGS...: the exit status.
function M.main(args)
  local opts, files, fail_on_slower = {}, {}, false
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, val = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    local function value()
      if val then return val end
      i = i + 1
      if i > #args then
        io.stderr:write("dcbench compare: ", name, " needs a value\n")
        return nil
      end
      return args[i]
    end
    if name == "--threshold" then
      local v = value()
      if not v then return 2 end
      local t = num(v)
      if not t or t < 0 then
        io.stderr:write("dcbench compare: --threshold needs a number >= 0 (a fraction: 0.05 is 5%), got '", v, "'\n")
        return 2
      end
      opts.threshold = t
    elseif name == "--out" then
      local v = value()
      if not v then return 2 end
      opts.out = v
    elseif name == "--format" then
      local v = value()
      if not v then return 2 end
      opts.format = v
    elseif a == "--no-plot" then
      opts.plot = false
    elseif a == "--fail-on-slower" then
      fail_on_slower = true
    elseif a == "--help" or a == "-h" then
      io.write(USAGE)
      return 0
    elseif a:sub(1, 2) == "--" then
      io.stderr:write("dcbench compare: unknown option '", a, "'\n", USAGE)
      return 2
    else
      files[#files + 1] = a
    end
    i = i + 1
  end
  if #files ~= 2 then
    io.stderr:write("dcbench compare: two sweep CSVs are needed (A, then B), got ", #files, "\n", USAGE)
    return 2
  end
  local ok, r = pcall(M.run, files[1], files[2], opts)
  if not ok then
    if getmetatable(r) == Refusal then
      io.stderr:write("dcbench compare: ", r.msg, "\n")
      return r.code
    end
    error(r, 0)
  end
  if fail_on_slower and r.slower > 0 then
    io.stderr:write(string.format("dcbench compare: %d row(s) slower beyond the noise; --fail-on-slower: "
                                  .. "exit status 4\n", r.slower))
    return 4
  end
  return 0
end

return M
