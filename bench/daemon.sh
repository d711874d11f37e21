#!/usr/bin/env bash
# Benchmark the daemon side by side with Debian's cron and yacron, all on this machine, in one
# run (6 to 7.5 minutes):
#  1. start latency after the scheduled instant of one job: `* * * * *` for all three tools
#     over 3 minutes, plus a per-second cronwarden job (seconds 1-59 of the same minutes);
#     target for cronwarden: p99 under 5 ms;
#  2. 100 jobs due the same minute: latency of the last one to start (target: 250 ms);
#  3. idle VmRSS with 100 jobs scheduled far away (`0 0 1 1 *`) (target: under 2.5 MB);
#  4. idle wake-ups: voluntary + involuntary context switches of all threads over WINDOW
#     seconds (default 120), per minute (target: at most 1).
# Every job runs the same shell command, `date +%s.%N >> FILE` (cron needs `\%` for `%`), so
# a latency is the wall-clock time at which the job's `date` ran minus the scheduled instant:
# it includes fork/exec of /bin/sh and date, the same for all three tools. A fourth column,
# "floor", starts the same job from a python loop (sleep, posix_spawn; bench/daemon_floor.py)
# half a second off the daemons' instants: what this machine can do while the benchmark runs.
# The state_dir of cronwarden is in the temp dir ($TMPDIR or /tmp): its file system matters.
# Usage: sudo bench/daemon.sh   (as root on Debian; builds the release binary unless
# CRONWARDEN_BIN names one, installs cron with apt-get when missing, and yacron into bench/.venv
# (bench/yacron-venv.sh) unless YACRON names one; cron must not already be running). With
# BENCH_OUT=DIR the raw samples, the meta file and the idle daemons' smaps are copied there at
# the end, for bench/all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
window=${WINDOW:-120}
[ "$(id -u)" = 0 ] || { echo "daemon.sh: run as root (cron reads /etc/cron.d)" >&2; exit 1; }
if pgrep -x cron >/dev/null; then
  echo "daemon.sh: cron is already running (pid $(pgrep -x cron | tr '\n' ' '));" \
    "stop it first, Debian's cron runs only once per machine" >&2
  exit 1
fi
[ -x /usr/sbin/cron ] || { apt-get update -qq && apt-get install -y -qq cron >/dev/null; }
# The venv's entry point is a python script (not a shell shim such as pyenv's), so the pid we
# measure is python's.
yacron=${YACRON:-$(bench/yacron-venv.sh)}
ya_python=$(head -1 "$yacron" | sed 's/^#! *//')
if [ -n "${CRONWARDEN_BIN:-}" ]; then bin=$CRONWARDEN_BIN
else cargo build --release --quiet; bin=$PWD/target/release/cronwarden; fi

dir=$(mktemp -d)
crond=/etc/cron.d/cronwarden-bench   # Debian's cron skips names with dots
pids=()
had_pidfile=0; [ -e /run/crond.pid ] && had_pidfile=1
had_reboot=0; [ -e /run/crond.reboot ] && had_reboot=1
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
declare -A pname   # pid -> name, for the report of a process that ignores SIGTERM
stop_all() {
  local p t
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
    if alive "$p"; then
      # Still there 10 s after SIGTERM: keep what its threads wait in, then kill it.
      echo "daemon.sh: ${pname[$p]:-pid $p} did not exit within 10 s of SIGTERM; killed" >&2
      echo "killed=${pname[$p]:-$p}" >> "$dir/meta"
      for t in /proc/"$p"/task/*; do
        echo "== ${t##*/} $(cat "$t/comm" 2>/dev/null) state $(cut -d' ' -f3 "$t/stat" 2>/dev/null)" \
          "wchan $(cat "$t/wchan" 2>/dev/null)"
        cat "$t/stack" 2>/dev/null || true
      done > "$dir/${pname[$p]:-$p}.hang" 2>&1
    fi
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
save_out() {   # with BENCH_OUT: the raw data, also of a run that failed half-way
  [ -n "${BENCH_OUT:-}" ] || return 0
  mkdir -p "$BENCH_OUT"
  for t in cronwarden cron yacron floor; do
    mkdir -p "$BENCH_OUT/$t"; cp "$dir/a/$t"/*.txt "$BENCH_OUT/$t/" 2>/dev/null || true
  done
  cp "$dir/meta" "$dir"/*.smaps "$dir"/*.hang "$BENCH_OUT/" 2>/dev/null || true
  for ph in a b; do   # the daemons' own logs, for a run that went wrong
    mkdir -p "$BENCH_OUT/logs-$ph"
    cp "$dir/$ph/cronwarden/daemon.err" "$BENCH_OUT/logs-$ph/cronwarden.err" 2>/dev/null || true
    cp "$dir/$ph/cronwarden/cronwarden.log" "$BENCH_OUT/logs-$ph/cronwarden.log" 2>/dev/null || true
    cp "$dir/$ph/cron/cron.err" "$BENCH_OUT/logs-$ph/cron.err" 2>/dev/null || true
    cp "$dir/$ph/yacron/yacron.log" "$BENCH_OUT/logs-$ph/yacron.log" 2>/dev/null || true
  done
}
cleanup() {
  stop_all
  save_out
  rm -f "$crond"
  [ "$had_pidfile" = 1 ] || rm -f /run/crond.pid
  [ "$had_reboot" = 1 ] || rm -f /run/crond.reboot
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cmd() { printf 'date +%%s.%%N >> %s' "$1"; }   # the job, for cronwarden and yacron
minute() { date ${2:+-u} -d "@$1" +%-M; }        # minute field of an instant, local or UTC
sleep_until() { local s; s=$(awk -v t="$1" -v n="$(date +%s.%N)" 'BEGIN { d = t - n; print (d > 0 ? d : 0) }'); sleep "$s"; }

# Writes the three tools' tables into $dir/PHASE: SINGLE (minute list, or "" for none),
# PERSEC (minute list) and BURST (a minute: 100 jobs; or "idle": 100 jobs at `0 0 1 1 *`).
# Minute lists come as instants; cron gets local minutes, the others UTC.
tables() {
  local phase=$1 single=$2 burst=$3 t i
  local cw=$dir/$phase/cronwarden cr=$dir/$phase/cron ya=$dir/$phase/yacron
  mkdir -p "$cw" "$cr" "$ya"
  local us="" ls=""
  for t in $single; do us+="${us:+,}$(minute "$t" u)"; ls+="${ls:+,}$(minute "$t")"; done
  local ub lb
  if [ "$burst" = idle ]; then ub="0 0 1 1 *"; lb="0 0 1 1 *"
  else ub="$(minute "$burst" u) * * * *"; lb="$(minute "$burst") * * * *"; fi
  {
    printf '[settings]\ntimezone = "UTC"\nstate_dir = "%s/state"\nlock_dir = "%s/run"\n' "$cw" "$cw"
    # max_concurrent 128: all 100 burst jobs may start at once (with the default 64 the
    # last 36 wait for free slots, by design).
    printf 'log_file = "%s/cronwarden.log"\nshutdown_grace = "5s"\nmax_concurrent = 128\n' "$cw"
    if [ -n "$us" ]; then
      printf '\n[jobs.single]\nschedule = "%s * * * *"\ncommand = "%s"\n' "$us" "$(cmd "$cw/single.txt")"
      printf '\n[jobs.persec]\nschedule = "1-59 %s * * * *"\ncommand = "%s"\n' "$us" "$(cmd "$cw/persec.txt")"
    fi
    for i in $(seq -w 0 99); do
      printf '\n[jobs.burst-%s]\nschedule = "%s"\ncommand = "%s"\n' "$i" "$ub" "$(cmd "$cw/burst.txt")"
    done
  } > "$cw/jobs.toml"
  chmod 0644 "$cw/jobs.toml"
  {
    echo "# cronwarden bench/daemon.sh, removed when it ends"
    [ -z "$ls" ] || echo "$ls * * * * root date +\\%s.\\%N >> $cr/single.txt"
    for i in $(seq 100); do echo "$lb root date +\\%s.\\%N >> $cr/burst.txt"; done
  } > "$cr/crontab"
  {
    printf 'defaults:\n  shell: /bin/sh\n  utc: true\njobs:\n'
    [ -z "$us" ] || printf "  - name: single\n    command: '%s'\n    schedule: '%s * * * *'\n" "$(cmd "$ya/single.txt")" "$us"
    for i in $(seq -w 0 99); do
      printf "  - name: burst-%s\n    command: '%s'\n    schedule: '%s'\n" "$i" "$(cmd "$ya/burst.txt")" "$ub"
    done
  } > "$ya/yacron.yaml"
}

# Starts the three daemons on $dir/PHASE; sets cw_pid, cron_pid, ya_pid.
start() {
  local cw=$dir/$1/cronwarden cr=$dir/$1/cron ya=$dir/$1/yacron
  "$bin" -c "$cw/jobs.toml" check >/dev/null
  install -o root -g root -m 0644 "$cr/crontab" "$crond"
  "$bin" -c "$cw/jobs.toml" daemon 2>"$cw/daemon.err" & cw_pid=$!; pids+=("$cw_pid")
  /usr/sbin/cron -f 2>"$cr/cron.err" & cron_pid=$!; pids+=("$cron_pid")
  "$yacron" -c "$ya/yacron.yaml" >"$ya/yacron.log" 2>&1 & ya_pid=$!; pids+=("$ya_pid")
  pname[$cw_pid]=cronwarden-$1; pname[$cron_pid]=cron-$1; pname[$ya_pid]=yacron-$1
  sleep 2
  local p name
  for p in "cronwarden $cw_pid $cw/daemon.err" "cron $cron_pid $cr/cron.err" "yacron $ya_pid $ya/yacron.log"; do
    read -r name p log <<< "$p"
    alive "$p" || { echo "daemon.sh: $name exited at startup:" >&2; cat "$log" >&2; exit 1; }
  done
}

echo "== machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)," \
  "$(. /etc/os-release && echo "$PRETTY_NAME"); temp dirs on $(df --output=fstype "$dir" | tail -1)"
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews latencies)"
echo "== versions: $("$bin" --version), cron $(dpkg-query -W -f='${Version}' cron 2>/dev/null)," \
  "yacron $("$ya_python" -c 'import importlib.metadata as m; print(m.version("yacron"))') on $ya_python ($("$ya_python" --version 2>&1))"
echo "== commands:"
echo "   $bin -c DIR/jobs.toml daemon       # [jobs.X] command = \"date +%s.%N >> FILE\""
echo "   /usr/sbin/cron -f                  # $crond: MIN * * * * root date +\\%s.\\%N >> FILE"
echo "   $yacron -c DIR/yacron.yaml    # shell: /bin/sh, utc: true, command: 'date +%s.%N >> FILE'"

# Phase A: latency. Three sampled minutes, then the minute of the 100 jobs.
now=$(date +%s)
m0=$(( (now + 8 + 59) / 60 * 60 ))
burst=$((m0 + 180))
tables a "$m0 $((m0 + 60)) $((m0 + 120))" "$burst"
start a
mkdir -p "$dir/a/floor"
python3 bench/daemon_floor.py "$dir/a/floor" "$m0" "$burst" & pids+=("$!"); pname[$!]=floor
printf 'm0=%s\nburst=%s\nwindow=%s\n' "$m0" "$burst" "$window" > "$dir/meta"
echo "== 1+2. latency: one job at $(date -d "@$m0" +%H:%M), +1, +2 min (cronwarden also every second 1-59 of them);" \
  "100 jobs at $(date -d "@$burst" +%H:%M); done about $(date -d "@$((burst + 33))" +%H:%M:%S)"
sleep_until $((burst + 32))
for _ in $(seq 30); do
  n=0
  for t in cronwarden cron yacron floor; do [ "$(cat "$dir/a/$t/burst.txt" 2>/dev/null | wc -l)" -ge 100 ] && n=$((n + 1)); done
  [ "$n" = 4 ] && break
  sleep 1
done
stop_all
for t in cronwarden cron yacron floor; do ln -s "a/$t" "$dir/$t"; done

# Phase B: idle, 100 jobs at `0 0 1 1 *`.
tables b "" idle
start b
echo "== 3+4. idle with 100 jobs at '0 0 1 1 *': settling 10 s, then $window s of context switches"
sleep 8
csw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'; }
declare -A before
for t in cronwarden:$cw_pid cron:$cron_pid yacron:$ya_pid; do before[${t%%:*}]=$(csw "${t#*:}"); done
sleep "$window"
for t in cronwarden:$cw_pid cron:$cron_pid yacron:$ya_pid; do
  name=${t%%:*} p=${t#*:}
  alive "$p" || { echo "daemon.sh: $name died while idle" >&2; echo "died=$name-b" >> "$dir/meta"; exit 1; }
  {
    echo "${name}_csw=$(( $(csw "$p") - ${before[$name]} ))"
    echo "${name}_rss_kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status")"
    echo "${name}_threads=$(ls "/proc/$p/task" | wc -l)"
  } >> "$dir/meta"
  cat "/proc/$p/smaps" > "$dir/$name.smaps"
done
echo "   cronwarden idle memory (smaps_rollup, kB): $(awk '/^(Rss|Anonymous|Private_Dirty|Shared_Clean|Private_Clean):/ { printf "%s %s  ", $1, $2 }' "/proc/$cw_pid/smaps_rollup")"
echo "   process checked: cronwarden $(readlink "/proc/$cw_pid/exe"), cron $(readlink "/proc/$cron_pid/exe"), yacron $(readlink "/proc/$ya_pid/exe")"
stop_all
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
python3 bench/daemon_report.py "$dir"
