-- The checkout for the owner's other apps (收银台): each app the owner registers sends its
-- customers here with a signed request, and hears back by a signed return, an authenticated API
-- call and a signed webhook.

CREATE TABLE checkout_apps (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- Where the customer goes back to after paying (with a signed order id).
    return_url TEXT NOT NULL,
    -- Where the order's news is posted; '' = no webhook.
    webhook_url TEXT NOT NULL,
    -- The app's shared secret, sealed with the server key (it signs and verifies, so it is kept
    -- recoverable, never in plain text).
    secret TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- An order placed through an app: one per (app, the app's own reference), so sending the customer
-- twice finds the same order.
CREATE TABLE app_orders (
    order_id BIGINT PRIMARY KEY NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    app_id BIGINT NOT NULL REFERENCES checkout_apps (id),
    app_ref TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX app_orders_ref_key ON app_orders (app_id, app_ref);
