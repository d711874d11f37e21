#!/usr/bin/env bash
# Benchmark the run engine, side by side with what users would otherwise use:
#  1. overhead of `cronwarden run` on a `true` job vs `true` directly vs `chronic true`
#     (moreutils), with the default containment and each one forced (a cgroup per run, the
#     process fallback), and an older build with BEFORE_BIN=PATH; target: under 3 ms over
#     `true`;
#  2. output capture of a job printing 1 GiB: throughput and the runner's peak RSS
#     (target: at least 1 GB/s within 10 MB), next to the same job under chronic.
# Usage: bench/run.sh   (builds the release binary unless CRONWARDEN_BIN names one; installs
# hyperfine, moreutils and GNU time with apt-get when missing; with BENCH_OUT=DIR it also leaves
# hyperfine's JSON and every capture run, "label seconds peak-KiB", there, for bench/all.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need hyperfine hyperfine
need chronic moreutils
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
if [ -n "${CRONWARDEN_BIN:-}" ]; then bin=$CRONWARDEN_BIN
else cargo build --release --quiet; bin=$PWD/target/release/cronwarden; fi
out=${BENCH_OUT:-}
[ -z "$out" ] || mkdir -p "$out"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/jobs.toml" <<TOML
[settings]
state_dir = "$dir/state"
lock_dir = "$dir/run"
log_file = "$dir/cronwarden.log"

[jobs.true]
schedule = "@manual"
command = ["/bin/true"]

[jobs.gib]
schedule = "@manual"
command = ["/usr/bin/head", "-c", "1073741824", "/dev/zero"]
output_limit = "1MiB"
TOML
chmod 0644 "$dir/jobs.toml"
# The same table with each containment forced: a cgroup per run (needs root and a cgroup2
# mount) and the process fallback (subreaper and a walk of /proc).
for mode in cgroup process; do
  sed "s/^\[settings\]$/[settings]\ncontainment = \"$mode\"/" "$dir/jobs.toml" > "$dir/jobs-$mode.toml"
  chmod 0644 "$dir/jobs-$mode.toml"
done
modes=(-n "cronwarden (process)" "$bin -c $dir/jobs-process.toml run true")
if "$bin" -c "$dir/jobs-cgroup.toml" run true >/dev/null 2>&1; then
  modes+=(-n "cronwarden (cgroup)" "$bin -c $dir/jobs-cgroup.toml run true")
else
  echo "(no cgroup per run on this host: only the process fallback is measured)"
fi
# BEFORE_BIN: an older build to compare with (e.g. one from before containment).
[ -z "${BEFORE_BIN:-}" ] || modes+=(-n "before" "$BEFORE_BIN -c $dir/jobs.toml run true")
echo "== 1. overhead on a true job (machine: $(nproc) cores, $(uname -r))"
hyperfine -N --warmup 20 --runs 300 --export-markdown "$dir/overhead.md" \
  ${out:+--export-json "$out/overhead.json"} -n true "/bin/true" -n chronic "chronic /bin/true" \
  -n cronwarden "$bin -c $dir/jobs.toml run true" "${modes[@]}"
cat "$dir/overhead.md"

echo "== 2. 1 GiB of output"
mb() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f MB/s", b / s / 1e6 }'; }
for label in "head -c 1GiB > /dev/null" "chronic" "cronwarden run"; do
  key=${label%% *}
  case $label in
    head*) cmd=(/usr/bin/head -c 1073741824 /dev/zero) ;;
    chronic) cmd=(chronic /usr/bin/head -c 1073741824 /dev/zero) ;;
    cronwarden*) cmd=("$bin" -c "$dir/jobs.toml" run gib) ;;
  esac
  best=""
  for _ in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$dir/t" "${cmd[@]}" >/dev/null 2>&1
    read -r secs kib < "$dir/t"
    [ -z "$out" ] || echo "$key $secs $kib" >> "$out/capture.txt"
    if [ -z "$best" ] || awk -v a="$secs" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then best="$secs $kib"; fi
  done
  read -r secs kib <<< "$best"
  printf '%-28s %6.2f s  %s  peak RSS %6.1f MB\n' "$label" "$secs" "$(mb 1073741824 "$secs")" "$(awk -v k="$kib" 'BEGIN { print k / 1024 }')"
done
