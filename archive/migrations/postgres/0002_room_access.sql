-- The entry rule's lists at the room's end, so reads of an archived private
-- room follow the rule a live one does: {"invited": [uid…], "kicked": [uid…]}.
ALTER TABLE rooms ADD COLUMN access JSONB NOT NULL DEFAULT '{}'::jsonb;
