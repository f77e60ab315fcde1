/**
 * What Classifier and Segmenter share on top of NativeLifecycle: their checkpoint files. A save or a
 * load is refused before it is queued when the path cannot be one (not a string, a FIFO, a folder), a
 * save is written to a temp file and renamed into place after a re-check, and each keeps the caller's
 * stack.
 */
import { checkPathArg, refuseNonFile, saveTarget } from '../common/files.js';
import { withAtomicPath } from '../common/io.js';
import { parseOptions } from '../common/options.js';
import { withJsStack } from './js-stack.js';
import { NativeLifecycle } from './lifecycle.js';
import { SaveSchema } from './options.js';

/** A native model with checkpoint files. */
export interface NativeCheckpointed {
  dispose(): void;
  save(path: string, weightsOnly?: boolean): Promise<void>;
  load(path: string): Promise<void>;
}

export abstract class CheckpointedLifecycle<N extends NativeCheckpointed> extends NativeLifecycle<N> {
  protected saveFile(path: string, options: unknown): Promise<void> {
    checkPathArg(path);
    const { weightsOnly, links } = parseOptions(SaveSchema, options, `${this.what}.save`);
    const native = this.live();
    try {
      saveTarget(path, links); // refused before queueing; checked again before the rename (withAtomicPath)
    } catch (e) {
      return Promise.reject(e);
    }
    const stack = new Error(`${this.what}.save`);
    // the addon writes a temp file; the rename onto the path is withAtomicPath's, after its re-check
    return this.queue.run(() =>
      withAtomicPath(path, (tmp) => withJsStack(native.save(tmp, weightsOnly), stack), { links }),
    );
  }

  /** `loaded` runs once the file is in, before the queue moves on. */
  protected loadFile(path: string, loaded?: () => void): Promise<void> {
    checkPathArg(path);
    try {
      refuseNonFile(path); // a FIFO would block the compute thread, a device never end
    } catch (e) {
      return Promise.reject(e);
    }
    const native = this.live();
    const stack = new Error(`${this.what}.load`);
    return this.queue.run(async () => {
      await withJsStack(native.load(path), stack);
      loaded?.();
    });
  }
}
