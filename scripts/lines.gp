# lines.gp — y against x, one line per series (an implementation, plus any
# other hyperparameter that varies), medians with min-max error bars.
# Set by the caller (dcbench writes these before loading this file):
#   fmt outfile datafile styledir  nseries  array titles[nseries]
#   xlabel ylabel plottitle  logx logy (0/1)  bars (1: columns 3, 4 are min, max)
load styledir . "/style.gp"
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set title plottitle noenhanced
if (logx) { set logscale x 2; set format x "%g" }
if (logy) { set logscale y 10; set format y "%g" }
set offsets graph 0.03, graph 0.03, 0, 0
if (bars) {
    plot for [i=1:nseries] datafile index (i-1) using 1:2:3:4 with yerrorlines lt i title titles[i] noenhanced
} else {
    plot for [i=1:nseries] datafile index (i-1) using 1:2 with linespoints lt i title titles[i] noenhanced
}
