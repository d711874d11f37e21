#!/usr/bin/env bash
# All of cronwarden's benchmarks in one run, side by side with Debian's cron, yacron (PyPI) and
# chronic (moreutils) on the same machine, ending in one markdown table with pass/miss against
# each target (issue 9). It runs, one after the other so they do not disturb each other:
#   bench/check.sh   `check` of 10,000-job tables                                  (~0.5 min)
#   bench/run.sh     `run` overhead vs `true` and `chronic true`; 1 GiB capture    (~1 min)
#   bench/daemon.sh  start latency (1 job, 100 at once), idle RSS and wake-ups,
#                    vs cron, yacron and a sleep+posix_spawn floor                  (6-7.5 min)
#   bench/scale.sh   100 / 10,000 / 100,000 jobs: load time, idle USS/PSS vs cron,
#                    100 at once and a per-second job vs the floor (issue 21)       (~7.5 min)
# About 15 minutes in all (check, run and daemon: 6 min 43 s to 7 min 17 s measured), plus
# the one-time installs and the release build.
#
# Usage: sudo bench/all.sh [--no-install]
#   Run as root on Debian (12 or later): daemon.sh starts Debian's cron, which reads
#   /etc/cron.d. Installs what is missing with apt-get (hyperfine, moreutils, time, cron,
#   python3-venv) and yacron from PyPI into bench/.venv, unless --no-install. Needs cargo
#   (rustup) to build the release binary; the binary is copied into the results folder so that
#   a rebuild during the run cannot change what is measured. CRONWARDEN_BIN=PATH measures that
#   binary instead of building one (CRONWARDEN_REV=COMMIT names its commit in the report).
#   Debian's cron runs once per machine: if it is already running, the run stops, unless
#   BENCH_STOP_CRON=1, which stops the service for the run and starts it again at the end.
#   WINDOW=SECONDS sets the idle window (default 120).
# Output: bench/results/RUN/ (logs, raw samples, hyperfine JSON, smaps) and
# bench/results/RUN/report.md, copied to bench/results/latest.md: BENCHMARKS-ready markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
install=1
for a in "$@"; do
  case $a in
    --no-install) install=0 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "all.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "all.sh: run as root (Debian's cron reads /etc/cron.d; apt-get installs)" >&2; exit 1; }
t0=$(date +%s)
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
out=$PWD/bench/results/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
log() { echo "== all.sh: $*"; }
load() { echo "$1 | $(uptime)" >> "$out/load.txt"; log "load $1: $(uptime)"; }

# ---- what the benchmarks need ----------------------------------------------------------------
installed_cron=0
missing=()
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
command -v chronic >/dev/null 2>&1 || missing+=(moreutils)
[ -x /usr/bin/time ] || missing+=(time)
[ -x /usr/sbin/cron ] || { missing+=(cron); installed_cron=1; }
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$install" = 1 ] || { echo "all.sh: missing ${missing[*]} (and --no-install)" >&2; exit 1; }
  log "apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ -x bench/.venv/bin/yacron ]; then yacron=$PWD/bench/.venv/bin/yacron
elif [ "$install" = 1 ]; then log "yacron from PyPI into bench/.venv"; yacron=$(bench/yacron-venv.sh)
else echo "all.sh: no bench/.venv/bin/yacron (and --no-install)" >&2; exit 1; fi

# Debian's cron may only run once; installing the package starts its service.
restart_cron=0
stop_cron_service() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet cron 2>/dev/null; then systemctl stop cron
  else service cron stop >/dev/null 2>&1 || /etc/init.d/cron stop >/dev/null 2>&1 || true; fi
  for _ in $(seq 50); do pgrep -x cron >/dev/null || return 0; sleep 0.1; done
  echo "all.sh: could not stop cron" >&2; exit 1
}
if pgrep -x cron >/dev/null; then
  if [ "$installed_cron" = 1 ]; then log "stopping the cron service that installing the package started"; stop_cron_service
  elif [ "${BENCH_STOP_CRON:-0}" = 1 ]; then log "stopping cron for the run (BENCH_STOP_CRON=1)"; stop_cron_service; restart_cron=1
  else
    echo "all.sh: cron is running (pid $(pgrep -x cron | tr '\n' ' ')); Debian's cron runs once per machine." \
      "Stop it, or set BENCH_STOP_CRON=1 to have it stopped and started again after the run." >&2
    exit 1
  fi
fi
restart() {
  if [ "$restart_cron" = 1 ]; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl start cron
    else service cron start >/dev/null 2>&1 || /etc/init.d/cron start >/dev/null 2>&1 || true; fi
  fi
}
trap restart EXIT

if [ -n "${CRONWARDEN_BIN:-}" ]; then
  log "measuring the given binary $CRONWARDEN_BIN (CRONWARDEN_BIN; no build)"
  cp "$CRONWARDEN_BIN" "$out/"   # under its own name
  built="given binary $CRONWARDEN_BIN${CRONWARDEN_REV:+, commit $CRONWARDEN_REV}"
else
    log "cargo build --release"
  cargo build --release --locked --quiet
  cp target/release/cronwarden "$out/cronwarden"
  built="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes')"
fi
bin=$out/$(basename "${CRONWARDEN_BIN:-cronwarden}")
# Written back to disk before any daemon starts, as a package install leaves it (dpkg syncs):
# the daemon's start-up trim leaves mappings with dirty pages alone, and a just-copied file's
# page cache stays dirty for up to half a minute.
sync "$bin"

# ---- the machine -----------------------------------------------------------------------------
ya_python=$(head -1 "$yacron" | sed 's/^#! *//')
{
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  echo "mem=$(free -h | awk '/^Mem:/ { print $2 }')"
  v=$(systemd-detect-virt 2>/dev/null || true)
  hv=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p')
  echo "virt=${v:-none}${hv:+, hypervisor $hv}"
  echo "kernel=$(uname -r)"
  echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "glibc=$(ldd --version 2>&1 | head -1 | sed 's/^ldd //')"
  echo "tmpfs=$(df --output=fstype "${TMPDIR:-/tmp}" | tail -1)"
  echo "cronwarden=$("$bin" --version | awk '{ print $NF }') ($built)"
  echo "rustc=$(rustc --version 2>/dev/null || echo '?')"
  echo "cron=$(dpkg-query -W -f='${Version}' cron 2>/dev/null || echo '?')"
  echo "yacron=$("$ya_python" -c 'import importlib.metadata as m; print(m.version("yacron"))')"
  echo "python=$("$ya_python" --version 2>&1)"
  echo "moreutils=$(dpkg-query -W -f='${Version}' moreutils 2>/dev/null || echo '?')"
  echo "hyperfine=$(hyperfine --version | awk '{ print $2 }')"
  echo "gnutime=$(dpkg-query -W -f='${Version}' time 2>/dev/null || echo '?')"
  echo "started=$started"
  echo "command=sudo bench/all.sh${*:+ $*}${WINDOW:+ (WINDOW=$WINDOW)}"
} > "$out/machine.env"
sed 's/^/   /' "$out/machine.env"

# ---- the benchmarks ----------------------------------------------------------------------------
export CRONWARDEN_BIN="$bin" CRONWARDEN_REV="$built" YACRON="$yacron"
status=0
part() {
  local name=$1; shift
  load "before $name"
  log "$name: $*"
  if BENCH_OUT=$out/$name "$@" 2>&1 | tee "$out/$name.log"; then :; else
    echo "all.sh: $name failed (exit ${PIPESTATUS[0]}); see $out/$name.log" >&2; status=1
  fi
  load "after $name"
}
part check bench/check.sh
part run bench/run.sh
part daemon bench/daemon.sh
part scale bench/scale.sh

t1=$(date +%s)
{
  echo "ended=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "duration=$(( (t1 - t0) / 60 )) min $(( (t1 - t0) % 60 )) s"
} >> "$out/machine.env"
python3 bench/report.py "$out" > "$out/report.md"
if [ -f "$out/scale/report.md" ]; then
  printf '\n### Scale (bench/scale.sh)\n\n' >> "$out/report.md"
  cat "$out/scale/report.md" >> "$out/report.md"
fi
cp "$out/report.md" bench/results/latest.md
ln -sfn "$(basename "$out")" bench/results/latest
echo
cat "$out/report.md"
echo
log "done in $(( (t1 - t0) / 60 )) min $(( (t1 - t0) % 60 )) s; report: bench/results/latest.md (raw data: $out)"
exit "$status"
