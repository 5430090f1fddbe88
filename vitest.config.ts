import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/setup/global-setup.ts'],
    reporters: ['default', './tests/setup/summary-reporter.ts'],
    // The CLI suites spawn the CLI many times per test; on 2 busy cores one test can take 30 s.
    testTimeout: 90_000,
    hookTimeout: 120_000,
  },
});
