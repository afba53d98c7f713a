-- Product media (uploaded images and videos, video embeds), product CSV imports, and the event log that webhooks will
-- read (product created/updated/deleted, inventory changed), written in the change's transaction.

CREATE TABLE product_media (
    id BIGINT PRIMARY KEY NOT NULL,
    product_id BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'video', 'embed')),
    status TEXT NOT NULL CHECK (status IN ('fetching', 'processing', 'ready', 'failed')),
    mime TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    storage_key TEXT NOT NULL,
    source_url TEXT NOT NULL,
    sizes TEXT NOT NULL,
    alt TEXT NOT NULL,
    error TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX product_media_product_idx ON product_media (product_id, position);

CREATE TABLE events (
    id BIGINT PRIMARY KEY NOT NULL,
    topic TEXT NOT NULL,
    subject_id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_topic_idx ON events (topic, id);

-- Product CSV imports: the uploaded file, then the report of what the import job did.
CREATE TABLE product_imports (
    id BIGINT PRIMARY KEY NOT NULL,
    filename TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('previewed', 'queued', 'running', 'done')),
    products BIGINT NOT NULL,
    done BIGINT NOT NULL,
    report TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX product_imports_created_idx ON product_imports (created_at);

-- Option names and values per language: JSON {"names": ["Size"], "values": {"白": "White"}}.
ALTER TABLE product_translations ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
