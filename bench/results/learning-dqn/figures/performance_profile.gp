# Written by tessera report; `gnuplot performance_profile.gp` in this directory redraws it.
set terminal svg size 900,560 noenhanced font 'sans,12' background rgb 'white'
set output 'performance_profile.svg'
set title 'Score distribution, 95% stratified-bootstrap band (2000 resamples)'
set xlabel 'final normalised score threshold tau'
set ylabel 'fraction of runs x tasks with score > tau'
set key below
set grid
set autoscale xfix
set yrange [0:1]
plot 'performance_profile.dat' index 0 using 1:3:4 with filledcurves lc rgb '#1f77b4' fs transparent solid 0.2 noborder notitle, \
  'performance_profile.dat' index 0 using 1:2 with lines lw 2 lc rgb '#1f77b4' title 'all'
