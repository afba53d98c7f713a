//! An order's payment and fulfilment states and the only transitions allowed between them
//! (RELIABILITY STATE-1, PROP-2). Pure: the store applies the returned state and effects in the
//! same transaction, so an effect happens exactly when its transition is committed.
//!
//! Payment: pending → paid → partially refunded → refunded; pending → voided. Refunded and voided
//! are terminal; cancelling an unpaid order leaves its payment open until voided. Fulfilment: unfulfilled → partially fulfilled → fulfilled, only while paid (or
//! partly refunded) and not cancelled. A payment that arrives for a cancelled order is taken, put
//! under refund review and never fulfilled. Amounts: the payment must equal the order total; the
//! refunds together never exceed what was captured (MONEY-3).

use serde::Serialize;

/// Where the money stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Payment {
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Voided,
}

/// Where the goods stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    Unfulfilled,
    PartiallyFulfilled,
    Fulfilled,
}

/// An order's state: both machines plus the figures their rules need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub payment: Payment,
    pub fulfilment: Fulfilment,
    pub cancelled: bool,
    /// Paid after it was cancelled: the owner must refund; never fulfilled.
    pub refund_review: bool,
    /// What the customer must pay, minor units.
    pub total: i64,
    pub captured: i64,
    pub refunded: i64,
    /// Units ordered and units sent.
    pub units: i64,
    pub fulfilled: i64,
}

impl State {
    /// A new order awaiting payment.
    pub fn new(total: i64, units: i64) -> State {
        State {
            payment: Payment::Pending,
            fulfilment: Fulfilment::Unfulfilled,
            cancelled: false,
            refund_review: false,
            total,
            captured: 0,
            refunded: 0,
            units,
            fulfilled: 0,
        }
    }

    fn terminal(&self) -> bool {
        matches!(self.payment, Payment::Refunded | Payment::Voided)
    }

    fn money_in(&self) -> bool {
        matches!(self.payment, Payment::Paid | Payment::PartiallyRefunded)
    }
}

/// Something that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The gateway (or the owner, for a manual payment) reports the money arrived.
    Paid { amount: i64 },
    /// The unpaid order's payment is called off (expired, or voided by the owner).
    Void,
    /// Money goes back.
    Refund { amount: i64 },
    /// Units are sent or delivered.
    Fulfil { units: i64 },
    /// The owner or the customer cancels.
    Cancel,
}

/// What a transition sets off; the caller performs each in the transition's transaction (via
/// the outbox for anything outside the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Tell the customer and the owner the payment arrived.
    Receipt,
    /// Hand over what was bought: download grants, licence keys, memberships.
    Grant,
    /// Take back what `Grant` handed over.
    Revoke,
    /// Put reserved or sold units back in stock.
    Restock,
    /// Ask the owner to refund a payment that came for a cancelled order.
    RefundReview,
    /// Tell the customer money was refunded.
    Refunded,
    /// Tell the customer units were sent.
    Shipped,
}

/// Why an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the order does not allow this now")]
    NotAllowed,
    #[error("the amount does not match the order")]
    AmountMismatch,
    #[error("more than was paid")]
    OverRefund,
    #[error("more units than are left to send")]
    OverFulfil,
}

impl Refusal {
    /// The message key for people.
    pub fn key(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "order.transition_refused",
            Refusal::AmountMismatch => "order.amount_mismatch",
            Refusal::OverRefund => "order.over_refund",
            Refusal::OverFulfil => "order.over_fulfil",
        }
    }
}

/// Apply `event` to `s`: the new state and its effects, or why not (the state is unchanged).
pub fn apply(s: &State, event: &Event) -> Result<(State, Vec<Effect>), Refusal> {
    use Effect::*;
    if s.terminal() {
        return Err(Refusal::NotAllowed);
    }
    let mut n = s.clone();
    let effects = match *event {
        Event::Paid { amount } => {
            if s.payment != Payment::Pending {
                return Err(Refusal::NotAllowed);
            }
            if amount != s.total {
                return Err(Refusal::AmountMismatch);
            }
            n.payment = Payment::Paid;
            n.captured = amount;
            if s.cancelled {
                n.refund_review = true;
                vec![RefundReview]
            } else {
                vec![Receipt, Grant]
            }
        }
        Event::Void => {
            if s.payment != Payment::Pending {
                return Err(Refusal::NotAllowed);
            }
            n.payment = Payment::Voided;
            if s.cancelled {
                vec![]
            } else {
                n.cancelled = true;
                vec![Restock]
            }
        }
        Event::Refund { amount } => {
            if !s.money_in() {
                return Err(Refusal::NotAllowed);
            }
            if amount < 1 || amount > s.captured - s.refunded {
                return Err(Refusal::OverRefund);
            }
            n.refunded += amount;
            let full = n.refunded == s.captured;
            n.payment = if full {
                Payment::Refunded
            } else {
                Payment::PartiallyRefunded
            };
            if full {
                n.refund_review = false;
            }
            // Grants go with the full refund, unless they were never made (cancelled first).
            if full && !s.cancelled {
                vec![Refunded, Revoke]
            } else {
                vec![Refunded]
            }
        }
        Event::Fulfil { units } => {
            if !s.money_in() || s.cancelled {
                return Err(Refusal::NotAllowed);
            }
            if units < 1 || units > s.units - s.fulfilled {
                return Err(Refusal::OverFulfil);
            }
            n.fulfilled += units;
            n.fulfilment = if n.fulfilled == s.units {
                Fulfilment::Fulfilled
            } else {
                Fulfilment::PartiallyFulfilled
            };
            vec![Shipped]
        }
        Event::Cancel => {
            if s.cancelled || s.fulfilment != Fulfilment::Unfulfilled {
                return Err(Refusal::NotAllowed);
            }
            n.cancelled = true;
            match s.payment {
                // The payment stays open until it is voided (or expires): one that still
                // arrives goes to refund review.
                Payment::Pending => vec![Restock],
                // Paid: the goods go back on the shelf, what was handed over is taken back,
                // and the owner refunds.
                _ => {
                    n.refund_review = true;
                    vec![Restock, Revoke, RefundReview]
                }
            }
        }
    };
    Ok((n, effects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PAYMENTS: [Payment; 5] = [
        Payment::Pending,
        Payment::Paid,
        Payment::PartiallyRefunded,
        Payment::Refunded,
        Payment::Voided,
    ];
    const FULFILMENTS: [Fulfilment; 3] = [
        Fulfilment::Unfulfilled,
        Fulfilment::PartiallyFulfilled,
        Fulfilment::Fulfilled,
    ];

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Paid,
        Void,
        Refund,
        Fulfil,
        Cancel,
    }

    /// The whitelist, written as a table independent of `apply`: may `kind` happen in
    /// (payment, fulfilment, cancelled)? (Amounts and units aside: those are checked apart.)
    fn allowed(p: Payment, f: Fulfilment, cancelled: bool, kind: Kind) -> bool {
        use Fulfilment as F;
        use Payment as P;
        match (p, kind) {
            (P::Refunded | P::Voided, _) => false,
            (P::Pending, Kind::Paid | Kind::Void) => true,
            (P::Pending, Kind::Refund | Kind::Fulfil) => false,
            (_, Kind::Paid | Kind::Void) => false,
            (P::Paid | P::PartiallyRefunded, Kind::Refund) => true,
            (P::Paid | P::PartiallyRefunded, Kind::Fulfil) => !cancelled && f != F::Fulfilled,
            (_, Kind::Cancel) => !cancelled && f == F::Unfulfilled,
        }
    }

    /// A state in (payment, fulfilment, cancelled) with consistent figures.
    fn state(p: Payment, f: Fulfilment, cancelled: bool) -> State {
        let mut s = State::new(1000, 4);
        s.payment = p;
        s.fulfilment = f;
        s.cancelled = cancelled;
        s.captured = if p == Payment::Pending || p == Payment::Voided {
            0
        } else {
            1000
        };
        s.refunded = match p {
            Payment::PartiallyRefunded => 400,
            Payment::Refunded => 1000,
            _ => 0,
        };
        s.fulfilled = match f {
            Fulfilment::Unfulfilled => 0,
            Fulfilment::PartiallyFulfilled => 2,
            Fulfilment::Fulfilled => 4,
        };
        s
    }

    fn event(kind: Kind) -> Event {
        match kind {
            Kind::Paid => Event::Paid { amount: 1000 },
            Kind::Void => Event::Void,
            Kind::Refund => Event::Refund { amount: 100 },
            Kind::Fulfil => Event::Fulfil { units: 1 },
            Kind::Cancel => Event::Cancel,
        }
    }

    /// STATE-1: every (state, event) pair; only the whitelisted ones pass.
    #[test]
    fn only_whitelisted_transitions_succeed() {
        let mut refused = 0;
        for p in PAYMENTS {
            for f in FULFILMENTS {
                for cancelled in [false, true] {
                    for kind in [
                        Kind::Paid,
                        Kind::Void,
                        Kind::Refund,
                        Kind::Fulfil,
                        Kind::Cancel,
                    ] {
                        let s = state(p, f, cancelled);
                        let got = apply(&s, &event(kind));
                        assert_eq!(
                            got.is_ok(),
                            allowed(p, f, cancelled, kind),
                            "{p:?} {f:?} cancelled={cancelled} {kind:?}: {got:?}"
                        );
                        refused += usize::from(got.is_err());
                    }
                }
            }
        }
        assert!(refused > 80, "{refused}");
    }

    #[test]
    fn amounts_and_units_are_checked() {
        let s = State::new(1000, 2);
        assert_eq!(
            apply(&s, &Event::Paid { amount: 999 }),
            Err(Refusal::AmountMismatch)
        );
        assert_eq!(
            apply(&s, &Event::Paid { amount: 2000 }),
            Err(Refusal::AmountMismatch)
        );
        let (paid, fx) = apply(&s, &Event::Paid { amount: 1000 }).unwrap();
        assert_eq!(fx, vec![Effect::Receipt, Effect::Grant]);
        assert_eq!(
            apply(&paid, &Event::Refund { amount: 1001 }),
            Err(Refusal::OverRefund)
        );
        assert_eq!(
            apply(&paid, &Event::Refund { amount: 0 }),
            Err(Refusal::OverRefund)
        );
        assert_eq!(
            apply(&paid, &Event::Fulfil { units: 3 }),
            Err(Refusal::OverFulfil)
        );
        let (part, _) = apply(&paid, &Event::Refund { amount: 600 }).unwrap();
        assert_eq!(part.payment, Payment::PartiallyRefunded);
        assert_eq!(
            apply(&part, &Event::Refund { amount: 401 }),
            Err(Refusal::OverRefund)
        );
        let (full, fx) = apply(&part, &Event::Refund { amount: 400 }).unwrap();
        assert_eq!(
            (full.payment, fx),
            (Payment::Refunded, vec![Effect::Refunded, Effect::Revoke])
        );
    }

    #[test]
    fn a_payment_for_a_cancelled_order_goes_to_review_and_is_never_fulfilled() {
        let (c, fx) = apply(&State::new(500, 1), &Event::Cancel).unwrap();
        assert_eq!(
            (c.payment, c.cancelled, fx),
            (Payment::Pending, true, vec![Effect::Restock])
        );
        let (p, fx) = apply(&c, &Event::Paid { amount: 500 }).unwrap();
        assert_eq!(fx, vec![Effect::RefundReview]);
        assert!(p.refund_review);
        assert_eq!(
            apply(&p, &Event::Fulfil { units: 1 }),
            Err(Refusal::NotAllowed)
        );
        // Refunding it closes the review; nothing was granted, so nothing is revoked.
        let (r, fx) = apply(&p, &Event::Refund { amount: 500 }).unwrap();
        assert_eq!(
            (r.payment, r.refund_review, fx),
            (Payment::Refunded, false, vec![Effect::Refunded])
        );
        // Once voided (expired), a payment is refused: the payment handler parks it.
        let (v, fx) = apply(&c, &Event::Void).unwrap();
        assert_eq!((v.payment, fx), (Payment::Voided, vec![]));
        assert_eq!(
            apply(&v, &Event::Paid { amount: 500 }),
            Err(Refusal::NotAllowed)
        );
    }

    fn events() -> impl Strategy<Value = Vec<Event>> {
        prop::collection::vec(
            prop_oneof![
                (0i64..1_500).prop_map(|amount| Event::Paid { amount }),
                Just(Event::Paid { amount: 1000 }),
                Just(Event::Void),
                (-5i64..1_100).prop_map(|amount| Event::Refund { amount }),
                (-1i64..6).prop_map(|units| Event::Fulfil { units }),
                Just(Event::Cancel),
            ],
            0..=50,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// PROP-2: random sequences never reach a state the rules forbid, a refused event
        /// changes nothing, and effects fire once per transition (a grant once per order).
        #[test]
        fn random_sequences_keep_every_invariant(events in events()) {
            let mut s = State::new(1000, 5);
            let mut grants = 0;
            let mut revokes = 0;
            let mut receipts = 0;
            for e in &events {
                let before = s.clone();
                let kind = match e {
                    Event::Paid { .. } => Kind::Paid,
                    Event::Void => Kind::Void,
                    Event::Refund { .. } => Kind::Refund,
                    Event::Fulfil { .. } => Kind::Fulfil,
                    Event::Cancel => Kind::Cancel,
                };
                match apply(&s, e) {
                    Ok((n, fx)) => {
                        prop_assert!(allowed(before.payment, before.fulfilment, before.cancelled, kind));
                        grants += fx.iter().filter(|f| **f == Effect::Grant).count();
                        revokes += fx.iter().filter(|f| **f == Effect::Revoke).count();
                        receipts += fx.iter().filter(|f| **f == Effect::Receipt).count();
                        let mut unique = fx.clone();
                        unique.sort_by_key(|f| *f as u8);
                        unique.dedup();
                        prop_assert_eq!(unique.len(), fx.len());
                        s = n;
                    }
                    Err(_) => prop_assert_eq!(&s, &before),
                }
                prop_assert!(s.refunded <= s.captured);
                prop_assert!(s.captured == 0 || s.captured == s.total);
                prop_assert!(s.fulfilled <= s.units);
                prop_assert!(!(s.cancelled && s.fulfilled > 0 && before.fulfilled < s.fulfilled));
                prop_assert!(!(s.refund_review && s.fulfilled > before.fulfilled));
                if matches!(before.payment, Payment::Refunded | Payment::Voided) {
                    prop_assert_eq!(&s, &before);
                }
                prop_assert!(grants <= 1 && receipts <= 1 && revokes <= grants);
                prop_assert_eq!(s.payment == Payment::Refunded, s.captured > 0 && s.refunded == s.captured);
            }
        }
    }
}
