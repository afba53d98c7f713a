-- Refunds sent through a gateway, crowdfunding campaigns' outcomes, and signed-in customers'
-- carts.

-- Where a refund's money is: 'done' (settled: the gateway confirmed it, or the owner marked the
-- money sent), 'pending' (queued for the gateway), 'manual' (the owner must send it back by hand:
-- a manual payment, or a gateway without refunds), 'failed' (the gateway refused: the owner must
-- act). Sales are always 'done'.
ALTER TABLE transactions ADD COLUMN status TEXT NOT NULL DEFAULT 'done'
    CHECK (status IN ('done', 'pending', 'manual', 'failed'));
CREATE INDEX transactions_status_idx ON transactions (status);

-- A crowdfunding campaign that has closed; a campaign product without a row is open. Closing
-- inserts the row once (the primary key), so the outcome is decided exactly once.
-- 'funded': its orders go to fulfilment. 'refunding': every backer is being refunded (a job works
-- through them, resumable: each refund is keyed by campaign and order). 'failed': all refunded.
CREATE TABLE campaigns (
    product_id BIGINT PRIMARY KEY NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('funded', 'refunding', 'failed')),
    -- What had been raised, and from how many orders, when it closed.
    raised BIGINT NOT NULL CHECK (raised >= 0),
    backers BIGINT NOT NULL CHECK (backers >= 0),
    target BIGINT NOT NULL,
    currency TEXT NOT NULL,
    closed_by TEXT NOT NULL,
    closed_at BIGINT NOT NULL
);
CREATE INDEX order_lines_product_idx ON order_lines (product_id);

-- A signed-in customer's cart, so it follows them to another browser: the visitor's cookie cart
-- is merged into it on sign-in, and every change while signed in is saved here too. `lines` is the
-- cookie's own format (`123x2_456x1`).
CREATE TABLE customer_carts (
    customer_id BIGINT PRIMARY KEY NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    lines TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Per line: units sent, units refunded, units put back in stock (fulfilment and refunds by line;
-- a later full restock or cancel restocks only what is left). Orders fulfilled before this column
-- existed were fulfilled whole.
ALTER TABLE order_lines ADD COLUMN fulfilled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN refunded_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN restocked BIGINT NOT NULL DEFAULT 0;
UPDATE order_lines SET fulfilled = quantity
    WHERE order_id IN (SELECT id FROM orders WHERE fulfilment = 'fulfilled');

-- Checkouts browsers started (one per browser checkout, by a cookie), so the owner sees the
-- abandoned ones: what was in the cart and the contact when known (a signed-in customer, or an
-- email typed into the form). `order_id` is set when it became an order.
CREATE TABLE checkouts (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    customer_id BIGINT REFERENCES customers (id) ON DELETE CASCADE,
    -- JSON: [{"title": ..., "quantity": n}] as priced when last seen.
    items TEXT NOT NULL,
    subtotal BIGINT NOT NULL,
    currency TEXT NOT NULL,
    order_id BIGINT REFERENCES orders (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX checkouts_updated_idx ON checkouts (updated_at);
