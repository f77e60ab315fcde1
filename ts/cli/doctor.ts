/** `cxrmask doctor [--json]`: torch version, CUDA devices, BLAS, threads, addon path. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { COMMAND_TEXT } from './commands.js';

interface DoctorArgs {
  json: boolean;
  threads?: number;
}

const doctor: CommandModule<object, DoctorArgs> = {
  ...COMMAND_TEXT.doctor,
  builder: (y: Argv<object>) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print the full diagnostics as JSON' })
      .option('threads', {
        type: 'number',
        describe: 'set intra-op threads first (to check it takes)',
      }) as Argv<DoctorArgs>,
  handler: async (argv: ArgumentsCamelCase<DoctorArgs>) => {
    const native = await import('../native.js');
    const { formatDiagnostics } = await import('../model/diagnostics.js');
    let d: ReturnType<typeof native.diagnostics>;
    try {
      if (argv.threads !== undefined) native.setThreads(argv.threads);
      d = native.diagnostics();
    } catch (e) {
      if (argv.json)
        process.stdout.write(`${JSON.stringify({ ok: false, error: (e as Error).message }, null, 2)}\n`);
      else process.stderr.write(`${(e as Error).message}\n`);
      process.exitCode = 1;
      return;
    }
    if (argv.json) process.stdout.write(`${JSON.stringify({ ok: true, ...d }, null, 2)}\n`);
    else process.stdout.write(`${formatDiagnostics(d)}\n`);
  },
};

export default doctor;
