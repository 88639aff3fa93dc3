#!/usr/bin/env bash
# Auth benchmarks, printed as a table:
#  1. the server-side token check per call vs the bare ES256 verification
#     it contains (same run), target within 1.5x;
#  2. ExchangeToken throughput and latency at concurrency 1, 8 and 32
#     against a real auth-token-exchange (ghz-style closed loop).
# Usage: tests/load/auth/run_auth_bench.sh [seconds per load step, default 10]
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash scripts/setup.sh
secs=${1:-10}
bazel build --config=opt --jobs=2 //libs/auth/credentials:authenticator_bench \
  //tests/load/auth:exchange_load //services/auth-token-exchange >&2
bin=$(bazel info --config=opt bazel-bin 2>/dev/null)

echo "== token check vs bare signature verification"
"$bin/libs/auth/credentials/authenticator_bench" --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true 2>/dev/null | grep -E 'median|Benchmark'

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
exec {fd}< <(exec "$bin/services/auth-token-exchange/auth-token-exchange" --dev_idp \
  --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$work" 2>"$work/log")
pid=$!
read -r -t 30 -u "$fd" line
target=$(sed -E 's/.*grpc=([^ ]+).*/\1/' <<<"$line")

echo "== ExchangeToken load, ${secs}s per step, target $target ($(nproc) cores, server and client on one machine)"
for c in 1 8 32; do
  "$bin/tests/load/auth/exchange_load" --target="$target" --concurrency="$c" --duration="${secs}s"
done
