// The JSON subprotocol v2 (`roomcast.v2.json`, docs/protocol.md): frames as
// the server sends them, and the client frames this SDK sends.

/** The WebSocket subprotocol this SDK speaks. */
export const SUBPROTOCOL = "roomcast.v2.json";

/** Error and reply codes (docs/protocol.md, "Error codes"). */
export const Code = {
  OK: 0,
  BAD_REQUEST: 1,
  MALFORMED: 2,
  UNKNOWN_FRAME: 3,
  TOO_LARGE: 4,
  UNAUTHENTICATED: 5,
  TOKEN_EXPIRED: 6,
  FORBIDDEN: 7,
  ROOM_NOT_FOUND: 8,
  NOT_JOINED: 9,
  RATE_LIMITED: 10,
  SLOW_CONSUMER: 11,
  UNAVAILABLE: 12,
  INTERNAL: 13,
  SHUTTING_DOWN: 14,
  ROOM_ENDED: 15,
  HELLO_REQUIRED: 16,
  TOKEN_REVOKED: 17,
  TOO_MANY_SESSIONS: 18,
  INVALID_TEXT: 19,
} as const;
export type CodeName = keyof typeof Code;

const CODE_NAMES = Object.keys(Code) as CodeName[];

/** The name of a numeric code (`INTERNAL` for numbers this SDK does not know). */
export function codeName(code: number): CodeName {
  return CODE_NAMES.find((name) => Code[name] === code) ?? "INTERNAL";
}

/** A refused request or a failed connection, with the server's code. */
export class RoomcastError extends Error {
  readonly code: CodeName;
  constructor(code: CodeName, message: string) {
    super(message ? `${code}: ${message}` : code);
    this.name = "RoomcastError";
    this.code = code;
  }
}

/** Message priority: never sampled (high), sampled in very large rooms (low). */
export const Priority = { NORMAL: 0, HIGH: 1, LOW: 2 } as const;

/** A durable room message (wire form). */
export interface WireMessage {
  seq?: number;
  kind?: string;
  body?: unknown;
  body_b64?: string;
  sender?: string;
  ts_ms?: number;
  priority?: number;
}

export interface WireSnapshot {
  room?: string;
  title?: string;
  role?: string;
  members?: number;
  state?: unknown;
  state_b64?: string;
}

export interface WireJoined {
  ref?: number;
  room?: string;
  epoch?: string;
  start_seq?: number;
  recovered?: boolean;
  snapshot?: WireSnapshot;
}

export interface WireDelivery {
  room?: string;
  epoch?: string;
  first_seq?: number;
  last_seq?: number;
  messages?: WireMessage[];
}

export interface WireEphemeral {
  room?: string;
  kind?: string;
  body?: unknown;
  body_b64?: string;
  ts_ms?: number;
}

export interface WireWelcome {
  session_id?: string;
  uid?: string;
  heartbeat_ms?: number;
  max_frame_bytes?: number;
  node_id?: string;
}

export interface WireReply {
  ref?: number;
  code?: number;
  message?: string;
  body?: unknown;
  body_b64?: string;
}

export interface WireError {
  code?: number;
  message?: string;
  ref?: number;
  room?: string;
}

/** The answer to a `refresh`: the session now runs on that token. */
export interface WireRefreshed {
  ref?: number;
  /** The new token's expiry, Unix milliseconds. */
  expires_at_ms?: number;
}

/** The session's token expires at `expires_at_ms` (Unix ms): refresh before then. */
export interface WireTokenExpiring {
  expires_at_ms?: number;
}

/** One server frame, externally tagged by kind. */
export interface ServerFrame {
  frame?: {
    welcome?: WireWelcome;
    joined?: WireJoined;
    delivery?: WireDelivery;
    ephemeral?: WireEphemeral;
    reply?: WireReply;
    lagged?: { room?: string; resume_after_seq?: number };
    go_away?: { reason?: string; reconnect_after_ms?: number };
    error?: WireError;
    pong?: { client_time_ms?: number; server_time_ms?: number };
    left?: { ref?: number; room?: string; reason?: string };
    refreshed?: WireRefreshed;
    token_expiring?: WireTokenExpiring;
  };
}

/** Where a client is in one room's stream; `epoch` is an opaque decimal string. */
export interface Resume {
  epoch: string;
  lastSeq: number;
}

export function helloFrame(token: string, deviceId: string, clientVersion: string): string {
  return JSON.stringify({ frame: { hello: { token, device_id: deviceId, client_version: clientVersion } } });
}

export function joinFrame(ref: number, room: string, resume?: Resume): string {
  const join: Record<string, unknown> = { ref, room };
  if (resume) join.resume = { epoch: resume.epoch, last_seq: resume.lastSeq };
  return JSON.stringify({ frame: { join } });
}

export function leaveFrame(ref: number, room: string): string {
  return JSON.stringify({ frame: { leave: { ref, room } } });
}

export function publishFrame(ref: number, room: string, action: string, payload: unknown): string {
  return JSON.stringify({ frame: { publish: { ref, room, action, payload: payload ?? {} } } });
}

/** A new token for the open session (same uid); answered by `refreshed` or an `error` with this ref. */
export function refreshFrame(ref: number, token: string): string {
  return JSON.stringify({ frame: { refresh: { ref, token } } });
}

export function pingFrame(nowMs: number): string {
  return JSON.stringify({ frame: { ping: { client_time_ms: Math.floor(nowMs) } } });
}

/** Parse one text message; `undefined` for anything that is not a frame object. */
export function parseServerFrame(text: string): ServerFrame | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" ? (value as ServerFrame) : undefined;
  } catch {
    return undefined;
  }
}
