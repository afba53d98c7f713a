//! `fakepay`: a payment gateway protocol written for the tests, shaped like the aggregators Yiren
//! will speak (form-encoded notification, sorted `k=v&…` string signed with a shared secret, a
//! merchant id, a timestamp, the plain-text `success` acknowledgement). It runs through the real
//! registry, route and notification handler, so the tests exercise everything but a real
//! gateway's own signing rule.
//!
//! Notification fields: `merchant`, `order` (our order id), `txn` (the gateway's transaction id),
//! `amount` (decimal text), `currency`, `status` (`paid`, `pending`, `failed`), `t` (unix
//! seconds), `sign` (hex HMAC-SHA256 of the other fields sorted by name, joined `k=v` with `&`).
//!
//! Refunds follow the rules real gateways share: one refund per refund id (a repeat answers with
//! the refund already made), never more than the payment in all; failures (an error, or a refund
//! made whose answer is lost) can be injected.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use yiren_core::error::{DomainError, DomainResult};
use yiren_core::payment::{
    Ack, BoxFuture, Instruction, Lookup, Outcome, PaymentGateway, PaymentRequest, RawNotification,
    RefundRequest, RefundResult, Rejected, Verified,
};

/// The fake gateway, configured with its merchant id and secret.
pub struct FakePay {
    pub merchant: String,
    pub secret: String,
    /// The refunds it has made, like a gateway's own books.
    pub refunds: Refunds,
}

impl FakePay {
    /// The gateway with merchant `M100` and `secret`.
    pub fn new(secret: &str) -> FakePay {
        FakePay {
            merchant: "M100".into(),
            secret: secret.into(),
            refunds: Refunds::default(),
        }
    }
}

/// The gateway's refund books: one refund per refund id, as real gateways keep `out_refund_no`
/// unique (a repeated request answers with the refund already made), never more than the payment
/// in all, and failures to inject.
#[derive(Clone, Default)]
pub struct Refunds(Arc<Mutex<RefundBook>>);

#[derive(Default)]
struct RefundBook {
    /// refund id → (payment reference, amount).
    made: BTreeMap<String, (String, i64)>,
    /// Requests received, repeats included.
    requests: usize,
    /// Answer this many of the next requests with a 5xx-like error (after making the refund when
    /// `lose_answer`: the answer is lost on the way back, as on a timeout).
    fail_next: usize,
    lose_answer: bool,
    /// Refuse this many of the next new refunds for good.
    refuse_next: usize,
}

impl Refunds {
    /// Refund id → amount of every refund made.
    pub fn made(&self) -> BTreeMap<String, i64> {
        let b = self.0.lock().unwrap();
        b.made.iter().map(|(k, (_, a))| (k.clone(), *a)).collect()
    }

    /// Requests received, repeats included.
    pub fn requests(&self) -> usize {
        self.0.lock().unwrap().requests
    }

    /// Fail the next `n` requests; with `lose_answer`, make the refund first and lose the answer.
    pub fn fail_next(&self, n: usize, lose_answer: bool) {
        let mut b = self.0.lock().unwrap();
        b.fail_next = n;
        b.lose_answer = lose_answer;
    }

    /// Refuse the next `n` new refunds for good (as when the merchant balance is short).
    pub fn refuse_next(&self, n: usize) {
        self.0.lock().unwrap().refuse_next = n;
    }

    fn handle(&self, req: &RefundRequest) -> DomainResult<RefundResult> {
        let mut b = self.0.lock().unwrap();
        b.requests += 1;
        let failing = b.fail_next > 0;
        if failing {
            b.fail_next -= 1;
            if !b.lose_answer {
                return Err(DomainError::Unavailable("fakepay: 503".into()));
            }
        }
        let answer = if let Some((payment, amount)) = b.made.get(&req.refund_ref) {
            if *payment != req.payment_reference || *amount != req.amount {
                RefundResult::Refused {
                    reason: "refund id reused for another refund".into(),
                }
            } else {
                RefundResult::Done {
                    reference: format!("R{}", req.refund_ref),
                }
            }
        } else {
            let before: i64 = b
                .made
                .values()
                .filter(|(p, _)| *p == req.payment_reference)
                .map(|(_, a)| a)
                .sum();
            if b.refuse_next > 0 {
                b.refuse_next -= 1;
                RefundResult::Refused {
                    reason: "insufficient merchant balance".into(),
                }
            } else if req.amount < 1 || before + req.amount > req.payment_amount {
                RefundResult::Refused {
                    reason: "more than the payment".into(),
                }
            } else {
                b.made.insert(
                    req.refund_ref.clone(),
                    (req.payment_reference.clone(), req.amount),
                );
                RefundResult::Done {
                    reference: format!("R{}", req.refund_ref),
                }
            }
        };
        if failing {
            return Err(DomainError::Unavailable("fakepay: timeout".into()));
        }
        Ok(answer)
    }
}

/// The signature over `params` (without `sign`) under `secret`.
pub fn sign(secret: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sign").collect();
    sorted.sort();
    let text = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key");
    m.update(text.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

impl PaymentGateway for FakePay {
    fn id(&self) -> &'static str {
        "fakepay"
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "CNY"
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            Ok(Instruction::Redirect {
                url: format!(
                    "https://fakepay.test/pay?merchant={}&order={}&amount={}",
                    self.merchant,
                    req.order_ref,
                    yiren_core::money::format(req.amount, &req.currency)
                ),
            })
        })
    }

    fn verify(&self, raw: &RawNotification, now_ms: i64) -> Result<Verified, Rejected> {
        let text =
            std::str::from_utf8(&raw.body).map_err(|_| Rejected::Malformed("not UTF-8".into()))?;
        let params: Vec<(String, String)> = serde_urlencoded::from_str(text)
            .map_err(|_| Rejected::Malformed("not a form".into()))?;
        let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Rejected::Malformed("a field appears twice".into()));
        }
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let given = get("sign")
            .filter(|s| !s.is_empty())
            .ok_or(Rejected::Signature)?;
        let given = hex::decode(given).map_err(|_| Rejected::Signature)?;
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.secret.as_bytes()).expect("any key");
        let mut sorted: Vec<&(String, String)> =
            params.iter().filter(|(k, _)| k != "sign").collect();
        sorted.sort();
        let signed = sorted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        m.update(signed.as_bytes());
        // Constant-time comparison.
        m.verify_slice(&given).map_err(|_| Rejected::Signature)?;
        if get("merchant") != Some(self.merchant.as_str()) {
            return Err(Rejected::Merchant);
        }
        let t: i64 = get("t")
            .and_then(|t| t.parse().ok())
            .ok_or(Rejected::Malformed("t".into()))?;
        if (now_ms / 1000 - t).abs() > 300 {
            return Err(Rejected::Stale);
        }
        let currency = get("currency")
            .ok_or(Rejected::Malformed("currency".into()))?
            .to_string();
        let amount = yiren_core::money::parse(get("amount").unwrap_or(""), &currency, "amount")
            .map_err(|_| Rejected::Malformed("amount".into()))?;
        let outcome = match get("status") {
            Some("paid") => Outcome::Paid,
            Some("pending") => Outcome::Pending,
            Some("failed") => Outcome::Failed,
            _ => return Err(Rejected::Malformed("status".into())),
        };
        Ok(Verified {
            recurring: None,
            order_ref: get("order").unwrap_or("").to_string(),
            reference: get("txn")
                .filter(|t| !t.is_empty())
                .ok_or(Rejected::Malformed("txn".into()))?
                .to_string(),
            amount,
            currency,
            outcome,
        })
    }

    fn ack(&self) -> Ack {
        Ack::text(200, "success")
    }

    fn nack(&self, retry: bool) -> Ack {
        Ack::text(if retry { 500 } else { 400 }, "fail")
    }

    fn query<'a>(&'a self, _q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async { Ok(None) })
    }

    fn refunds(&self) -> bool {
        true
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, DomainResult<RefundResult>> {
        Box::pin(async move { self.refunds.handle(req) })
    }
}
