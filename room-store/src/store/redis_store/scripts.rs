//! The Lua scripts of the Redis room store. Every script gets all of a room's
//! keys, in [`super::RoomKeys::all`] order, so each is one atomic step on one
//! Cluster slot; most answer JSON (`cjson`) so replies parse the same way
//! whatever their shape. Numbers that must survive exactly (timestamps) travel
//! as strings: Lua numbers are doubles.
//!
//! `APPLY` is the Redis twin of `RoomDoc::apply` (domain/transition.rs); the
//! store conformance suite runs the same transitions on both engines.

use std::sync::LazyLock;

use redis::Script;

/// Names for the keys and helpers shared by the scripts.
const PRELUDE: &str = r"
local K = {meta = KEYS[1], members = KEYS[2], sessions = KEYS[3], refs = KEYS[4],
  roles = KEYS[5], hands = KEYS[6], invites = KEYS[7], muted = KEYS[8], kicked = KEYS[9],
  allowed = KEYS[10], interest = KEYS[11], polls = KEYS[12], votes = KEYS[13],
  tally = KEYS[14], counters = KEYS[15], seen = KEYS[16], slow = KEYS[17], opened = KEYS[18],
  stays = KEYS[19], minutes = KEYS[20]}
local MAX_STAYS = 100000
local function room_ttl(ttl)
  ttl = tonumber(ttl)
  if redis.call('HGET', K.meta, 'state') == 'scheduled' then
    local at = tonumber(redis.call('HGET', K.meta, 'scheduled_at_ms') or '0')
    local now = redis.call('TIME')
    local ahead = math.ceil(at / 1000 - tonumber(now[1]))
    if ahead > 0 then ttl = ttl + ahead end
  end
  return ttl
end
local function expire_all(ttl)
  ttl = room_ttl(ttl)
  for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
end
local function map(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end
local function role_of(uid)
  if redis.call('HGET', K.meta, 'owner') == uid then return 'host' end
  local r = redis.call('HGET', K.roles, uid)
  if r then return r end
  return 'listener'
end
local function is_member(uid)
  return redis.call('ZSCORE', K.members, uid) ~= false
end
local function mark_empty(now)
  if redis.call('ZCARD', K.members) == 0 and redis.call('HGET', K.meta, 'state') == 'live'
    and redis.call('HEXISTS', K.meta, 'empty_since_ms') == 0 then
    redis.call('HSET', K.meta, 'empty_since_ms', now)
  end
end
local function user(uid)
  return {role_of(uid), redis.call('ZSCORE', K.hands, uid) or '',
    redis.call('HGET', K.invites, uid) or '', redis.call('HGET', K.muted, uid) or '',
    tostring(redis.call('SISMEMBER', K.kicked, uid)), is_member(uid) and '1' or '0'}
end
";

#[cfg(test)]
#[test]
fn the_scripts_keep_as_many_stays_as_the_memory_engine() {
    let line = format!("local MAX_STAYS = {}", crate::store::MAX_STAYS);
    assert!(PRELUDE.contains(&line));
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// Create the room unless the id is taken. ARGV: ttl, number of meta
/// field/value pairs, the pairs, then invited uids. Returns 1, or 0 if taken.
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', K.meta) == 1 then return 0 end
local pairs_end = 2 + 2 * tonumber(ARGV[2])
redis.call('HSET', K.meta, unpack(ARGV, 3, pairs_end))
redis.call('HSET', K.counters, 'version', 0)
for i = pairs_end + 1, #ARGV do redis.call('SADD', K.allowed, ARGV[i]) end
expire_all(ARGV[1])
return 1
",
    )
});

/// Write the meta hash back unless someone already did, and return it (the
/// stored copy wins, so two biz nodes restoring at once agree). ARGV: ttl,
/// field/value pairs. Returns HGETALL.
pub(super) static RESTORE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', K.meta) == 0 then
  redis.call('HSET', K.meta, unpack(ARGV, 2))
end
redis.call('EXPIRE', K.meta, room_ttl(ARGV[1]))
return redis.call('HGETALL', K.meta)
",
    )
});

/// Mark a room ended (keeping the first end time). ARGV: ttl, now. Returns
/// HGETALL of the meta, empty if the room does not exist.
pub(super) static END: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', K.meta) == 0 then return {} end
if redis.call('HGET', K.meta, 'state') ~= 'ended' then
  redis.call('HSET', K.meta, 'state', 'ended', 'ended_at_ms', ARGV[2])
end
expire_all(ARGV[1])
return redis.call('HGETALL', K.meta)
",
    )
});

/// Record a session. ARGV: uid, session field, node id, now (ms), ttl.
/// Returns the member count, -1 if the room does not exist, -2 if the uid was
/// kicked, -3 if the room is private and the uid not invited.
pub(super) static JOIN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local uid = ARGV[1]
if redis.call('EXISTS', K.meta) == 0 then return -1 end
if redis.call('SISMEMBER', K.kicked, uid) == 1 then return -2 end
if redis.call('HGET', K.meta, 'private') == '1' and redis.call('HGET', K.meta, 'owner') ~= uid
  and redis.call('SISMEMBER', K.allowed, uid) == 0 then return -3 end
if redis.call('HEXISTS', K.sessions, ARGV[2]) == 0 then
  redis.call('HINCRBY', K.refs, uid, 1)
  redis.call('ZADD', K.members, 'NX', ARGV[4], uid)
end
redis.call('HSET', K.sessions, ARGV[2], ARGV[3])
redis.call('HSETNX', K.opened, ARGV[2], ARGV[4])
redis.call('SADD', K.seen, uid)
redis.call('HDEL', K.meta, 'empty_since_ms')
local count = redis.call('ZCARD', K.members)
if count > tonumber(redis.call('HGET', K.counters, 'peak') or '0') then
  redis.call('HSET', K.counters, 'peak', count)
end
expire_all(ARGV[5])
return count
",
    )
});

/// Drop sessions. ARGV: the node a session must be held by to be dropped
/// ('' = any), ttl, now, then session field / uid pairs. Returns {member
/// count, sessions dropped, node of the last dropped, uids whose last
/// session was dropped}.
pub(super) static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local want, removed, node, gone = ARGV[1], 0, '', 0
for i = 4, #ARGV, 2 do
  local field, uid = ARGV[i], ARGV[i + 1]
  local held = redis.call('HGET', K.sessions, field)
  if held and (want == '' or held == want) then
    redis.call('HDEL', K.sessions, field)
    local joined = redis.call('HGET', K.opened, field)
    if joined then
      redis.call('HDEL', K.opened, field)
      redis.call('RPUSH', K.stays, field .. '\t' .. joined .. '\t' .. ARGV[3])
      redis.call('LTRIM', K.stays, -MAX_STAYS, -1)
    end
    if redis.call('HINCRBY', K.refs, uid, -1) <= 0 then
      redis.call('HDEL', K.refs, uid)
      redis.call('ZREM', K.members, uid)
      gone = gone + 1
    end
    removed = removed + 1
    node = held
  end
end
if removed > 0 then
  mark_empty(ARGV[3])
  for _, key in ipairs({K.meta, K.members, K.sessions, K.refs, K.opened, K.stays}) do
    redis.call('EXPIRE', key, room_ttl(ARGV[2]))
  end
end
return {redis.call('ZCARD', K.members), removed, node, gone}
",
    )
});

/// Apply a transition (domain/transition.rs). ARGV: the transition as JSON, ttl.
/// Returns JSON: `{"status":-1}` (no room), `{"status":0,"guard":i}`
/// (refused by guard i, 0-based) or `{"status":1,"changed":0|1,"version":n,
/// "before":[...],"after":[...]}` (user tuples: role, hand time, inviter,
/// mute, kicked, member).
pub(super) static APPLY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', K.meta) == 0 then return cjson.encode({status = -1}) end
local t = cjson.decode(ARGV[1])
local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end
local function rank(role)
  if role == 'host' then return 3 elseif role == 'moderator' then return 2 end
  return 1
end
local function poll_field(id, f) return redis.call('HGET', K.polls, id .. ':' .. f) end
local function holds(g)
  local kind = g.g
  if kind == 'phase' then return contains(g.any, redis.call('HGET', K.meta, 'state'))
  elseif kind == 'role' then return contains(g.any, role_of(g.uid))
  elseif kind == 'member' then return is_member(g.uid)
  elseif kind == 'not_kicked' then return redis.call('SISMEMBER', K.kicked, g.uid) == 0
  elseif kind == 'may_enter' then
    return redis.call('HGET', K.meta, 'private') ~= '1'
      or redis.call('HGET', K.meta, 'owner') == g.uid
      or redis.call('SISMEMBER', K.allowed, g.uid) == 1
  elseif kind == 'outranks' then return rank(role_of(g.actor)) > rank(role_of(g.target))
  elseif kind == 'invited' then return redis.call('HEXISTS', K.invites, g.uid) == 1
  elseif kind == 'muted' then
    return contains(g.any, redis.call('HGET', K.muted, g.uid) or 'none')
  elseif kind == 'poll_open' then
    if redis.call('HEXISTS', K.polls, g.poll) == 0 or poll_field(g.poll, 'closed') then
      return false
    end
    local until_ms = poll_field(g.poll, 'until')
    return (not until_ms) or tonumber(g.now_ms) < tonumber(until_ms)
  elseif kind == 'poll_exists' then return redis.call('HEXISTS', K.polls, g.poll) == 1
  elseif kind == 'poll_option' then
    local n = poll_field(g.poll, 'n')
    return n ~= false and g.option < tonumber(n)
  elseif kind == 'not_voted' then
    return redis.call('HEXISTS', K.votes, g.poll .. ':' .. g.uid) == 0
  elseif kind == 'open_polls_below' then
    return tonumber(redis.call('HGET', K.counters, 'polls_open') or '0') < g.max
  elseif kind == 'empty_for' then
    if redis.call('ZCARD', K.members) ~= 0 then return false end
    local since = redis.call('HGET', K.meta, 'empty_since_ms')
    return since ~= false and tonumber(g.now_ms) - tonumber(since) >= tonumber(g.ms)
  end
  error('unknown guard ' .. tostring(kind))
end
local function effect(e)
  local kind = e.e
  if kind == 'set_role' then
    if e.role == nil then return redis.call('HDEL', K.roles, e.uid) end
    if redis.call('HGET', K.roles, e.uid) == e.role then return 0 end
    redis.call('HSET', K.roles, e.uid, e.role)
    return 1
  elseif kind == 'mute_if_listener' then
    if role_of(e.uid) ~= 'listener' or redis.call('HEXISTS', K.muted, e.uid) == 1 then
      return 0
    end
    redis.call('HSET', K.muted, e.uid, 'self')
    return 1
  elseif kind == 'raise_hand' then return redis.call('ZADD', K.hands, 'NX', e.at_ms, e.uid)
  elseif kind == 'lower_hand' then return redis.call('ZREM', K.hands, e.uid)
  elseif kind == 'invite' then return redis.call('HSETNX', K.invites, e.uid, e.by)
  elseif kind == 'uninvite' then return redis.call('HDEL', K.invites, e.uid)
  elseif kind == 'set_mute' then
    if e.mute == nil then return redis.call('HDEL', K.muted, e.uid) end
    if redis.call('HGET', K.muted, e.uid) == e.mute then return 0 end
    redis.call('HSET', K.muted, e.uid, e.mute)
    return 1
  elseif kind == 'kick' then
    local fresh = redis.call('SADD', K.kicked, e.uid)
    redis.call('HDEL', K.roles, e.uid)
    redis.call('ZREM', K.hands, e.uid)
    redis.call('HDEL', K.invites, e.uid)
    redis.call('HDEL', K.muted, e.uid)
    -- Its sessions stay in the sessions hash until their leave arrives (the
    -- leave script then finds no ref and changes no count).
    if redis.call('ZREM', K.members, e.uid) == 1 then
      redis.call('HDEL', K.refs, e.uid)
      mark_empty(e.now_ms)
    end
    return fresh
  elseif kind == 'slow_mode' then
    local secs = tostring(e.secs)
    if redis.call('HGET', K.meta, 'slow_mode_secs') == secs then return 0 end
    redis.call('HSET', K.meta, 'slow_mode_secs', secs)
    return 1
  elseif kind == 'start' then
    if redis.call('HGET', K.meta, 'state') == 'live' then return 0 end
    redis.call('HSET', K.meta, 'state', 'live', 'started_at_ms', e.at_ms)
    if redis.call('ZCARD', K.members) == 0 then
      redis.call('HSET', K.meta, 'empty_since_ms', e.at_ms)
    end
    return 1
  elseif kind == 'end' then
    if redis.call('HGET', K.meta, 'state') == 'ended' then return 0 end
    redis.call('HSET', K.meta, 'state', 'ended', 'ended_at_ms', e.at_ms)
    return 1
  elseif kind == 'interest' then return redis.call('SADD', K.interest, e.uid)
  elseif kind == 'allow' then return redis.call('SADD', K.allowed, e.uid)
  elseif kind == 'open_poll' then
    if redis.call('HSETNX', K.polls, e.id, e.def) == 0 then return 0 end
    redis.call('HSET', K.polls, e.id .. ':n', e.options)
    if e.closes_at_ms then redis.call('HSET', K.polls, e.id .. ':until', e.closes_at_ms) end
    redis.call('HINCRBY', K.counters, 'polls_open', 1)
    return 1
  elseif kind == 'vote' then
    if redis.call('HEXISTS', K.polls, e.poll) == 0 then return 0 end
    if e.option >= tonumber(poll_field(e.poll, 'n') or '0') then return 0 end
    if redis.call('HSETNX', K.votes, e.poll .. ':' .. e.uid, e.option) == 0 then return 0 end
    redis.call('HINCRBY', K.tally, e.poll .. ':' .. e.option, 1)
    return 1
  elseif kind == 'close_poll' then
    if redis.call('HEXISTS', K.polls, e.poll) == 0 or poll_field(e.poll, 'closed') then
      return 0
    end
    redis.call('HSET', K.polls, e.poll .. ':closed', e.at_ms)
    redis.call('HINCRBY', K.counters, 'polls_open', -1)
    return 1
  end
  error('unknown effect ' .. tostring(kind))
end
for i, g in ipairs(t.guards) do
  if not holds(g) then return cjson.encode({status = 0, guard = i - 1}) end
end
local out = {status = 1}
if t.subject then out.before = user(t.subject) end
local changed = 0
for _, e in ipairs(t.effects) do changed = changed + effect(e) end
if changed > 0 then
  out.changed = 1
  out.version = redis.call('HINCRBY', K.counters, 'version', 1)
  expire_all(ARGV[2])
else
  out.changed = 0
  out.version = tonumber(redis.call('HGET', K.counters, 'version') or '0')
end
if t.subject then out.after = user(t.subject) end
return cjson.encode(out)
",
    )
});

/// Read everything clients see. ARGV: viewer uid ('' none), most hands.
/// Returns '' for an unknown room, else JSON of the raw hashes and counts.
pub(super) static READ: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', K.meta) == 0 then return '' end
local out = {}
out.meta = map(redis.call('HGETALL', K.meta))
out.members = redis.call('ZCARD', K.members)
out.roles = map(redis.call('HGETALL', K.roles))
local owner = out.meta.owner
local present = 0
if owner and is_member(owner) then present = present + 1 end
for uid, _ in pairs(out.roles) do
  if uid ~= owner and is_member(uid) then present = present + 1 end
end
out.present = present
local n = tonumber(ARGV[2])
out.hands = {}
if n > 0 then out.hands = map(redis.call('ZRANGE', K.hands, 0, n - 1, 'WITHSCORES')) end
out.hands_count = redis.call('ZCARD', K.hands)
out.invites = map(redis.call('HGETALL', K.invites))
out.muted = map(redis.call('HGETALL', K.muted))
out.kicked = redis.call('SCARD', K.kicked)
out.interest = redis.call('SCARD', K.interest)
out.seen = redis.call('SCARD', K.seen)
out.polls = map(redis.call('HGETALL', K.polls))
out.tally = map(redis.call('HGETALL', K.tally))
out.counters = map(redis.call('HGETALL', K.counters))
local viewer = ARGV[1]
if viewer ~= '' then
  local votes = {}
  for field, _ in pairs(out.polls) do
    if not string.find(field, ':', 1, true) then
      local choice = redis.call('HGET', K.votes, field .. ':' .. viewer)
      if choice then votes[field] = choice end
    end
  end
  out.viewer = {user = user(viewer),
    allowed = redis.call('SISMEMBER', K.allowed, viewer),
    interested = redis.call('SISMEMBER', K.interest, viewer), votes = votes}
end
return cjson.encode(out)
",
    )
});

/// Add to counters. ARGV: ttl, writer ('' for none), batch number, then
/// name/delta pairs. A batch numbered no higher than the writer's last
/// (field `w:<writer>`) adds nothing. Returns '' for an unknown room, else
/// every counter as JSON.
pub(super) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', K.meta) == 0 then return '' end
local fresh = true
if ARGV[2] ~= '' then
  local field = 'w:' .. ARGV[2]
  local last = tonumber(redis.call('HGET', K.counters, field) or '0')
  if tonumber(ARGV[3]) <= last then fresh = false else redis.call('HSET', K.counters, field, ARGV[3]) end
end
if fresh then
  local now = redis.call('TIME')
  local minute = tostring(math.floor(tonumber(now[1]) / 60) * 60000)
  for i = 4, #ARGV, 2 do
    local name = ARGV[i]
    redis.call('HINCRBY', K.counters, name, ARGV[i + 1])
    if name == 'likes' or string.sub(name, 1, 2) == 'r:' then
      redis.call('HINCRBY', K.minutes, minute .. '|' .. name, ARGV[i + 1])
    end
  end
  redis.call('EXPIRE', K.minutes, room_ttl(ARGV[1]))
end
redis.call('EXPIRE', K.counters, room_ttl(ARGV[1]))
return cjson.encode(map(redis.call('HGETALL', K.counters)))
",
    )
});

/// Slow mode check-and-record. ARGV: uid, seconds, now, ttl. Returns '' (may
/// comment; recorded) or the ms still to wait; -1 for an unknown room.
pub(super) static SLOW: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', K.meta) == 0 then return -1 end
local period = tonumber(ARGV[2]) * 1000
local last = redis.call('HGET', K.slow, ARGV[1])
if period > 0 and last then
  local since = math.max(0, tonumber(ARGV[3]) - tonumber(last))
  if since < period then return tostring(period - since) end
end
redis.call('HSET', K.slow, ARGV[1], ARGV[3])
redis.call('EXPIRE', K.slow, room_ttl(ARGV[4]))
return ''
",
    )
});

/// A page of members by join time. ARGV: 'all' or 'listeners', the score
/// after which to start ('' from the first), the uid after which to start
/// among equal scores, limit. Returns a flat list uid, score, ….
pub(super) static MEMBERS_PAGE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local out, found, limit = {}, 0, tonumber(ARGV[4])
local owner = redis.call('HGET', K.meta, 'owner')
local min = '-inf'
if ARGV[2] ~= '' then min = ARGV[2] end
local offset, batch = 0, 200
while found < limit do
  local page = redis.call('ZRANGE', K.members, min, '+inf', 'BYSCORE', 'LIMIT', offset, batch,
    'WITHSCORES')
  if #page == 0 then break end
  for i = 1, #page, 2 do
    local uid, score = page[i], page[i + 1]
    local later = ARGV[2] == '' or tonumber(score) > tonumber(ARGV[2]) or uid > ARGV[3]
    if later and (ARGV[1] == 'all' or (uid ~= owner and redis.call('HEXISTS', K.roles, uid) == 0)) then
      out[#out + 1] = uid
      out[#out + 1] = score
      found = found + 1
      if found >= limit then break end
    end
  end
  offset = offset + batch
end
return out
",
    )
});

/// The lists a biz node caches per room. Returns JSON `{kicked, invited,
/// moderators}` (invited only for private rooms).
pub(super) static LISTS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local moderators = {}
for uid, role in pairs(map(redis.call('HGETALL', K.roles))) do
  if role == 'moderator' then moderators[#moderators + 1] = uid end
end
local out = {kicked = redis.call('SMEMBERS', K.kicked), invited = {}, moderators = moderators}
if redis.call('HGET', K.meta, 'private') == '1' then
  out.invited = redis.call('SMEMBERS', K.allowed)
end
return cjson.encode(out)
",
    )
});

/// Revoke a uid's tokens issued before `ARGV[1]` for `ARGV[2]` seconds; the
/// mark only moves forward. Not a room script: its one key is the uid's
/// revocation key (Unix seconds are exact as Lua doubles).
pub(super) static REVOKE_TOKENS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local before = tonumber(ARGV[1])
if before >= current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 0
"#,
    )
});
