# Shell functions shared by scripts/bench.sh and scripts/bench/load.sh (sourced).

# sipp_stat FILE COLUMN: the last value of COLUMN in a SIPp -trace_stat file (-stf).
sipp_stat() {
	awk -F';' -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i } END { if (k) print $k }' "$1"
}
