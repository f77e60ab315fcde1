/**
 * Every error class the library throws on purpose, in one place. NativeError is what a failed native
 * op rejects with; the others are defined next to the code that throws them and only re-exported here.
 */

export { DataError, type DataErrorWhere } from './data/errors.js';
export { ConfigError } from './experiment/config.js';
export { InterruptedError } from './experiment/train.js';
export { NativeError, type NativeErrorCode } from './native-error.js';
