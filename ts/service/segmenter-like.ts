/**
 * What the predictor and the service need of a lung/heart segmenter: one definition, satisfied by the
 * addon-backed Segmenter (ts/model/segmenter.ts) and by anything else that returns region bits on the
 * classifier's grid.
 */
export interface SegmenterLike {
  /** Model grid side S (the classifier's image size). */
  readonly size: number;
  /**
   * Region bit masks [n,S,S] uint8 — bit 1 right lung, 2 left lung, 4 heart (REGION_BITS in
   * ts/masks/overlay.ts) — from normalised [n,3,S,S] float32 images (the classifier's preprocessing).
   */
  predictMasks(x: Float32Array, n: number): Promise<Uint8Array>;
  dispose(): Promise<void>;
}
