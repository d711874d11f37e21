#!/usr/bin/env bash
# Fuzz every target for a while: fuzz/run.sh [SECONDS-PER-TARGET]   (default 30)
#
# Needs a nightly Rust toolchain (cargo fuzz builds with -Zsanitizer=address); installs
# cargo-fuzz if it is missing. Each target starts from its seeds (fuzz/seeds/TARGET, in git) and
# grows fuzz/corpus/TARGET (not in git), so later runs start where earlier ones stopped. The
# build has overflow checks and debug assertions on; an input that runs 10 s counts as a hang.
# A crash, panic or hang leaves its input in fuzz/artifacts/TARGET/, the script goes on with the
# other targets and exits 1 at the end. Keep each such input as a regression test: copy it to
# tests/data/fuzz/TARGET/ (tests/fuzz_regressions.rs runs them in `cargo test`).
set -euo pipefail
secs=${1:-30}
case $secs in
  '' | *[!0-9]*) echo "usage: fuzz/run.sh [seconds-per-target]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
failed=()
for t in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$t"
  echo "== fuzz $t for ${secs}s"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1; then
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz/run.sh: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz/run.sh: no crash in $secs s per target"
