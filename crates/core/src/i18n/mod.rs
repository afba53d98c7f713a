//! The message catalog: every user-visible string lives in `locales/<locale>.toml`.
//! Locale comes from the user's choice, then `Accept-Language`, then the site default.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A language the product speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Locale {
    /// 简体中文
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    /// English
    #[serde(rename = "en")]
    En,
}

impl Locale {
    /// Every supported locale.
    pub const ALL: [Locale; 2] = [Locale::ZhCn, Locale::En];

    /// The BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::ZhCn => "zh-CN",
            Locale::En => "en",
        }
    }

    /// The language's own name.
    pub fn native_name(self) -> &'static str {
        match self {
            Locale::ZhCn => "简体中文",
            Locale::En => "English",
        }
    }

    /// Parse a tag we support exactly (`zh-CN`, `en`); anything else is None.
    pub fn parse(tag: &str) -> Option<Locale> {
        match tag.trim().to_ascii_lowercase().as_str() {
            "zh-cn" | "zh" | "zh-hans" | "zh-hans-cn" => Some(Locale::ZhCn),
            "en" | "en-us" | "en-gb" => Some(Locale::En),
            _ => None,
        }
    }

    /// The best supported locale in an `Accept-Language` header, by q-value.
    pub fn negotiate(accept_language: &str) -> Option<Locale> {
        let mut best: Option<(f32, Locale)> = None;
        for part in accept_language.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|v| v.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let loc = if tag.starts_with("zh") {
                Some(Locale::ZhCn)
            } else if tag.starts_with("en") {
                Some(Locale::En)
            } else {
                None
            };
            if let Some(l) = loc {
                if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, l));
                }
            }
        }
        best.map(|(_, l)| l)
    }

    /// Look a message up in this locale's catalog.
    pub fn t(self, key: &str) -> &'static str {
        lookup(self, key)
    }

    /// Look a message up and replace `{name}` placeholders.
    pub fn tf(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut s = lookup(self, key).to_string();
        for (k, v) in args {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }
}

type Catalog = HashMap<String, &'static str>;

fn parse_catalog(src: &'static str) -> Catalog {
    let table: toml::Table =
        toml::from_str(src).unwrap_or_else(|e| panic!("message catalog is not valid TOML: {e}"));
    let mut out = HashMap::new();
    flatten("", &table, &mut out);
    out
}

fn flatten(prefix: &str, t: &toml::Table, out: &mut Catalog) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => flatten(&key, inner, out),
            toml::Value::String(s) => {
                out.insert(key, Box::leak(s.clone().into_boxed_str()));
            }
            other => {
                out.insert(key, Box::leak(other.to_string().into_boxed_str()));
            }
        }
    }
}

/// The catalog of one locale (parsed once; the files are embedded in the binary).
pub fn catalog(locale: Locale) -> &'static Catalog {
    static ZH: OnceLock<Catalog> = OnceLock::new();
    static EN: OnceLock<Catalog> = OnceLock::new();
    match locale {
        Locale::ZhCn => ZH.get_or_init(|| parse_catalog(include_str!("../../locales/zh-CN.toml"))),
        Locale::En => EN.get_or_init(|| parse_catalog(include_str!("../../locales/en.toml"))),
    }
}

fn lookup(locale: Locale, key: &str) -> &'static str {
    match catalog(locale).get(key) {
        Some(s) => s,
        None => {
            tracing::warn!(key, locale = locale.tag(), "missing message");
            Box::leak(key.to_string().into_boxed_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogs_have_exactly_the_same_keys() {
        let zh: std::collections::BTreeSet<_> = catalog(Locale::ZhCn).keys().collect();
        let en: std::collections::BTreeSet<_> = catalog(Locale::En).keys().collect();
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(
            only_zh.is_empty() && only_en.is_empty(),
            "only zh: {only_zh:?}; only en: {only_en:?}"
        );
    }

    #[test]
    fn accept_language_picks_the_highest_quality_supported_tag() {
        assert_eq!(
            Locale::negotiate("fr, en;q=0.5, zh-CN;q=0.8"),
            Some(Locale::ZhCn)
        );
        assert_eq!(Locale::negotiate("en-US,en;q=0.9"), Some(Locale::En));
        assert_eq!(Locale::negotiate("de, fr"), None);
        assert_eq!(Locale::negotiate("zh-TW;q=0, en;q=0.1"), Some(Locale::En));
    }

    #[test]
    fn placeholders_are_filled() {
        assert!(Locale::En
            .tf("setup.printed", &[("url", "http://x/setup/abc")])
            .contains("http://x/setup/abc"));
    }
}
