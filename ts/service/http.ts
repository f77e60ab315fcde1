/**
 * The HTTP face of one MaskingPredictor (fastify); `cxrmask serve` runs it (docs/service.md):
 *
 *   POST /predict[?dicomId=<id>][&overlay=1][&masks=1]
 *        body: the JPEG/PNG bytes (any content type), or multipart/form-data with one file part
 *     200 { dicomId, kind, maskSource, original, masked, delta[, overlayPng][, masks] }
 *         maskSource: "chexmask" (the id's row), "segmenter" (predicted masks), or null (no masks:
 *         masked/delta null); overlayPng / masks: base64 PNGs on the model grid (masks: pixel value =
 *         region bits, 1 right lung, 2 left lung, 4 heart)
 *     400 bad image / empty body / malformed multipart or no file part / bad query (naming the parameter)
 *     404 no CheXmask row for the id · 413 body or file too large (at once), too many parts
 *     422 the id's row is unusable for this image · 503 queue full or shutting down (Retry-After: 1)
 *   GET /healthz  { status, kind, segmenter, pending, maxQueue, chexmaskRows }
 *   GET /metrics  Prometheus text: requests by route/status, latency histograms, queue depth, process
 *
 * Error bodies are `{ error, message }` with fixed texts: no server paths, no stack traces (the full
 * error goes to the log). Bodies are buffered only once admitted, so memory stays under
 * maxQueue × bodyLimit however many clients there are.
 */
import { finished, type Readable } from 'node:stream';
import multipart from '@fastify/multipart';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import sharp from 'sharp';
import { z } from 'zod';
import { aBoolean, flag, intInRange, or, parseOptions, rule } from '../common/options.js';
import { INPUT_FORMATS, sniffFormat } from '../images/input.js';
import { anObject } from '../model/options.js';
import type { BatchCounts } from './batch-queue.js';
import type { ChexmaskIndex } from './chexmask-index.js';
import { createMetrics } from './metrics.js';
import type { MaskingPredictor, Prediction } from './predictor.js';

/** Options of `createServer` (docs/service.md). */
export interface ServiceOptions {
  /** Loaded once by the caller; every request goes through its queue. */
  predictor: Pick<MaskingPredictor, 'kind' | 'pending' | 'predict' | 'dispose'> & {
    readonly segmenter?: unknown;
    /** Model batches so far (MaskingPredictor's), for /metrics; absent, those counters stay 0. */
    readonly batchCounts?: BatchCounts;
  };
  /** Lookup of CheXmask rows by dicomId; without it only `/predict` without a dicomId is served. */
  chexmask?: Pick<ChexmaskIndex, 'row' | 'size' | 'close'> | null;
  /** Largest image body (or multipart file) in bytes; larger ones get 413 without being buffered. Default 20 MiB. */
  bodyLimit?: number;
  /** Requests admitted (body being read, waiting for or on the model) before new ones get 503. Default 16. */
  maxQueue?: number;
  /** Refuse requests without a dicomId (400) instead of scoring the original image only. Default false. */
  requireRow?: boolean;
  /** A request (headers + body) must arrive within this many ms, else 408. Default 60 s. */
  requestTimeoutMs?: number;
  /** Dispose the predictor and close the index when the server closes. Default true. */
  disposeOnClose?: boolean;
  /** fastify's logger option. Default false. */
  logger?: FastifyServerOptions['logger'];
}

export const DEFAULT_BODY_LIMIT = 20 * 1024 * 1024;
/** The largest body limit: the image must fit in one Buffer next to its decoded planes. */
export const MAX_BODY_LIMIT = 1024 ** 3;
export const DEFAULT_MAX_QUEUE = 16;
/** The largest admission bound; memory is bounded by maxQueue × bodyLimit. */
export const MAX_QUEUE_LIMIT = 100_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/**
 * ServiceOptions as a schema: a NaN or misspelt `maxQueue` would otherwise lift the admission bound
 * (`pending >= NaN` is never true) or be ignored, and a server without a predictor would answer
 * every request with 500.
 */
const ServiceOptionsSchema = z
  .object({
    predictor: rule<ServiceOptions['predictor']>(
      (v) =>
        typeof v === 'object' && v !== null && typeof (v as { predict?: unknown }).predict === 'function',
      () => 'must be a loaded predictor (an object with predict(), e.g. MaskingPredictor.load())',
      'type',
    ),
    chexmask: anObject.nullable().optional(),
    bodyLimit: or(intInRange(1, MAX_BODY_LIMIT), DEFAULT_BODY_LIMIT),
    maxQueue: or(intInRange(1, MAX_QUEUE_LIMIT), DEFAULT_MAX_QUEUE),
    requireRow: flag,
    requestTimeoutMs: or(intInRange(1, 2 ** 31 - 1), DEFAULT_REQUEST_TIMEOUT_MS),
    disposeOnClose: or(aBoolean, true),
    logger: z.unknown().optional(),
  })
  .strict();

/** ServiceOptions checked, with the defaults filled in. */
type CheckedServiceOptions = ServiceOptions &
  Required<Pick<ServiceOptions, 'bodyLimit' | 'maxQueue' | 'requestTimeoutMs'>>;

/** An error whose status, code and message may be shown to the client as they are. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOO_MANY_PARTS = 'send one file part (and at most a few small fields)';
const BAD_IMAGE = 'cannot decode the image (JPEG or PNG expected)';
/**
 * Room for a multipart body's framing beyond its file: boundaries, part headers and the 8 fields of
 * ≤ 1 KiB the limits allow. A declared length over bodyLimit plus this cannot hold a file within it.
 */
const MULTIPART_OVERHEAD = 64 * 1024;

const tooLarge = (bodyLimit: number) =>
  new HttpError(413, 'too-large', `image body larger than ${bodyLimit} bytes`);

/** The body is a multipart form (read by @fastify/multipart in the handler), whatever its parameters. */
function isMultipartType(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase() === 'multipart/form-data';
}

/** Data-layer refusals (DataError reasons) as client-facing answers; anything else is a 500. */
function dataErrorToHttp(reason: string): HttpError {
  switch (reason) {
    case 'image-corrupt':
      return new HttpError(400, 'bad-image', BAD_IMAGE);
    case 'image-too-large':
      return new HttpError(400, 'bad-image', 'the image has more pixels than this server accepts');
    case 'unknown-id':
      return new HttpError(404, 'unknown-id', 'no CheXmask row for this dicomId');
    case 'low-dice':
      return new HttpError(
        422,
        'low-quality-row',
        'the CheXmask row of this dicomId is below the Dice threshold',
      );
    case 'size-mismatch':
    case 'size-swapped':
      return new HttpError(
        422,
        'size-mismatch',
        'the image size differs from the CheXmask row (Height/Width)',
      );
    case 'stale-index':
    case 'no-rle':
      return new HttpError(500, 'internal', 'internal error');
    default:
      // Parse refusals of the row itself (bad-landmarks, bad-size, bad-rle, bad-row, …).
      return new HttpError(422, 'bad-row', 'the CheXmask row of this dicomId is malformed');
  }
}

function toHttpError(e: unknown, bodyLimit: number, closing: boolean): HttpError {
  if (e instanceof HttpError) return e;
  const err = e as FastifyError & { reason?: unknown; validation?: unknown };
  if (err?.name === 'DataError' && typeof err.reason === 'string') return dataErrorToHttp(err.reason);
  if (err?.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err?.code === 'FST_REQ_FILE_TOO_LARGE') {
    return tooLarge(bodyLimit);
  }
  if (
    err?.code === 'FST_PARTS_LIMIT' ||
    err?.code === 'FST_FILES_LIMIT' ||
    err?.code === 'FST_FIELDS_LIMIT'
  ) {
    return new HttpError(413, 'too-many-parts', TOO_MANY_PARTS);
  }
  // busboy's refusals of a malformed form (bad boundary, truncated part, bad headers).
  if (
    err instanceof Error &&
    /multipart|boundary|Unexpected end of form|Malformed part header/i.test(err.message)
  ) {
    return new HttpError(400, 'bad-multipart', 'malformed multipart/form-data body');
  }
  if (err?.validation) return new HttpError(400, 'bad-request', validationMessage(err));
  // A model call that fails because the server is closing (its predictor is being disposed).
  if (closing) return new HttpError(503, 'shutting-down', 'the server is shutting down');
  // fastify's own 4xx (bad content length, aborted body, …) carry fixed texts without server details.
  if (typeof err?.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new HttpError(err.statusCode, 'bad-request', err.message);
  }
  return new HttpError(500, 'internal', 'internal error');
}

/** ajv's message, except that an unknown query parameter is named (ajv says only "additional properties"). */
function validationMessage(err: FastifyError): string {
  const first = err.validation?.[0];
  if (first?.keyword === 'additionalProperties') {
    return `unknown query parameter "${(first.params as { additionalProperty: string }).additionalProperty}"`;
  }
  return err.message;
}

/**
 * A file part's bytes. Past the limit it rejects at once with 413: busboy truncates the file but
 * ends it only where its part ends, so waiting for the end (part.toBuffer) read the whole upload first.
 */
function readFilePart(file: Readable & { truncated?: boolean }, bodyLimit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (file.truncated) return reject(tooLarge(bodyLimit));
    const chunks: Buffer[] = [];
    file.once('limit', () => reject(tooLarge(bodyLimit)));
    file.on('data', (c: Buffer) => chunks.push(c));
    // an error, or a close before the end (the client went away), settles it too
    finished(file, (err) => (err ? reject(err) : resolve(Buffer.concat(chunks))));
  });
}

/**
 * The file part of a multipart request, buffered (its size bounded by the multipart limits). The
 * whole body is read, so that a second file is refused (busboy's files limit, 413) instead of dropped.
 */
async function filePart(req: FastifyRequest, bodyLimit: number): Promise<Buffer> {
  let image: Buffer | null = null;
  for await (const part of req.parts()) {
    if (part.type !== 'file') continue;
    if (image) throw new HttpError(413, 'too-many-parts', TOO_MANY_PARTS);
    image = await readFilePart(part.file, bodyLimit);
  }
  if (!image)
    throw new HttpError(400, 'no-file', 'the multipart body has no file part (send the image as a file)');
  return image;
}

/** A prediction as JSON: PNG outputs as base64 (the region bits as an 8-bit gray PNG). */
async function toJson(dicomId: string | null, r: Prediction) {
  const { overlayPng, masks, ...rest } = r;
  const out: Record<string, unknown> = { dicomId, ...rest };
  if (overlayPng !== undefined) out.overlayPng = overlayPng ? overlayPng.toString('base64') : null;
  if (masks !== undefined) {
    out.masks = masks
      ? (
          await sharp(masks.bits, { raw: { width: masks.size, height: masks.size, channels: 1 } })
            .toColourspace('b-w') // one 8-bit channel (PIL mode "L"), not sRGB
            .png()
            .toBuffer()
        ).toString('base64')
      : null;
  }
  return out;
}

/**
 * Requests admitted but not yet handed to the predictor (reading the body, looking up the row): with
 * the predictor's own queue, what the 503 admission limit counts. `closing` is set by preClose: errors
 * from then on are the shutdown's, not the request's.
 */
class Admission {
  private admitted = 0;
  private readonly holding = new WeakSet<object>();
  closing = false;
  constructor(
    private readonly predictor: ServiceOptions['predictor'],
    readonly maxQueue: number,
  ) {}
  /** Requests admitted plus those queued on or running in the model. */
  get pending(): number {
    return this.admitted + this.predictor.pending;
  }
  /** Admits the request behind `raw`, or throws 503 when the queue is full. */
  admit(raw: object): void {
    if (this.predictor.pending + this.admitted >= this.maxQueue) {
      throw new HttpError(503, 'queue-full', 'the model queue is full; retry later');
    }
    this.admitted++;
    this.holding.add(raw);
  }
  /** Once per request, whichever of handing over, responding or aborting comes first. */
  release(raw: object): void {
    if (this.holding.delete(raw)) this.admitted--;
  }
}

/** fastify with the body parsers /predict reads: any content type as the image bytes, or a multipart form. */
function newFastify(options: CheckedServiceOptions, bodyLimit: number): FastifyInstance {
  const app = Fastify({
    bodyLimit,
    requestTimeout: options.requestTimeoutMs,
    logger: options.logger ?? false,
    // closing is answered by our own hook (addShutdownHooks): the documented 503 body and Retry-After
    return503OnClosing: false,
    // A misspelt query parameter is a 400, not silently dropped (fastify's default strips it).
    ajv: { customOptions: { removeAdditional: false } },
  });
  // The body is the image whatever the client calls it (curl --data-binary sends a form type).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
  // multipart/form-data (browser forms, curl -F): the first file part is the image; read in the handler.
  app.register(multipart, {
    limits: { fileSize: bodyLimit, files: 1, fields: 8, fieldSize: 1024, parts: 9, headerPairs: 64 },
  });
  return app;
}

/** Every failure answered as `{ error, message }` with its status (toHttpError); unknown routes 404. */
function addErrorAnswers(app: FastifyInstance, bodyLimit: number, admission: Admission): void {
  app.setErrorHandler((e, req, reply) => {
    const h = toHttpError(e, bodyLimit, admission.closing);
    if (h.statusCode === 500) req.log.error({ err: e }, 'request failed');
    // An oversized body is not read to its end. The rest of a form with too many parts is short or
    // discarded as it comes (busboy skips the extra files), so that answer keeps the connection:
    // closing it with unread bytes resets it, and the client may never see the 413.
    if (h.code === 'too-large') reply.header('connection', 'close');
    if (h.statusCode === 503) reply.header('retry-after', '1');
    return reply.code(h.statusCode).send({ error: h.code, message: h.message });
  });
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ error: 'not-found', message: 'no such route' }),
  );
}

/** GET /healthz and GET /metrics. */
function addStatusRoutes(
  app: FastifyInstance,
  options: ServiceOptions,
  admission: Admission,
  metrics: ReturnType<typeof createMetrics>,
): void {
  const { predictor, chexmask = null } = options;
  app.get('/healthz', async () => ({
    status: admission.closing ? 'closing' : 'ok',
    kind: predictor.kind,
    segmenter: Boolean(predictor.segmenter),
    pending: admission.pending,
    maxQueue: admission.maxQueue,
    chexmaskRows: chexmask?.size ?? 0,
  }));
  app.get('/metrics', async (_req, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}

const queryFlag = { type: 'string', enum: ['0', '1', 'true', 'false'] };
const PREDICT_QUERY = {
  type: 'object',
  properties: {
    dicomId: { type: 'string', minLength: 1, maxLength: 256 },
    overlay: queryFlag,
    masks: queryFlag,
  },
  additionalProperties: false,
};

/**
 * Before admission: a multipart body declared too large to hold a file within the limit is refused
 * unread (fastify checks raw bodies itself, but leaves multipart to the handler). Any other body is
 * the image whatever its content type, so a type fastify cannot parse (`jpeg`, `image/jpeg, image/png`)
 * is dropped rather than answered 415.
 */
function checkBody(req: FastifyRequest, bodyLimit: number): void {
  const type = req.headers['content-type'];
  if (!isMultipartType(type)) {
    if (type !== undefined) delete req.raw.headers['content-type'];
    return;
  }
  if (Number(req.headers['content-length']) > bodyLimit + MULTIPART_OVERHEAD) throw tooLarge(bodyLimit);
}

/** The image of a /predict request: a non-empty JPEG or PNG body or file part. */
async function requestImage(req: FastifyRequest, bodyLimit: number): Promise<Buffer> {
  const image = req.isMultipart() ? await filePart(req, bodyLimit) : req.body;
  if (!Buffer.isBuffer(image) || image.length === 0) {
    throw new HttpError(400, 'empty-body', 'send the image bytes as the request body');
  }
  // Only JPEG and PNG reach a decoder (SVG, TIFF, GIF, WebP … would reach librsvg, libtiff …).
  if (!sniffFormat(image, INPUT_FORMATS)) throw new HttpError(400, 'bad-image', BAD_IMAGE);
  return image;
}

/** POST /predict: admitted before its body is read, released once its job is on the predictor's queue. */
function addPredictRoute(
  app: FastifyInstance,
  options: ServiceOptions,
  bodyLimit: number,
  admission: Admission,
  metrics: ReturnType<typeof createMetrics>,
): void {
  const { predictor, chexmask = null } = options;
  app.post<{ Querystring: { dicomId?: string; overlay?: string; masks?: string } }>(
    '/predict',
    {
      schema: { querystring: PREDICT_QUERY },
      // Admission before the body is read: a full queue answers 503 without buffering anything.
      onRequest: [async (req) => checkBody(req, bodyLimit), async (req) => admission.admit(req.raw)],
      onResponse: async (req) => admission.release(req.raw),
      onRequestAbort: async (req) => admission.release(req.raw),
    },
    async (req) => {
      const t0 = performance.now();
      const dicomId = req.query.dicomId ?? null;
      if (!dicomId && options.requireRow) throw new HttpError(400, 'no-dicom-id', 'dicomId is required');
      if (dicomId && !chexmask) throw new HttpError(400, 'no-index', 'this server has no CheXmask rows');
      const on = (v: string | undefined) => v === '1' || v === 'true';
      const extras = { overlay: on(req.query.overlay), masks: on(req.query.masks) };
      let job: Promise<Prediction>;
      try {
        const image = await requestImage(req, bodyLimit);
        const row = dicomId ? await chexmask!.row(dicomId) : null;
        job = predictor.predict(image, row, extras) as Promise<Prediction>;
      } finally {
        admission.release(req.raw);
      }
      const r = await job;
      metrics.observePrediction(r.maskSource ?? 'none', (performance.now() - t0) / 1000);
      return toJson(dicomId, r);
    },
  );
}

/** Closing: answers close their connection, and the predictor and index are disposed (unless told not to). */
function addShutdownHooks(app: FastifyInstance, options: ServiceOptions, admission: Admission): void {
  // Once closing, answers close their connection: a kept-alive client would otherwise hold close()
  // open until its keep-alive timeout.
  app.addHook('preClose', async () => {
    admission.closing = true;
  });
  // A request that arrives on an open connection while closing: the documented 503 (Retry-After,
  // `{ error, message }`) from the error handler, before admission.
  app.addHook('onRequest', async () => {
    if (admission.closing) throw new HttpError(503, 'shutting-down', 'the server is shutting down');
  });
  app.addHook('onSend', async (_req, reply) => {
    if (admission.closing) reply.header('connection', 'close');
  });
  app.addHook('onClose', async () => {
    if (options.disposeOnClose === false) return;
    await options.predictor.dispose();
    await options.chexmask?.close();
  });
}

/**
 * A fastify instance serving `options.predictor` (routes above); the caller calls `listen()`, and
 * `close()` disposes the predictor and closes the index unless `disposeOnClose` is false. Request
 * failures never throw out of it: they are answered as above (HttpError), anything unexpected as 500.
 * @throws {TypeError} an unknown option, one of the wrong type, or no predictor.
 * @throws {RangeError} `bodyLimit`, `maxQueue` or `requestTimeoutMs` is not an integer in its range
 *   (1 to MAX_BODY_LIMIT, MAX_QUEUE_LIMIT, 2³¹ − 1).
 */
export function createServer(serviceOptions: ServiceOptions): FastifyInstance {
  const options = parseOptions(ServiceOptionsSchema, serviceOptions, 'createServer') as CheckedServiceOptions;
  const bodyLimit = options.bodyLimit;
  const admission = new Admission(options.predictor, options.maxQueue);
  const app = newFastify(options, bodyLimit);
  const metrics = createMetrics(
    () => admission.pending,
    admission.maxQueue,
    () => options.predictor.batchCounts,
  );
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(route, req.method, reply.statusCode, reply.elapsedTime / 1000);
  });
  addErrorAnswers(app, bodyLimit, admission);
  addStatusRoutes(app, options, admission, metrics);
  addPredictRoute(app, options, bodyLimit, admission, metrics);
  addShutdownHooks(app, options, admission);
  return app;
}
