-- Checkout and orders: stock held for open checkouts, discounts with their uses, orders with their
-- lines and timeline, and the payments and refunds received (one row per gateway transaction).

-- Stock: `inventory_quantity` is what can still be sold; `reserved` is what open checkouts hold.
-- A tracked variant that may not oversell never goes below zero, whatever the code does (INV-1).
UPDATE variants SET inventory_quantity = 0
    WHERE track_inventory = 1 AND inventory_policy = 'deny' AND inventory_quantity < 0;
ALTER TABLE variants ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0
    CHECK (reserved >= 0 AND (track_inventory = 0 OR inventory_policy = 'continue' OR inventory_quantity >= 0));

-- Order numbers (#1001, ...) and any other sequence that must have no gaps between commits.
CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('order_number', 1000);

CREATE TABLE discounts (
    id BIGINT PRIMARY KEY NOT NULL,
    -- NULL for an automatic discount; codes are kept upper-case.
    code TEXT,
    title TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('percent', 'amount', 'free_shipping', 'buy_x_get_y')),
    -- Basis points for percent and buy-X-get-Y, minor units of the shop currency for amount.
    value BIGINT NOT NULL CHECK (value >= 0),
    buy BIGINT NOT NULL CHECK (buy >= 0),
    get BIGINT NOT NULL CHECK (get >= 0),
    applies TEXT NOT NULL CHECK (applies IN ('all', 'products', 'collections')),
    targets TEXT NOT NULL,
    min_subtotal BIGINT NOT NULL CHECK (min_subtotal >= 0),
    starts_at BIGINT,
    ends_at BIGINT,
    usage_limit BIGINT CHECK (usage_limit > 0),
    per_customer BIGINT CHECK (per_customer > 0),
    used BIGINT NOT NULL CHECK (used >= 0),
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (usage_limit IS NULL OR used <= usage_limit)
);
CREATE UNIQUE INDEX discounts_code_key ON discounts (code);

CREATE TABLE orders (
    id BIGINT PRIMARY KEY NOT NULL,
    number BIGINT NOT NULL,
    -- The checkout form's one-time token: submitting it twice finds the first order.
    checkout_token TEXT NOT NULL,
    customer_id BIGINT REFERENCES customers (id) ON DELETE SET NULL,
    email TEXT NOT NULL,
    locale TEXT NOT NULL,
    currency TEXT NOT NULL,
    subtotal BIGINT NOT NULL CHECK (subtotal >= 0),
    discount BIGINT NOT NULL CHECK (discount >= 0),
    shipping BIGINT NOT NULL CHECK (shipping >= 0),
    shipping_discount BIGINT NOT NULL CHECK (shipping_discount >= 0),
    tax BIGINT NOT NULL CHECK (tax >= 0),
    tax_inclusive BIGINT NOT NULL,
    total BIGINT NOT NULL CHECK (total >= 0),
    payment TEXT NOT NULL CHECK (payment IN ('pending', 'paid', 'partially_refunded', 'refunded', 'voided')),
    fulfilment TEXT NOT NULL CHECK (fulfilment IN ('unfulfilled', 'partially_fulfilled', 'fulfilled')),
    cancelled BIGINT NOT NULL,
    refund_review BIGINT NOT NULL,
    captured BIGINT NOT NULL CHECK (captured >= 0),
    refunded BIGINT NOT NULL CHECK (refunded >= 0 AND refunded <= captured),
    units BIGINT NOT NULL CHECK (units > 0),
    fulfilled BIGINT NOT NULL CHECK (fulfilled >= 0 AND fulfilled <= units),
    -- Where the order's stock is: held (reserved until hold_until), released (hold expired or
    -- order cancelled), committed (paid: the units are the customer's), short (paid after the hold
    -- expired and the stock was gone).
    stock TEXT NOT NULL CHECK (stock IN ('held', 'released', 'committed', 'short')),
    hold_until BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    gateway TEXT NOT NULL,
    shipping_method TEXT NOT NULL,
    address TEXT NOT NULL,
    note TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX orders_number_key ON orders (number);
CREATE UNIQUE INDEX orders_checkout_token_key ON orders (checkout_token);
CREATE INDEX orders_customer_idx ON orders (customer_id, created_at);
CREATE INDEX orders_created_idx ON orders (created_at);

CREATE TABLE order_lines (
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    -- The catalog rows may be deleted later; the line keeps what was sold.
    variant_id BIGINT,
    product_id BIGINT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    variant_title TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    unit_price BIGINT NOT NULL CHECK (unit_price >= 0),
    subtotal BIGINT NOT NULL CHECK (subtotal >= 0),
    discount BIGINT NOT NULL CHECK (discount >= 0 AND discount <= subtotal),
    tax BIGINT NOT NULL CHECK (tax >= 0),
    grams BIGINT NOT NULL,
    requires_shipping BIGINT NOT NULL,
    -- 1 when placing the order took the units from the variant's stock.
    tracked BIGINT NOT NULL,
    PRIMARY KEY (order_id, position)
);
CREATE INDEX order_lines_variant_idx ON order_lines (variant_id);

CREATE TABLE discount_uses (
    discount_id BIGINT NOT NULL REFERENCES discounts (id) ON DELETE CASCADE,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- The customer id, or the lower-case email of a guest.
    customer TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (discount_id, order_id)
);
CREATE INDEX discount_uses_customer_idx ON discount_uses (discount_id, customer);

-- Every change to an order, with who made it: the timeline.
CREATE TABLE order_events (
    id BIGINT PRIMARY KEY NOT NULL,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX order_events_order_idx ON order_events (order_id, created_at);

-- Money received or returned. (gateway, reference) is unique, so a repeated notification or
-- confirmation is a no-op.
CREATE TABLE transactions (
    id BIGINT PRIMARY KEY NOT NULL,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('sale', 'refund')),
    gateway TEXT NOT NULL,
    reference TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX transactions_reference_key ON transactions (gateway, reference);
CREATE INDEX transactions_order_idx ON transactions (order_id);
