/** The run's time budget, shared by every phase so the quick run stays under its limit. */
export class Deadline {
  private readonly endsAt: number;

  constructor(budgetMs: number) {
    this.endsAt = performance.now() + budgetMs;
  }

  remainingMs(): number {
    return this.endsAt - performance.now();
  }
}
