import { afterEach, describe, expect, it } from "vitest";
import { RoomcastClient, type ConnectionState, type WebSocketInstance } from "../../src/index.js";

/** A scripted server side for each socket the client opens. */
class FakeSocket implements WebSocketInstance {
  static all: FakeSocket[] = [];
  static refuse = 0; // the next N sockets fail to connect
  readyState = 0;
  protocol = "roomcast.v2.json";
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: any[] = [];
  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeSocket.all.push(this);
    const refuse = FakeSocket.refuse > 0;
    if (refuse) FakeSocket.refuse -= 1;
    setTimeout(() => {
      if (refuse) {
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: "" });
      } else {
        this.readyState = 1;
        this.onopen?.({});
      }
    }, 0);
  }
  send(data: string) {
    const frame = JSON.parse(data).frame;
    this.sent.push(frame);
    if (frame.hello) this.push({ welcome: { session_id: "s", uid: "u", heartbeat_ms: 25000, node_id: "conn-1" } });
  }
  close(code = 1000, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
  push(frame: object) {
    setTimeout(() => this.onmessage?.({ data: JSON.stringify({ frame }) }), 0);
  }
  last(kind: string) {
    return [...this.sent].reverse().find((f) => f[kind])?.[kind];
  }
}

const routeAnswer = {
  mode: "long",
  node_id: "conn-1",
  endpoints: [{ transport: "ws", url: "ws://conn/v1/ws" }],
  polling_url: "http://biz/v1/rooms",
};

function fakeFetch(polls: any[] = []) {
  const calls: string[] = [];
  const fn = (async (input: string, init?: RequestInit) => {
    calls.push(`${init?.method ?? "GET"} ${input}`);
    const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200 });
    if (input.includes("/v1/route")) return json(routeAnswer);
    if (input.includes("/messages")) {
      const next = polls.shift();
      if (!next) {
        await new Promise((r) => setTimeout(r, 20));
        return json({ epoch: 9, recovered: true, first_seq: 1, last_seq: 0, messages: [], next_after: 0, poll_after_ms: 10 });
      }
      return json(next);
    }
    if (input.includes("/actions")) return json({ code: 0, message: "", body: { seq: 99 } });
    if (input.includes("/state")) return json({ room: "r1", title: "t", role: "listener", members: 1, state: null });
    return new Response("{}", { status: 404 });
  }) as typeof fetch;
  return { fn, calls };
}

const until = async (cond: () => boolean, what: string, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
};

const snapshotState = { v: 1, speakers: [], moderators: [], hands: [], hands_count: 0, invites: [], muted: {}, polls: [], likes: 0, reactions: {}, comments: 0, gifts: 0, gift_value: 0, members: 1, you: null };

function client(extra: Partial<ConstructorParameters<typeof RoomcastClient>[0]> = {}, polls: any[] = []) {
  const f = fakeFetch(polls);
  const c = new RoomcastClient({
    routerUrl: "http://router",
    uid: "alice",
    token: "tok",
    WebSocket: FakeSocket,
    fetch: f.fn,
    backoffMinMs: 1,
    backoffMaxMs: 5,
    connectTimeoutMs: 200,
    ...extra,
  });
  return { c, calls: f.calls };
}

let open: RoomcastClient[] = [];
afterEach(() => {
  for (const c of open) c.close();
  open = [];
  FakeSocket.all = [];
  FakeSocket.refuse = 0;
});

async function joined(c: RoomcastClient, epoch = "5", startSeq = 10) {
  const joining = c.join("r1");
  await until(() => FakeSocket.all.at(-1)?.last("join") !== undefined, "join frame");
  const socket = FakeSocket.all.at(-1)!;
  const ref = socket.last("join").ref;
  socket.push({ joined: { ref, room: "r1", epoch, start_seq: startSeq, recovered: false, snapshot: { room: "r1", title: "t", role: "listener", members: 1, state: snapshotState } } });
  return { room: await joining, socket };
}

describe("RoomcastClient over a WebSocket", () => {
  it("says hello with the token, joins, surfaces typed events and publishes", async () => {
    const { c } = client();
    open.push(c);
    const { room, socket } = await joined(c);
    expect(socket.protocols).toBe("roomcast.v2.json");
    expect(socket.sent[0].hello.token).toBe("tok");
    expect(c.state).toMatchObject({ status: "connected", transport: "ws", nodeId: "conn-1" });
    expect(room.store.view.state?.v).toBe(1);

    const texts: string[] = [];
    room.on("event", (e) => {
      if (e.kind === "comment") texts.push(e.body.text);
    });
    socket.push({ delivery: { room: "r1", epoch: "5", first_seq: 11, last_seq: 12, messages: [
      { seq: 11, kind: "comment", body: { uid: "bob", text: "hi" }, sender: "bob", ts_ms: 1, priority: 2 },
      { seq: 12, kind: "comment", body: { uid: "bob", text: "again" }, sender: "bob", ts_ms: 2, priority: 2 },
    ] } });
    await until(() => texts.length === 2, "two comments");
    expect(texts).toEqual(["hi", "again"]);
    expect(room.position).toEqual({ epoch: "5", lastSeq: 12 });
    expect(room.store.view.state?.comments).toBe(2);

    const reply = room.comment("hello");
    await until(() => socket.last("publish") !== undefined, "publish frame");
    const publish = socket.last("publish");
    expect(publish).toMatchObject({ room: "r1", action: "comment", payload: { text: "hello" } });
    socket.push({ reply: { ref: publish.ref, code: 0, message: "", body: { seq: 13 } } });
    await expect(reply).resolves.toEqual({ seq: 13 });

    const refused = room.kick("bob");
    await until(() => socket.last("publish")?.action === "kick", "kick frame");
    socket.push({ reply: { ref: socket.last("publish").ref, code: 7, message: "not allowed" } });
    await expect(refused).rejects.toMatchObject({ code: "FORBIDDEN" });
  });

  it("re-joins with resume on a gap instead of surfacing out of order", async () => {
    const { c } = client();
    open.push(c);
    const { room, socket } = await joined(c);
    const seen: number[] = [];
    room.on("message", (m) => seen.push(m.seq));
    socket.push({ delivery: { room: "r1", epoch: "5", first_seq: 13, last_seq: 13, messages: [{ seq: 13, kind: "comment", body: { text: "x" } }] } });
    await until(() => socket.sent.filter((f) => f.join).length === 2, "second join");
    expect(socket.last("join").resume).toEqual({ epoch: "5", last_seq: 10 });
    expect(seen).toEqual([]);
  });

  it("reconnects after GoAway and resumes where it was", async () => {
    const { c } = client();
    open.push(c);
    const { room, socket } = await joined(c);
    const joins: boolean[] = [];
    room.on("joined", (j) => joins.push(j.resumed));
    socket.push({ go_away: { reason: "drain", reconnect_after_ms: 5 } });
    await until(() => FakeSocket.all.length === 2 && FakeSocket.all[1]!.last("join") !== undefined, "rejoin on a new socket");
    const next = FakeSocket.all[1]!;
    const join = next.last("join");
    expect(join.resume).toEqual({ epoch: "5", last_seq: 10 });
    next.push({ joined: { ref: join.ref, room: "r1", epoch: "5", start_seq: 12, recovered: true, snapshot: { room: "r1", title: "t", role: "listener", members: 1, state: snapshotState } } });
    next.push({ delivery: { room: "r1", epoch: "5", first_seq: 11, last_seq: 12, messages: [{ seq: 11, kind: "comment", body: { text: "a" } }, { seq: 12, kind: "comment", body: { text: "b" } }] } });
    await until(() => room.position?.lastSeq === 12, "replayed messages");
    expect(joins).toEqual([true]);
  });

  it("falls back to long polling after 3 failed connects, and comes back", async () => {
    FakeSocket.refuse = 3;
    const states: ConnectionState[] = [];
    const { c, calls } = client({ longRetryIntervalMs: 50 }, [
      { room: "r1", epoch: 9, head_seq: 4, first_seq: 4, last_seq: 4, recovered: false, messages: [], next_after: 4, poll_after_ms: 0,
        snapshot: { room: "r1", title: "t", role: "listener", members: 1, state: snapshotState } },
      { room: "r1", epoch: 9, head_seq: 5, first_seq: 5, last_seq: 5, recovered: true, next_after: 5, poll_after_ms: 0,
        messages: [{ seq: 5, kind: "comment", sender: "bob", ts_ms: 1, priority: "low", body: { uid: "bob", text: "over http" } }] },
    ]);
    open.push(c);
    c.on("state", (s) => states.push(s));
    const room = await c.join("r1");
    expect(c.state.transport).toBe("polling");
    expect(states.filter((s) => s.status === "connecting").length).toBeGreaterThan(0);
    expect(FakeSocket.all.length).toBe(3);
    const texts: string[] = [];
    room.on("event", (e) => e.kind === "comment" && texts.push(e.body.text));
    await until(() => texts.length === 1, "a polled comment");
    expect(texts).toEqual(["over http"]);
    await expect(room.comment("via http")).resolves.toEqual({ seq: 99 });
    expect(calls.some((call) => call.startsWith("POST http://biz/v1/rooms/r1/actions"))).toBe(true);
    // The long connection is retried and, once it works, replaces polling with a resume.
    await until(() => FakeSocket.all.length >= 4 && FakeSocket.all.at(-1)!.last("join") !== undefined, "back to the socket");
    expect(FakeSocket.all.at(-1)!.last("join").resume).toEqual({ epoch: "9", last_seq: 5 });
    expect(c.state.transport).toBe("ws");
  });

  it("refuses a join the server refuses, and stops on a bad token", async () => {
    const { c } = client();
    open.push(c);
    const joining = c.join("nope");
    await until(() => FakeSocket.all.at(-1)?.last("join") !== undefined, "join frame");
    const socket = FakeSocket.all.at(-1)!;
    socket.push({ error: { code: 8, message: "room nope not found", ref: socket.last("join").ref, room: "nope" } });
    await expect(joining).rejects.toMatchObject({ code: "ROOM_NOT_FOUND" });

    class Refusing extends FakeSocket {
      override send(data: string) {
        if (JSON.parse(data).frame.hello) this.push({ error: { code: 5, message: "bad signature" } });
      }
    }
    const bad = new RoomcastClient({ routerUrl: "http://router", uid: "u", token: "x", WebSocket: Refusing, fetch: fakeFetch().fn });
    open.push(bad);
    const failed = bad.join("r1");
    await expect(failed).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(bad.state.status).toBe("closed");
    expect(bad.state.error).toContain("UNAUTHENTICATED");
  });
});

describe("RoomcastClient token refresh", () => {
  it("on token_expiring asks the token function, sends refresh on the open socket, and takes the token on refreshed", async () => {
    const tokens = ["tok-1", "tok-2"];
    let asked = 0;
    const { c } = client({ token: async () => tokens[asked++]! });
    open.push(c);
    const { socket } = await joined(c);
    expect(socket.sent[0].hello.token).toBe("tok-1");
    const expiring: number[] = [];
    const refreshed: number[] = [];
    c.on("tokenExpiring", (e) => expiring.push(e.expiresAtMs));
    c.on("tokenRefreshed", (e) => refreshed.push(e.expiresAtMs));

    socket.push({ token_expiring: { expires_at_ms: 1_000 } });
    await until(() => socket.last("refresh") !== undefined, "refresh frame");
    expect(expiring).toEqual([1_000]);
    expect(asked).toBe(2);
    const refresh = socket.last("refresh");
    expect(refresh.token).toBe("tok-2");
    expect(refresh.ref).toBeGreaterThan(0);
    socket.push({ refreshed: { ref: refresh.ref, expires_at_ms: 5_000 } });
    await until(() => refreshed.length === 1, "tokenRefreshed");
    expect(refreshed).toEqual([5_000]);

    // The same session goes on, and the next connect says hello with the new token.
    expect(FakeSocket.all.length).toBe(1);
    expect(c.state.status).toBe("connected");
    socket.push({ go_away: { reason: "drain", reconnect_after_ms: 1 } });
    await until(() => FakeSocket.all.length === 2 && FakeSocket.all[1]!.last("hello") !== undefined, "reconnect");
    expect(FakeSocket.all[1]!.last("hello").token).toBe("tok-2");
    expect(asked).toBe(2);
  });

  it("keeps the session and the old token when the server refuses the refresh", async () => {
    const { c } = client();
    open.push(c);
    const { room, socket } = await joined(c);
    const failures: Error[] = [];
    c.on("tokenRefreshFailed", (e) => failures.push(e.error));

    const refreshing = c.setToken("someone-elses");
    await until(() => socket.last("refresh") !== undefined, "refresh frame");
    socket.push({ error: { code: 7, message: "token is for another uid", ref: socket.last("refresh").ref } });
    await expect(refreshing).rejects.toMatchObject({ code: "FORBIDDEN" });
    expect(failures.map((e) => (e as { code?: string }).code)).toEqual(["FORBIDDEN"]);

    // Still the same socket, still in the room, and it still works.
    expect(c.state.status).toBe("connected");
    expect(FakeSocket.all.length).toBe(1);
    const reply = room.comment("still here");
    await until(() => socket.last("publish") !== undefined, "publish frame");
    socket.push({ reply: { ref: socket.last("publish").ref, code: 0, message: "", body: { seq: 11 } } });
    await expect(reply).resolves.toEqual({ seq: 11 });

    // The old token is the one the next hello carries.
    socket.push({ go_away: { reason: "drain", reconnect_after_ms: 1 } });
    await until(() => FakeSocket.all.length === 2 && FakeSocket.all[1]!.last("hello") !== undefined, "reconnect");
    expect(FakeSocket.all[1]!.last("hello").token).toBe("tok");
  });

  it("setToken on an open session sends refresh and resolves on refreshed; offline it is kept for the next hello", async () => {
    const { c } = client();
    open.push(c);
    await expect(c.setToken("before-connect")).resolves.toBeUndefined();
    const { socket } = await joined(c);
    expect(socket.sent[0].hello.token).toBe("before-connect");
    const refreshed: number[] = [];
    c.on("tokenRefreshed", (e) => refreshed.push(e.expiresAtMs));

    const refreshing = c.setToken("fresh");
    await until(() => socket.last("refresh") !== undefined, "refresh frame");
    const refresh = socket.last("refresh");
    expect(refresh).toEqual({ ref: refresh.ref, token: "fresh" });
    socket.push({ refreshed: { ref: refresh.ref, expires_at_ms: 9_000 } });
    await expect(refreshing).resolves.toBeUndefined();
    expect(refreshed).toEqual([9_000]);
    expect(FakeSocket.all.length).toBe(1);
  });

  it("with a token string, token_expiring is only an event (the app answers with setToken)", async () => {
    const { c } = client();
    open.push(c);
    const { socket } = await joined(c);
    const expiring: number[] = [];
    c.on("tokenExpiring", (e) => expiring.push(e.expiresAtMs));
    socket.push({ token_expiring: { expires_at_ms: 2_000 } });
    await until(() => expiring.length === 1, "tokenExpiring");
    // A frame handled after the warning: anything the client did about it is sent by then.
    let rtt = false;
    c.on("rtt", () => (rtt = true));
    socket.push({ pong: { client_time_ms: Date.now() } });
    await until(() => rtt, "pong handled");
    expect(socket.last("refresh")).toBeUndefined();
  });
});
