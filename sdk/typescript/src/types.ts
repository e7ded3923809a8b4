// Room business types: the snapshot, event bodies and action payloads of
// docs/room-api.md. Bodies keep the server's snake_case field names.

export type Role = "host" | "moderator" | "speaker" | "listener";
export type Mute = "self" | "moderator" | null;

/** A user's whole stage state, as stage events carry it (`user`). */
export interface UserState {
  uid: string;
  role: Role;
  hand_raised_at_ms: number | null;
  invited_by: string | null;
  muted: Mute;
}

export interface Poll {
  poll_id: string;
  question: string;
  options: string[];
  opened_by: string;
  opened_at_ms: number;
  closes_at_ms: number | null;
  state: "open" | "closed";
  tallies: number[];
  votes: number;
  closed_at_ms: number | null;
}

export interface You {
  uid: string;
  role: Role;
  hand_raised_at_ms: number | null;
  invited_by: string | null;
  muted: Mute;
  member: boolean;
  interested: boolean;
  votes: Record<string, number>;
}

/** `RoomSnapshot.state` and `GET /v1/rooms/{id}/state`'s `state`. */
export interface RoomStateJson {
  v: number;
  title: string;
  owner: string | null;
  host: string | null;
  created_at_ms: number;
  state: "scheduled" | "live" | "ended";
  scheduled_at_ms: number | null;
  started_at_ms: number | null;
  ended_at_ms: number | null;
  private: boolean;
  auto_end_empty_secs: number;
  slow_mode_secs: number;
  members: number;
  listeners: number;
  moderators: string[];
  speakers: string[];
  hands: { uid: string; at_ms: number }[];
  hands_count: number;
  invites: { uid: string; by: string }[];
  muted: Record<string, "self" | "moderator">;
  polls: Poll[];
  likes: number;
  reactions: Record<string, number>;
  comments: number;
  gifts: number;
  gift_value: number;
  interested: number;
  you: You | null;
}

/** What a join (or `/state`) answers: the room and the caller's role. */
export interface Snapshot {
  room: string;
  title: string;
  role: Role | string;
  members: number;
  state: RoomStateJson | null;
}

interface Stage {
  uid: string;
  by: string;
  v: number;
  user: UserState;
}

/** Durable event bodies by kind. */
export interface DurableBodies {
  room_started: { started_at_ms: number; by: string; v: number };
  room_ended: { reason: "host" | "api" | "empty"; by: string | null; ended_at_ms: number; summary: Record<string, unknown>; v: number };
  hand_raised: Stage & { at_ms: number };
  hand_lowered: Stage;
  speaker_invited: Stage;
  invite_declined: Stage;
  role_changed: Stage & {
    role: Role;
    previous: Role;
    reason: "accepted_invite" | "moved_to_audience" | "stepped_down" | "promoted" | "demoted";
  };
  mute_changed: Stage & { muted: Mute };
  member_kicked: Stage & { blocked: boolean };
  comment_removed: { seq: number; by: string; v: number };
  slow_mode: { seconds: number; by: string; v: number };
  gift: { uid: string; gift_id: string; count: number; value: number; total_value: number };
  poll_opened: { poll: Poll; by: string; v: number };
  poll_closed: { poll: Poll; reason: "closed" | "timer" | "room_ended"; by: string | null; v: number };
  comment: { uid: string; text: string; attrs?: Record<string, unknown> };
}

/** Ephemeral event bodies by kind (no seq, no history; totals as totals). */
export interface EphemeralBodies {
  totals: { likes: number; reactions: Record<string, number>; reactions_total: number };
  poll_tally: { poll_id: string; tallies: number[]; votes: number; state: "open" | "closed" };
  member_joined: { uid: string; role: Role; members: number };
  member_left: { uid: string | null; members: number };
  presence: { joined: number; left: number; members: number };
}

/** User-targeted event bodies (room empty on the wire; the body names the room). */
export interface UserBodies {
  room_invite: { room: string; title: string; host: string | null; state: string; scheduled_at_ms: number | null; by: string | null };
  room_started: { room: string; title: string; host: string | null };
  speak_invite: { room: string; by: string };
  kicked: { room: string; by: string; blocked: boolean };
}

interface EventMeta {
  room: string;
  sender: string;
  tsMs: number;
}

export type DurableEvent = {
  [K in keyof DurableBodies]: EventMeta & { durable: true; kind: K; seq: number; priority: number; body: DurableBodies[K] };
}[keyof DurableBodies];

export type EphemeralEvent = {
  [K in keyof EphemeralBodies]: EventMeta & { durable: false; kind: K; seq: null; body: EphemeralBodies[K] };
}[keyof EphemeralBodies];

/** Every room event kind this SDK knows, discriminated by `kind`. */
export type RoomEvent = DurableEvent | EphemeralEvent;

/** An event of a kind this SDK does not know (custom push-API kinds). */
export interface OtherEvent extends EventMeta {
  durable: boolean;
  kind: string;
  seq: number | null;
  /** The body as JSON, or `undefined` when it is not JSON (see `bodyB64`). */
  body: unknown;
  bodyB64?: string;
}

export type UserEvent = {
  [K in keyof UserBodies]: { kind: K; body: UserBodies[K]; tsMs: number };
}[keyof UserBodies];

/** Stage and moderation replies. */
export interface StageReply {
  changed: boolean;
  v: number;
  user: UserState;
  seq: number | null;
}

/** Action payloads and replies by action name (docs/room-api.md, "The actions"). */
export interface Actions {
  raise_hand: [Record<string, never>, StageReply];
  lower_hand: [{ uid?: string }, StageReply];
  invite_speaker: [{ uid: string }, StageReply];
  accept_invite: [Record<string, never>, StageReply];
  decline_invite: [Record<string, never>, StageReply];
  move_to_audience: [{ uid: string }, StageReply];
  step_down: [Record<string, never>, StageReply];
  promote_moderator: [{ uid: string }, StageReply];
  demote_moderator: [{ uid: string }, StageReply];
  mute: [{ uid?: string }, StageReply];
  unmute: [{ uid?: string }, StageReply];
  kick: [{ uid: string }, StageReply];
  block: [{ uid: string }, StageReply];
  remove_comment: [{ seq: number }, { removed: boolean; seq: number }];
  slow_mode: [{ seconds: number }, { seconds: number; changed: boolean; v: number; seq: number | null }];
  comment: [{ text: string; attrs?: Record<string, unknown> }, { seq: number }];
  like: [{ count?: number }, { accepted: number }];
  react: [{ emoji: string }, { accepted: number }];
  gift: [{ gift_id: string; count?: number; value?: number }, { seq: number }];
  poll_open: [{ question: string; options: string[]; duration_secs?: number }, { poll_id: string; closes_at_ms: number | null; seq: number }];
  vote: [{ poll_id: string; option: number }, { poll_id: string; option: number }];
  poll_close: [{ poll_id: string }, { poll: Poll; seq: number | null; v: number }];
  end_room: [Record<string, never>, { summary: Record<string, unknown> }];
  interest: [Record<string, never>, unknown];
  start_room: [Record<string, never>, { started_at_ms: number; seq: number }];
}
export type ActionName = keyof Actions;

/** Token lifecycle events of the open session (`client.on("tokenExpiring" | …)`). */
export interface TokenExpiring {
  /** When the session's token expires (Unix ms); without a refresh the server closes it then. */
  expiresAtMs: number;
}

export interface TokenRefreshed {
  /** The new token's expiry (Unix ms). */
  expiresAtMs: number;
}

export interface TokenRefreshFailed {
  /** Why: the server's refusal (`UNAUTHENTICATED`, `TOKEN_EXPIRED`, `TOKEN_REVOKED`, `FORBIDDEN`), no answer in time (`UNAVAILABLE`), or the token function's own error. The session keeps its current token. */
  error: Error;
}
