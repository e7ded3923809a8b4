// Per-room stream position: dedup, gap detection and resume. The same rules
// as the Rust SDK's client/src/cursor.rs.

import type { Resume } from "./protocol.js";

/** Where the client is in one room's stream: epoch and the highest seq covered. */
export interface Cursor {
  epoch: string;
  lastSeq: number;
}

export interface Covered<M extends { seq: number }> {
  epoch: string;
  firstSeq: number;
  lastSeq: number;
  messages: M[];
}

export type Accept<M> =
  /** Surface these messages in this order (possibly none: all seen or sampled out). */
  | { type: "deliver"; messages: M[] }
  /** The delivery starts after lastSeq + 1: nothing accepted; re-join with resume. */
  | { type: "gap"; lastSeq: number; firstSeq: number }
  /** Another epoch than the cursor's: ignored until the Joined for it. */
  | { type: "other_epoch" };

/**
 * The position after a Joined: a recovered resume of the same epoch keeps the
 * old position (the missed messages follow); anything else starts at startSeq.
 */
export function joinedCursor(
  previous: Cursor | undefined,
  epoch: string,
  startSeq: number,
  recovered: boolean,
): Cursor {
  if (previous && recovered && previous.epoch === epoch && previous.lastSeq <= startSeq) {
    return { ...previous };
  }
  return { epoch, lastSeq: startSeq };
}

export function resumeOf(cursor: Cursor): Resume {
  return { epoch: cursor.epoch, lastSeq: cursor.lastSeq };
}

/** Take a delivery: drop what was seen, refuse gaps, advance to its coverage. */
export function accept<M extends { seq: number }>(cursor: Cursor, delivery: Covered<M>): Accept<M> {
  if (delivery.epoch !== cursor.epoch) return { type: "other_epoch" };
  if (delivery.lastSeq < delivery.firstSeq || delivery.lastSeq <= cursor.lastSeq) {
    return { type: "deliver", messages: [] };
  }
  if (delivery.firstSeq > cursor.lastSeq + 1) {
    return { type: "gap", lastSeq: cursor.lastSeq, firstSeq: delivery.firstSeq };
  }
  const after = cursor.lastSeq;
  const upto = delivery.lastSeq;
  const seen = new Set<number>();
  const messages = delivery.messages
    // Outside the frame's own coverage is a server bug; surfacing it would break dedup.
    .filter((m) => m.seq > after && m.seq <= upto && !seen.has(m.seq) && seen.add(m.seq))
    .sort((a, b) => a.seq - b.seq);
  cursor.lastSeq = upto;
  return { type: "deliver", messages };
}
