/**
 * Attribution figure: the input image, then each map as a heat overlay on the image it explains, with
 * one colour bar. All maps share one scale (the 99th percentile of their union) so that panels compare.
 */
import sharp from 'sharp';

/** Black → red → yellow → white ramp (perceptually ordered, readable in grayscale print). */
export function heat(t: number): [number, number, number] {
  const v = Math.min(1, Math.max(0, t));
  return [Math.min(1, 3 * v), Math.min(1, Math.max(0, 3 * v - 1)), Math.max(0, 3 * v - 2)].map((c) =>
    Math.round(255 * c),
  ) as [number, number, number];
}

/** The q-quantile of |values| over every map (the shared colour scale's top). */
export function sharedScale(maps: ArrayLike<number>[], q = 0.99): number {
  const all: number[] = [];
  for (const m of maps) for (let i = 0; i < m.length; i += 1) all.push(Math.abs(m[i]!));
  all.sort((a, b) => a - b);
  return all.length ? all[Math.min(all.length - 1, Math.floor(q * all.length))]! || 1 : 1;
}

export interface Panel {
  /** RGB bytes [S,S,3] of the image under the map. */
  rgb: Uint8Array;
  /** [S,S] attribution map, or null for a plain image panel. */
  map: ArrayLike<number> | null;
  title: string;
}

const escXml = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** PNG bytes: panels side by side (titles above), then a colour bar from 0 to `scale`. */
export async function attributionFigure(
  panels: Panel[],
  size: number,
  scale: number,
  alpha = 0.6,
): Promise<Buffer> {
  const gap = 8;
  const top = 22;
  const barW = 14;
  const width = panels.length * (size + gap) + barW + 60;
  const height = size + top + 4;
  const img = Buffer.alloc(width * height * 3, 255);
  panels.forEach((p, k) => {
    const x0 = k * (size + gap);
    for (let i = 0; i < size; i++)
      for (let j = 0; j < size; j++) {
        const s = (i * size + j) * 3;
        const d = ((i + top) * width + x0 + j) * 3;
        let rgb: number[] = [p.rgb[s]!, p.rgb[s + 1]!, p.rgb[s + 2]!];
        if (p.map) {
          const t = Math.abs(p.map[i * size + j]!) / scale;
          const h = heat(t);
          const a = alpha * Math.min(1, t * 1.5); // weak attribution stays see-through
          rgb = rgb.map((c, ch) => Math.round((1 - a) * c + a * h[ch]!));
        }
        img[d] = rgb[0]!;
        img[d + 1] = rgb[1]!;
        img[d + 2] = rgb[2]!;
      }
  });
  const bx = panels.length * (size + gap);
  for (let i = 0; i < size; i++) {
    const h = heat(1 - i / (size - 1));
    for (let j = 0; j < barW; j++) img.set(h, ((i + top) * width + bx + j) * 3);
  }
  const texts = panels
    .map((p, k) => `<text x="${k * (size + gap) + 2}" y="15">${escXml(p.title)}</text>`)
    .concat([
      `<text x="${bx + barW + 3}" y="${top + 10}">${scale.toPrecision(3)}</text>`,
      `<text x="${bx + barW + 3}" y="${top + size}">0</text>`,
    ]);
  const svg = `<svg width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg"><style>text{font:12px sans-serif;fill:#000}</style>${texts.join('')}</svg>`;
  return sharp(img, { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png()
    .toBuffer();
}
