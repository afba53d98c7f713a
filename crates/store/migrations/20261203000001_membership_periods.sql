-- Memberships counted in months: the instant their periods are counted from (the first purchase
-- of a run of back-to-back purchases), so that 31 January renews on 28/29 February and then on
-- 31 March again (RELIABILITY TIME-1). NULL for memberships counted in days and for the rest.
ALTER TABLE entitlements ADD COLUMN period_anchor BIGINT;
