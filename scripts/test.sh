#!/usr/bin/env bash
# Runs every PetTube test (unit, integration, end-to-end) with Bazel and
# prints "N passed, N failed" counted from each test's own results.
# Usage: scripts/test.sh [bazel test args, default //...]
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(//...)
bep=$(mktemp -t pettube-bep.XXXXXX.json)
trap 'rm -f "$bep"' EXIT

bazel test --jobs=2 --local_test_jobs=2 --build_event_json_file="$bep" "${targets[@]}"
bazel_rc=$?
/usr/bin/python3 scripts/test_summary.py "$bep"
summary_rc=$?
if [ $bazel_rc -ne 0 ] || [ $summary_rc -ne 0 ]; then exit 1; fi
