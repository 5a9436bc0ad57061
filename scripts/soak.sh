#!/usr/bin/env bash
# scripts/soak.sh: the emulator and 20,000 clients as separate processes for DURATION, through
# pool failure / failover / failback cycles, watching both for growth. See --help.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/soak.sh [options] DURATION          (DURATION: such as 10m, 2h, 90s)

Runs `fepool serve` (configs/demo.yaml: the default topology with short timers) and
`fepool load` with 20,000 clients (both pools' users) as separate processes for DURATION. After
the clients signed in, every --cycle one pool fails (pool-a, then pool-b, alternately): its
users wait out the resiliency timer and sign in to the other pool in resiliency mode,
Invoke-CsPoolFailOver -DisasterMode gives them full service, the pool returns and
Invoke-CsPoolFailBack brings them home. Between cycles the clients refresh as they would.

Every --sample seconds it records, for the emulator and each load process: RSS, open file
descriptors, threads, goroutines (from their /metrics) and CPU time, in resources.csv. At the
end it prints the load report (merged when the clients ran in several processes), and compares
the resources of the first and last cycles' steady states: growth beyond the bounds below is
reported and makes the exit code 1.

When the open-file hard limit is too low for one socket per client in one process, the
clients are split into shards (`fepool load --shard i/n`), one process each, started together
and merged at the end.

Options
  --clients N      clients (default 20000; at most the topology's 20,000 users)
  --cycle DUR      time between failure cycles (default 150s; a cycle takes about 100 s)
  --sample SEC     sampling period (default 10)
  --out DIR        where to keep everything (default fepool-results/soak-<time>)
  --rss-growth P   RSS growth that counts as a leak, percent (default 20)
  -h, --help       this help

Output in DIR: resources.csv (t_s,process,rss_kib,fds,threads,goroutines,cpu_s),
serve.log, load-*.log, the load results (results.jsonl.gz, summary.json, report.html per
shard, and merged/ when sharded). Ctrl-C stops both cleanly (each load process still writes
its results).
Exit codes: 0 no growth and the scenario's thresholds passed; 1 growth, a process died or a
threshold failed; 2 bad usage.
EOF
}

die() { echo "soak.sh: $*" >&2; exit 2; }

clients=20000 cycle=150 sample=10 out="" rss_growth=20 duration=""
while (($#)); do
	case $1 in
	--clients) clients=${2:?--clients needs a number}; shift ;;
	--cycle) cycle=${2:?--cycle needs a duration}; shift ;;
	--sample) sample=${2:?--sample needs seconds}; shift ;;
	--out) out=${2:?--out needs a directory}; shift ;;
	--rss-growth) rss_growth=${2:?--rss-growth needs a percentage}; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) [[ -z $duration ]] || die "one DURATION only (see --help)"; duration=$1 ;;
	esac
	shift
done

# seconds DUR: 90, 90s, 10m, 2h -> seconds
seconds() {
	local d=$1
	case $d in
	*[0-9]h) echo $((${d%h} * 3600)) ;;
	*[0-9]m) echo $((${d%m} * 60)) ;;
	*[0-9]s) echo $((${d%s})) ;;
	*[0-9]) echo $((d)) ;;
	*) return 1 ;;
	esac
}
[[ -n $duration ]] || { usage >&2; exit 2; }
dur_s=$(seconds "$duration" 2>/dev/null) || die "DURATION $duration: use such as 90s, 10m, 2h"
cycle_s=$(seconds "$cycle" 2>/dev/null) || die "--cycle $cycle: use such as 150s, 3m"
[[ $clients =~ ^[0-9]+$ ]] && ((clients >= 1 && clients <= 20000)) || die "--clients $clients: 1 to 20000"
[[ $sample =~ ^[0-9]+$ ]] && ((sample >= 1)) || die "--sample $sample: whole seconds, at least 1"
[[ $rss_growth =~ ^[0-9]+$ ]] || die "--rss-growth $rss_growth: a whole percentage"
((dur_s >= 60)) || die "DURATION $duration: at least 60s (the clients need time to sign in)"
((cycle_s >= 60)) || die "--cycle $cycle: at least 60s"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -n $out ]] || out=fepool-results/soak-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
out=$(cd "$out" && pwd)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

echo "soak.sh: building fepool"
(cd "$repo" && "$GO" build -o "$out/fepool" ./cmd/fepool)
fepool=$out/fepool
topology=$repo/configs/demo.yaml

# One socket per client: split the clients over processes when the hard limit is too low.
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
ulimit -n "$hard"
per=$((hard - 1024))
shards=$(((clients + per - 1) / per))
if ((shards > 1)); then
	echo "soak.sh: the open-file hard limit is $hard: $clients clients with a socket each run as $shards load processes"
fi

# The scenario: sign in, then a failure cycle every $cycle_s seconds while one fits.
scen=$out/soak.yaml
{
	cat <<EOF
name: soak
description: $clients clients for $duration, a pool failure, failover and failback every ${cycle_s}s.
clients: $clients
ramp: {rate: 2000}
client: {keepalive: 30s, request_timeout: 4s, backoff: {min: 1s, max: 10s}}
max_duration: $((dur_s + 600))s
steps:
  - {name: signed in, wait: {until: all_regular, timeout: 5m}}
EOF
	k=0
	for ((at = 60; at + cycle_s <= dur_s; at += cycle_s)); do
		k=$((k + 1))
		down=pool-a.contoso.com other=pool-b.contoso.com
		((k % 2 == 0)) && down=pool-b.contoso.com other=pool-a.contoso.com
		cat <<EOF
  - {name: "cycle $k: ${down%%.*} fails", at: ${at}s, crash_pool: $down}
  - {name: "cycle $k: at ${other%%.*}", wait: {until: all_signed_in, pool: $other, timeout: 3m}}
  - {name: "cycle $k: failover", failover: {pool: $down, disaster_mode: true, force: true}}
  - {name: "cycle $k: full service", wait: {until: all_regular, pool: $other, timeout: 3m}}
  - {name: "cycle $k: ${down%%.*} restored", start_pool: $down}
  - {name: "cycle $k: failback", after: 5s, failback: {pool: $down}}
  - {name: "cycle $k: going home", hold: 60s}
  - {name: "cycle $k: home", wait: {until: all_regular, timeout: 3m}}
EOF
	done
	cat <<EOF
  - {name: soak over, at: ${dur_s}s, end: true}
thresholds:
  - never_signed_in == 0
  - never_recovered == 0
  - never_regained_service == 0
  - final_signed_out == 0
EOF
	# Every cycle must do its part: a soak whose failures touched no one proves nothing.
	for ((i = 1; i <= k; i++)); do
		down=pool-a
		((i % 2 == 0)) && down=pool-b
		cat <<EOF
  - "disrupted[cycle $i: $down fails] > 0"
  - "degraded[cycle $i: failover] > 0"
  - "disrupted[cycle $i: failback] > 0"
EOF
	done
} >"$scen"
"$fepool" load --scenario "$scen" --topology "$topology" --admin http://127.0.0.1:1 --token check --clients 1 --out "$out/check" \
	--quiet --log-level error >/dev/null 2>"$out/check.err" && true
if grep -q "soak.yaml:" "$out/check.err"; then
	cat "$out/check.err" >&2
	die "the generated scenario is refused (a bug in soak.sh)"
fi
rm -rf "$out/check" "$out/check.err"

token=soak-$RANDOM$RANDOM
export FEPOOL_ADMIN_TOKEN=$token
serve_pid="" load_pids=() sampler_pid=""
cleanup() {
	trap - EXIT INT TERM
	[[ -n $sampler_pid ]] && kill "$sampler_pid" 2>/dev/null || true
	for p in "${load_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${load_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[[ -n $serve_pid ]] && { kill -TERM "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; }
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted: stopping (the load still writes its results)" >&2; exit 130' INT TERM

echo "soak.sh: starting the emulator ($topology)"
"$fepool" serve --config "$topology" --admin-listen 127.0.0.1:8060 --log-level warn --log-format console >"$out/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
	curl -fsS -o /dev/null http://127.0.0.1:8060/healthz 2>/dev/null && break
	kill -0 "$serve_pid" 2>/dev/null || { cat "$out/serve.log" >&2; die "the emulator did not start (is a 'fepool serve' already running?)"; }
	sleep 0.1
done

start_at=$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%SZ)
echo "soak.sh: $clients clients in $shards load process(es) from $start_at, for $duration; results in $out"
for ((i = 0; i < shards; i++)); do
	dir=$out/load
	((shards > 1)) && dir=$out/load-shard${i}of$shards
	"$fepool" load --scenario "$scen" --topology "$topology" --admin http://127.0.0.1:8060 --shard "$i/$shards" \
		--start-at "$start_at" --out "$dir" --metrics "127.0.0.1:$((9300 + i))" --quiet --log-level warn --log-format console \
		>"$out/load-$i.log" 2>&1 &
	load_pids+=($!)
done

# sample PID NAME METRICS_URL T
sample() {
	local pid=$1 name=$2 url=$3 t=$4 rss fds thr gor cpu
	[[ -r /proc/$pid/status ]] || return 0
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
	thr=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
	fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat")
	gor=$(curl -fsS --max-time 2 "$url" 2>/dev/null | awk '/^go_goroutines / {print $2}')
	echo "$t,$name,$rss,$fds,$thr,${gor:-},$cpu"
}
csv=$out/resources.csv
echo "t_s,process,rss_kib,fds,threads,goroutines,cpu_s" >"$csv"
(
	t0=$(date +%s)
	while sleep "$sample"; do
		t=$(($(date +%s) - t0))
		sample "$serve_pid" emulator http://127.0.0.1:8060/metrics "$t"
		for ((i = 0; i < shards; i++)); do
			sample "${load_pids[$i]}" "load$i" "http://127.0.0.1:$((9300 + i))/metrics" "$t"
		done
	done >>"$csv"
) &
sampler_pid=$!

rc=0
for p in "${load_pids[@]}"; do
	wait "$p" || { c=$?; ((c > rc)) && rc=$c; }
done
load_pids=()
kill "$sampler_pid" 2>/dev/null || true
sampler_pid=""
if ! kill -0 "$serve_pid" 2>/dev/null; then
	echo "soak.sh: the emulator died during the soak: see $out/serve.log" >&2
	rc=1
fi

echo
if ((shards > 1)); then
	"$fepool" report merge --out "$out/merged" "$out"/load-shard*of"$shards" || { c=$?; ((c > rc)) && rc=$c; }
else
	sed -n '/^scenario:/,$p' "$out/load-0.log"
fi

# Growth: each process's mean over its first and last cycles' worth of samples (after the
# clients signed in), compared.
echo
echo "Resources (first cycle -> last cycle, means of the samples; peak):"
awk -F, -v warm=60 -v cyc="$cycle_s" -v lim="$rss_growth" '
NR == 1 { next }
$1 >= warm { n[$2]++; T[$2, n[$2]] = $1; R[$2, n[$2]] = $3; F[$2, n[$2]] = $4; G[$2, n[$2]] = $6; C[$2, n[$2]] = $7
	if ($3 > peak[$2]) peak[$2] = $3 }
END {
	bad = 0
	for (p in n) {
		m = n[p]; if (m < 2) { printf "  %-9s too few samples\n", p; continue }
		tf = T[p, 1]; tl = T[p, m]
		r1 = f1 = g1 = k1 = 0; r2 = f2 = g2 = k2 = 0
		for (i = 1; i <= m; i++) {
			if (T[p, i] < tf + cyc) { r1 += R[p, i]; f1 += F[p, i]; g1 += G[p, i]; k1++ }
			if (T[p, i] > tl - cyc) { r2 += R[p, i]; f2 += F[p, i]; g2 += G[p, i]; k2++ }
		}
		r1 /= k1; f1 /= k1; g1 /= k1; r2 /= k2; f2 /= k2; g2 /= k2
		cpu = (C[p, m] - C[p, 1]) / (tl - tf) * 100
		growth = (r2 - r1) / r1 * 100
		verdict = "steady"
		if (growth > lim || f2 > f1 * 1.05 + 16 || g2 > g1 * 1.10 + 100) { verdict = "GROWING"; bad = 1 }
		printf "  %-9s RSS %.0f -> %.0f MiB (%+.1f%%, peak %.0f MiB), fds %.0f -> %.0f, goroutines %.0f -> %.0f, CPU %.1f%% of a core: %s\n",
			p, r1 / 1024, r2 / 1024, growth, peak[p] / 1024, f1, f2, g1, g2, cpu, verdict
	}
	exit bad
}' "$csv" || { echo "soak.sh: growth beyond the bounds (see $csv)"; rc=1; }
echo "Samples: $csv"
((rc == 0)) || exit 1
