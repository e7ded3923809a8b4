// One joined room: its stream position, typed events, typed actions and the
// room-state store.

import { accept, joinedCursor, type Cursor } from "./cursor.js";
import { Emitter } from "./emitter.js";
import type { Resume } from "./protocol.js";
import { RoomStore } from "./store.js";
import type { ActionName, Actions, OtherEvent, RoomEvent, Snapshot } from "./types.js";

/** A durable message as the SDK surfaces it. */
export interface Message {
  seq: number;
  kind: string;
  /** The body as JSON; `undefined` when the bytes are not JSON (see `bodyB64`). */
  body: unknown;
  bodyB64?: string;
  sender: string;
  tsMs: number;
  priority: number;
}

/** A Joined (socket) or a polling restart, normalised. */
export interface JoinInfo {
  epoch: string;
  startSeq: number;
  recovered: boolean;
  snapshot: Snapshot | null;
}

export interface RoomEvents {
  /** In the room (first join, rejoin after reconnect, or the server's re-join). */
  joined: JoinInfo & {
    /** A resume was asked for and history reached back: no message was missed. */
    resumed: boolean;
  };
  /** The stream restarted or history did not reach back: the snapshot is the truth. */
  reset: { epoch: string };
  /** Every event of a kind this SDK knows, durable and ephemeral, in order. */
  event: RoomEvent;
  /** Events of kinds this SDK does not know (custom push-API kinds). */
  other: OtherEvent;
  /** Every durable message, raw, in seq order (after dedup). */
  message: Message;
  /** Removed from the room (`kicked`), or left. */
  left: { reason: string };
}

/** How a room talks to its connection (implemented by the client). */
export interface RoomLink {
  publish(room: string, action: string, payload: unknown): Promise<unknown>;
  joinRoom(room: Room): Promise<void>;
  leave(room: string): Promise<void>;
}

const DURABLE_KINDS = new Set([
  "room_started", "room_ended", "hand_raised", "hand_lowered", "speaker_invited", "invite_declined",
  "role_changed", "mute_changed", "member_kicked", "comment_removed", "slow_mode", "gift",
  "poll_opened", "poll_closed", "comment",
]);
const EPHEMERAL_KINDS = new Set(["totals", "poll_tally", "member_joined", "member_left", "presence"]);

export class Room extends Emitter<RoomEvents> {
  /** The room-state store: subscribe to render. */
  readonly store: RoomStore;
  /** @internal */ cursor: Cursor | undefined;
  /** @internal */ previousEpoch: string | undefined;
  /** @internal ref of the join in flight, if any. */ joining: number | undefined;
  /** @internal a resume was sent with the join in flight. */ resuming = false;
  /** @internal */ joinWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(
    readonly id: string,
    private readonly link: RoomLink,
    refetch: () => Promise<Snapshot>,
    resume?: Resume,
  ) {
    super();
    this.store = new RoomStore(id, refetch);
    if (resume) this.cursor = { epoch: resume.epoch, lastSeq: resume.lastSeq };
  }

  /** Where this client is in the room's stream (persist it to resume after a reload). */
  get position(): Resume | undefined {
    return this.cursor ? { ...this.cursor } : undefined;
  }

  /** @internal A Joined or a polling restart. */
  onJoined(info: JoinInfo): void {
    const resumed = this.resuming;
    this.resuming = false;
    this.joining = undefined;
    const next = joinedCursor(this.cursor, info.epoch, info.startSeq, info.recovered);
    if (this.cursor && this.cursor.epoch !== next.epoch) this.previousEpoch = this.cursor.epoch;
    this.cursor = next;
    if (info.snapshot && (!info.recovered || !this.store.ready)) this.store.reset(info.snapshot);
    // Resumed (a saved position, or polling) without a snapshot: read the state.
    else if (!this.store.ready) this.store.resync().catch(() => undefined);
    if (resumed && !info.recovered) this.emit("reset", { epoch: info.epoch });
    this.emit("joined", { ...info, resumed: resumed && info.recovered });
    for (const waiter of this.joinWaiters.splice(0)) waiter.resolve();
  }

  /** @internal The join was refused. */
  onRefused(error: Error): void {
    this.joining = undefined;
    for (const waiter of this.joinWaiters.splice(0)) waiter.reject(error);
  }

  /** @internal A delivery (socket) or a poll reply's messages. Returns false when it must re-join. */
  onDelivery(epoch: string, firstSeq: number, lastSeq: number, messages: Message[]): boolean {
    if (!this.cursor) return true; // nothing before the first Joined
    const result = accept(this.cursor, { epoch, firstSeq, lastSeq, messages });
    if (result.type === "deliver") {
      for (const message of result.messages) this.surface(message);
      return true;
    }
    if (result.type === "gap") return this.joining !== undefined;
    // Late frames of the epoch before a reset are stale; any other epoch means
    // the stream changed under us: re-join so the server says which.
    return epoch === this.previousEpoch || this.joining !== undefined;
  }

  /** @internal An ephemeral event of this room. */
  onEphemeral(kind: string, body: unknown, bodyB64: string | undefined, tsMs: number): void {
    if (EPHEMERAL_KINDS.has(kind) && body !== undefined) {
      const event = { room: this.id, durable: false, kind, seq: null, body, sender: "", tsMs } as RoomEvent;
      this.store.apply(event);
      this.emit("event", event);
    } else {
      this.emit("other", { room: this.id, durable: false, kind, seq: null, body, bodyB64, sender: "", tsMs });
    }
  }

  /** @internal */
  onLeft(reason: string): void {
    this.emit("left", { reason });
  }

  private surface(message: Message): void {
    this.emit("message", message);
    const meta = { room: this.id, sender: message.sender, tsMs: message.tsMs, seq: message.seq };
    if (DURABLE_KINDS.has(message.kind) && message.body !== undefined && message.body !== null) {
      const event = { ...meta, durable: true, kind: message.kind, priority: message.priority, body: message.body } as RoomEvent;
      this.store.apply(event);
      this.emit("event", event);
    } else {
      this.emit("other", { ...meta, durable: true, kind: message.kind, body: message.body, bodyB64: message.bodyB64 });
    }
  }

  /** Send any action (typed for the built-in ones); resolves with the reply body. */
  async act<A extends ActionName>(action: A, payload: Actions[A][0]): Promise<Actions[A][1]>;
  async act(action: string, payload: unknown): Promise<unknown>;
  async act(action: string, payload: unknown): Promise<unknown> {
    return this.link.publish(this.id, action, payload);
  }

  comment(text: string, attrs?: Record<string, unknown>) {
    return this.act("comment", attrs ? { text, attrs } : { text });
  }
  like(count = 1) {
    return this.act("like", { count });
  }
  react(emoji: string) {
    return this.act("react", { emoji });
  }
  gift(giftId: string, count = 1, value?: number) {
    return this.act("gift", value === undefined ? { gift_id: giftId, count } : { gift_id: giftId, count, value });
  }
  raiseHand() {
    return this.act("raise_hand", {});
  }
  /** Lower your own hand, or (host, moderator) someone's. */
  lowerHand(uid?: string) {
    return this.act("lower_hand", uid ? { uid } : {});
  }
  inviteSpeaker(uid: string) {
    return this.act("invite_speaker", { uid });
  }
  acceptInvite() {
    return this.act("accept_invite", {});
  }
  declineInvite() {
    return this.act("decline_invite", {});
  }
  moveToAudience(uid: string) {
    return this.act("move_to_audience", { uid });
  }
  stepDown() {
    return this.act("step_down", {});
  }
  promoteModerator(uid: string) {
    return this.act("promote_moderator", { uid });
  }
  demoteModerator(uid: string) {
    return this.act("demote_moderator", { uid });
  }
  /** Mute yourself, or (host, moderator) someone on stage. */
  mute(uid?: string) {
    return this.act("mute", uid ? { uid } : {});
  }
  /** Unmute yourself, or (host, moderator) lift a moderator mute. */
  unmute(uid?: string) {
    return this.act("unmute", uid ? { uid } : {});
  }
  kick(uid: string) {
    return this.act("kick", { uid });
  }
  block(uid: string) {
    return this.act("block", { uid });
  }
  removeComment(seq: number) {
    return this.act("remove_comment", { seq });
  }
  slowMode(seconds: number) {
    return this.act("slow_mode", { seconds });
  }
  openPoll(question: string, options: string[], durationSecs?: number) {
    return this.act(
      "poll_open",
      durationSecs === undefined ? { question, options } : { question, options, duration_secs: durationSecs },
    );
  }
  async vote(pollId: string, option: number) {
    const reply = await this.act("vote", { poll_id: pollId, option });
    this.store.voted(pollId, option);
    return reply;
  }
  closePoll(pollId: string) {
    return this.act("poll_close", { poll_id: pollId });
  }
  endRoom() {
    return this.act("end_room", {});
  }
  interest() {
    return this.act("interest", {});
  }
  startRoom() {
    return this.act("start_room", {});
  }

  /** Join (or re-join after `leave`); resolves once in the room. */
  join(): Promise<void> {
    return this.link.joinRoom(this);
  }

  /** Leave the room. */
  leave(): Promise<void> {
    return this.link.leave(this.id);
  }
}
