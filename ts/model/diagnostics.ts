/** Diagnostics for `cxrmask doctor`: the native facts plus a readable summary and warnings. */
import { type Diagnostics, diagnostics as nativeDiagnostics } from '../native.js';

/** What the addon was built against and runs on: torch, CUDA devices, BLAS, CPU features, threads. */
export function diagnostics(): Diagnostics {
  return nativeDiagnostics();
}

/** Problems worth fixing, in words (empty when all is well). */
export function warnings(d: Diagnostics): string[] {
  const w: string[] = [];
  if (!d.blas.fast)
    w.push(
      `torch uses a slow BLAS (${d.blas.blas || 'none'}); install a torch build with MKL or OpenBLAS (the pip wheel has MKL on x86_64)`,
    );
  if (d.torch.cudaBuild && !d.cuda.available)
    w.push('LibTorch is a CUDA build but no GPU is visible: running on CPU (fine for tests and the demo)');
  return w;
}

export function formatDiagnostics(d: Diagnostics): string {
  const lines = [
    `torch        ${d.torch.version} (${d.torch.cudaBuild ? `CUDA ${d.cuda.version} build` : 'CPU build'}, cxx11 ABI ${d.torch.cxx11Abi ? 'yes' : 'no'}, linked via ${d.torch.linkedVia})`,
    `cuda         ${d.cuda.available ? `available: ${d.cuda.devices.map((x) => `[${x.index}] ${x.name}`).join(', ')}` : 'not available'}${d.cuda.available ? `, cuDNN ${d.cuda.cudnn ? 'yes' : 'no'}` : ''}`,
    `blas         ${d.blas.blas || 'none'} (lapack ${d.blas.lapack || 'none'}, oneDNN ${d.blas.mkldnn ? 'yes' : 'no'})`,
    `cpu          ${d.cpu.capability || '?'}; bf16 ${d.cpu.bf16 ? 'yes (AVX512-BF16/AMX)' : 'no'}`,
    `threads      intra-op ${d.threads.intraOp}, inter-op ${d.threads.interOp}${d.threads.requested ? ` (requested ${d.threads.requested})` : ''}`,
    `addon        ${d.addonPath}`,
  ];
  for (const w of warnings(d)) lines.push(`warning      ${w}`);
  return lines.join('\n');
}
