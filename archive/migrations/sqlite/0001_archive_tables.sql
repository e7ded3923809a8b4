-- Rooms, their durable messages, participation, polls, gifts and counters.
CREATE TABLE rooms (
    id             TEXT PRIMARY KEY,
    title          TEXT NOT NULL,
    owner          TEXT,
    kind           TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    started_at_ms  INTEGER,
    ended_at_ms    INTEGER,
    summary        TEXT NOT NULL DEFAULT '{}',
    archived_at_ms INTEGER
);
CREATE INDEX rooms_by_end ON rooms (ended_at_ms);

-- (room, seq) is the exactly-once key: writers insert with ON CONFLICT DO NOTHING.
CREATE TABLE messages (
    room       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    sender     TEXT NOT NULL,
    payload    BLOB NOT NULL,
    sent_at_ms INTEGER NOT NULL,
    offset_ms  INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
);
-- Replay reads by offset from the room's start.
CREATE INDEX messages_by_offset ON messages (room, offset_ms, seq);

CREATE TABLE participation (
    room         TEXT NOT NULL,
    uid          TEXT NOT NULL,
    role         TEXT NOT NULL,
    joined_at_ms INTEGER NOT NULL,
    left_at_ms   INTEGER,
    PRIMARY KEY (room, uid)
);

CREATE TABLE polls (
    room         TEXT NOT NULL,
    poll_id      TEXT NOT NULL,
    question     TEXT NOT NULL,
    options      TEXT NOT NULL,
    tallies      TEXT NOT NULL,
    opened_by    TEXT NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    closed_at_ms INTEGER,
    PRIMARY KEY (room, poll_id)
);

CREATE TABLE gifts (
    room       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    uid        TEXT NOT NULL,
    gift_id    TEXT NOT NULL,
    count      INTEGER NOT NULL,
    value      INTEGER NOT NULL,
    sent_at_ms INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
);

CREATE TABLE counters (
    room  TEXT NOT NULL,
    name  TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (room, name)
);

-- Analytics: durable messages by kind per minute of the room.
CREATE VIEW messages_per_minute AS
    SELECT room, offset_ms / 60000 AS minute, kind, count(*) AS messages
    FROM messages
    GROUP BY room, offset_ms / 60000, kind;
