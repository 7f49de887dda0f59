"""Builds the swiftbalancer Python package: python/swiftbalancer/*.py plus the C++ extension
swiftbalancer._core, which CMake builds (SWIFTBALANCER_PYTHON=ON, no tests, no benchmarks).

    pip install --no-build-isolation .

needs no network: cmake, a C++20 compiler, pybind11-dev, nlohmann-json and CLI11 from Debian.
With torch 2.x importable by the installing interpreter (e.g. the .venv of
scripts/install-deps.sh), swiftbalancer._torch is built too (swiftbalancer.torch.Balancer).
Set CMAKE_BUILD_PARALLEL_LEVEL to bound the build jobs (default 2) and SWIFTBALANCER_CMAKE_ARGS
for extra CMake arguments.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DSWIFTBALANCER_PYTHON=ON",
            "-DSWIFTBALANCER_TESTS=OFF",
            "-DSWIFTBALANCER_BENCH=OFF",
            "-DSWIFTBALANCER_MPI=OFF",
            "-DPython_EXECUTABLE=" + sys.executable,
        ] + shlex.split(os.environ.get("SWIFTBALANCER_CMAKE_ARGS", ""))
        subprocess.check_call(configure)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target",
                               "swiftbalancer_python", "-j", jobs])
        package = build_dir / "python" / "swiftbalancer"
        core = sorted(package.glob("_core*.so"))
        if not core:
            raise RuntimeError("CMake did not produce swiftbalancer/_core*.so")
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(core[-1], target)
        # The runtime extensions are built along and go next to _core: _runtime always, _torch
        # where the interpreter has torch 2.x (the runtime inside a torch engine).
        for so in sorted(package.glob("_runtime*.so")) + sorted(package.glob("_torch*.so")):
            shutil.copyfile(so, target.parent / so.name)


setup(
    packages=["swiftbalancer"],
    package_dir={"": "python"},
    ext_modules=[Extension("swiftbalancer._core", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    # Keep setuptools' scratch space out of build/ (the CMake build folder of the checkout).
    options={"build": {"build_base": "build-pip"}},
    zip_safe=False,
)
