# crossover.gp — a crossover map: over the grid of two hyperparameters (x, y),
# which value of `by` (an implementation, a strategy) is fastest in each cell,
# the cell coloured by the winner's style and labelled with the runner-up's
# time over the winner's; a panel per value of any other hyperparameter that
# varies, and the legend (each winner with the number of cells it wins) once.
# Set by the caller (dcbench writes these before loading this file):
#   fmt outfile datafile styledir plottitle xlabel ylabel keytitle
#   xtics_cmd ytics_cmd (set xtics/ytics at the cell indices)  nx ny
#   npanels prows pcols array ptitles[npanels]  nby array bynames[nby] bywins[nby]
#   figw figh (optional)
# datafile: a block per panel, rows "xi yi style label".
load styledir . "/style.gp"
set style fill solid 0.55 border rgb "#ffffff"
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
eval(xtics_cmd)
eval(ytics_cmd)
set xrange [-0.5:nx - 0.5]
set yrange [-0.5:ny - 0.5]
set tics scale 0
unset grid
set key outside right top Left reverse title keytitle noenhanced
if (npanels > 1) {
    unset key
    set multiplot layout prows, pcols title plottitle noenhanced
} else {
    set title plottitle noenhanced
}
do for [p=1:npanels] {
    if (npanels > 1) { set title ptitles[p] noenhanced }
    plot datafile index (p-1) using 1:2:(0.5):(0.5):3 with boxxyerror lc variable notitle, \
         '' index (p-1) using 1:2:4 with labels font ",9" notitle, \
         for [i=1:nby] NaN with boxes lt i title sprintf("%s (%d cells)", bynames[i], bywins[i]) noenhanced
}
if (npanels > 1) {
    unset title; unset xlabel; unset ylabel; unset border; unset tics
    set xrange [0:1]; set yrange [0:1]
    set key center center vertical Left reverse title keytitle noenhanced nobox
    plot for [i=1:nby] NaN with boxes lt i title sprintf("%s (%d cells)", bynames[i], bywins[i]) noenhanced
    unset multiplot
}
