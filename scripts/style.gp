# style.gp — the one look of every dcbench figure: the Okabe-Ito palette
# (safe for the common colour-vision deficiencies) and distinct point types,
# so that series stay apart in greyscale too; solid lines (dashed error bars read badly).
# Okabe-Ito's 8 colours, then 4 of Paul Tol's muted ones: 12 styles, no
# colour or marker used twice (dcbench splits figures with more
# entries into panels of 6).
okabe_ito = "#0072B2 #D55E00 #009E73 #E69F00 #56B4E9 #CC79A7 #000000 #C8A800 #882255 #44AA99 #999933 #332288"
okabe_pt = "7 5 9 11 13 15 4 6 8 10 12 14"
okabe_dt = "1 1 1 1 1 1 1 1 1 1 1 1"
do for [i=1:12] {
    set linetype i lc rgb word(okabe_ito, i) lw 2 pt int(word(okabe_pt, i)) ps 1.0 dt int(word(okabe_dt, i))
}
set linetype cycle 12
set border 3 lw 1.2
set tics nomirror out
set grid xtics ytics lc rgb "#dddddd" lw 1 dt 1
set key top left Left reverse noautotitle samplen 2 spacing 1.1 box lc rgb "#bbbbbb" opaque
set style fill solid 0.2

# terminal from the variable fmt ("png" | "pdf" | "svg") and the file outfile;
# figw x figh pixels where the caller sets them (small multiples)
if (!exists("figw")) { figw = 980; figh = 600 }
if (fmt eq "pdf") {
    set terminal pdfcairo enhanced color font "Helvetica,10" size (figw / 180.0),(figh / 180.0)
} else {
    if (fmt eq "svg") {
        set terminal svg enhanced font "Helvetica,12" size figw,figh background rgb "white"
    } else {
        set terminal pngcairo enhanced color font "Helvetica,11" size figw,figh background rgb "white"
    }
}
set output outfile
