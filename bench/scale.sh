#!/usr/bin/env bash
# Scale benchmark (issue 21): for 100, 10,000 and 100,000 jobs, in one run, side by side with
# Debian's cron and a sleep+posix_spawn floor:
#  1. load time: `cronwarden -c T check` (hyperfine -N, 1 warm-up, 10 runs; 3 at 100,000 jobs)
#     and the daemon's start until ready: from just before bash execs it to the `READY=1` it
#     sends on NOTIFY_SOCKET once the table is loaded and every job scheduled
#     (bench/scale_ready.py listens);
#  2. idle memory: N jobs `M H D Mon * /usr/local/bin/job-i --flag`, none due for months
#     (bench/scale_tables.py), RSS, PSS and USS (Private_Clean + Private_Dirty) from
#     /proc/PID/smaps_rollup 20 s and 65 s after the start (after the once-a-minute wake-up
#     of both daemons), for cronwarden and for Debian's cron given the same N jobs in
#     /etc/cron.d, in files of 5,000 lines (cron ignores a whole file of over 10,000 lines);
#  3. a new daemon with the N idle jobs plus 100 jobs due at the same second and one job every
#     second, each `date +%s.%N >> FILE`: the per-second job's start latency (the time `date`
#     ran minus the whole second; p50/p99/max over 200 samples, PERSEC=N for another count:
#     with 60, as this took before, the nearest-rank p99 was the largest sample, and one
#     disturbed second of the VM decided the target), then the 100 at once, four times
#     10 s apart (from each instant to the last of its 100 `date` stamps; the first instant
#     is each job's first run). The floor (bench/scale_floor.py) starts the same commands
#     from a python loop (sleep, posix_spawn) half a second off the per-second instants and
#     5 s after each of the 100's instants, so that they never compete.
# Targets (issue 21): 100 at once: last start within 1.3x the floor's (the median of the
# four instants, as the issue measured it); per-second p99 within
# 1.5 ms of the floor's; idle USS per job <= cron's, 100,000 jobs in <= 40 MB; 100 jobs
# <= 1 MB USS. The report (bench/scale_report.py) says pass or MISS for each.
# About 5 minutes per size (most of it waiting: 65 s idle, ~210 s of latencies); the three
# sizes took 7 min 17 s with 60 per-second samples, 16 min with 200 (2026-12-02).
#
# Usage: sudo bench/scale.sh   (as root on Debian: cron reads /etc/cron.d; installs cron and
#   hyperfine with apt-get when missing; cron must not already be running). SIZES="100 10000"
#   picks the table sizes (default "100 10000 100000"), PERSEC=N the per-second samples
#   (default 200). Builds the release binary unless
#   CRONWARDEN_BIN names one (CRONWARDEN_REV=COMMIT names its commit in the report).
# Output: BENCH_OUT=DIR (bench/all.sh sets it), else bench/results/scale-DATE/: per size the
#   raw start stamps, smaps_rollup samples, hyperfine JSON and the daemons' logs and standard error; load.txt
#   (`uptime` before and after each part) and report.md, the markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${SIZES:-100 10000 100000}
persec=${PERSEC:-200}
[[ $persec =~ ^[0-9]+$ ]] && [ "$persec" -ge 10 ] || { echo "scale.sh: PERSEC: $persec is not a sample count of 10 or more" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "scale.sh: run as root (cron reads /etc/cron.d)" >&2; exit 1; }
# Another daemon's jobs (a test suite's left over, say) would start beside the measured ones.
if pgrep -x cronwarden >/dev/null; then
  echo "scale.sh: cronwarden is already running (pid $(pgrep -x cronwarden | tr '\n' ' '));" \
    "stop it first: its jobs would compete with the measured ones" >&2
  exit 1
fi
if pgrep -x cron >/dev/null; then
  echo "scale.sh: cron is already running (pid $(pgrep -x cron | tr '\n' ' '));" \
    "stop it first, Debian's cron runs only once per machine" >&2
  exit 1
fi
missing=()
[ -x /usr/sbin/cron ] || missing+=(cron)
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Installing cron may start its service: stop that one, it is ours to run.
  # Another daemon's jobs (a test suite's left over, say) would start beside the measured ones.
if pgrep -x cronwarden >/dev/null; then
  echo "scale.sh: cronwarden is already running (pid $(pgrep -x cronwarden | tr '\n' ' '));" \
    "stop it first: its jobs would compete with the measured ones" >&2
  exit 1
fi
if pgrep -x cron >/dev/null; then
    service cron stop >/dev/null 2>&1 || /etc/init.d/cron stop >/dev/null 2>&1 || true
  fi
fi
if [ -n "${CRONWARDEN_BIN:-}" ]; then bin=$CRONWARDEN_BIN; rev=${CRONWARDEN_REV:-given binary $CRONWARDEN_BIN}
else
  cargo build --release --locked --quiet; bin=${CARGO_TARGET_DIR:-$PWD/target}/release/cronwarden
  rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ', with uncommitted changes')"
fi
out=${BENCH_OUT:-$PWD/bench/results/scale-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

dir=$(mktemp -d)
chmod 0755 "$dir"
prefix=cronwarden-scale   # /etc/cron.d/cronwarden-scale-NN; no dots, or cron skips them
pids=()
helper=""   # a READY listener or a sleep, while it runs: ended by cleanup after a signal
had_pidfile=0; [ -e /run/crond.pid ] && had_pidfile=1
had_reboot=0; [ -e /run/crond.reboot ] && had_reboot=1
# Running and not a zombie; its status read once (a zombie reaped between two reads of /proc
# must not look alive).
alive() { local s; s=$(sed -n 's/^State:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null) || return 1; [ -n "$s" ] && [ "${s:0:1}" != Z ]; }
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
    alive "$p" && echo "scale.sh: pid $p ($(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)," \
      "$(grep '^State' "/proc/$p/status" 2>/dev/null)) still there 10 s after SIGTERM; killed" >&2
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  [ -z "$helper" ] || kill "$helper" 2>/dev/null || true
  stop_all
  rm -f /etc/cron.d/"$prefix"-*
  [ "$had_pidfile" = 1 ] || rm -f /run/crond.pid
  [ "$had_reboot" = 1 ] || rm -f /run/crond.reboot
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { echo "$EPOCHREALTIME"; }
# In the background and waited for, so that a signal's trap runs at once.
sleep_until() { local s; s=$(awk -v t="$1" -v n="$EPOCHREALTIME" 'BEGIN { d = t - n; printf "%.6f", (d > 0 ? d : 0) }'); sleep "$s" & helper=$!; wait $!; helper=""; }
plus() { awk -v t="$1" -v d="$2" 'BEGIN { printf "%.6f", t + d }'; }   # TIME + SECONDS
load() { echo "$1 | $(uptime)" >> "$out/load.txt"; echo "== load $1: $(cut -d' ' -f1-3 /proc/loadavg)"; }
rollup() { cp "/proc/$2/smaps_rollup" "$1"; }   # FILE PID

# Starts `cronwarden -c TABLE daemon` with NOTIFY_SOCKET; sets cw_pid and appends
# NAME_ready_s (exec until READY=1) to META.
start_cw() {
  local table=$1 name=$2 meta=$3 sock=${1%.toml}.notify t0 t1
  rm -f "$sock" "$sock.bound"
  python3 bench/scale_ready.py "$sock" 300 > "$sock.at" & local lp=$!; helper=$lp
  for _ in $(seq 200); do [ -e "$sock.bound" ] && break; sleep 0.05; done
  [ -e "$sock.bound" ] || { echo "scale.sh: bench/scale_ready.py did not bind $sock" >&2; exit 1; }
  t0=$(now)
  NOTIFY_SOCKET=$sock "$bin" -c "$table" daemon 2> "${table%.toml}.err" & cw_pid=$!; pids+=("$cw_pid")
  local rc=0; wait "$lp" || rc=$?; helper=""
  [ "$rc" = 0 ] || { echo "scale.sh: no READY=1 from the daemon ($table):" >&2; cat "${table%.toml}.err" >&2; exit 1; }
  t1=$(cat "$sock.at")
  echo "${name}_ready_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" >> "$meta"
}

echo "== scale: sizes $sizes; cronwarden $("$bin" --version) ($rev), cron $(dpkg-query -W -f='${Version}' cron 2>/dev/null)"
{
  echo "sizes=$sizes"
  echo "cronwarden=$("$bin" --version | awk '{ print $NF }') ($rev)"
  echo "cron=$(dpkg-query -W -f='${Version}' cron 2>/dev/null || echo '?')"
  echo "hyperfine=$(hyperfine --version | awk '{ print $2 }')"
  echo "machine=$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "tmp=$(df --output=fstype "$dir" | tail -1)"
  echo "started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
} > "$out/run.env"
t_start=$(date +%s)

# Phase 1: the idle daemons (cronwarden and cron, N jobs each) side by side.
idle() {
  local n=$1 d=$dir/$1 o=$out/$1 t0 files
  python3 bench/scale_tables.py cronwarden "$n" "$d/idle" > "$d/idle.toml"
  files=$(python3 bench/scale_tables.py cron "$n" /etc/cron.d "$prefix")
  echo "cron_files=$files" >> "$o/meta"
  load "before idle $n"
  /usr/sbin/cron -f 2> "$d/cron.err" & local cron_pid=$!; pids+=("$cron_pid")
  start_cw "$d/idle.toml" idle "$o/meta"
  t0=$(now)
  echo "   idle: $n jobs each; cronwarden ready after $(sed -n 's/^idle_ready_s=//p' "$o/meta") s; samples at 20 s and 65 s"
  sleep_until "$(plus "$t0" 20)"
  rollup "$o/cronwarden-20s.rollup" "$cw_pid"; rollup "$o/cron-20s.rollup" "$cron_pid"
  sleep_until "$(plus "$t0" 65)"
  alive "$cw_pid" && alive "$cron_pid" || { echo "scale.sh: a daemon died while idle" >&2; exit 1; }
  rollup "$o/cronwarden-65s.rollup" "$cw_pid"; rollup "$o/cron-65s.rollup" "$cron_pid"
  stop_all
  load "after idle $n"
  rm -f /etc/cron.d/"$prefix"-*
  cp "$d/idle/log" "$o/idle.log" 2>/dev/null || true
  cp "$d/idle.err" "$o/idle.err" 2>/dev/null || true
}

# Phase 2: `check` of the full table, then its daemon: the per-second job, then the 100.
active() {
  local n=$1 d=$dir/$1 o=$out/$1 runs=10 r burst p0 count
  mkdir -p "$d/cw" "$d/floor" "$o/cronwarden" "$o/floor"
  [ "$n" -ge 100000 ] && runs=3
  python3 bench/scale_tables.py cronwarden "$n" "$d/active" "$(date +%s)" "$d/cw" > "$d/active.toml"
  echo "table_bytes=$(wc -c < "$d/active.toml")" >> "$o/meta"
  load "before check $n"
  "$bin" -c "$d/active.toml" check > "$o/check.txt" 2>&1 || { cat "$o/check.txt" >&2; exit 1; }
  hyperfine -N --style basic --warmup 1 --runs "$runs" --export-json "$o/check.json" \
    "$bin -c $d/active.toml check" > "$o/check.log" 2>&1 || { cat "$o/check.log" >&2; exit 1; }
  load "after check $n"
  # The same table, the 100's instant set now: after the daemon is ready (twice the idle
  # daemon's time, as the table is larger) and the per-second samples.
  r=$(sed -n 's/^idle_ready_s=//p' "$o/meta")
  burst=$(awk -v n="$(now)" -v r="$r" -v s="$persec" 'BEGIN { printf "%d", n + 2 * r + 3 + s + 4 }')
  # Four bursts 10 s apart in one minute (`S,S+10,S+20,S+30`): the first second at most 29.
  while [ $((burst % 60)) -gt 29 ]; do burst=$((burst + 1)); done
  python3 bench/scale_tables.py cronwarden "$n" "$d/active" "$burst" "$d/cw" > "$d/active.toml"
  load "before latency $n"
  start_cw "$d/active.toml" active "$o/meta"
  p0=$(awk -v n="$(now)" 'BEGIN { printf "%d", n + 2 }')
  count=$(( burst - 3 - p0 )); [ "$count" -le "$persec" ] || count=$persec
  [ "$count" -ge 10 ] || { echo "scale.sh: the daemon took too long to start ($n jobs); $count per-second samples left" >&2; exit 1; }
  python3 bench/scale_floor.py "$d/floor" "$p0" "$count" "$burst" & pids+=("$!")
  printf 'p0=%s\ncount=%s\nburst=%s\n' "$p0" "$count" "$burst" >> "$o/meta"
  echo "   latency: $count per-second samples from $(date -u -d "@$p0" +%T), the 100 at $(date -u -d "@$burst" +%T) UTC and 10, 20, 30 s later"
  sleep_until $((burst + 36))
  for _ in $(seq 30); do
    [ "$(cat "$d/cw/burst.txt" 2>/dev/null | wc -l)" -ge 400 ] && [ "$(cat "$d/floor/burst.txt" 2>/dev/null | wc -l)" -ge 400 ] && break
    sleep 0.5
  done
  alive "$cw_pid" || { echo "scale.sh: the daemon died ($n jobs)" >&2; exit 1; }
  stop_all
  load "after latency $n"
  for t in cw:cronwarden floor:floor; do cp "$d/${t%%:*}"/*.txt "$o/${t#*:}/" 2>/dev/null || true; done
  cp "$d/active/log" "$o/active.log" 2>/dev/null || true
  cp "$d/active.err" "$o/active.err" 2>/dev/null || true
}

for n in $sizes; do
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "scale.sh: SIZES: $n is not a job count" >&2; exit 2; }
  mkdir -p "$dir/$n" "$out/$n"
  echo "== $n jobs"
  idle "$n"
  active "$n"
done

t_end=$(date +%s)
{
  echo "ended=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "duration=$(( (t_end - t_start) / 60 )) min $(( (t_end - t_start) % 60 )) s"
} >> "$out/run.env"
python3 bench/scale_report.py "$out" > "$out/report.md"
echo
cat "$out/report.md"
echo
echo "== scale: done in $(( (t_end - t_start) / 60 )) min $(( (t_end - t_start) % 60 )) s; report: $out/report.md"
