-- netcost: a tiny layer-graph builder for analytic network costs.
--
-- A network tracks the current activation shape (C, H, W) of one image and appends one row per
-- layer: {name, op, out_shape = {C, H, W}, macs, flops, params, acts, dynamic_macs, executed_macs,
-- bytes}. :cost() returns the sums of the rows' columns, so the per-layer breakdown always adds up
-- to the totals.
--
-- Cost rules (docs/OPERATORS.md, COSTS -- the rules pycls uses):
--   conv and every dcb operator: whatever dcb.op(name, params):cost({1, C, H, W}) reports;
--   linear: a 1x1 conv with bias on a 1x1 map (macs = params = in*out + out, acts = out);
--   batch norm: params 2*C, no macs, no acts (flops 2*C*H*W, the scale and shift);
--   max/avg pool: acts = outputs, no macs (flops k*k per output);
--   global average pool: nothing but flops (C*H*W adds): pycls counts neither macs nor acts for it;
--   relu / swish / sigmoid, residual add, channel scaling: flops only (one per element).
-- All calls into the dcb module are made in dcb_cost() below and nowhere else.
--
-- The rows also record the graph, so that harness/lua/nets.lua can instantiate a description as a
-- trainable network: row.inputs lists the 0-based indices of the rows it reads (-1: the network's
-- input), row.kind names the layer for the instantiation. A branch's output is what the next
-- :add() sums with the main path; without a branch in the block, :add() sums with the block's input.
-- Descriptions that split channels or share a router across operators are cost-only
-- (net.untrainable says why).

local netcost = {}

local COLS = {"macs", "flops", "params", "acts", "dynamic_macs", "executed_macs", "bytes"}
netcost.columns = COLS

-- The one place where this file talks to dcb.
local dcb_module
local function dcb_cost(opname, params, shape)
  if not dcb_module then dcb_module = package.loaded.dcb or rawget(_G, "dcb") or require("dcb") end
  local c = dcb_module.op(opname, params):cost(shape)
  local r = {}
  for _, k in ipairs(COLS) do r[k] = c[k] or 0 end
  if c.executed_macs == nil then r.executed_macs = r.macs end
  return r
end

local Net = {}
Net.__index = Net

-- netcost.new(name, {channels = 3, res = 224} or {channels=, h=, w=})
function netcost.new(name, opts)
  opts = opts or {}
  local res = opts.res or 224
  local self = setmetatable({
    name = name,
    C = opts.channels or 3, H = opts.h or res, W = opts.w or res,
    rows = {}, prefix = {}, counters = {},
    cur = -1,            -- the row whose output is the current activation (-1: the input)
  }, Net)
  return self
end

local function fail(fmt, ...) error(string.format(fmt, ...), 3) end

function Net:shape() return {self.C, self.H, self.W} end
function Net:set_shape(s) self.C, self.H, self.W = s[1], s[2], s[3]; return self end

-- Naming: rows are named "<prefix>.<name>"; :push/:pop (or :scope) set the prefix.
function Net:push(name) self.prefix[#self.prefix + 1] = tostring(name); return self end
function Net:pop() assert(#self.prefix > 0, "netcost: pop without push"); self.prefix[#self.prefix] = nil; return self end
function Net:scope(name, fn)
  self:push(name)
  local ok, err = pcall(fn, self)
  self:pop()
  if not ok then error(err, 0) end
  return self
end
function Net:stage(i, fn) return self:scope("s" .. i, fn) end
function Net:block(j, fn)
  local saved_in, saved_res = self.block_in, self.res
  self.block_in, self.res = self.cur, nil
  local ok, err = pcall(self.scope, self, "b" .. j, fn)
  self.block_in, self.res = saved_in, saved_res
  if not ok then error(err, 0) end
  return self
end

function Net:_name(name, op)
  local base = table.concat(self.prefix, ".")
  if not name then
    local key = base .. "|" .. op
    local n = (self.counters[key] or 0) + 1
    self.counters[key] = n
    name = op .. (n > 1 and n or "")
  end
  if base == "" then return name end
  return base .. "." .. name
end

function Net:_row(name, op, cost, outC, outH, outW, inputs)
  local r = {name = self:_name(name, op), op = op, out_shape = {outC, outH, outW}, inputs = inputs or {self.cur},
             in_shape = {self.C, self.H, self.W}}
  for _, k in ipairs(COLS) do r[k] = cost[k] or 0 end
  self.rows[#self.rows + 1] = r
  self.cur = #self.rows - 1
  self.C, self.H, self.W = outC, outH, outW
  return r
end

local function outsz(n, k, s, p, d) return (n + 2 * p - d * (k - 1) - 1) // s + 1 end
netcost.outsz = outsz

local function is_int(x) return math.type(x) == "integer" end

-- Fill "same" padding (dilation * (k // 2)) unless given, so dcb and the shape tracking agree.
local function with_geometry(p)
  local q = {}
  for k, v in pairs(p) do q[k] = v end
  local kh = q.kh or q.k
  if kh then
    q.stride = q.stride or 1
    q.dilation = q.dilation or 1
    if q.pad == nil then q.pad = q.dilation * (kh // 2) end
  end
  return q
end

local function conv_out(self, q)
  local kh, kw = q.kh or q.k, q.kw or q.k
  return outsz(self.H, kh, q.stride, q.pad, q.dilation), outsz(self.W, kw, q.stride, q.pad, q.dilation)
end

-- conv{cout=, k=, stride=1, pad=k//2*dilation, dilation=1, groups=1, bias=false, name=}
function Net:conv(a)
  local q = with_geometry(a)
  q.name = nil
  q.cin = self.C
  if not is_int(q.cout) or q.cout < 1 then fail("netcost: conv needs an integer cout, got %s", tostring(a.cout)) end
  q.groups = q.groups or 1
  if self.C % q.groups ~= 0 or q.cout % q.groups ~= 0 then
    fail("netcost: conv %s: cin %d and cout %d must be divisible by groups %d",
         self:_name(a.name, "conv"), self.C, q.cout, q.groups)
  end
  q.bias = q.bias or false
  local c = dcb_cost("conv2d", q, {1, self.C, self.H, self.W})
  local ho, wo = conv_out(self, q)
  local r = self:_row(a.name, "conv2d", c, q.cout, ho, wo)
  r.hyper = q
  return r
end

-- linear{cout=, bias=true, dynamic=false}: needs a 1x1 map (after :gap()). dynamic = true marks it as
-- routing / kernel-generation work (its macs also go to dynamic_macs).
function Net:linear(a)
  if self.H ~= 1 or self.W ~= 1 then fail("netcost: linear needs a 1x1 input, got %dx%d", self.H, self.W) end
  local bias = a.bias ~= false
  local c = dcb_cost("conv2d", {cin = self.C, cout = a.cout, k = 1, stride = 1, pad = 0, dilation = 1,
                                groups = 1, bias = bias}, {1, self.C, 1, 1})
  if a.dynamic then c.dynamic_macs = c.macs end
  local r = self:_row(a.name, "linear", c, a.cout, 1, 1)
  r.hyper = {cin = r.in_shape[1], cout = a.cout, bias = bias}
  return r
end

function Net:bn(C, name)
  C = C or self.C
  local e = C * self.H * self.W
  return self:_row(name, "bn", {params = 2 * C, flops = 2 * e, bytes = 4 * 2 * C}, C, self.H, self.W)
end

local function eltwise(opname)
  return function(self, name)
    local e = self.C * self.H * self.W
    return self:_row(name, opname, {flops = e}, self.C, self.H, self.W)
  end
end
Net.relu = eltwise("relu")
Net.swish = eltwise("swish")
Net.sigmoid = eltwise("sigmoid")
Net.scale = eltwise("scale")   -- channel-wise scaling by attention weights

-- pool{k=, stride=k, pad=0, kind="max"|"avg", ceil=false}
function Net:pool(a)
  local k, s, p = a.k, a.stride or a.k, a.pad or 0
  local ho, wo
  if a.ceil then
    ho = -((-(self.H + 2 * p - k)) // s) + 1
    wo = -((-(self.W + 2 * p - k)) // s) + 1
  else
    ho, wo = outsz(self.H, k, s, p, 1), outsz(self.W, k, s, p, 1)
  end
  local out = self.C * ho * wo
  if a.ceil then self.untrainable = "a pool with ceil mode" end
  local r = self:_row(a.name, (a.kind or "max") .. "pool", {acts = out, flops = k * k * out, bytes = 4 * out},
                      self.C, ho, wo)
  r.hyper = {k = k, stride = s, pad = p}
  return r
end

function Net:gap(name)
  local e = self.C * self.H * self.W
  return self:_row(name, "gap", {flops = e}, self.C, 1, 1)
end

-- Residual add (or any elementwise merge of two same-shaped tensors).
function Net:add(name)
  local e = self.C * self.H * self.W
  local other = self.res or self.block_in
  if other == nil then self.untrainable = "an add outside a block without a branch" end
  self.res = nil
  return self:_row(name, "add", {flops = e}, self.C, self.H, self.W, {self.cur, other or -1})
end

-- Run fn as a side branch from the current shape; restore the shape afterwards and return the
-- branch's output shape.
function Net:branch(fn)
  local saved, saved_cur = self:shape(), self.cur
  fn(self)
  local out = self:shape()
  self.res = self.cur
  self.cur = saved_cur
  self:set_shape(saved)
  return out
end

-- Channel bookkeeping with no cost: split keeps `c` channels, concat appends `c` channels.
function Net:split(c) self.C = c; self.untrainable = "a channel split"; return self end
function Net:concat(c, name)
  self.untrainable = "a channel concat"
  return self:_row(name, "concat", {}, self.C + c, self.H, self.W)
end

-- Output shape of a dcb operator given its (completed) parameters.
local function op_out(self, opname, q)
  local C = q.cout or q.channels or (q.depthwise and q.cin) or self.C
  if q.kh or q.k then
    local ho, wo = conv_out(self, q)
    return C, ho, wo
  end
  local s = q.stride or 1
  return C, (self.H - 1) // s + 1, (self.W - 1) // s + 1
end

-- op(opname, params, {name=, shared = {cin=, cout=}})
-- params are the operator's hyperparameters (docs/OPERATORS.md names); cin (and channels for se) default
-- to the current channel count; kernel operators get "same" padding unless pad is given.
-- `shared` names a linear layer (cin -> cout, with bias, on the pooled input) that the operator's own
-- cost includes but that the model shares across several operators (one CondConv router per block,
-- WeightNet's per-block reduction FC): its cost is taken off this row, and the model adds it once
-- with :linear().
function Net:op(opname, params, opts)
  opts = opts or {}
  local q = with_geometry(params)
  if opname == "se" then q.channels = q.channels or self.C else q.cin = q.cin or self.C end
  local inC = q.cin or q.channels
  if inC ~= self.C then
    fail("netcost: %s expects %d input channels, the network has %d", opname, inC, self.C)
  end
  local c = dcb_cost(opname, q, {1, self.C, self.H, self.W})
  if opts.shared then
    self.untrainable = "a router shared across operators"
    local s = dcb_cost("conv2d", {cin = opts.shared.cin, cout = opts.shared.cout, k = 1, stride = 1, pad = 0,
                                  dilation = 1, groups = 1, bias = true}, {1, opts.shared.cin, 1, 1})
    for _, k in ipairs(COLS) do c[k] = c[k] - s[k] end
    c.dynamic_macs = c.dynamic_macs - s.macs   -- the shared layer is routing work
  end
  local oc, oh, ow = op_out(self, opname, q)
  local r = self:_row(opts.name, opname, c, oc, oh, ow)
  r.hyper = q   -- the operator's hyperparameters as passed to dcb (for reports)
  return r
end

-- Sequences (N, T, C): :image_rows() reads an image as H steps of C*W features; the shape is then kept
-- as C = features, H = T, W = 1, and the seq_* layers cost the operators on (1, T, C).
function Net:image_rows(name)
  local T, F = self.H, self.C * self.W
  self.seq = true
  return self:_row(name, "rows", {}, F, T, 1)
end

local function need_seq(self, what)
  if not self.seq then fail("netcost: %s needs a sequence (call :image_rows() first)", what) end
end

-- seq_linear{cout=, bias=true}: the same linear layer at every step.
function Net:seq_linear(a)
  need_seq(self, "seq_linear")
  local bias = a.bias ~= false
  local T = self.H
  local c = dcb_cost("linear", {["in"] = self.C, out = a.cout, bias = bias}, {1, T, self.C})
  local r = self:_row(a.name, "seq_linear", c, a.cout, T, 1)
  r.hyper = {["in"] = r.in_shape[1], out = a.cout, bias = bias}
  return r
end

-- seq_op(opname, params): a sequence operator (lightconv, dynconv1d, mhattention); channels default
-- to the current feature count.
function Net:seq_op(opname, params, opts)
  need_seq(self, opname)
  local q = {}
  for k, v in pairs(params) do q[k] = v end
  q.channels = q.channels or self.C
  if q.channels ~= self.C then
    fail("netcost: %s expects %d channels, the sequence has %d", opname, q.channels, self.C)
  end
  local c = dcb_cost(opname, q, {1, self.H, self.C})
  local r = self:_row((opts or {}).name, opname, c, self.C, self.H, 1)
  r.hyper = q
  return r
end

-- The mean over the steps: (T, C) -> C.
function Net:seq_gap(name)
  need_seq(self, "seq_gap")
  local e = self.C * self.H
  self.seq = false
  return self:_row(name, "seq_gap", {flops = e}, self.C, 1, 1)
end

function Net:layers()
  local out = {}
  for i, r in ipairs(self.rows) do
    local t = {}
    for k, v in pairs(r) do t[k] = v end
    t.out_shape = {r.out_shape[1], r.out_shape[2], r.out_shape[3]}
    t.inputs = {table.unpack(r.inputs)}
    if r.hyper then
      t.hyper = {}
      for k, v in pairs(r.hyper) do t.hyper[k] = v end
    end
    out[i] = t
  end
  return out
end

function Net:cost()
  local t = {}
  for _, k in ipairs(COLS) do t[k] = 0 end
  for _, r in ipairs(self.rows) do
    for _, k in ipairs(COLS) do t[k] = t[k] + r[k] end
  end
  return t
end

return netcost
