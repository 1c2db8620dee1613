# style.gp — the one look of every dcbench figure: the Okabe-Ito palette
# (safe for the common colour-vision deficiencies), distinct point types and
# dash types so that series stay apart in greyscale too.
okabe_ito = "#0072B2 #D55E00 #009E73 #E69F00 #56B4E9 #CC79A7 #000000 #F0E442"
okabe_pt = "7 5 9 11 13 15 4 6"
okabe_dt = "1 1 1 1 2 3 4 5"
do for [i=1:8] {
    set linetype i lc rgb word(okabe_ito, i) lw 2 pt int(word(okabe_pt, i)) ps 1.0 dt int(word(okabe_dt, i))
}
set linetype cycle 8
set border 3 lw 1.2
set tics nomirror out
set grid xtics ytics lc rgb "#dddddd" lw 1 dt 1
set key top left Left reverse noautotitle samplen 2 spacing 1.1 box lc rgb "#bbbbbb" opaque
set style fill solid 0.2

# terminal from the variable fmt ("png" | "pdf" | "svg") and the file outfile
if (fmt eq "pdf") {
    set terminal pdfcairo enhanced color font "Helvetica,10" size 5in,3.3in
} else {
    if (fmt eq "svg") {
        set terminal svg enhanced font "Helvetica,12" size 800,520 background rgb "white"
    } else {
        set terminal pngcairo enhanced color font "Helvetica,11" size 900,580 background rgb "white"
    }
}
set output outfile
