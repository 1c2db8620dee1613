-- study.lua — training studies: dcb.study{...} trains every variant of a network with several seeds
-- and turns the runs into an ablation table with intervals, costs, times and kernel similarity.
--
-- Every (variant, seed) is one unit with a stable id (a hash of what it trains, never of where it
-- sits in the list), so a study shards (--shard i/n), resumes after a kill (a unit's own training
-- checkpoints too) and merges (dcbench merge) like the timing sweeps. Units append one row each to
-- <results>/ablations/<name>.csv (<name>.shardIofN.csv in a shard); a whole run (no shard) then
-- writes <name>_table.{md,csv}, <name>.json and the figures. docs/ABLATIONS.md has the reference.
local M = {}

local function dcb() return require "dcb" end
local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

------------------------------------------------------------------------------------------------
-- statistics
------------------------------------------------------------------------------------------------
-- Student's t, two-sided 95% (0.975 quantile), df 1..30; above 30 the normal's 1.96 plus a 1/df term.
local T975 = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
              2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
              2.052, 2.048, 2.045, 2.042}
function M.t975(df)
  if df ~= df or df < 1 then return 0 / 0 end
  local lo = math.floor(df)
  if lo >= 30 then return 1.96 + 2.4 / df end
  local a, b = T975[lo], T975[lo + 1] or (1.96 + 2.4 / (lo + 1))
  return a + (b - a) * (df - lo)   -- Welch's df are fractional
end

-- mean, sample std (n - 1), half-width of the 95% interval of the mean, n
function M.summary(xs)
  local n, s = #xs, 0
  for _, x in ipairs(xs) do s = s + x end
  if n == 0 then return 0 / 0, 0 / 0, 0 / 0, 0 end
  local mean, ss = s / n, 0
  for _, x in ipairs(xs) do ss = ss + (x - mean) ^ 2 end
  if n < 2 then return mean, 0 / 0, 0 / 0, n end
  local sd = math.sqrt(ss / (n - 1))
  return mean, sd, M.t975(n - 1) * sd / math.sqrt(n), n
end

-- The difference of two means (a - b) and the half-width of its 95% Welch interval.
function M.welch(a, b)
  local ma, sa, _, na = M.summary(a)
  local mb, sb, _, nb = M.summary(b)
  if na < 2 or nb < 2 then return ma - mb, 0 / 0 end
  local va, vb = sa * sa / na, sb * sb / nb
  local se = math.sqrt(va + vb)
  if se == 0 then return ma - mb, 0 end
  local df = (va + vb) ^ 2 / (va * va / (na - 1) + vb * vb / (nb - 1))
  return ma - mb, M.t975(df) * se
end

local function median(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end
M.median = median

-- Same sign / opposite / not significant: our interval against the paper's published delta.
function M.trend(delta, half, paper)
  if paper == nil then return "no published value" end
  if half ~= half then return "one seed: no interval" end
  if delta - half <= 0 and delta + half >= 0 then return "not significant at our seeds" end
  if paper == 0 then return "paper: no change" end
  return ((delta > 0) == (paper > 0)) and "same sign" or "opposite"
end

------------------------------------------------------------------------------------------------
-- canonical text (ids, definition hash) and CSV cells
------------------------------------------------------------------------------------------------
local function num_text(v)
  if math.type(v) == "integer" or (v == math.floor(v) and math.abs(v) < 2 ^ 53) then
    return string.format("%d", math.floor(v))
  end
  return string.format("%.17g", v)
end

local function canon(v)
  local t = type(v)
  if t == "number" then return num_text(v) end
  if t == "string" then return string.format("%q", v) end
  if t == "boolean" then return tostring(v) end
  if t ~= "table" then return "<" .. t .. ">" end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. canon(v[k]) end
  return "{" .. table.concat(parts, ";") .. "}"
end
M.canon = canon

local function csv_cell(v)
  if v == nil then return "" end
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "" end
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.9g", v)
  end
  local s = tostring(v)
  if s:find('[,"\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local function copy(t)
  local u = {}
  for k, v in pairs(t or {}) do u[k] = v end
  return u
end

local function merge(a, b)
  local u = copy(a)
  for k, v in pairs(b or {}) do u[k] = v end
  return u
end

------------------------------------------------------------------------------------------------
-- gnuplot, in the suite's style, written as PNG, PDF and SVG
------------------------------------------------------------------------------------------------
local function gp_str(s)
  return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"'):gsub("\n", "\\n") .. '"'
end
M.gp_str = gp_str

-- Runs body (gnuplot commands after the terminal is set) once per format; returns the PNG's path
-- or nil and the error. The data the body reads must already be written.
function M.figure(base, body)
  local home = dcb().home or "."
  local out
  for _, fmt in ipairs{"png", "pdf", "svg"} do
    local path = base .. "." .. fmt
    local script = base .. ".gp"
    local f = assert(io.open(script, "w"))
    f:write(string.format('fmt = %s\noutfile = %s\nload %s\n', gp_str(fmt), gp_str(path),
                          gp_str(home .. "/scripts/style.gp")))
    f:write(body, "\n")
    f:close()
    local ok = os.execute("gnuplot " .. string.format("%q", script) .. " 2>" .. string.format("%q", base .. ".gp.log"))
    if not ok then
      local lf = io.open(base .. ".gp.log")
      local msg = lf and lf:read("a") or "?"
      if lf then lf:close() end
      return nil, "gnuplot failed on " .. script .. ": " .. msg
    end
    if fmt == "png" then out = path end
  end
  os.remove(base .. ".gp.log")
  return out
end

------------------------------------------------------------------------------------------------
-- one unit: build, measure at initialisation, train, measure again
------------------------------------------------------------------------------------------------
local COLUMNS = {"point_id", "study", "label", "family", "config", "seed", "threads", "status", "reason",
                 "test_acc", "test_loss", "train_loss", "train_acc", "epochs", "steps", "train_s",
                 "train_s_per_img_median", "train_s_per_img_min", "train_s_per_img_max",
                 "infer_s_per_img_median", "infer_s_per_img_min", "infer_s_per_img_max", "infer_cv",
                 "macs", "flops", "params", "acts", "kernel_nodes", "sim_init_mean", "sim_init_std",
                 "sim_mean", "sim_std", "sim_init_hist", "sim_hist", "curve_csv",
                 -- the micro-kernels' ISA and what else ran during the unit's training and timing
                 "isa", "loadavg", "steal_pct", "others_cpus", "contended"}
M.COLUMNS = COLUMNS

-- The pairwise cosine similarity of the per-sample kernels of every dynamic node of net for the
-- images x, pooled over nodes: pair-weighted mean and std, summed histogram (20 bins over [-1, 1]).
function M.kernel_similarity(net, x)
  local ks = net:kernels(x)
  local pairs_n, s1, s2, hist, nodes, cos = 0, 0, 0, {}, 0, {}
  for i = 1, 20 do hist[i] = 0 end
  local names = {}
  for name in pairs(ks) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local st = dcb().similarity(ks[name])
    local p = st.pairs
    if p and p > 0 then
      nodes = nodes + 1
      pairs_n = pairs_n + p
      s1 = s1 + st.mean * p
      s2 = s2 + (st.std ^ 2 + st.mean ^ 2) * p
      for i = 1, 20 do hist[i] = hist[i] + (st.hist[i] or 0) end
      for _, c in ipairs(dcb().cosines(ks[name])) do cos[#cos + 1] = c end
    end
  end
  if pairs_n == 0 then return nil end
  local mean = s1 / pairs_n
  return {mean = mean, std = math.sqrt(math.max(0, s2 / pairs_n - mean * mean)), hist = hist, nodes = nodes,
          cosines = cos}
end

local function hist_text(h)
  if not h then return nil end
  local t = {}
  for i = 1, 20 do t[i] = tostring(math.floor(h[i])) end
  return table.concat(t, ";")
end

-- Normalised test images (the first n) for the similarity probes and the inference timing.
local probe_cache = {}
local function probe(data, n)
  local key = tostring(data) .. ":" .. n
  if probe_cache[key] then return probe_cache[key] end
  local d = dcb()
  local train = d.dataset(data, "train")
  local test = d.dataset(data, "test")
  local mean, std = train:stats()
  test:normalize(mean, std)
  local x = test:batch(1, n)
  probe_cache[key] = x
  return x
end

local function run_unit(def, u, unitdir)
  local d = dcb()
  local row = {status = "ok"}
  local opts = merge(u.net, {threads = def.threads, seed = u.seed})
  local net = d.net(def.family, opts)
  local c = net:cost(1)
  row.macs, row.flops, row.params, row.acts = c.macs, c.flops, c.params, c.acts
  local xs = probe(def.data, def.probe_images)
  local s0 = def.similarity and M.kernel_similarity(net, xs) or nil
  local steps, last = {}, nil
  local tr = merge(def.train, u.train)
  tr.net, tr.seed, tr.threads, tr.data = net, u.seed, def.threads, def.data
  tr.checkpoint = unitdir
  tr.progress = def.progress
  local batch = tr.batch or 64
  tr.on_step = function(p)
    local now = d.now()
    if p.epoch_done then last = nil return false end
    if last then steps[#steps + 1] = (now - last) / batch end
    last = now
    return false
  end
  local load0 = d.load_begin()
  local t0 = d.now()
  local r = d.train(tr)
  row.train_s = d.now() - t0
  row.test_acc, row.test_loss = r.test_acc, r.test_loss
  local e = r.epochs[#r.epochs] or {}
  row.train_loss, row.train_acc, row.epochs, row.steps = e.train_loss, e.train_acc, #r.epochs, r.steps
  if #steps > 0 then
    row.train_s_per_img_median = median(steps)
    row.train_s_per_img_min, row.train_s_per_img_max = math.min(table.unpack(steps)), math.max(table.unpack(steps))
  end
  local tm = net:time(xs, {repetitions = def.time_repetitions, min_time = def.time_min})
  local nb = xs:shape()[1]
  row.infer_s_per_img_median, row.infer_s_per_img_min, row.infer_s_per_img_max = tm.median / nb, tm.min / nb,
                                                                                   tm.max / nb
  row.infer_cv = tm.cv
  local ld = d.load_end(load0, def.threads)
  row.isa, row.loadavg, row.steal_pct, row.others_cpus, row.contended = d.isa, ld.loadavg, ld.steal_pct,
                                                                        ld.others_cpus, ld.contended
  local s1 = def.similarity and M.kernel_similarity(net, xs) or nil
  if s0 and s1 then
    -- every pair's similarity, for the figures (the CSV keeps the 20-bin histogram)
    for _, e in ipairs{{"cosines_init.txt", s0}, {"cosines_trained.txt", s1}} do
      local t = {}
      for i, c in ipairs(e[2].cosines) do t[i] = string.format("%.9f", c) end
      d.write_file(unitdir .. "/" .. e[1], table.concat(t, "\n") .. "\n")
    end
    row.kernel_nodes = s1.nodes
    row.sim_init_mean, row.sim_init_std, row.sim_init_hist = s0.mean, s0.std, hist_text(s0.hist)
    row.sim_mean, row.sim_std, row.sim_hist = s1.mean, s1.std, hist_text(s1.hist)
  end
  row.curve_csv = r.curve_csv
  return row
end

------------------------------------------------------------------------------------------------
-- the definition
------------------------------------------------------------------------------------------------
local DEF_KEYS = {"name", "title", "family", "base", "variants", "seeds", "train", "threads", "baseline", "x",
                  "xlabel", "logx", "similarity", "data", "probe_images", "time_repetitions", "time_min",
                  "progress", "dir", "quick", "paper_metric", "note", "figures"}
local VARIANT_KEYS = {label = true, train = true, paper = true, group = true, x = true, baseline = true}

local function check_def(def)
  if type(def) ~= "table" then fail("dcb.study: expects a table {name=, variants=, ...}") end
  local valid = {}
  for _, k in ipairs(DEF_KEYS) do valid[k] = true end
  for k in pairs(def) do
    if not valid[k] then fail("dcb.study: unknown field '%s' (valid: %s)", tostring(k), table.concat(DEF_KEYS, ", ")) end
  end
  if type(def.name) ~= "string" or not def.name:match("^[%w_%-]+$") then
    fail("dcb.study: name must be a word of letters, digits, '_' or '-', got %s", tostring(def.name))
  end
  if type(def.variants) ~= "table" or #def.variants == 0 then fail("dcb.study %s: variants must be a non-empty list", def.name) end
end

-- The definition with its defaults, and quick = {...} applied under --quick.
local function normalise(def)
  check_def(def)
  local d = dcb()
  local q = d.quick and def.quick or {}
  local s = {}
  for k, v in pairs(def) do s[k] = v end
  for k, v in pairs(q) do
    if k == "train" then s.train = merge(def.train, v)
    elseif k == "labels" then
      local keep = {}
      for _, l in ipairs(v) do keep[l] = true end
      local vs = {}
      for _, var in ipairs(def.variants) do if keep[var.label] then vs[#vs + 1] = var end end
      s.variants = vs
    else s[k] = v end
  end
  s.family = s.family or "resnet_fmnist"
  s.seeds = s.seeds or {1, 2, 3}
  s.train = s.train or {}
  s.threads = s.threads or tonumber(os.getenv("DCB_STUDY_THREADS") or "") or dcb().default_threads or 1
  s.data = s.data or "fashion-mnist"
  s.probe_images = s.probe_images or 64
  s.time_repetitions = s.time_repetitions or (d.quick and 3 or 5)
  s.time_min = s.time_min or (d.quick and 0.02 or 0.1)
  if s.similarity == nil then s.similarity = true end
  if s.progress == nil then s.progress = false end
  s.dir = s.dir or "ablations"
  local seen, vs = {}, {}
  for i, v in ipairs(s.variants) do
    if type(v) ~= "table" or type(v.label) ~= "string" then fail("dcb.study %s: variant %d needs a label", s.name, i) end
    vs[i] = copy(v)   -- the study's own: it adds _net and _units
    if seen[v.label] then fail("dcb.study %s: two variants are labelled '%s'", s.name, v.label) end
    seen[v.label] = true
  end
  s.variants = vs
  if s.baseline and not seen[s.baseline] then fail("dcb.study %s: baseline '%s' is not a variant label", s.name, s.baseline) end
  return s
end

local function variant_net(def, v)
  local o = copy(def.base)
  for k, val in pairs(v) do if not VARIANT_KEYS[k] and not tostring(k):match("^_") then o[k] = val end end
  return o
end

-- Every (variant, seed) as a unit: its id hashes the family, the net options, the training
-- settings, the data, the seed and the thread count. Two variants that train the same thing share
-- one unit.
local function units(def)
  local list, by_id = {}, {}
  for _, v in ipairs(def.variants) do
    v._net = variant_net(def, v)
    v._units = {}
    for _, seed in ipairs(def.seeds) do
      local tr = merge(def.train, v.train)
      local text = canon{family = def.family, net = v._net, train = tr, data = def.data, seed = seed,
                         threads = def.threads}
      local id = dcb().point_id(text)
      v._units[#v._units + 1] = id
      if not by_id[id] then
        local u = {id = id, label = v.label, net = v._net, train = v.train, seed = seed, config = canon(v._net)}
        by_id[id] = u
        list[#list + 1] = u
      end
    end
  end
  return list, by_id
end

-- Shard i of n takes every n-th unit in the order of their ids: balanced to one unit (a few units per
-- study make id % n lumpy), and the same on every machine, since every shard sees the whole list.
local function shard_of(list, shard)
  local ids = {}
  for i, u in ipairs(list) do ids[i] = u.id end
  table.sort(ids)
  local mine = {}
  for rank, id in ipairs(ids) do
    if not shard or shard.n <= 1 or (rank - 1) % shard.n == shard.i - 1 then mine[id] = true end
  end
  return mine
end

local function header_line() return table.concat(COLUMNS, ",") .. "\n" end

local function read_rows(csv)
  local f = io.open(csv)
  if not f then return nil end
  f:close()
  local rows, cols = dcb().read_csv(csv, true)
  if #cols > 0 and table.concat(cols, ",") ~= table.concat(COLUMNS, ",") then
    fail("dcb.study: %s has other columns than a study writes (an older or foreign file); move it away", csv)
  end
  return rows, #cols > 0
end

local function fmt_eta(s)
  s = math.floor(s + 0.5)
  return string.format("%d:%02d", s // 60, s % 60)
end

------------------------------------------------------------------------------------------------
-- aggregation: a row per variant
------------------------------------------------------------------------------------------------
local function num(x) return x and tonumber(x) or nil end

local function parse_hist(s)
  if not s or s == "" then return nil end
  local h = {}
  for v in s:gmatch("[^;]+") do h[#h + 1] = tonumber(v) end
  return #h == 20 and h or nil
end

function M.aggregate(def, rows)
  local last = {}
  for _, r in ipairs(rows) do last[r.point_id] = r end
  local out = {}
  for _, v in ipairs(def.variants) do
    local a = {label = v.label, variant = v, accs = {}, seeds = {}, errors = 0, rows = {}}
    local tr_t, inf_t, inf_lo, inf_hi, tr_lo, tr_hi = {}, {}, {}, {}, {}, {}
    local sim0, sim1, h0, h1 = {}, {}, nil, nil
    for i, id in ipairs(v._units) do
      local r = last[id]
      if r and r.status == "ok" then
        a.accs[#a.accs + 1] = num(r.test_acc)
        a.seeds[#a.seeds + 1] = def.seeds[i]
        a.rows[#a.rows + 1] = r
        a.macs, a.flops, a.params, a.acts = num(r.macs), num(r.flops), num(r.params), num(r.acts)
        if num(r.train_s_per_img_median) then
          tr_t[#tr_t + 1] = num(r.train_s_per_img_median)
          tr_lo[#tr_lo + 1], tr_hi[#tr_hi + 1] = num(r.train_s_per_img_min), num(r.train_s_per_img_max)
        end
        inf_t[#inf_t + 1] = num(r.infer_s_per_img_median)
        inf_lo[#inf_lo + 1], inf_hi[#inf_hi + 1] = num(r.infer_s_per_img_min), num(r.infer_s_per_img_max)
        if num(r.sim_mean) then
          sim0[#sim0 + 1], sim1[#sim1 + 1] = num(r.sim_init_mean), num(r.sim_mean)
          local p0, p1 = parse_hist(r.sim_init_hist), parse_hist(r.sim_hist)
          if p0 and p1 then
            h0, h1 = h0 or {}, h1 or {}
            for b = 1, 20 do h0[b] = (h0[b] or 0) + p0[b]; h1[b] = (h1[b] or 0) + p1[b] end
          end
        end
      elseif r then
        a.errors = a.errors + 1
        a.reason = r.reason
      end
    end
    a.mean, a.std, a.half, a.n = M.summary(a.accs)
    a.train_t, a.infer_t = median(tr_t), median(inf_t)
    a.train_lo, a.train_hi = #tr_lo > 0 and math.min(table.unpack(tr_lo)) or 0 / 0, #tr_hi > 0 and math.max(table.unpack(tr_hi)) or 0 / 0
    a.infer_lo, a.infer_hi = #inf_lo > 0 and math.min(table.unpack(inf_lo)) or 0 / 0, #inf_hi > 0 and math.max(table.unpack(inf_hi)) or 0 / 0
    if #sim1 > 0 then
      a.sim_init, a.sim_trained = M.summary(sim0), M.summary(sim1)
      a.hist_init, a.hist_trained = h0, h1
    end
    out[#out + 1] = a
  end
  local base
  for _, a in ipairs(out) do
    if (def.baseline and a.label == def.baseline) or (not def.baseline and a.variant.baseline) then base = a end
  end
  base = base or out[1]
  for _, a in ipairs(out) do
    a.is_baseline = a == base
    if a ~= base and a.n > 0 and base.n > 0 then
      a.delta, a.delta_half = M.welch(a.accs, base.accs)
      a.delta, a.delta_half = 100 * a.delta, 100 * a.delta_half
    end
    local p = a.variant.paper
    a.trend = a ~= base and (a.delta and M.trend(a.delta, a.delta_half, p and p.delta) or "no runs") or "baseline"
  end
  return out, base
end

------------------------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------------------------
local function f(fmt, v) if v == nil or v ~= v then return "—" end return string.format(fmt, v) end

local function paper_text(p)
  if not p then return "—" end
  if p.delta == nil then return p.text or "—" end
  return string.format("%+.2f %s (%s)", p.delta, p.unit or "", p.source or "?")
end

local TABLE_COLS = {"label", "seeds", "acc_mean", "acc_std", "acc_ci95", "delta", "delta_ci95", "paper_delta",
                    "paper_unit", "paper_source", "trend", "macs", "flops", "params", "acts",
                    "infer_us_per_img", "infer_us_min", "infer_us_max", "train_us_per_img", "train_us_min",
                    "train_us_max", "sim_init", "sim_trained", "x", "group", "baseline", "errors"}
M.TABLE_COLS = TABLE_COLS

local function write_tables(def, aggs, base_path)
  local d = dcb()
  local md = {}
  md[#md + 1] = "# " .. (def.title or def.name) .. "\n"
  local tr = def.train
  md[#md + 1] = string.format("Fashion-MNIST, `%s`%s; %d seed(s) per point (%s); training: %s epoch(s) on %s " ..
    "images, batch %s, %s; test on %s images; %d thread(s). Accuracy in %%, mean ± std over seeds, 95%% " ..
    "t-interval of the mean; Δ is the difference to the baseline `%s` in points with its Welch 95%% interval. " ..
    "Costs per image (MACs and FLOPs in millions, params in thousands); times per image in µs, median [min, max] " ..
    "over seeds and repetitions. Similarity: mean pairwise cosine similarity of the per-sample kernels of a probe " ..
    "batch, at initialisation → after training.\n", def.family, def.base and next(def.base) and (" " .. canon(def.base)) or "",
    #def.seeds, table.concat(def.seeds, ", "), tostring(tr.epochs or 3), tostring(tr.subset or "all 60000"),
    tostring(tr.batch or 64), tostring(tr.optimizer or "sgd"), tostring(tr.test_subset or "all 10000"),
    def.threads, aggs.base.label)
  if def.note then md[#md + 1] = def.note .. "\n" end
  md[#md + 1] = "| variant | n | acc % | 95% CI | Δ pts [95% CI] | paper Δ | trend | MMACs | MFLOPs | params k | " ..
                "infer µs/img | train µs/img | kernel sim |"
  md[#md + 1] = "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  local csv = {table.concat(TABLE_COLS, ",")}
  for _, a in ipairs(aggs) do
    local p = a.variant.paper
    local sim = a.sim_trained and string.format("%.3f → %.3f", a.sim_init, a.sim_trained) or "—"
    local delta = a.is_baseline and "baseline" or (a.delta and string.format("%+.2f [%+.2f, %+.2f]", a.delta,
      a.delta - a.delta_half, a.delta + a.delta_half) or "—")
    md[#md + 1] = string.format("| %s | %d | %s ± %s | [%s, %s] | %s | %s | %s | %s | %s | %s | %s [%s, %s] | %s [%s, %s] | %s |",
      a.label, a.n, f("%.2f", 100 * a.mean), f("%.2f", 100 * a.std), f("%.2f", 100 * (a.mean - a.half)),
      f("%.2f", 100 * (a.mean + a.half)), delta, paper_text(p), a.trend, f("%.2f", a.macs and a.macs / 1e6),
      f("%.2f", a.flops and a.flops / 1e6), f("%.1f", a.params and a.params / 1e3),
      f("%.1f", a.infer_t * 1e6), f("%.1f", a.infer_lo * 1e6), f("%.1f", a.infer_hi * 1e6),
      f("%.1f", a.train_t * 1e6), f("%.1f", a.train_lo * 1e6), f("%.1f", a.train_hi * 1e6), sim)
    local cells = {a.label, table.concat(a.seeds, ";"), a.mean, a.std, a.half, a.delta, a.delta_half,
                   p and p.delta, p and p.unit, p and p.source, a.trend, a.macs, a.flops, a.params, a.acts,
                   a.infer_t * 1e6, a.infer_lo * 1e6, a.infer_hi * 1e6, a.train_t * 1e6, a.train_lo * 1e6,
                   a.train_hi * 1e6, a.sim_init, a.sim_trained, a.variant.x or (def.x and a.variant._net[def.x]),
                   a.variant.group, a.is_baseline and 1 or 0, a.errors}
    local line = {}
    for i = 1, #TABLE_COLS do line[i] = csv_cell(cells[i]) end
    csv[#csv + 1] = table.concat(line, ",")
  end
  local sources = {}
  for _, a in ipairs(aggs) do
    local p = a.variant.paper
    if p and p.source and p.detail and not sources[p.source] then
      sources[p.source] = true
      md[#md + 1] = ""
      md[#md + 1] = string.format("- %s: %s", p.source, p.detail)
    end
  end
  md[#md + 1] = ""
  d.write_file(base_path .. "_table.md", table.concat(md, "\n") .. "\n")
  d.write_file(base_path .. "_table.csv", table.concat(csv, "\n") .. "\n")
  return base_path .. "_table.md", base_path .. "_table.csv"
end

------------------------------------------------------------------------------------------------
-- figures
------------------------------------------------------------------------------------------------
local function machine_tag(def)
  local j = dcb().machine()
  local cpu = j:match('"cpu_model"%s*:%s*"([^"]*)"') or "CPU"
  local isa = j:match('"avx512f"') and "AVX-512" or j:match('"avx2"') and "AVX2" or "no AVX2"
  return cpu .. ", " .. isa .. (def and string.format(", %d thread%s", def.threads, def.threads == 1 and "" or "s") or "")
end

local function all_pow2(xs)
  for _, x in ipairs(xs) do
    if type(x) ~= "number" or x <= 0 or 2 ^ math.floor(math.log(x, 2) + 0.5) ~= x then return false end
  end
  return #xs > 0
end

-- Accuracy against the ablated hyperparameter (one series per group), the baseline as a band.
local function fig_acc(def, aggs, base_path)
  local groups, order = {}, {}
  local xs = {}
  for _, a in ipairs(aggs) do
    local x = a.variant.x or (def.x and a.variant._net[def.x])
    if not a.is_baseline and type(x) == "number" and a.n > 0 then
      local g = a.variant.group or (def.xlabel or def.x or "variant")
      if not groups[g] then groups[g] = {}; order[#order + 1] = g end
      table.insert(groups[g], {x = x, a = a})
      xs[#xs + 1] = x
    end
  end
  if #order == 0 then return nil end
  local dat = base_path .. "_acc.dat"
  local fd = assert(io.open(dat, "w"))
  for _, g in ipairs(order) do
    table.sort(groups[g], function(p, q) return p.x < q.x end)
    fd:write("# ", g, "\n")
    for _, p in ipairs(groups[g]) do
      fd:write(string.format("%.17g %.6f %.6f %.6f\n", p.x, 100 * p.a.mean, 100 * (p.a.mean - (p.a.half == p.a.half and p.a.half or 0)),
                             100 * (p.a.mean + (p.a.half == p.a.half and p.a.half or 0))))
    end
    fd:write("\n\n")
  end
  fd:close()
  local b = aggs.base
  local bh = b.half == b.half and b.half or 0
  local lines = {}
  lines[#lines + 1] = string.format("set title %s noenhanced", gp_str((def.title or def.name) .. ": test accuracy, mean and 95% interval over " .. #def.seeds .. " seeds\n" .. machine_tag(def)))
  lines[#lines + 1] = string.format("set xlabel %s noenhanced", gp_str(def.xlabel or def.x or "hyperparameter"))
  lines[#lines + 1] = 'set ylabel "test accuracy (%)"'
  lines[#lines + 1] = "set key outside right top vertical"
  if def.logx ~= false and all_pow2(xs) then lines[#lines + 1] = 'set logscale x 2; set format x "%g"' end
  lines[#lines + 1] = "set offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1"
  local plots = {}
  if b.n > 0 then
    plots[#plots + 1] = string.format("%.6f with lines lt 7 dt 2 title %s", 100 * b.mean, gp_str("baseline " .. b.label))
    plots[#plots + 1] = string.format("%.6f with lines lt 7 dt 3 lw 1 notitle, %.6f with lines lt 7 dt 3 lw 1 notitle",
                                      100 * (b.mean - bh), 100 * (b.mean + bh))
  end
  for i, g in ipairs(order) do
    plots[#plots + 1] = string.format("%s index %d using 1:2:3:4 with yerrorlines lt %d title %s noenhanced",
                                      gp_str(dat), i - 1, i, gp_str(g))
  end
  lines[#lines + 1] = "plot " .. table.concat(plots, ", \\\n  ")
  return M.figure(base_path .. "_acc", table.concat(lines, "\n"))
end

-- Accuracy against MACs: every variant a labelled point with its interval, the baseline apart.
function M.fig_acc_macs(title, series, base_path)
  local dat = base_path .. ".dat"
  local fd = assert(io.open(dat, "w"))
  local nonempty = {}
  for _, s in ipairs(series) do if #s.points > 0 then nonempty[#nonempty + 1] = s end end
  series = nonempty
  for _, s in ipairs(series) do
    fd:write("# ", s.title, "\n")
    for _, p in ipairs(s.points) do
      fd:write(string.format("%.6f %.6f %.6f %.6f %s\n", p.macs / 1e6, 100 * p.mean, 100 * (p.mean - p.half),
                             100 * (p.mean + p.half), gp_str(p.label)))
    end
    fd:write("\n\n")
  end
  fd:close()
  local lines = {string.format("set title %s noenhanced", gp_str(title)),
                 'set xlabel "MMACs per image"', 'set ylabel "test accuracy (%)"',
                 "set key outside right top vertical", "set offsets graph 0.08, graph 0.08, graph 0.1, graph 0.1"}
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(series) do
    for _, p in ipairs(s.points) do lo, hi = math.min(lo, p.macs / 1e6), math.max(hi, p.macs / 1e6) end
  end
  if lo > hi then return nil end
  if hi - lo < 1e-9 * math.max(1, hi) then lines[#lines + 1] = string.format("set xrange [%.9g:%.9g]", lo * 0.9, hi * 1.1 + 1e-9) end
  if lo > 0 and hi / lo > 4 then lines[#lines + 1] = 'set logscale x 2; set format x "%g"; set xlabel "MMACs per image (log scale)"' end
  local plots = {}
  for i, s in ipairs(series) do do
    plots[#plots + 1] = string.format("%s index %d using 1:2:3:4 with yerrorbars lt %d pt %d title %s noenhanced",
                                      gp_str(dat), i - 1, i, s.pt or (4 + 2 * i), gp_str(s.title))
    if s.labels then
      plots[#plots + 1] = string.format("%s index %d using 1:2:5 with labels offset char 0.8,0.6 left font \",8\" noenhanced notitle",
                                        gp_str(dat), i - 1)
    end
  end end
  lines[#lines + 1] = "plot " .. table.concat(plots, ", \\\n  ")
  return M.figure(base_path, table.concat(lines, "\n"))
end

local function fig_macs(def, aggs, base_path)
  local pts, bpts = {}, {}
  for _, a in ipairs(aggs) do
    if a.n > 0 and a.macs then
      local p = {macs = a.macs, mean = a.mean, half = a.half == a.half and a.half or 0, label = a.label}
      if a.is_baseline then bpts[#bpts + 1] = p else pts[#pts + 1] = p end
    end
  end
  return M.fig_acc_macs((def.title or def.name) .. ": accuracy against MACs (mean, 95% interval)\n" .. machine_tag(def),
    {{title = "variants", points = pts, labels = true}, {title = "baseline", points = bpts, labels = true, pt = 5}},
    base_path .. "_acc_macs")
end

-- Test accuracy against epoch, the mean over seeds of every variant's curves.
local function fig_curves(def, aggs, base_path)
  local dat = base_path .. "_curves.dat"
  local fd = assert(io.open(dat, "w"))
  local titles = {}
  for _, a in ipairs(aggs) do
    local sum, cnt = {}, {}
    for _, r in ipairs(a.rows) do
      local path = r.curve_csv
      local cf = path and io.open(path)
      if cf then
        cf:read("l")
        for line in cf:lines() do
          local fs = {}
          for c in (line .. ","):gmatch("([^,]*),") do fs[#fs + 1] = c end
          local e, acc = tonumber(fs[1]), tonumber(fs[5])
          if e and acc then sum[e] = (sum[e] or 0) + acc; cnt[e] = (cnt[e] or 0) + 1 end
        end
        cf:close()
      end
    end
    if next(sum) then
      titles[#titles + 1] = a.label
      for e = 1, #sum do if cnt[e] then fd:write(string.format("%d %.6f\n", e, 100 * sum[e] / cnt[e])) end end
      fd:write("\n\n")
    end
  end
  fd:close()
  if #titles == 0 then return nil end
  local plots = {}
  for i, t in ipairs(titles) do
    plots[#plots + 1] = string.format("%s index %d using 1:2 with linespoints lt %d title %s noenhanced", gp_str(dat),
                                      i - 1, i, gp_str(t))
  end
  return M.figure(base_path .. "_curves", table.concat({
    string.format("set title %s noenhanced", gp_str((def.title or def.name) .. ": test accuracy per epoch, mean over seeds\n" .. machine_tag(def))),
    'set xlabel "epoch"', 'set ylabel "test accuracy (%)"', "set xtics 1", "set key outside right top vertical",
    "plot " .. table.concat(plots, ", \\\n  ")}, "\n"))
end

-- The pairwise similarities a variant's units wrote (all seeds pooled): init, trained (or nil).
function M.load_cosines(base_path, a)
  local out = {}
  for _, which in ipairs{"init", "trained"} do
    local vals = {}
    for _, r in ipairs(a.rows) do
      local fh = io.open(base_path .. ".units/" .. r.point_id .. "/cosines_" .. which .. ".txt")
      if fh then
        for line in fh:lines() do vals[#vals + 1] = tonumber(line) end
        fh:close()
      end
    end
    if #vals == 0 then return nil end
    out[which] = vals
  end
  return out.init, out.trained
end

-- Histograms of pairwise kernel similarity, trained (solid) and at initialisation (dashed). Kernels
-- that a router mixes are alike (cosine near 1), so the axis is the dissimilarity 1 - cos on a log
-- scale, in bins of a quarter decade. entries = {{label =, init = {cos...}, trained = {cos...}}, ...}.
function M.fig_similarity(title, entries, base_path)
  local LO, W = -7, 0.25
  local nb = math.ceil((math.log(2, 10) - LO) / W)
  local dat = base_path .. ".dat"
  local fd = assert(io.open(dat, "w"))
  local n = 0
  for _, e in ipairs(entries) do
    for _, vals in ipairs{e.init, e.trained} do
      local h = {}
      for b = 1, nb do h[b] = 0 end
      for _, c in ipairs(vals) do
        local x = math.log(math.max(1 - c, 10 ^ LO), 10)
        local b = math.min(nb, math.max(1, math.floor((x - LO) / W) + 1))
        h[b] = h[b] + 1
      end
      for b = 1, nb do fd:write(string.format("%.4f %.6f\n", LO + (b - 0.5) * W, h[b] / #vals)) end
      fd:write("\n\n")
      n = n + 1
    end
  end
  fd:close()
  if n == 0 then return nil end
  local plots = {}
  for i, e in ipairs(entries) do
    plots[#plots + 1] = string.format("%s index %d using 1:2 with histeps lt %d dt 2 lw 1.5 title %s noenhanced",
                                      gp_str(dat), 2 * (i - 1), i, gp_str(e.label .. ", initial"))
    plots[#plots + 1] = string.format("%s index %d using 1:2 with histeps lt %d dt 1 lw 2.5 title %s noenhanced",
                                      gp_str(dat), 2 * (i - 1) + 1, i, gp_str(e.label .. ", trained"))
  end
  return M.figure(base_path, table.concat({
    string.format("set title %s noenhanced", gp_str(title)),
    'set xlabel "1 - cosine similarity of two samples\' kernels (log scale)"', 'set ylabel "fraction of pairs"',
    string.format("set xrange [%g:%g]", LO, math.log(2, 10)),
    'set xtics ("1e-7" -7, "1e-6" -6, "1e-5" -5, "1e-4" -4, "0.001" -3, "0.01" -2, "0.1" -1, "1" 0)',
    "set yrange [0:*]", "set key outside right top vertical",
    "plot " .. table.concat(plots, ", \\\n  ")}, "\n"))
end

local function fig_sim(def, aggs, base_path)
  local entries = {}
  for _, a in ipairs(aggs) do
    local c0, c1 = M.load_cosines(base_path, a)
    if c1 and #entries < 6 then entries[#entries + 1] = {label = a.label, init = c0, trained = c1} end
  end
  if #entries == 0 then return nil end
  return M.fig_similarity((def.title or def.name) .. ": per-sample kernel similarity, initial and trained\n" ..
                          machine_tag(def), entries, base_path .. "_similarity")
end

------------------------------------------------------------------------------------------------
-- dcb.study
------------------------------------------------------------------------------------------------
function M.study(raw)
  local d = dcb()
  local def = normalise(raw)
  local list = units(def)
  local shard = d.shard
  local dir = d.results .. "/" .. def.dir
  d.mkdir(dir)
  local base_path = dir .. "/" .. def.name
  local stem = (shard and shard.n > 1) and string.format("%s.shard%dof%d", base_path, shard.i, shard.n) or base_path
  local csv = stem .. ".csv"
  local rows, has_header = read_rows(csv)
  rows = rows or {}
  if not has_header then d.append_line(csv, header_line()) end
  local done = {}
  for _, r in ipairs(rows) do if r.status == "ok" then done[r.point_id] = true end end
  local mine, ours = {}, shard_of(list, shard)
  for _, u in ipairs(list) do if ours[u.id] then mine[#mine + 1] = u end end
  local todo = 0
  for _, u in ipairs(mine) do if not done[u.id] then todo = todo + 1 end end
  io.stderr:write(string.format("study %s: %d units (%d variants x %d seeds) in this shard, %d done earlier -> %s\n",
                                def.name, #mine, #def.variants, #def.seeds, #mine - todo, csv))
  local t0, ran, errors = d.now(), 0, 0
  local warned_contended = false
  for _, u in ipairs(mine) do
    if not done[u.id] then
      local unitdir = base_path .. ".units/" .. u.id
      local ok, row = pcall(run_unit, def, u, unitdir)
      if not ok then
        row = {status = "error", reason = tostring(row)}
        errors = errors + 1
        io.stderr:write(string.format("study %s: %s seed %d: error: %s\n", def.name, u.label, u.seed, row.reason))
      end
      row.point_id, row.study, row.label, row.family, row.config = u.id, def.name, u.label, def.family, u.config
      row.seed, row.threads = u.seed, def.threads
      local cells = {}
      for i, c in ipairs(COLUMNS) do cells[i] = csv_cell(row[c]) end
      d.append_line(csv, table.concat(cells, ",") .. "\n")
      rows[#rows + 1] = row
      ran = ran + 1
      if row.contended == 1 and not warned_contended then
        warned_contended = true
        io.stderr:write(string.format("study %s: warning: other processes held %.1f core(s) (steal %.0f%%) while %s "
                                      .. "seed %d trained on %d thread(s); such rows have contended=1 and their "
                                      .. "times are distorted\n", def.name, row.others_cpus, row.steal_pct, u.label,
                                      u.seed, def.threads))
      end
      local el = d.now() - t0
      if ok then
        io.stderr:write(string.format("study %s [%d/%d] %s seed %d: test acc %.2f%% (%.0f s, ETA %s)\n", def.name, ran,
                                      todo, u.label, u.seed, 100 * row.test_acc, row.train_s,
                                      fmt_eta(el / ran * (todo - ran))))
      end
    end
  end
  local result = {csv = csv, units = #mine, ran = ran, errors = errors, figures = {}}
  if shard and shard.n > 1 then return result end
  -- a whole run: read back everything (rows written by other shards and merged count too)
  rows = read_rows(csv) or {}
  local aggs, base = M.aggregate(def, rows)
  aggs.base = base
  result.aggregates = aggs
  result.table_md, result.table_csv = write_tables(def, aggs, base_path)
  local defj = string.format('{\n  "machine": %s,\n  "study": %q,\n  "definition": %q,\n  "quick": %s,\n  "csv": %q\n}\n',
                             d.machine(), def.name, canon{family = def.family, base = def.base, seeds = def.seeds,
                             train = def.train, threads = def.threads, variants = (function()
                               local vs = {}
                               for i, v in ipairs(def.variants) do vs[i] = v._net end
                               return vs end)()}, tostring(d.quick), csv)
  d.write_file(base_path .. ".json", defj)
  for _, fig in ipairs{fig_acc, fig_macs, fig_curves, fig_sim} do
    local path, err = fig(def, aggs, base_path)
    if path then result.figures[#result.figures + 1] = path
    elseif err then io.stderr:write("study ", def.name, ": no figure: ", err, "\n") end
  end
  if def.figures then def.figures(def, aggs, base_path, result) end
  io.stderr:write(string.format("study %s: table %s, %d figures\n", def.name, result.table_md, #result.figures))
  return result
end

------------------------------------------------------------------------------------------------
-- dcb.sample_space: n models drawn at random from a design space, reproducibly from a seed
------------------------------------------------------------------------------------------------
-- space = {key = {values}, ..., [conditional] = {conv = {condconv = {experts = {2, 4, 8}}, ...}}}:
-- every plain key is drawn uniformly; `given[key][value]` adds the keys that only make sense for
-- that value (a dynamic operator's own hyperparameter). Returns variants {label=, ...} with the
-- draw's index; the same seed gives the same models.
function M.sample_space(t)
  if type(t) ~= "table" or type(t.space) ~= "table" then fail("dcb.sample_space: expects {space = {...}, n =, seed =}") end
  local n, seed = t.n or 32, t.seed or 1
  if math.type(n) ~= "integer" or n < 1 then fail("dcb.sample_space: n must be a positive integer, got %s", tostring(n)) end
  -- splitmix64 (integer arithmetic wraps in Lua 5.4), so a draw does not depend on Lua's math.random
  local state = seed
  local function next_u()
    state = state + 0x9E3779B97F4A7C15
    local z = state
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    z = z ~ (z >> 31)
    return z
  end
  local function pick(list)
    local r = (next_u() >> 11) % #list
    return list[r + 1]
  end
  local keys = {}
  for k, v in pairs(t.space) do
    if type(v) ~= "table" or #v == 0 then fail("dcb.sample_space: space.%s must be a non-empty list", tostring(k)) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local given = t.given or {}
  local out, seen = {}, {}
  local tries = 0
  while #out < n do
    tries = tries + 1
    if tries > 100 * n then fail("dcb.sample_space: the space has fewer than %d distinct models", n) end
    local m = {}
    for _, k in ipairs(keys) do m[k] = pick(t.space[k]) end
    for _, k in ipairs(keys) do
      local extra = given[k] and given[k][m[k]]
      if extra then
        local eks = {}
        for ek in pairs(extra) do eks[#eks + 1] = ek end
        table.sort(eks)
        for _, ek in ipairs(eks) do m[ek] = pick(extra[ek]) end
      end
    end
    local key = canon(m)
    if not seen[key] or t.distinct == false then
      seen[key] = true
      local parts = {}
      local mk = {}
      for k in pairs(m) do mk[#mk + 1] = k end
      table.sort(mk)
      for _, k in ipairs(mk) do parts[#parts + 1] = k .. "=" .. tostring(m[k]) end
      m.label = string.format("m%02d %s", #out + 1, table.concat(parts, " "))
      out[#out + 1] = m
    end
  end
  return out
end

return M
