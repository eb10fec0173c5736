-- ngx_chat: the durable transcript (PROTOCOL.md, "Postgres").
-- Apply once: psql -d chat -f conf/schema.sql

CREATE TABLE IF NOT EXISTS chat_messages (
    room       text        NOT NULL,
    seq        bigint      NOT NULL,
    msg_id     uuid        NOT NULL UNIQUE,
    user_id    text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (room, seq)
);

-- history and replay read a room backwards or forwards by seq: the
-- primary key's index (room, seq) serves both; nothing else is needed.
