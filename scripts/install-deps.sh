#!/usr/bin/env bash
# Installs the build and test dependencies: Debian's packages (needs root or sudo), then the
# Python test environment .venv (Debian's python3 with torch 2.x and transformers from PyPI,
# pinned below), which CMake picks for the Python modules and their tests when it exists.
# SWIFTBALANCER_NO_VENV=1 skips the environment (the torch parts then skip themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake git ca-certificates curl \
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev \
  libopenmpi-dev openmpi-bin \
  python3 python3-dev python3-numpy python3-pytest python3-pip pybind11-dev \
  python3-venv python3-prometheus-client \
  clang libclang-rt-14-dev

if [ "${SWIFTBALANCER_NO_VENV:-0}" = "1" ]; then exit 0; fi
# The torch wheel from PyPI brings its CUDA libraries as packages (it will not import without
# them); transformers is for examples/torch_ep (the real MoE blocks, built from their configs).
# numpy stays below 2: Debian's pybind11 (2.10), which builds _core and _runtime, predates its ABI.
TORCH_VERSION=2.15.0
TRANSFORMERS_VERSION=5.23.0
if [ ! -x .venv/bin/python ]; then /usr/bin/python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check \
  "torch==${TORCH_VERSION}" "transformers==${TRANSFORMERS_VERSION}" \
  "numpy<2" pytest prometheus-client setuptools wheel
.venv/bin/python -c "import torch, transformers; print('python test environment: torch', torch.__version__, 'transformers', transformers.__version__)"
