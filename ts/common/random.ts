/** Deterministic 32-bit PRNG (mulberry32): seeds data splits, synthetic data and bootstrap resampling. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates with the shared mulberry32 PRNG. */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const a = xs.slice();
  const r = mulberry32(seed);
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The shuffle seed of one epoch: every epoch (and every run of it, on any rank) gets the same order. */
export const epochSeed = (seed: number, epoch: number) => (seed * 1_000_003 + epoch * 7919 + 17) >>> 0;
