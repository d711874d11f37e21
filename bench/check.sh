#!/usr/bin/env bash
# Benchmark: `cronwarden check` of a generated 10,000-job table (target: under 100 ms on a
# 2-core machine). Usage: bench/check.sh [JOBS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-10000}
cargo build --release --quiet
bin=target/release/cronwarden
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 bench/gen-table.py "$jobs" > "$dir/jobs.toml"
chmod 0644 "$dir/jobs.toml"
echo "table: $jobs jobs, $(wc -c < "$dir/jobs.toml") bytes"
"$bin" -c "$dir/jobs.toml" check
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine --warmup 3 --runs 30 -N "$bin -c $dir/jobs.toml check"
else
  runs=30; best=999999; total=0
  for _ in $(seq $runs); do
    s=$(date +%s%N); "$bin" -c "$dir/jobs.toml" check >/dev/null; e=$(date +%s%N)
    ms=$(( (e - s) / 1000 )); total=$((total + ms)); (( ms < best )) && best=$ms
  done
  printf 'check, %d runs: mean %.1f ms, best %.1f ms\n' $runs "$(echo "$total/$runs/1000" | bc -l)" "$(echo "$best/1000" | bc -l)"
fi
