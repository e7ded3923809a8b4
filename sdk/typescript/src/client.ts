// The connection: route → WebSocket (JSON v2) → hello → join with resume,
// HTTP long polling after 3 failed connects and back, backoff with jitter,
// GoAway. One instance serves many rooms.

import { Emitter } from "./emitter.js";
import { Backoff, Fallback, type Step } from "./policy.js";
import { pollRoom, postAction, fetchState, type PollReply } from "./polling.js";
import { fetchInbox, fetchPage, historyUrl, inboxUrl, replayUrl, type HistoryPage, type HistoryQuery, type Inbox } from "./reads.js";
import {
  Code, RoomcastError, SUBPROTOCOL, codeName, helloFrame, joinFrame, leaveFrame, parseServerFrame,
  pingFrame, publishFrame, refreshFrame, type Resume, type ServerFrame, type WireMessage, type WireSnapshot,
} from "./protocol.js";
import { Room, type Message, type RoomLink } from "./room.js";
import type { Snapshot, TokenExpiring, TokenRefreshFailed, TokenRefreshed, UserEvent } from "./types.js";
import { resumeOf } from "./cursor.js";

/** A WebSocket constructor: the browser's, Node 22's global, or the `ws` package. */
export type WebSocketLike = {
  new (url: string, protocols?: string | string[]): WebSocketInstance;
};
export interface WebSocketInstance {
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface ClientOptions {
  /** Router base URL, e.g. `http://127.0.0.1:8600`. */
  routerUrl: string;
  /** The uid the token is for (the router's rollout hashes it). */
  uid: string;
  /**
   * The app-issued JWT, or a function returning one (the token provider). A
   * function is called for the first connect, after `TOKEN_EXPIRED` or
   * `TOKEN_REVOKED`, and when the server warns that the open session's token
   * expires soon (`tokenExpiring`): its token is then sent on the open socket
   * (`refresh`), without reconnecting. With a string, call `setToken()` on
   * `tokenExpiring` instead.
   */
  token: string | (() => string | Promise<string>);
  deviceId?: string;
  appVersion?: string;
  /** Router platform name (`web`, `ios`, `linux`, …); browsers default to `web`. */
  platform?: string;
  /** WebSocket constructor; defaults to the global one (browsers, Node ≥ 22). On Node 20 pass `ws`. */
  WebSocket?: WebSocketLike;
  /** fetch implementation; defaults to the global one. */
  fetch?: typeof fetch;
  /** Consecutive failed long-connection attempts before polling (default 3; 0 never). */
  fallbackAfterFailures?: number;
  /** While polling, how often the long connection is tried again (default 30 000 ms). */
  longRetryIntervalMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** One endpoint's budget: connect + hello → welcome (default 5 000 ms). */
  connectTimeoutMs?: number;
  /** Routing, joins, publishes, leaves, HTTP actions (default 10 000 ms). */
  requestTimeoutMs?: number;
  /** How long one long poll may wait on the server (default 25 s). */
  pollingWaitSecs?: number;
  /** Random source for jitter (tests). */
  random?: () => number;
}

export type Transport = "ws" | "polling";
export type Status = "idle" | "connecting" | "connected" | "polling" | "closed";

export interface ConnectionState {
  status: Status;
  transport: Transport | null;
  /** The conn node serving the socket. */
  nodeId: string | null;
  /** Consecutive failed long-connection attempts. */
  failures: number;
  /** Why the client stopped (`closed`) or the last failure. */
  error: string | null;
}

export interface ClientEvents {
  state: ConnectionState;
  /** User-targeted events (invites, kicks, room started). */
  user: UserEvent;
  /** The server told this connection to go away (drain); it reconnects by itself. */
  goaway: { reason: string; reconnectAfterMs: number };
  /** Round trip of the last ping (ms). */
  rtt: number;
  /** The open session's token expires soon: the token function is asked for a new one, or call `setToken()`. */
  tokenExpiring: TokenExpiring;
  /** The open session now runs on the new token (`setToken()` or the token function). */
  tokenRefreshed: TokenRefreshed;
  /** A refresh failed; the session keeps its current token (and is closed at that token's expiry). */
  tokenRefreshFailed: TokenRefreshFailed;
}

interface RouteAnswer {
  mode: string;
  node_id?: string;
  endpoints?: { transport: string; url: string }[];
  polling_url?: string | null;
  heartbeat_ms?: number | null;
  retry_ms?: number | null;
}

type Pending =
  | { type: "join"; room: string }
  | { type: "publish"; resolve: (v: unknown) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  | { type: "leave"; resolve: () => void; timer: ReturnType<typeof setTimeout> }
  | { type: "refresh"; token: string; resolve: () => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> };

const VERSION = "0.1.0";
const AUTH_CODES = new Set<string>(["UNAUTHENTICATED", "TOKEN_EXPIRED", "TOKEN_REVOKED"]);
/** Refusals at the hello after which a token function is asked for another token. */
const ASK_AGAIN_CODES = new Set<string>(["TOKEN_EXPIRED", "TOKEN_REVOKED"]);

class AuthRefused extends RoomcastError {}

export class RoomcastClient extends Emitter<ClientEvents> implements RoomLink {
  private readonly opts: Required<Omit<ClientOptions, "WebSocket" | "fetch" | "token" | "random">> & ClientOptions;
  private token: string | undefined;
  private readonly rooms = new Map<string, Room>();
  private readonly pending = new Map<number, Pending>();
  private ref = 0;
  private ws: WebSocketInstance | undefined;
  private pollingBase: string | undefined;
  private readonly backoff: Backoff;
  private readonly fallback: Fallback;
  private stateValue: ConnectionState = { status: "idle", transport: null, nodeId: null, failures: 0, error: null };
  private running = false;
  private closed = false;
  private readonly wakers = new Set<() => void>();
  private readyWaiters: (() => void)[] = [];
  private readonly polls = new Map<string, AbortController>();

  constructor(options: ClientOptions) {
    super();
    this.opts = {
      deviceId: "",
      appVersion: VERSION,
      platform: typeof window === "undefined" ? "" : "web",
      fallbackAfterFailures: 3,
      longRetryIntervalMs: 30_000,
      backoffMinMs: 100,
      backoffMaxMs: 5_000,
      connectTimeoutMs: 5_000,
      requestTimeoutMs: 10_000,
      pollingWaitSecs: 25,
      ...options,
    };
    if (typeof options.token === "string") this.token = options.token;
    this.backoff = new Backoff(this.opts.backoffMinMs, this.opts.backoffMaxMs, options.random);
    this.fallback = new Fallback(this.opts.fallbackAfterFailures);
  }

  /** The connection's state now (also emitted as `state`). */
  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Start connecting (joins made before this wait for the connection). */
  connect(): this {
    if (!this.running && !this.closed) {
      this.running = true;
      void this.run();
    }
    return this;
  }

  /**
   * Replace the token. On an open socket it is sent at once (`refresh`) and
   * the promise resolves when the server took it (`tokenRefreshed` is
   * emitted); a refusal rejects with the server's `RoomcastError` (and emits
   * `tokenRefreshFailed`): the session stays up on its current token.
   * Otherwise (connecting, polling) the token is kept for the next hello and
   * poll and the promise resolves at once.
   */
  setToken(token: string): Promise<void> {
    if (this.closed) return Promise.reject(new RoomcastError("UNAVAILABLE", "client closed"));
    const ws = this.ws;
    if (!ws || this.stateValue.status !== "connected") {
      this.token = token;
      return Promise.resolve();
    }
    const ref = this.nextRef();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        this.refreshFailed(new RoomcastError("UNAVAILABLE", `no answer to refresh in ${this.opts.requestTimeoutMs} ms`), reject);
      }, this.opts.requestTimeoutMs);
      this.pending.set(ref, { type: "refresh", token, resolve, reject, timer });
      ws.send(refreshFrame(ref, token));
    });
  }

  /**
   * A room handle, not joined yet: attach listeners, then `await room.join()`,
   * so that no event (a resume's replay included) arrives before them.
   * `resume` starts from a saved position (e.g. one kept across a page reload).
   */
  room(roomId: string, options: { resume?: Resume } = {}): Room {
    let room = this.rooms.get(roomId);
    if (!room) {
      room = new Room(roomId, this, () => this.refetchState(roomId), options.resume);
      this.rooms.set(roomId, room);
    }
    return room;
  }

  /** Join a room and resolve once in (listeners added after this may miss the first events: see `room()`). */
  async join(roomId: string, options: { resume?: Resume } = {}): Promise<Room> {
    const room = this.room(roomId, options);
    await room.join();
    return room;
  }

  /** @internal */
  async joinRoom(room: Room): Promise<void> {
    if (this.closed) throw new RoomcastError("UNAVAILABLE", "client closed");
    if (this.rooms.get(room.id) !== room) this.rooms.set(room.id, room);
    const joined = new Promise<void>((resolve, reject) => room.joinWaiters.push({ resolve, reject }));
    this.connect();
    if (this.ws && this.stateValue.status === "connected") this.sendJoin(room);
    else if (this.stateValue.status === "polling") this.startPoll(room);
    try {
      await joined;
    } catch (error) {
      if (this.rooms.get(room.id) === room) this.rooms.delete(room.id);
      room.store.dispose();
      throw error;
    }
  }

  /**
   * A page of a room's durable messages by seq (`GET /v1/rooms/{id}/history`
   * with the client's token, under the read rule): for late joiners and ended
   * rooms, from the live log and the archive. Needs no joined room.
   */
  async history(roomId: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    const base = await this.httpBase();
    return fetchPage(this.fetchFn(), historyUrl(base, roomId, query), await this.currentToken(), this.opts.requestTimeoutMs);
  }

  /**
   * Replay a room from `fromMs` after its start (`GET /v1/rooms/{id}/replay`):
   * its messages with their offset from the start, for danmaku over a recording.
   */
  async replay(roomId: string, fromMs = 0, limit?: number): Promise<HistoryPage> {
    const base = await this.httpBase();
    return fetchPage(this.fetchFn(), replayUrl(base, roomId, fromMs, limit), await this.currentToken(), this.opts.requestTimeoutMs);
  }

  /**
   * The user's inbox (`GET /v1/me/inbox`): notices kept for users who were not
   * connected (`room_started`), newest first, those after `afterMs` only.
   */
  async inbox(afterMs = 0): Promise<Inbox> {
    const base = await this.httpBase();
    return fetchInbox(this.fetchFn(), inboxUrl(base, afterMs), await this.currentToken(), this.opts.requestTimeoutMs);
  }

  /** Stop: close the socket and polls, fail what is in flight. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopPolls();
    this.ws?.close(1000, "client closed");
    this.failInFlight("client closed");
    for (const room of this.rooms.values()) {
      room.onRefused(new RoomcastError("UNAVAILABLE", "client closed"));
      room.store.dispose();
    }
    this.rooms.clear();
    this.setState({ status: "closed", transport: null, nodeId: null });
    for (const wake of [...this.wakers]) wake();
  }

  // ---- RoomLink ----

  /** @internal */
  async publish(roomId: string, action: string, payload: unknown): Promise<unknown> {
    await this.ready();
    if (this.stateValue.status === "polling") {
      return postAction(this.fetchFn(), this.roomUrl(roomId, "actions"), await this.currentToken(), action, payload, this.opts.requestTimeoutMs);
    }
    const ws = this.ws;
    if (!ws) throw new RoomcastError("UNAVAILABLE", "not connected");
    const ref = this.nextRef();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new RoomcastError("UNAVAILABLE", `no reply to ${action} in ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      this.pending.set(ref, { type: "publish", resolve, reject, timer });
      ws.send(publishFrame(ref, roomId, action, payload));
    });
  }

  /** @internal */
  async leave(roomId: string): Promise<void> {
    const room = this.rooms.get(roomId);
    if (!room) return;
    this.rooms.delete(roomId);
    this.polls.get(roomId)?.abort();
    this.polls.delete(roomId);
    room.store.dispose();
    const ws = this.ws;
    if (!ws || this.stateValue.status !== "connected") return;
    const ref = this.nextRef();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        resolve();
      }, this.opts.requestTimeoutMs);
      this.pending.set(ref, { type: "leave", resolve, timer });
      ws.send(leaveFrame(ref, roomId));
    });
  }

  // ---- the connection loop ----

  private async run(): Promise<void> {
    let hintMs = 0;
    let first = true;
    while (!this.closed) {
      if (!first || hintMs > 0) await this.sleep(Math.max(hintMs, this.backoff.next()));
      first = false;
      hintMs = 0;
      if (this.closed) break;
      if (this.fallback.polling && this.pollingBase) {
        // Polling: keep the polls going and try the long connection now and then.
        this.setState({ status: "polling", transport: "polling", nodeId: null });
        this.startPolls();
        await this.sleep(this.opts.longRetryIntervalMs);
        if (this.closed) break;
      } else {
        this.setState({ status: "connecting", transport: null, nodeId: null });
      }
      let step: Step;
      let ws: { socket: WebSocketInstance; nodeId: string; heartbeatMs: number } | undefined;
      try {
        const route = await this.route();
        if (route.polling_url) this.pollingBase = route.polling_url.replace(/\/+$/, "");
        const endpoints = route.mode === "long" ? (route.endpoints ?? []).filter((e) => e.transport === "ws" && /^wss?:\/\//.test(e.url)) : [];
        step = endpoints.length === 0 ? this.fallback.record("short") : "retry";
        for (const endpoint of endpoints) {
          try {
            ws = await this.open(endpoint.url, route.node_id ?? "");
            step = this.fallback.record("connected");
            break;
          } catch (error) {
            if (error instanceof AuthRefused) throw error;
            step = this.fallback.record("failed");
            this.setState({ failures: this.fallback.failures, error: String((error as Error).message ?? error) });
            if (step === "switch_to_polling") break;
          }
        }
      } catch (error) {
        if (error instanceof AuthRefused) {
          if (typeof this.opts.token === "function" && ASK_AGAIN_CODES.has(error.code)) {
            this.token = undefined; // ask the token function again
            continue;
          }
          this.fail(error.message);
          break;
        }
        // The router is unreachable: count it like a failed connect.
        step = this.fallback.record("failed");
        this.setState({ failures: this.fallback.failures, error: String((error as Error).message ?? error) });
      }
      if (ws) {
        this.stopPolls();
        this.backoff.reset();
        hintMs = await this.serve(ws.socket, ws.nodeId, ws.heartbeatMs);
        continue;
      }
      if ((step === "switch_to_polling" || step === "keep_polling") && this.pollingBase) {
        this.setState({ status: "polling", transport: "polling", nodeId: null });
        this.startPolls();
        this.releaseReady();
      }
    }
  }

  private async route(): Promise<RouteAnswer> {
    const params = new URLSearchParams();
    const query = { uid: this.opts.uid, device_id: this.opts.deviceId, app_version: this.opts.appVersion, platform: this.opts.platform };
    for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
    const url = `${this.opts.routerUrl.replace(/\/+$/, "")}/v1/route?${params}`;
    const response = await this.fetchFn()(url, { signal: AbortSignal.timeout(this.opts.requestTimeoutMs) });
    if (!response.ok) throw new RoomcastError("UNAVAILABLE", `router answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
    return (await response.json()) as RouteAnswer;
  }

  /** Connect one endpoint and complete the hello. */
  private async open(url: string, routeNode: string): Promise<{ socket: WebSocketInstance; nodeId: string; heartbeatMs: number }> {
    const Ctor = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketLike }).WebSocket;
    if (!Ctor) throw new RoomcastError("UNAVAILABLE", "no WebSocket: pass options.WebSocket (the `ws` package on Node < 22)");
    const token = await this.currentToken();
    const socket = new Ctor(url, SUBPROTOCOL);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new RoomcastError("UNAVAILABLE", `no welcome from ${url} in ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
      const finish = (error?: Error, welcome?: { node_id?: string; heartbeat_ms?: number }) => {
        clearTimeout(timer);
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
        if (error || !welcome) {
          try {
            socket.close();
          } catch {
            /* already closed */
          }
          reject(error ?? new RoomcastError("UNAVAILABLE", "closed before welcome"));
        } else {
          resolve({ socket, nodeId: welcome.node_id || routeNode, heartbeatMs: welcome.heartbeat_ms ?? 25_000 });
        }
      };
      socket.onopen = () => socket.send(helloFrame(token, this.opts.deviceId, `roomcast-ts/${VERSION}`));
      socket.onerror = () => finish(new RoomcastError("UNAVAILABLE", `cannot connect to ${url}`));
      socket.onclose = (ev) => finish(new RoomcastError("UNAVAILABLE", `closed before welcome (${ev.code} ${ev.reason})`));
      socket.onmessage = (ev) => {
        const frame = typeof ev.data === "string" ? parseServerFrame(ev.data) : undefined;
        const f = frame?.frame;
        if (f?.welcome) finish(undefined, f.welcome);
        else if (f?.error) {
          const code = codeName(f.error.code ?? Code.INTERNAL);
          const Err = AUTH_CODES.has(code) ? AuthRefused : RoomcastError;
          finish(new Err(code, f.error.message ?? ""));
        }
      };
    });
  }

  /** Serve an open session until it ends; returns the reconnect hint (GoAway). */
  private serve(socket: WebSocketInstance, nodeId: string, heartbeatMs: number): Promise<number> {
    this.ws = socket;
    this.setState({ status: "connected", transport: "ws", nodeId, failures: 0, error: null });
    for (const room of this.rooms.values()) this.sendJoin(room);
    this.releaseReady();
    let hintMs = 0;
    const ping = setInterval(() => {
      try {
        socket.send(pingFrame(Date.now()));
      } catch {
        /* closing */
      }
    }, Math.max(1000, Math.floor(heartbeatMs / 2)));
    return new Promise((resolve) => {
      socket.onmessage = (ev) => {
        const frame = typeof ev.data === "string" ? parseServerFrame(ev.data) : undefined;
        if (frame) {
          const hint = this.onFrame(socket, frame);
          if (hint !== undefined) hintMs = hint;
        }
      };
      socket.onerror = () => undefined;
      socket.onclose = (ev) => {
        clearInterval(ping);
        socket.onmessage = socket.onclose = socket.onerror = null;
        if (this.ws === socket) this.ws = undefined;
        this.failInFlight(`connection closed (${ev.code} ${ev.reason})`);
        for (const room of this.rooms.values()) room.joining = undefined;
        if (!this.closed) this.setState({ status: "connecting", transport: null, nodeId: null, error: ev.reason || null });
        resolve(hintMs);
      };
    });
  }

  /** Handle one frame; returns a reconnect hint on GoAway. */
  private onFrame(socket: WebSocketInstance, frame: ServerFrame): number | undefined {
    const f = frame.frame;
    if (!f) return undefined;
    if (f.joined) {
      const j = f.joined;
      const roomId = j.ref ? this.takeJoin(j.ref) : j.room;
      const room = roomId ? this.rooms.get(roomId) : undefined;
      if (room && (j.ref === 0 || j.ref === undefined || room.joining === j.ref)) {
        room.onJoined({
          epoch: String(j.epoch ?? "0"),
          startSeq: j.start_seq ?? 0,
          recovered: j.recovered ?? false,
          snapshot: snapshotOf(j.snapshot, roomId ?? ""),
        });
      }
    } else if (f.delivery) {
      const d = f.delivery;
      const room = this.rooms.get(d.room ?? "");
      if (room && !room.onDelivery(String(d.epoch ?? "0"), d.first_seq ?? 0, d.last_seq ?? 0, (d.messages ?? []).map(messageOf))) {
        this.sendJoin(room);
      }
    } else if (f.ephemeral) {
      const e = f.ephemeral;
      if (!e.room) {
        if (e.kind && e.body !== undefined) this.emit("user", { kind: e.kind, body: e.body, tsMs: e.ts_ms ?? 0 } as UserEvent);
      } else {
        this.rooms.get(e.room)?.onEphemeral(e.kind ?? "", e.body, e.body_b64, e.ts_ms ?? 0);
      }
    } else if (f.reply) {
      const r = f.reply;
      const pending = this.pending.get(r.ref ?? 0);
      if (pending?.type === "publish") {
        this.pending.delete(r.ref ?? 0);
        clearTimeout(pending.timer);
        if ((r.code ?? 0) === Code.OK) pending.resolve(r.body ?? null);
        else pending.reject(new RoomcastError(codeName(r.code ?? Code.INTERNAL), r.message ?? ""));
      }
    } else if (f.error) {
      this.onError(f.error);
    } else if (f.left) {
      const l = f.left;
      const pending = this.pending.get(l.ref ?? 0);
      if (l.ref && pending?.type === "leave") {
        this.pending.delete(l.ref);
        clearTimeout(pending.timer);
        pending.resolve();
      } else if (l.room) {
        const room = this.rooms.get(l.room);
        this.rooms.delete(l.room);
        room?.onLeft(l.reason ?? "");
        room?.store.dispose();
      }
    } else if (f.go_away) {
      const reconnectAfterMs = f.go_away.reconnect_after_ms ?? 0;
      this.emit("goaway", { reason: f.go_away.reason ?? "", reconnectAfterMs });
      socket.close(1000, "going away");
      return reconnectAfterMs;
    } else if (f.pong) {
      if (f.pong.client_time_ms) this.emit("rtt", Date.now() - f.pong.client_time_ms);
    } else if (f.refreshed) {
      const ref = f.refreshed.ref ?? 0;
      const pending = this.pending.get(ref);
      if (pending?.type === "refresh") {
        this.pending.delete(ref);
        clearTimeout(pending.timer);
        this.token = pending.token;
        this.emit("tokenRefreshed", { expiresAtMs: f.refreshed.expires_at_ms ?? 0 });
        pending.resolve();
      }
    } else if (f.token_expiring) {
      this.emit("tokenExpiring", { expiresAtMs: f.token_expiring.expires_at_ms ?? 0 });
      this.renewToken();
    }
    return undefined;
  }

  private onError(error: { code?: number; message?: string; ref?: number; room?: string }): void {
    const code = codeName(error.code ?? Code.INTERNAL);
    const failure = new RoomcastError(code, error.message ?? "");
    const pending = error.ref ? this.pending.get(error.ref) : undefined;
    if (!pending) return; // connection-level: a close follows
    this.pending.delete(error.ref ?? 0);
    if (pending.type === "join") {
      const room = this.rooms.get(pending.room);
      if (room) {
        this.rooms.delete(pending.room);
        room.onRefused(failure);
      }
    } else if (pending.type === "publish") {
      clearTimeout(pending.timer);
      pending.reject(failure);
    } else if (pending.type === "refresh") {
      // The session keeps its current token (docs/protocol.md): no reconnect.
      clearTimeout(pending.timer);
      this.refreshFailed(failure, pending.reject);
    } else {
      clearTimeout(pending.timer);
      pending.resolve();
    }
  }

  /** `tokenExpiring`: ask the token function (if any) and refresh the open session. */
  private renewToken(): void {
    const source = this.opts.token;
    if (typeof source !== "function") return; // the app answers with setToken()
    void (async () => {
      let token: string;
      try {
        token = await source();
      } catch (error) {
        this.emit("tokenRefreshFailed", { error: error instanceof Error ? error : new Error(String(error)) });
        return;
      }
      if (this.closed) return;
      // A refusal was emitted as tokenRefreshFailed; nobody awaits this one.
      await this.setToken(token).catch(() => undefined);
    })();
  }

  private refreshFailed(error: Error, reject: (e: Error) => void): void {
    this.emit("tokenRefreshFailed", { error });
    reject(error);
  }

  private takeJoin(ref: number): string | undefined {
    const pending = this.pending.get(ref);
    if (pending?.type !== "join") return undefined;
    this.pending.delete(ref);
    return pending.room;
  }

  private sendJoin(room: Room): void {
    const ws = this.ws;
    if (!ws) return;
    const ref = this.nextRef();
    room.joining = ref;
    room.resuming = room.cursor !== undefined;
    this.pending.set(ref, { type: "join", room: room.id });
    ws.send(joinFrame(ref, room.id, room.cursor ? resumeOf(room.cursor) : undefined));
  }

  // ---- polling ----

  private startPolls(): void {
    for (const room of this.rooms.values()) this.startPoll(room);
  }

  private startPoll(room: Room): void {
    if (this.polls.has(room.id) || !this.pollingBase) return;
    const abort = new AbortController();
    this.polls.set(room.id, abort);
    void this.pollLoop(room, abort.signal).finally(() => {
      if (this.polls.get(room.id)?.signal === abort.signal) this.polls.delete(room.id);
    });
  }

  private stopPolls(): void {
    for (const abort of this.polls.values()) abort.abort();
    this.polls.clear();
  }

  private async pollLoop(room: Room, signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted && this.rooms.get(room.id) === room) {
      let reply: PollReply;
      try {
        reply = await pollRoom(this.fetchFn(), this.roomUrl(room.id, "messages"), await this.currentToken(), room.cursor, this.opts.pollingWaitSecs, signal);
        failures = 0;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof RoomcastError && ["FORBIDDEN", "ROOM_NOT_FOUND", "ROOM_ENDED"].includes(error.code)) {
          this.rooms.delete(room.id);
          room.onRefused(error);
          room.onLeft(error.code.toLowerCase());
          return;
        }
        if (error instanceof RoomcastError && ASK_AGAIN_CODES.has(error.code) && typeof this.opts.token === "function") this.token = undefined;
        failures += 1;
        await this.sleep(Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.min(failures, 10)));
        continue;
      }
      if (signal.aborted) return;
      if (!reply.recovered) {
        room.resuming = room.cursor !== undefined;
        room.onJoined({ epoch: reply.epoch, startSeq: reply.nextAfter, recovered: false, snapshot: reply.snapshot ?? null });
      } else {
        if (!room.cursor || room.joinWaiters.length > 0) {
          // The first poll of a room joined with a resume position.
          room.resuming = room.cursor !== undefined;
          const startSeq = room.cursor?.lastSeq ?? reply.firstSeq - 1;
          room.onJoined({ epoch: reply.epoch, startSeq, recovered: true, snapshot: null });
        }
        // Polls ask from the cursor, so a reply cannot leave a gap; another
        // epoch is answered by a restart on the next poll.
        room.onDelivery(reply.epoch, reply.firstSeq, reply.lastSeq, reply.messages);
      }
      if (reply.pollAfterMs > 0) await this.sleep(reply.pollAfterMs);
    }
  }

  /** The client HTTP routes' base (`…/v1/rooms`): the router's polling URL, asked for if not known yet. */
  private async httpBase(): Promise<string> {
    if (this.closed) throw new RoomcastError("UNAVAILABLE", "client closed");
    if (!this.pollingBase) {
      const route = await this.route();
      if (route.polling_url) this.pollingBase = route.polling_url.replace(/\/+$/, "");
    }
    if (!this.pollingBase) throw new RoomcastError("UNAVAILABLE", "the router gave no polling URL");
    return this.pollingBase;
  }

  private roomUrl(roomId: string, leaf: string): string {
    if (!this.pollingBase) throw new RoomcastError("UNAVAILABLE", "the router gave no polling URL");
    return `${this.pollingBase}/${encodeURIComponent(roomId)}/${leaf}`;
  }

  private async refetchState(roomId: string): Promise<Snapshot> {
    return fetchState(this.fetchFn(), this.roomUrl(roomId, "state"), await this.currentToken(), this.opts.requestTimeoutMs);
  }

  // ---- helpers ----

  private async currentToken(): Promise<string> {
    if (this.token === undefined) {
      const source = this.opts.token;
      this.token = typeof source === "function" ? await source() : source;
    }
    return this.token;
  }

  private fetchFn(): typeof fetch {
    const f = this.opts.fetch ?? globalThis.fetch;
    if (!f) throw new RoomcastError("UNAVAILABLE", "no fetch: pass options.fetch");
    return f.bind(globalThis);
  }

  private nextRef(): number {
    this.ref = this.ref >= 0xffff_fffe ? 1 : this.ref + 1;
    return this.ref;
  }

  /** Resolves once a transport (socket or polling) is up. */
  private ready(): Promise<void> {
    if (this.closed) return Promise.reject(new RoomcastError("UNAVAILABLE", "client closed"));
    if (this.stateValue.status === "connected" || this.stateValue.status === "polling") return Promise.resolve();
    this.connect();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new RoomcastError("UNAVAILABLE", "not connected")), this.opts.requestTimeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private releaseReady(): void {
    for (const waiter of this.readyWaiters.splice(0)) waiter();
  }

  private failInFlight(reason: string): void {
    for (const [ref, pending] of this.pending) {
      if (pending.type === "publish") {
        clearTimeout(pending.timer);
        pending.reject(new RoomcastError("UNAVAILABLE", reason));
      } else if (pending.type === "leave") {
        clearTimeout(pending.timer);
        pending.resolve();
      } else if (pending.type === "refresh") {
        clearTimeout(pending.timer);
        if (this.closed) {
          pending.reject(new RoomcastError("UNAVAILABLE", reason));
        } else {
          // The socket went away unanswered: the next hello carries the new token and is judged then.
          this.token = pending.token;
          pending.resolve();
        }
      }
      this.pending.delete(ref);
    }
  }

  private fail(reason: string): void {
    this.setState({ error: reason });
    this.close();
  }

  private setState(patch: Partial<ConnectionState>): void {
    this.stateValue = { ...this.stateValue, ...patch };
    this.emit("state", this.stateValue);
  }

  /** Sleep, cut short by close(). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}

function snapshotOf(s: WireSnapshot | undefined, room: string): Snapshot | null {
  if (!s) return null;
  return {
    room: s.room || room,
    title: s.title ?? "",
    role: s.role ?? "listener",
    members: s.members ?? 0,
    state: (s.state ?? null) as Snapshot["state"],
  };
}

function messageOf(m: WireMessage): Message {
  return {
    seq: m.seq ?? 0,
    kind: m.kind ?? "",
    body: m.body,
    ...(m.body_b64 !== undefined ? { bodyB64: m.body_b64 } : {}),
    sender: m.sender ?? "",
    tsMs: m.ts_ms ?? 0,
    priority: m.priority ?? 0,
  };
}
