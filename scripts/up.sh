#!/usr/bin/env bash
# Starts the whole PetTube suite on this machine and shows a video going
# from upload to playable renditions.
#
#   scripts/up.sh            start everything, run the demo, stay up until Ctrl-C
#   scripts/up.sh --once     start, run the demo, stop; exit 0 only if the video
#                            reached READY and played
#   scripts/up.sh --no-demo  start everything and stay up (no demo)
#
# Every service runs as a local process on loopback with ports chosen at
# start-up; state lives under one directory ($PETTUBE_HOME, default
# ./.pettube) and is reused by the next run (media uploaded before are still
# there). Logs: $PETTUBE_HOME/logs/<service>.log. The endpoints are written
# to $PETTUBE_HOME/run/endpoints (KEY=VALUE lines, e.g.
# PETTUBE_CATALOG=127.0.0.1:40123), where the pettube CLI finds them, so
# `bazel-bin/cli/pettube/pettube ls` works with no flags from the checkout.
# A service that dies is reported with the tail of its log and everything
# stops; nothing is restarted silently. Ctrl-C (or SIGTERM) stops everything
# cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=demo
for arg in "$@"; do
  case "$arg" in
    --once) mode=once ;;
    --no-demo) mode=serve ;;
    -h | --help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "up.sh: unknown argument $arg (see scripts/up.sh --help)" >&2
      exit 2
      ;;
  esac
done

bash scripts/setup.sh

home=${PETTUBE_HOME:-$PWD/.pettube}
mkdir -p "$home/data" "$home/logs" "$home/secrets" "$home/run" "$home/demo"
chmod 700 "$home/secrets"
export PETTUBE_HOME="$home"

# ---- credentials, made once per state directory ---------------------------
# Workload credentials for the internal callers (the client-credentials
# grant): a random secret per client, as an operator would provision
# Kubernetes Secrets. The clients file is rewritten each run so a state
# directory from an older checkout gets new clients and scopes.
declare -A SCOPES=(
  [upload]='"events.publish", "events.subscribe"'
  [media-catalog]='"events.publish", "events.subscribe"'
  [transcode-coordinator]='"events.publish", "events.subscribe", "objects.read", "objects.write"'
  [transcode-worker]='"events.publish", "events.subscribe", "objects.read", "objects.write"'
  [transcode-supervisor]='"events.subscribe"'
  [pettube-admin]='"events.publish", "events.subscribe", "events.admin", "objects.read", "objects.write"'
)
entries=()
for c in upload media-catalog transcode-coordinator transcode-worker transcode-supervisor pettube-admin; do
  secret="$home/secrets/$c.secret"
  [ -f "$secret" ] || (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n' > "$secret")
  entries+=("{\"client_id\": \"$c\", \"secret_file\": \"$secret\", \"scopes\": [${SCOPES[$c]}]}")
done
clients="$home/secrets/workload-clients.json"
(umask 077 && IFS=, && printf '[%s]\n' "${entries[*]}" > "$clients")
# HMAC keys for signed object URLs ("<key_id> <base64 secret>", first signs),
# shared by upload (verifies) and media-catalog (signs).
url_keys="$home/secrets/url-signing-keys"
[ -f "$url_keys" ] || (umask 077 && printf 'k1 %s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" > "$url_keys")

# ---- build -----------------------------------------------------------------
# Start order: auth first (everyone verifies tokens with its keys), the
# broker (everything else talks through it), upload (its object listener
# is where the others read and write files), then the rest. A service whose
# binary is not in this checkout yet is skipped.
ALL=(auth-token-exchange broker upload media-catalog transcode-coordinator transcode-supervisor)
SERVICES=()
targets=(//cli/pettube)
for s in "${ALL[@]}" transcode-worker; do
  if [ -f "services/$s/BUILD" ] && grep -q "name = \"$s\"" "services/$s/BUILD"; then
    targets+=("//services/$s")
    [ "$s" != transcode-worker ] && SERVICES+=("$s")
  fi
done
echo "building ${targets[*]} ..." >&2
bazel build --config=opt "${targets[@]}" >&2
bin=$(bazel info --config=opt bazel-bin 2>/dev/null)
pettube="$bin/cli/pettube/pettube"
has_worker=0
[ -x "$bin/services/transcode-worker/transcode-worker" ] && has_worker=1
# Without a supervisor to scale workers, one worker is started directly.
if [ $has_worker -eq 1 ] && [[ ! " ${SERVICES[*]} " =~ " transcode-supervisor " ]]; then
  SERVICES+=(transcode-worker)
fi

# ---- start -----------------------------------------------------------------
declare -A pid grpc metrics objects
stopping=0
endpoints="$home/run/endpoints"
demo_pid=

stop_all() {
  stopping=1
  [ -n "$demo_pid" ] && kill -TERM "$demo_pid" 2>/dev/null || true
  rm -f "$endpoints"
  echo "stopping..." >&2
  local i s
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s=${SERVICES[$i]}
    [ -n "${pid[$s]:-}" ] && kill -TERM "${pid[$s]}" 2>/dev/null || true
  done
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s=${SERVICES[$i]}
    if [ -n "${pid[$s]:-}" ]; then
      if wait "${pid[$s]}" 2>/dev/null; then echo "  $s stopped" >&2; else echo "  $s exited with $?" >&2; fi
    fi
  done
}
trap 'echo >&2; stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

# The tail of a service's log, for "why did it die".
report_death() {
  local s=$1 code=$2
  echo "up.sh: $s died (exit $code); the end of $home/logs/$s.log:" >&2
  tail -n 15 "$home/logs/$s.log" | sed 's/^/    /' >&2
}

# Does binary $1 define flag $2? (Services grow flags as they land; a flag a
# binary does not have yet is left out rather than making it refuse to start.)
declare -A helptext
supports() {
  local exe=$1 flag=$2
  [ -n "${helptext[$exe]:-}" ] || helptext[$exe]=$("$exe" --helpfull 2>&1 || true)
  grep -q -- "--$flag " <<<"${helptext[$exe]}"
}

add_flag() {  # add_flag EXE FLAG VALUE: appends to $extra if supported
  if supports "$1" "$2"; then extra+=("--$2=$3"); fi
}

write_endpoints() {
  local s key
  {
    echo "# PetTube local stack, written by scripts/up.sh at $(date -u +%FT%TZ); removed on stop."
    for s in "${SERVICES[@]}"; do
      case "$s" in
        auth-token-exchange) key=AUTH ;;
        media-catalog) key=CATALOG ;;
        transcode-coordinator) key=TRANSCODE ;;
        transcode-supervisor) key=SUPERVISOR ;;
        transcode-worker) key=WORKER ;;
        *) key=${s^^} ;;
      esac
      echo "PETTUBE_$key=${grpc[$s]}"
      echo "PETTUBE_${key}_METRICS=${metrics[$s]}"
      [ -n "${objects[$s]:-}" ] && echo "PETTUBE_OBJECTS=${objects[$s]}"
    done
  } > "$endpoints.tmp"
  mv "$endpoints.tmp" "$endpoints"
}

for s in "${SERVICES[@]}"; do
  exe="$bin/services/$s/$s"
  extra=()
  auth=${grpc[auth-token-exchange]:-}
  broker=${grpc[broker]:-}
  obj=${objects[upload]:-}
  case "$s" in
    auth-token-exchange)
      # The development identity provider signs people in locally.
      extra=(--dev_idp --workload_clients_file="$clients")
      ;;
    broker) extra=(--auth_server="$auth") ;;
    *)
      add_flag "$exe" auth_server "$auth"
      add_flag "$exe" broker_server "$broker"
      add_flag "$exe" client_id "$s"
      add_flag "$exe" client_secret_file "$home/secrets/$s.secret"
      add_flag "$exe" url_signing_keys_file "$url_keys"
      [ "$s" = upload ] && add_flag "$exe" objects_listen 127.0.0.1:0
      [ -n "$obj" ] && add_flag "$exe" objects_url "http://$obj"
      [ -n "${grpc[upload]:-}" ] && add_flag "$exe" upload_server "${grpc[upload]}"
      [ -n "${grpc[transcode-coordinator]:-}" ] &&
        add_flag "$exe" coordinator "${grpc[transcode-coordinator]}"
      if [ "$s" = transcode-supervisor ] && [ $has_worker -eq 1 ]; then
        # Workers it starts (one per queued job, none when idle) dial the
        # same peers with their own credentials.
        add_flag "$exe" worker_binary "$bin/services/transcode-worker/transcode-worker"
        wargs="--auth_server=$auth,--broker_server=$broker,--client_id=transcode-worker"
        wargs+=",--client_secret_file=$home/secrets/transcode-worker.secret"
        wargs+=",--objects_url=http://$obj,--upload_server=${grpc[upload]:-}"
        wargs+=",--coordinator=${grpc[transcode-coordinator]:-}"
        add_flag "$exe" worker_args "$wargs"
      fi
      ;;
  esac
  # The service's stdout is a FIFO we read its `ready` line from; `read`
  # blocks until the line arrives (or 60 s pass). Opened read-write so it
  # never blocks on open and never closes under the service.
  fifo="$home/run/$s.stdout"
  rm -f "$fifo" && mkfifo "$fifo"
  exec {fd}<>"$fifo"
  printf '\n=== %s start %s\n' "$(date -u +%FT%TZ)" "${extra[*]}" >> "$home/logs/$s.log"
  "$exe" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$home/data/$s" "${extra[@]}" >"$fifo" 2>>"$home/logs/$s.log" &
  pid[$s]=$!
  if ! read -r -t 60 -u "$fd" line || [[ "$line" != ready* ]]; then
    echo "up.sh: $s did not start; the end of $home/logs/$s.log:" >&2
    tail -n 15 "$home/logs/$s.log" | sed 's/^/    /' >&2
    stop_all
    exit 1
  fi
  for kv in $line; do
    case "$kv" in
      grpc=*) grpc[$s]=${kv#grpc=} ;;
      metrics=*) metrics[$s]=${kv#metrics=} ;;
      objects=*) objects[$s]=${kv#objects=} ;;
    esac
  done
  # Ready means listening; health SERVING means it will take calls (pushed
  # by Health/Watch, no polling).
  if ! "$pettube" health "${grpc[$s]}" --timeout=30s >/dev/null; then
    echo "up.sh: $s is not SERVING; the end of its log:" >&2
    tail -n 15 "$home/logs/$s.log" | sed 's/^/    /' >&2
    stop_all
    exit 1
  fi
done
write_endpoints

printf '\nPetTube is running (state in %s, logs in %s/logs)\n\n' "$home" "$home"
printf '%-22s %-22s %-30s %s\n' SERVICE GRPC METRICS OBJECTS
for s in "${SERVICES[@]}"; do
  printf '%-22s %-22s %-30s %s\n' "$s" "${grpc[$s]}" "http://${metrics[$s]}/metrics" \
    "${objects[$s]:+http://${objects[$s]}/objects/}"
done
printf '\nEndpoints for tools and the CLI: %s\n' "$endpoints"
printf 'CLI: %s --help   (e.g. pettube login alice; pettube upload clip.mp4; pettube ls)\n' "$pettube"

# ---- the demo ----------------------------------------------------------------
demo() {
  set -euo pipefail
  local start=$SECONDS t0
  echo
  echo "== demo: sign in, upload, watch, play"
  "$pettube" login demo
  local clip="$home/demo/clip.mp4"
  if [ ! -s "$clip" ]; then
    echo "-- generating a 3 s 640x360 sample clip with ffmpeg"
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=30 \
      -f lavfi -i sine=frequency=440:sample_rate=48000 -t 3 -c:v libx264 -preset veryfast \
      -pix_fmt yuv420p -c:a aac -b:a 96k -shortest -movflags +faststart "$clip"
  fi
  echo "-- uploading $clip"
  local result media
  result=$("$pettube" upload "$clip" --title "PetTube demo $(date -u +%H:%M:%S)" --json)
  media=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["media"])' "$result")
  echo "uploaded $media"
  echo "-- watching $media until READY"
  t0=$SECONDS
  if ! "$pettube" watch "$media" --timeout=5m; then
    echo "demo: $media did not become READY (see above; pettube show $media)" >&2
    return 1
  fi
  echo "ready after $((SECONDS - t0)) s"
  echo "-- renditions with signed URLs"
  "$pettube" show "$media"
  local url
  url=$("$pettube" play-url "$media")
  echo "-- ffprobe $url"
  local streams
  if ! streams=$(ffprobe -v error -show_entries stream=index,codec_type,codec_name,width,height,duration \
    -of compact=p=0 "$url"); then
    echo "demo: ffprobe could not read $url" >&2
    return 1
  fi
  if [ -z "$streams" ]; then
    echo "demo: ffprobe found no streams in $url" >&2
    return 1
  fi
  echo "$streams" | sed 's/^/    /'
  # The HLS master playlist plays too: its relative references stay signed.
  local hls
  hls=$("$pettube" play-url "$media" --rendition=hls)
  echo "-- ffprobe (HLS) $hls"
  # (ffprobe lists an HLS variant's streams once per program: dedupe.)
  if ! streams=$(ffprobe -v error -show_entries stream=codec_type,codec_name,width,height \
    -of compact=p=0 "$hls" | grep . | sort -u) || [ -z "$streams" ]; then
    echo "demo: ffprobe could not play the HLS playlist $hls" >&2
    return 1
  fi
  echo "$streams" | sed 's/^/    /'
  echo "== demo done in $((SECONDS - start)) s: $media is READY and plays"
}

if [ "$mode" = serve ]; then
  printf '\nPress Ctrl-C to stop.\n'
else
  demo &
  demo_pid=$!
fi

# Sleep until the demo ends or a service exits (wait -n: no polling).
set +e
while :; do
  pids=("${pid[@]}")
  [ -n "$demo_pid" ] && pids+=("$demo_pid")
  wait -n -p done_pid "${pids[@]}"
  code=$?
  [ $stopping -eq 1 ] && exit 0
  if [ -n "$demo_pid" ] && [ "${done_pid:-}" = "$demo_pid" ]; then
    demo_pid=
    if [ "$mode" = once ]; then
      stop_all
      exit $((code == 0 ? 0 : 1))
    fi
    if [ $code -ne 0 ]; then echo "demo failed (exit $code); the stack stays up." >&2; fi
    printf '\nPress Ctrl-C to stop.\n'
    continue
  fi
  for s in "${SERVICES[@]}"; do
    if [ "${pid[$s]}" = "${done_pid:-}" ]; then
      report_death "$s" "$code"
      pid[$s]=
    fi
  done
  stop_all
  exit 1
done
