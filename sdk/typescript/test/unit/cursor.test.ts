import { describe, expect, it } from "vitest";
import { accept, joinedCursor, type Cursor } from "../../src/cursor.js";

const msg = (seq: number) => ({ seq });
const delivery = (epoch: string, firstSeq: number, lastSeq: number, seqs: number[]) => ({
  epoch,
  firstSeq,
  lastSeq,
  messages: seqs.map(msg),
});
const seqs = (result: ReturnType<typeof accept<{ seq: number }>>) => {
  if (result.type !== "deliver") throw new Error(`expected deliver, got ${result.type}`);
  return result.messages.map((m) => m.seq);
};

describe("cursor (same rules as client/src/cursor.rs)", () => {
  it("delivers in order and advances to coverage", () => {
    const c = joinedCursor(undefined, "7", 10, false);
    expect(seqs(accept(c, delivery("7", 11, 12, [12, 11])))).toEqual([11, 12]);
    expect(c.lastSeq).toBe(12);
  });

  it("treats sampled ranges as covered, not as gaps", () => {
    const c: Cursor = { epoch: "1", lastSeq: 0 };
    expect(seqs(accept(c, delivery("1", 1, 5, [1, 5])))).toEqual([1, 5]);
    expect(seqs(accept(c, delivery("1", 6, 9, [])))).toEqual([]);
    expect(seqs(accept(c, delivery("1", 10, 10, [10])))).toEqual([10]);
    expect(c.lastSeq).toBe(10);
  });

  it("never takes a sampling server's frames for a gap", () => {
    // Deterministic pseudo-random streams: seqs left out at random, frames of
    // random length, some carrying nothing; ranges contiguous as the server
    // sends them (docs/protocol.md, "Sampling and coverage").
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let run = 0; run < 200; run++) {
      const n = 1 + Math.floor(rand() * 200);
      const kept = Array.from({ length: n }, () => rand() < 0.3);
      const c: Cursor = joinedCursor(undefined, "9", 0, false);
      const surfaced: number[] = [];
      for (let first = 1; first <= n; ) {
        const last = Math.min(n, first + Math.floor(rand() * 12));
        const carried: number[] = [];
        for (let s = first; s <= last; s++) if (kept[s - 1]) carried.push(s);
        surfaced.push(...seqs(accept(c, delivery("9", first, last, carried))));
        first = last + 1;
      }
      const want: number[] = [];
      for (let s = 1; s <= n; s++) if (kept[s - 1]) want.push(s);
      expect(surfaced).toEqual(want);
      expect(c.lastSeq).toBe(n);
    }
  });

  it("drops duplicates and overlaps", () => {
    const c: Cursor = { epoch: "1", lastSeq: 5 };
    expect(seqs(accept(c, delivery("1", 3, 5, [3, 4, 5])))).toEqual([]);
    expect(seqs(accept(c, delivery("1", 4, 7, [4, 5, 6, 6, 7])))).toEqual([6, 7]);
    expect(c.lastSeq).toBe(7);
  });

  it("refuses a gap without moving", () => {
    const c: Cursor = { epoch: "1", lastSeq: 5 };
    expect(accept(c, delivery("1", 8, 9, [8, 9]))).toEqual({ type: "gap", lastSeq: 5, firstSeq: 8 });
    expect(c.lastSeq).toBe(5);
    expect(seqs(accept(c, delivery("1", 6, 9, [6, 7, 8, 9])))).toEqual([6, 7, 8, 9]);
  });

  it("ignores other epochs, out-of-coverage messages and inverted ranges", () => {
    const c: Cursor = { epoch: "1", lastSeq: 5 };
    expect(accept(c, delivery("2", 1, 1, [1]))).toEqual({ type: "other_epoch" });
    expect(c).toEqual({ epoch: "1", lastSeq: 5 });
    expect(seqs(accept(c, delivery("1", 9, 3, [3])))).toEqual([]);
    expect(seqs(accept(c, delivery("1", 6, 7, [6, 7, 8])))).toEqual([6, 7]);
    expect(seqs(accept(c, delivery("1", 8, 8, [8])))).toEqual([8]);
  });

  it("keeps the position only for a recovered resume of the same epoch", () => {
    const prev: Cursor = { epoch: "3", lastSeq: 40 };
    expect(joinedCursor(prev, "3", 50, true)).toEqual({ epoch: "3", lastSeq: 40 });
    expect(joinedCursor(prev, "3", 50, false)).toEqual({ epoch: "3", lastSeq: 50 });
    expect(joinedCursor(prev, "4", 2, true)).toEqual({ epoch: "4", lastSeq: 2 });
    expect(joinedCursor(undefined, "4", 2, false)).toEqual({ epoch: "4", lastSeq: 2 });
    // Epochs are compared as strings: all 64 bits survive.
    const big = "18446744073709551615";
    expect(joinedCursor({ epoch: big, lastSeq: 1 }, big, 3, true)).toEqual({ epoch: big, lastSeq: 1 });
  });

  it("replays after a recovered resume, then goes live", () => {
    const c = joinedCursor({ epoch: "3", lastSeq: 40 }, "3", 42, true);
    expect(seqs(accept(c, delivery("3", 39, 42, [39, 40, 41, 42])))).toEqual([41, 42]);
    expect(seqs(accept(c, delivery("3", 43, 43, [43])))).toEqual([43]);
  });
});
