//! Outgoing email (lettre): build a MIME message, and send it over SMTP — plain, STARTTLS (587)
//! or implicit TLS (465), with AUTH (QQ/163 app passwords work as the password) — or write it
//! as an `.eml` file when no server is configured.
//!
//! Connections are opened here with TCP_NODELAY (lettre leaves Nagle on, and its body and final
//! dot are two writes: a server's delayed ACK would cost ~40 ms per message) and reused for every
//! message a [`Sender`] sends. Header values are passed to lettre's typed headers only, which
//! encode them (RFC 2047) and never let a line break through; callers refuse control characters
//! in anything the owner or a customer typed before it gets here.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
pub use lettre::message::Mailbox;
use lettre::message::{MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
pub use lettre::Message;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP (a relay on the same host).
    None,
    /// STARTTLS required (usually port 587).
    StartTls,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// Implicit TLS (usually port 465).
    Tls,
}

/// An SMTP server to send through.
#[derive(Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, String)>,
    /// Name sent in EHLO.
    pub hello: Option<String>,
    /// Extra trusted root certificates (PEM), for a server with a private CA.
    pub extra_roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

impl SmtpServer {
    /// Parse lettre's URL form: `smtp://HOST:25`, `smtp://USER:PASS@HOST:587?tls=required`
    /// (or `opportunistic`), `smtps://USER:PASS@HOST:465`; a path names the EHLO host.
    pub fn from_url(raw: &str) -> Result<SmtpServer, String> {
        let u = url::Url::parse(raw).map_err(|_| "not a URL".to_string())?;
        let host = u
            .host_str()
            .ok_or("no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let tls = u
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let (port, security) = match (u.scheme(), tls.as_deref()) {
            ("smtp", None) => (u.port().unwrap_or(25), Security::None),
            ("smtp", Some("required")) => (u.port().unwrap_or(587), Security::StartTls),
            ("smtp", Some("opportunistic")) => (u.port().unwrap_or(587), Security::Opportunistic),
            ("smtps", _) => (u.port().unwrap_or(465), Security::Tls),
            (s, t) => return Err(format!("unknown scheme {s} or tls={t:?}")),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "credentials are not UTF-8".to_string())
        };
        let credentials = match u.password() {
            Some(p) => Some((decode(u.username())?, decode(p)?)),
            None => None,
        };
        let hello = Some(u.path().trim_matches('/').to_string()).filter(|h| !h.is_empty());
        Ok(SmtpServer {
            host,
            port,
            security,
            credentials,
            hello,
            extra_roots: Vec::new(),
        })
    }

    fn tls(&self) -> Result<TlsParameters, SendError> {
        let mut b = TlsParameters::builder(self.host.clone());
        for pem in &self.extra_roots {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| SendError::Permanent(format!("bad CA certificate: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        b.build()
            .map_err(|e| SendError::Permanent(format!("TLS: {e}")))
    }

    /// Connect, say EHLO, secure the connection as configured, authenticate.
    pub async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let timeout = Duration::from_secs(30);
        let hello = match &self.hello {
            Some(h) => ClientId::Domain(h.clone()),
            None => ClientId::default(),
        };
        let step = async {
            let mut conn = if self.security == Security::Tls {
                // Implicit TLS: lettre opens this one (the handshake comes before EHLO).
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(timeout),
                    &hello,
                    Some(self.tls()?),
                    None,
                )
                .await
                .map_err(classify)?
            } else {
                let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(|e| SendError::Transient(format!("cannot connect: {e}")))?;
                let _ = tcp.set_nodelay(true);
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                    .await
                    .map_err(classify)?
            };
            let starttls = match self.security {
                Security::StartTls => true,
                Security::Opportunistic => conn.can_starttls(),
                _ => false,
            };
            if starttls {
                conn.starttls(self.tls()?, &hello).await.map_err(classify)?;
            }
            if let Some((user, pass)) = &self.credentials {
                let c = Credentials::new(user.clone(), pass.clone());
                conn.auth(&[Mechanism::Plain, Mechanism::Login], &c)
                    .await
                    .map_err(classify)?;
            }
            Ok::<_, SendError>(conn)
        };
        match tokio::time::timeout(timeout, step).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Transient("the server stopped answering".into())),
        }
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (4xx, network).
    #[error("{0}")]
    Transient(String),
    /// The recipient's mailbox does not exist (550/551/553): suppress the address.
    #[error("{0}")]
    Bounce(String),
    /// Retrying cannot help (other 5xx, bad credentials, TLS the server does not offer).
    #[error("{0}")]
    Permanent(String),
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let bounce = e.status().is_some_and(|c| {
        let s = c.to_string();
        s == "550" || s == "551" || s == "553"
    });
    if e.is_permanent() && bounce {
        SendError::Bounce(format!("SMTP refused: {e}"))
    } else if e.is_permanent() || e.is_client() || e.is_tls() {
        SendError::Permanent(format!("SMTP refused: {e}"))
    } else {
        SendError::Transient(format!("SMTP: {e}"))
    }
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum Mailer {
    Smtp(SmtpServer),
    /// `.eml` files in this directory.
    Files(PathBuf),
}

/// Sends messages one after another, over one SMTP session when there is a server.
pub struct Sender {
    mailer: Mailer,
    conn: Option<AsyncSmtpConnection>,
}

impl Sender {
    pub fn new(mailer: Mailer) -> Sender {
        Sender { mailer, conn: None }
    }

    /// Send one message.
    pub async fn send(&mut self, msg: &Message) -> Result<(), SendError> {
        match &self.mailer {
            Mailer::Files(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| SendError::Transient(format!("cannot write mail file: {e}")))?;
                AsyncFileTransport::<Tokio1Executor>::new(dir.clone())
                    .send(msg.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError::Transient(format!("cannot write mail file: {e}")))
            }
            Mailer::Smtp(server) => {
                if self.conn.as_ref().is_some_and(|c| c.has_broken()) {
                    self.conn = None;
                }
                if self.conn.is_none() {
                    self.conn = Some(server.connect().await?);
                }
                let conn = self.conn.as_mut().expect("connected above");
                let sent = tokio::time::timeout(
                    Duration::from_secs(60),
                    conn.send(msg.envelope(), &msg.formatted()),
                )
                .await;
                match sent {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => {
                        // After a refusal the session may be mid-transaction: start afresh.
                        if let Some(mut c) = self.conn.take() {
                            c.abort().await;
                        }
                        Err(classify(e))
                    }
                    Err(_) => {
                        self.conn = None;
                        Err(SendError::Transient("the server stopped answering".into()))
                    }
                }
            }
        }
    }

    /// Say QUIT politely.
    pub async fn close(mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.quit().await;
        }
    }
}

/// What to put in a message.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    pub from: &'a Mailbox,
    pub reply_to: Option<&'a Mailbox>,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// `<ID>` without brackets; the same on every retry.
    pub message_id: String,
    /// RFC 8058 one-click unsubscribe URL (bulk mail).
    pub unsubscribe_url: Option<&'a str>,
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// Build the MIME message: From, optional Reply-To, To, Subject, Date, Message-ID, the
/// unsubscribe headers for bulk mail, and a text + HTML alternative.
pub fn build(e: &Email<'_>) -> Result<Message, String> {
    let to: Mailbox =
        e.to.parse()
            .map_err(|err| format!("bad recipient: {err}"))?;
    if e.subject.chars().any(|c| c.is_control()) {
        return Err("the subject has control characters".into());
    }
    let mut b = Message::builder()
        .from(e.from.clone())
        .to(to)
        .subject(e.subject.to_string())
        // Providers score mail without these as spam.
        .date_now()
        .message_id(Some(format!("<{}>", e.message_id)));
    if let Some(r) = e.reply_to {
        b = b.reply_to(r.clone());
    }
    if let Some(url) = e.unsubscribe_url {
        if url.chars().any(|c| c.is_control() || c == '>' || c == ' ') {
            return Err("bad unsubscribe URL".into());
        }
        // RFC 2369 + RFC 8058: one-click unsubscribe by POST to the URL.
        b = b
            .raw_header(header("List-Unsubscribe", format!("<{url}>")))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    b.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(e.text.to_string()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(e.html.to_string()),
            ),
    )
    .map_err(|err| format!("cannot build message: {err}"))
}

/// A display name safe for a From or Reply-To header: no control characters (CR, LF, NUL, …)
/// nor Unicode line separators. None when it has any (the caller refuses the input).
pub fn clean_display_name(name: &str) -> Option<String> {
    let n = name.trim();
    (!n.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
        && n.chars().count() <= 100)
        .then(|| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_lettres_rules() {
        let s = SmtpServer::from_url("smtps://me%40qq.com:app%20pw@smtp.qq.com").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.security),
            ("smtp.qq.com", 465, Security::Tls)
        );
        assert_eq!(s.credentials, Some(("me@qq.com".into(), "app pw".into())));
        let s = SmtpServer::from_url("smtp://u:p@smtp.163.com?tls=required").unwrap();
        assert_eq!((s.port, s.security), (587, Security::StartTls));
        let s = SmtpServer::from_url("smtp://127.0.0.1:2525/shop.example").unwrap();
        assert_eq!(
            (s.port, s.security, s.hello.as_deref()),
            (2525, Security::None, Some("shop.example"))
        );
        assert!(SmtpServer::from_url("smtp://h?tls=maybe").is_err());
        assert!(
            !format!("{:?}", SmtpServer::from_url("smtps://u:secret@h").unwrap())
                .contains("secret")
        );
    }
}
