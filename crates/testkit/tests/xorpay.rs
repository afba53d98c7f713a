//! XorPay end to end, on both engines, against `yiren_testkit::fake_xorpay` (written from the
//! protocol rules, with its own fixed-order MD5 signing): the shared gateway suite — the QR code
//! on the order page, paid, notified until a 200, PAY-2..7 and SEC-1.

use yiren_testkit::fake_xorpay::FakeXorpay;

yiren_testkit::gateway_suite!(FakeXorpay);
