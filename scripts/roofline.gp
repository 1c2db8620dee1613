# roofline.gp — achieved GFLOP/s against arithmetic intensity (flops/bytes),
# under the calibrated compute peak and memory bandwidth (dcbench calibrate).
# Set by the caller: fmt outfile datafile styledir nseries array titles[nseries]
#   plottitle  have_roof (0/1)  peak (GFLOP/s)  bw (GB/s)  xmin xmax
load styledir . "/style.gp"
set xlabel "arithmetic intensity (flop/byte)"
set ylabel "GFLOP/s"
set title plottitle noenhanced
set logscale xy 2
set format x "%g"
set format y "%g"
set xrange [xmin:xmax]
set key outside right top Left reverse title "impl"
roof(x) = (x * bw < peak) ? x * bw : peak
if (have_roof) {
    set label 1 sprintf("peak %.1f GFLOP/s", peak) at graph 0.02, first peak * 1.15 textcolor rgb "#555555"
    set label 2 sprintf("%.1f GB/s", bw) at first (xmin * 1.5), first (xmin * 1.5 * bw * 1.3) textcolor rgb "#555555"
    plot roof(x) with lines lc rgb "#555555" lw 2 dt 2 notitle, \
         for [i=1:nseries] datafile index (i-1) using 1:2 with points lt i ps 1.3 title titles[i] noenhanced
} else {
    plot for [i=1:nseries] datafile index (i-1) using 1:2 with points lt i ps 1.3 title titles[i] noenhanced
}
