//! Lemon Squeezy end to end, on both engines, against `yiren_testkit::fake_lemonsqueezy`
//! (written from the rules, with its own HMAC code): the shared gateway suite — a checkout priced
//! by the shop, the customer out to the hosted page and back, `order_created` signed with
//! `X-Signature`, tax added on top by the merchant of record, PAY-2..6, SEC-1; reconciliation
//! records "unknown" (Lemon Squeezy cannot be asked by our order id).

use yiren_testkit::fake_lemonsqueezy::FakeLemonSqueezy;

yiren_testkit::gateway_suite!(FakeLemonSqueezy);
