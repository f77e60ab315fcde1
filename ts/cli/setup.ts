/** `cxrmask setup`: reruns the package's install step (scripts/install.mjs): LibTorch, venv, addon build. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { packageRoot } from '../native.js';
import { COMMAND_TEXT } from './commands.js';

export const setupCommand: CommandModule<object, object> = {
  ...COMMAND_TEXT.setup,
  handler: () => {
    const r = spawnSync(process.execPath, [join(packageRoot, 'scripts', 'install.mjs')], {
      stdio: 'inherit',
      env: { ...process.env, CXRMASK_SKIP_BUILD: '' },
    });
    process.exitCode = r.status ?? 1;
  },
};

export default setupCommand;
