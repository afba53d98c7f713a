//! Admin → Mail (owner): the SMTP server (host, port, TLS, user, app password — write-only and
//! sealed — From name and address, Reply-To) with a "send test" button that sends through exactly
//! the path the queue uses. While no server is set (here or in the configuration), outgoing mail
//! is written as .eml files under the data directory; this page lists them (newest first) and
//! shows one, so the owner can read what customers would have received before mail is set up.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use yiren_core::DomainError;

use super::base_ctx;
use crate::security::{CsrfForm, OwnerSession};
use crate::AppState;

const SHOWN: usize = 200;

#[derive(Serialize)]
struct Item {
    id: String,
    to: String,
    subject: String,
    date: i64,
}

fn parse(path: &Path) -> Option<(mail_parser::Message<'static>, i64)> {
    let modified = path.metadata().ok()?.modified().ok()?;
    let ms = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as i64;
    let bytes = std::fs::read(path).ok()?;
    let msg = mail_parser::MessageParser::default()
        .parse(&bytes)?
        .into_owned();
    Some((msg, ms))
}

fn summary(id: String, msg: &mail_parser::Message<'_>, date: i64) -> Item {
    Item {
        id,
        to: msg
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_string(),
        subject: msg.subject().unwrap_or("").to_string(),
        date,
    }
}

fn eml_files(dir: &Path) -> Vec<(std::time::SystemTime, PathBuf)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
                .collect()
        })
        .unwrap_or_default();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files
}

async fn render(
    state: &AppState,
    s: &yiren_core::auth::Session,
    error: Option<String>,
    result: Option<(bool, String)>,
) -> Response {
    let dir = state.config.mail.mail_dir.clone();
    let (smtp, source) = match (
        yiren_core::mail::load_smtp(&state.ctx).await,
        crate::mailer::resolve(&state.ctx, &state.config.mail).await,
    ) {
        (Ok(smtp), Ok(r)) => (smtp, r.source),
        (Ok(smtp), Err(_)) => (smtp, "config"),
        (Err(e), _) => return super::pages::domain_error_page(e),
    };
    let items: Vec<Item> = if source == "files" {
        tokio::task::spawn_blocking(move || {
            eml_files(&dir)
                .into_iter()
                .take(SHOWN)
                .filter_map(|(_, p)| {
                    let id = p.file_stem()?.to_str()?.to_string();
                    let (msg, date) = parse(&p)?;
                    Some(summary(id, &msg, date))
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    let base = base_ctx(state, "/admin/mail", Some(s), &s.csrf_token).await;
    let ctx = context! {
        source => source, items => minijinja::Value::from_serialize(&items), message => (),
        smtp => context! {
            host => smtp.host, port => smtp.port, security => smtp.security, username => smtp.username,
            has_password => smtp.password_sealed.is_some(), from_name => smtp.from_name,
            from_address => smtp.from_address, reply_to => smtp.reply_to,
        },
        securities => yiren_core::mail::SECURITY,
        test_ok => result.as_ref().map(|r| r.0), test_message => result.map(|r| r.1),
        error => error, ..base
    };
    state.templates.render("admin/mail.html", ctx)
}

pub async fn list(State(state): State<AppState>, OwnerSession(s): OwnerSession) -> Response {
    render(&state, &s, None, None).await
}

#[derive(Deserialize)]
pub struct SmtpForm {
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    security: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    from_name: String,
    #[serde(default)]
    from_address: String,
    #[serde(default)]
    reply_to: String,
}

pub async fn save_settings(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(f): CsrfForm<SmtpForm>,
) -> Response {
    let input = yiren_core::mail::SmtpInput {
        host: &f.host,
        port: &f.port,
        security: &f.security,
        username: &f.username,
        password: Some(f.password.as_str()).filter(|p| !p.is_empty()),
        from_name: &f.from_name,
        from_address: &f.from_address,
        reply_to: &f.reply_to,
    };
    match yiren_core::mail::save_smtp(&state.ctx, &input).await {
        Ok(_) => Redirect::to("/admin/mail?notice=settings.saved").into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            super::pages::unprocessable(render(&state, &s, super::pages::message(key), None).await)
        }
        Err(e) => super::pages::domain_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    to: String,
}

/// Send a test message now, through the mailer in force, and show what the server answered.
pub async fn send_test(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(f): CsrfForm<TestForm>,
) -> Response {
    let l = crate::locale::current();
    let Ok(to) = yiren_core::auth::parse_email(&f.to) else {
        return super::pages::unprocessable(
            render(&state, &s, super::pages::message("email.invalid"), None).await,
        );
    };
    let site = state.settings().await;
    let outcome =
        match crate::mailer::send_test(&state.ctx, &state.config.mail, &to, &site.name, l).await {
            Ok(()) => (true, l.tf("mail.test_ok", &[("to", &to)])),
            Err(e) => (false, l.tf("mail.test_failed", &[("error", &e)])),
        };
    render(&state, &s, None, Some(outcome)).await
}

pub async fn show(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let not_found = || crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found");
    // Only file names lettre writes (a UUID): nothing else under the data directory is reachable.
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return not_found();
    }
    let dir = state.config.mail.mail_dir.clone();
    let path = dir.join(format!("{id}.eml"));
    let Some((msg, date)) = tokio::task::spawn_blocking(move || parse(&path))
        .await
        .ok()
        .flatten()
    else {
        return not_found();
    };
    let item = summary(id, &msg, date);
    let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let base = base_ctx(&state, "/admin/mail", Some(&s), &s.csrf_token).await;
    let ctx = context! {
        source => "files", items => (), message => context! { to => item.to, subject => item.subject, date => item.date, text => text },
        ..base
    };
    state.templates.render("admin/mail.html", ctx)
}
