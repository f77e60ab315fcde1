/**
 * `cxrmask serve`: the inference-time masking service (ts/service/http.ts) on one classifier, an
 * optional segmenter (images without a CheXmask row get predicted masks) and an optional CheXmask
 * index. Localhost by default; SIGINT/SIGTERM finish in-flight requests, free the models, exit 0.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { UsageError } from '../common/errors.js';
import { threadsProblem } from '../common/threads.js';
import { setThreads } from '../native.js';
import { ChexmaskIndex } from '../service/chexmask-index.js';
import {
  createServer,
  DEFAULT_BODY_LIMIT,
  DEFAULT_MAX_QUEUE,
  MAX_BODY_LIMIT,
  MAX_QUEUE_LIMIT,
} from '../service/http.js';
import { DEFAULT_MAX_BATCH, MAX_BATCH } from '../service/predictor.js';
import { closeOnSignals } from '../service/shutdown.js';
import { COMMAND_TEXT } from './commands.js';
import { parseSize } from './options.js';
import { openPredictor, type PredictorArgv, predictorOptions, predictorPlan } from './predictor-args.js';
import { runCommand } from './run-command.js';

export interface ServeArgv extends PredictorArgv {
  chexmask?: string;
  host: string;
  port: number;
  maxQueue: number;
  bodyLimit: string;
  threads?: number;
  grace: number;
  log: 'info' | 'warn' | 'error' | 'silent';
}

/** Longest --grace: a day (setTimeout cannot wait beyond ~24.8 days, and no drain needs that long). */
const MAX_GRACE_SECONDS = 86_400;

export const serveCommand: CommandModule<object, ServeArgv> = {
  ...COMMAND_TEXT.serve,
  builder: (y: Argv<object>) =>
    predictorOptions(y)
      .option('chexmask', {
        type: 'string',
        describe: 'CheXmask CSV: requests with ?dicomId= use that row (indexed once at start)',
      })
      .option('host', {
        type: 'string',
        default: '127.0.0.1',
        describe: 'interface to listen on (0.0.0.0 only behind a proxy you control)',
      })
      .option('port', { type: 'number', default: 8080, describe: 'port (0: any free one, printed)' })
      .option('max-queue', {
        type: 'number',
        default: DEFAULT_MAX_QUEUE,
        describe: 'requests admitted at once (reading, queued, on the model); more get 503',
      })
      .option('max-batch', {
        type: 'number',
        default: DEFAULT_MAX_BATCH,
        describe:
          'the most requests segmented and classified together (those that arrive while the models are busy); 1 = one at a time',
      })
      .option('body-limit', {
        type: 'string',
        default: `${DEFAULT_BODY_LIMIT / 2 ** 20}mb`,
        describe: 'largest image body or multipart file (e.g. 20mb); larger get 413',
      })
      .option('threads', { type: 'number', describe: 'intra-op CPU threads of the models' })
      .option('grace', {
        type: 'number',
        default: 30,
        describe: 'seconds to let in-flight requests finish on SIGINT/SIGTERM',
      })
      .option('log', {
        choices: ['info', 'warn', 'error', 'silent'] as const,
        default: 'info' as const,
        describe: 'request log level (JSON lines on stderr)',
      })
      .example(
        '$0 serve --model runs/R/cells/jft-masked-s0 --segmenter models/seg --chexmask MIMIC-CXR-JPG.csv',
        '',
      )
      .example(
        "curl --data-binary @x.jpg 'http://127.0.0.1:8080/predict?overlay=1'",
        '',
      ) as unknown as Argv<ServeArgv>,
  handler: (argv: ArgumentsCamelCase<ServeArgv>) =>
    runCommand(async () => {
      if (!Number.isInteger(argv.port) || argv.port < 0 || argv.port > 65535) {
        throw new UsageError(`--port ${argv.port}: expected 0–65535`);
      }
      if (!Number.isInteger(argv.maxQueue) || argv.maxQueue < 1 || argv.maxQueue > MAX_QUEUE_LIMIT) {
        throw new UsageError(
          `--max-queue ${argv.maxQueue}: expected an integer from 1 to ${MAX_QUEUE_LIMIT}`,
        );
      }
      const maxBatch = argv.maxBatch ?? DEFAULT_MAX_BATCH;
      if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_BATCH) {
        throw new UsageError(`--max-batch ${argv.maxBatch}: expected an integer from 1 to ${MAX_BATCH}`);
      }
      // a negative or NaN grace would exit at once (or never) on SIGTERM
      if (!Number.isFinite(argv.grace) || argv.grace < 0 || argv.grace > MAX_GRACE_SECONDS)
        throw new UsageError(`--grace ${argv.grace}: expected seconds from 0 to ${MAX_GRACE_SECONDS}`);
      const bodyLimit = parseSize(argv.bodyLimit);
      if (bodyLimit > MAX_BODY_LIMIT)
        throw new UsageError(`--body-limit ${argv.bodyLimit}: at most ${MAX_BODY_LIMIT / 2 ** 20}mb`);
      if (argv.threads !== undefined) {
        const problem = threadsProblem(argv.threads);
        if (problem) throw new UsageError(`--threads ${argv.threads}: ${problem}`);
        setThreads(argv.threads);
      }
      const plan = predictorPlan(argv); // checked before the CheXmask CSV is indexed
      const chexmask = argv.chexmask
        ? await ChexmaskIndex.build(argv.chexmask, {
            minDice: plan.minDice,
            keepRle: plan.source.overlay?.source === 'rle',
          })
        : null;
      const predictor = await openPredictor(argv, plan);
      const app = createServer({
        predictor,
        chexmask,
        bodyLimit,
        maxQueue: argv.maxQueue,
        // stdout carries only the listening line (a supervisor reads the port from it)
        logger: argv.log === 'silent' ? false : { level: argv.log, stream: process.stderr },
      });
      // whole milliseconds: 1.005 s is 1004.9999999999999 ms in floating point
      closeOnSignals(app, { graceMs: Math.round(argv.grace * 1000) });
      await app.listen({ host: argv.host, port: argv.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : argv.port;
      process.stdout.write(
        `cxrmask serve: listening on http://${argv.host}:${port} (${predictor.kind}, segmenter ${predictor.segmenter ? 'yes' : 'no'}, CheXmask rows ${chexmask?.size ?? 0})\n`,
      );
    }),
};

export default serveCommand;
