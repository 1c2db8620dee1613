# lines.gp — y against x, one line per legend entry (an implementation, or
# the values of `by`), medians with min-max error bars; where other
# hyperparameters vary, or there are more than 6 entries, small multiples:
# one panel per combination (and per group of 6 entries), each entry in the
# same style in every panel.
# Set by the caller (dcbench writes these before loading this file):
#   fmt outfile datafile styledir  nseries  array titles[nseries] styles[nseries]
#   npanels prows pcols  array pfirst[npanels] plast[npanels] ptitles[npanels]
#   nlegend  array ltitles[nlegend] lstyles[nlegend] (the legend cell of small multiples)
#   xlabel ylabel keytitle plottitle  logx logy (0/1)  bars (1: columns 3, 4 are min, max)
#   yfmt (tic format of y)  xtics_list ("" or the x values, comma-separated)
#   figw figh, ylo yhi (optional: the figure's size in pixels; one y range for every panel)
load styledir . "/style.gp"
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set format y yfmt
if (logx) { set logscale x 2; set format x "%g" }
if (exists("xtics_list") && strlen(xtics_list) > 0) { eval("set xtics (" . xtics_list . ")") }
if (exists("ylo")) { set yrange [ylo:yhi] }
if (logy) { set logscale y 10; set format y "%g" }
set offsets graph 0.03, graph 0.03, 0, 0
# the legend beside the data; for small multiples, once, in a cell of its own
if (npanels > 1) {
    unset key
    set multiplot layout prows, pcols title plottitle noenhanced
} else {
    set key outside right top Left reverse title keytitle noenhanced
    set title plottitle noenhanced
}
do for [p=1:npanels] {
    if (npanels > 1) { set title ptitles[p] noenhanced }
    if (bars) {
        plot for [i=pfirst[p]:plast[p]] datafile index (i-1) using 1:2:3:4 with yerrorlines lt styles[i] title titles[i] noenhanced
    } else {
        plot for [i=pfirst[p]:plast[p]] datafile index (i-1) using 1:2 with linespoints lt styles[i] title titles[i] noenhanced
    }
}
if (npanels > 1) {
    unset title; unset xlabel; unset ylabel; unset border; unset tics; unset grid; unset logscale
    set xrange [0:1]; set yrange [0:1]
    set key center center vertical Left reverse title keytitle noenhanced nobox
    plot for [i=1:nlegend] NaN with linespoints lt lstyles[i] title ltitles[i] noenhanced
    unset multiplot
}
