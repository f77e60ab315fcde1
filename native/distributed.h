// A process group over torch.distributed's C++ engine (c10d): rendezvous through a TCPStore that
// rank 0 hosts at MASTER_ADDR:MASTER_PORT, collectives through ProcessGroupGloo (CPU tensors) or
// ProcessGroupNCCL (CUDA tensors, only in builds with USE_C10D_NCCL). Errors become
// DistributedError with a code: ERR_DIST_TIMEOUT (a peer did not answer within timeoutMs),
// ERR_DIST_PEER (a peer closed its connection, e.g. it died), ERR_DIST (anything else),
// ERR_DIST_UNAVAILABLE (the backend is not built in).
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <vector>

#include "gradient_sync.h"

namespace cxrmask {

class DistributedError : public std::runtime_error {
 public:
  DistributedError(const std::string& message, std::string code)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// Every field is set from the JS option object (js_distributed.cc, filled in by
// ts/model/process-group.ts).
struct GroupOptions {
  int rank{};
  int world_size{};
  std::string master_addr;
  int master_port{};
  std::string backend;  // gloo | nccl
  int64_t timeout_ms{};
  std::string device;  // where collective tensors live (nccl: cuda:LOCAL_RANK)
};

// A 1-rank group runs every collective too (no shortcut): it measures the fixed per-step cost of
// data parallelism on one device (scripts/gpu-check.mjs) and tests the same code path.
class DistributedGroup : public GradientSync {
 public:
  // Blocks until all world_size ranks joined (or timeout_ms passed).
  static std::shared_ptr<DistributedGroup> Create(const GroupOptions& opts);
  ~DistributedGroup() override;

  int rank() const override { return opts_.rank; }
  int world_size() const override { return opts_.world_size; }
  const GroupOptions& options() const { return opts_; }
  const c10::Device& device() const { return device_; }
  // The compute thread collectives run on (compute_thread.h): the device's.
  std::string device_key() const { return device_.str(); }

  void AllReduceSum(const std::vector<at::Tensor>& tensors) override;
  void BroadcastFromRoot(const std::vector<at::Tensor>& tensors) override;
  // timeout_ms > 0: this barrier waits that long instead of the group timeout (a rank waiting
  // while rank 0 alone builds a cache or writes reports; a dead peer still fails at once).
  void Barrier(int64_t timeout_ms = 0);
  // Ends the group: later collectives throw; peers waiting on us see a closed connection.
  void Shutdown();
  bool closed() const { return !backend_; }

 private:
  explicit DistributedGroup(const GroupOptions& opts);
  template <typename F>
  void Guarded(const char* what, F&& fn);

  GroupOptions opts_;
  c10::Device device_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
};

// Backend factories: distributed.cc (gloo), distributed_nccl.cc (nccl).
c10::intrusive_ptr<c10d::Backend> MakeGlooBackend(const c10::intrusive_ptr<c10d::Store>& store,
                                                  const GroupOptions& opts);
c10::intrusive_ptr<c10d::Backend> MakeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store,
                                                  const GroupOptions& opts);
bool GlooAvailable();
bool NcclAvailable();

}  // namespace cxrmask
