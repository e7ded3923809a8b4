// Reconnect delays and the long-connection → polling rule (pure, no I/O):
// the same policy as the Rust SDK (client/src/backoff.rs, fallback.rs).

/** Exponential backoff with full jitter: attempt n waits a random delay in [min, min(max, min·2^n)]. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }

  cap(): number {
    return Math.min(Math.max(this.maxMs, this.minMs), this.minMs * 2 ** Math.min(this.attempt, 30));
  }

  next(): number {
    const cap = this.cap();
    this.attempt += 1;
    return this.minMs + this.random() * (cap - this.minMs);
  }
}

export type Outcome = "failed" | "short" | "connected";
export type Step = "retry" | "switch_to_polling" | "keep_polling" | "connected" | "back_to_long";

/** Counts consecutive failed long-connection attempts; switches to polling after `threshold`. */
export class Fallback {
  private consecutive = 0;
  private isPolling = false;
  constructor(private readonly threshold: number) {}

  get polling(): boolean {
    return this.isPolling;
  }

  get failures(): number {
    return this.consecutive;
  }

  /** Failures left before switching; undefined when none will switch. */
  failuresLeft(): number | undefined {
    if (this.isPolling || this.threshold === 0) return undefined;
    return Math.max(0, this.threshold - this.consecutive);
  }

  record(outcome: Outcome): Step {
    if (outcome === "connected") {
      this.consecutive = 0;
      const was = this.isPolling;
      this.isPolling = false;
      return was ? "back_to_long" : "connected";
    }
    if (this.isPolling) {
      this.consecutive += 1;
      return "keep_polling";
    }
    if (outcome === "short") {
      this.isPolling = true;
      return "switch_to_polling";
    }
    this.consecutive += 1;
    if (this.threshold > 0 && this.consecutive >= this.threshold) {
      this.isPolling = true;
      return "switch_to_polling";
    }
    return "retry";
  }
}
