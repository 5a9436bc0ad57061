#!/usr/bin/env bash
# scripts/bench.sh: fepool's registrar against Kamailio, same SIPp REGISTER scenario, one run.
# Run `scripts/bench.sh --help` for what it measures and how.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/bench.sh [--suite registrar|load|all] [--quick] [--users N] [options]

Measures fepool's registrar against Kamailio with the same SIPp REGISTER scenario (UDP, one
socket: SIPp -t u1), without and with digest authentication, in one invocation, and prints for
each server: the highest REGISTER rate reached with < 1% retransmissions, p50/p99 latency at
5000 calls/s, and the fepool/Kamailio ratios. Everything runs on loopback (127.0.0.0/8).

Method
  The SIPp call rate is stepped up (2500 5000 10000 15000 20000 25000 30000 calls/s by default);
  each step is a fresh run of N users (default 20,000: user00000..) against a freshly started
  server, fepool then Kamailio or the other way round (alternating per step). A step passes when
  every call succeeded and SIPp's retransmissions are < 1% of the REGISTERs it sent. A step is
  saturated when SIPp achieved < 80% of its rate (SIPp and the server share the machine's
  cores). Once a server fails or saturates a step, its higher steps are skipped (the latency
  step is always run).
  A "call" is one REGISTER -> 200 without digest, or REGISTER -> 401 -> REGISTER -> 200 with
  digest: the rate is reported in calls/s and in REGISTER messages/s (x1 or x2).
  The reported rate is the highest call rate SIPp achieved (CallRate(C): calls / elapsed) in a
  passing step; "best step" is that step's target rate, ">=" when the top step passed unsaturated.
  Latency is SIPp's response-time (RTD) of each REGISTER transaction, from SIPp's -trace_rtt
  dump of every transaction. SIPp 3.6 reads CLOCK_MONOTONIC_COARSE (one kernel tick: 4 ms
  here), so when a C compiler is present the bench preloads a tiny shim into SIPp that maps it
  to CLOCK_MONOTONIC, giving microsecond resolution; otherwise the output says the resolution
  is the coarse tick. SIPp's own event loop is inside the measured time, for both servers.
  SIPp runs with -timer_resol 1 (otherwise it sends its calls in 10 ms bursts, which alone add
  milliseconds to the p50) and 4 MiB socket buffers (as fepool and, here, Kamailio use).
  Also shown per step: the server's CPU time per call (all its processes, from /proc; less
  sensitive to other load on the machine than the rates) and the datagrams the kernel dropped
  on the server's socket (receive buffer full).

Load suite (--suite load; also run last by the default --suite all)
  fepool load against a separate `fepool serve`, one run each (scripts/bench/load.sh):
  - 20,000 users registering from empty with digest, offered at 10,000/s: SIPp -t un, then
    fepool load, against the same fresh fepool registrar (one Front End): the time until all
    are registered and the ratio SIPp time / fepool load time (target >= 1, and <= 2.2 s).
    When the open-file hard limit is too low for a socket per client, fepool load shares 500.
  - 20,000 registered clients idle (configs/demo.yaml, both pools): the load processes' CPU
    (% of one core, over 30 s) and RSS, and the emulator's RSS (targets 5%, 300 MiB, 150 MiB).
  - the failover storm that follows: pool-a crashes, its 10,000 users sign in to pool-b in
    resiliency mode, Invoke-CsPoolFailOver -DisasterMode: the longest time to full service
    (target: the clients' backoff max, 10 s, + 2 s), and the load process's own recording
    delay at p99 (target < 1 ms).
    These two run the load with --realtime (real-time scheduling, all CPUs but one) when the
    bench may (root, or an RLIMIT_RTPRIO it can raise to 1): the load then waits for no CPU
    behind the emulator. The 20,000-registration run does not: it measures throughput, as SIPp
    does, with both sharing the CPUs fairly.

Options
  --suite S             registrar (fepool vs Kamailio), load, or all (default)
  --quick               smoke test: 2,000 users, rates 2500 and 5000 (overrides --users/--rates)
  --users N             users per step (default 20000; at most 20000, fepool's bench topology)
  --rates "R1 R2 .."    call-rate steps (default "2500 5000 10000 15000 20000 25000 30000")
  --latency-rate R      rate whose p50/p99 is reported (default 5000; added to the steps)
  --modes "M .."        noauth and/or digest (default "noauth digest")
  --kamailio-children N Kamailio UDP worker processes (default 2, for 2 cores; 1 did as well
                        here, 4 worse)
  --servers "S .."      fepool and/or kamailio (default both; ratios need both)
  --max-minutes M       overall bound; the bench stops and cleans up after it (default 45,
                        10 with --quick)
  --keep                keep the work directory (logs, SIPp statistics) at the end
  -h, --help            this help

Environment
  BENCH_OUT   if set, the summary is also written there as JSON
  GO          the go command (default: go, or /usr/local/go/bin/go)

Files: scripts/bench/fepool.yaml and fepool-noauth.yaml (one standard-edition pool, one Front
End on 127.0.9.1), scripts/bench/kamailio.cfg (registrar + usrloc in memory; auth with
pv_auth_check for the digest case), scripts/bench/register_noauth.xml, and the digest scenario
e2e/testdata/sipp/register_digest.xml (RTD markers added on the fly to time both transactions).
Missing sipp, kamailio or sipsak are installed with apt-get.
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
benchdir=$here/bench

users=20000
rates="2500 5000 10000 15000 20000 25000 30000"
latency_rate=5000
modes="noauth digest"
servers="fepool kamailio"
kam_children=2
max_minutes=""
keep=0
quick=0
suite=all
while (($#)); do
	case $1 in
	--suite) suite=${2:?--suite needs registrar, load or all}; shift ;;
	--quick) quick=1 ;;
	--users) users=${2:?--users needs a number}; shift ;;
	--rates) rates=${2:?--rates needs a list}; shift ;;
	--latency-rate) latency_rate=${2:?--latency-rate needs a number}; shift ;;
	--modes) modes=${2:?--modes needs a list}; shift ;;
	--servers) servers=${2:?--servers needs a list}; shift ;;
	--kamailio-children) kam_children=${2:?--kamailio-children needs a number}; shift ;;
	--max-minutes) max_minutes=${2:?--max-minutes needs a number}; shift ;;
	--keep) keep=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
if ((quick)); then
	users=2000
	rates="2500 5000"
	: "${max_minutes:=10}"
fi
: "${max_minutes:=45}"
[[ $suite == registrar || $suite == load || $suite == all ]] || { echo "bench.sh: --suite $suite: use registrar, load or all" >&2; exit 2; }
isnum() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in "$users" "$latency_rate" "$kam_children" "$max_minutes" $rates; do
	isnum "$v" || { echo "bench.sh: $v is not a positive whole number" >&2; exit 2; }
done
((users <= 20000)) || { echo "bench.sh: --users is at most 20000 (the bench topologies have user00000..user19999)" >&2; exit 2; }
for m in $modes; do
	[[ $m == noauth || $m == digest ]] || { echo "bench.sh: mode $m: use noauth or digest" >&2; exit 2; }
done
for s in $servers; do
	[[ $s == fepool || $s == kamailio ]] || { echo "bench.sh: server $s: use fepool or kamailio" >&2; exit 2; }
done
# The rate ladder, sorted, with the latency rate in it.
read -r -a ladder <<<"$(printf '%s\n' $rates "$latency_rate" | sort -n -u | tr '\n' ' ')"
top_rate=${ladder[${#ladder[@]} - 1]}

log() { printf '%s\n' "$*" >&2; }
die() { log "bench.sh: $*"; exit 1; }

# ---- tools ---------------------------------------------------------------------------------

PATH=$PATH:/usr/sbin:/sbin
GO=${GO:-go}
if ! command -v "$GO" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
command -v "$GO" >/dev/null || die "go is not installed (needed to build fepool)"

pkgs=()
command -v sipp >/dev/null || pkgs+=(sip-tester)
command -v kamailio >/dev/null || pkgs+=(kamailio)
command -v sipsak >/dev/null || pkgs+=(sipsak)
if ((${#pkgs[@]})); then
	sudo=()
	((EUID == 0)) || sudo=(sudo -n)
	log "installing ${pkgs[*]} ..."
	"${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null ||
		die "could not install ${pkgs[*]}"
fi
kamailio_mods=/usr/lib/x86_64-linux-gnu/kamailio/modules
[[ -d $kamailio_mods ]] || kamailio_mods=$(dirname "$(find /usr/lib -name registrar.so -path '*kamailio*' -print -quit 2>/dev/null || true)")
[[ -f $kamailio_mods/registrar.so ]] || die "Kamailio's modules (registrar.so) not found"

# SIPp keeps one call per user in flight at worst; stay below the open-files limit.
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && (($(ulimit -Sn) < hard)); then ulimit -Sn "$hard"; fi
soft=$(ulimit -Sn)
sipp_limit=$users
if [[ $soft != unlimited ]] && ((sipp_limit > soft - 1000)); then sipp_limit=$((soft - 1000)); fi

# ---- work directory, processes, cleanup ----------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/fepool-bench.XXXXXX")
server_pid=""   # the fepool or Kamailio under test (a process group leader: started with setsid)
server_name=""
sipp_pid=""
watchdog_pid=""
status=1
interrupted=0

stop_server() {
	[[ -n $server_pid ]] || return 0
	local pid=$server_pid i
	server_pid=""
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "  $server_name (pid $pid) ignored SIGTERM for 5 s: SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	# Kamailio's workers are in the server's process group: make sure none outlives it.
	if pgrep -g "$pid" >/dev/null 2>&1; then
		kill -TERM -- "-$pid" 2>/dev/null || true
		sleep 0.5
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $sipp_pid ]]; then kill -TERM "$sipp_pid" 2>/dev/null || true; wait "$sipp_pid" 2>/dev/null || true; fi
	stop_server
	if [[ -n $watchdog_pid ]]; then kill -TERM "$watchdog_pid" 2>/dev/null || true; wait "$watchdog_pid" 2>/dev/null || true; fi
	if ((keep)) || ((status != 0 && !interrupted)); then
		log "work directory kept: $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'interrupted=1; log "bench.sh: interrupted"; exit 130' INT
trap 'interrupted=1; log "bench.sh: stopped (SIGTERM, or the --max-minutes bound was reached)"; exit 143' TERM

# The overall bound: SIGTERM to this script, whose trap stops everything it started.
(
	trap 'kill "$s" 2>/dev/null; exit 0' TERM
	sleep $((max_minutes * 60)) &
	s=$!
	wait "$s"
	kill -TERM $$ 2>/dev/null
) &
watchdog_pid=$!

# ---- preparation ---------------------------------------------------------------------------

log "building fepool ..."
(cd "$repo" && "$GO" build -o "$work/fepool" ./cmd/fepool) || die "go build failed"

# A SIPp clock shim (see --help): CLOCK_*_COARSE -> CLOCK_*.
clock_note="1 kernel tick (SIPp uses CLOCK_MONOTONIC_COARSE; no C compiler for the fine-clock shim)"
sipp_env=()
if command -v cc >/dev/null; then
	cat >"$work/fineclock.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
int clock_gettime(clockid_t id, struct timespec *ts) {
	static int (*real)(clockid_t, struct timespec *);
	if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	if (id == CLOCK_MONOTONIC_COARSE) id = CLOCK_MONOTONIC;
	else if (id == CLOCK_REALTIME_COARSE) id = CLOCK_REALTIME;
	return real(id, ts);
}
EOF
	if cc -O2 -shared -fPIC -o "$work/fineclock.so" "$work/fineclock.c" -ldl 2>"$work/fineclock.err"; then
		sipp_env=(env "LD_PRELOAD=$work/fineclock.so")
		clock_note="1 us (SIPp's RTD clock, CLOCK_MONOTONIC via the preloaded shim)"
	fi
fi

# Injection file: [field0] user, [field1] SIPp authentication, [field2] domain.
awk -v n="$users" 'BEGIN {
	print "SEQUENTIAL"
	for (i = 0; i < n; i++) printf "user%05d;[authentication username=user%05d password=secret];contoso.com\n", i, i
}' >"$work/users.csv"

# Scenarios. The digest one is the e2e scenario with RTD 1 = REGISTER -> 401 and RTD 2 =
# REGISTER with credentials -> 200 (as shipped, its second rtd="true" is ignored by SIPp).
cp "$benchdir/register_noauth.xml" "$work/register_noauth.xml"
sed -e '0,/<send retrans="500">/s//<send retrans="500" start_rtd="1">/' \
	-e '/response="401"/,$ s/<send retrans="500">/<send retrans="500" start_rtd="2">/' \
	-e 's|<recv response="200" rtd="true"/>|<recv response="200" rtd="2"/>|' \
	"$repo/e2e/testdata/sipp/register_digest.xml" >"$work/register_digest.xml"
[[ $(grep -c 'start_rtd=' "$work/register_digest.xml") == 2 && $(grep -c 'response="200" rtd="2"' "$work/register_digest.xml") == 1 ]] ||
	die "e2e/testdata/sipp/register_digest.xml changed shape: cannot add the RTD markers"

# Free UDP ports (no socket of any address on them).
port_free() { ! ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 30000))
		if port_free "$p"; then echo "$p"; return; fi
	done
	die "no free UDP port found"
}
fe_addr=127.0.9.1
fe_port=$(pick_port)
kam_addr=127.0.0.1
kam_port=$(pick_port)
while ((kam_port == fe_port)); do kam_port=$(pick_port); done
for m in noauth digest; do
	src=$benchdir/fepool.yaml
	[[ $m == noauth ]] && src=$benchdir/fepool-noauth.yaml
	sed "s/udp: 5060/udp: $fe_port/" "$src" >"$work/fepool-$m.yaml"
	"$work/fepool" serve --config "$work/fepool-$m.yaml" --check >/dev/null || die "$src is not a valid topology"
done
kamailio -c -f "$benchdir/kamailio.cfg" -L "$kamailio_mods" -A WITH_AUTH -l "udp:$kam_addr:$kam_port" >"$work/kamailio-check.log" 2>&1 ||
	die "scripts/bench/kamailio.cfg does not load: $(tail -3 "$work/kamailio-check.log")"

# ---- servers -------------------------------------------------------------------------------

# wait_sip HOST PORT: until the server answers an OPTIONS (any response), at most 10 s.
wait_sip() {
	local i rc
	for ((i = 0; i < 20; i++)); do
		kill -0 "$server_pid" 2>/dev/null || return 1
		rc=0
		timeout 1 sipsak -s "sip:$1:$2" >/dev/null 2>&1 || rc=$?
		((rc == 0 || rc == 1)) && return 0 # 0: 2xx, 1: another response
		sleep 0.5
	done
	return 1
}

# start_server NAME MODE LOGDIR
start_server() {
	local name=$1 mode=$2 dir=$3
	server_name=$name
	case $name in
	fepool)
		rm -f "$dir/fepool-state.json"
		setsid "$work/fepool" serve --config "$work/fepool-$mode.yaml" --admin-listen 127.0.0.1:0 \
			--log-level warn --state-file "$dir/fepool-state.json" >"$dir/server.log" 2>&1 &
		server_pid=$!
		target=$fe_addr:$fe_port
		;;
	kamailio)
		local args=() run=$dir/kamailio-run
		mkdir -p "$run"
		[[ $mode == digest ]] && args=(-A WITH_AUTH)
		setsid kamailio -f "$benchdir/kamailio.cfg" -L "$kamailio_mods" -DD -E "${args[@]}" \
			-l "udp:$kam_addr:$kam_port" -n "$kam_children" -P "$run/kamailio.pid" -Y "$run" -w "$run" \
			>"$dir/server.log" 2>&1 &
		server_pid=$!
		target=$kam_addr:$kam_port
		;;
	esac
	wait_sip "${target%:*}" "${target#*:}" || {
		log "  $name did not come up; its log:"
		tail -20 "$dir/server.log" >&2
		die "$name did not start"
	}
}

# ---- one step ------------------------------------------------------------------------------

# socket_drops ADDR PORT: datagrams the kernel dropped on the server's UDP socket (receive
# buffer full), from /proc/net/udp's per-socket drops column.
socket_drops() {
	local hex
	hex=$(printf '%02X%02X%02X%02X:%04X' $(echo "$1" | awk -F. '{ print $4, $3, $2, $1 }') "$2")
	awk -v a="$hex" '$2 == a { d += $NF; n++ } END { print (n ? d : "-") }' /proc/net/udp
}

# server_cpu: CPU time (utime + stime, in clock ticks) of every process of the server under test
# (its process group: Kamailio's workers included).
server_cpu() {
	local p t=0
	for p in $(pgrep -g "$server_pid" 2>/dev/null || true); do
		t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
	done
	echo "$t"
}
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

# shellcheck source=bench/lib.sh
. "$here/bench/lib.sh" # sipp_stat FILE COLUMN

# pct RTTFILES RTD P: the P-th percentile (nearest rank) of RTD's response times, in ms.
pct() {
	local rtd=$1 p=$2
	shift 2
	awk -F';' -v r="$rtd" '$3 == r && $2 ~ /^[0-9.]+$/ { print $2 }' "$@" | sort -g |
		awk -v p="$p" '{ a[NR] = $1 } END { if (NR) { k = int(p / 100 * NR); if (k < p / 100 * NR) k++; if (k < 1) k = 1; printf "%.3f", a[k] } else print "-" }'
}

results=$work/results.tsv
: >"$results"

# run_step SERVER MODE RATE: prints one line and appends one row to $results; returns 1 on fail.
run_step() {
	local name=$1 mode=$2 rate=$3
	local dir=$work/steps/$mode-$rate-$name
	mkdir -p "$dir"
	start_server "$name" "$mode" "$dir"
	local per_call=1 scen=$work/register_noauth.xml
	[[ $mode == digest ]] && per_call=2 scen=$work/register_digest.xml
	local tmo=$((users / rate + 40)) rc=0 drops cpu0 cpu1
	# SIPp dumps response times every rtt_freq of them (and drops the rest at exit): a divisor of
	# the user count, so a step in which every call succeeded loses none.
	local rtt_freq=1
	((users % 100 == 0)) && rtt_freq=100
	cpu0=$(server_cpu)
	(
		cd "$dir"
		exec "${sipp_env[@]}" timeout -k 5 $((tmo + 20)) sipp -sf "$scen" -inf "$work/users.csv" \
			-i 127.0.0.1 -p 0 -t u1 -m "$users" -r "$rate" -rp 1000 -l "$sipp_limit" \
			-timer_resol 1 -buff_size 4194304 -max_non_invite_retrans 4 \
			-trace_stat -stf "$dir/stat.csv" -fd 1 -trace_rtt -rtt_freq "$rtt_freq" \
			-trace_err -error_file "$dir/errors.log" \
			-nostdin -timeout "${tmo}s" -timeout_error "$target"
	) >"$dir/sipp.out" 2>&1 &
	sipp_pid=$!
	wait "$sipp_pid" || rc=$?
	sipp_pid=""
	drops=$(socket_drops "${target%:*}" "${target#*:}")
	cpu1=$(server_cpu)
	stop_server

	local ok=0 fail=0 retr=0 cps=0
	if [[ -s $dir/stat.csv ]]; then
		ok=$(sipp_stat "$dir/stat.csv" 'SuccessfulCall(C)')
		fail=$(sipp_stat "$dir/stat.csv" 'FailedCall(C)')
		retr=$(sipp_stat "$dir/stat.csv" 'Retransmissions(C)')
		cps=$(sipp_stat "$dir/stat.csv" 'CallRate(C)')
	fi
	local sent=$((users * per_call))
	local retr_pct
	retr_pct=$(awk -v r="${retr:-0}" -v s="$sent" 'BEGIN { printf "%.2f", 100 * r / s }')
	local pass=FAIL why="" saturated=0
	if ((rc == 0)) && [[ ${ok:-0} == "$users" && ${fail:-1} == 0 ]] && awk -v p="$retr_pct" 'BEGIN { exit !(p < 1) }'; then
		pass=PASS
	elif ((rc != 0)) || [[ ${ok:-0} != "$users" ]]; then
		why=" (sipp exit $rc: $((users - ${ok:-0})) of $users calls did not succeed)"
	else
		why=" (retransmissions >= 1%)"
	fi
	if awk -v c="$cps" -v r="$rate" 'BEGIN { exit !(c < 0.8 * r) }'; then
		saturated=1
		why="$why (saturated: SIPp offered < 80% of the rate)"
	fi
	local rtts=("$dir"/*_rtt.csv)
	local l50=- l99=- c50=- c99=-
	if [[ -e ${rtts[0]} ]]; then
		if [[ $mode == digest ]]; then
			c50=$(pct 1 50 "${rtts[@]}") c99=$(pct 1 99 "${rtts[@]}")
			l50=$(pct 2 50 "${rtts[@]}") l99=$(pct 2 99 "${rtts[@]}")
		else
			l50=$(pct 1 50 "${rtts[@]}") l99=$(pct 1 99 "${rtts[@]}")
		fi
	fi
	local msgs cpu_us
	msgs=$(awk -v c="$cps" -v k="$per_call" 'BEGIN { printf "%.0f", c * k }')
	# Server CPU per call, in microseconds (clock-tick resolution over the whole step).
	cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v n="${ok:-0}" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$mode" "$name" "$rate" "$pass" "$cps" "$msgs" "${ok:-0}" "${fail:-0}" "${retr:-0}" "$retr_pct" \
		"$l50" "$l99" "$c50" "$c99" "$drops" "$saturated" "$cpu_us" >>"$results"
	local chal=""
	[[ $mode == digest ]] && chal=" 401 $c50/$c99,"
	printf '  %-6s %6s/s %-8s %s  achieved %8.0f calls/s (%6s REGISTER/s)  retrans %s (%s%%)  p50/p99 ms:%s 200 %s/%s  CPU %s us/call  socket drops %s%s\n' \
		"$mode" "$rate" "$name" "$pass" "$cps" "$msgs" "${retr:-0}" "$retr_pct" "$chal" "$l50" "$l99" "$cpu_us" "$drops" "$why"
	[[ $pass == PASS ]] && ((!saturated))
}

# ---- the run -------------------------------------------------------------------------------

load_suite() {
	echo
	"$here/bench/load.sh" "$work/load" || die "the load suite failed (its files: $work/load)"
}
if [[ $suite == load ]]; then
	load_suite
	status=0
	exit 0
fi

started=$(date +%s)
load_start=$(cut -d' ' -f1 /proc/loadavg)
cat <<EOF
fepool vs Kamailio: SIPp REGISTER over UDP (-t u1), $users users per step, fresh server per step
  fepool   $($work/fepool version 2>/dev/null | head -1 || echo '?') on $fe_addr:$fe_port (scripts/bench/fepool*.yaml: one standard-edition pool, one Front End)
  Kamailio $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //') on $kam_addr:$kam_port, $kam_children UDP workers (scripts/bench/kamailio.cfg)
  SIPp     $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1 | sed 's/-.*//'); rate steps ${ladder[*]} calls/s; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)
  latency: SIPp RTD per REGISTER transaction, resolution $clock_note
  a step passes when every call succeeds and retransmissions < 1% of REGISTERs sent
EOF

declare -A stopped=()
for mode in $modes; do
	echo
	echo "== $mode: $([[ $mode == digest ]] && echo 'REGISTER -> 401 -> REGISTER -> 200 per call' || echo 'REGISTER -> 200 per call')"
	i=0
	for rate in "${ladder[@]}"; do
		order=(fepool kamailio)
		((i % 2)) && order=(kamailio fepool)
		i=$((i + 1))
		for name in "${order[@]}"; do
			[[ " $servers " == *" $name "* ]] || continue
			if [[ -n ${stopped[$mode-$name]:-} && $rate != "$latency_rate" ]]; then
				continue
			fi
			run_step "$name" "$mode" "$rate" || stopped[$mode-$name]=1
		done
	done
done

# ---- summary -------------------------------------------------------------------------------

elapsed=$(($(date +%s) - started))
load_end=$(cut -d' ' -f1 /proc/loadavg)
summary=$work/summary.tsv
awk -F'\t' -v lr="$latency_rate" -v top="$top_rate" '
	{ key = $1 SUBSEP $2; seen[key] = 1; modes[$1] = 1 }
	$4 == "PASS" && (!(key in best) || $5 + 0 > cps[key] + 0) { best[key] = $3; cps[key] = $5; msgs[key] = $6 }
	$4 == "PASS" && $3 == top && $16 == 0 { capped[key] = 1 }
	$3 == lr { l50[key] = $11; l99[key] = $12; c50[key] = $13; c99[key] = $14; lpass[key] = $4; cpu[key] = $17 }
	END {
		for (m in modes) for (s = 1; s <= 2; s++) {
			n = (s == 1) ? "fepool" : "kamailio"; key = m SUBSEP n
			if (!(key in seen)) continue
			printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m, n,
				(key in best) ? best[key] : 0, (key in best) ? cps[key] : 0, (key in best) ? msgs[key] : 0,
				(key in capped) ? "capped" : "",
				(key in l50) ? l50[key] : "-", (key in l99) ? l99[key] : "-",
				(key in c50) ? c50[key] : "-", (key in c99) ? c99[key] : "-", (key in lpass) ? lpass[key] : "-", (key in cpu) ? cpu[key] : "-"
		}
	}' "$results" | sort -t$'\t' -k1,1r -k2,2 >"$summary"

get() { awk -F'\t' -v m="$1" -v n="$2" -v c="$3" '$1 == m && $2 == n { print $c }' "$summary"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
# capnote MODE: a warning when a server passed the top step (its real maximum is not known).
capnote() {
	local f k
	f=$(get "$1" fepool 6) k=$(get "$1" kamailio 6)
	if [[ $f == capped && $k == capped ]]; then
		echo " (inconclusive: both passed the top step)"
	elif [[ $f == capped ]]; then
		echo " (fepool passed the top step: a lower bound)"
	elif [[ $k == capped ]]; then
		echo " (Kamailio passed the top step: an upper bound)"
	fi
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "-" && a + 0 <= b + 0) }'; }

echo
echo "== summary ($users users per step, ${elapsed}s; latency resolution $clock_note)"
printf '%-7s %-9s %10s %9s %11s   %-19s %-19s %s\n' mode server "best step" "calls/s" "REGISTER/s" \
	"p50/p99 ms @$latency_rate" "401 p50/p99 ms" "server CPU us/call @$latency_rate"
failed_lat=0
for mode in $modes; do
	for name in fepool kamailio; do
		[[ -n $(get "$mode" "$name" 1) ]] || continue
		step=$(get "$mode" "$name" 3)
		[[ $(get "$mode" "$name" 6) == capped ]] && step=">=$step"
		[[ $step == 0 ]] && step=none
		lat="$(get "$mode" "$name" 7) / $(get "$mode" "$name" 8)"
		if [[ $(get "$mode" "$name" 11) == FAIL ]]; then lat="$lat *"; failed_lat=1; fi
		chal="-"
		[[ $mode == digest ]] && chal="$(get "$mode" "$name" 9) / $(get "$mode" "$name" 10)"
		printf '%-7s %-9s %10s %9.0f %11.0f   %-19s %-19s %s\n' "$mode" "$name" "$step" \
			"$(get "$mode" "$name" 4)" "$(get "$mode" "$name" 5)" "$lat" "$chal" "$(get "$mode" "$name" 12)"
	done
	[[ -n $(get "$mode" fepool 1) && -n $(get "$mode" kamailio 1) ]] || continue
	printf '%-7s fepool/Kamailio: rate x%s%s; p99 @%s/s %s vs %s ms; CPU per call x%s\n' "$mode" \
		"$(ratio "$(get "$mode" fepool 4)" "$(get "$mode" kamailio 4)")" "$(capnote "$mode")" "$latency_rate" \
		"$(get "$mode" fepool 8)" "$(get "$mode" kamailio 8)" "$(ratio "$(get "$mode" fepool 12)" "$(get "$mode" kamailio 12)")"
done
((failed_lat)) && echo "* the ${latency_rate}/s step failed (see its line above): its latency includes retransmitted or failed calls"

if awk -v l="$load_start" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
	echo "note: the machine was busy before the bench started (1-min load $load_start on $(nproc) cores; $load_end at the end):"
	echo "      absolute figures are noisy; each step ran both servers back to back, so compare the ratios."
fi

echo
echo "== targets"
echo "  rate ratio fepool/Kamailio >= 1.0 (Kamailio does about 20k/s here, 10k/s with digest)"
echo "  fepool p99 <= 1 ms at 5000/s (REGISTER -> 200; with digest, the authenticated REGISTER)"
for mode in $modes; do
	[[ -n $(get "$mode" fepool 1) && -n $(get "$mode" kamailio 1) ]] || continue
	r=$(ratio "$(get "$mode" fepool 4)" "$(get "$mode" kamailio 4)")
	met=NOT-MET
	[[ $r != n/a ]] && awk -v r="$r" 'BEGIN { exit !(r >= 1.0) }' && met=met
	printf '  %-7s ratio %-5s %s%s' "$mode" "$r" "$met" "$(capnote "$mode")"
	p=$(get "$mode" fepool 8)
	met=NOT-MET
	le "$p" 1 && met=met
	if ((latency_rate == 5000)); then
		printf ';  fepool p99 %s ms %s\n' "$p" "$met"
	else
		printf ';  fepool p99 at %s/s %s ms (target is at 5000/s)\n' "$latency_rate" "$p"
	fi
done

if [[ -n ${BENCH_OUT:-} ]]; then
	{
		printf '{\n  "users": %s,\n  "latency_rate": %s,\n  "latency_resolution": "%s",\n' "$users" "$latency_rate" "$clock_note"
		printf '  "kamailio_children": %s,\n  "rates": [%s],\n  "elapsed_seconds": %s,\n' "$kam_children" "$(IFS=,; echo "${ladder[*]}")" "$elapsed"
		printf '  "summary": [\n'
		awk -F'\t' '{
			printf "%s    {\"mode\": \"%s\", \"server\": \"%s\", \"best_step_calls_per_s\": %s, \"achieved_calls_per_s\": %s, \"achieved_register_per_s\": %s, \"top_step_passed\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"challenge_p50_ms\": %s, \"challenge_p99_ms\": %s, \"latency_step_passed\": %s, \"cpu_us_per_call\": %s}", \
				(NR > 1 ? ",\n" : ""), $1, $2, $3, $4, $5, ($6 == "capped" ? "true" : "false"), \
				($7 == "-" ? "null" : $7), ($8 == "-" ? "null" : $8), ($9 == "-" ? "null" : $9), ($10 == "-" ? "null" : $10), \
				($11 == "PASS" ? "true" : ($11 == "FAIL" ? "false" : "null")), ($12 == "-" ? "null" : $12)
		} END { print "" }' "$summary"
		printf '  ],\n  "ratios": {'
		sep=""
		for mode in $modes; do
			[[ -n $(get "$mode" fepool 1) && -n $(get "$mode" kamailio 1) ]] || continue
			r=$(ratio "$(get "$mode" fepool 4)" "$(get "$mode" kamailio 4)")
			c=$(ratio "$(get "$mode" fepool 12)" "$(get "$mode" kamailio 12)")
			[[ $r == n/a ]] && r=null
			[[ $c == n/a ]] && c=null
			printf '%s"%s": {"rate": %s, "cpu_per_call": %s, "conclusive": %s}' "$sep" "$mode" "$r" "$c" \
				"$([[ -z $(capnote "$mode") ]] && echo true || echo false)"
			sep=", "
		done
		printf '},\n  "steps": [\n'
		awk -F'\t' '{
			printf "%s    {\"mode\": \"%s\", \"server\": \"%s\", \"rate\": %s, \"pass\": %s, \"achieved_calls_per_s\": %s, \"achieved_register_per_s\": %s, \"successful\": %s, \"failed\": %s, \"retransmissions\": %s, \"retransmission_pct\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"challenge_p50_ms\": %s, \"challenge_p99_ms\": %s, \"server_socket_drops\": %s, \"saturated\": %s, \"cpu_us_per_call\": %s}", \
				(NR > 1 ? ",\n" : ""), $1, $2, $3, ($4 == "PASS" ? "true" : "false"), $5, $6, $7, $8, $9, $10, \
				($11 == "-" ? "null" : $11), ($12 == "-" ? "null" : $12), ($13 == "-" ? "null" : $13), ($14 == "-" ? "null" : $14), ($15 == "-" ? "null" : $15), ($16 == 1 ? "true" : "false"), ($17 == "-" ? "null" : $17)
		} END { print "" }' "$results"
		printf '  ]\n}\n'
	} >"$BENCH_OUT"
	echo
	echo "JSON summary written to $BENCH_OUT"
fi
status=0
if [[ $suite == all ]]; then
	load_suite
fi
