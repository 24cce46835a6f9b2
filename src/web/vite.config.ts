/**
 * Builds the playground SPA into dist/web, which `harmon serve` serves at `/`. Paths are taken
 * from this file's location so the build works from any working directory.
 */
import { defineConfig } from 'vite';

const here = new URL('.', import.meta.url).pathname;

export default defineConfig({
  root: here,
  base: '/',
  logLevel: 'warn',
  build: {
    outDir: `${here}../../dist/web`,
    emptyOutDir: true,
    target: 'es2022',
    // A small app: one JS chunk and one CSS file, no source maps shipped to users.
    sourcemap: false,
    reportCompressedSize: false,
  },
});
