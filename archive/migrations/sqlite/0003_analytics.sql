-- Analytics: each member session's stay in the room, from its join to its
-- leave (sessions still in at the end leave with the room).
CREATE TABLE sessions (
    room         TEXT NOT NULL,
    uid          TEXT NOT NULL,
    session      TEXT NOT NULL,
    joined_at_ms INTEGER NOT NULL,
    left_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (room, uid, session, joined_at_ms)
);

-- Analytics: likes (`likes`) and reactions (`r:<emoji>`) per minute:
-- minute_ms is the minute's start (Unix ms), minute its number from the
-- room's start (negative before it).
CREATE TABLE counters_per_minute (
    room      TEXT NOT NULL,
    minute_ms INTEGER NOT NULL,
    minute    INTEGER NOT NULL,
    name      TEXT NOT NULL,
    value     INTEGER NOT NULL,
    PRIMARY KEY (room, minute_ms, name)
);

-- Analytics: one row per room with its duration, peak concurrency, unique
-- listeners, sessions and durable messages.
CREATE VIEW room_stats AS
    SELECT r.id AS room,
        r.ended_at_ms - COALESCE(r.started_at_ms, r.created_at_ms) AS duration_ms,
        (SELECT c.value FROM counters c WHERE c.room = r.id AND c.name = 'peak')
            AS peak_concurrency,
        (SELECT c.value FROM counters c WHERE c.room = r.id AND c.name = 'unique_listeners')
            AS unique_listeners,
        (SELECT count(*) FROM sessions s WHERE s.room = r.id) AS sessions,
        (SELECT count(*) FROM messages m WHERE m.room = r.id) AS messages
    FROM rooms r;
