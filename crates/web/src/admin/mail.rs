//! Admin → Mail: while no SMTP server is configured, outgoing mail is written as .eml files under
//! the data directory; this page lists them (newest first) and shows one, so the owner can read
//! what customers would have received (a sign-in code, for instance) before mail is set up.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

use super::base_ctx;
use crate::security::OwnerSession;
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

pub async fn list(State(state): State<AppState>, OwnerSession(s): OwnerSession) -> Response {
    let dir = state.config.mail_dir.clone();
    let items: Vec<Item> = match &dir {
        Some(d) => {
            let d = d.clone();
            tokio::task::spawn_blocking(move || {
                eml_files(&d)
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
        }
        None => Vec::new(),
    };
    let base = base_ctx(&state, "/admin/mail", Some(&s), &s.csrf_token).await;
    let ctx = context! { smtp => dir.is_none(), items => minijinja::Value::from_serialize(&items), message => (), ..base };
    state.templates.render("admin/mail.html", ctx)
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
    let Some(dir) = state.config.mail_dir.clone() else {
        return not_found();
    };
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
        smtp => false, items => (), message => context! { to => item.to, subject => item.subject, date => item.date, text => text },
        ..base
    };
    state.templates.render("admin/mail.html", ctx)
}
