#!/usr/bin/env bash
# Installs the build and test dependencies from Debian's packages (needs root or sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake git ca-certificates curl \
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev \
  libopenmpi-dev openmpi-bin \
  python3 python3-dev python3-numpy python3-pytest python3-pip pybind11-dev \
  python3-torch python3-prometheus-client \
  clang libclang-rt-14-dev
