#!/usr/bin/env bash
# The transcode benchmark (issue 11): a 30 s 1080p clip through the whole
# pipeline with 2 workers against the same ffmpeg commands from a shell
# script, time to the first playable rendition, the supervisor's time from
# backlog to a running worker, and idle CPU of coordinator and supervisor.
# Prints one table (docs/benchmarks.md). Takes about 3 minutes on 2 cores.
#
#   bash tests/load/transcode/run_transcode_bench.sh
#   CONFIG=fastbuild bash tests/load/transcode/run_transcode_bench.sh  # no opt rebuild
set -euo pipefail
CONFIG=${CONFIG:-opt}
cd "$(dirname "$0")/../../.."
[ -x scripts/setup.sh ] && bash scripts/setup.sh >&2 || true
if [ "$CONFIG" = opt ]; then flags=(--config=opt); else flags=(); fi
bazel build "${flags[@]}" //tests/load/transcode:transcode_bench >&2
bin=$(bazel info "${flags[@]}" bazel-bin 2>/dev/null)
work=$(mktemp -d /var/tmp/pettube-transcode-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
TEST_SRCDIR="$bin/tests/load/transcode/transcode_bench.runfiles" TEST_TMPDIR="$work" \
  "$bin/tests/load/transcode/transcode_bench" 2>"$work/bench.log" || {
  tail -20 "$work/bench.log" >&2
  exit 1
}
