#include "gray16.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace cxrmask {
namespace {
int BitsFor(uint32_t max) {
  int bits = 8;
  while (bits < 16 && max > (1u << bits) - 1) ++bits;
  return bits;
}
}  // namespace

int SampleBits(const uint16_t* samples, size_t n, int sbit) {
  uint32_t max = 0;
  uint32_t low = 0;
  const uint32_t low_mask = sbit > 0 && sbit < 16 ? (1u << (16 - sbit)) - 1 : 0;
  for (size_t i = 0; i < n; ++i) {
    max = std::max<uint32_t>(max, samples[i]);
    low |= samples[i] & low_mask;
  }
  if (sbit == 0) return BitsFor(max);
  if (max > (1u << sbit) - 1 || (low == 0 && max > 0)) return 16;
  return sbit;
}

int Gray16To8(const uint16_t* samples, size_t n, int sbit, uint8_t* out) {
  const int bits = SampleBits(samples, n, sbit);
  const double k = 255.0 / static_cast<double>((1u << bits) - 1);
  std::array<uint8_t, 65536> lut;
  // std::round and Math.round agree on non-negative values (halves round up in both)
  for (uint32_t v = 0; v < lut.size(); ++v)
    lut[v] = static_cast<uint8_t>(std::min(255.0, std::round(v * k)));
  for (size_t i = 0; i < n; ++i) out[i] = lut[samples[i]];
  return bits;
}

}  // namespace cxrmask
