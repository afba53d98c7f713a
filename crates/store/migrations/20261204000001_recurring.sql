-- Recurring memberships (issue 7, "Recurring payments"): a membership counted in months keeps
-- renewing until it is cancelled or a renewal goes unpaid. Where the gateway bills by itself
-- (Stripe subscriptions, Lemon Squeezy, PayPal) `gateway_ref` names the gateway's subscription and
-- each renewal it reports becomes a paid renewal order; elsewhere a renewal order is placed before
-- the period ends and the customer is reminded to pay it.
CREATE TABLE recurring_plans (
    id BIGINT PRIMARY KEY NOT NULL,
    customer_id BIGINT,
    email TEXT NOT NULL,
    product_id BIGINT NOT NULL,
    variant_id BIGINT NOT NULL,
    -- What the renewals are called and cost (the price of the first purchase, kept for the plan).
    title TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount >= 0),
    currency TEXT NOT NULL,
    locale TEXT NOT NULL,
    gateway TEXT NOT NULL,
    -- The gateway's own subscription id; '' = renewals by order and reminder.
    gateway_ref TEXT NOT NULL,
    first_order_id BIGINT NOT NULL,
    -- The calendar: period k starts at the anchor plus (offset + k × every) months, in `tz`
    -- (core::period); every instant is UTC milliseconds.
    tz TEXT NOT NULL,
    anchor_at BIGINT NOT NULL,
    offset_months BIGINT NOT NULL,
    every_months BIGINT NOT NULL CHECK (every_months > 0),
    status TEXT NOT NULL CHECK (status IN ('active', 'past_due', 'cancelled', 'lapsed')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX recurring_plans_first_order ON recurring_plans (first_order_id);
CREATE INDEX recurring_plans_holder ON recurring_plans (email, product_id);
CREATE INDEX recurring_plans_gateway_ref ON recurring_plans (gateway, gateway_ref);

-- One row per period of a plan, written when its order is placed; the period key is unique, so a
-- period is renewed once however many times the sweep or the gateway's events come round.
CREATE TABLE recurring_periods (
    plan_id BIGINT NOT NULL REFERENCES recurring_plans (id) ON DELETE CASCADE,
    period BIGINT NOT NULL CHECK (period >= 0),
    order_id BIGINT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    paid_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (plan_id, period)
);
CREATE UNIQUE INDEX recurring_periods_order ON recurring_periods (order_id);
