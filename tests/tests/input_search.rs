//! Search by a saga's input and by any part of its id, on every backend: 100,000 sagas
//! stored before the search existed (indexed by the migration that adds it) and a few
//! recorded through the store afterwards; exact results, the plan of the query the store
//! runs uses the search index, and purged sagas take their index rows with them. Then the
//! same search through the REST API, its errors, and bulk actions on it.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use futures::FutureExt;
use rte_tests::rte_host::engine::TxStatus;
use rte_tests::rte_host::store::{
    AdminReads, Dialect, Housekeeping, InputMatch, SagaStore, SqlStore, StepRecord, TxFilter,
    TxRecord, now_ms,
};
use rte_tests::{Backend, HostOptions, TestHost, backends, fresh_database, repo_root};
use serde_json::{Value, json};
use sqlx::Row;

/// Sagas stored in bulk, before the search existed.
const BULK: u32 = 100_000;
/// Distinct accounts among them: each account is in `BULK / ACCOUNTS` of them.
const ACCOUNTS: u32 = 25_000;
/// Sagas recorded through the store once the search exists.
const RECORDED: u32 = 6;

/// A bulk saga's status: as the bulk SQL below computes it.
fn bulk_status(n: u32) -> TxStatus {
    match n % 3 {
        0 => TxStatus::Completed,
        1 => TxStatus::Failed,
        _ => TxStatus::Compensated,
    }
}

/// A recorded saga: `ACC-1007` for even `i`, urgent for even `i`, its own amount, and a
/// value of each kind that is not searchable.
fn recorded(i: u32, created_at: i64) -> TxRecord {
    let status = [TxStatus::Completed, TxStatus::Failed, TxStatus::Executing][i as usize % 3];
    TxRecord {
        tx_id: format!("rec-{i}"),
        tx_type: "fund_transfer".into(),
        status,
        input: json!({
            "account_id": if i.is_multiple_of(2) { "ACC-1007" } else { "ACC-2000" },
            "amount": 250 + i,
            "currency": "EUR",
            "urgent": i.is_multiple_of(2),
            "memo": {"text": "ACC-1007"},
            "tags": ["ACC-1007"],
            "nothing": null,
        }),
        outputs: serde_json::Map::new(),
        lock_keys: vec![],
        current_step: 0,
        total_steps: 2,
        retry_count: 0,
        max_retries: 3,
        timeout_ms: 60_000,
        deadline_at: created_at + 60_000,
        last_error: None,
        version: 0,
        request_key: None,
        created_at,
        updated_at: created_at,
        completed_at: status.is_terminal().then_some(created_at + 1),
        undo: None,
    }
}

/// Text of a number in this dialect's SQL.
fn num_text(d: Dialect, expr: &str) -> String {
    match d {
        Dialect::MySql => format!("CAST({expr} AS CHAR)"),
        _ => format!("CAST({expr} AS TEXT)"),
    }
}

/// Concatenation in this dialect's SQL.
fn concat(d: Dialect, parts: &[&str]) -> String {
    match d {
        Dialect::MySql => format!("CONCAT({})", parts.join(", ")),
        _ => format!("({})", parts.join(" || ")),
    }
}

/// One statement storing [`BULK`] sagas as the schema before the search held them: saga
/// `n` is `bulk-n`, created at `t0 + n`, finished a millisecond later, in
/// [`bulk_status`], with input `{"account_id": "ACC-(n % ACCOUNTS)", "amount": n % 1000,
/// "currency": "EUR"}` (as the store writes JSON: keys in order, no spaces).
fn bulk_insert(d: Dialect, t0: i64) -> String {
    let digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                  UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                  UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let n = "(a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d)";
    let id = concat(d, &["'bulk-'", &num_text(d, n)]);
    let input = concat(
        d,
        &[
            "'{\"account_id\":\"ACC-'",
            &num_text(d, &format!("({n} % {ACCOUNTS})")),
            "'\",\"amount\":'",
            &num_text(d, &format!("({n} % 1000)")),
            "',\"currency\":\"EUR\"}'",
        ],
    );
    format!(
        "INSERT INTO rte_transactions (tx_id, tx_type, status, input, outputs, lock_keys, \
         current_step, total_steps, retry_count, max_retries, timeout_ms, deadline_at, version, \
         created_at, updated_at, completed_at) \
         SELECT {id}, 'bulk_transfer', \
         CASE {n} % 3 WHEN 0 THEN 'COMPLETED' WHEN 1 THEN 'FAILED' ELSE 'COMPENSATED' END, \
         {input}, '{{}}', '[]', 1, 1, 0, 3, 60000, {t0} + {n} + 60000, 3, {t0} + {n}, \
         {t0} + {n} + 1, {t0} + {n} + 1 \
         FROM {digits} a, {digits} b, {digits} c, {digits} e, {digits} f"
    )
}

/// What a saga is, for working out by hand which sagas a filter selects.
struct Known {
    id: String,
    tx_type: &'static str,
    status: TxStatus,
    created_at: i64,
    /// The input's searchable keys and values.
    input: Vec<(&'static str, String)>,
}

impl Known {
    fn bulk(n: u32, t0: i64) -> Self {
        Self {
            id: format!("bulk-{n}"),
            tx_type: "bulk_transfer",
            status: bulk_status(n),
            created_at: t0 + i64::from(n),
            input: vec![
                ("account_id", format!("ACC-{}", n % ACCOUNTS)),
                ("amount", (n % 1000).to_string()),
                ("currency", "EUR".into()),
            ],
        }
    }

    fn recorded(tx: &TxRecord) -> Self {
        let text = |k: &str| match &tx.input[k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Self {
            id: tx.tx_id.clone(),
            tx_type: "fund_transfer",
            status: tx.status,
            created_at: tx.created_at,
            input: ["account_id", "amount", "currency", "urgent"]
                .into_iter()
                .map(|k| (k, text(k)))
                .collect(),
        }
    }

    fn selected_by(&self, f: &TxFilter) -> bool {
        (f.statuses.is_empty() || f.statuses.contains(&self.status))
            && f.tx_type.as_deref().is_none_or(|t| t == self.tx_type)
            && f.created_after.is_none_or(|t| self.created_at >= t)
            && f.created_before.is_none_or(|t| self.created_at < t)
            && f.tx_id_contains
                .as_deref()
                .is_none_or(|part| self.id.contains(part))
            && f.input
                .iter()
                .all(|m| self.input.iter().any(|(k, v)| *k == m.key && *v == m.value))
    }
}

/// The page `f` selects from `known` (newest first, then by id), and how many in all.
fn expected(known: &[Known], f: &TxFilter) -> (Vec<String>, u64) {
    let mut hits: Vec<&Known> = known.iter().filter(|k| k.selected_by(f)).collect();
    hits.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let page = hits
        .iter()
        .skip(f.offset as usize)
        .take(f.limit as usize)
        .map(|k| k.id.clone())
        .collect();
    (page, hits.len() as u64)
}

fn input(pairs: &[(&str, &str)]) -> Vec<InputMatch> {
    pairs
        .iter()
        .map(|(k, v)| InputMatch::new(*k, *v).unwrap())
        .collect()
}

fn dialect(backend: Backend) -> Dialect {
    match backend {
        Backend::Sqlite => Dialect::Sqlite,
        Backend::Postgres => Dialect::Postgres,
        Backend::MySql => Dialect::MySql,
    }
}

/// Bring a fresh database to the schema before the input search (every migration before
/// 0008), as a host of an earlier version left it.
async fn migrate_before_search(backend: Backend, url: &str) -> anyhow::Result<sqlx::AnyPool> {
    let dir = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
        Backend::MySql => "mysql",
    };
    let mut migrator = sqlx::migrate::Migrator::new(repo_root().join("migrations").join(dir))
        .await
        .context("reading the migrations")?;
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 8)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    sqlx::any::install_default_drivers();
    let url = match backend {
        Backend::Sqlite => format!("{url}?mode=rwc"),
        _ => url.to_string(),
    };
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    migrator
        .run(&pool)
        .await
        .context("migrating to the schema before the search")?;
    Ok(pool)
}

/// Drop a server database made by [`fresh_database`] (the SQLite file goes with its
/// directory).
async fn drop_database(backend: Backend, url: &str) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let name = url.rsplit('/').next().unwrap_or_default();
    let (admin, sql) = match backend {
        Backend::Sqlite => return Ok(()),
        Backend::Postgres => (
            "postgres://postgres@127.0.0.1:5432/postgres",
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ),
        Backend::MySql => (
            "mysql://root@127.0.0.1:3306/test",
            format!("DROP DATABASE IF EXISTS {name}"),
        ),
    };
    let mut conn = sqlx::AnyConnection::connect(admin).await?;
    conn.execute(sql.as_str())
        .await
        .with_context(|| format!("dropping {name}"))?;
    Ok(())
}

/// The database's plans for the list query of `filter` use the search index on the input
/// table and read no table whole.
async fn assert_search_uses_the_index(store: &SqlStore, filter: &TxFilter) -> anyhow::Result<()> {
    let plans = store.explain_list(filter).await?;
    for (what, plan) in [("count", &plans.count), ("page", &plans.page)] {
        println!("{:?} plan of the {what} query:\n{plan}", store.dialect());
        match store.dialect() {
            Dialect::Postgres => {
                assert!(
                    plan.contains("rte_tx_input_search"),
                    "{what} query: the search index is used:\n{plan}"
                );
                assert!(
                    !plan.contains("Seq Scan"),
                    "{what} query: no table is read whole:\n{plan}"
                );
            }
            Dialect::MySql => {
                let doc: Value = serde_json::from_str(plan)
                    .with_context(|| format!("the {what} plan is JSON: {plan}"))?;
                let mut tables = Vec::new();
                collect_tables(&doc, &mut tables);
                let input = tables
                    .iter()
                    .find(|t| t["table_name"] == "rte_tx_input")
                    .with_context(|| format!("{what} query reads rte_tx_input:\n{plan}"))?;
                assert_eq!(
                    input["key"], "rte_tx_input_search",
                    "{what} query: the search index is used:\n{plan}"
                );
                for t in &tables {
                    assert_ne!(
                        t["access_type"], "ALL",
                        "{what} query: no table is read whole:\n{plan}"
                    );
                }
            }
            Dialect::Sqlite => {
                assert!(
                    plan.contains("rte_tx_input_search"),
                    "{what} query: the search index is used:\n{plan}"
                );
                for line in plan.lines() {
                    assert!(
                        !line.starts_with("SCAN "),
                        "{what} query: no table or index is read whole:\n{plan}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// The objects of a MySQL/MariaDB JSON plan that describe a table read.
fn collect_tables<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(map) => {
            if map.contains_key("table_name") {
                out.push(v);
            }
            map.values().for_each(|c| collect_tables(c, out));
        }
        Value::Array(items) => items.iter().for_each(|c| collect_tables(c, out)),
        _ => {}
    }
}

/// The whole scenario on one backend.
async fn search_at_scale(backend: Backend, dir: &Path) -> anyhow::Result<()> {
    let d = dialect(backend);
    let url = fresh_database(backend, dir).await?;
    // The database goes even when an assertion fails.
    let outcome = std::panic::AssertUnwindSafe(search_at_scale_on(backend, d, &url))
        .catch_unwind()
        .await;
    let dropped = drop_database(backend, &url).await;
    match outcome {
        Ok(outcome) => outcome?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
    dropped
}

async fn search_at_scale_on(backend: Backend, d: Dialect, url: &str) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let t0 = now_ms() - 86_400_000;

    // 100,000 sagas stored by the schema before the search: the migration indexes them.
    let old = migrate_before_search(backend, url).await?;
    sqlx::query(&bulk_insert(d, t0))
        .execute(&old)
        .await
        .context("storing the bulk sagas")?;
    old.close().await;
    let store = SqlStore::connect(url).await?;
    store.migrate().await?;
    println!(
        "{backend:?}: bulk stored and indexed after {:?}",
        started.elapsed()
    );

    // A few recorded through the store: it indexes them itself (half with steps, half
    // without: both of the store's ways to create a saga).
    let mut known: Vec<Known> = (0..BULK).map(|n| Known::bulk(n, t0)).collect();
    let now = now_ms();
    for i in 0..RECORDED {
        let tx = recorded(i, now + i64::from(i));
        let steps = if i.is_multiple_of(2) {
            vec![
                StepRecord::pending(&tx.tx_id, 0, "debit"),
                StepRecord::pending(&tx.tx_id, 1, "credit"),
            ]
        } else {
            vec![]
        };
        store.create(&tx, &steps).await?;
        known.push(Known::recorded(&tx));
    }
    // Statistics, as a database that has been running has them (a bulk load is counted
    // only when autovacuum or InnoDB's background statistics next run).
    let analyze = match d {
        Dialect::Postgres => "ANALYZE",
        Dialect::MySql => "ANALYZE TABLE rte_transactions, rte_tx_input",
        Dialect::Sqlite => "ANALYZE",
    };
    sqlx::query(analyze).fetch_all(store.pool()).await?;

    // Every search answers exactly the sagas it selects, newest first.
    let acc = input(&[("account_id", "ACC-1007")]);
    let filters = [
        TxFilter {
            input: acc.clone(),
            ..TxFilter::default()
        },
        TxFilter {
            input: acc.clone(),
            statuses: vec![TxStatus::Failed],
            ..TxFilter::default()
        },
        TxFilter {
            input: acc.clone(),
            tx_type: Some("fund_transfer".into()),
            ..TxFilter::default()
        },
        TxFilter {
            input: input(&[("account_id", "ACC-1007"), ("amount", "250")]),
            ..TxFilter::default()
        },
        TxFilter {
            input: input(&[("urgent", "true")]),
            ..TxFilter::default()
        },
        TxFilter {
            input: input(&[("amount", "7")]),
            offset: 20,
            limit: 10,
            ..TxFilter::default()
        },
        TxFilter {
            input: input(&[("currency", "EUR")]),
            offset: 3,
            limit: 5,
            ..TxFilter::default()
        },
        TxFilter {
            input: input(&[("account_id", "ACC-99999")]),
            ..TxFilter::default()
        },
        // Not searchable: an object, an array and null are not indexed.
        TxFilter {
            input: input(&[("memo", "{\"text\":\"ACC-1007\"}")]),
            ..TxFilter::default()
        },
        TxFilter {
            input: input(&[("tags", "ACC-1007")]),
            ..TxFilter::default()
        },
        TxFilter {
            input: acc.clone(),
            created_after: Some(t0 + 26_007),
            created_before: Some(t0 + 76_007),
            ..TxFilter::default()
        },
        TxFilter {
            input: acc.clone(),
            tx_id_contains: Some("1007".into()),
            ..TxFilter::default()
        },
        TxFilter {
            tx_id_contains: Some("k-1007".into()),
            ..TxFilter::default()
        },
        TxFilter {
            tx_id_contains: Some("-9999".into()),
            statuses: vec![TxStatus::Failed, TxStatus::Completed],
            ..TxFilter::default()
        },
        TxFilter {
            tx_id_contains: Some("ec-".into()),
            ..TxFilter::default()
        },
    ];
    for f in filters {
        let f = TxFilter {
            limit: if f.limit == 0 { 50 } else { f.limit },
            ..f
        };
        let page = store.list(&f).await?;
        let got: Vec<String> = page.items.iter().map(|t| t.tx_id.clone()).collect();
        let (want, total) = expected(&known, &f);
        assert_eq!((&got, page.total), (&want, total), "{backend:?}: {f:?}");
    }
    let (hits, _) = expected(
        &known,
        &TxFilter {
            input: acc.clone(),
            limit: 50,
            ..TxFilter::default()
        },
    );
    assert_eq!(
        hits,
        [
            "rec-4",
            "rec-2",
            "rec-0",
            "bulk-76007",
            "bulk-51007",
            "bulk-26007",
            "bulk-1007"
        ],
        "the bulk and the recorded sagas both count"
    );

    // The query the store runs uses the search index, on its own and with other filters.
    assert_search_uses_the_index(
        &store,
        &TxFilter {
            input: acc.clone(),
            limit: 20,
            ..TxFilter::default()
        },
    )
    .await?;
    assert_search_uses_the_index(
        &store,
        &TxFilter {
            input: acc.clone(),
            statuses: vec![TxStatus::Failed, TxStatus::Compensated],
            limit: 20,
            ..TxFilter::default()
        },
    )
    .await?;

    // Purged sagas take their index rows with them.
    let purged = store.purge_finished(t0 + 1_008 + 1, 5_000).await?;
    assert_eq!(purged, 1_008, "bulk-0 to bulk-1007 finished before");
    known.retain(|k| !(k.id.starts_with("bulk-") && k.created_at <= t0 + 1_007));
    let page = store
        .list(&TxFilter {
            input: acc.clone(),
            limit: 50,
            ..TxFilter::default()
        })
        .await?;
    assert_eq!(page.total, 6, "{backend:?}");
    let orphans: i64 = sqlx::query(
        "SELECT COUNT(*) FROM rte_tx_input WHERE tx_id NOT IN (SELECT tx_id FROM rte_transactions)",
    )
    .fetch_one(store.pool())
    .await?
    .try_get(0)?;
    assert_eq!(
        orphans, 0,
        "{backend:?}: index rows of purged sagas are gone"
    );
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM rte_tx_input")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
    assert_eq!(
        rows as usize,
        known.iter().map(|k| k.input.len()).sum::<usize>(),
        "{backend:?}: one row per searchable key of every saga"
    );

    store.release_idle();
    store.pool().close().await;
    println!("{backend:?}: done after {:?}", started.elapsed());
    Ok(())
}

async fn run_on(backend: Backend) -> anyhow::Result<()> {
    if !backends().contains(&backend) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    search_at_scale(backend, dir.path()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_search_with_100000_sagas_on_postgres_uses_its_index() -> anyhow::Result<()> {
    run_on(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_search_with_100000_sagas_on_mariadb_uses_its_index() -> anyhow::Result<()> {
    run_on(Backend::MySql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_search_with_100000_sagas_on_sqlite_uses_its_index() -> anyhow::Result<()> {
    run_on(Backend::Sqlite).await
}

/// The ids of a list answer, in order.
fn ids(page: &Value) -> Vec<String> {
    page["transactions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["tx_id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_searches_by_input_and_by_any_part_of_the_id() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let mut sagas = Vec::new();
    for (i, account) in ["ACC-1007", "ACC-2000", "ACC-1007", "ACC-1007 "]
        .into_iter()
        .enumerate()
    {
        let step = if i == 2 { "test_fail" } else { "test_ok" };
        let v = h
            .run_saga(json!({"steps": [step], "input": {
                "account_id": account, "amount": 10 + i, "urgent": i == 0, "payee": {"id": "ACC-1007"},
            }}))
            .await?;
        sagas.push(v["tx_id"].as_str().context("an id")?.to_string());
    }
    let list = |query: String| {
        let h = &h;
        async move {
            let (status, page) = h.get(&format!("/api/transactions?{query}")).await?;
            anyhow::ensure!(status == 200, "{query}: {status} {page}");
            Ok::<_, anyhow::Error>(ids(&page))
        }
    };

    // A string, a number, a boolean; with a status; two conditions; a trailing space
    // (percent-encoded) is part of the value.
    assert_eq!(
        list("input.account_id=ACC-1007".into()).await?,
        [sagas[2].as_str(), sagas[0].as_str()]
    );
    assert_eq!(
        list("input.account_id=ACC-1007&status=FAILED".into()).await?,
        [sagas[2].as_str()]
    );
    assert_eq!(list("input.amount=11".into()).await?, [sagas[1].as_str()]);
    assert_eq!(list("input.urgent=true".into()).await?, [sagas[0].as_str()]);
    assert_eq!(
        list("input.account_id=ACC-1007&input.amount=10&page_size=5".into()).await?,
        [sagas[0].as_str()]
    );
    assert_eq!(
        list("input.account_id=ACC-1007%20".into()).await?,
        [sagas[3].as_str()]
    );
    assert!(list("input.payee=ACC-1007".into()).await?.is_empty());
    // Any part of the id, not only its start (the random middle of a UUIDv7).
    let part = &sagas[1][15..30];
    assert_eq!(list(format!("q={part}")).await?, [sagas[1].as_str()]);
    let (_, page) = h
        .get(&format!("/api/transactions?q={part}&input.amount=11"))
        .await?;
    assert_eq!(page["total"], 1, "{page}");

    // Searches no saga could match are refused, in the API's error shape.
    let too_many: Vec<String> = (0..9).map(|i| format!("input.k{i}=v")).collect();
    for (query, says) in [
        ("input.=x".to_string(), "input key cannot be empty"),
        (format!("input.note={}", "x".repeat(256)), "longer than 255"),
        (format!("input.{}=x", "k".repeat(129)), "longer than 128"),
        (too_many.join("&"), "at most 8"),
        (format!("q={}", "a".repeat(65)), "at most 64"),
    ] {
        let (status, body) = h.get(&format!("/api/transactions?{query}")).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {message}");
    }

    // Bulk actions take the same search.
    let (status, preview) = h
        .post(
            "/api/transactions/bulk",
            json!({"action": "retry", "filter": {"status": ["FAILED", "COMPLETED"],
                "input": {"account_id": "ACC-1007"}}, "dry_run": true}),
        )
        .await?;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["matched"], 2, "{preview}");
    let (status, refused) = h
        .post(
            "/api/transactions/bulk",
            json!({"action": "retry", "filter": {"status": ["FAILED"], "input": {"": "x"}}, "dry_run": true}),
        )
        .await?;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("filter.input")),
        "{refused}"
    );

    // The parameter is in the OpenAPI document.
    let (_, doc) = h.get("/api/openapi.json").await?;
    let params = doc["paths"]["/api/transactions"]["get"]["parameters"]
        .as_array()
        .context("the list's parameters")?;
    let names: BTreeSet<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains("input.{key}"), "{names:?}");
    h.stop().await;
    Ok(())
}
