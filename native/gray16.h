// 16-bit gray samples (a decoded 16-bit PNG) scaled to 0–255 from their real bit depth. A plain
// loop over every pixel: it runs on a libuv pool thread (Gray16Worker), not on the JS thread,
// where it stalled the event loop for ≈40–60 ms at 2500×3000, up to ≈1 s at 49 MP. Below it,
// the two per-pixel passes of DICOM decoding (ts/images/dicom.ts), moved off for the same reason.
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

// DICOM stored cells as codes, on a libuv pool thread (DicomCodesWorker) for the same reason.
// A cell's code is (cell >> shift) & mask with the shift done on a signed 32-bit int, exactly
// as JavaScript's `>>` (arithmetic on negative Int16 cells). `T`: (u)int8_t or (u)int16_t.
// Sets codes[code] = 1 for each code present; `codes` holds mask + 1 bytes, zeroed by the caller.
template <typename T>
void DicomCodesPresent(const T* cells, size_t n, int shift, uint32_t mask, uint8_t* codes) {
  for (size_t i = 0; i < n; ++i) codes[(static_cast<int32_t>(cells[i]) >> shift) & mask] = 1;
}

// out[i] = lut[code of cells[i]]; `lut` holds mask + 1 bytes.
template <typename T>
void DicomApplyLut(const T* cells, size_t n, int shift, uint32_t mask, const uint8_t* lut,
                   uint8_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = lut[(static_cast<int32_t>(cells[i]) >> shift) & mask];
}

}  // namespace cxrmask
