-- Reach: topics and subscriptions, customers' own push keys and tags, broadcasts, the message log
-- (one row per (cause, channel, recipient)), the suppression list and per-channel sending windows.

CREATE TABLE topics (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX topics_name_key ON topics (name);

CREATE TABLE subscriptions (
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    topic_id BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'push', 'wechat')),
    subscribed BIGINT NOT NULL,
    source TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, topic_id, channel)
);
CREATE INDEX subscriptions_topic_idx ON subscriptions (topic_id, channel, subscribed, customer_id);

CREATE TABLE customer_push (
    customer_id BIGINT PRIMARY KEY NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE customer_tags (
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, tag)
);
CREATE INDEX customer_tags_tag_idx ON customer_tags (tag, customer_id);

CREATE TABLE broadcasts (
    id BIGINT PRIMARY KEY NOT NULL,
    topic_id BIGINT NOT NULL REFERENCES topics (id),
    tag TEXT,
    channels TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'sent', 'cancelled')),
    scheduled_at BIGINT,
    after_customer BIGINT NOT NULL,
    recipients BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX broadcasts_status_idx ON broadcasts (status, id);

CREATE TABLE messages (
    id BIGINT PRIMARY KEY NOT NULL,
    cause TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'push', 'wechat')),
    recipient TEXT NOT NULL,
    customer_id BIGINT REFERENCES customers (id) ON DELETE SET NULL,
    broadcast_id BIGINT REFERENCES broadcasts (id) ON DELETE CASCADE,
    locale TEXT NOT NULL,
    content TEXT NOT NULL,
    summary TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'suppressed', 'cancelled')),
    attempts BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE UNIQUE INDEX messages_cause_key ON messages (cause, channel, recipient);
CREATE INDEX messages_recipient_idx ON messages (recipient, id);
CREATE INDEX messages_broadcast_idx ON messages (broadcast_id, status);
CREATE INDEX messages_customer_idx ON messages (customer_id);

CREATE TABLE suppressions (
    hash TEXT PRIMARY KEY NOT NULL,
    hint TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('bounce', 'complaint', 'manual')),
    created_at BIGINT NOT NULL
);

CREATE TABLE send_windows (
    channel TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    sent BIGINT NOT NULL,
    PRIMARY KEY (channel, window_start)
);
