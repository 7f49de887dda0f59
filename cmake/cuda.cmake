# The CUDA device path (src/swiftbalancer/device, tests/device, bench/device_bench.cpp).
#
# SWIFTBALANCER_CUDA:
#   AUTO (default): on when a CUDA compiler and NCCL are found (nvcc on PATH, or the toolkit under
#                   /usr/local/cuda), off otherwise and under sanitizers; a CPU-only machine
#                   builds exactly as before;
#   ON:             required (configure fails, naming what is missing);
#   OFF:            never.
# Sets SWIFTBALANCER_HAVE_CUDA, NCCL_INCLUDE_DIR and NCCL_LIBRARY for src/, tests/ and bench/.
# The build needs no GPU: the device tests and the benchmark skip when none is present.
set(SWIFTBALANCER_CUDA AUTO CACHE STRING "CUDA device path: AUTO, ON or OFF")
set_property(CACHE SWIFTBALANCER_CUDA PROPERTY STRINGS AUTO ON OFF)
set(SWIFTBALANCER_HAVE_CUDA OFF)

string(TOUPPER "${SWIFTBALANCER_CUDA}" _sb_cuda)
if(NOT _sb_cuda MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "SWIFTBALANCER_CUDA must be AUTO, ON or OFF (got '${SWIFTBALANCER_CUDA}')")
endif()
if(_sb_cuda STREQUAL "OFF")
  message(STATUS "CUDA device path: off (SWIFTBALANCER_CUDA=OFF)")
  return()
endif()
if(_sb_cuda STREQUAL "AUTO" AND NOT SWIFTBALANCER_SANITIZE STREQUAL "")
  # The CUDA runtime and the sanitizers' shadow memory do not mix without extra options.
  message(STATUS "CUDA device path: off under sanitizers (force with -DSWIFTBALANCER_CUDA=ON)")
  return()
endif()

macro(_sb_cuda_missing what)
  if(_sb_cuda STREQUAL "ON")
    message(FATAL_ERROR "SWIFTBALANCER_CUDA=ON but ${what}")
  endif()
  message(STATUS "CUDA device path: off (${what})")
  return()
endmacro()

# nvcc is often not on PATH; the toolkit's usual place is /usr/local/cuda.
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(_sb_nvcc nvcc)
  if(NOT _sb_nvcc AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
  endif()
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER OR NOT EXISTS "${CMAKE_CUDA_COMPILER}")
  _sb_cuda_missing("no CUDA compiler (nvcc) was found")
endif()

get_filename_component(_sb_cuda_root "${CMAKE_CUDA_COMPILER}" DIRECTORY)
get_filename_component(_sb_cuda_root "${_sb_cuda_root}" DIRECTORY)
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${_sb_cuda_root}/include /usr/local/cuda/include)
find_library(NCCL_LIBRARY nccl HINTS ${_sb_cuda_root}/lib64 ${_sb_cuda_root}/lib /usr/local/cuda/lib64)
if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
  _sb_cuda_missing("NCCL (nccl.h, libnccl) was not found")
endif()

# SASS for Hopper (H100/H200) and PTX for sm_80 that any newer device can JIT: two targets keep
# the compile short. Override with -DCMAKE_CUDA_ARCHITECTURES=...
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "90-real;80-virtual")
endif()
# One CUDA runtime per binary (issue 19, item 12): the device library links CUDA::cudart (the
# shared runtime, as torch's extensions do), so .cu targets must not add the static one that
# CMake links by default (both ended up on one link line).
if(NOT DEFINED CMAKE_CUDA_RUNTIME_LIBRARY)
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
endif()
enable_language(CUDA)
# C++20 for .cu files too (CUDA_STANDARD follows CXX_STANDARD). CMake 3.25 does not know that
# nvcc 12+ takes -std=c++20, so say it here when it did not.
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION
   AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
endif()
find_package(CUDAToolkit REQUIRED)
set(SWIFTBALANCER_HAVE_CUDA ON)
message(STATUS "CUDA device path: on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
               "architectures ${CMAKE_CUDA_ARCHITECTURES}, NCCL ${NCCL_LIBRARY})")
