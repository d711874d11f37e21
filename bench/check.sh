#!/usr/bin/env bash
# Benchmark: `cronwarden check` of generated 10,000-job tables, a typical one and a heavy one
# (target: under 100 ms on a 2-core machine). Usage: bench/check.sh [JOBS]
# (builds the release binary first, unless CRONWARDEN_BIN names one to use; with BENCH_OUT=DIR
# it also leaves hyperfine's JSON and the table sizes there, for bench/all.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-10000}
if [ -n "${CRONWARDEN_BIN:-}" ]; then bin=$CRONWARDEN_BIN
else cargo build --release --quiet; bin=target/release/cronwarden; fi
out=${BENCH_OUT:-}
[ -z "$out" ] || mkdir -p "$out"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 bench/gen-table.py "$jobs" --lean > "$dir/typical.toml"
python3 bench/gen-table.py "$jobs" > "$dir/heavy.toml"
chmod 0644 "$dir"/*.toml
for t in typical heavy; do
  echo "$t table: $jobs jobs, $(wc -c < "$dir/$t.toml") bytes: $("$bin" -c "$dir/$t.toml" check)"
  [ -z "$out" ] || echo "${t}_bytes=$(wc -c < "$dir/$t.toml")" >> "$out/sizes"
done
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine -N --warmup 3 --runs 30 ${out:+--export-json "$out/check.json"} \
    -n typical "$bin -c $dir/typical.toml check" -n heavy "$bin -c $dir/heavy.toml check"
else
  for t in typical heavy; do
    s=$(date +%s%N); for _ in $(seq 10); do "$bin" -c "$dir/$t.toml" check >/dev/null; done; e=$(date +%s%N)
    echo "$t: mean $(( (e - s) / 10000000 )) ms over 10 runs (install hyperfine for more detail)"
  done
fi
