// HTTP reads beside the connection, with the client's token: a room's
// history (pages by seq) and replay (pages by offset from its start), served
// from the live log and the archive (docs/room-api.md, "History and
// replay"), and the user's inbox of kept notices (`room_started`…).

import { readJson } from "./polling.js";

/** A durable message of a history or replay page. */
export interface HistoryMessage {
  seq: number;
  kind: string;
  sender: string;
  /** Publish time, Unix ms. */
  tsMs: number;
  /** `tsMs` minus the room's start (negative before it). */
  offsetMs: number;
  priority: "high" | "normal" | "low";
  /** The JSON body; `undefined` when it was not JSON (see `bodyB64`). */
  body: unknown;
  /** A body that is not JSON, base64. */
  bodyB64?: string;
}

/** A page of history or replay. */
export interface HistoryPage {
  room: string;
  /** `live` (the room has live state) or `archive`. */
  source: "live" | "archive";
  /** Where offsets count from, Unix ms. */
  startedAtMs: number;
  /** Oldest first (history), by offset then seq (replay). */
  messages: HistoryMessage[];
  /** Some of the messages asked for are in neither the live log nor the archive. */
  truncated: boolean;
}

/** Which page of history: see `RoomcastClient.history`. */
export interface HistoryQuery {
  /** The oldest `limit` messages after this seq: page forward with the last seq seen. */
  afterSeq?: number;
  /** Without `afterSeq`: the newest `limit` below this seq: page backward with the first seq seen. */
  beforeSeq?: number;
  /** 1 to 1,000 (server default 100). */
  limit?: number;
}

/** One kept notice of the user's inbox. */
export interface InboxItem {
  /** The user push it repeats (`room_started`). */
  kind: string;
  /** When it was kept (Unix ms): pass the newest seen as `afterMs` next time. */
  atMs: number;
  /** The user push's body (`{room, title, host, started_at_ms}`). */
  body: unknown;
}

/** The user's inbox. */
export interface Inbox {
  /** Whose (the token's uid). */
  uid: string;
  /** Newest first. */
  items: InboxItem[];
}

interface WirePage {
  room?: string;
  source?: string;
  started_at_ms?: number;
  truncated?: boolean;
  messages?: { seq?: number; kind?: string; sender?: string; ts_ms?: number; offset_ms?: number; priority?: string; body?: unknown }[];
}

/** The URL of a history page of `roomId` under the polling URL `base` (`…/v1/rooms`). */
export function historyUrl(base: string, roomId: string, query: HistoryQuery): string {
  const params = new URLSearchParams();
  if (query.beforeSeq !== undefined) params.set("before_seq", String(query.beforeSeq));
  if (query.afterSeq !== undefined) params.set("after_seq", String(query.afterSeq));
  if (query.limit !== undefined) params.set("limit", String(query.limit));
  const qs = params.toString();
  return `${base}/${encodeURIComponent(roomId)}/history${qs ? `?${qs}` : ""}`;
}

/** The URL of a replay page of `roomId` from `fromMs` after its start. */
export function replayUrl(base: string, roomId: string, fromMs: number, limit?: number): string {
  const params = new URLSearchParams({ from_ms: String(Math.trunc(fromMs)) });
  if (limit !== undefined) params.set("limit", String(limit));
  return `${base}/${encodeURIComponent(roomId)}/replay?${params}`;
}

/** The inbox URL beside the polling URL (`…/v1/rooms` → `…/v1/me/inbox`). */
export function inboxUrl(base: string, afterMs: number): string {
  const root = base.replace(/\/+$/, "").replace(/\/v1\/rooms$/, "");
  return `${root}/v1/me/inbox?after_ms=${Math.max(0, Math.trunc(afterMs))}`;
}

/** A history or replay page, normalised. */
export async function fetchPage(fetchFn: typeof fetch, url: string, token: string, timeoutMs: number): Promise<HistoryPage> {
  const response = await fetchFn(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(timeoutMs) });
  return pageOf((await readJson(response)) as WirePage);
}

/** The inbox, normalised. */
export async function fetchInbox(fetchFn: typeof fetch, url: string, token: string, timeoutMs: number): Promise<Inbox> {
  const response = await fetchFn(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(timeoutMs) });
  const body = (await readJson(response)) as { uid?: string; items?: { kind?: string; at_ms?: number; body?: unknown }[] };
  return {
    uid: body.uid ?? "",
    items: (body.items ?? []).map((i) => ({ kind: i.kind ?? "", atMs: i.at_ms ?? 0, body: i.body ?? null })),
  };
}

/** A wire page as the SDK gives it. */
export function pageOf(body: WirePage): HistoryPage {
  return {
    room: body.room ?? "",
    source: body.source === "archive" ? "archive" : "live",
    startedAtMs: body.started_at_ms ?? 0,
    truncated: body.truncated ?? false,
    messages: (body.messages ?? []).map((m) => {
      // A body that is not JSON comes as {"base64": "…"}.
      const b = m.body as { base64?: unknown } | undefined;
      const isBytes = b !== null && typeof b === "object" && Object.keys(b).length === 1 && typeof b.base64 === "string";
      const priority = m.priority === "high" || m.priority === "low" ? m.priority : "normal";
      return {
        seq: m.seq ?? 0,
        kind: m.kind ?? "",
        sender: m.sender ?? "",
        tsMs: m.ts_ms ?? 0,
        offsetMs: m.offset_ms ?? 0,
        priority,
        body: isBytes ? undefined : m.body,
        ...(isBytes ? { bodyB64: b.base64 as string } : {}),
      };
    }),
  };
}
