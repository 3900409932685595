import type { Reporter, TestCase, TestModule } from "vitest/node";

/**
 * Prints one plain closing line, "tests: N passed, N failed, N skipped", that CI systems
 * can read without knowing vitest's own summary format.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed" || underFailedSuite(test)) failed++;
        else skipped++;
      }
      if (mod.state() === "failed" && mod.children.size === 0) failed++;
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}

/**
 * Tests that never ran because a hook of their suite failed (a peer that would not start) are
 * failures, not skips: vitest reports them as skipped.
 */
function underFailedSuite(test: TestCase): boolean {
  for (let p: TestCase["parent"] | undefined = test.parent; p && p.type === "suite"; p = p.parent) {
    if (p.state() === "failed") return true;
  }
  return false;
}
