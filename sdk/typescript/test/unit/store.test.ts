import { afterEach, describe, expect, it, vi } from "vitest";
import { RoomStore } from "../../src/store.js";
import type { RoomEvent, RoomStateJson, Snapshot, UserState } from "../../src/types.js";

function state(v: number, patch: Partial<RoomStateJson> = {}): RoomStateJson {
  return {
    v, title: "t", owner: "host", host: "host", created_at_ms: 1, state: "live", scheduled_at_ms: null,
    started_at_ms: 1, ended_at_ms: null, private: false, auto_end_empty_secs: 300, slow_mode_secs: 0,
    members: 3, listeners: 2, moderators: [], speakers: [], hands: [], hands_count: 0, invites: [],
    muted: {}, polls: [], likes: 0, reactions: {}, comments: 0, gifts: 0, gift_value: 0, interested: 0,
    you: { uid: "carol", role: "listener", hand_raised_at_ms: null, invited_by: null, muted: null, member: true, interested: false, votes: {} },
    ...patch,
  };
}
const snapshot = (s: RoomStateJson): Snapshot => ({ room: "r", title: "t", role: "listener", members: s.members, state: s });
const user = (uid: string, patch: Partial<UserState> = {}): UserState => ({
  uid, role: "listener", hand_raised_at_ms: null, invited_by: null, muted: null, ...patch,
});
const durable = (kind: string, body: unknown, seq = 1) =>
  ({ room: "r", durable: true, kind, seq, priority: 1, body, sender: "x", tsMs: 0 }) as RoomEvent;
const ephemeral = (kind: string, body: unknown) =>
  ({ room: "r", durable: false, kind, seq: null, body, sender: "", tsMs: 0 }) as RoomEvent;

afterEach(() => vi.useRealTimers());

describe("room store", () => {
  it("rebuilds the stage, hands, invites, mutes and polls from events", () => {
    const store = new RoomStore("r", async () => snapshot(state(0)));
    const views: number[] = [];
    store.subscribe((view) => views.push(view.state?.v ?? -1));
    store.reset(snapshot(state(10)));
    store.apply(durable("hand_raised", { uid: "carol", by: "carol", v: 11, at_ms: 5, user: user("carol", { hand_raised_at_ms: 5 }) }));
    let s = store.view.state!;
    expect(s.hands).toEqual([{ uid: "carol", at_ms: 5 }]);
    expect(s.hands_count).toBe(1);
    expect(s.you?.hand_raised_at_ms).toBe(5);
    store.apply(durable("speaker_invited", { uid: "carol", by: "host", v: 12, user: user("carol", { hand_raised_at_ms: 5, invited_by: "host" }) }));
    expect(store.view.state!.invites).toEqual([{ uid: "carol", by: "host" }]);
    store.apply(durable("role_changed", { uid: "carol", by: "carol", v: 13, role: "speaker", previous: "listener", reason: "accepted_invite", user: user("carol", { role: "speaker", muted: "self" }) }));
    s = store.view.state!;
    expect(s.speakers).toEqual(["carol"]);
    expect(s.hands).toEqual([]);
    expect(s.hands_count).toBe(0);
    expect(s.invites).toEqual([]);
    expect(s.muted).toEqual({ carol: "self" });
    expect(store.view.role).toBe("speaker");
    const poll = { poll_id: "p1", question: "q", options: ["a", "b"], opened_by: "host", opened_at_ms: 1, closes_at_ms: null, state: "open", tallies: [0, 0], votes: 0, closed_at_ms: null };
    store.apply(durable("poll_opened", { poll, by: "host", v: 14 }));
    store.apply(ephemeral("poll_tally", { poll_id: "p1", tallies: [2, 1], votes: 3, state: "open" }));
    expect(store.view.state!.polls[0]?.tallies).toEqual([2, 1]);
    store.apply(ephemeral("totals", { likes: 42, reactions: { "🔥": 2 }, reactions_total: 2 }));
    store.apply(durable("comment", { uid: "bob", text: "hi" }));
    s = store.view.state!;
    expect([s.likes, s.reactions["🔥"], s.comments, s.v]).toEqual([42, 2, 1, 14]);
    expect(views.length).toBeGreaterThan(5);
  });

  it("ignores events the snapshot already holds, and applies each v once", () => {
    const store = new RoomStore("r", async () => snapshot(state(0)));
    store.reset(snapshot(state(20, { speakers: ["bob"] })));
    // v 19 is older than the snapshot: moving bob back would be wrong.
    store.apply(durable("role_changed", { uid: "bob", by: "host", v: 19, role: "listener", previous: "speaker", reason: "moved_to_audience", user: user("bob") }));
    expect(store.view.state!.speakers).toEqual(["bob"]);
    const hand = durable("hand_raised", { uid: "carol", by: "carol", v: 21, at_ms: 5, user: user("carol", { hand_raised_at_ms: 5 }) });
    store.apply(hand);
    store.apply(hand);
    expect(store.view.state!.hands_count).toBe(1);
  });

  it("refetches the state when a missing v does not arrive within the gap window", async () => {
    vi.useFakeTimers();
    const fresh = state(30, { speakers: ["dave"] });
    const refetch = vi.fn(async () => snapshot(fresh));
    const store = new RoomStore("r", refetch, 1000);
    store.reset(snapshot(state(10)));
    // v 12 arrives, v 11 is missing.
    store.apply(durable("slow_mode", { seconds: 5, by: "host", v: 12 }));
    expect(store.view.state!.slow_mode_secs).toBe(5);
    await vi.advanceTimersByTimeAsync(999);
    expect(refetch).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(2);
    expect(refetch).toHaveBeenCalledTimes(1);
    expect(store.view.state!.speakers).toEqual(["dave"]);

    // A gap that closes in time (out-of-order arrival) refetches nothing.
    store.apply(durable("slow_mode", { seconds: 1, by: "host", v: 32 }));
    store.apply(durable("slow_mode", { seconds: 1, by: "host", v: 31 }));
    await vi.advanceTimersByTimeAsync(5000);
    expect(refetch).toHaveBeenCalledTimes(1);
  });
});
