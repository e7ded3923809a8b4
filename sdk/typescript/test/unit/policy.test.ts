import { describe, expect, it } from "vitest";
import { Backoff, Fallback } from "../../src/policy.js";

describe("backoff", () => {
  it("stays within min and the growing cap, and resets", () => {
    let r = 0;
    const values = [0, 1, 0.5, 1, 1, 1, 1, 1, 1];
    const backoff = new Backoff(100, 1000, () => values[r++] ?? 1);
    expect(backoff.next()).toBe(100); // attempt 0: [100, 100]
    expect(backoff.next()).toBe(200); // attempt 1: cap 200, random 1
    expect(backoff.next()).toBe(250); // attempt 2: cap 400, random 0.5
    expect(backoff.next()).toBe(800);
    expect(backoff.next()).toBe(1000); // capped at max
    expect(backoff.attempts).toBe(5);
    backoff.reset();
    expect(backoff.cap()).toBe(100);
  });

  it("jitters between min and cap", () => {
    const backoff = new Backoff(100, 5000);
    for (let i = 0; i < 200; i++) {
      const cap = backoff.cap();
      const d = backoff.next();
      expect(d).toBeGreaterThanOrEqual(100);
      expect(d).toBeLessThanOrEqual(cap);
    }
  });
});

describe("fallback (same rule as client/src/fallback.rs)", () => {
  it("switches after exactly the threshold and back on success", () => {
    const f = new Fallback(3);
    expect(f.failuresLeft()).toBe(3);
    expect(f.record("failed")).toBe("retry");
    expect(f.record("failed")).toBe("retry");
    expect(f.failuresLeft()).toBe(1);
    expect(f.polling).toBe(false);
    expect(f.record("failed")).toBe("switch_to_polling");
    expect(f.polling).toBe(true);
    expect(f.failuresLeft()).toBeUndefined();
    expect(f.record("failed")).toBe("keep_polling");
    expect(f.record("short")).toBe("keep_polling");
    expect(f.record("connected")).toBe("back_to_long");
    expect(f.failures).toBe(0);
    expect(f.record("connected")).toBe("connected");
  });

  it("resets the count on success and switches at once on short mode", () => {
    const f = new Fallback(3);
    for (let i = 0; i < 5; i++) {
      expect(f.record("failed")).toBe("retry");
      expect(f.record("failed")).toBe("retry");
      expect(f.record("connected")).toBe("connected");
    }
    expect(f.record("short")).toBe("switch_to_polling");
    const never = new Fallback(0);
    for (let i = 0; i < 10; i++) expect(never.record("failed")).toBe("retry");
    expect(never.failuresLeft()).toBeUndefined();
  });
});
