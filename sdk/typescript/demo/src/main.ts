// The live-room demo page: everything through @roomcast/client. Served by
// `roomcast standalone` at /demo/ (docs/clients.md).

import { RoomcastClient, type Room, type RoomView, type Resume } from "../../src/index.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const el = (tag: string, props: Record<string, string> = {}, ...children: (Node | string)[]) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) node.setAttribute(k, v);
  node.append(...children);
  return node;
};

interface Saved {
  position?: Resume;
  comments: { seq: number; uid: string; text: string }[];
}
const COMMENTS_KEPT = 200;

async function api<T>(path: string, body: unknown): Promise<T> {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = await response.json();
  if (!response.ok) throw new Error(json?.error?.message ?? `HTTP ${response.status}`);
  return json as T;
}

function lobby() {
  const params = new URLSearchParams(location.hash.slice(1));
  const uid = params.get("uid");
  const room = params.get("room");
  if (uid && room) return enter(uid, room);
  $<HTMLInputElement>("uid").value = uid ?? "";
  $<HTMLInputElement>("room-id").value = room ?? "";
  $("join-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const uid = $<HTMLInputElement>("uid").value.trim();
    let room = $<HTMLInputElement>("room-id").value.trim();
    try {
      if (!room) room = (await api<{ room_id: string }>("api/rooms", { title: `${uid}'s room`, owner: uid })).room_id;
      location.hash = new URLSearchParams({ room, uid }).toString();
      await enter(uid, room);
    } catch (error) {
      $("lobby-error").textContent = String((error as Error).message);
    }
  });
}

async function enter(uid: string, roomId: string) {
  $("lobby").hidden = true;
  $("live").hidden = false;
  $("room-label").textContent = roomId;
  const storageKey = `roomcast-demo:${roomId}:${uid}`;
  const saved: Saved = JSON.parse(sessionStorage.getItem(storageKey) ?? "null") ?? { comments: [] };
  const save = () => sessionStorage.setItem(storageKey, JSON.stringify(saved));

  const client = new RoomcastClient({
    routerUrl: location.origin,
    uid,
    // Called on every connect: a development token from standalone.
    token: async () => (await api<{ token: string }>("api/token", { uid })).token,
    deviceId: `demo-${uid}`,
    platform: "web",
  });
  client.on("state", (s) => {
    $("status").textContent = s.status;
    $("status").dataset.status = s.status;
    $("transport").textContent = s.transport ?? "–";
    $("node").textContent = s.nodeId ?? "–";
  });

  for (const c of saved.comments) addComment(c.seq, c.uid, c.text, false);
  // Listeners first, then join: a resume's replay arrives right after the join.
  const room: Room = client.room(roomId, saved.position ? { resume: saved.position } : {});
  (window as unknown as { roomcast: unknown }).roomcast = { client, room };
  room.on("joined", (j) => {
    $("resumed").textContent = j.resumed ? "resumed" : "fresh";
    $("resumed").dataset.resumed = String(j.resumed);
  });
  room.on("reset", () => {
    saved.comments = [];
    $("comments").replaceChildren();
    save();
  });
  room.on("message", () => {
    saved.position = room.position;
    save();
  });
  let lastTotals: Record<string, number> = {};
  let lastLikes = -1;
  room.on("event", (e) => {
    if (e.kind === "comment") {
      addComment(e.seq, e.body.uid, e.body.text, true);
      saved.comments = [...saved.comments, { seq: e.seq, uid: e.body.uid, text: e.body.text }].slice(-COMMENTS_KEPT);
      save();
    } else if (e.kind === "comment_removed") {
      document.querySelector(`#comments li[data-seq="${e.body.seq}"]`)?.remove();
    } else if (e.kind === "totals") {
      if (lastLikes >= 0) burst("❤", e.body.likes - lastLikes);
      for (const [emoji, n] of Object.entries(e.body.reactions)) burst(emoji, n - (lastTotals[emoji] ?? (lastLikes < 0 ? n : 0)));
      lastLikes = e.body.likes;
      lastTotals = { ...e.body.reactions };
    } else if (e.kind === "gift") {
      burst("🎁", e.body.count);
    }
  });
  room.store.subscribe((view) => render(view, room, uid));
  try {
    await room.join();
  } catch (error) {
    $("lobby").hidden = false;
    $("live").hidden = true;
    $("lobby-error").textContent = `Cannot join ${roomId}: ${(error as Error).message}`;
    return;
  }

  const act = (promise: Promise<unknown>) => {
    $("action-error").textContent = "";
    promise.catch((error: Error) => ($("action-error").textContent = error.message));
  };
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>("text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    act(room.comment(text));
  });
  $("like").addEventListener("click", () => act(room.like(1)));
  for (const button of document.querySelectorAll<HTMLButtonElement>(".react")) {
    button.addEventListener("click", () => act(room.react(button.dataset.emoji ?? "👏")));
  }
  $("hand").addEventListener("click", () => {
    const raised = room.store.view.state?.you?.hand_raised_at_ms != null;
    act(raised ? room.lowerHand() : room.raiseHand());
  });
  $("accept").addEventListener("click", () => act(room.acceptInvite()));
  $("decline").addEventListener("click", () => act(room.declineInvite()));
  $("self-mute").addEventListener("click", () => act(room.store.view.state?.you?.muted ? room.unmute() : room.mute()));
  $("step-down").addEventListener("click", () => act(room.stepDown()));
  $("poll-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const options = $<HTMLInputElement>("poll-options").value.split(",").map((o) => o.trim()).filter(Boolean);
    act(room.openPoll($<HTMLInputElement>("poll-question").value.trim(), options));
    $<HTMLFormElement>("poll-form").reset();
  });
}

let lane = 0;
function addComment(seq: number, uid: string, text: string, fly: boolean) {
  const list = $("comments");
  if (list.querySelector(`li[data-seq="${seq}"]`)) return;
  list.append(el("li", { "data-seq": String(seq), "data-uid": uid }, el("span", { class: "seq" }, `#${seq}`), el("b", {}, uid), text));
  while (list.children.length > COMMENTS_KEPT) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
  if (!fly) return;
  const bullet = el("div", { class: "bullet" }, el("b", {}, uid), text);
  bullet.style.top = `${12 + (lane++ % 7) * 36}px`;
  bullet.addEventListener("animationend", () => bullet.remove());
  $("danmaku").append(bullet);
}

function burst(emoji: string, count: number) {
  for (let i = 0; i < Math.min(Math.max(count, 0), 12); i++) {
    const span = el("span", {}, emoji);
    span.style.left = `${Math.random() * 40}px`;
    span.style.animationDelay = `${i * 70}ms`;
    span.addEventListener("animationend", () => span.remove());
    $("bursts").append(span);
  }
}

function render(view: RoomView, room: Room, me: string) {
  const s = view.state;
  if (!s) return;
  const isHost = view.role === "host";
  const isMod = isHost || view.role === "moderator";
  $("title").textContent = s.title;
  $("role").textContent = view.role;
  $("members").textContent = String(s.members);
  $("likes").textContent = String(s.likes);
  $("listeners").textContent = String(s.listeners);
  $("hands-count").textContent = s.hands_count ? `(${s.hands_count})` : "";
  $("poll-form").hidden = !isMod;

  const act = (p: Promise<unknown>) => p.catch((e: Error) => ($("action-error").textContent = e.message));
  const button = (label: string, id: string, onClick: () => Promise<unknown>) => {
    const b = el("button", { type: "button", "data-action": id }, label);
    b.addEventListener("click", () => act(onClick()));
    return b;
  };

  const stage = [...(s.host ? [s.host] : []), ...s.moderators, ...s.speakers];
  $("speakers").replaceChildren(
    ...stage.map((uid) => {
      const muted = s.muted[uid];
      const li = el("li", { "data-uid": uid, "data-muted": muted ?? "", class: `${uid === s.host ? "host" : ""} ${muted ? "muted" : ""}` },
        el("div", { class: "avatar" }, uid.slice(0, 2).toUpperCase()), `${uid}${muted ? " 🔇" : ""}`);
      if (isMod && uid !== me && uid !== s.host) {
        li.append(el("div", {},
          muted === "moderator" ? button("unmute", "unmute", () => room.unmute(uid)) : button("mute", "mute", () => room.mute(uid)),
          button("↓", "move", () => room.moveToAudience(uid)),
          button("kick", "kick", () => room.kick(uid))));
      }
      return li;
    }),
  );
  $("hands").replaceChildren(
    ...s.hands.map((h) => {
      const li = el("li", { "data-uid": h.uid }, `✋ ${h.uid}`);
      if (isMod) {
        const invited = s.invites.some((i) => i.uid === h.uid);
        li.append(invited ? "(invited)" : button("invite to speak", "invite", () => room.inviteSpeaker(h.uid)), button("kick", "kick", () => room.kick(h.uid)));
      }
      return li;
    }),
  );
  $("polls").replaceChildren(
    ...[...s.polls].reverse().map((p) => {
      const mine = s.you?.votes[p.poll_id];
      const total = Math.max(1, p.tallies.reduce((a, b) => a + b, 0));
      const div = el("div", { class: `poll ${p.state}`, "data-poll": p.poll_id }, el("div", { class: "q" }, p.question));
      p.options.forEach((option, i) => {
        const fill = el("div", { class: "fill" });
        fill.style.width = `${(100 * (p.tallies[i] ?? 0)) / total}%`;
        const bar = el("div", { class: `bar ${mine === i ? "mine" : ""}`, "data-option": String(i) }, fill, el("span", {}, option), el("span", { class: "n" }, String(p.tallies[i] ?? 0)));
        if (p.state === "open" && mine === undefined) bar.addEventListener("click", () => act(room.vote(p.poll_id, i)));
        div.append(bar);
      });
      if (isMod && p.state === "open") div.append(button("close poll", "poll-close", () => room.closePoll(p.poll_id)));
      return div;
    }),
  );
  const you = s.you;
  const onStage = you && (you.role === "speaker" || you.role === "moderator");
  $("hand").hidden = !you || you.role !== "listener";
  $("hand").textContent = you?.hand_raised_at_ms != null ? "✋ Lower hand" : "✋ Raise hand";
  $("invite").hidden = !you?.invited_by;
  $("self-mute").hidden = !(onStage || you?.role === "host");
  $("self-mute").textContent = you?.muted ? "Unmute" : "Mute";
  $("step-down").hidden = !onStage;
}

lobby();
