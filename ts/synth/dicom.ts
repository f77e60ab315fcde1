/** A small DICOM Part 10 writer (explicit VR little endian, native or encapsulated pixel data): synthetic VinDr-CXR images and test fixtures. */

export interface DicomFixture {
  width: number;
  height: number;
  /** Stored sample values, row-major (ignored when `frame` is given). */
  values?: ArrayLike<number>;
  bitsAllocated?: 8 | 16;
  bitsStored?: number;
  /** High Bit (0028,0102); default Bits Stored − 1. */
  highBit?: number;
  signed?: boolean;
  photometric?: 'MONOCHROME1' | 'MONOCHROME2' | 'RGB';
  samplesPerPixel?: number;
  slope?: number;
  intercept?: number;
  window?: [number, number];
  voiFunction?: string;
  /** One VOI LUT Sequence item: the first modality value mapped, bits per entry, the entries. */
  voiLut?: { first: number; bits: number; data: ArrayLike<number> };
  /** Presentation LUT Shape (2050,0020): IDENTITY or INVERSE. */
  presentationLutShape?: string;
  transferSyntax?: string;
  /** One compressed frame, stored encapsulated. */
  frame?: Uint8Array;
}

function element(group: number, el: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(el, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}
const text = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const us = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};

/** One sequence item of explicit length holding `body`. */
function sequenceItem(body: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0xfffe, 0);
  h.writeUInt16LE(0xe000, 2);
  h.writeUInt32LE(body.length, 4);
  return Buffer.concat([h, body]);
}

/** LUT Descriptor (entries, first mapped value, bits) and LUT Data of a VOI LUT. */
function voiLutItem(l: { first: number; bits: number; data: ArrayLike<number> }): Buffer {
  const n = l.data.length;
  const desc = Buffer.concat([us(n === 65536 ? 0 : n), us(l.first & 0xffff), us(l.bits)]);
  const data = Buffer.alloc(2 * n);
  for (let i = 0; i < n; i++) data.writeUInt16LE(l.data[i]! & 0xffff, 2 * i);
  return Buffer.concat([element(0x0028, 0x3002, 'US', desc), element(0x0028, 0x3006, 'OW', data)]);
}

export function writeDicom(f: DicomFixture): Buffer {
  const ts = f.transferSyntax ?? '1.2.840.10008.1.2.1';
  const bitsAllocated = f.bitsAllocated ?? 16;
  const metaBody = Buffer.concat([
    element(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    element(0x0002, 0x0002, 'UI', text('1.2.840.10008.5.1.4.1.1.1.1', '\0')),
    element(0x0002, 0x0003, 'UI', text('1.2.3.4.5.6.7.8', '\0')),
    element(0x0002, 0x0010, 'UI', text(ts, '\0')),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(metaBody.length);
  const parts: Buffer[] = [
    element(0x0008, 0x0016, 'UI', text('1.2.840.10008.5.1.4.1.1.1.1', '\0')),
    element(0x0028, 0x0002, 'US', us(f.samplesPerPixel ?? 1)),
    element(0x0028, 0x0004, 'CS', text(f.photometric ?? 'MONOCHROME2')),
    element(0x0028, 0x0010, 'US', us(f.height)),
    element(0x0028, 0x0011, 'US', us(f.width)),
    element(0x0028, 0x0100, 'US', us(bitsAllocated)),
    element(0x0028, 0x0101, 'US', us(f.bitsStored ?? bitsAllocated)),
    element(0x0028, 0x0102, 'US', us(f.highBit ?? (f.bitsStored ?? bitsAllocated) - 1)),
    element(0x0028, 0x0103, 'US', us(f.signed ? 1 : 0)),
  ];
  if (f.window) {
    parts.push(element(0x0028, 0x1050, 'DS', text(String(f.window[0]))));
    parts.push(element(0x0028, 0x1051, 'DS', text(String(f.window[1]))));
  }
  if (f.intercept !== undefined) parts.push(element(0x0028, 0x1052, 'DS', text(String(f.intercept))));
  if (f.slope !== undefined) parts.push(element(0x0028, 0x1053, 'DS', text(String(f.slope))));
  if (f.voiFunction) parts.push(element(0x0028, 0x1056, 'CS', text(f.voiFunction)));
  if (f.voiLut) parts.push(element(0x0028, 0x3010, 'SQ', sequenceItem(voiLutItem(f.voiLut))));
  if (f.presentationLutShape) parts.push(element(0x2050, 0x0020, 'CS', text(f.presentationLutShape)));
  if (f.frame) {
    const item = (b: Uint8Array) => {
      const h = Buffer.alloc(8);
      h.writeUInt16LE(0xfffe, 0);
      h.writeUInt16LE(0xe000, 2);
      const padded = b.length % 2 ? Buffer.concat([Buffer.from(b), Buffer.from([0])]) : Buffer.from(b);
      h.writeUInt32LE(padded.length, 4);
      return Buffer.concat([h, padded]);
    };
    const head = Buffer.alloc(12);
    head.writeUInt16LE(0x7fe0, 0);
    head.writeUInt16LE(0x0010, 2);
    head.write('OB', 4, 'latin1');
    head.writeUInt32LE(0xffffffff, 8);
    const end = Buffer.alloc(8);
    end.writeUInt16LE(0xfffe, 0);
    end.writeUInt16LE(0xe0dd, 2);
    parts.push(Buffer.concat([head, item(new Uint8Array(0)), item(f.frame), end]));
  } else {
    const n = f.width * f.height * (f.samplesPerPixel ?? 1);
    const px = Buffer.alloc(n * (bitsAllocated / 8) + ((n * (bitsAllocated / 8)) % 2));
    for (let i = 0; i < n; i++) {
      const v = f.values?.[i] ?? 0;
      if (bitsAllocated === 8) px.writeUInt8(v & 0xff, i);
      else px.writeUInt16LE(v & 0xffff, 2 * i);
    }
    parts.push(element(0x7fe0, 0x0010, bitsAllocated === 8 ? 'OB' : 'OW', px));
  }
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    element(0x0002, 0x0000, 'UL', groupLength),
    metaBody,
    ...parts,
  ]);
}
