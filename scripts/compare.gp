# compare.gp — the figure of dcbench compare (harness/lua/compare_results.lua): the time ratio
# B/A of every compared row (a sweep point and implementation, numbered 1..npoints in the order
# of the printed table) with its interval as error bars, a dashed reference line at 1, the rows
# labelled under the x axis, one series per flag (slower, faster, within the noise).
# Set by the caller (dcbench writes these before loading this file):
#   fmt outfile datafile styledir  nseries  array titles[nseries]  array lts[nseries] (line types)
#   plottitle ylabel  logy (0/1)  ymin ymax  npoints
# datafile: one block per series, rows "index ratio lo hi label".
load styledir . "/style.gp"
set title plottitle noenhanced
set ylabel ylabel noenhanced
unset xlabel
if (logy) { set logscale y 10; set format y "%g" }
set yrange [ymin:ymax]
set xrange [0.5:npoints + 0.5]
set xtics rotate by 45 right noenhanced font ",8" scale 0
set grid noxtics ytics
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lc rgb "#555555" lw 1.2 dt 2 back
set key outside top center horizontal
# room for the rotated labels of the first rows
set lmargin 16
set bmargin 12
plot for [i=1:nseries] datafile index (i-1) using 1:2:3:4:xtic(5) with yerrorbars lt lts[i] \
     title titles[i] noenhanced
