// What data-parallel training needs from a process group, seen from the classifier: sums across
// replicas and a broadcast from rank 0. The classifier does not depend on c10d; distributed.cc
// implements this over torch.distributed's C++ engine.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace cxrmask {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In place: every tensor becomes the sum of its replicas (flattened into buckets per dtype).
  virtual void AllReduceSum(const std::vector<at::Tensor>& tensors) = 0;
  // In place: every tensor becomes rank 0's copy.
  virtual void BroadcastFromRoot(const std::vector<at::Tensor>& tensors) = 0;
};

}  // namespace cxrmask
