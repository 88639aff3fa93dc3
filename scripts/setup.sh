#!/usr/bin/env bash
# Installs what PetTube needs to build, test and run on Debian 12, as root.
# Does nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  # Build: Bazel and the system libraries Bazel links (see bazel/system.BUILD).
  bazel-bootstrap g++ python3
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev librocksdb-dev libcivetweb-dev libssl-dev nlohmann-json3-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # tcmalloc for the services (bazel/BUILD: malloc).
  libtcmalloc-minimal4
  # Tests: promtool checks /metrics; grpc-proto has health/reflection protos;
  # openssl makes the TLS test's certificate.
  prometheus grpc-proto openssl
  # The demo and end-to-end tests: ffmpeg makes and probes clips; the Python
  # client test uses Debian's gRPC for Python.
  ffmpeg python3-grpcio python3-grpc-tools
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
