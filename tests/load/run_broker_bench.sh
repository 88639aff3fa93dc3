#!/usr/bin/env bash
# The broker benchmark: PetTube's broker side by side with NATS JetStream
# 2.9 (Debian's nats-server), default and with `chattr +S` on its store
# (fsync per message), in one run on this machine. Prints one table; see
# docs/benchmarks.md for how to read it.
#
#   tests/load/run_broker_bench.sh            # full run, about 10 minutes
#   QUICK=1 tests/load/run_broker_bench.sh    # small counts, a smoke test
#   ROWS=consume tests/load/run_broker_bench.sh   # only drain and fan-out
#   BROKER_BIN=/path/to/other/broker ROWS=backlog ...  # another build of the broker
#   BROKER_B_BIN=/path/to/other/broker ROWS=publish PAYLOADS=512 ...  # A/B: a second
#                          # build ("pettube-b") measured right after ours in every row;
#                          # its RESULT lines are printed, the table shows ours
#   PEERS="pettube jetstream" ...                  # only these peers
#   ROUNDS=5 ROWS=publish ...   # publish rows 5 times over; medians and per-round ratios
#
# Installs nats-server, libnats-dev and e2fsprogs if missing, builds with
# --config=opt, starts a fresh server (empty data dir, ports chosen by the
# OS on 127.0.0.1) for every measurement and stops it after; a trap stops
# whatever is still running on any exit. Run it with nothing else busy: the
# machine has 2 cores and every figure moves with load.
set -euo pipefail
cd "$(dirname "$0")/../.."

# ------------------------------------------------------------- settings
# Same for every peer.
WINDOW=256            # unacked events per producer
CREDITS=1024          # unacked deliveries per consumer
PAYLOADS="${PAYLOADS:-512 4096}"
PUBLISH_EVENTS=300000 # publish rows: at most this many events ...
PUBLISH_SECONDS=10    # ... or this long, whichever ends first
# Publish rows measured this many times, the peers one after the other in
# each round; the table shows each cell's median and prints every round's
# PetTube / JetStream ratio (one pair moves with the machine by +-30%).
ROUNDS="${ROUNDS:-1}"
# A typo would otherwise make the loop below measure no publish row at all.
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer, got '$ROUNDS'" >&2; exit 2; }
DRAIN_EVENTS=200000
FANOUT_EVENTS=100000  # x 4 subscriptions
LATENCY_RATE=1000
LATENCY_SECONDS=10
BACKLOG_EVENTS=1000000
IDLE_SECONDS=30
DISK_SECONDS=3
if [[ "${QUICK:-0}" == 1 ]]; then
  PUBLISH_EVENTS=5000 PUBLISH_SECONDS=3 DRAIN_EVENTS=3000 FANOUT_EVENTS=2000
  LATENCY_SECONDS=2 BACKLOG_EVENTS=20000 IDLE_SECONDS=3 DISK_SECONDS=1
fi
# Which rows to measure (all by default), e.g. ROWS=consume for drain and
# fan-out only.
ROWS="${ROWS:-disk publish consume latency backlog idle routing}"
want() { [[ " $ROWS " == *" $1 "* ]]; }
WORK="${BENCH_DIR:-/var/tmp/pettube-broker-bench}"
if [[ -n "${BROKER_B_BIN:-}" ]]; then
  PEERS="${PEERS:-pettube pettube-b jetstream jetstream-sync}"
else
  PEERS="${PEERS:-pettube jetstream jetstream-sync}"
fi

log() { echo "== $*" >&2; }

# ------------------------------------------------------------- packages
need=()
for p in nats-server libnats-dev e2fsprogs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

# ---------------------------------------------------------------- build
log "building (--config=opt)"
bazel build --config=opt //services/broker //services/broker:filter_bench \
  //tests/load:broker_bench >&2
BIN="$(bazel info --config=opt bazel-bin 2>/dev/null)"
BROKER="${BROKER_BIN:-$BIN/services/broker/broker}"
BENCH="$BIN/tests/load/broker_bench"

# ------------------------------------------------------ process control
PIDS=()
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "pid $pid did not stop on SIGTERM within 15 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
  # Data only; results stay for reading.
  rm -rf "$WORK"/run-* 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK"
RESULTS="$WORK/results.txt"
: >"$RESULTS"
RUN=0

# Sets SYSTEM, TARGET, SERVER_PID, DATA for a fresh server of peer $1.
# With $2 = nosync, jetstream-sync starts without +S (set later by
# make_sync) so pre-loading is not timed at one fsync per message.
start_peer() {
  local peer=$1 mode=${2:-}
  RUN=$((RUN + 1))
  DATA="$WORK/run-$RUN-$peer"
  mkdir -p "$DATA"
  sync
  case "$peer" in
    pettube | pettube-b)
      SYSTEM=pettube
      local broker="$BROKER"
      if [[ "$peer" == pettube-b ]]; then broker="${BROKER_B_BIN:?pettube-b needs BROKER_B_BIN}"; fi
      "$broker" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$DATA/db" \
        >"$DATA/stdout" 2>"$DATA/stderr" &
      SERVER_PID=$!
      PIDS+=("$SERVER_PID")
      for _ in $(seq 1 300); do
        grep -q '^ready ' "$DATA/stdout" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DATA/stderr" >&2; return 1; }
        sleep 0.1
      done
      TARGET="$(sed -n 's/^ready grpc=\([^ ]*\) .*/\1/p' "$DATA/stdout")"
      ;;
    jetstream | jetstream-sync)
      SYSTEM=jetstream
      mkdir -p "$DATA/store"
      if [[ "$peer" == jetstream-sync && "$mode" != nosync ]]; then chattr +S "$DATA/store"; fi
      cat >"$DATA/nats.conf" <<EOF
host: 127.0.0.1
port: -1
jetstream {
  store_dir: "$DATA/store"
}
EOF
      nats-server -c "$DATA/nats.conf" --ports_file_dir "$DATA" >"$DATA/stderr" 2>&1 &
      SERVER_PID=$!
      PIDS+=("$SERVER_PID")
      local ports="$DATA/nats-server_$SERVER_PID.ports"
      for _ in $(seq 1 300); do
        [[ -s "$ports" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DATA/stderr" >&2; return 1; }
        sleep 0.1
      done
      TARGET="$(grep -o 'nats://127.0.0.1:[0-9]*' "$ports" | head -1)"
      ;;
  esac
  [[ -n "$TARGET" ]] || { log "$peer did not start"; return 1; }
}

# jetstream-sync: from now on every write to the store is synchronous
# (existing files included; new ones inherit it from their folder).
make_sync() {
  if [[ "$1" == jetstream-sync ]]; then chattr -R +S "$DATA/store"; fi
}

stop_peer() {
  stop_pid "$SERVER_PID"
  local keep=()
  for pid in "${PIDS[@]}"; do [[ "$pid" != "$SERVER_PID" ]] && keep+=("$pid"); done
  PIDS=("${keep[@]}")
  # Keep the data until the end: deleting gigabytes (discard) right before
  # the next measurement would slow it down.
}

bench() {
  local peer=$1
  shift
  "$BENCH" --system="$SYSTEM" --peer="$peer" --target="$TARGET" --server_pid="$SERVER_PID" \
    --window="$WINDOW" --credits="$CREDITS" "$@" | tee -a "$RESULTS" || true
}

# ------------------------------------------------------------ the machine
{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"\
    "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
  echo "disk: $(df -T "$WORK" | awk 'NR==2 {print $1, $2}'), mount options:"\
    "$(findmnt -no OPTIONS -T "$WORK" 2>/dev/null || echo unknown)"
  echo "versions: $(nats-server --version), libnats $(dpkg-query -W -f='${Version}' libnats-dev);"\
    "broker at commit $(git rev-parse --short HEAD 2>/dev/null || echo none), sources sha256"\
    "$(cat services/broker/*.h services/broker/*.cc 2>/dev/null | sha256sum | cut -c1-12)"\
    "($(git status --porcelain services/broker 2>/dev/null | wc -l) files changed or new)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: window $WINDOW/producer, credits $CREDITS/consumer, publish ≤$PUBLISH_EVENTS events or" \
    "${PUBLISH_SECONDS}s ($ROUNDS round(s)), drain $DRAIN_EVENTS, fan-out 4 x $FANOUT_EVENTS, latency" \
    "$LATENCY_RATE/s for ${LATENCY_SECONDS}s"
} | tee "$WORK/machine.txt"

# -------------------------------------------------------------- the rows
if awk '{exit !($1 > 0.7)}' /proc/loadavg; then
  log "warning: load average $(cut -d' ' -f1 /proc/loadavg): something else is running; figures will be low and noisy"
fi
START=$(date +%s)
sync
if want disk; then
  log "disk ceiling: append + fdatasync"
  SYSTEM=none TARGET=none SERVER_PID=0
  for payload in $PAYLOADS; do
    bench disk --row=disk --payload="$payload" --dir="$WORK" --seconds="$DISK_SECONDS"
  done
fi

if want publish; then
  for ((round = 1; round <= ROUNDS; round++)); do
    log "row 1: durable publish throughput, round $round of $ROUNDS"
    for payload in $PAYLOADS; do
      for producers in 1 4; do
        for peer in $PEERS; do
          start_peer "$peer"
          bench "$peer" --row=publish --payload="$payload" --producers="$producers" \
            --events="$PUBLISH_EVENTS" --max_seconds="$PUBLISH_SECONDS"
          stop_peer
        done
      done
    done
  done
fi

if want consume; then
  log "rows 2 and 4: drain (1 consumer) and fan-out (4 subscriptions)"
  for consumers in 1 4; do
    events=$DRAIN_EVENTS
    ((consumers == 1)) || events=$FANOUT_EVENTS
    for payload in $PAYLOADS; do
      for peer in $PEERS; do
        start_peer "$peer" nosync
        bench "$peer" --row=preload --payload="$payload" --consumers="$consumers" \
          --events="$events" --producers=4 >&2
        make_sync "$peer"
        sync
        bench "$peer" --row=consume --payload="$payload" --consumers="$consumers" \
          --events="$events"
        stop_peer
      done
    done
  done
fi

if want latency; then
  log "row 3: publish-to-delivery latency at $LATENCY_RATE events/s"
  for payload in $PAYLOADS; do
    for peer in $PEERS; do
      start_peer "$peer"
      bench "$peer" --row=latency --payload="$payload" --rate="$LATENCY_RATE" \
        --seconds="$LATENCY_SECONDS"
      stop_peer
    done
  done
fi

if want backlog; then
  log "backlog of $BACKLOG_EVENTS x 1 KiB undelivered: server RSS"
  for stalled in false true; do
    for peer in pettube jetstream; do
      start_peer "$peer"
      bench "$peer" --row=backlog --payload=1024 --events="$BACKLOG_EVENTS" \
        --stalled_consumer="$stalled"
      stop_peer
    done
  done
fi

if want idle; then
  log "idle with 4 attached subscribers: server CPU over ${IDLE_SECONDS}s"
  for peer in pettube jetstream; do
    start_peer "$peer"
    bench "$peer" --row=idle --consumers=4 --idle_seconds="$IDLE_SECONDS"
    stop_peer
  done
fi

if want routing; then
  log "routing cost: //services/broker:filter_bench"
  bazel run --config=opt //services/broker:filter_bench 2>/dev/null | tee "$WORK/filter_bench.txt" >&2 || true
fi

# ------------------------------------------------------------- the table
{
  echo
  cat "$WORK/machine.txt"
  echo "elapsed: $(($(date +%s) - START)) s; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  "$BENCH" --row=table --results="$RESULTS"
  echo
  if want routing; then
    echo "Routing cost (//services/broker:filter_bench):"
    grep -E '^(Benchmark|BM_|-{5})' "$WORK/filter_bench.txt" || cat "$WORK/filter_bench.txt"
  fi
} | tee "$WORK/table.txt"
log "results kept in $WORK (results.txt, table.txt, filter_bench.txt)"
