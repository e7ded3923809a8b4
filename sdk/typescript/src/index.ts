// @roomcast/client: route → WebSocket (JSON v2) → join with resume, polling
// fallback, typed room actions and events, a room-state store.

export { RoomcastClient } from "./client.js";
export type { ClientOptions, ClientEvents, ConnectionState, Status, Transport, WebSocketLike, WebSocketInstance } from "./client.js";
export { Room } from "./room.js";
export type { Message, JoinInfo, RoomEvents } from "./room.js";
export { RoomStore } from "./store.js";
export type { RoomView } from "./store.js";
export { Code, RoomcastError, SUBPROTOCOL, codeName } from "./protocol.js";
export type { CodeName, Resume } from "./protocol.js";
export { accept, joinedCursor } from "./cursor.js";
export type { Cursor } from "./cursor.js";
export type { HistoryMessage, HistoryPage, HistoryQuery, Inbox, InboxItem } from "./reads.js";
export { Backoff, Fallback } from "./policy.js";
export type * from "./types.js";
