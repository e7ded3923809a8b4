// @roomcast/client against a real `roomcast standalone` process (Node, `ws`).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { RoomcastClient, type Room, type WebSocketLike } from "../../src/index.js";
// @ts-expect-error plain ESM helper without types
import { startStandalone } from "../standalone.mjs";

type Standalone = Awaited<ReturnType<typeof startStandalone>>;
let sa: Standalone;
const clients: RoomcastClient[] = [];

beforeAll(async () => {
  sa = await startStandalone();
}, 30_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await sa?.stop();
});

function connect(uid: string, extra: Partial<ConstructorParameters<typeof RoomcastClient>[0]> = {}) {
  const c = new RoomcastClient({
    routerUrl: sa.routerUrl,
    uid,
    token: () => sa.token(uid),
    WebSocket: WebSocket as unknown as WebSocketLike,
    ...extra,
  });
  clients.push(c);
  return c;
}

async function until(cond: () => boolean, what: string, ms = 10_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function comments(room: Room) {
  const seen: { seq: number; text: string }[] = [];
  room.on("event", (e) => e.kind === "comment" && seen.push({ seq: e.seq, text: e.body.text }));
  return seen;
}

describe("@roomcast/client against standalone", () => {
  it("two users see each other's comments, hands and poll votes", async () => {
    const roomId = await sa.createRoom("hana");
    const host = await connect("hana").join(roomId);
    const guest = await connect("gus").join(roomId);
    expect(host.store.view.role).toBe("host");
    expect(guest.store.view.state?.host).toBe("hana");
    const seenByHost = comments(host);

    const { seq } = await guest.comment("hello from gus");
    await until(() => seenByHost.some((c) => c.seq === seq), "the comment at the host");
    expect(seenByHost.find((c) => c.seq === seq)?.text).toBe("hello from gus");

    await guest.raiseHand();
    await until(() => host.store.view.state?.hands.some((h) => h.uid === "gus") ?? false, "the hand at the host");
    await host.inviteSpeaker("gus");
    await until(() => guest.store.view.state?.you?.invited_by === "hana", "the invite at the guest");
    await guest.acceptInvite();
    await until(() => host.store.view.state?.speakers.includes("gus") ?? false, "gus on stage");
    expect(host.store.view.state?.muted.gus).toBe("self");
    await host.mute("gus");
    await until(() => guest.store.view.state?.muted.gus === "moderator", "the moderator mute");
    await expect(guest.unmute()).rejects.toMatchObject({ code: "FORBIDDEN" });

    const poll = await host.openPoll("More jazz?", ["yes", "no"]);
    await until(() => guest.store.view.state?.polls.some((p) => p.poll_id === poll.poll_id) ?? false, "the poll at the guest");
    await guest.vote(poll.poll_id, 0);
    await until(() => host.store.view.state?.polls.find((p) => p.poll_id === poll.poll_id)?.tallies[0] === 1, "the vote at the host");
    await expect(guest.vote(poll.poll_id, 1)).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await host.like(5);
    await until(() => (guest.store.view.state?.likes ?? 0) >= 5, "likes at the guest");
  }, 30_000);

  it("resumes from a saved position without a gap or a duplicate", async () => {
    const roomId = await sa.createRoom("rita");
    const writer = await connect("rita").join(roomId);
    const first = connect("rex");
    const reader = await first.join(roomId);
    const seen = comments(reader);
    for (const text of ["one", "two"]) await writer.comment(text);
    await until(() => seen.length === 2, "two comments");
    const position = reader.position!;
    first.close();
    // Written while the reader is away.
    for (const text of ["three", "four", "five"]) await writer.comment(text);

    const again = connect("rex").room(roomId, { resume: position });
    const resumed: boolean[] = [];
    again.on("joined", (j) => resumed.push(j.resumed));
    const later = comments(again);
    await again.join();
    await until(() => later.length === 3, "the missed comments");
    expect(resumed).toEqual([true]);
    expect(later.map((c) => c.text)).toEqual(["three", "four", "five"]);
    expect(later.map((c) => c.seq)).toEqual([position.lastSeq + 1, position.lastSeq + 2, position.lastSeq + 3]);
    expect(again.position?.lastSeq).toBe(position.lastSeq + 3);
  }, 30_000);

  it("falls back to HTTP long polling when the socket cannot connect", async () => {
    const roomId = await sa.createRoom("pam");
    const writer = await connect("pam").join(roomId);
    class Unreachable extends (WebSocket as unknown as new (url: string, p?: string | string[]) => WebSocket) {
      constructor(_url: string, protocols?: string | string[]) {
        super("ws://127.0.0.1:9/unreachable", protocols);
      }
    }
    const poller = connect("paul", { WebSocket: Unreachable as unknown as WebSocketLike, backoffMinMs: 10, backoffMaxMs: 50, pollingWaitSecs: 2 });
    const room = await poller.join(roomId);
    expect(poller.state.transport).toBe("polling");
    expect(room.store.view.state?.host).toBe("pam");
    const seen = comments(room);
    const { seq } = await writer.comment("to the poller");
    await until(() => seen.some((c) => c.seq === seq), "the comment over HTTP");
    const mine = await room.comment("from the poller");
    const seenByWriter = comments(writer);
    await until(() => seenByWriter.some((c) => c.seq === mine.seq) || writer.position!.lastSeq >= mine.seq, "the poller's comment");
  }, 30_000);

  it("speaks JSON v2: bodies and snapshots are plain JSON, epochs strings", async () => {
    const roomId = await sa.createRoom("vic");
    const route = await (await fetch(`${sa.routerUrl}/v1/route?uid=vic`)).json();
    const url = route.endpoints.find((e: { transport: string }) => e.transport === "ws").url;
    const ws = new WebSocket(url, "roomcast.v2.json");
    const frames: any[] = [];
    ws.on("message", (d) => frames.push(JSON.parse(String(d)).frame));
    await new Promise((r) => ws.once("open", r));
    expect(ws.protocol).toBe("roomcast.v2.json");
    ws.send(JSON.stringify({ frame: { hello: { token: await sa.token("vic") } } }));
    ws.send(JSON.stringify({ frame: { join: { ref: 1, room: roomId } } }));
    await until(() => frames.some((f) => f.joined), "joined");
    const joined = frames.find((f) => f.joined).joined;
    expect(typeof joined.epoch).toBe("string");
    expect(joined.snapshot.state.host).toBe("vic");
    ws.send(JSON.stringify({ frame: { publish: { ref: 2, room: roomId, action: "comment", payload: { text: "plain" } } } }));
    await until(() => frames.some((f) => f.delivery), "delivery");
    expect(frames.find((f) => f.reply).reply.body.seq).toBeGreaterThan(0);
    expect(frames.find((f) => f.delivery).delivery.messages[0].body).toEqual({ uid: "vic", text: "plain", attrs: {} });
    ws.close();
  }, 30_000);

  it("refreshes the open session's token, and a refused refresh keeps the session", async () => {
    const roomId = await sa.createRoom("rita");
    const c = connect("rita");
    const room = await c.join(roomId);
    const node = c.state.nodeId;
    const refreshed: number[] = [];
    c.on("tokenRefreshed", (e) => refreshed.push(e.expiresAtMs));

    await c.setToken(await sa.token("rita"));
    expect(refreshed.length).toBe(1);
    expect(refreshed[0]).toBeGreaterThan(Date.now());

    // Another uid's token is refused; the session goes on with its own.
    await expect(c.setToken(await sa.token("mallory"))).rejects.toMatchObject({ code: "FORBIDDEN" });
    expect(c.state).toMatchObject({ status: "connected", nodeId: node });
    await expect(room.comment("after the refusal")).resolves.toMatchObject({ seq: expect.any(Number) });
  });
  it("reads history and replay of a room without joining it, and the inbox", async () => {
    const roomId = await sa.createRoom("hana");
    const host = await connect("hana").join(roomId);
    const seqs: number[] = [];
    for (const text of ["one", "two", "three"]) seqs.push((await host.comment(text)).seq);
    const reader = connect("rita");

    const page = await reader.history(roomId, { afterSeq: 0, limit: 100 });
    expect(page.room).toBe(roomId);
    expect(page.source).toBe("live");
    expect(page.truncated).toBe(false);
    const comments = page.messages.filter((m) => m.kind === "comment");
    expect(comments.map((m) => m.seq)).toEqual(seqs);
    expect(comments.map((m) => (m.body as { text: string }).text)).toEqual(["one", "two", "three"]);
    expect(comments.every((m) => m.sender === "hana" && m.priority === "low")).toBe(true);

    const back = await reader.history(roomId, { beforeSeq: seqs[2], limit: 1 });
    expect(back.messages.map((m) => m.seq)).toEqual([seqs[1]]);

    const replay = await reader.replay(roomId, 0, 100);
    const offsets = replay.messages.map((m) => m.offsetMs);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(replay.messages.filter((m) => m.kind === "comment").map((m) => m.seq)).toEqual(seqs);
    expect(replay.startedAtMs).toBeGreaterThan(0);

    const inbox = await reader.inbox();
    expect(inbox.uid).toBe("rita");
    expect(Array.isArray(inbox.items)).toBe(true);

    await expect(reader.history("rNoSuchRoom")).rejects.toMatchObject({ code: "ROOM_NOT_FOUND" });
    await expect(reader.history(roomId, { limit: 5000 })).rejects.toMatchObject({ code: "BAD_REQUEST" });
  });
});
