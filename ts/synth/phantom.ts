/**
 * Procedural chest-radiograph phantoms. A frontal phantom has lungs (dark), a heart (bright), spine,
 * ribs, soft tissue and noise; each finding changes what is drawn the way it looks on a radiograph:
 *  - Cardiomegaly: larger heart (cardiothoracic ratio > 0.5); lungs' medial borders follow it.
 *  - Pleural Effusion: fluid fills a costophrenic angle with a meniscus; the (aerated) lung outline stops at it.
 *  - Consolidation: dense, lobulated airspace opacity in one lung.
 *  - Edema: bilateral perihilar haze with diffuse increased density.
 *  - Atelectasis: plate-like linear opacity at a base with volume loss (raised lung base).
 * Landmarks returned are those a segmenter would give (RL 44, LL 50, H 26), in pixel coordinates.
 * Where each finding is drawn is recorded too (`regions`, FINDING_REGION_BITS) without drawing anything
 * from the random stream, so recording changes no pixel.
 */
import { fillPolygon } from '../masks/raster.js';
import { closedSpline, LUNG_CTRL_UV } from './shapes.js';

export type Rng = () => number;

export interface FindingsShown {
  atelectasis: boolean;
  cardiomegaly: boolean;
  consolidation: boolean;
  edema: boolean;
  effusion: boolean;
}

/** Bit of each finding in Phantom.regions: 1 << its column in FINDINGS (ts/common/labels.ts). */
export const FINDING_REGION_BITS = {
  atelectasis: 1,
  cardiomegaly: 2,
  consolidation: 4,
  edema: 8,
  effusion: 16,
} as const;
/** A pixel belongs to a finding's region where the finding added at least this share of its peak. */
export const REGION_MIN_SHARE = 0.25;

export interface Phantom {
  pixels: Uint8Array;
  /**
   * W×H finding bits (FINDING_REGION_BITS): where each shown finding was drawn (the enlarged heart for
   * cardiomegaly). null for laterals.
   */
  regions: Uint8Array | null;
  width: number;
  height: number;
  /** 240 numbers, integer pixel coordinates; null for laterals. */
  landmarks: Float64Array | null;
}

/** Rib band profile: sin over the first 32 % of a rib period, sampled at 1/800 of a period. */
const RIB_LUT = Float32Array.from({ length: 257 }, (_, k) => Math.sin((Math.min(k, 256) / 256) * Math.PI));
/** Shared table of N(0,1)-ish noise (deterministic), indexed per image from a random start and stride. */
const NOISE = (() => {
  let a = 0x1234567;
  const t = new Float32Array(1 << 16);
  const u = () => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a / 4294967296;
  };
  for (let k = 0; k < t.length; k++) t[k] = (u() + u() + u() + u() - 2) * 1.732;
  return t;
})();

const gauss = (rng: Rng) => {
  // Irwin–Hall approximation of N(0, 1): cheap and deterministic.
  return (rng() + rng() + rng() + rng() - 2) * 1.732;
};
const U = (rng: Rng, a: number, b: number) => a + (b - a) * rng();

function lungOutline(
  rng: Rng,
  lat: number,
  med: number,
  top: number,
  bot: number,
  n: number,
  jitter: number,
  mirror: boolean,
): Float64Array {
  const ctrl: number[] = [];
  const pts = mirror ? [...LUNG_CTRL_UV].reverse() : LUNG_CTRL_UV; // keep clockwise order in image space
  for (const [u, v] of pts) {
    const uu = Math.min(1, Math.max(0, u + jitter * gauss(rng)));
    const vv = Math.min(1, Math.max(0, v + jitter * gauss(rng)));
    ctrl.push(lat + uu * (med - lat), top + vv * (bot - top));
  }
  return closedSpline(ctrl, n);
}

function heartOutline(
  cx: number,
  cy: number,
  a: number,
  b: number,
  rot: number,
  floorY: number,
  n: number,
): Float64Array {
  const out = new Float64Array(2 * n);
  const c = Math.cos(rot);
  const s = Math.sin(rot);
  for (let k = 0; k < n; k++) {
    const t = -Math.PI / 2 + (2 * Math.PI * k) / n;
    // slightly squarer than an ellipse
    const ex = Math.sign(Math.cos(t)) * Math.abs(Math.cos(t)) ** 0.85 * a;
    const ey = Math.sign(Math.sin(t)) * Math.abs(Math.sin(t)) ** 0.9 * b;
    out[2 * k] = cx + ex * c - ey * s;
    out[2 * k + 1] = Math.min(floorY, cy + ex * s + ey * c);
  }
  return out;
}

/** Heart left/right extent at row y (scanning the polygon), or null. */
function rowExtent(poly: Float64Array, y: number): [number, number] | null {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  const n = poly.length >> 1;
  for (let k = 0; k < n; k++) {
    const k1 = (k + 1) % n;
    const y0 = poly[2 * k + 1];
    const y1 = poly[2 * k1 + 1];
    if ((y0 <= y && y < y1) || (y1 <= y && y < y0)) {
      const x = poly[2 * k] + ((y - y0) * (poly[2 * k1] - poly[2 * k])) / (y1 - y0);
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  }
  return lo <= hi ? [lo, hi] : null;
}

/** Where the thorax sits in the frame (pixels): every later step places itself relative to these. */
interface Thorax {
  /** Midline x. */
  mx: number;
  halfThorax: number;
  /** Lung apex and base rows. */
  top: number;
  bot: number;
  /** Half the mediastinal gap between the lungs' medial borders. */
  gap: number;
}

/** The image being drawn (float, unclamped) and its size. */
interface Canvas {
  img: Float32Array;
  W: number;
  H: number;
  /** Finding bits per pixel (Phantom.regions); written, never read while drawing. */
  regions: Uint8Array;
}

/** Outlines (landmark order) and their filled masks. */
interface Anatomy {
  heart: Float64Array;
  rl: Float64Array;
  ll: Float64Array;
  heartMask: Uint8Array;
  rlMask: Uint8Array;
  llMask: Uint8Array;
  /** Atelectasis raised the left base (else the right one, when atelectasis is shown). */
  volLossL: boolean;
}

/** A lung's aerated part (mask) and its lateral/medial x: where findings are drawn. */
interface AeratedLung {
  mask: Uint8Array;
  lat: number;
  med: number;
}

/**
 * A frontal phantom. The steps draw from `rng` in a fixed order (geometry, outlines, body, lungs,
 * markings, heart, findings, distractors, exposure): keep it, or every seeded image changes.
 */
export function renderFrontal(rng: Rng, W: number, H: number, f: FindingsShown, ap: boolean): Phantom {
  const c: Canvas = { img: new Float32Array(W * H), W, H, regions: new Uint8Array(W * H) };
  const t = placeThorax(rng, W, H);
  const a = drawOutlines(rng, W, H, t, f, ap);
  if (f.cardiomegaly)
    for (let p = 0; p < W * H; p++) c.regions[p] |= a.heartMask[p] * FINDING_REGION_BITS.cardiomegaly;
  paintBody(rng, c, t);
  const air = paintLungs(rng, c, t, a);
  paintMarkings(rng, c, a);
  paintHeart(rng, c, t, a, air);
  const lungs = aeratedLungs(W, H, t, a);
  if (f.edema) paintEdema(rng, c, t, lungs);
  if (f.consolidation) paintConsolidation(rng, c, t, lungs);
  const annotated = [a.rl, a.ll].map((p) => Float64Array.from(p));
  if (f.effusion) paintEffusion(rng, c, t, lungs, annotated);
  if (f.atelectasis) paintAtelectasis(rng, c, t, lungs[a.volLossL ? 1 : 0]);
  paintDistractors(rng, c, t, lungs);
  const pixels = expose(rng, c, ap);
  return {
    pixels,
    regions: c.regions,
    width: W,
    height: H,
    landmarks: roundedLandmarks(annotated[0], annotated[1], a.heart),
  };
}

/** Patient position and build vary per image (midline, thorax width, vertical shift). */
function placeThorax(rng: Rng, W: number, H: number): Thorax {
  const mx = W * (0.5 + 0.02 * gauss(rng));
  const halfThorax = W * U(rng, 0.35, 0.41);
  const shiftY = H * U(rng, -0.025, 0.025);
  const top = H * U(rng, 0.09, 0.15) + shiftY;
  const bot = H * U(rng, 0.69, 0.79) + shiftY;
  const gap = W * U(rng, 0.045, 0.065);
  return { mx, halfThorax, top, bot, gap };
}

/** Heart, then lungs whose medial borders give way to it: the shapes the landmarks describe. */
function drawOutlines(rng: Rng, W: number, H: number, t: Thorax, f: FindingsShown, ap: boolean): Anatomy {
  const { mx, halfThorax, top, bot, gap } = t;
  const thoraxW = 2 * halfThorax;
  let ctr = f.cardiomegaly ? U(rng, 0.53, 0.66) : U(rng, 0.37, 0.49);
  if (ap) ctr *= 1.05; // AP magnifies the heart a little (a known confounder)
  const ha = (ctr * thoraxW) / 2;
  const hb = H * U(rng, 0.13, 0.16) * (f.cardiomegaly ? 1.1 : 1);
  const hcx = mx + W * 0.035 + ha * 0.12;
  const hcy = top + (bot - top) * 0.74;
  const floorY = bot - (bot - top) * 0.03;
  const heart = heartOutline(hcx, hcy, ha, hb, U(rng, -0.35, -0.15), floorY, 26);

  // Anatomical lungs (image-left = patient's right lung).
  const jit = 0.012;
  const volLossR = f.atelectasis && rng() < 0.5;
  const volLossL = f.atelectasis && !volLossR;
  const rl = lungOutline(
    rng,
    mx - halfThorax,
    mx - gap,
    top,
    bot - (volLossR ? 0.08 * (bot - top) : 0),
    44,
    jit,
    false,
  );
  const ll = lungOutline(
    rng,
    mx + halfThorax,
    mx + gap,
    top + 0.01 * H,
    bot - (volLossL ? 0.08 * (bot - top) : 0),
    50,
    jit,
    true,
  );
  // Medial borders give way to the heart (with a little overlap, as segmentations do).
  const overlap = W * 0.015;
  for (const [poly, side] of [
    [rl, -1],
    [ll, 1],
  ] as const) {
    for (let k = 0; k < poly.length; k += 2) {
      const ext = rowExtent(heart, poly[k + 1]);
      if (!ext) continue;
      if (side < 0 && poly[k] > ext[0] + overlap && poly[k] < mx) poly[k] = ext[0] + overlap;
      if (side > 0 && poly[k] < ext[1] - overlap && poly[k] > mx) poly[k] = ext[1] - overlap;
    }
  }
  const rlMask = fillPolygon(rl, W, H, new Uint8Array(W * H));
  const llMask = fillPolygon(ll, W, H, new Uint8Array(W * H));
  const heartMask = fillPolygon(heart, W, H, new Uint8Array(W * H));
  return { heart, rl, ll, heartMask, rlMask, llMask, volLossL };
}

/** Base image: background, body, spine, abdomen. */
function paintBody(rng: Rng, { img, W, H }: Canvas, { mx, bot }: Thorax): void {
  const bodyA = W * U(rng, 0.47, 0.52);
  const bodyB = H * 0.66;
  const bodyCy = H * 0.52;
  const soft = U(rng, 125, 150);
  const bg = U(rng, 8, 25);
  const spineHalf = W * 0.045;
  for (let i = 0; i < H; i++) {
    const dy = (i - bodyCy) / bodyB;
    for (let j = 0; j < W; j++) {
      const dx = (j - mx) / bodyA;
      const r = dx * dx + dy * dy;
      let v = r < 1 ? soft + 25 * (1 - r) : bg;
      if (r >= 1 && r < 1.08) v = bg + (soft - bg) * (1 - (r - 1) / 0.08);
      const ds = Math.abs(j - mx) / spineHalf;
      if (ds < 1 && r < 1) v += 28 * (1 - ds * ds);
      if (i > bot && r < 1) v += 12;
      img[i * W + j] = v;
    }
  }
}

/** Air darkness of row i: denser towards apex and base. paintHeart cancels exactly this. */
function rowDarkness(air: number, { top, bot }: Thorax, i: number): number {
  const vv = (i - top) / (bot - top);
  return air * (0.85 + 0.15 * Math.sin(Math.PI * Math.min(1, Math.max(0, vv))));
}

/** Lungs: air is dark; posterior ribs cross them (fainter outside). Returns the air level. */
function paintLungs(rng: Rng, { img, W, H }: Canvas, t: Thorax, { rlMask, llMask }: Anatomy): number {
  const { mx, halfThorax, top, bot } = t;
  const air = U(rng, 85, 105);
  const ribSp = (bot - top) / U(rng, 8.5, 10);
  const ribAmp = U(rng, 14, 24);
  const dx2 = new Float32Array(W); // squared lateral distance from the midline, per column
  for (let j = 0; j < W; j++) dx2[j] = ((j - mx) / halfThorax) ** 2;
  const bend = (0.22 * (bot - top)) / ribSp;
  for (let i = 0; i < H; i++) {
    const vv = (i - top) / (bot - top);
    const dark = rowDarkness(air, t, i);
    const ribRow = vv > -0.05 && vv < 1.05;
    const base = (i - top) / ribSp;
    for (let j = 0; j < W; j++) {
      const p = i * W + j;
      const inLung = rlMask[p] | llMask[p];
      if (inLung) img[p] -= dark;
      // Posterior ribs: arcs descending laterally.
      if (ribRow && dx2[j] < 1.1025) {
        const phase = base - bend * dx2[j];
        const fr = phase - Math.floor(phase);
        if (fr < 0.32) img[p] += RIB_LUT[(fr * 800) | 0] * (inLung ? ribAmp : ribAmp * 0.35);
      }
    }
  }
  return air;
}

/** Lung markings: a few random low-frequency waves inside the lungs (anatomical variability). */
function paintMarkings(rng: Rng, { img, W, H }: Canvas, { rlMask, llMask }: Anatomy): void {
  const waves = Array.from({ length: 4 }, () => ({
    kx: (U(rng, 2, 7) * 2 * Math.PI) / W,
    ky: (U(rng, 2, 7) * 2 * Math.PI) / H,
    ph: U(rng, 0, 2 * Math.PI),
    a: U(rng, 1.5, 4),
  }));
  // sin(kx·j + ph + ky·i) = sin(kx·j + ph)·cos(ky·i) + cos(kx·j + ph)·sin(ky·i): per-column tables.
  const sinC = new Float32Array(W * waves.length);
  const cosC = new Float32Array(W * waves.length);
  waves.forEach((wv, k) => {
    for (let j = 0; j < W; j++) {
      sinC[k * W + j] = wv.a * Math.sin(wv.kx * j + wv.ph);
      cosC[k * W + j] = wv.a * Math.cos(wv.kx * j + wv.ph);
    }
  });
  const cy = new Float32Array(waves.length);
  const sy = new Float32Array(waves.length);
  for (let i = 0; i < H; i++) {
    for (let k = 0; k < waves.length; k++) {
      cy[k] = Math.cos(waves[k].ky * i);
      sy[k] = Math.sin(waves[k].ky * i);
    }
    for (let j = 0; j < W; j++) {
      const p = i * W + j;
      if (!(rlMask[p] | llMask[p])) continue;
      let v = 0;
      for (let k = 0; k < waves.length; k++) v += sinC[k * W + j] * cy[k] + cosC[k * W + j] * sy[k];
      img[p] += v;
    }
  }
}

/** Heart over everything in the mediastinum; inside the lungs it first cancels the air darkness. */
function paintHeart(rng: Rng, { img, W, H }: Canvas, t: Thorax, a: Anatomy, air: number): void {
  const { heartMask, rlMask, llMask } = a;
  const heartAdd = U(rng, 60, 75);
  for (let i = 0; i < H; i++) {
    const dark = rowDarkness(air, t, i);
    for (let j = 0; j < W; j++) {
      const p = i * W + j;
      if (heartMask[p]) img[p] += (rlMask[p] | llMask[p] ? dark : 0) + heartAdd * 0.5;
    }
  }
}

/** Findings live in the aerated lung, not behind the heart. [right, left]. */
function aeratedLungs(W: number, H: number, { mx, halfThorax, gap }: Thorax, a: Anatomy): AeratedLung[] {
  const rlAir = new Uint8Array(W * H);
  const llAir = new Uint8Array(W * H);
  for (let p = 0; p < W * H; p++) {
    rlAir[p] = a.rlMask[p] & (a.heartMask[p] ^ 1);
    llAir[p] = a.llMask[p] & (a.heartMask[p] ^ 1);
  }
  return [
    { mask: rlAir, lat: mx - halfThorax, med: mx - gap },
    { mask: llAir, lat: mx + halfThorax, med: mx + gap },
  ];
}

/**
 * Adds a separable Gaussian opacity (3σ box), only where `mask` is set when one is given; marks `bit`
 * in the regions where it adds at least REGION_MIN_SHARE of `amp`.
 */
function addBlob(
  { img, W, H, regions }: Canvas,
  cx: number,
  cy: number,
  sx: number,
  sy: number,
  amp: number,
  mask: Uint8Array | null,
  bit = 0,
): void {
  const min = REGION_MIN_SHARE * amp;
  const x0 = Math.max(0, Math.floor(cx - 3 * sx));
  const x1 = Math.min(W - 1, Math.ceil(cx + 3 * sx));
  const y0 = Math.max(0, Math.floor(cy - 3 * sy));
  const y1 = Math.min(H - 1, Math.ceil(cy + 3 * sy));
  if (x1 < x0) return;
  const ex = new Float32Array(x1 - x0 + 1); // separable Gaussian
  for (let j = x0; j <= x1; j++) ex[j - x0] = Math.exp(-0.5 * ((j - cx) / sx) ** 2);
  for (let i = y0; i <= y1; i++) {
    const ey = amp * Math.exp(-0.5 * ((i - cy) / sy) ** 2);
    for (let j = x0; j <= x1; j++) {
      const p = i * W + j;
      if (mask && !mask[p]) continue;
      const v = ey * ex[j - x0];
      img[p] += v;
      if (v >= min) regions[p] |= bit;
    }
  }
}

/** Edema: bilateral perihilar haze, Kerley-like lines at the bases, diffuse extra density. */
function paintEdema(rng: Rng, c: Canvas, { top, bot }: Thorax, lungs: AeratedLung[]): void {
  const { img, W, H } = c;
  const amp = U(rng, 35, 55);
  for (const L of lungs) {
    const cx = L.lat + 0.72 * (L.med - L.lat);
    const cy = top + 0.5 * (bot - top);
    addBlob(
      c,
      cx,
      cy,
      Math.abs(L.med - L.lat) * 0.32,
      (bot - top) * 0.22,
      amp,
      L.mask,
      FINDING_REGION_BITS.edema,
    );
    // Kerley-like short lines at the lateral bases.
    for (let k = 0; k < 4; k++) {
      const y = Math.round(top + (0.72 + 0.05 * k) * (bot - top));
      const xa = L.lat + (L.med - L.lat) * 0.05;
      const len = Math.abs(L.med - L.lat) * 0.18;
      const dir = Math.sign(L.med - L.lat);
      for (let t = 0; t < len; t++) {
        const j = Math.round(xa + dir * t);
        if (y >= 0 && y < H && j >= 0 && j < W && L.mask[y * W + j]) {
          img[y * W + j] += 22;
          c.regions[y * W + j] |= FINDING_REGION_BITS.edema;
        }
      }
    }
  }
  const [r, l] = lungs;
  for (let p = 0; p < W * H; p++) if (r.mask[p] | l.mask[p]) img[p] += 10;
}

/** Consolidation: a few overlapping blobs (lobulated opacity) in one lung. */
function paintConsolidation(rng: Rng, c: Canvas, { top, bot }: Thorax, lungs: AeratedLung[]): void {
  const L = lungs[rng() < 0.5 ? 0 : 1];
  const lobes = 2 + Math.floor(rng() * 3);
  const cu = U(rng, 0.3, 0.7);
  const cv = U(rng, 0.45, 0.82);
  const base = Math.abs(L.med - L.lat);
  const amp = U(rng, 55, 85);
  for (let k = 0; k < lobes; k++) {
    const cx = L.lat + (cu + 0.12 * gauss(rng)) * (L.med - L.lat);
    const cy = top + (cv + 0.07 * gauss(rng)) * (bot - top);
    addBlob(
      c,
      cx,
      cy,
      base * U(rng, 0.14, 0.24),
      (bot - top) * U(rng, 0.08, 0.14),
      (amp / Math.sqrt(lobes)) * 1.4,
      L.mask,
      FINDING_REGION_BITS.consolidation,
    );
  }
}

/**
 * Effusion: fluid under a meniscus in one or both costophrenic angles. `annotated` (the lung
 * landmarks) is lifted onto the meniscus, as a segmenter follows the aerated lung.
 */
function paintEffusion(
  rng: Rng,
  { img, W, H, regions }: Canvas,
  { top, bot }: Thorax,
  lungs: AeratedLung[],
  annotated: Float64Array[],
): void {
  const sides = rng() < 0.35 ? [0, 1] : [rng() < 0.5 ? 0 : 1];
  for (const s of sides) {
    const L = lungs[s];
    const level = top + U(rng, 0.64, 0.8) * (bot - top);
    const rise = U(rng, 0.08, 0.14) * (bot - top);
    const span = L.med - L.lat;
    const meniscus = (x: number) => level - rise * Math.max(0, 1 - (x - L.lat) / span) ** 2;
    const amp = U(rng, 70, 95);
    const men = new Float32Array(W);
    for (let j = 0; j < W; j++) men[j] = meniscus(j);
    for (let i = Math.max(0, Math.floor(level - rise - 4)); i < H; i++) {
      for (let j = 0; j < W; j++) {
        const p = i * W + j;
        if (!L.mask[p]) continue;
        const d = i - men[j];
        if (d <= -4) continue;
        const share = Math.min(1, (d + 4) / 8);
        img[p] += amp * share;
        if (share >= REGION_MIN_SHARE) regions[p] |= FINDING_REGION_BITS.effusion;
      }
    }
    // The segmenter follows the aerated lung: points below the meniscus are lifted onto it.
    const a = annotated[s];
    for (let k = 0; k < a.length; k += 2) {
      const m = meniscus(a[k]);
      if (a[k + 1] > m) a[k + 1] = m;
    }
  }
}

/** Atelectasis: a plate-like linear band plus a faint blob at the base whose volume was lost. */
function paintAtelectasis(rng: Rng, c: Canvas, { top, bot }: Thorax, L: AeratedLung): void {
  const { img, W, H } = c;
  const span = L.med - L.lat;
  const y0 = top + U(rng, 0.55, 0.68) * (bot - top);
  const tilt = U(rng, -0.06, 0.1) * (bot - top);
  const thick = H * U(rng, 0.018, 0.03);
  const amp = U(rng, 55, 80);
  for (
    let i = Math.max(0, Math.floor(y0 - 0.2 * (bot - top)));
    i < Math.min(H, y0 + 0.25 * (bot - top));
    i++
  ) {
    for (let j = 0; j < W; j++) {
      const p = i * W + j;
      if (!L.mask[p]) continue;
      const u = (j - L.lat) / span;
      if (u < 0.12 || u > 0.9) continue;
      const yl = y0 + tilt * u;
      const share = Math.exp(-0.5 * ((i - yl) / thick) ** 2);
      img[p] += amp * share;
      if (share >= REGION_MIN_SHARE) c.regions[p] |= FINDING_REGION_BITS.atelectasis;
    }
  }
  addBlob(
    c,
    L.lat + 0.5 * span,
    y0 + 0.12 * (bot - top),
    Math.abs(span) * 0.25,
    (bot - top) * 0.07,
    25,
    L.mask,
    FINDING_REGION_BITS.atelectasis,
  );
}

/** Distractors every image may have (vessels seen end-on, nipple shadows): small soft opacities. */
function paintDistractors(rng: Rng, c: Canvas, { top, bot }: Thorax, lungs: AeratedLung[]): void {
  const nDistract = Math.floor(rng() * 4);
  for (let k = 0; k < nDistract; k++) {
    const L = lungs[rng() < 0.5 ? 0 : 1];
    const cx = L.lat + U(rng, 0.2, 0.8) * (L.med - L.lat);
    const cy = top + U(rng, 0.3, 0.85) * (bot - top);
    const r = c.W * U(rng, 0.02, 0.05);
    addBlob(c, cx, cy, r, r, U(rng, 12, 28), L.mask);
  }
}

/** Exposure (gain, offset), noise (AP films are noisier) and quantisation to 8 bits. */
function expose(rng: Rng, { img, W, H }: Canvas, ap: boolean): Uint8Array {
  const gain = U(rng, 0.88, 1.12);
  const offset = U(rng, -12, 12);
  const sigma = ap ? U(rng, 5, 9) : U(rng, 3, 7);
  const pixels = new Uint8Array(W * H);
  let q = Math.floor(rng() * NOISE.length);
  const stride = 1 + 2 * Math.floor(rng() * 1000); // odd: visits the whole table
  for (let p = 0; p < W * H; p++) {
    q = (q + stride) & 0xffff;
    const v = img[p] * gain + offset + sigma * NOISE[q];
    pixels[p] = Math.max(0, Math.min(255, v));
  }
  return pixels;
}

/** The 240 landmark numbers (RL 44, LL 50, H 26 points) rounded to whole pixels, as CheXmask stores them. */
function roundedLandmarks(rl: Float64Array, ll: Float64Array, heart: Float64Array): Float64Array {
  const landmarks = new Float64Array(240);
  landmarks.set(rl, 0);
  landmarks.set(ll, 88);
  landmarks.set(heart, 188);
  for (let k = 0; k < 240; k++) landmarks[k] = Math.round(landmarks[k]);
  return landmarks;
}

export function renderLateral(rng: Rng, W: number, H: number, f: FindingsShown): Phantom {
  const img = new Float32Array(W * H);
  const cx = W * (0.5 + 0.02 * gauss(rng));
  const cy = H * 0.5;
  const bodyA = W * 0.44;
  const bodyB = H * 0.6;
  const lungA = W * 0.3;
  const lungB = H * 0.3;
  const lcy = H * 0.42;
  const heartX = cx - W * 0.12;
  const heartR = W * (f.cardiomegaly ? 0.2 : 0.15);
  const soft = U(rng, 130, 155);
  for (let i = 0; i < H; i++) {
    for (let j = 0; j < W; j++) {
      const r = ((j - cx) / bodyA) ** 2 + ((i - cy) / bodyB) ** 2;
      let v = r < 1 ? soft : 15;
      const rl = ((j - cx) / lungA) ** 2 + ((i - lcy) / lungB) ** 2;
      if (rl < 1) v -= 70 * (1 - 0.3 * rl);
      const rh = ((j - heartX) / heartR) ** 2 + ((i - lcy - lungB * 0.45) / (heartR * 1.1)) ** 2;
      if (rh < 1) v += 45;
      if (Math.abs(j - (cx + W * 0.3)) < W * 0.04 && r < 1) v += 35; // spine
      if (f.effusion && rl < 1 && i > lcy + lungB * 0.7) v += 55;
      if ((f.consolidation || f.edema) && rl < 0.5) v += 20;
      img[i * W + j] = v + 5 * (rng() + rng() - 1);
    }
  }
  const pixels = new Uint8Array(W * H);
  for (let p = 0; p < W * H; p++) pixels[p] = Math.max(0, Math.min(255, img[p]));
  return { pixels, regions: null, width: W, height: H, landmarks: null };
}

/** Moves landmarks by a smooth random field: what a poor segmentation (low RCA) looks like. */
export function perturbLandmarks(
  rng: Rng,
  lm: Float64Array,
  W: number,
  H: number,
  strength: number,
): Float64Array {
  const out = Float64Array.from(lm);
  const ax = strength * W * gauss(rng);
  const ay = strength * H * gauss(rng);
  const ph = rng() * Math.PI * 2;
  for (let k = 0; k < out.length; k += 2) {
    const t = k / out.length;
    out[k] = Math.round(out[k] + ax * Math.sin(2 * Math.PI * 3 * t + ph));
    out[k + 1] = Math.round(out[k + 1] + ay * Math.cos(2 * Math.PI * 2 * t + ph));
  }
  return out;
}
