import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// 'tensorkiln' is the sources here (package.json's exports point at the compiled dist/), as in tsconfig's paths.
const src = (f: string) => fileURLToPath(new URL(`./src/${f}`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^tensorkiln$/, replacement: src('index.ts') },
      { find: /^tensorkiln\/api$/, replacement: src('api/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Limits catch hangs only: ten times what a quiet machine needs, for 2 cores shared by several runs.
    // No test asserts a duration; speed is measured by npm run bench.
    testTimeout: 1_200_000,
    hookTimeout: 3_600_000,
    pool: 'forks',
  },
});
