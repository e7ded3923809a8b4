// HTTP for clients without a long connection (docs/room-api.md, "Polling
// clients"): long polls, actions and the room state, with the token as a
// bearer. Replies are normalised to what the socket gives.

import type { Cursor } from "./cursor.js";
import { RoomcastError, type CodeName } from "./protocol.js";
import type { Message } from "./room.js";
import type { Snapshot } from "./types.js";

export interface PollReply {
  epoch: string;
  recovered: boolean;
  firstSeq: number;
  lastSeq: number;
  nextAfter: number;
  messages: Message[];
  snapshot: Snapshot | null;
  pollAfterMs: number;
}

interface WirePoll {
  epoch?: number | string;
  head_seq?: number;
  first_seq?: number;
  last_seq?: number;
  recovered?: boolean;
  messages?: { seq?: number; kind?: string; sender?: string; ts_ms?: number; priority?: string; body?: unknown }[];
  snapshot?: Snapshot | null;
  next_after?: number;
  poll_after_ms?: number;
}

const PRIORITIES: Record<string, number> = { normal: 0, high: 1, low: 2 };

/** One long poll from `cursor` (or from nothing: a restart with a snapshot). */
export async function pollRoom(
  fetchFn: typeof fetch,
  url: string,
  token: string,
  cursor: Cursor | undefined,
  waitSecs: number,
  signal: AbortSignal,
): Promise<PollReply> {
  const params = new URLSearchParams({
    after: String(cursor?.lastSeq ?? 0),
    epoch: cursor?.epoch ?? "0",
    wait: String(waitSecs),
  });
  const response = await fetchFn(`${url}?${params}`, { headers: { authorization: `Bearer ${token}` }, signal });
  const body = (await readJson(response)) as WirePoll;
  return {
    epoch: String(body.epoch ?? "0"),
    recovered: body.recovered ?? false,
    firstSeq: body.first_seq ?? 0,
    lastSeq: body.last_seq ?? 0,
    nextAfter: body.next_after ?? body.head_seq ?? 0,
    snapshot: body.snapshot ?? null,
    pollAfterMs: body.poll_after_ms ?? 0,
    messages: (body.messages ?? []).map((m) => {
      // Polling sends a body that is not JSON as {"base64": "…"}.
      const b = m.body as { base64?: unknown } | undefined;
      const isBytes = b !== null && typeof b === "object" && Object.keys(b).length === 1 && typeof b.base64 === "string";
      return {
        seq: m.seq ?? 0,
        kind: m.kind ?? "",
        body: isBytes ? undefined : m.body,
        ...(isBytes ? { bodyB64: b.base64 as string } : {}),
        sender: m.sender ?? "",
        tsMs: m.ts_ms ?? 0,
        priority: PRIORITIES[m.priority ?? "normal"] ?? 0,
      };
    }),
  };
}

/** `POST …/actions`: the same action table as a socket publish. */
export async function postAction(
  fetchFn: typeof fetch,
  url: string,
  token: string,
  action: string,
  payload: unknown,
  timeoutMs: number,
): Promise<unknown> {
  const response = await fetchFn(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ action, payload: payload ?? {} }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await readJson(response)) as { body?: unknown };
  return body.body ?? null;
}

/** `GET …/state`: the snapshot a join gets. */
export async function fetchState(fetchFn: typeof fetch, url: string, token: string, timeoutMs: number): Promise<Snapshot> {
  const response = await fetchFn(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(timeoutMs) });
  return (await readJson(response)) as Snapshot;
}

/** The JSON of a 2xx, or the API's error as a RoomcastError. */
export async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  let value: unknown;
  try {
    value = text ? JSON.parse(text) : {};
  } catch {
    throw new RoomcastError("UNAVAILABLE", `HTTP ${response.status}: not JSON`);
  }
  if (response.ok) return value;
  const error = (value as { error?: { code?: string; message?: string } }).error;
  const code = (error?.code ?? "").toUpperCase();
  const known: CodeName = (
    ["BAD_REQUEST", "UNAUTHENTICATED", "TOKEN_EXPIRED", "FORBIDDEN", "ROOM_NOT_FOUND", "ROOM_ENDED", "RATE_LIMITED", "TOO_LARGE"] as const
  ).find((c) => c === code) ?? "UNAVAILABLE";
  throw new RoomcastError(known, error?.message ?? `HTTP ${response.status}`);
}
