//! The outbound HTTP client every integration shares: connect and total timeouts, no redirects
//! followed, a response size cap, and a guard that refuses private, loopback, link-local and other
//! internal destinations **at connect time** (after DNS, so a name that resolves or re-resolves to
//! an internal address is refused too) unless configuration allows them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What outbound requests may reach.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// Allow private, loopback and link-local destinations (tests, or an owner's LAN services).
    pub allow_private: bool,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for the whole exchange.
    pub timeout: Duration,
    /// Largest response body read, in bytes.
    pub max_response_bytes: usize,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allow_private: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_response_bytes: 1 << 20,
        }
    }
}

/// Why an outbound request did not complete.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The URL is not http(s) or cannot be parsed.
    #[error("refused URL: {0}")]
    BadUrl(String),
    /// The destination is internal and not allowed.
    #[error("refused destination: {0} is a private, loopback or otherwise internal address")]
    Forbidden(String),
    /// The response was larger than allowed.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// Timed out.
    #[error("timed out")]
    Timeout,
    /// Connection or protocol failure.
    #[error("request failed: {0}")]
    Transport(String),
}

impl OutboundError {
    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return OutboundError::Timeout;
        }
        // The resolver's refusal arrives wrapped; surface it as such.
        let mut src: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = src {
            if let Some(blocked) = s.downcast_ref::<Blocked>() {
                return OutboundError::Forbidden(blocked.0.clone());
            }
            src = s.source();
        }
        OutboundError::Transport(e.without_url().to_string())
    }
}

#[derive(Debug)]
struct Blocked(String);
impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is an internal address", self.0)
    }
}
impl std::error::Error for Blocked {}

/// True for addresses an outbound request must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg0 & 0xffc0) == 0xfec0 // site-local (deprecated)
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
                || (seg0 == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || seg0 == 0x0064 && v6.segments()[1] == 0xff9b // NAT64 to anything
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

/// Resolves names, then drops internal addresses (or refuses when none is left).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allow || !is_internal(a.ip()))
                .collect();
            if ok.is_empty() {
                return Err(Box::new(Blocked(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// A finished response with its body read (up to the cap).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Fetched {
    /// `Retry-After` (delay seconds) in milliseconds, if the server sent one.
    pub fn retry_after_ms(&self) -> Option<i64> {
        self.headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|s| s * 1000)
    }
}

/// The guarded client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl HttpClient {
    /// Build a client for a policy.
    pub fn new(policy: OutboundPolicy) -> Result<Self, OutboundError> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .user_agent(concat!("Yiren/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: policy.allow_private,
            }))
            .build()
            .map_err(|e| OutboundError::Transport(e.to_string()))?;
        Ok(HttpClient {
            inner,
            policy: Arc::new(policy),
        })
    }

    /// Check a URL before use: http(s) only, and an IP-literal host (which skips DNS) must not be internal.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, OutboundError> {
        let u = url::Url::parse(raw).map_err(|e| OutboundError::BadUrl(e.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(OutboundError::BadUrl(format!(
                "scheme {} is not allowed",
                u.scheme()
            )));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(OutboundError::BadUrl(
                "credentials in URLs are not allowed".into(),
            ));
        }
        let ip = match u.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(OutboundError::BadUrl("no host".into())),
        };
        if let Some(ip) = ip {
            if !self.policy.allow_private && is_internal(ip) {
                return Err(OutboundError::Forbidden(ip.to_string()));
            }
        }
        Ok(u)
    }

    /// Start a request to a checked URL.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        let u = self.check_url(url)?;
        Ok(self.inner.request(method, u))
    }

    /// Send a request and read its body up to the cap.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Fetched, OutboundError> {
        self.send_capped(rb, self.policy.max_response_bytes).await
    }

    /// Send a request and read its body up to `cap` bytes (for downloads larger than API replies,
    /// such as product images).
    pub async fn send_capped(
        &self,
        rb: reqwest::RequestBuilder,
        cap: usize,
    ) -> Result<Fetched, OutboundError> {
        let resp = rb.send().await.map_err(OutboundError::from_reqwest)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if resp.content_length().is_some_and(|n| n as usize > cap) {
            return Err(OutboundError::TooLarge(cap));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(OutboundError::from_reqwest)?;
            if body.len() + chunk.len() > cap {
                return Err(OutboundError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "224.0.0.1",
            "198.18.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} should be internal");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "203.0.114.1",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn url_spellings_of_loopback_are_refused_before_any_connection() {
        let c = HttpClient::new(OutboundPolicy::default()).unwrap();
        for u in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://192.168.0.1:8080/",
        ] {
            assert!(
                matches!(c.check_url(u), Err(OutboundError::Forbidden(_))),
                "{u} should be refused"
            );
        }
        for u in [
            "file:///etc/passwd",
            "gopher://x/",
            "ftp://example.com/",
            "http://user:pw@example.com/",
        ] {
            assert!(
                matches!(c.check_url(u), Err(OutboundError::BadUrl(_))),
                "{u} should be refused"
            );
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "secret" }));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        let c = HttpClient::new(OutboundPolicy::default()).unwrap();
        let url = format!("http://localhost:{port}/");
        let err = c
            .send(c.request(reqwest::Method::GET, &url).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::Forbidden(_)), "{err:?}");
        let allowed = HttpClient::new(OutboundPolicy {
            allow_private: true,
            ..Default::default()
        })
        .unwrap();
        let ok = allowed
            .send(allowed.request(reqwest::Method::GET, &url).unwrap())
            .await
            .unwrap();
        assert_eq!(ok.body, b"secret");
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_bodies_are_capped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .route(
                "/r",
                axum::routing::get(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [("location", "http://169.254.169.254/")],
                        "",
                    )
                }),
            )
            .route("/big", axum::routing::get(|| async { "x".repeat(4096) }));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        let c = HttpClient::new(OutboundPolicy {
            allow_private: true,
            max_response_bytes: 1024,
            ..Default::default()
        })
        .unwrap();
        let r = c
            .send(
                c.request(reqwest::Method::GET, &format!("http://127.0.0.1:{port}/r"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 302);
        let big = c
            .send(
                c.request(
                    reqwest::Method::GET,
                    &format!("http://127.0.0.1:{port}/big"),
                )
                .unwrap(),
            )
            .await;
        assert!(matches!(big, Err(OutboundError::TooLarge(1024))));
    }
}
