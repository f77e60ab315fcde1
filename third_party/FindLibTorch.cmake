# Locates LibTorch for the cxrmask addon and defines the imported target `cxrmask::torch`.
# Nothing is downloaded. Order of precedence:
#   1. -DLIBTORCH=<dir> or env LIBTORCH  (an unpacked libtorch zip or any prefix with share/cmake/Torch)
#   2. -DTorch_DIR=<dir> or env Torch_DIR (the folder holding TorchConfig.cmake)
#   3. the Python torch on PATH (python3 -c "import torch.utils; print(torch.utils.cmake_prefix_path)")
# Then, per CXRMASK_TORCH_MODE (auto | find_package | imported):
#   find_package: upstream find_package(Torch) (needs a CUDA toolkit when LibTorch is a CUDA build);
#   imported:     third_party/TorchImported.cmake (no toolkit needed; libtorch_cuda still linked);
#   auto:         find_package for CPU builds or when a CUDA toolkit is present, imported otherwise.
# Outputs: CXRMASK_TORCH_PREFIX, CXRMASK_TORCH_VERSION, CXRMASK_TORCH_CUDA (ON/OFF),
#          CXRMASK_TORCH_CXX_FLAGS, CXRMASK_TORCH_HOW (which path was used).

set(CXRMASK_TORCH_MODE "auto" CACHE STRING "How to import LibTorch: auto | find_package | imported")
set(CXRMASK_PYTHON "" CACHE FILEPATH "Python interpreter whose torch is used when LIBTORCH/Torch_DIR are unset")

# Advice a reader can follow where this runs: an installed package ships no scripts/setup.sh, so it is
# named only in a source checkout (.git or ts/ beside CMakeLists.txt, as ts/native.ts isSourceCheckout).
get_filename_component(_cxr_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(EXISTS "${_cxr_root}/.git" OR EXISTS "${_cxr_root}/ts")
  set(_cxr_setup_help "    (in this clone, `bash scripts/setup.sh` does this in a venv and puts it on PATH), or\n")
else()
  string(CONCAT _cxr_setup_help
    "    (`npx cxrmask setup` does this in a venv in ~/.cache/cxrmask when LIBTORCH and Torch_DIR are unset\n"
    "    and no such torch is on PATH), or\n")
endif()
set(_cxr_install_help
  "Install one of:\n"
  "  * PyTorch for Python (the addon links the wheel's LibTorch):  pip install \"torch==${CXRMASK_TORCH_PIN}.*\"\n"
  "${_cxr_setup_help}"
  "  * a LibTorch zip from https://pytorch.org/get-started/locally/ (C++/Java, cxx11 ABI), unpacked, then\n"
  "    export LIBTORCH=/path/to/libtorch   (or pass --CDTorch_DIR=/path/to/libtorch/share/cmake/Torch).\n")

# ---- 1. find the folder holding TorchConfig.cmake --------------------------------------------
set(_cxr_torch_dir "")
if(NOT LIBTORCH AND DEFINED ENV{LIBTORCH} AND NOT "$ENV{LIBTORCH}" STREQUAL "")
  set(LIBTORCH "$ENV{LIBTORCH}")
endif()
if(NOT Torch_DIR AND DEFINED ENV{Torch_DIR} AND NOT "$ENV{Torch_DIR}" STREQUAL "")
  set(Torch_DIR "$ENV{Torch_DIR}")
endif()
if(LIBTORCH)
  if(EXISTS "${LIBTORCH}/share/cmake/Torch/TorchConfig.cmake")
    set(_cxr_torch_dir "${LIBTORCH}/share/cmake/Torch")
  else()
    message(FATAL_ERROR "LIBTORCH=${LIBTORCH} has no share/cmake/Torch/TorchConfig.cmake.\n" ${_cxr_install_help})
  endif()
elseif(Torch_DIR AND EXISTS "${Torch_DIR}/TorchConfig.cmake")
  set(_cxr_torch_dir "${Torch_DIR}")
else()
  if(NOT CXRMASK_PYTHON)
    find_program(CXRMASK_PYTHON_FOUND NAMES python3 python)
    set(CXRMASK_PYTHON "${CXRMASK_PYTHON_FOUND}")
  endif()
  if(CXRMASK_PYTHON)
    execute_process(
      COMMAND "${CXRMASK_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _cxr_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE _cxr_rc ERROR_QUIET)
    if(_cxr_rc EQUAL 0 AND EXISTS "${_cxr_prefix}/Torch/TorchConfig.cmake")
      set(_cxr_torch_dir "${_cxr_prefix}/Torch")
    endif()
  endif()
endif()
if(NOT _cxr_torch_dir)
  message(FATAL_ERROR
    "cxrmask: LibTorch not found (LIBTORCH and Torch_DIR unset, and `${CXRMASK_PYTHON}` has no "
    "importable torch).\n" ${_cxr_install_help})
endif()
get_filename_component(CXRMASK_TORCH_PREFIX "${_cxr_torch_dir}/../../.." ABSOLUTE)

# ---- 2. facts read from the files, without running upstream config ----------------------------
set(CXRMASK_TORCH_VERSION "unknown")
if(EXISTS "${_cxr_torch_dir}/TorchConfigVersion.cmake")
  file(STRINGS "${_cxr_torch_dir}/TorchConfigVersion.cmake" _cxr_v REGEX "set\\(PACKAGE_VERSION \"")
  string(REGEX REPLACE ".*PACKAGE_VERSION \"([^\"]+)\".*" "\\1" CXRMASK_TORCH_VERSION "${_cxr_v}")
endif()
file(STRINGS "${_cxr_torch_dir}/TorchConfig.cmake" _cxr_abi REGEX "_GLIBCXX_USE_CXX11_ABI=[01]")
if(_cxr_abi)
  string(REGEX REPLACE ".*(_GLIBCXX_USE_CXX11_ABI=[01]).*" "-D\\1" CXRMASK_TORCH_CXX_FLAGS "${_cxr_abi}")
elseif(CXRMASK_PYTHON AND NOT LIBTORCH)
  # Newer TorchConfig.cmake files no longer spell the ABI out; ask the torch we are linking.
  execute_process(
    COMMAND "${CXRMASK_PYTHON}" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
    OUTPUT_VARIABLE _cxr_abi_v OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _cxr_rc ERROR_QUIET)
  if(_cxr_rc EQUAL 0 AND _cxr_abi_v MATCHES "^[01]$")
    set(CXRMASK_TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${_cxr_abi_v}")
  endif()
endif()
if(NOT CXRMASK_TORCH_CXX_FLAGS)
  # Every LibTorch since 2.7 is built with the cxx11 ABI only (pytorch/pytorch#146200).
  set(CXRMASK_TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")
endif()
set(CXRMASK_TORCH_CUDA OFF)
if(EXISTS "${CXRMASK_TORCH_PREFIX}/lib/libtorch_cuda.so")
  set(CXRMASK_TORCH_CUDA ON)
endif()
if(CXRMASK_TORCH_PIN AND NOT CXRMASK_TORCH_VERSION MATCHES "^${CXRMASK_TORCH_PIN}")
  message(WARNING "cxrmask: LibTorch ${CXRMASK_TORCH_VERSION} differs from the pinned ${CXRMASK_TORCH_PIN}; "
    "TorchScript files must be exported by the same torch major.minor that runs them.")
endif()

# ---- 3. import it ------------------------------------------------------------------------------
set(_cxr_how "${CXRMASK_TORCH_MODE}")
if(_cxr_how STREQUAL "auto")
  set(_cxr_how "find_package")
  if(CXRMASK_TORCH_CUDA)
    find_package(CUDAToolkit QUIET)
    if(NOT CUDAToolkit_FOUND)
      set(_cxr_how "imported")
    endif()
  endif()
endif()

if(_cxr_how STREQUAL "find_package")
  set(Torch_DIR "${_cxr_torch_dir}" CACHE PATH "Folder with TorchConfig.cmake" FORCE)
  find_package(Torch REQUIRED CONFIG)
  add_library(cxrmask::torch INTERFACE IMPORTED)
  set_target_properties(cxrmask::torch PROPERTIES INTERFACE_LINK_LIBRARIES "${TORCH_LIBRARIES}")
  if(TORCH_CXX_FLAGS)
    separate_arguments(_cxr_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
    set_property(TARGET cxrmask::torch APPEND PROPERTY INTERFACE_COMPILE_OPTIONS ${_cxr_flags})
    set(CXRMASK_TORCH_CXX_FLAGS "${TORCH_CXX_FLAGS}")
  endif()
elseif(_cxr_how STREQUAL "imported")
  include("${CMAKE_CURRENT_LIST_DIR}/TorchImported.cmake")
else()
  message(FATAL_ERROR "CXRMASK_TORCH_MODE must be auto, find_package or imported (got ${CXRMASK_TORCH_MODE})")
endif()
set(CXRMASK_TORCH_HOW "${_cxr_how}")
message(STATUS "cxrmask: LibTorch ${CXRMASK_TORCH_VERSION} at ${CXRMASK_TORCH_PREFIX} "
  "(cuda build: ${CXRMASK_TORCH_CUDA}, via ${CXRMASK_TORCH_HOW}, flags: ${CXRMASK_TORCH_CXX_FLAGS})")
