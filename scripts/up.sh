#!/usr/bin/env bash
# Starts the whole PetTube suite on this machine: every service as a local
# process on loopback, state under one directory, endpoints printed.
# Ctrl-C (or SIGTERM) stops everything cleanly.
#
# Usage: scripts/up.sh            (state in ./.pettube, or $PETTUBE_HOME)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

home=${PETTUBE_HOME:-$PWD/.pettube}
mkdir -p "$home/data" "$home/logs" "$home/secrets" "$home/run"
chmod 700 "$home/secrets"

# Workload credentials for the internal callers (the client-credentials
# grant), made once: a random secret per service, as an operator would
# provision Kubernetes Secrets.
clients="$home/secrets/workload-clients.json"
if [ ! -f "$clients" ]; then
  entries=()
  for c in upload media-catalog transcode-coordinator transcode-worker pettube-admin; do
    head -c 32 /dev/urandom | base64 | tr -d '\n' > "$home/secrets/$c.secret"
    scopes='"events.publish", "events.subscribe"'
    [ "$c" = pettube-admin ] && scopes='"events.publish", "events.subscribe", "events.admin"'
    entries+=("{\"client_id\": \"$c\", \"secret_file\": \"$home/secrets/$c.secret\", \"scopes\": [$scopes]}")
  done
  (IFS=,; printf '[%s]\n' "${entries[*]}") > "$clients"
fi

echo "building services..." >&2
bazel build --jobs=2 --config=opt //services/... >&2
bin=$(bazel info --config=opt bazel-bin 2>/dev/null)

# Start order: auth first (the broker verifies tokens with its keys), then
# the broker (everything else talks through it), then the rest.
SERVICES=(auth-token-exchange broker upload media-catalog transcode-coordinator)
declare -A pid grpc metrics
stopping=0

stop_all() {
  stopping=1
  echo >&2
  echo "stopping..." >&2
  for s in "${SERVICES[@]}"; do
    [ -n "${pid[$s]:-}" ] && kill -TERM "${pid[$s]}" 2>/dev/null || true
  done
  for s in "${SERVICES[@]}"; do
    if [ -n "${pid[$s]:-}" ]; then
      wait "${pid[$s]}" 2>/dev/null && echo "  $s stopped" >&2 || echo "  $s exited with $?" >&2
    fi
  done
}
trap 'stop_all; exit 0' INT TERM

for s in "${SERVICES[@]}"; do
  extra=()
  case "$s" in
    # The development identity provider signs people in locally.
    auth-token-exchange) extra=(--dev_idp --workload_clients_file="$clients") ;;
    broker) extra=(--auth_server="${grpc[auth-token-exchange]}") ;;
  esac
  # The service's stdout is a FIFO we read its `ready` line from; read
  # blocks until the line arrives (or 60 s pass). Opened read-write so it
  # never blocks on open and never closes under the service.
  fifo="$home/run/$s.stdout"
  rm -f "$fifo" && mkfifo "$fifo"
  exec {fd}<>"$fifo"
  "$bin/services/$s/$s" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$home/data/$s" "${extra[@]}" >"$fifo" 2>>"$home/logs/$s.log" &
  pid[$s]=$!
  if ! read -r -t 60 -u "$fd" line || [[ "$line" != ready* ]]; then
    echo "$s did not start; its log ($home/logs/$s.log) ends with:" >&2
    tail -n 5 "$home/logs/$s.log" >&2
    stop_all
    exit 1
  fi
  for kv in $line; do
    case "$kv" in
      grpc=*) grpc[$s]=${kv#grpc=} ;;
      metrics=*) metrics[$s]=${kv#metrics=} ;;
    esac
  done
done

printf '\nPetTube is running (state in %s, logs in %s/logs)\n\n' "$home" "$home"
printf '%-22s %-22s %s\n' SERVICE GRPC METRICS
for s in "${SERVICES[@]}"; do
  printf '%-22s %-22s http://%s/metrics\n' "$s" "${grpc[$s]}" "${metrics[$s]}"
done
printf '\nSign in: pettube.auth.v1.DevIdentityProvider/MintIdToken on %s mints an ID token;\n' "${grpc[auth-token-exchange]}"
printf 'TokenExchange/ExchangeToken turns it into an access token. Workload secrets: %s\n' "$home/secrets"
printf '\nPress Ctrl-C to stop.\n'

# Sleep until a service exits or we are told to stop.
set +e
wait -n "${pid[@]}"
if [ $stopping -eq 0 ]; then
  echo "a service exited unexpectedly; see $home/logs" >&2
  stop_all
  exit 1
fi
