-- Online payment gateways: how each order's payment was started, and what reconciliation found.

-- What the gateway answered when the customer started paying (a QR payload, a URL to go to), so
-- the order page shows the same one again instead of asking the gateway for another payment.
-- One per order and gateway (the first one kept).
CREATE TABLE payment_starts (
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    gateway TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('redirect', 'qr', 'form', 'manual')),
    -- The URL or QR text; for a form, JSON {action, fields}.
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, gateway)
);

-- Reconciliation: each time the scheduled check asked a gateway about an order still pending
-- after its notification should have come. 'paid': the gateway had it paid and the payment was
-- recorded now; 'pending': not paid yet; 'unknown': the gateway does not know the order;
-- 'parked': paid, but the amount or currency or the order's state did not allow it (on the
-- order's timeline); 'error': the gateway could not be asked.
CREATE TABLE payment_checks (
    id BIGINT PRIMARY KEY NOT NULL,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    gateway TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('paid', 'pending', 'unknown', 'parked', 'error')),
    detail TEXT NOT NULL DEFAULT '',
    checked_at BIGINT NOT NULL
);
CREATE INDEX payment_checks_checked_idx ON payment_checks (checked_at);
CREATE INDEX payment_checks_order_idx ON payment_checks (order_id);
