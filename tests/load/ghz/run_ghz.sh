#!/usr/bin/env bash
# Runs the ghz load tests in this folder against the local stack started by
# scripts/up.sh, one table row per config.
#
# Usage: tests/load/ghz/run_ghz.sh [CONFIG.json...]   (default: all of them)
#
# ghz (https://ghz.sh) is not packaged in Debian 12; install a release binary
# from https://github.com/bojand/ghz/releases on PATH. Without it this
# script says so and exits 0.
#
# Tokens. The configs carry placeholders this script fills in before each run:
#   ${PETTUBE_ID_TOKEN}        a dev identity provider ID token:
#                              `pettube dev-id-token ghz-load`
#   ${PETTUBE_ACCESS_TOKEN}    a person's access token (media.*):
#                              `pettube login ghz-load && pettube token`
#   ${PETTUBE_WORKLOAD_TOKEN}  a workload token with events.publish:
#                              `pettube workload-token --client_id=pettube-admin
#                                 --secret_file=$PETTUBE_HOME/secrets/pettube-admin.secret
#                                 --scopes=events.publish`
#   ${PETTUBE_MEDIA}           one of the signed-in person's media
#                              (`pettube ls --json`), for GetMedia
# Set any of them in the environment to use your own value. Addresses come
# from $PETTUBE_HOME/run/endpoints (written by scripts/up.sh).
set -euo pipefail
cd "$(dirname "$0")/../../.."

if ! command -v ghz >/dev/null 2>&1; then
  echo "run_ghz: ghz is not installed (it is not packaged in Debian 12)." >&2
  echo "run_ghz: install a release from https://github.com/bojand/ghz/releases on PATH and rerun." >&2
  exit 0
fi

home=${PETTUBE_HOME:-$PWD/.pettube}
endpoints="$home/run/endpoints"
if [ ! -f "$endpoints" ]; then
  echo "run_ghz: no $endpoints; start the stack first: bash scripts/up.sh" >&2
  exit 1
fi
# shellcheck disable=SC1090
. "$endpoints"
export PETTUBE_HOME="$home"

bazel build //proto:pettube_protoset //cli/pettube >&2
pettube=bazel-bin/cli/pettube/pettube

if [ -z "${PETTUBE_ID_TOKEN:-}" ]; then
  PETTUBE_ID_TOKEN=$("$pettube" dev-id-token ghz-load)
fi
if [ -z "${PETTUBE_ACCESS_TOKEN:-}" ]; then
  "$pettube" login ghz-load >&2
  PETTUBE_ACCESS_TOKEN=$("$pettube" token)
fi
if [ -z "${PETTUBE_WORKLOAD_TOKEN:-}" ]; then
  PETTUBE_WORKLOAD_TOKEN=$("$pettube" workload-token --client_id=pettube-admin \
    --secret_file="$home/secrets/pettube-admin.secret" --scopes=events.publish)
fi
if [ -z "${PETTUBE_MEDIA:-}" ]; then
  PETTUBE_MEDIA=$("$pettube" ls --json | /usr/bin/python3 -c \
    'import json,sys; m=json.load(sys.stdin); print(m[0]["name"] if m else "")')
fi
export PETTUBE_ID_TOKEN PETTUBE_ACCESS_TOKEN PETTUBE_WORKLOAD_TOKEN PETTUBE_MEDIA

# Which address each config's service listens on.
host_for() {
  case "$1" in
    auth_*) echo "$PETTUBE_AUTH" ;;
    broker_*) echo "$PETTUBE_BROKER" ;;
    catalog_*) echo "$PETTUBE_CATALOG" ;;
    upload_*) echo "$PETTUBE_UPLOAD" ;;
  esac
}

configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(tests/load/ghz/*.json)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-28s %10s %10s %10s %10s %10s %8s\n' CONFIG RPS P50_MS P90_MS P99_MS AVG_MS ERRORS
for config in "${configs[@]}"; do
  base=$(basename "$config" .json)
  if [ "$base" = catalog_get_media ] && [ -z "$PETTUBE_MEDIA" ]; then
    printf '%-28s skipped: ghz-load has no media yet (upload one with pettube upload)\n' "$base"
    continue
  fi
  # Fill in the ${PETTUBE_*} placeholders (ghz templates only know {{.X}}).
  /usr/bin/python3 - "$config" "$work/$base.json" <<'PY'
import json, os, re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"\$\{(PETTUBE_[A-Z_]+)\}", lambda m: os.environ[m.group(1)], text)
open(sys.argv[2], "w").write(text)
PY
  ghz --config="$work/$base.json" --host="$(host_for "$base")" --format=json \
    --output="$work/$base.out.json" >/dev/null 2>"$work/$base.err" || true
  /usr/bin/python3 - "$base" "$work/$base.out.json" "$work/$base.err" <<'PY'
import json, sys
base, out, err = sys.argv[1:]
try:
    r = json.load(open(out))
except Exception:
    print(f"{base:<28} failed: {open(err).read().strip()[:200]}")
    sys.exit(0)
lat = {d["percentage"]: d["latency"] / 1e6 for d in r.get("latencyDistribution") or []}
errors = sum(v for k, v in (r.get("statusCodeDistribution") or {}).items() if k != "OK")
print(f"{base:<28} {r['rps']:>10.0f} {lat.get(50, 0):>10.2f} {lat.get(90, 0):>10.2f} "
      f"{lat.get(99, 0):>10.2f} {r['average'] / 1e6:>10.2f} {errors:>8}")
PY
done
