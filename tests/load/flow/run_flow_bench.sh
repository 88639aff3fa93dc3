#!/usr/bin/env bash
# The whole flow's figures (issue 12), as a table: control-path latency
# (upload committed -> catalog record visible, p50/p99 over N small
# uploads), upload committed -> READY for the demo clip, idle CPU of the
# whole stack, and the wall time of `scripts/up.sh --once` after the build.
# Usage: tests/load/flow/run_flow_bench.sh [N=100] [READY_RUNS=3] [IDLE_SECONDS=30]
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash scripts/setup.sh
bazel build --config=opt //tests/load/flow:flow_bench //cli/pettube >&2
bin=$(bazel info --config=opt bazel-bin 2>/dev/null)
"$bin/tests/load/flow/flow_bench" "${1:-100}" "${2:-3}" "${3:-30}"

echo
echo "== scripts/up.sh --once on a fresh state directory (build already done)"
home=$(mktemp -d)
start=$(date +%s%N)
if PETTUBE_HOME="$home" bash scripts/up.sh --once > "$home/up.out" 2>&1; then
  end=$(date +%s%N)
  ms=$(((end - start) / 1000000))
  printf 'demo wall time (start, demo, stop): %d.%03d s; %s\n' $((ms / 1000)) $((ms % 1000)) \
    "$(grep -E '^== demo done' "$home/up.out")"
else
  echo "up.sh --once failed; see $home/up.out" >&2
  tail -20 "$home/up.out" >&2
  exit 1
fi
rm -rf "$home"
