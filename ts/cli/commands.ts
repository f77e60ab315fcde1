/**
 * Each command's usage and one-line description, apart from its module: `cxrmask --help` lists every
 * command from here, and main.ts loads a command's module (and all it imports) only when that command
 * runs or shows its own help, so the CLI starts fast and within a small open-file limit.
 */
export const COMMAND_TEXT = {
  demo: {
    command: 'demo',
    describe:
      'Generate a synthetic MIMIC-CXR-JPG + CheXmask data set, cache it, run the whole grid (zero-shot, linear probing, joint fine-tuning × original/masked × 3 seeds) with the tiny model and print Table 2',
  },
  run: {
    command: 'run',
    describe:
      'Run the whole grid: zero-shot, linear probing and joint fine-tuning, each trained on original and masked images, tested on both, for every seed; writes results.json, table2.md, per_disease.md, plots and report.md/html in a new run folder',
  },
  zeroshot: {
    command: 'zeroshot',
    describe:
      'Zero-shot classification with prompts (default "a chest X-ray showing {finding}") on original and masked test images; two protocols: per-finding scores (multi-label metrics) and 5-way softmax (top-1)',
  },
  train: {
    command: 'train',
    describe:
      'Train linear-probe or joint fine-tuning models (BCE, AdamW, model selection on validation, a checkpoint per epoch) on original and/or masked images, then test each on both; resumable with `cxrmask run --resume`',
  },
  eval: {
    command: 'eval <run>',
    describe:
      'Re-evaluate a run folder from its stored validation/test predictions (e.g. another threshold rule or primary metric); rewrites results.json, table2.md, per_disease.md, plots and the report',
  },
  predict: {
    command: 'predict <image>',
    describe:
      'Per-finding probabilities for one chest X-ray, as given and with its CheXmask lung/heart contours drawn in (inference-time masking); zero-shot without --checkpoint',
  },
  serve: {
    command: 'serve',
    describe:
      'HTTP service: POST a chest X-ray JPEG to /predict → probabilities on the original and on the lung/heart-masked image (CheXmask row by dicomId, or predicted by --segmenter); /healthz, /metrics',
  },
  index: {
    command: 'index',
    describe:
      'Index a dataset root (frontal views, five labels, split, CheXmask id) into index.jsonl + summary.json',
  },
  cache: {
    command: 'cache',
    describe: 'Build the preprocessed image cache (224² uint8 planes + contour maps, sharded, resumable)',
  },
  overlay: {
    command: 'overlay',
    describe: "Draw the CheXmask contours of one image (Eq. 1) and write a picture like the paper's Figure 1",
  },
  explain: {
    command: 'explain',
    describe:
      'Attribution map of one finding for an image, on the original and the masked input (PNG + JSON)',
  },
  synth: {
    command: 'synth',
    describe:
      'Generate a synthetic dataset tree in MIMIC-CXR-JPG or NIH ChestX-ray14 layout and a CheXmask-shaped CSV for it',
  },
  doctor: {
    command: 'doctor',
    describe: 'Check the native layer: LibTorch version, CUDA devices, BLAS, threads, addon path',
  },
  segmenter: {
    command: 'segmenter <action>',
    describe:
      "Train the lung/heart segmenter on a cache (train split, validation each epoch, best + resumable checkpoints), or evaluate it: Dice and HD95 per structure vs CheXmask, next to CheXmask's Dice RCA",
  },
  export: {
    command: 'export',
    describe:
      'Export a model to TorchScript with the exporters shipped in the package: BiomedCLIP (random init or a published checkpoint) or the lung/heart segmenter (random init; train it with `cxrmask segmenter train`)',
  },
  setup: {
    command: 'setup',
    describe:
      'Find LibTorch (LIBTORCH / Torch_DIR, a Python torch on PATH, else the pinned venv in ~/.cache/cxrmask, created when missing) and build the native addon; what `npm install cxrmask` runs',
  },
} as const satisfies Record<string, { command: string; describe: string }>;

/** The command names, in the order `--help` lists them. */
export type CommandName = keyof typeof COMMAND_TEXT;
