-- Delivery of what cannot be shipped: the private files of digital products, and the
-- entitlements a paid order grants (downloads, licence keys, memberships).

-- A file a digital product delivers; the bytes are in the file store under `file_key`.
CREATE TABLE product_files (
    id BIGINT PRIMARY KEY NOT NULL,
    product_id BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    -- The name the buyer's browser saves it under.
    name TEXT NOT NULL,
    file_key TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    mime TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX product_files_product_idx ON product_files (product_id, position);

-- What a paid order hands over, one row per order and product: downloads of its files (counted
-- against a limit), a membership (starts_at .. ends_at), licence keys. Revoked on refund or by
-- the owner; a revoked entitlement gives nothing from that moment.
CREATE TABLE entitlements (
    id BIGINT PRIMARY KEY NOT NULL,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    customer_id BIGINT REFERENCES customers (id) ON DELETE SET NULL,
    email TEXT NOT NULL,
    -- The product may be deleted later; the entitlement keeps its title.
    product_id BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('download', 'license', 'membership')),
    title TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT,
    downloads BIGINT NOT NULL CHECK (downloads >= 0),
    download_limit BIGINT NOT NULL CHECK (downloads <= download_limit),
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX entitlements_order_product_key ON entitlements (order_id, product_id);
CREATE INDEX entitlements_customer_idx ON entitlements (customer_id, kind);

-- Licence keys: uploaded to a product's pool (available) or generated when a paid order needs
-- one, then the buyer's: inactive until activated on a first device (instance), active after;
-- disabled when the order is refunded or the owner withdraws it. `activations` counts instances
-- and never exceeds the limit (no limit when NULL).
CREATE TABLE license_keys (
    id BIGINT PRIMARY KEY NOT NULL,
    -- No foreign key: a sold key outlives its product.
    product_id BIGINT NOT NULL,
    license_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('available', 'inactive', 'active', 'disabled')),
    order_id BIGINT REFERENCES orders (id) ON DELETE SET NULL,
    entitlement_id BIGINT,
    activation_limit BIGINT,
    activations BIGINT NOT NULL CHECK (activations >= 0 AND (activation_limit IS NULL OR activations <= activation_limit)),
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    assigned_at BIGINT
);
CREATE UNIQUE INDEX license_keys_key ON license_keys (license_key);
CREATE INDEX license_keys_pool_idx ON license_keys (product_id, status, id);
CREATE INDEX license_keys_order_idx ON license_keys (order_id);

-- The devices a key is activated on.
CREATE TABLE license_instances (
    id TEXT PRIMARY KEY NOT NULL,
    license_id BIGINT NOT NULL REFERENCES license_keys (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX license_instances_key_idx ON license_instances (license_id);
