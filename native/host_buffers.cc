#include "host_buffers.h"

#include <sys/mman.h>
#include <torch/cuda.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <new>

namespace cxrmask {
namespace {

struct Lent {
  size_t bytes;
  at::Tensor memory;
};

// The registries are never destroyed (like the compute threads): buffers JS still holds at exit are
// released during static destruction, and their deleters must find the pool alive (a destroyed pool
// corrupted the heap at exit: malloc_consolidate in scripts/gpu-check.mjs).
std::mutex g_mu;
auto& g_lent = *new std::map<uintptr_t, Lent>();  // by start address

// Idle mappings by size, reused before new ones are made: a fresh MAP_POPULATE mapping costs a page
// fault per 4 KiB (about 1 ms per 64-record batch here), a reused one nothing. Bounded: past
// kMaxIdleBytes blocks go back to the OS.
constexpr size_t kMaxIdleBytes = size_t{512} << 20;
std::mutex g_pool_mu;
auto& g_idle = *new std::multimap<size_t, void*>();
size_t g_idle_bytes = 0;

void* TakeMapping(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    auto it = g_idle.find(bytes);
    if (it != g_idle.end()) {
      void* p = it->second;
      g_idle.erase(it);
      g_idle_bytes -= bytes;
      return p;
    }
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                 -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

void GiveMapping(void* p, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    if (g_idle_bytes + bytes <= kMaxIdleBytes) {
      g_idle.emplace(bytes, p);
      g_idle_bytes += bytes;
      return;
    }
  }
  munmap(p, bytes);
}

bool UsePinned() {
  static const bool pinned = torch::cuda::is_available();
  return pinned;
}

}  // namespace

// Large blocks get their own (pooled) mapping. Through malloc, blocks allocated on the JS thread
// and freed after a worker ran raise glibc's adaptive mmap threshold and fragment the heap (RSS +50
// MiB per 1,000 calls, test/native/memory.test.ts); a process-wide fixed threshold instead slows
// torch's own allocations by 25-40 %.
at::Tensor NewHostTensor(int64_t numel, at::ScalarType dtype) {
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  if (bytes < (256u << 10)) return at::empty({numel}, at::TensorOptions().dtype(dtype));
  // With a GPU, copies go to page-locked memory (CUDA's caching host allocator, pooled), so the
  // op's host->device copy runs asynchronously.
  if (UsePinned()) return at::empty({numel}, at::TensorOptions().dtype(dtype).pinned_memory(true));
  void* p = TakeMapping(bytes);
  return at::from_blob(
      p, {numel}, [bytes](void* q) { GiveMapping(q, bytes); }, at::TensorOptions().dtype(dtype));
}

Napi::ArrayBuffer NewHostBuffer(Napi::Env env, size_t bytes) {
  const int64_t n = static_cast<int64_t>(bytes == 0 ? 1 : bytes);
  at::Tensor memory = UsePinned()
                          ? at::empty({n}, at::TensorOptions().dtype(at::kByte).pinned_memory(true))
                          : NewHostTensor(n, at::kByte);
  void* data = memory.data_ptr();
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_lent[reinterpret_cast<uintptr_t>(data)] = Lent{static_cast<size_t>(n), memory};
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, n);
  return Napi::ArrayBuffer::New(
      env, data, bytes,
      [](Napi::Env env, void* data, size_t* size) {
        // JS is done with it; an op that borrowed it still holds its own reference.
        {
          std::lock_guard<std::mutex> lock(g_mu);
          g_lent.erase(reinterpret_cast<uintptr_t>(data));
        }
        Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(*size));
        delete size;
      },
      new size_t(static_cast<size_t>(n)));
}

std::optional<at::Tensor> BorrowHostBuffer(const void* data, int64_t numel, at::ScalarType dtype) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  at::Tensor memory;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_lent.upper_bound(begin);
    if (it == g_lent.begin()) return std::nullopt;
    --it;
    if (begin + bytes > it->first + it->second.bytes) return std::nullopt;
    memory = it->second.memory;
  }
  return at::from_blob(
      const_cast<void*>(data), {numel}, [memory](void*) mutable { memory.reset(); },
      at::TensorOptions().dtype(dtype));
}

}  // namespace cxrmask
