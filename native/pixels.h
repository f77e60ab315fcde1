// Cache records -> normalised image tensors (the paper's Eq. 1 paint + mean/std), done where the
// model runs: a fused loop on CPU, tensor ops on CUDA. A record is what the image cache stores for
// one image: an S×S uint8 gray plane followed by an S×S mask plane: bits 0-2 the contour of each
// region (1 right lung, 2 left lung, 4 heart), bits 3-5 the same regions filled (the segmenter's
// training targets and the anatomy masks of attribution; never painted). Handing records instead of
// float32 RGB cuts host work and host->device bytes by 6×.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <array>
#include <memory>
#include <optional>

namespace cxrmask {

constexpr uint8_t kContourBits = 7;   // bits 0-2 of the mask plane
constexpr uint8_t kFillShift = 3;     // bits 3-5: region fill
constexpr uint8_t kMaxMaskByte = 63;  // anything above is not a cache record

struct PixelSpec {
  std::array<double, 3> mean{};
  std::array<double, 3> std{};
  // paint[b*3+c]: what contour bits b add to channel c (α·colour summed over the regions in b).
  std::array<float, 24> paint{};
  bool original = true;  // emit the unpainted image
  bool masked = false;   // emit the painted image (after the original ones when both are set)
  int variants() const { return (original ? 1 : 0) + (masked ? 1 : 0); }
};

// Marks when the device has finished reading host memory an op was given (an asynchronous copy from
// pinned memory): the op settles only after it, so JS may write into that memory again as soon as
// the promise has settled, while the op itself never waits for the device before its last kernel.
class CopyFence {
 public:
  void RecordOn(const c10::Device& device);
  void Wait();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// records: uint8 [n,2,S,S] on CPU. Returns float32 [variants*n,3,S,S] on `device`: the original
// images first, then the masked ones. On CPU the values equal TypeScript's planeToTensor exactly
// (same double arithmetic); on CUDA they are computed in float32 (|diff| < 1e-6). The mask bytes
// are checked on the host before the copy, so the device is never waited for. `fence`, when given,
// is recorded after an asynchronous copy.
at::Tensor RecordsToImages(const at::Tensor& records, const PixelSpec& spec,
                           const c10::Device& device, CopyFence* fence = nullptr);

// What a model op receives: float32 tensors as they are, or cache records plus how to paint them.
struct ImageBatch {
  at::Tensor data;
  std::optional<PixelSpec> pixels;
  // Input rows: records count once per variant.
  int64_t rows() const;
  // Float32 images (or features) on `device`, checked for NaN/Inf when they came as floats.
  at::Tensor On(const c10::Device& device) const;
  // Waits until the device has read the host memory On() copied from asynchronously (pinned
  // input); returns at once otherwise. Called at the end of an op that does not read its output.
  void Settle() const { fence->Wait(); }
  std::shared_ptr<CopyFence> fence = std::make_shared<CopyFence>();
};

}  // namespace cxrmask
