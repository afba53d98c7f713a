//! What every fake payment gateway shares: its book of trades, the retry schedule on which it
//! notifies until it reads its acknowledgement (time compressed), the switches tests turn, and
//! the [`GatewayFake`] trait through which `gateway_suite` drives any of them. Each fake keeps
//! its own protocol — endpoints, signing code written from the rules, not shared with the code
//! under test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One payment a fake opened.
#[derive(Debug, Clone)]
pub struct Trade {
    /// The gateway's id for it (`trade_no`, `aoid`, `open_order_id`, ...).
    pub no: String,
    /// Our order id, as sent.
    pub order_ref: String,
    /// The merchant (pid, aid, appid) it was opened for.
    pub merchant: String,
    /// The amount as sent (`99.00`).
    pub money: String,
    pub notify_url: String,
    pub return_url: String,
    /// The endpoint that opened it.
    pub via: &'static str,
    /// Every field of the create request, as sent.
    pub sent: BTreeMap<String, String>,
    pub paid: bool,
    /// The answers to each notification sent: (HTTP status, body).
    pub answers: Vec<(u16, String)>,
}

impl Trade {
    /// A field of the create request ("" when not sent).
    pub fn field(&self, k: &str) -> &str {
        self.sent.get(k).map(String::as_str).unwrap_or("")
    }
}

/// The fake's books.
#[derive(Default)]
pub struct Book {
    /// Merchant id → secret key.
    pub merchants: BTreeMap<String, String>,
    pub trades: Vec<Trade>,
    schedule: Vec<Duration>,
    notify: bool,
    money_sent: Option<String>,
    endpoint: String,
    next: u64,
    /// Every request's endpoint, in order.
    pub requests: Vec<String>,
}

/// A notification as a fake sends it: parameters as a GET query or a POSTed form, or a raw body
/// (JSON) with its content type; and any headers (a signature header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notice {
    pub post: bool,
    pub params: Vec<(String, String)>,
    /// A body sent instead of `params`: (content type, body).
    pub raw: Option<(&'static str, String)>,
    pub headers: Vec<(String, String)>,
}

impl Notice {
    /// Parameters, as a query (`post` false) or a form.
    pub fn form(post: bool, params: Vec<(String, String)>) -> Notice {
        Notice {
            post,
            params,
            ..Default::default()
        }
    }

    /// A POSTed body as it is.
    pub fn raw(content_type: &'static str, body: String, headers: Vec<(String, String)>) -> Notice {
        Notice {
            post: true,
            raw: Some((content_type, body)),
            headers,
            ..Default::default()
        }
    }

    /// What is sent: the raw body, or the URL-encoded parameters.
    pub fn encoded(&self) -> String {
        match &self.raw {
            Some((_, body)) => body.clone(),
            None => serde_urlencoded::to_string(&self.params).expect("encodable"),
        }
    }

    /// The content type of a POST.
    pub fn content_type(&self) -> &'static str {
        self.raw
            .as_ref()
            .map(|(t, _)| *t)
            .unwrap_or("application/x-www-form-urlencoded")
    }

    /// A parameter's value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The same notice with one parameter's value changed (after signing) or removed (`None`).
    pub fn with(&self, k: &str, v: Option<&str>) -> Notice {
        let mut n = self.clone();
        match v {
            Some(v) => {
                if let Some(p) = n.params.iter_mut().find(|(name, _)| name == k) {
                    p.1 = v.to_string();
                }
            }
            None => n.params.retain(|(name, _)| name != k),
        }
        n
    }

    /// The same notice, its encoded form replaced (bytes a form cannot carry).
    pub fn replaced(&self, encoded: String) -> Notice {
        let content_type = self.content_type();
        Notice {
            raw: Some((content_type, encoded)),
            ..self.clone()
        }
    }

    /// Build the request to `url`.
    pub fn request(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        let mut rb = if self.post {
            client
                .post(url)
                .header("content-type", self.content_type())
                .body(self.encoded())
        } else {
            client.get(join(url, &self.encoded()))
        };
        for (k, v) in &self.headers {
            rb = rb.header(k, v);
        }
        rb
    }
}

/// The books, the compressed retry schedule and the base URL; cheap to clone.
#[derive(Clone)]
pub struct Desk {
    book: Arc<Mutex<Book>>,
    /// `http://127.0.0.1:PORT/` (with the trailing slash, as a base URL is configured).
    pub base: String,
}

impl Desk {
    /// Listen on a random loopback port with one merchant; `serve` is given the desk (to build
    /// the fake and its routes) once the address is known.
    pub async fn open(
        merchant: &str,
        key: &str,
        schedule_ms: &[u64],
        serve: impl FnOnce(Desk) -> axum::Router,
    ) -> Desk {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut book = Book {
            notify: true,
            schedule: schedule_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            ..Default::default()
        };
        book.merchants.insert(merchant.into(), key.into());
        let desk = Desk {
            book: Arc::new(Mutex::new(book)),
            base: format!("http://{}/", listener.local_addr().unwrap()),
        };
        let app = serve(desk.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        desk
    }

    /// The books, locked.
    pub fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first merchant: (id, key).
    pub fn merchant(&self) -> (String, String) {
        let b = self.book();
        let (id, key) = b.merchants.iter().next().expect("a merchant");
        (id.clone(), key.clone())
    }

    /// The key of a merchant.
    pub fn key(&self, merchant: &str) -> Option<String> {
        self.book().merchants.get(merchant).cloned()
    }

    /// Note a request to an endpoint.
    pub fn record(&self, endpoint: impl Into<String>) {
        self.book().requests.push(endpoint.into());
    }

    /// Every request's endpoint, in order.
    pub fn requests(&self) -> Vec<String> {
        self.book().requests.clone()
    }

    /// How many requests went to `endpoint`.
    pub fn count(&self, endpoint: &str) -> usize {
        self.book()
            .requests
            .iter()
            .filter(|r| *r == endpoint)
            .count()
    }

    /// The webhook endpoint the owner registered in the gateway's dashboard (gateways that do
    /// not take a notification URL with each payment).
    pub fn set_endpoint(&self, url: &str) {
        self.book().endpoint = url.to_string();
    }

    /// See [`Desk::set_endpoint`].
    pub fn endpoint(&self) -> String {
        self.book().endpoint.clone()
    }

    /// The delays before each notification attempt.
    pub fn set_schedule(&self, delays: &[Duration]) {
        self.book().schedule = delays.to_vec();
    }

    /// Stop (or resume) sending notifications: a lost notification, for reconciliation.
    pub fn set_notify(&self, on: bool) {
        self.book().notify = on;
    }

    /// Notify with this amount instead of the trade's (a misbehaving gateway; PAY-6).
    pub fn set_money_sent(&self, money: Option<&str>) {
        self.book().money_sent = money.map(String::from);
    }

    /// The amount a notification for `t` carries.
    pub fn money_of(&self, t: &Trade) -> String {
        self.book().money_sent.clone().unwrap_or(t.money.clone())
    }

    /// Every trade.
    pub fn trades(&self) -> Vec<Trade> {
        self.book().trades.clone()
    }

    /// The trade for our order id.
    pub fn trade(&self, order_ref: &str) -> Option<Trade> {
        self.book()
            .trades
            .iter()
            .find(|t| t.order_ref == order_ref)
            .cloned()
    }

    /// The trade the create request `t` opens: a new one numbered `prefix` + a counter, or the
    /// one already opened for the same order and merchant (gateways treat the order id as the
    /// payment's key). `Err` when that one is paid already.
    pub fn open_trade(&self, mut t: Trade, prefix: &str) -> Result<Trade, &'static str> {
        let mut b = self.book();
        if let Some(old) = b
            .trades
            .iter()
            .find(|o| o.order_ref == t.order_ref && o.merchant == t.merchant)
        {
            return if old.paid {
                Err("paid")
            } else {
                Ok(old.clone())
            };
        }
        b.next += 1;
        t.no = format!("{prefix}{:010}", b.next);
        b.trades.push(t.clone());
        Ok(t)
    }

    /// Mark the trade of `order_ref` paid; (notify URL, return URL).
    pub fn mark_paid(&self, order_ref: &str) -> (String, String) {
        let mut b = self.book();
        let t = b
            .trades
            .iter_mut()
            .find(|t| t.order_ref == order_ref)
            .expect("trade");
        t.paid = true;
        (t.notify_url.clone(), t.return_url.clone())
    }

    /// Send `notice` to `url` on the schedule until `acked` says the answer stops the retries;
    /// every answer is recorded on the trade.
    pub fn deliver(
        &self,
        order_ref: &str,
        url: &str,
        notice: Notice,
        acked: fn(u16, &str) -> bool,
    ) {
        let desk = self.clone();
        let (order_ref, url) = (order_ref.to_string(), url.to_string());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let schedule = desk.book().schedule.clone();
            for delay in schedule {
                tokio::time::sleep(delay).await;
                if !desk.book().notify {
                    continue;
                }
                let answer = match notice.request(&client, &url).send().await {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                };
                let done = acked(answer.0, &answer.1);
                if let Some(t) = desk
                    .book()
                    .trades
                    .iter_mut()
                    .find(|t| t.order_ref == order_ref)
                {
                    t.answers.push(answer);
                }
                if done {
                    return;
                }
            }
        });
    }

    /// Wait until the trade of `order_ref` has `n` answers recorded (or fail after 20 s).
    pub async fn wait_answers(&self, order_ref: &str, n: usize) -> Vec<(u16, String)> {
        for _ in 0..400 {
            if let Some(t) = self.trade(order_ref) {
                if t.answers.len() >= n {
                    return t.answers;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "trade {order_ref} never got {n} answers: {:?}",
            self.trade(order_ref)
        );
    }
}

/// `url` with `query` appended.
pub fn join(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// A first field value that is missing or empty ("" when all are).
pub fn first_missing<'a>(p: &BTreeMap<String, String>, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .find(|k| p.get(**k).is_none_or(|v| v.is_empty()))
        .copied()
}

/// Yuan with two decimals, above zero (what every Chinese gateway takes as an amount).
pub fn is_yuan(money: &str) -> bool {
    money.split_once('.').is_some_and(|(y, f)| {
        !y.is_empty()
            && y.bytes().all(|b| b.is_ascii_digit())
            && f.len() == 2
            && f.bytes().all(|b| b.is_ascii_digit())
    }) && money.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// Names of a protocol's notification fields the suite tampers with.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// Our order id.
    pub order: &'static str,
    /// The amount.
    pub amount: &'static str,
    /// The signature.
    pub sign: &'static str,
    /// A free-text field (for the overlong case; signed where the protocol signs it).
    pub text: &'static str,
}

/// A fake gateway the shared suite (`gateway_suite`) can drive.
pub trait GatewayFake: Clone + Send + Sync + 'static {
    /// Start a fresh fake with the suite's merchant and key.
    fn start() -> impl std::future::Future<Output = Self> + Send;
    fn desk(&self) -> &Desk;
    /// The kind of gateway (`epay`, ...); the suite configures it under this id.
    fn kind(&self) -> &'static str;
    /// The owner's settings pointing at this fake: (fields, secrets).
    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>);
    /// The owner registers the shop's notification URL at the gateway (used by gateways that
    /// take it from their dashboard rather than with each payment).
    fn set_endpoint(&self, url: &str) {
        self.desk().set_endpoint(url);
    }
    /// Whether reconciliation can ask the gateway about an order.
    fn queries(&self) -> bool {
        true
    }
    /// The endpoint that creates a payment (to count that it is asked once).
    fn create_endpoint(&self) -> &'static str;
    /// The endpoint reconciliation asks.
    fn query_endpoint(&self) -> &'static str;
    /// The signed notification for the trade of `order_ref`, `changes` applied before signing,
    /// signed with `key` (the merchant's when None).
    fn notice(&self, order_ref: &str, changes: &[(&str, &str)], key: Option<&str>) -> Notice;
    /// A correctly signed notification saying the payment is not made (yet), when the protocol
    /// sends such a thing.
    fn not_paid(&self, order_ref: &str) -> Option<Notice>;
    /// Forged classes particular to this protocol (added to [`GatewayFake::forgeries`]' common
    /// ones).
    fn forged(&self, _order_ref: &str) -> Vec<(&'static str, Notice)> {
        vec![]
    }
    fn names(&self) -> Names;
    /// Every forged class (PAY-2); for a protocol that signs parameters, the common ones and
    /// [`GatewayFake::forged`].
    fn forgeries(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        form_forgeries(self, order_ref)
    }
    /// How the ebook's ¥99.00 is sent (`99.00`, or `9900` in minor units).
    fn money_sent(&self) -> &'static str {
        "99.00"
    }
    /// A wrong amount, as the protocol writes amounts (PAY-6).
    fn wrong_money(&self) -> &'static str {
        "0.01"
    }
    /// What a notification accepted is answered.
    fn ack(&self) -> (u16, &'static str);
    /// What a forged notification is answered.
    fn nack(&self) -> (u16, &'static str) {
        (400, "fail")
    }
    /// Whether an answer stops this gateway's retries.
    fn acked(status: u16, body: &str) -> bool;
    /// Whether the customer's return carries the signed answer (then a forged one is tried).
    fn signed_return(&self) -> bool {
        false
    }

    /// The customer pays: the trade is marked paid and the notifications start. Returns the URL
    /// the customer is sent back to (with the signed answer when the protocol signs it).
    fn pay(&self, order_ref: &str) -> String {
        let (notify_url, return_url) = self.desk().mark_paid(order_ref);
        let notice = self.notice(order_ref, &[], None);
        let back = if self.signed_return() {
            join(&return_url, &notice.encoded())
        } else {
            return_url
        };
        self.desk()
            .deliver(order_ref, &notify_url, notice, Self::acked);
        back
    }
}

/// Every forged class for a protocol whose notification is a signed set of parameters (PAY-2):
/// the common ones, then the protocol's own.
pub fn form_forgeries<F: GatewayFake>(fake: &F, order_ref: &str) -> Vec<(&'static str, Notice)> {
    let n = fake.names();
    let good = fake.notice(order_ref, &[], None);
    let signature = good.get(n.sign).expect("signed").to_string();
    assert_ne!(
        signature,
        signature.to_uppercase(),
        "the signature has letters"
    );
    let money = good.get(n.amount).expect("an amount").to_string();
    let mut duplicated = good.clone();
    duplicated
        .params
        .push((n.amount.into(), fake.wrong_money().into()));
    let not_utf8 = good.encoded().replacen(
        &format!("{}={}", n.amount, money),
        &format!("{}=%FF%FE", n.amount),
        1,
    );
    let mut all = vec![
        (
            "wrong key",
            fake.notice(order_ref, &[], Some("not-the-key")),
        ),
        (
            "amount changed after signing",
            good.with(n.amount, Some(fake.wrong_money())),
        ),
        ("order changed after signing", good.with(n.order, Some("1"))),
        ("no signature", good.with(n.sign, None)),
        ("empty signature", good.with(n.sign, Some(""))),
        (
            "upper-case signature",
            good.with(n.sign, Some(&signature.to_uppercase())),
        ),
        (
            "unknown order",
            fake.notice(order_ref, &[(n.order, "424242")], None),
        ),
        ("duplicate parameter", duplicated),
        (
            "overlong field, signed",
            fake.notice(order_ref, &[(n.text, &"长".repeat(2_000))], None),
        ),
        ("garbage", good.replaced("%%%=&&=".into())),
        ("empty", good.replaced(String::new())),
        ("not UTF-8", good.replaced(not_utf8)),
    ];
    all.extend(fake.forged(order_ref));
    all
}
