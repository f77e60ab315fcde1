#include "pixels.h"

#include <ATen/Parallel.h>
#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include "tensor_bridge.h"

namespace cxrmask {
namespace {

void CheckRecords(const at::Tensor& r) {
  if (r.scalar_type() != at::kByte || r.dim() != 4 || r.size(1) != 2 || r.size(2) != r.size(3)) {
    throw std::invalid_argument("records must be uint8 [n,2,S,S]");
  }
}

// One pass per image: 3 table lookups per pixel, then the few contour pixels again.
at::Tensor RecordsToImagesCpu(const at::Tensor& records, const PixelSpec& spec) {
  const int64_t n = records.size(0), s = records.size(2), hw = s * s;
  const int v = spec.variants();
  auto out = at::empty({v * n, 3, s, s}, at::kFloat);
  std::array<float, 3 * 256> lut;
  std::array<double, 3> inv;
  for (int c = 0; c < 3; ++c) {
    inv[c] = 1.0 / spec.std[c];
    for (int g = 0; g < 256; ++g) lut[c * 256 + g] = (g / 255.0 - spec.mean[c]) * inv[c];
  }
  const uint8_t* in = records.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  std::atomic<int64_t> bad{-1};
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint8_t* gray = in + i * 2 * hw;
      const uint8_t* bits = gray + hw;
      int slot = 0;
      for (int variant = 0; variant < 2; ++variant) {
        const bool paint = variant == 1;
        if (paint ? !spec.masked : !spec.original) continue;
        float* img = dst + (slot * n + i) * 3 * hw;
        ++slot;
        for (int c = 0; c < 3; ++c) {
          const float* l = lut.data() + c * 256;
          float* o = img + c * hw;
          for (int64_t p = 0; p < hw; ++p) o[p] = l[gray[p]];
        }
        if (!paint) continue;
        for (int64_t p = 0; p < hw; ++p) {
          // Bits 0-2: contour per region; bits 3-5: region fill (segmentation targets, not
          // painted).
          if (bits[p] > kMaxMaskByte) {
            bad = i;
            continue;
          }
          const uint8_t b = bits[p] & kContourBits;
          if (b == 0) continue;
          for (int c = 0; c < 3; ++c) {
            double x = gray[p] / 255.0 + static_cast<double>(spec.paint[b * 3 + c]);
            if (x > 1) x = 1;
            img[c * hw + p] = static_cast<float>((x - spec.mean[c]) * inv[c]);
          }
        }
      }
    }
  });
  if (bad >= 0) {
    throw std::invalid_argument("record " + std::to_string(bad.load()) +
                                " has a mask byte above 63 (not a cache record)");
  }
  return out;
}

// On the host, before the copy: reading a device-side check back would wait for the device.
void CheckMaskBytes(const at::Tensor& records) {
  if (records.numel() > 0 && records.select(1, 1).max().item<uint8_t>() > kMaxMaskByte) {
    throw std::invalid_argument("records hold a mask byte above 63 (not cache records)");
  }
}

at::Tensor RecordsToImagesDevice(const at::Tensor& records, const PixelSpec& spec,
                                 const c10::Device& device, CopyFence* fence) {
  CheckMaskBytes(records);
  // Pinned records (host buffers on a GPU machine) copy asynchronously; the batch keeps them alive
  // and the fence keeps the op from settling before the copy has run.
  const bool async = records.is_pinned();
  auto rec = records.to(device, /*non_blocking=*/async);
  if (async && fence) fence->RecordOn(device);
  auto f = at::TensorOptions().dtype(at::kFloat);
  auto mean = at::tensor(std::vector<float>(spec.mean.begin(), spec.mean.end()), f)
                  .view({1, 3, 1, 1})
                  .to(device);
  auto stdv = at::tensor(std::vector<float>(spec.std.begin(), spec.std.end()), f)
                  .view({1, 3, 1, 1})
                  .to(device);
  auto gray = rec.select(1, 0).to(at::kFloat).div_(255).unsqueeze(1);  // [n,1,S,S]
  std::vector<at::Tensor> parts;
  if (spec.original) parts.push_back((gray - mean) / stdv);
  if (spec.masked) {
    auto table = at::from_blob(const_cast<float*>(spec.paint.data()), {8, 3}, f).to(device);
    auto bits = rec.select(1, 1).bitwise_and(kContourBits).to(at::kLong);  // [n,S,S]
    auto add =
        table.index_select(0, bits.flatten()).view({rec.size(0), rec.size(2), rec.size(3), 3});
    auto x = (gray + add.permute({0, 3, 1, 2})).clamp_max(1.0);
    parts.push_back((x - mean) / stdv);
  }
  return parts.size() == 1 ? parts[0].contiguous() : at::cat(parts, 0);
}

}  // namespace

struct CopyFence::Impl {
  c10::Event event;
  explicit Impl(c10::DeviceType type) : event(type) {}
};

void CopyFence::RecordOn(const c10::Device& device) {
  auto impl = std::make_shared<Impl>(device.type());
  const auto* guard = c10::impl::getDeviceGuardImpl(device.type());
  impl->event.record(guard->getStream(device));
  impl_ = std::move(impl);
}

void CopyFence::Wait() {
  if (impl_) impl_->event.synchronize();
  impl_.reset();
}

at::Tensor RecordsToImages(const at::Tensor& records, const PixelSpec& spec,
                           const c10::Device& device, CopyFence* fence) {
  CheckRecords(records);
  if (spec.variants() == 0) throw std::invalid_argument("pixels: no variant requested");
  for (int c = 0; c < 3; ++c) {
    if (!(spec.std[c] > 0)) throw std::invalid_argument("pixels: std must be > 0");
  }
  if (device.is_cpu()) return RecordsToImagesCpu(records.contiguous(), spec);
  return RecordsToImagesDevice(records, spec, device, fence);
}

int64_t ImageBatch::rows() const { return data.size(0) * (pixels ? pixels->variants() : 1); }

at::Tensor ImageBatch::On(const c10::Device& device) const {
  if (pixels) return RecordsToImages(data, *pixels, device, fence.get());
  RequireFinite(data, "input batch");
  if (device.is_cpu() || !data.is_pinned()) return data.to(device);
  auto out = data.to(device, /*non_blocking=*/true);
  fence->RecordOn(device);
  return out;
}

}  // namespace cxrmask
