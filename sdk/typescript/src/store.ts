// The room-state store: a snapshot plus every event after it, as UI state
// that code can subscribe to. State events carry absolute values and the
// room's state version `v`; a `v` that stays missing for `gapMs` means an
// event was lost (or sampled), and the store refetches `/state`
// (docs/room-api.md, "Reconstructing the room").

import type { Poll, RoomEvent, RoomStateJson, Snapshot, UserState } from "./types.js";

/** What UI code renders. */
export interface RoomView {
  room: string;
  title: string;
  /** The caller's role. */
  role: string;
  members: number;
  /** The room's state JSON (`null` until the first snapshot). */
  state: RoomStateJson | null;
}

type Listener = (view: RoomView) => void;

export class RoomStore {
  private current: RoomView;
  private readonly listeners = new Set<Listener>();
  /** Highest `v` up to which every state change has been applied. */
  private appliedV = 0;
  /** `v`s applied above `appliedV` (events from two biz nodes may arrive out of order). */
  private readonly ahead = new Set<number>();
  private gapTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    room: string,
    private readonly refetch: () => Promise<Snapshot>,
    private readonly gapMs = 1000,
  ) {
    this.current = { room, title: "", role: "listener", members: 0, state: null };
  }

  get view(): RoomView {
    return this.current;
  }

  /** Call `listener` now and on every change; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    listener(this.current);
    return () => this.listeners.delete(listener);
  }

  /** Take a snapshot as the truth. */
  reset(snapshot: Snapshot): void {
    this.clearGap();
    this.ahead.clear();
    this.appliedV = snapshot.state?.v ?? 0;
    this.current = {
      room: snapshot.room || this.current.room,
      title: snapshot.title,
      role: snapshot.role,
      members: snapshot.members,
      state: snapshot.state ? structuredCloneish(snapshot.state) : null,
    };
    this.publish();
  }

  /** Whether a snapshot was taken. */
  get ready(): boolean {
    return this.current.state !== null;
  }

  /** Apply one event (durable or ephemeral). Unknown kinds are ignored. */
  apply(event: RoomEvent): void {
    const state = this.current.state;
    if (!state) return;
    const body = event.body as { v?: number };
    if (event.durable && typeof body.v === "number") {
      const v = body.v;
      if (v <= this.appliedV || this.ahead.has(v)) return; // in the snapshot or applied already
      this.ahead.add(v);
      while (this.ahead.delete(this.appliedV + 1)) this.appliedV += 1;
      if (this.ahead.size > 0) this.armGap();
      else this.clearGap();
    }
    if (!applyTo(state, this.current, event)) return;
    state.v = Math.max(state.v, this.appliedV);
    this.current = { ...this.current, state: { ...state } };
    this.publish();
  }

  /** Record the caller's own vote (the reply to `vote`). */
  voted(pollId: string, option: number): void {
    const you = this.current.state?.you;
    if (!you) return;
    you.votes = { ...you.votes, [pollId]: option };
    this.current = { ...this.current };
    this.publish();
  }

  /** Refetch `/state` now (after a gap that did not close). */
  async resync(): Promise<void> {
    this.clearGap();
    this.reset(await this.refetch());
  }

  dispose(): void {
    this.clearGap();
    this.listeners.clear();
  }

  private armGap(): void {
    if (this.gapTimer !== undefined) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      if (this.ahead.size > 0) this.resync().catch(() => this.armGap());
    }, this.gapMs);
  }

  private clearGap(): void {
    if (this.gapTimer !== undefined) clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
  }

  private publish(): void {
    for (const listener of [...this.listeners]) listener(this.current);
  }
}

function structuredCloneish<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Apply `event` to `state` in place; false when nothing changed. */
function applyTo(state: RoomStateJson, view: RoomView, event: RoomEvent): boolean {
  switch (event.kind) {
    case "room_started":
      state.state = "live";
      state.started_at_ms = event.body.started_at_ms;
      return true;
    case "room_ended":
      state.state = "ended";
      state.ended_at_ms = event.body.ended_at_ms;
      return true;
    case "hand_raised":
    case "hand_lowered":
    case "speaker_invited":
    case "invite_declined":
    case "role_changed":
    case "mute_changed":
    case "member_kicked":
      applyUser(state, view, event.body.user);
      return true;
    case "slow_mode":
      state.slow_mode_secs = event.body.seconds;
      return true;
    case "gift":
      state.gifts += event.body.count;
      state.gift_value += event.body.total_value;
      return true;
    case "poll_opened":
    case "poll_closed":
      putPoll(state, event.body.poll);
      return true;
    case "comment":
      state.comments += 1;
      return true;
    case "totals":
      state.likes = event.body.likes;
      state.reactions = { ...event.body.reactions };
      return true;
    case "poll_tally": {
      const poll = state.polls.find((p) => p.poll_id === event.body.poll_id);
      if (!poll) return false;
      poll.tallies = [...event.body.tallies];
      poll.votes = event.body.votes;
      poll.state = event.body.state;
      state.polls = [...state.polls];
      return true;
    }
    case "member_joined":
    case "member_left":
    case "presence":
      state.members = event.body.members;
      view.members = event.body.members;
      state.listeners = Math.max(0, state.members - state.speakers.length - state.moderators.length);
      return true;
    default:
      return false;
  }
}

function applyUser(state: RoomStateJson, view: RoomView, user: UserState): void {
  const uid = user.uid;
  const without = (list: string[]) => list.filter((u) => u !== uid);
  state.moderators = without(state.moderators);
  state.speakers = without(state.speakers);
  if (user.role === "moderator") state.moderators = [...state.moderators, uid].sort();
  if (user.role === "speaker") state.speakers = [...state.speakers, uid].sort();

  const hadHand = state.hands.some((h) => h.uid === uid);
  state.hands = state.hands.filter((h) => h.uid !== uid);
  if (user.hand_raised_at_ms !== null) {
    state.hands = [...state.hands, { uid, at_ms: user.hand_raised_at_ms }].sort((a, b) => a.at_ms - b.at_ms);
  }
  const hasHand = user.hand_raised_at_ms !== null;
  state.hands_count = Math.max(0, state.hands_count + Number(hasHand) - Number(hadHand));

  state.invites = state.invites.filter((i) => i.uid !== uid);
  if (user.invited_by !== null) state.invites = [...state.invites, { uid, by: user.invited_by }];

  const muted = { ...state.muted };
  delete muted[uid];
  if (user.muted) muted[uid] = user.muted;
  state.muted = muted;

  if (state.you && state.you.uid === uid) {
    state.you = {
      ...state.you,
      role: user.role,
      hand_raised_at_ms: user.hand_raised_at_ms,
      invited_by: user.invited_by,
      muted: user.muted,
    };
    view.role = user.role;
  }
}

function putPoll(state: RoomStateJson, poll: Poll): void {
  const index = state.polls.findIndex((p) => p.poll_id === poll.poll_id);
  state.polls = index >= 0 ? state.polls.map((p, i) => (i === index ? poll : p)) : [...state.polls, poll];
}
