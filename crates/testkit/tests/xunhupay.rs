//! 虎皮椒 (xunhupay) end to end, on both engines, against `yiren_testkit::fake_xunhupay`
//! (written from the protocol rules, with its own hash code): the shared gateway suite — the
//! customer sent to 虎皮椒's payment page and back, notified until `success`, PAY-2..7 and SEC-1.

use yiren_testkit::fake_xunhupay::FakeXunhupay;

yiren_testkit::gateway_suite!(FakeXunhupay);
