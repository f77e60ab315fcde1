/** Moved to ts/masks/geometry.ts (used by masks and images alike); re-exported for existing imports. */
export * from '../masks/geometry.js';
