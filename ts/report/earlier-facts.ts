/**
 * What `eval` keeps from the results.json it replaces: the facts of the run that made the predictions
 * (when and with what it ran, its timings, the segmenter's quality). Only these fields are taken, each
 * checked, since the file may have been edited by hand or come from elsewhere; where the run folder is
 * now (`run.dir`) and everything scored is always the re-evaluation's own.
 */

import { join } from 'node:path';
import { z } from 'zod';
import { DataError } from '../common/errors.js';
import { readJson } from '../common/io.js';
import { firstIssue } from '../common/options.js';
import type { Results } from '../experiment/results.js';

const seconds = z.record(z.string(), z.number());
const summary = z.looseObject({ mean: z.number().nullable(), median: z.number().nullable() });
const perStructure = z.object({ rightLung: summary, leftLung: summary, heart: summary });

const EarlierResultsSchema = z.object({
  run: z
    .object({
      startedAt: z.string(),
      finishedAt: z.string(),
      resumed: z.boolean(),
      git: z.object({ commit: z.string().nullable(), dirty: z.boolean().nullable() }),
      versions: z.record(z.string(), z.unknown()),
      model: z.record(z.string(), z.unknown()).nullable(),
      device: z.string(),
      timings: z.object({ totalSeconds: z.number(), features: seconds, cells: seconds }),
    })
    .partial()
    .optional(),
  /** The data summaries recorded at training time; the re-evaluation's own counts win over them. */
  data: z.record(z.string(), z.unknown()).optional(),
  segmenter: z
    .looseObject({
      dir: z.string(),
      weights: z.string(),
      weightsSha256: z.string(),
      images: z.number(),
      gridSize: z.number(),
      dice: perStructure,
      hd95: perStructure,
      training: z
        .looseObject({
          fingerprint: z.record(z.string(), z.unknown()),
          epochs: z.number(),
          bestEpoch: z.number().nullable(),
          bestValDice: z.number().nullable(),
        })
        .nullable(),
    })
    .nullable()
    .optional(),
});

export type EarlierResults = Pick<Partial<Results>, 'data' | 'segmenter'> & { run?: Partial<Results['run']> };

/**
 * The checked facts of `runDir`/results.json, or null when there is none.
 * @throws {DataError} `bad-results`: the file is not a JSON object, or a field kept from it has the
 *   wrong shape (the message names the file and the field).
 */
export function readEarlierResults(runDir: string): EarlierResults | null {
  const file = join(runDir, 'results.json');
  const raw = readJson<unknown>(file);
  if (raw === null) return null;
  const r = firstIssue(EarlierResultsSchema, raw);
  if (r.ok) return r.data as EarlierResults;
  throw new DataError(
    'bad-results',
    `${r.issue.message}; eval keeps this run's facts from it (fix the field, or move the file away to record the re-evaluation's own)`,
    { file, field: r.field || undefined },
  );
}
