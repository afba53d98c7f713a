//! Which mail server is in force: the one the owner set in Admin → Mail, else `mail.smtp_url`
//! from the configuration, else `.eml` files under the data directory. Used by the `message.send`
//! handler and by the admin "send test" button, so both go the same way.

use std::path::PathBuf;

use yiren_core::{mail, Ctx};
use yiren_providers::smtp::{Mailbox, Mailer, Security, SmtpServer};

/// What the configuration file says about mail.
#[derive(Debug, Clone, Default)]
pub struct MailSetup {
    /// `mail.smtp_url` (may be empty).
    pub config_url: String,
    /// `mail.from`.
    pub config_from: String,
    /// Where `.eml` files go without a server.
    pub mail_dir: PathBuf,
    /// Extra trusted root certificates (PEM) from `mail.ca_file`.
    pub extra_roots: Vec<Vec<u8>>,
}

/// The mailer in force, with its From and Reply-To.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub mailer: Mailer,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// `admin`, `config` or `files`.
    pub source: &'static str,
}

/// Resolve the mailer in force now.
pub async fn resolve(ctx: &Ctx, setup: &MailSetup) -> Result<Resolved, String> {
    let s = mail::load_smtp(ctx).await.map_err(|e| e.to_string())?;
    let config_from = || -> Result<Mailbox, String> {
        setup
            .config_from
            .parse()
            .map_err(|e| format!("mail.from is not an address: {e}"))
    };
    if s.configured() {
        let security = match s.security.as_str() {
            "tls" => Security::Tls,
            "starttls" => Security::StartTls,
            _ => Security::None,
        };
        let credentials = (!s.username.is_empty()).then(|| {
            (
                s.username.clone(),
                mail::smtp_password(ctx, &s).unwrap_or_default(),
            )
        });
        let server = SmtpServer {
            host: s.host.clone(),
            port: s.port,
            security,
            credentials,
            hello: None,
            extra_roots: setup.extra_roots.clone(),
        };
        let address = s
            .from_address
            .parse()
            .map_err(|e| format!("bad From address: {e}"))?;
        let name = Some(s.from_name.clone()).filter(|n| !n.is_empty());
        let reply_to = match s.reply_to.as_str() {
            "" => None,
            r => Some(Mailbox::new(
                None,
                r.parse().map_err(|e| format!("bad Reply-To: {e}"))?,
            )),
        };
        return Ok(Resolved {
            mailer: Mailer::Smtp(server),
            from: Mailbox::new(name, address),
            reply_to,
            source: "admin",
        });
    }
    if !setup.config_url.is_empty() {
        let mut server =
            SmtpServer::from_url(&setup.config_url).map_err(|e| format!("mail.smtp_url: {e}"))?;
        server.extra_roots = setup.extra_roots.clone();
        return Ok(Resolved {
            mailer: Mailer::Smtp(server),
            from: config_from()?,
            reply_to: None,
            source: "config",
        });
    }
    Ok(Resolved {
        mailer: Mailer::Files(setup.mail_dir.clone()),
        from: config_from()?,
        reply_to: None,
        source: "files",
    })
}

/// Send a test message to `to` now, through the mailer in force, and say what happened (in `l`).
/// Ok: the server accepted it; Err: why not.
pub async fn send_test(
    ctx: &Ctx,
    setup: &MailSetup,
    to: &str,
    site_name: &str,
    l: yiren_core::Locale,
) -> Result<(), String> {
    use yiren_providers::smtp;
    let r = resolve(ctx, setup).await?;
    let subject = l.tf("mail.test_subject", &[("site", site_name)]);
    let body = l.t("mail.test_body").to_string();
    let html = format!("<p>{}</p>", minijinja::HtmlEscape(&body));
    let email = smtp::Email {
        from: &r.from,
        reply_to: r.reply_to.as_ref(),
        to,
        subject: &subject,
        text: &body,
        html: &html,
        message_id: format!("test{}@{}", ctx.new_id(), r.from.email.domain()),
        unsubscribe_url: None,
    };
    let msg = smtp::build(&email)?;
    let mut sender = smtp::Sender::new(r.mailer);
    let sent = sender.send(&msg).await;
    sender.close().await;
    sent.map_err(|e| e.to_string())
}
