//! The 彩虹易支付 ("EPay") protocol, spoken by many payment aggregators — one implementation, the
//! aggregator chosen by its base URL. Facts: `shared/specs/payments.md` §2.1 (the `EpayCore` SDK
//! and the 彩虹 server source).
//!
//! - **Create**: page mode sends the customer to `submit.php` with the signed parameters; API
//!   mode posts them to `mapi.php` (plus `clientip`, `device`) and gets back exactly one of
//!   `qrcode` (shown on the order page), `payurl` or `urlscheme` (the customer is sent there).
//! - **Sign**: parameters sorted by name, `sign`, `sign_type` and empty values left out, joined
//!   `k=v&k=v` with the raw (not URL-encoded) values, the merchant key appended directly, MD5 in
//!   lowercase hex; `sign_type=MD5`.
//! - **Notification**: a GET to `notify_url` with the signed parameters in the query string
//!   (`pid, trade_no, out_trade_no, type, name, money, trade_status, [param], sign, sign_type`);
//!   verified over the decoded values; the answer must contain `success`, anything else makes the
//!   aggregator notify again. The customer's return to `return_url` carries the same signed query.
//! - **Query**: `GET api.php?act=order&pid=&key=&out_trade_no=` (the key in the clear, as the
//!   protocol has it) → `code` (1 found, 0 not found, -2 key wrong, -3 no such merchant),
//!   `trade_no`, `money`, `status` (1 paid).
//! - Amounts are yuan with two decimals (`1.00`); the protocol knows only CNY.
//! - No refunds in the protocol's common core: a refund of an EPay payment is recorded for the
//!   owner to send by hand.

use yiren_core::error::{DomainError, DomainResult};
use yiren_core::money;
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{
    Ack, BoxFuture, Field, Instruction, Kind, Lookup, Outcome, PaymentGateway, PaymentRequest,
    RawNotification, Rejected, Verified,
};
use yiren_providers::http::HttpClient;

/// The settings an EPay gateway needs.
pub const KIND: Kind = Kind {
    kind: "epay",
    fields: &[
        Field::text("base_url", ""),
        Field::text("pid", ""),
        Field::secret("key"),
        Field::choice(
            "type",
            "alipay",
            &["alipay", "wxpay", "qqpay", "bank", "jdpay"],
        ),
        Field::choice("mode", "api", &["api", "page"]),
    ],
};

/// An EPay aggregator account.
pub struct Epay {
    id: String,
    /// Ends with `/`.
    base: String,
    pid: String,
    key: String,
    pay_type: String,
    api: bool,
    http: HttpClient,
}

impl Epay {
    /// From the owner's settings (required fields are filled by the time this is called).
    pub fn from_config(c: &GatewayConfig, http: HttpClient) -> DomainResult<Epay> {
        let base = crate::base_url(c)?;
        let pid = c.field("pid").trim().to_string();
        if pid.is_empty() || pid.len() > 20 || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid("pid", "payments.epay_pid"));
        }
        let key = crate::secret(c, "key")?;
        Ok(Epay {
            id: c.id.clone(),
            base,
            pid,
            key,
            pay_type: c.field("type").to_string(),
            api: c.field("mode") != "page",
            http,
        })
    }

    /// The signed parameters of a payment.
    fn params(&self, req: &PaymentRequest) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = [
            ("pid", self.pid.clone()),
            ("type", self.pay_type.clone()),
            ("out_trade_no", req.order_ref.clone()),
            ("notify_url", req.notify_url.clone()),
            ("return_url", req.return_url.clone()),
            ("name", req.description.clone()),
            ("money", money::format(req.amount, "CNY")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if self.api {
            p.push(("clientip".into(), req.client_ip.clone()));
            p.push(("device".into(), "pc".into()));
        }
        let sig = sign(&p, &self.key);
        p.push(("sign".into(), sig));
        p.push(("sign_type".into(), "MD5".into()));
        p
    }

    async fn create_api(&self, req: &PaymentRequest) -> DomainResult<Instruction> {
        let url = format!("{}mapi.php", self.base);
        let v = crate::post_form_json(&self.http, "epay", &url, &self.params(req)).await?;
        if code(&v) != Some(1) {
            return Err(DomainError::Unavailable(format!(
                "epay: mapi.php refused: {}",
                text(&v, "msg")
            )));
        }
        let (qr, url, scheme) = (
            text(&v, "qrcode"),
            text(&v, "payurl"),
            text(&v, "urlscheme"),
        );
        if !qr.is_empty() {
            Ok(Instruction::Qr { payload: qr })
        } else if !url.is_empty() {
            Ok(Instruction::Redirect { url })
        } else if !scheme.is_empty() {
            Ok(Instruction::Redirect { url: scheme })
        } else {
            Err(DomainError::Unavailable(
                "epay: mapi.php gave no qrcode, payurl or urlscheme".into(),
            ))
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    crate::unavailable("epay", e)
}

/// `code` as a number (aggregators send `1` or `"1"`).
fn code(v: &serde_json::Value) -> Option<i64> {
    v["code"]
        .as_i64()
        .or_else(|| v["code"].as_str().and_then(|s| s.trim().parse().ok()))
}

use crate::json_text as text;

/// The protocol's signature over `params` (see the module's notes).
pub fn sign(params: &[(String, String)], key: &str) -> String {
    let mut p: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k != "sign" && k != "sign_type" && !v.is_empty())
        .collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    let joined = p
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    crate::md5_hex(&format!("{joined}{key}"))
}

impl PaymentGateway for Epay {
    fn id(&self) -> &str {
        &self.id
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "CNY"
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            crate::only_cny(req)?;
            if self.api {
                return self.create_api(req).await;
            }
            let q = serde_urlencoded::to_string(self.params(req)).map_err(unavailable)?;
            Ok(Instruction::Redirect {
                url: format!("{}submit.php?{q}", self.base),
            })
        })
    }

    fn verify(&self, raw: &RawNotification, _now_ms: i64) -> Result<Verified, Rejected> {
        // GET as the protocol says; a POSTed form is read the same way (some aggregators post).
        let params = crate::notification_params(raw)?;
        let get = |k: &str| crate::param(&params, k);
        let given = get("sign").ok_or(Rejected::Signature)?;
        if get("sign_type").is_some_and(|t| t != "MD5") {
            return Err(Rejected::Signature);
        }
        if !crate::same(given, &sign(&params, &self.key)) {
            return Err(Rejected::Signature);
        }
        if get("pid") != Some(self.pid.as_str()) {
            return Err(Rejected::Merchant);
        }
        let need = |k: &str| crate::required(&params, k);
        let amount = money::parse(need("money")?, "CNY", "money")
            .map_err(|_| Rejected::Malformed("money is not an amount".into()))?;
        Ok(Verified {
            recurring: None,
            order_ref: need("out_trade_no")?.to_string(),
            reference: need("trade_no")?.to_string(),
            amount,
            currency: "CNY".into(),
            outcome: if need("trade_status")? == "TRADE_SUCCESS" {
                Outcome::Paid
            } else {
                Outcome::Pending
            },
        })
    }

    fn ack(&self) -> Ack {
        Ack::text(200, "success")
    }

    fn nack(&self, retry: bool) -> Ack {
        Ack::text(if retry { 503 } else { 400 }, "fail")
    }

    fn query<'a>(&'a self, q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async move {
            let url = format!("{}api.php", self.base);
            let rb = self
                .http
                .request(reqwest::Method::GET, &url)
                .map_err(unavailable)?
                .query(&[
                    ("act", "order"),
                    ("pid", &self.pid),
                    ("key", &self.key),
                    ("out_trade_no", &q.order_ref),
                ]);
            let v = crate::read_json(&self.http, "epay", rb).await?;
            match code(&v) {
                Some(1) => {}
                Some(0) => return Ok(None),
                Some(-2) => {
                    return Err(DomainError::Unavailable("epay: the key was refused".into()))
                }
                Some(-3) => return Err(DomainError::Unavailable("epay: no such merchant".into())),
                _ => {
                    return Err(DomainError::Unavailable(format!(
                        "epay: api.php: {}",
                        text(&v, "msg")
                    )))
                }
            }
            let amount = money::parse(&text(&v, "money"), "CNY", "money").map_err(|_| {
                DomainError::Unavailable("epay: api.php money is not an amount".into())
            })?;
            Ok(Some(Verified {
                recurring: None,
                order_ref: text(&v, "out_trade_no"),
                reference: text(&v, "trade_no"),
                amount,
                currency: "CNY".into(),
                outcome: if text(&v, "status") == "1" {
                    Outcome::Paid
                } else {
                    Outcome::Pending
                },
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The rule, checked against a vector computed independently:
    /// `printf 'a=1&b=x y&c=中文KEY' | md5sum` → c13954ce84d73e0b0bf09f04a5e7b05b; empty values, `sign` and `sign_type` are
    /// left out, names sorted, values raw (not URL-encoded).
    #[test]
    fn signs_sorted_raw_values_with_the_key_appended() {
        let params = p(&[
            ("c", "中文"),
            ("sign_type", "MD5"),
            ("a", "1"),
            ("empty", ""),
            ("b", "x y"),
            ("sign", "whatever"),
        ]);
        assert_eq!(sign(&params, "KEY"), SIGN_VECTOR);
    }

    const SIGN_VECTOR: &str = "c13954ce84d73e0b0bf09f04a5e7b05b";

    fn gateway(mode: &str) -> Epay {
        let c = GatewayConfig {
            id: "epay".into(),
            kind: "epay".into(),
            name: "EPay".into(),
            enabled: true,
            fields: [
                ("base_url", "https://pay.example.com"),
                ("pid", "1001"),
                ("type", "wxpay"),
                ("mode", mode),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            secrets: [("key".to_string(), "KEY".to_string())]
                .into_iter()
                .collect(),
        };
        let http = HttpClient::new(Default::default()).unwrap();
        Epay::from_config(&c, http).unwrap()
    }

    fn request(currency: &str) -> PaymentRequest {
        PaymentRequest {
            order_ref: "42".into(),
            number: 1001,
            amount: 1_990,
            currency: currency.into(),
            description: "#1001".into(),
            return_url: "https://shop.example/orders/42?key=k".into(),
            notify_url: "https://shop.example/payments/epay/notify".into(),
            client_ip: "203.0.113.9".into(),
            every_months: None,
        }
    }

    /// The protocol knows only yuan: another currency is refused before anything is sent; page
    /// mode builds the signed submit.php URL (base URL normalised to end with `/`).
    #[tokio::test]
    async fn only_cny_and_a_signed_page_url() {
        let g = gateway("page");
        assert!(g.accepts("CNY") && !g.accepts("USD") && !g.accepts("HKD"));
        assert!(matches!(
            g.create(&request("USD")).await,
            Err(DomainError::Invalid {
                key: "checkout.gateway_currency",
                ..
            })
        ));
        let Instruction::Redirect { url } = g.create(&request("CNY")).await.unwrap() else {
            panic!("page mode redirects");
        };
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://pay.example.com/submit.php");
        let p: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            (
                get("money"),
                get("type"),
                get("out_trade_no"),
                get("sign_type")
            ),
            (Some("19.90"), Some("wxpay"), Some("42"), Some("MD5"))
        );
        assert_eq!(get("sign"), Some(sign(&p, "KEY").as_str()));
        assert_eq!(get("clientip"), None, "only mapi.php takes the payer's IP");
    }

    /// Settings that cannot work are refused with the field to blame.
    #[test]
    fn bad_settings_are_refused() {
        let http = HttpClient::new(Default::default()).unwrap();
        for (field, value, key) in [
            ("base_url", "ftp://pay.example.com/", "payments.url_invalid"),
            (
                "base_url",
                "https://pay.example.com/?a=1",
                "payments.url_invalid",
            ),
            ("base_url", "not a url", "payments.url_invalid"),
            ("pid", "10a1", "payments.epay_pid"),
            ("pid", "", "payments.epay_pid"),
        ] {
            let mut c = GatewayConfig {
                id: "epay".into(),
                kind: "epay".into(),
                ..Default::default()
            };
            c.fields
                .insert("base_url".into(), "https://pay.example.com/".into());
            c.fields.insert("pid".into(), "1001".into());
            c.secrets.insert("key".into(), "KEY".into());
            c.fields.insert(field.into(), value.into());
            match Epay::from_config(&c, http.clone()) {
                Err(DomainError::Invalid { key: k, .. }) => assert_eq!(k, key, "{field}={value}"),
                _ => panic!("{field}={value} accepted"),
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]
        /// PROP-1: every amount goes out as `^[0-9]+\.[0-9]{2}$` (what submit.php and mapi.php
        /// accept), comes back from a notification as the same minor units, and the signed
        /// request carries it.
        #[test]
        fn any_amount_is_sent_as_yuan_and_read_back(minor in 1i64..=yiren_core::money::MAX_MINOR) {
            let text = money::format(minor, "CNY");
            let (yuan, fen) = text.split_once('.').unwrap();
            proptest::prop_assert!(!yuan.is_empty() && yuan.bytes().all(|b| b.is_ascii_digit()));
            proptest::prop_assert!(fen.len() == 2 && fen.bytes().all(|b| b.is_ascii_digit()));
            proptest::prop_assert_eq!(money::parse(&text, "CNY", "money").unwrap(), minor);
            // One gateway for every case (an HTTP client is slow to make).
            static G: std::sync::OnceLock<Epay> = std::sync::OnceLock::new();
            let g = G.get_or_init(|| gateway("page"));
            let mut r = request("CNY");
            r.amount = minor;
            let p = g.params(&r);
            proptest::prop_assert_eq!(p.iter().find(|(k, _)| k == "money").map(|(_, v)| v.as_str()), Some(text.as_str()));
        }
    }

    /// PROP-1: amounts are yuan with exactly two decimals.
    #[test]
    fn money_is_yuan_with_two_decimals() {
        for (minor, text) in [
            (1, "0.01"),
            (100, "1.00"),
            (9_900, "99.00"),
            (123_456_789, "1234567.89"),
        ] {
            assert_eq!(money::format(minor, "CNY"), text);
            assert_eq!(money::parse(text, "CNY", "money").unwrap(), minor);
        }
    }
}
