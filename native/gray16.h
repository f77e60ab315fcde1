// 16-bit gray samples (a decoded 16-bit PNG) scaled to 0–255 from their real bit depth. A plain
// loop over every pixel: it runs on a libuv pool thread (Gray16Worker), not on the JS thread,
// where it stalled the event loop for ≈40–60 ms at 2500×3000, up to ≈1 s at 49 MP.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cxrmask {

// The bits the samples are scaled from (ts/images/bit-depth.ts states the rules). `sbit`: the
// PNG's sBIT value, 0 when it has none. Without one, the fewest bits (at least 8) holding the
// largest sample. With one, samples above 2^sbit - 1 or whose low 16 - sbit bits are all zero
// (the PNG spec's scaled-up layout) read as 16 bits, others as `sbit` bits.
int SampleBits(const uint16_t* samples, size_t n, int sbit);

// Writes min(255, round(v * 255 / (2^bits - 1))) of each sample to `out` (the same double
// arithmetic as JavaScript's Math.round, byte for byte); returns `bits` (SampleBits).
int Gray16To8(const uint16_t* samples, size_t n, int sbit, uint8_t* out);

}  // namespace cxrmask
