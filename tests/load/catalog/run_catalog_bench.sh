#!/usr/bin/env bash
# The catalog benchmark (issue 10): GetMedia throughput of the real catalog
# against a trivial gRPC server answering a same-size Media from memory,
# both driven by the same load generator at the same concurrency; ListMedia
# first-page latency; projection throughput draining a broker backlog;
# RocksDB bytes per record; catalog RSS. Prints one table.
#
#   tests/load/catalog/run_catalog_bench.sh                  # 1,000,000 records, 10,000 owners
#   RECORDS=200000 OWNERS=2000 tests/load/catalog/run_catalog_bench.sh
#   QUICK=1 tests/load/catalog/run_catalog_bench.sh          # small, a smoke test
#   ROWS=reads tests/load/catalog/run_catalog_bench.sh       # skip the projection row
#   CATALOG_FLAGS=--read_threads=0 tests/load/catalog/run_catalog_bench.sh  # try a flag
#   CATALOG_B_FLAGS=--read_threads=0 ROWS=reads ...   # A/B in one run: a second
#                                    # catalog (B) on its own copy of the store is
#                                    # measured in every round right after A
#   CATALOG_B_BIN=/path/to/other/media-catalog ...     # A/B two builds the same way
#   BLOCK_CACHE_MB=1200 WARMUP_SECONDS=90 ROWS=reads ...   # every record cached first
#   CATALOG_B_FLAGS="--row_cache_mb=3072 --warm_row_cache" ROWS=reads ...  # B with
#                                    # every record in the row cache (about 1.45 GiB)
#   CATALOG_B_FLAGS="--record_cache_mb=1536 --warm_row_cache" ROWS=reads ...  # B with
#                                    # every record in the catalog's record cache
#   CATALOG_FLAGS="--rendered_cache_mb=3072 --warm_row_cache" ROWS=reads ...  # every
#                                    # record rendered once, stamped per read (about 2.3 GiB)
#   PERF_DIR=/tmp/p tests/load/catalog/run_catalog_bench.sh  # also `perf record` both
#                                                  # servers during their measured rows
#
# Every server listens on 127.0.0.1 with a port chosen by the OS; a trap
# stops them on any exit. Run with nothing else busy (2 cores).
set -euo pipefail
cd "$(dirname "$0")/../../.."

RECORDS="${RECORDS:-1000000}"
OWNERS="${OWNERS:-10000}"
CONCURRENCY="${CONCURRENCY:-32}"
SECONDS_PER_ROW="${SECONDS_PER_ROW:-10}"
EVENTS="${EVENTS:-20000}"
BLOCK_CACHE_MB="${BLOCK_CACHE_MB:-128}"  # the catalog's --block_cache_mb
WARMUP_SECONDS="${WARMUP_SECONDS:-2}"    # unmeasured GetMedia load before each GetMedia row
# GetMedia rows are measured in ROUNDS pairs (trivial, then catalog): the
# machine's speed drifts by tens of percent within minutes, so the ratio is
# taken per pair and the median reported.
ROUNDS="${ROUNDS:-3}"
if [[ "${QUICK:-0}" == 1 ]]; then
  RECORDS=20000 OWNERS=200 SECONDS_PER_ROW=3 EVENTS=2000
fi
WORK="${BENCH_DIR:-/var/tmp/pettube-catalog-bench}"
log() { echo "== $*" >&2; }

ROWS="${ROWS:-reads projection}"
want() { [[ " $ROWS " == *" $1 "* ]]; }

log "building (--config=opt)"
targets=(//services/media-catalog //services/auth-token-exchange //tests/load/catalog:catalog_bench)
if want projection; then targets+=(//services/broker); fi
bazel build --config=opt "${targets[@]}" >&2
BIN="$(bazel info --config=opt bazel-bin 2>/dev/null)"
BENCH="$BIN/tests/load/catalog/catalog_bench"

PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK"

# start NAME ARGS...: runs a server, waits for its `ready` line on a FIFO
# (a blocking read, no polling); sets PID and GRPC.
start() {
  local name=$1
  shift
  mkdir -p "$WORK/$name"
  mkfifo "$WORK/$name/stdout"
  "$@" >"$WORK/$name/stdout" 2>"$WORK/$name/stderr" &
  PID=$!
  PIDS+=("$PID")
  local fd line
  exec {fd}<"$WORK/$name/stdout"
  if ! read -r -t 120 -u "$fd" line; then
    cat "$WORK/$name/stderr" >&2
    log "$name did not become ready"
    return 1
  fi
  GRPC="$(sed -n 's/^ready grpc=\([^ ]*\).*/\1/p' <<<"$line")"
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

cfg="$WORK/config"
mkdir -p "$cfg"
for c in media-catalog bench; do echo "$c-secret-0123456789abcdef" >"$cfg/$c.secret"; done
cat >"$cfg/clients.json" <<JSON
[{"client_id": "media-catalog", "secret_file": "$cfg/media-catalog.secret",
  "scopes": ["events.subscribe", "events.publish"]},
 {"client_id": "bench", "secret_file": "$cfg/bench.secret",
  "scopes": ["media.read", "media.admin", "events.subscribe", "events.publish", "events.admin"]}]
JSON
# Signed URLs as in production.
python3 - "$cfg/url_keys" <<'PY'
import base64, os, sys
open(sys.argv[1], "w").write("k1 " + base64.b64encode(os.urandom(32)).decode() + "\n")
PY

start auth "$BIN/services/auth-token-exchange/auth-token-exchange" --listen=127.0.0.1:0 \
  --metrics_listen=127.0.0.1:0 --data_dir="$WORK/auth/data" \
  --workload_clients_file="$cfg/clients.json"
AUTH="$GRPC"
wl=(--auth="$AUTH" --client_id=bench --secret_file="$cfg/bench.secret")
"$BENCH" token "${wl[@]}" --scopes=media.read,media.admin >"$cfg/token"

# The seeded store is kept beside $WORK and reused by later runs of the same
# size (seeding 1,000,000 records takes about a minute); each run reads a copy.
# The name carries the record layout's version: a seed written by an older
# catalog (v1 kept whole transcode completions) is not reused.
SEED="$WORK-seed-v2-$RECORDS-$OWNERS"
seed_s=reused
if [[ ! -f "$SEED/done" ]]; then
  log "seeding $RECORDS records of $OWNERS owners"
  rm -rf "$SEED"
  seed_start=$(date +%s.%N)
  "$BENCH" seed --data_dir="$SEED/db" --records="$RECORDS" --owners="$OWNERS" >&2
  seed_s=$(echo "$(date +%s.%N) - $seed_start" | bc)
  touch "$SEED/done"
fi
mkdir -p "$WORK/catalog/data"
cp -a "$SEED/db" "$WORK/catalog/data/db"

common=(--auth_server="$AUTH" --client_id=media-catalog --client_secret_file="$cfg/media-catalog.secret"
  --url_signing_keys_file="$cfg/url_keys" --objects_url=http://127.0.0.1:8081
  --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --log_level=warning)
# shellcheck disable=SC2086 # CATALOG_FLAGS: extra catalog flags, split on spaces
start catalog "$BIN/services/media-catalog/media-catalog" "${common[@]}" --data_dir="$WORK/catalog/data" \
  --block_cache_mb="$BLOCK_CACHE_MB" ${CATALOG_FLAGS:-}
CATALOG="$GRPC"
CATALOG_PID=$PID
AB=0
if [[ -n "${CATALOG_B_FLAGS:-}${CATALOG_B_BIN:-}" ]]; then
  AB=1
  mkdir -p "$WORK/catalog_b/data"
  cp -a "$SEED/db" "$WORK/catalog_b/data/db"
  # shellcheck disable=SC2086 # CATALOG_B_FLAGS: split on spaces
  start catalog_b "${CATALOG_B_BIN:-$BIN/services/media-catalog/media-catalog}" "${common[@]}" \
    --data_dir="$WORK/catalog_b/data" --block_cache_mb="$BLOCK_CACHE_MB" ${CATALOG_B_FLAGS:-}
  CATALOG_B="$GRPC"
  CATALOG_B_PID=$PID
fi
start trivial "$BENCH" trivial --listen=127.0.0.1:0
TRIVIAL="$GRPC"
TRIVIAL_PID=$PID

load() {
  "$BENCH" load --target="$1" --method="$2" --token_file="$cfg/token" --concurrency="$CONCURRENCY" \
    --seconds="$SECONDS_PER_ROW" --records="$RECORDS" --owners="$OWNERS"
}
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }
# cpu_ticks PID: user+system CPU time of PID so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# us_per_call TICKS_BEFORE TICKS_AFTER ROW: server CPU per call of a row.
us_per_call() {
  echo "scale=1; ($2 - $1) * 1000000 / $(getconf CLK_TCK) / ($(field qps "$3") * $SECONDS_PER_ROW)" | bc
}
# profile NAME PID: with PERF_DIR set, samples PID's stacks for the length of
# a measured row (started just before it) into $PERF_DIR/NAME.data.
profile() {
  [[ -n "${PERF_DIR:-}" ]] || return 0
  mkdir -p "$PERF_DIR"
  perf record -q -F ${PERF_HZ:-499} ${PERF_CALLGRAPH:---call-graph=dwarf,16384} -p "$2" -o "$PERF_DIR/$1.data" -- sleep "$SECONDS_PER_ROW" \
    >/dev/null 2>&1 &
}

log "GetMedia: trivial server (warm-up, then measured)"
SECONDS_PER_ROW=$WARMUP_SECONDS load "$TRIVIAL" get >/dev/null
load_before=$(cut -d' ' -f1 /proc/loadavg)
profile trivial "$TRIVIAL_PID"
t0=$(cpu_ticks "$TRIVIAL_PID")
trivial_row=$(load "$TRIVIAL" get)
trivial_us=$(us_per_call "$t0" "$(cpu_ticks "$TRIVIAL_PID")" "$trivial_row")
log "GetMedia: catalog"
SECONDS_PER_ROW=$WARMUP_SECONDS load "$CATALOG" get >/dev/null
profile catalog "$CATALOG_PID"
t0=$(cpu_ticks "$CATALOG_PID")
catalog_row=$(load "$CATALOG" get)
catalog_us=$(us_per_call "$t0" "$(cpu_ticks "$CATALOG_PID")" "$catalog_row")
ratios=("$(echo "scale=2; $(field qps "$catalog_row") / $(field qps "$trivial_row")" | bc)")
cpu_a=("$catalog_us")
ratios_b=()
cpu_b=()
# b_row TRIVIAL_ROW: measures catalog B right after a round's catalog A row.
b_row() {
  [[ $AB == 1 ]] || return 0
  SECONDS_PER_ROW=$WARMUP_SECONDS load "$CATALOG_B" get >/dev/null
  local t0 row
  t0=$(cpu_ticks "$CATALOG_B_PID")
  row=$(load "$CATALOG_B" get)
  cpu_b+=("$(us_per_call "$t0" "$(cpu_ticks "$CATALOG_B_PID")" "$row")")
  ratios_b+=("$(echo "scale=2; $(field qps "$row") / $(field qps "$1")" | bc)")
}
b_row "$trivial_row"
for ((round = 2; round <= ROUNDS; round++)); do
  log "GetMedia: round $round of $ROUNDS (trivial, then catalog)"
  t_row=$(load "$TRIVIAL" get)
  t0=$(cpu_ticks "$CATALOG_PID")
  c_row=$(load "$CATALOG" get)
  cpu_a+=("$(us_per_call "$t0" "$(cpu_ticks "$CATALOG_PID")" "$c_row")")
  ratios+=("$(echo "scale=2; $(field qps "$c_row") / $(field qps "$t_row")" | bc)")
  b_row "$t_row"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio_median=$(median "${ratios[@]}")
log "ListMedia first page: catalog"
list_row=$(load "$CATALOG" list)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$CATALOG_PID/status")
if [[ $AB == 1 ]]; then rss_b_kb=$(awk '/VmRSS/ {print $2}' "/proc/$CATALOG_B_PID/status"); fi
stop "$TRIVIAL_PID"
stop "$CATALOG_PID"
if [[ $AB == 1 ]]; then stop "$CATALOG_B_PID"; fi
db_bytes=$(du -sb "$WORK/catalog/data/db" | cut -f1)

drain_row="events_per_s=- acked=- seconds=- dead=-"
if want projection; then
log "projection: $EVENTS events in a broker backlog, then a fresh catalog drains it"
start broker "$BIN/services/broker/broker" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$WORK/broker/data" --auth_server="$AUTH"
BROKER="$GRPC"
# As the catalog's workload, so that the subscription it creates is the catalog's.
"$BENCH" backlog --auth="$AUTH" --client_id=media-catalog --secret_file="$cfg/media-catalog.secret" \
  --broker="$BROKER" --events="$EVENTS" >&2
start projector "$BIN/services/media-catalog/media-catalog" "${common[@]}" \
  --broker_server="$BROKER" --data_dir="$WORK/projector/data"
drain_row=$("$BENCH" drain "${wl[@]}" --broker="$BROKER" --events="$EVENTS")
fi

q_t=$(field qps "$trivial_row")
q_c=$(field qps "$catalog_row")
cat <<TABLE

PetTube media-catalog benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores
records=$RECORDS owners=$OWNERS concurrency=$CONCURRENCY seconds/row=$SECONDS_PER_ROW block_cache_mb=$BLOCK_CACHE_MB (seeding: ${seed_s%.*} s)
load average before the GetMedia rows: $load_before (read the ratio only from a quiet machine)

| measurement                         | value |
|-------------------------------------|-------|
| GetMedia trivial server, calls/s    | $q_t (p50 $(field p50_ms "$trivial_row") ms, p99 $(field p99_ms "$trivial_row") ms, $(field bytes "$trivial_row") B) |
| GetMedia catalog, calls/s           | $q_c (p50 $(field p50_ms "$catalog_row") ms, p99 $(field p99_ms "$catalog_row") ms, $(field bytes "$catalog_row") B, errors $(field errors "$catalog_row")) |
| GetMedia catalog / trivial          | $(echo "scale=2; $q_c / $q_t" | bc)x (target 0.7x, goal 0.9x) |
| same, per round (trivial then catalog) | ${ratios[*]}: median ${ratio_median}x |
| server CPU per GetMedia, µs         | trivial $trivial_us, catalog $catalog_us (per round: ${cpu_a[*]}) |
| ListMedia first page (50), calls/s  | $(field qps "$list_row") (errors $(field errors "$list_row")) |
| ListMedia first page p50 / p99      | $(field p50_ms "$list_row") ms / $(field p99_ms "$list_row") ms ($(field bytes "$list_row") B) |
| projection from a backlog, events/s | $(field events_per_s "$drain_row") ($(field acked "$drain_row") acked in $(field seconds "$drain_row") s, dead $(field dead "$drain_row")) |
| RocksDB bytes per record            | $((db_bytes / RECORDS)) ($db_bytes B in db/) |
| catalog RSS after the reads         | $((rss_kb / 1024)) MiB |
TABLE
if [[ $AB == 1 ]]; then
  cat <<TABLE
| catalog B (${CATALOG_B_BIN:-same binary} ${CATALOG_B_FLAGS:-}) / trivial, per round | ${ratios_b[*]}: median $(median "${ratios_b[@]}")x |
| catalog B server CPU per GetMedia, µs, per round | ${cpu_b[*]} |
| catalog B RSS after the reads       | $((rss_b_kb / 1024)) MiB |
TABLE
fi
