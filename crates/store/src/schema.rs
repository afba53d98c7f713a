//! Schema introspection on both engines, normalised so they can be compared, and the table list
//! that backup and restore walk.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::{Engine, StoreResult};

/// Every application table, parents before children (restore inserts in this order).
/// A test fails when a migration adds a table that is not listed here.
pub const TABLES: &[&str] = &[
    "settings",
    "setup_tokens",
    "staff",
    "staff_sessions",
    "login_throttle",
    "api_tokens",
    "idempotency_keys",
    "jobs",
    "job_schedules",
    "customers",
    "customer_identities",
    "customer_passkeys",
    "customer_sessions",
    "login_codes",
    "invite_codes",
    "auth_flows",
    "oidc_keys",
    "oidc_clients",
    "oidc_codes",
    "oidc_tokens",
    "oidc_consents",
    "topics",
    "subscriptions",
    "customer_push",
    "customer_tags",
    "broadcasts",
    "messages",
    "suppressions",
    "send_windows",
    "products",
    "product_translations",
    "product_handles",
    "variants",
    "variant_prices",
    "inventory_adjustments",
    "collections",
    "collection_products",
    "product_media",
    "events",
    "product_imports",
    "counters",
    "discounts",
    "orders",
    "order_lines",
    "discount_uses",
    "order_events",
    "transactions",
    "product_files",
    "entitlements",
    "license_keys",
    "license_instances",
    "campaigns",
    "customer_carts",
    "checkouts",
    "payment_starts",
    "payment_checks",
    "checkout_apps",
    "app_orders",
    "recurring_plans",
    "recurring_periods",
];

/// Tables a server fills on its own at start (a pending setup token, planned schedule times,
/// throttle counters, its first single sign-on signing key, the order number counter a migration
/// starts): a database holding only these still
/// counts as empty for restore, which replaces them with the backup's.
pub const HOUSEKEEPING: &[&str] = &[
    "setup_tokens",
    "login_throttle",
    "job_schedules",
    "oidc_keys",
    "send_windows",
    "counters",
];

/// How a column's values are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ColumnKind {
    /// BIGINT / INTEGER.
    Int,
    /// TEXT.
    Text,
}

/// One column, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    pub not_null: bool,
}

/// One table, normalised so both engines describe the same schema identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Secondary indexes by name: (unique, columns).
    pub indexes: BTreeMap<String, (bool, Vec<String>)>,
    /// Foreign keys as "column -> table.column ON DELETE action".
    pub foreign_keys: Vec<String>,
    /// Number of CHECK constraints.
    pub checks: usize,
}

fn kind_of(declared: &str) -> ColumnKind {
    if declared.to_ascii_uppercase().contains("INT") {
        ColumnKind::Int
    } else {
        ColumnKind::Text
    }
}

/// Names of the application tables present (migration bookkeeping excluded), sorted.
pub async fn table_names(conn: &mut AnyConnection, engine: Engine) -> StoreResult<Vec<String>> {
    let sql = match engine {
        Engine::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '_sqlx_migrations' ORDER BY name"
        }
        Engine::Postgres => {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' ORDER BY table_name"
        }
    };
    Ok(sqlx::query_scalar(sql).fetch_all(conn).await?)
}

/// Columns of one table in declaration order.
pub async fn columns(
    conn: &mut AnyConnection,
    engine: Engine,
    table: &str,
) -> StoreResult<Vec<Column>> {
    let sql = match engine {
        Engine::Sqlite => "SELECT name, type, \"notnull\" FROM pragma_table_info($1) ORDER BY cid",
        Engine::Postgres => {
            "SELECT column_name::text, data_type::text, CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END \
             FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 \
             ORDER BY ordinal_position"
        }
    };
    let rows = sqlx::query(sql).bind(table).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            let not_null: i64 = r
                .try_get::<i64, _>(2)
                .or_else(|_| r.try_get::<i32, _>(2).map(i64::from))?;
            Ok(Column {
                name: r.try_get(0)?,
                kind: kind_of(&r.try_get::<String, _>(1)?),
                not_null: not_null != 0,
            })
        })
        .collect()
}

/// Describe one table.
pub async fn describe(conn: &mut AnyConnection, engine: Engine, table: &str) -> StoreResult<Table> {
    let mut t = Table {
        columns: columns(conn, engine, table).await?,
        ..Default::default()
    };
    match engine {
        Engine::Sqlite => {
            let pk: Vec<(String, i64)> = sqlx::query_as(
                "SELECT name, pk FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            t.primary_key = pk.into_iter().map(|(n, _)| n).collect();
            let idx: Vec<(String, i64, String)> = sqlx::query_as(
                "SELECT name, \"unique\", origin FROM pragma_index_list($1) WHERE origin = 'c'",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            for (name, unique, _) in idx {
                let cols: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                        .bind(&name)
                        .fetch_all(&mut *conn)
                        .await?;
                t.indexes.insert(name, (unique != 0, cols));
            }
            let fks: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list($1) ORDER BY id, seq",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            t.foreign_keys = fks
                .into_iter()
                .map(|(f, tb, to, od)| format!("{f} -> {tb}.{to} ON DELETE {od}"))
                .collect();
            // Listed by column on both engines (SQLite's own order is declaration order, reversed).
            t.foreign_keys.sort();
            let sql: String = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1",
            )
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
            t.checks = sql.to_ascii_uppercase().matches("CHECK (").count();
        }
        Engine::Postgres => {
            let pk: Vec<String> = sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
                 AND a.attnum = ANY(i.indkey) WHERE i.indrelid = (current_schema() || '.' || $1)::regclass \
                 AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            t.primary_key = pk;
            let idx: Vec<(String, bool)> = sqlx::query_as(
                "SELECT c.relname::text, i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = (current_schema() || '.' || $1)::regclass AND NOT i.indisprimary",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            for (name, unique) in idx {
                let cols: Vec<String> = sqlx::query_scalar(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
                     AND a.attnum = ANY(i.indkey) WHERE i.indexrelid = (current_schema() || '.' || $1)::regclass \
                     ORDER BY array_position(i.indkey, a.attnum)",
                )
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
                t.indexes.insert(name, (unique, cols));
            }
            let fks: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT kcu.column_name::text, ccu.table_name::text, ccu.column_name::text, rc.delete_rule::text \
                 FROM information_schema.referential_constraints rc \
                 JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = rc.constraint_name \
                   AND kcu.constraint_schema = rc.constraint_schema \
                 JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = rc.constraint_name \
                   AND ccu.constraint_schema = rc.constraint_schema \
                 WHERE kcu.table_schema = current_schema() AND kcu.table_name = $1 ORDER BY kcu.column_name",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            t.foreign_keys = fks
                .into_iter()
                .map(|(f, tb, to, od)| format!("{f} -> {tb}.{to} ON DELETE {od}"))
                .collect();
            // Listed by column on both engines (SQLite's own order is declaration order, reversed).
            t.foreign_keys.sort();
            let checks: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_constraint WHERE contype = 'c' \
                 AND conrelid = (current_schema() || '.' || $1)::regclass",
            )
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
            t.checks = checks as usize;
        }
    }
    Ok(t)
}

/// Describe every application table.
pub async fn describe_all(
    conn: &mut AnyConnection,
    engine: Engine,
) -> StoreResult<BTreeMap<String, Table>> {
    let mut out = BTreeMap::new();
    for name in table_names(conn, engine).await? {
        let t = describe(conn, engine, &name).await?;
        out.insert(name, t);
    }
    Ok(out)
}
