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

-- The calibration of this run's ISA level (a peak of AVX-512 FMAs says
-- nothing of a DCB_ISA=avx2 run), or nil and why. dcb.calibration() already
-- reads that level; the check stands for a table made by hand.
function M.calibration_here()
  local c, why = dcb.calibration()
  if not c then return nil, why end
  if c.isa ~= dcb.isa then return nil, ("the calibration is of %s, this run %s"):format(c.isa, dcb.isa) end
  return c
end

-- A calibration's peak GFLOP/s and bandwidth GB/s on `threads` threads: the
-- smaller of threads times the 1-thread figures and the all-thread ones.
function M.calibrated_rates(c, threads)
  local peak, bw = c.peak_gflops_1t * threads, c.bw_gbs_1t * threads
  if c.peak_gflops_all and peak > c.peak_gflops_all then peak = c.peak_gflops_all end
  if c.bw_gbs_all and bw > c.bw_gbs_all then bw = c.bw_gbs_all end
  return peak, bw
end

-- What a dynamic conv (condconv, dyconv) must do beyond its static conv
-- (issue 14, point 3): stream the expert bank once per batch and write the N
-- mixed kernels (bytes at the calibrated bandwidth), mix them (2 E FLOPs per
-- kernel weight and sample) and transform them for the static conv's engine
-- (FLOPs at the calibrated peak): Winograd F(m x m, 3 x 3) takes a 3 x 3
-- kernel to G g G^T, 9a + 3a^2 multiply-adds (a = m + 2), the other engines
-- use a kernel as it is. p: the op's params() (cin, cout, groups, kh, kw or k,
-- and experts or kernels), N the batch, engine the static conv's ("winograd",
-- "winograd_f2", ...), threads as the measurement's. Returns the seconds and
-- their parts {bytes, flops, bytes_s, flops_s}, or nil and why (no
-- calibration of this ISA level, or no expert count in p). The floor of the
-- dynamic op is then our static conv's measured time plus these seconds:
-- routing (a pooling and a small FC) is left out.
function M.dyn_floor_extra(p, N, engine, threads)
  local c, why = M.calibration_here()
  if not c then return nil, why end
  local E = p.experts or p.kernels
  if not E then return nil, "no experts or kernels" end
  local kh, kw = p.kh or p.k, p.kw or p.k
  local cig = p.cin // (p.groups or 1)
  local P = p.cout * cig * kh * kw -- one kernel's floats
  local bytes = 4 * (E * P + N * P)
  local flops = 2 * N * E * P
  local m = ({winograd = 4, winograd_f2 = 2, winograd_f6 = 6})[engine]
  if m and kh == 3 and kw == 3 then
    local a = m + 2
    flops = flops + 2 * N * p.cout * cig * (9 * a + 3 * a * a)
  end
  local peak, bw = M.calibrated_rates(c, threads)
  local parts = {bytes = bytes, flops = flops, bytes_s = bytes / (bw * 1e9), flops_s = flops / (peak * 1e9)}
  return parts.bytes_s + parts.flops_s, parts
end

-- the full list, or the short one under --quick
function M.pick(full, quick) if dcb.quick then return quick else return full end end

return M
