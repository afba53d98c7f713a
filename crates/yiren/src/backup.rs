//! `yiren backup FILE` and `yiren restore FILE`.
//!
//! A backup is a gzip'd tar: `manifest.json` (format, schema version, source engine, time, row
//! counts), `db/<table>.jsonl` (one JSON object per row, integers and strings only — the same on
//! both engines), `files/...`, `themes/...` from the data directory, and `secret.key` (the server
//! key: keep backups as private as the server itself). The database part is read
//! inside one snapshot transaction, so a backup taken while the server runs is consistent.
//! Restore needs an empty database (no rows but the bookkeeping a first start leaves: setup token,
//! schedule times, throttle counters, which it replaces) and writes every row in one transaction,
//! so a failed restore leaves nothing behind. SQLite → PostgreSQL and back is the "move to a
//! bigger machine" path.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use yiren_store::{dump, schema, Db};

use crate::Config;

/// Format version of the archive layout.
pub const FORMAT: u32 = 1;

/// What the archive says about itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub yiren_version: String,
    pub schema_version: i64,
    pub source_engine: String,
    pub created_at: String,
    pub tables: BTreeMap<String, u64>,
    pub files: u64,
}

fn add_dir(
    tar: &mut tar::Builder<GzEncoder<File>>,
    dir: &Path,
    prefix: &str,
) -> anyhow::Result<u64> {
    if !dir.is_dir() {
        return Ok(0);
    }
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(dir)?;
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else if e.file_type()?.is_file() {
                tar.append_path_with_name(&p, Path::new(prefix).join(rel))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn append_bytes(
    tar: &mut tar::Builder<GzEncoder<File>>,
    name: &str,
    data: &[u8],
) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, name, data)?;
    Ok(())
}

/// Write a backup of the database and the data directory's files to `out`.
pub async fn backup(config: &Config, db: &Db, out: &Path) -> anyhow::Result<Manifest> {
    if !db.migrations_applied().await? {
        bail!("the database is not fully migrated; run `yiren migrate` first");
    }
    let tmp = out.with_extension("partial");
    let file = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, flate2::Compression::default()));
    let mut tables = BTreeMap::new();
    {
        let mut snap = dump::snapshot(db).await?;
        for table in schema::TABLES {
            let mut buf = Vec::new();
            let n = dump::read_table(&mut snap, db.engine(), table, |row| {
                serde_json::to_writer(&mut buf, &row)?;
                buf.push(b'\n');
                Ok(())
            })
            .await?;
            append_bytes(&mut tar, &format!("db/{table}.jsonl"), &buf)?;
            tables.insert(table.to_string(), n);
        }
        snap.rollback().await.ok();
    }
    let files = add_dir(&mut tar, &config.files_dir(), "files")?
        + add_dir(&mut tar, &config.themes_dir(), "themes")?;
    // The server key decrypts what is stored encrypted (single sign-on signing keys): without it a
    // restored site could not sign in to the owner's other apps.
    if let Ok(key) = std::fs::read(config.key_file()) {
        append_bytes(&mut tar, "secret.key", &key)?;
    }
    let manifest = Manifest {
        format: FORMAT,
        yiren_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: Db::schema_version(),
        source_engine: db.engine().name().into(),
        created_at: yiren_core::clock::rfc3339(yiren_core::SystemClock.now_ms()),
        tables,
        files,
    };
    append_bytes(
        &mut tar,
        "manifest.json",
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    let gz = tar.into_inner()?;
    let mut file = gz.finish()?;
    file.flush()?;
    file.sync_all()?;
    std::fs::rename(&tmp, out)?;
    Ok(manifest)
}

use yiren_core::Clock as _;

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Restore `input` into an empty database and data directory.
pub async fn restore(config: &Config, db: &Db, input: &Path) -> anyhow::Result<Manifest> {
    for dir in [config.files_dir(), config.themes_dir()] {
        if !dir_is_empty(&dir) {
            bail!(
                "{} is not empty; restore needs an empty data directory",
                dir.display()
            );
        }
    }
    db.migrate().await?;
    {
        let mut conn = db.read().acquire().await?;
        for table in schema::TABLES
            .iter()
            .filter(|t| !schema::HOUSEKEEPING.contains(t))
        {
            if dump::count(&mut conn, table).await? > 0 {
                bail!("the database is not empty (table {table} has rows); restore needs an empty database");
            }
        }
    }
    // First pass: the manifest (it is written last, so read the archive once to find it).
    let manifest: Manifest = {
        let mut ar = tar::Archive::new(GzDecoder::new(
            File::open(input).with_context(|| format!("cannot open {}", input.display()))?,
        ));
        let mut found = None;
        for e in ar.entries()? {
            let mut e = e?;
            if e.path()?.as_os_str() == "manifest.json" {
                let mut s = String::new();
                e.read_to_string(&mut s)?;
                found = Some(serde_json::from_str(&s).context("manifest.json is not valid")?);
            }
        }
        found.context("this file is not a Yiren backup (no manifest.json)")?
    };
    if manifest.format != FORMAT {
        bail!(
            "backup format {} is not supported by this version (expects {FORMAT})",
            manifest.format
        );
    }
    if manifest.schema_version != Db::schema_version() {
        bail!("the backup's schema version {} differs from this binary's {}; restore with the Yiren version that made it, then upgrade", manifest.schema_version, Db::schema_version());
    }
    // Second pass: rows into one transaction, files into place.
    let mut rows: BTreeMap<String, Vec<serde_json::Map<String, serde_json::Value>>> =
        BTreeMap::new();
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut ar = tar::Archive::new(GzDecoder::new(File::open(input)?));
    for e in ar.entries()? {
        let mut e = e?;
        let path = e.path()?.into_owned();
        let name = path.to_string_lossy().to_string();
        if let Some(table) = name
            .strip_prefix("db/")
            .and_then(|n| n.strip_suffix(".jsonl"))
        {
            if !schema::TABLES.contains(&table) {
                bail!("the backup holds an unknown table {table}");
            }
            let mut list = Vec::new();
            for line in BufReader::new(&mut e).lines() {
                let line = line?;
                if !line.is_empty() {
                    list.push(
                        serde_json::from_str(&line)
                            .with_context(|| format!("a row of {table} is not valid JSON"))?,
                    );
                }
            }
            rows.insert(table.to_string(), list);
        } else if name == "secret.key" {
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            files.push((path, data));
        } else if name.starts_with("files/") || name.starts_with("themes/") {
            if path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                bail!("the backup holds an unsafe path {name}");
            }
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            files.push((path, data));
        }
    }
    let mut tx = db.begin().await?;
    // A server started once on this database left bookkeeping (a setup token, schedule times):
    // the backup's own rows replace it.
    for table in schema::HOUSEKEEPING.iter().rev() {
        dump::clear(&mut tx, table).await?;
    }
    for table in schema::TABLES {
        let cols = schema::columns(&mut tx, db.engine(), table).await?;
        for row in rows.get(*table).map(Vec::as_slice).unwrap_or(&[]) {
            dump::insert_row(&mut tx, table, &cols, row)
                .await
                .with_context(|| format!("cannot restore a row of {table}"))?;
        }
    }
    tx.commit().await?;
    for (rel, data) in files {
        let dest = config.data_dir.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, data)?;
        #[cfg(unix)]
        if rel.as_os_str() == "secret.key" {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(manifest)
}
