#!/usr/bin/env bash
# Benchmark: `cronwarden check` of generated 10,000-job tables, a typical one and a heavy one
# (target: under 100 ms on a 2-core machine). Usage: bench/check.sh [JOBS]
# (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-10000}
cargo build --release --quiet
bin=target/release/cronwarden
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 bench/gen-table.py "$jobs" --lean > "$dir/typical.toml"
python3 bench/gen-table.py "$jobs" > "$dir/heavy.toml"
chmod 0644 "$dir"/*.toml
for t in typical heavy; do
  echo "$t table: $jobs jobs, $(wc -c < "$dir/$t.toml") bytes: $("$bin" -c "$dir/$t.toml" check)"
done
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine -N --warmup 3 --runs 30 "$bin -c $dir/typical.toml check" "$bin -c $dir/heavy.toml check"
else
  for t in typical heavy; do
    s=$(date +%s%N); for _ in $(seq 10); do "$bin" -c "$dir/$t.toml" check >/dev/null; done; e=$(date +%s%N)
    echo "$t: mean $(( (e - s) / 10000000 )) ms over 10 runs (install hyperfine for more detail)"
  done
fi
