//! Payment gateways an individual can open, each an implementation of
//! [`yiren_core::payment::PaymentGateway`]: pure protocol — building signed requests, verifying
//! signed notifications, formatting amounts as the gateway expects — with the guarded outbound
//! HTTP client for the calls a gateway needs (creating a payment through an API, queries).
//! [`Factory`] makes them from the owner's settings.
//!
//! Gateways: `epay` (the 彩虹易支付 protocol that many aggregators speak).

use std::sync::Arc;

use yiren_core::error::DomainResult;
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{GatewayFactory, Kind, PaymentGateway};
use yiren_providers::http::HttpClient;

pub mod epay;

/// Makes the configured gateways; holds the outbound client they share.
pub struct Factory {
    pub http: HttpClient,
}

static KINDS: &[Kind] = &[epay::KIND];

impl GatewayFactory for Factory {
    fn kinds(&self) -> &'static [Kind] {
        KINDS
    }

    fn build(&self, c: &GatewayConfig) -> DomainResult<Arc<dyn PaymentGateway>> {
        match c.kind.as_str() {
            "epay" => Ok(Arc::new(epay::Epay::from_config(c, self.http.clone())?)),
            _ => Err(yiren_core::error::DomainError::invalid(
                "kind",
                "payments.kind_unknown",
            )),
        }
    }
}

/// Constant-time comparison of two signatures (ASCII, compared case-sensitively).
pub(crate) fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
