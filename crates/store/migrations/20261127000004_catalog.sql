-- Catalog: products of every kind, their translations and former handles, variants with a price
-- per currency (integer minor units) and stock, and the inventory adjustment ledger.

CREATE TABLE products (
    id BIGINT PRIMARY KEY NOT NULL,
    handle TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('physical', 'digital', 'license', 'membership', 'service', 'crowdfunding')),
    status TEXT NOT NULL CHECK (status IN ('draft', 'active', 'archived')),
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    vendor TEXT NOT NULL,
    product_type TEXT NOT NULL,
    tags TEXT NOT NULL,
    options TEXT NOT NULL,
    seo_title TEXT NOT NULL,
    seo_description TEXT NOT NULL,
    publish_at BIGINT,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX products_handle_key ON products (handle);
CREATE INDEX products_status_idx ON products (status, updated_at);

CREATE TABLE product_translations (
    product_id BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    locale TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    seo_title TEXT NOT NULL,
    seo_description TEXT NOT NULL,
    PRIMARY KEY (product_id, locale)
);

CREATE TABLE product_handles (
    handle TEXT PRIMARY KEY NOT NULL,
    product_id BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX product_handles_product_idx ON product_handles (product_id);

CREATE TABLE variants (
    id BIGINT PRIMARY KEY NOT NULL,
    product_id BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    option1 TEXT NOT NULL,
    option2 TEXT NOT NULL,
    option3 TEXT NOT NULL,
    sku TEXT NOT NULL,
    barcode TEXT NOT NULL,
    grams BIGINT NOT NULL CHECK (grams >= 0),
    requires_shipping BIGINT NOT NULL,
    cost BIGINT CHECK (cost >= 0),
    track_inventory BIGINT NOT NULL,
    inventory_quantity BIGINT NOT NULL,
    inventory_policy TEXT NOT NULL CHECK (inventory_policy IN ('deny', 'continue')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX variants_product_idx ON variants (product_id, position);
CREATE INDEX variants_sku_idx ON variants (sku);

CREATE TABLE variant_prices (
    variant_id BIGINT NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount >= 0),
    compare_at BIGINT CHECK (compare_at >= 0),
    PRIMARY KEY (variant_id, currency)
);

CREATE TABLE inventory_adjustments (
    id BIGINT PRIMARY KEY NOT NULL,
    variant_id BIGINT NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    delta BIGINT NOT NULL,
    quantity_after BIGINT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX inventory_adjustments_variant_idx ON inventory_adjustments (variant_id, created_at);

-- Collections: manual (the owner picks products) or automatic (rules over tag, type, vendor, price,
-- stock). Members of both kinds are rows of collection_products; automatic ones are recomputed when a
-- product or the collection changes.
CREATE TABLE collections (
    id BIGINT PRIMARY KEY NOT NULL,
    handle TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('manual', 'automatic')),
    rules TEXT NOT NULL,
    match_all BIGINT NOT NULL,
    translations TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX collections_handle_key ON collections (handle);

CREATE TABLE collection_products (
    collection_id BIGINT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    PRIMARY KEY (collection_id, product_id)
);
CREATE INDEX collection_products_product_idx ON collection_products (product_id);
