# Written by tessera report; `gnuplot learning_curves.gp` in this directory redraws it.
set terminal svg size 900,560 noenhanced font 'sans,12' background rgb 'white'
set output 'learning_curves.svg'
set title 'IQM over runs x tasks, 95% stratified-bootstrap band (2000 resamples)'
set xlabel 'agent steps'
set ylabel 'IQM of normalised score'
set key below
set grid
set autoscale xfix
set format x '%.1s%c'
plot 'learning_curves.dat' index 0 using 1:3:4 with filledcurves lc rgb '#1f77b4' fs transparent solid 0.2 noborder notitle, \
  'learning_curves.dat' index 0 using 1:2 with linespoints lw 2 pt 7 ps 0.4 lc rgb '#1f77b4' title 'all'
