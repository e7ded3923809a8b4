import { describe, expect, it } from "vitest";
import { RoomcastClient, RoomcastError } from "../../src/index.js";
import { historyUrl, inboxUrl, pageOf, replayUrl } from "../../src/reads.js";

const routeAnswer = { mode: "long", node_id: "conn-1", endpoints: [], polling_url: "http://biz:8602/v1/rooms/" };

/** A server answering the route and the reads; records what was asked. */
function server(reply: (url: string) => Response) {
  const calls: { url: string; auth: string | null }[] = [];
  const fn = (async (input: string, init?: RequestInit) => {
    const auth = new Headers(init?.headers).get("authorization");
    calls.push({ url: input, auth });
    if (input.includes("/v1/route")) return new Response(JSON.stringify(routeAnswer), { status: 200 });
    return reply(input);
  }) as typeof fetch;
  return { fn, calls };
}

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });

const wirePage = {
  room: "r1",
  source: "archive",
  started_at_ms: 1_000,
  truncated: false,
  messages: [
    { seq: 41, kind: "comment", sender: "bob", ts_ms: 1_500, offset_ms: 500, priority: "low", body: { text: "hi" } },
    { seq: 42, kind: "blob", sender: "", ts_ms: 1_600, offset_ms: 600, priority: "high", body: { base64: "/wA=" } },
  ],
};

describe("history, replay and inbox URLs", () => {
  it("page by seq with only the parameters given", () => {
    expect(historyUrl("http://b/v1/rooms", "r 1", {})).toBe("http://b/v1/rooms/r%201/history");
    expect(historyUrl("http://b/v1/rooms", "r1", { afterSeq: 40, limit: 2 })).toBe("http://b/v1/rooms/r1/history?after_seq=40&limit=2");
    expect(historyUrl("http://b/v1/rooms", "r1", { beforeSeq: 0 })).toBe("http://b/v1/rooms/r1/history?before_seq=0");
  });
  it("replay from an offset, negative included", () => {
    expect(replayUrl("http://b/v1/rooms", "r1", -2_000.7)).toBe("http://b/v1/rooms/r1/replay?from_ms=-2000");
    expect(replayUrl("http://b/v1/rooms", "r1", 0, 50)).toBe("http://b/v1/rooms/r1/replay?from_ms=0&limit=50");
  });
  it("the inbox sits beside the rooms", () => {
    expect(inboxUrl("https://b:1/api/v1/rooms/", 7)).toBe("https://b:1/api/v1/me/inbox?after_ms=7");
    expect(inboxUrl("http://b/v1/rooms", -5)).toBe("http://b/v1/me/inbox?after_ms=0");
  });
  it("pages are normalised, bytes kept apart", () => {
    const page = pageOf(wirePage);
    expect(page).toMatchObject({ room: "r1", source: "archive", startedAtMs: 1_000, truncated: false });
    expect(page.messages[0]).toEqual({ seq: 41, kind: "comment", sender: "bob", tsMs: 1_500, offsetMs: 500, priority: "low", body: { text: "hi" } });
    expect(page.messages[1]).toMatchObject({ seq: 42, priority: "high", body: undefined, bodyB64: "/wA=" });
    expect(pageOf({}).messages).toEqual([]);
  });
});

describe("RoomcastClient reads", () => {
  it("route once, then read with the token, without joining", async () => {
    const { fn, calls } = server((url) =>
      url.includes("/inbox") ? json({ uid: "u1", items: [{ kind: "room_started", at_ms: 9, body: { room: "r1" } }] }) : json(wirePage),
    );
    const client = new RoomcastClient({ routerUrl: "http://router", uid: "u1", token: () => "tok", fetch: fn });
    const page = await client.history("r1", { afterSeq: 40, limit: 2 });
    expect(page.messages.map((m) => m.seq)).toEqual([41, 42]);
    await client.replay("r1", 500, 10);
    const inbox = await client.inbox(3);
    expect(inbox).toEqual({ uid: "u1", items: [{ kind: "room_started", atMs: 9, body: { room: "r1" } }] });
    expect(calls.map((c) => c.url)).toEqual([
      "http://router/v1/route?uid=u1&app_version=0.1.0",
      "http://biz:8602/v1/rooms/r1/history?after_seq=40&limit=2",
      "http://biz:8602/v1/rooms/r1/replay?from_ms=500&limit=10",
      "http://biz:8602/v1/me/inbox?after_ms=3",
    ]);
    expect(calls.slice(1).every((c) => c.auth === "Bearer tok")).toBe(true);
    client.close();
  });

  it("refusals are typed errors", async () => {
    const { fn } = server(() => json({ error: { code: "forbidden", message: "this room is private: you are not invited" } }, 403));
    const client = new RoomcastClient({ routerUrl: "http://router", uid: "u1", token: "tok", fetch: fn });
    const error = await client.history("r1").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RoomcastError);
    expect((error as RoomcastError).code).toBe("FORBIDDEN");
    const missing = server(() => json({ error: { code: "room_not_found", message: "room r9 not found" } }, 404));
    const other = new RoomcastClient({ routerUrl: "http://router", uid: "u1", token: "tok", fetch: missing.fn });
    await expect(other.replay("r9")).rejects.toMatchObject({ code: "ROOM_NOT_FOUND" });
    client.close();
    other.close();
  });

  it("a closed client reads nothing", async () => {
    const { fn, calls } = server(() => json(wirePage));
    const client = new RoomcastClient({ routerUrl: "http://router", uid: "u1", token: "tok", fetch: fn });
    client.close();
    await expect(client.inbox()).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(calls).toEqual([]);
  });
});
