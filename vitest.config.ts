import { configDefaults, defineConfig } from 'vitest/config';

// Browser tests (*.browser.test.ts: real Chromium) run after every other file has finished, so
// the CPU-heavy browser does not starve the timing-sensitive process tests (crash, load).
const BROWSER = 'apps/web/test/**/*.browser.test.ts';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['packages/*/test/**/*.test.ts', 'apps/web/test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, BROWSER],
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'browser', include: [BROWSER], sequence: { groupOrder: 1 } } },
    ],
  },
});
