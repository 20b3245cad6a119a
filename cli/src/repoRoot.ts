import { fileURLToPath } from 'node:url';

/** This file is cli/dist/src/repoRoot.js once built: the checkout is three levels up. */
export function repoRoot(): string {
  return fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
}
