import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'routes/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // two cores: a few files at a time keeps timing-sensitive tests honest
    maxWorkers: 2,
    minWorkers: 1
  }
})
