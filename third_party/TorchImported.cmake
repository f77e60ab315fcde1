# Hand-written imported target for LibTorch, used when upstream find_package(Torch) cannot run
# (a CUDA LibTorch, e.g. the pip wheel, on a machine without a CUDA toolkit). Linking against
# LibTorch needs no toolkit: only the shared libraries and headers. libtorch_cuda/c10_cuda are
# linked with --no-as-needed so they are DT_NEEDED and CUDA registers itself at load time;
# the wheel's own RPATHs ($ORIGIN/../../nvidia/...) then find cudart, cuBLAS and cuDNN.
# Expects CXRMASK_TORCH_PREFIX, CXRMASK_TORCH_CUDA and CXRMASK_TORCH_CXX_FLAGS (FindLibTorch.cmake).

set(_p "${CXRMASK_TORCH_PREFIX}")
foreach(_lib torch torch_cpu c10)
  if(NOT EXISTS "${_p}/lib/lib${_lib}.so")
    message(FATAL_ERROR "cxrmask: ${_p}/lib/lib${_lib}.so is missing; this is not a usable LibTorch.")
  endif()
endforeach()

add_library(cxrmask::torch INTERFACE IMPORTED)
set_target_properties(cxrmask::torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_p}/include;${_p}/include/torch/csrc/api/include")
if(CXRMASK_TORCH_CXX_FLAGS)
  separate_arguments(_cxr_flags UNIX_COMMAND "${CXRMASK_TORCH_CXX_FLAGS}")
  set_property(TARGET cxrmask::torch APPEND PROPERTY INTERFACE_COMPILE_OPTIONS ${_cxr_flags})
endif()

set(_links "-Wl,--no-as-needed" "${_p}/lib/libtorch.so" "${_p}/lib/libtorch_cpu.so")
if(CXRMASK_TORCH_CUDA)
  list(APPEND _links "${_p}/lib/libtorch_cuda.so")
  if(EXISTS "${_p}/lib/libc10_cuda.so")
    list(APPEND _links "${_p}/lib/libc10_cuda.so")
  endif()
endif()
list(APPEND _links "-Wl,--as-needed" "${_p}/lib/libc10.so")
set_property(TARGET cxrmask::torch PROPERTY INTERFACE_LINK_LIBRARIES "${_links}")
