// Host memory the addon owns and lends to JS as ArrayBuffers (the image cache reads records
// straight into it). A model op given a view of such a buffer takes a reference to the memory
// instead of copying it: no copy on the JS thread, and still safe when JS detaches or drops the
// ArrayBuffer while the op runs. Page-locked (CUDA's caching host allocator) when a GPU is present,
// so the host->device copy can run asynchronously; otherwise anonymous mappings.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <optional>

namespace cxrmask {

Napi::ArrayBuffer NewHostBuffer(Napi::Env env, size_t bytes);

// A tensor of `numel` elements over [data, data + numel·size(dtype)) that keeps the memory alive,
// when that range lies inside a live host buffer; nullopt otherwise.
std::optional<at::Tensor> BorrowHostBuffer(const void* data, int64_t numel, at::ScalarType dtype);

// Flat CPU tensor for copies of JS inputs: large ones get their own mapping (see the .cc).
at::Tensor NewHostTensor(int64_t numel, at::ScalarType dtype);

}  // namespace cxrmask
