#!/usr/bin/env bash
# Bazel entry point for story_test.py: Debian's Python, whatever is on PATH.
set -euo pipefail
root="$TEST_SRCDIR/pettube"
exec /usr/bin/python3 "$root/tests/python/story_test.py" "$root/tests/e2e/stack_runner" "$root"
