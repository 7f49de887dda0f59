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

# The engines' own EPLB modules, for tests/python/test_*_engine.py (issue 18): pinned releases of
# vLLM, SGLang and vllm-ascend, each with --no-deps (their full requirements pull other torch
# versions, CUDA kernels and servers), plus only the packages the imported modules need:
#   vllm.distributed.eplb.policy: psutil, pyzmq, aiohttp (and its own), requests;
#   sglang.srt.eplb.eplb_algorithms, sglang.srt.plugins: orjson, pybase64, pillow, starlette,
#     msgspec, ipython, traitlets;
#   vllm_ascend.eplb.core.policy.policy_factory: numba, llvmlite, scipy. vllm-ascend ships an
#     sdist only; with COMPILE_CUSTOM_KERNELS=0 and a SOC_VERSION it builds a pure-Python wheel
#     (no NPU kernels, setuptools-scm for its version). torch_npu cannot load without an Ascend
#     NPU: the test puts an empty module in its place. vllm-ascend also registers a vLLM platform
#     plugin that imports torch_npu: the tests set VLLM_PLUGINS="" (tests/python/conftest.py).
# SWIFTBALANCER_NO_ENGINES=1 skips them (the engine tests then skip themselves).
if [ "${SWIFTBALANCER_NO_ENGINES:-0}" = "1" ]; then exit 0; fi
VLLM_VERSION=0.34.0
SGLANG_VERSION=0.5.23
VLLM_ASCEND_VERSION=0.23.0.post1
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps)
"${PIP[@]}" "vllm==${VLLM_VERSION}" "sglang==${SGLANG_VERSION}" \
  psutil==7.2.2 pyzmq==27.3.0 aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 \
  attrs==26.1.0 frozenlist==1.8.0 multidict==7.2.1 propcache==0.5.4 yarl==1.25.1 \
  requests==2.34.2 urllib3==2.8.0 certifi==2026.10.19.post1 idna==3.20 \
  orjson==3.13.0 pybase64==1.5.1 pillow==13.0.0 starlette==1.10.0 anyio==4.16.0 \
  msgspec==0.23.0 ipython==9.18.1 traitlets==5.16.1 \
  numba==0.68.1 llvmlite==0.50.0 scipy==1.17.1
# vllm-ascend's build needs setuptools-scm with its own dependencies (vcs-versioning).
.venv/bin/python -m pip install -q --disable-pip-version-check setuptools-scm==10.3.4
SOC_VERSION=ascend910b1 COMPILE_CUSTOM_KERNELS=0 "${PIP[@]}" --no-build-isolation \
  "vllm-ascend==${VLLM_ASCEND_VERSION}"
VLLM_PLUGINS= .venv/bin/python -W ignore -c "import vllm.distributed.eplb.policy, sglang.srt.eplb.eplb_algorithms; print('engines: vllm', '${VLLM_VERSION}', 'sglang', '${SGLANG_VERSION}', 'vllm-ascend', '${VLLM_ASCEND_VERSION}')" 2>&1 | tail -1
