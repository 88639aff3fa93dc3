#!/usr/bin/env bash
# The upload benchmark: the upload service against the disk it writes to
# and against Debian's nginx serving the same file, in one run on this
# machine. Prints one table (docs/benchmarks.md explains it):
#   1. upload of a SIZE_MB file over loopback vs `dd bs=4M conv=fdatasync`
#      of the same size on the same disk (target >= 0.6x, goal 0.8x)
#   2. upload service peak RSS during that upload (target < 64 MiB)
#   3. 8 concurrent uploads of SIZE_MB/4 (aggregate MiB/s)
#   4. download of the SIZE_MB object through a signed URL vs nginx serving
#      the same file from the same disk to the same client (curl), warm
#      page cache, median of 3 interleaved runs (target >= 0.8x)
#   5. p50/p99 of 1 MiB ranged GETs at 200 requests/s for 10 s (open loop)
#
#   tests/load/upload/run_upload_bench.sh           # SIZE_MB=1024
#   SIZE_MB=64 tests/load/upload/run_upload_bench.sh   # a quick look
#
# Installs nginx-light and curl if missing. Run with nothing else busy.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash scripts/setup.sh
SIZE_MB=${SIZE_MB:-1024}
RATE=${RATE:-200}
RANGED_SECONDS=${RANGED_SECONDS:-10}
WORK="${BENCH_DIR:-/var/tmp/pettube-upload-bench}"
log() { echo "== $*" >&2; }

need=()
for p in nginx-light curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

log "building (--config=opt)"
bazel build --config=opt //services/upload //services/auth-token-exchange \
  //tests/load/upload:upload_bench >&2
BIN="$(bazel info --config=opt bazel-bin 2>/dev/null)"
BENCH="$BIN/tests/load/upload/upload_bench"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"/upload "$WORK"/*.bin "$WORK"/www 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK"

# Starts binary $1 (rest: flags); sets READY to its ready line.
start() {
  local name=$1
  shift
  exec {fd}< <(exec "$BIN/services/$name/$name" --listen=127.0.0.1:0 \
    --metrics_listen=127.0.0.1:0 "$@" 2>"$WORK/$name.log")
  PIDS+=($!)
  LAST_PID=$!
  read -r -t 60 -u "$fd" READY || { cat "$WORK/$name.log" >&2; exit 1; }
}
field() { sed -E "s/.*$1=([^ ]+).*/\1/" <<<"$READY"; }

log "making a ${SIZE_MB} MiB source (an MP4 header, then random bytes)"
src="$WORK/source.bin"
{ printf '\0\0\0\040ftypisom'; head -c $((SIZE_MB * 1024 * 1024 - 12)) /dev/urandom; } >"$src"
quarter="$WORK/quarter.bin"
head -c $((SIZE_MB * 1024 * 1024 / 4)) "$src" >"$quarter"

sync
log "disk ceiling: dd bs=4M conv=fdatasync"
dd_out=$(dd if=/dev/zero of="$WORK/dd.bin" bs=4M count=$((SIZE_MB / 4)) conv=fdatasync 2>&1 | tail -1)
dd_secs=$(sed -E 's/.* copied, ([0-9.]+) s.*/\1/' <<<"$dd_out")
dd_mibs=$(awk -v mb="$SIZE_MB" -v s="$dd_secs" 'BEGIN{printf "%.0f", mb / s}')
rm -f "$WORK/dd.bin"
sync

head -c 32 /dev/urandom | base64 | sed 's/^/k1 /' >"$WORK/url-keys"
start auth-token-exchange --dev_idp --data_dir="$WORK/auth"
auth=$(field grpc)
start upload --auth_server="$auth" --data_dir="$WORK/upload" \
  --url_signing_keys_file="$WORK/url-keys" --quota_bytes=$((64 << 30))
upload_pid=$LAST_PID
upload=$(field grpc)
objects=$(field objects)
read -r token identity < <("$BENCH" --mode=token --auth="$auth" --user=bench)

log "upload of ${SIZE_MB} MiB"
read -r _ up_secs up_mibs key < <("$BENCH" --mode=upload --upload="$upload" --token="$token" \
  --file="$src")
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$upload_pid/status")

log "8 concurrent uploads of $((SIZE_MB / 4)) MiB"
read -r _ c_secs c_mibs _rest < <("$BENCH" --mode=upload --upload="$upload" --token="$token" \
  --file="$quarter" --concurrency=8)
peak_kib_8=$(awk '/VmHWM/ {print $2}' "/proc/$upload_pid/status")

# nginx serves the very file the object store holds, from the same disk.
mkdir -p "$WORK/www"
ln "$WORK/upload/objects/originals/$key" "$WORK/www/source.bin"
cat >"$WORK/nginx.conf" <<CONF
daemon off;
# Objects are private to the upload service (mode 0600): read them as it does.
user root;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.log;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 0;
  server {
    listen 127.0.0.1:0;
    root $WORK/www;
  }
}
CONF
# nginx cannot listen on port 0: pick a free port from the kernel.
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s/127.0.0.1:0/127.0.0.1:$nginx_port/" "$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf" -p "$WORK" &
PIDS+=($!)
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/source.bin" -r 0-0 && break; sleep 0.1; done

signed=$("$BENCH" --mode=sign --keys="$WORK/url-keys" --path="originals/$key")
pettube_url="http://$objects$signed"
nginx_url="http://127.0.0.1:$nginx_port/source.bin"
speed() { curl -s -o /dev/null -w '%{speed_download}' "$1" | awk '{printf "%.0f", $1 / 1048576}'; }
log "downloads (warm cache, 3 interleaved runs each)"
speed "$pettube_url" >/dev/null
speed "$nginx_url" >/dev/null
pt=() ng=()
for _ in 1 2 3; do pt+=("$(speed "$pettube_url")"); ng+=("$(speed "$nginx_url")"); done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
pt_med=$(median "${pt[@]}")
ng_med=$(median "${ng[@]}")

size_bytes=$((SIZE_MB * 1024 * 1024))
log "ranged GETs of 1 MiB at ${RATE}/s for ${RANGED_SECONDS}s"
read -r r50 r99 rmax rerr < <("$BENCH" --mode=ranged --http="$objects" --path="$signed" \
  --size="$size_bytes" --rate="$RATE" --seconds="$RANGED_SECONDS")
read -r n50 n99 nmax nerr < <("$BENCH" --mode=ranged --http="127.0.0.1:$nginx_port" \
  --path=/source.bin --size="$size_bytes" --rate="$RATE" --seconds="$RANGED_SECONDS")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a / b}'; }
echo
echo "PetTube upload benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, SIZE_MB=$SIZE_MB"
printf '%-52s %14s %14s %8s\n' "row" "pettube" "reference" "ratio"
printf '%-52s %11s MiB/s %8s MiB/s %8s\n' "upload ${SIZE_MB} MiB vs dd bs=4M conv=fdatasync" \
  "$up_mibs" "$dd_mibs" "$(ratio "$up_mibs" "$dd_mibs")"
printf '%-52s %11s MiB %14s %8s\n' "upload service peak RSS (VmHWM), 1 upload" \
  "$((peak_kib / 1024))" "target <64" ""
printf '%-52s %11s MiB %14s %8s\n' "upload service peak RSS, after 8 concurrent" \
  "$((peak_kib_8 / 1024))" "" ""
printf '%-52s %11.0f MiB/s %14s %8s\n' "8 concurrent uploads of $((SIZE_MB / 4)) MiB (aggregate)" \
  "$c_mibs" "" ""
printf '%-52s %11s MiB/s %8s MiB/s %8s\n' "download ${SIZE_MB} MiB signed URL vs nginx (median)" \
  "$pt_med" "$ng_med" "$(ratio "$pt_med" "$ng_med")"
printf '%-52s %14s %14s\n' "1 MiB ranged GET at ${RATE}/s: p50 / p99 ms" "$r50 / $r99" "$n50 / $n99"
printf '%-52s %14s %14s\n' "  max ms, errors" "$rmax, $rerr" "$nmax, $nerr"
echo "(downloads pettube: ${pt[*]}; nginx: ${ng[*]} MiB/s)"
