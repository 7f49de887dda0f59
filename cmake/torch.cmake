# The torch part of the Python package (swiftbalancer._torch and the library under
# src/swiftbalancer/torch/), built when the module's interpreter imports torch 2.x. Without
# torch it is skipped with a one-line reason and everything else builds as before.
#
# Torch is found through the interpreter (torch.utils.cpp_extension's include and library
# paths), not through its CMake package, which would also insist on a matching CUDA toolkit: the
# code here uses torch's device-generic stream and event API, so one build serves CPU and CUDA.
# The extension is compiled against torch's own pybind11 headers (first on the include path),
# so torch.distributed.ProcessGroup and torch.Tensor arguments cast across the two modules.
set(SWIFTBALANCER_HAVE_TORCH OFF)
execute_process(
  COMMAND ${Python_EXECUTABLE} -c
    "import torch, torch.distributed as d\nfrom torch.utils import cpp_extension as c\nassert int(torch.__version__.split('.')[0]) >= 2, 'torch ' + torch.__version__ + ' is older than 2.0'\nassert d.is_available(), 'torch.distributed is not available'\nprint(torch.__version__); print(','.join(c.include_paths())); print(c.library_paths()[0]); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
  OUTPUT_VARIABLE _torch_out ERROR_VARIABLE _torch_err RESULT_VARIABLE _torch_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _torch_rc EQUAL 0)
  string(REGEX REPLACE ".*\n([^\n]+)\n?$" "\\1" _why "${_torch_err}")
  message(STATUS "swiftbalancer._torch skipped: ${Python_EXECUTABLE} cannot use torch (${_why})")
  return()
endif()
string(REPLACE "\n" ";" _torch_lines "${_torch_out}")
list(GET _torch_lines 0 SWIFTBALANCER_TORCH_VERSION)
list(GET _torch_lines 1 _torch_inc)
list(GET _torch_lines 2 _torch_libdir)
list(GET _torch_lines 3 _torch_abi)
string(REPLACE "," ";" _torch_inc "${_torch_inc}")
if(NOT _torch_abi EQUAL 1)
  message(STATUS "swiftbalancer._torch skipped: torch ${SWIFTBALANCER_TORCH_VERSION} uses the "
                 "pre-C++11 libstdc++ ABI, the rest of the library the C++11 one")
  return()
endif()
set(SWIFTBALANCER_HAVE_TORCH ON)
message(STATUS "swiftbalancer._torch: torch ${SWIFTBALANCER_TORCH_VERSION} (${_torch_libdir})")

set(_torch_libs "")
foreach(lib c10 torch torch_cpu torch_python)
  find_library(_torch_lib_${lib} NAMES ${lib} PATHS ${_torch_libdir} NO_DEFAULT_PATH REQUIRED)
  list(APPEND _torch_libs ${_torch_lib_${lib}})
endforeach()

file(GLOB _torch_src CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/swiftbalancer/torch/*.cpp)
add_library(swiftbalancer_torch STATIC ${_torch_src})
target_include_directories(swiftbalancer_torch SYSTEM BEFORE PUBLIC ${_torch_inc})
target_include_directories(swiftbalancer_torch PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(swiftbalancer_torch PUBLIC swiftbalancer_runtime ${_torch_libs})
# torch's headers assume their own extension flags.
target_compile_definitions(swiftbalancer_torch PUBLIC _GLIBCXX_USE_CXX11_ABI=1)
set_target_properties(swiftbalancer_torch PROPERTIES BUILD_RPATH ${_torch_libdir})
