/**
 * The HTTP face of one MaskingPredictor (fastify):
 *
 *   POST /predict[?dicomId=<id>]   body: the JPEG/PNG bytes (any content type)
 *     200 { dicomId, kind, original, masked, delta }  (masked/delta null without a dicomId)
 *     400 bad image / empty body / bad query · 404 no CheXmask row for the id · 413 body too large
 *     422 the id's row is unusable for this image · 503 queue full or shutting down
 *   GET /health  { status, kind, pending, chexmaskRows }
 *
 * Error bodies are `{ error, message }` with fixed texts: no server paths, no stack traces (the full
 * error goes to the log). Bodies are buffered only once admitted, so memory stays under
 * maxQueue × bodyLimit however many clients there are.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { ChexmaskIndex } from './chexmask-index.js';
import type { MaskingPredictor } from './predictor.js';

export interface ServiceOptions {
  /** Loaded once by the caller; every request goes through its queue. */
  predictor: Pick<MaskingPredictor, 'kind' | 'pending' | 'predict' | 'dispose'>;
  /** Lookup of CheXmask rows by dicomId; without it only `/predict` without a dicomId is served. */
  chexmask?: Pick<ChexmaskIndex, 'row' | 'size' | 'close'> | null;
  /** Largest image body in bytes; larger ones get 413 without being buffered. Default 20 MiB. */
  bodyLimit?: number;
  /** Requests admitted (body being read, waiting for or on the model) before new ones get 503. Default 16. */
  maxQueue?: number;
  /** Refuse requests without a dicomId (400) instead of scoring the original image only. Default false. */
  requireRow?: boolean;
  /** Dispose the predictor and close the index when the server closes. Default true. */
  disposeOnClose?: boolean;
  /** fastify's logger option. Default false. */
  logger?: FastifyServerOptions['logger'];
}

export const DEFAULT_BODY_LIMIT = 20 * 1024 * 1024;
export const DEFAULT_MAX_QUEUE = 16;

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

/** Data-layer refusals (DataError reasons) as client-facing answers; anything else is a 500. */
function dataErrorToHttp(reason: string): HttpError {
  switch (reason) {
    case 'image-corrupt':
      return new HttpError(400, 'bad-image', 'cannot decode the image (JPEG or PNG expected)');
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
  if (err?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new HttpError(413, 'too-large', `image body larger than ${bodyLimit} bytes`);
  }
  if (err?.validation) return new HttpError(400, 'bad-request', err.message);
  // A model call that fails because the server is closing (its predictor is being disposed).
  if (closing) return new HttpError(503, 'shutting-down', 'the server is shutting down');
  // fastify's own 4xx (bad content length, aborted body, …) carry fixed texts without server details.
  if (typeof err?.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new HttpError(err.statusCode, 'bad-request', err.message);
  }
  return new HttpError(500, 'internal', 'internal error');
}

/**
 * A fastify instance serving `options.predictor` (routes above); the caller calls `listen()`, and
 * `close()` disposes the predictor and closes the index unless `disposeOnClose` is false. Request
 * failures never throw out of it: they are answered as above (HttpError), anything unexpected as 500.
 * @throws {FastifyError} `bodyLimit` is not a positive integer
 *   (`FST_ERR_ROUTE_BODY_LIMIT_OPTION_NOT_INT`, thrown by fastify).
 */
export function createServer(options: ServiceOptions): FastifyInstance {
  const { predictor, chexmask = null } = options;
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
  const app = Fastify({
    bodyLimit,
    logger: options.logger ?? false,
    return503OnClosing: true,
    // A misspelt query parameter is a 400, not silently dropped (fastify's default strips it).
    ajv: { customOptions: { removeAdditional: false } },
  });

  // The body is the image whatever the client calls it (curl --data-binary sends a form type).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));

  // Set by preClose (below): errors from then on are the shutdown's, not the request's.
  let closing = false;
  // Requests admitted but not yet handed to the predictor (reading the body, looking up the row).
  let admitted = 0;
  const holding = new WeakSet<object>();
  const release = (raw: object) => {
    if (holding.delete(raw)) admitted--;
  };

  app.setErrorHandler((e, req, reply) => {
    const h = toHttpError(e, bodyLimit, closing);
    if (h.statusCode === 500) req.log.error({ err: e }, 'request failed');
    if (h.statusCode === 413) reply.header('connection', 'close'); // do not read the rest of the body
    if (h.statusCode === 503) reply.header('retry-after', '1');
    return reply.code(h.statusCode).send({ error: h.code, message: h.message });
  });
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ error: 'not-found', message: 'no such route' }),
  );

  app.get('/health', async () => ({
    status: 'ok',
    kind: predictor.kind,
    pending: predictor.pending,
    chexmaskRows: chexmask?.size ?? 0,
  }));

  app.post<{ Querystring: { dicomId?: string } }>(
    '/predict',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { dicomId: { type: 'string', minLength: 1, maxLength: 256 } },
          additionalProperties: false,
        },
      },
      // Admission before the body is read: a full queue answers 503 without buffering anything.
      onRequest: async (req) => {
        if (predictor.pending + admitted >= maxQueue) {
          throw new HttpError(503, 'queue-full', 'the model queue is full; retry later');
        }
        admitted++;
        holding.add(req.raw);
      },
      onResponse: async (req) => release(req.raw),
      onRequestAbort: async (req) => release(req.raw),
    },
    async (req) => {
      const image = req.body;
      if (!Buffer.isBuffer(image) || image.length === 0) {
        throw new HttpError(400, 'empty-body', 'send the image bytes as the request body');
      }
      const dicomId = req.query.dicomId ?? null;
      if (!dicomId && options.requireRow) throw new HttpError(400, 'no-dicom-id', 'dicomId is required');
      if (dicomId && !chexmask) throw new HttpError(400, 'no-index', 'this server has no CheXmask rows');
      let job: ReturnType<typeof predictor.predict>;
      try {
        const row = dicomId ? await chexmask!.row(dicomId) : null;
        job = predictor.predict(image, row);
      } finally {
        release(req.raw);
      }
      return { dicomId, ...(await job) };
    },
  );

  // Once closing, answers close their connection: a kept-alive client would otherwise hold close()
  // open until its keep-alive timeout.
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_req, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  app.addHook('onClose', async () => {
    if (options.disposeOnClose === false) return;
    await predictor.dispose();
    await chexmask?.close();
  });
  return app;
}
