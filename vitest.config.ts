import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // End-to-end tests bind real UDP ports and spawn real peers; running files in
    // parallel on a 2-core machine only adds noise to timing-sensitive media.
    fileParallelism: false,
    // Lets leak tests force a collection before reading heap figures.
    execArgv: ["--expose-gc"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
