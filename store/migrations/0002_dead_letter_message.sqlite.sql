-- 0002 (SQLite): one dead letter per JetStream message. A daemon killed between
-- storing a dead letter and terminating the message gets the message again; the
-- second copy must not be stored.
ALTER TABLE dead_letters ADD COLUMN stream TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN stream_seq INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX dead_letters_message ON dead_letters (stream, stream_seq) WHERE stream_seq > 0;
