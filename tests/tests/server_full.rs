//! A database server out of connections makes sagas wait, not fail: while PostgreSQL
//! (53300) or MariaDB (1040) refuses every new connection, sagas in flight hold where they
//! are without spending their retries, requests get a clear `503 unavailable`, and once
//! connections free up every saga completes, each step counted once.
//!
//! Its own test binary: filling the server's connections would starve tests running
//! beside it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rte_tests::{Backend, HostOptions, TestHost};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection, Executor, Row};

/// Sagas in flight when the server fills up.
const SAGAS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_server_makes_sagas_wait_not_fail() -> Result<()> {
    for backend in rte_tests::backends() {
        if backend == Backend::Sqlite {
            continue;
        }
        let h = TestHost::start(HostOptions {
            backend,
            configure: |c| {
                c.database_max_connections = 4;
                c.step_timeout = Duration::from_secs(10);
            },
            ..HostOptions::default()
        })
        .await?;
        let warm = h.run_saga(json!({"steps": ["test_ok"]})).await?;
        assert_eq!(warm["status"], "COMPLETED", "{warm}");

        // Sagas that sleep in their first step, then read and write plugin state.
        let mut ids = Vec::new();
        for i in 0..SAGAS {
            let (status, v) = h
                .post(
                    "/api/transactions",
                    json!({
                        "steps": ["test_sleep", "test_kv_counter", "test_ok"],
                        "input": {"sleep_ms": 1500, "key": format!("full-{i}")}
                    }),
                )
                .await?;
            assert_eq!(status, 201, "{v}");
            ids.push(v["tx_id"].as_str().context("tx_id")?.to_string());
        }

        let database = database_name(&h);
        let mut hog = Hog::fill(backend, &database).await?;
        eprintln!(
            "{backend:?}: server full with {} extra connections (last refusal: {})",
            hog.conns.len(),
            hog.refusal
        );

        // While full: a request the host cannot serve gets a clear answer, never a 500.
        let (status, body) = h.get(&format!("/api/transactions/{}", ids[0])).await?;
        assert!(
            status == 503 && body["error"]["code"] == "unavailable",
            "{backend:?}: a read while the server is full: {status} {body}"
        );
        // The sleeps end and the steps after them meet the full server.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            hog.host_connections().await?,
            0,
            "{backend:?}: the host got no connection while the server was full"
        );
        hog.release().await;

        for id in &ids {
            let v = wait_terminal(&h, id).await?;
            assert_eq!(v["status"], "COMPLETED", "{backend:?}: {v}");
            let steps = v["steps"].as_array().context("steps")?;
            for step in steps {
                assert_eq!(
                    step["attempts"], 1,
                    "{backend:?}: waiting for the store spent no retries: {v}"
                );
            }
            assert_eq!(steps[1]["output"]["count"], 1, "{backend:?}: {v}");
        }
        // Each counter moved exactly once: the next increment makes it two.
        for i in 0..SAGAS {
            let v = h
                .run_saga(
                    json!({"steps": ["test_kv_counter"], "input": {"key": format!("full-{i}")}}),
                )
                .await?;
            assert_eq!(v["steps"][0]["output"]["count"], 2, "{backend:?}: {v}");
        }
        h.stop().await;
    }
    Ok(())
}

/// The name of the host's database, from its URL.
fn database_name(h: &TestHost) -> String {
    let url = &h.host.config.database_url;
    url.rsplit('/').next().unwrap_or_default().to_string()
}

/// Connections taking every slot the server has, the host's own cut off first.
struct Hog {
    backend: Backend,
    database: String,
    conns: Vec<AnyConnection>,
    /// The server's answer when no slot was left.
    refusal: String,
}

impl Hog {
    /// Cut the host's connections to `database` and open connections until the server
    /// refuses; again until the host holds none.
    async fn fill(backend: Backend, database: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let mut hog = Self {
            backend,
            database: database.to_string(),
            conns: Vec::new(),
            refusal: String::new(),
        };
        for _ in 0..10 {
            // The first connection keeps a slot for the queries below.
            if hog.conns.is_empty() {
                hog.conns
                    .push(AnyConnection::connect(hog.admin_url()).await?);
            }
            hog.cut_host().await?;
            hog.take_free_slots().await?;
            if hog.host_connections().await? == 0 {
                return Ok(hog);
            }
        }
        bail!("the host kept reconnecting; the server could not be filled")
    }

    fn admin_url(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "postgres://postgres@127.0.0.1:5432/postgres",
            _ => "mysql://root@127.0.0.1:3306/test",
        }
    }

    /// The server-side ids of the host's connections.
    async fn host_sessions(&mut self) -> Result<Vec<i64>> {
        let database = self.database.clone();
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT pid::bigint FROM pg_stat_activity WHERE datname = $1 \
                 AND pid <> pg_backend_pid()"
            }
            _ => {
                "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = ? \
                 AND id <> CONNECTION_ID()"
            }
        };
        let conn = self.conns.first_mut().context("no admin connection")?;
        let rows = sqlx::query(sql).bind(database).fetch_all(conn).await?;
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    async fn host_connections(&mut self) -> Result<usize> {
        Ok(self.host_sessions().await?.len())
    }

    async fn cut_host(&mut self) -> Result<()> {
        for id in self.host_sessions().await? {
            let sql = match self.backend {
                Backend::Postgres => format!("SELECT pg_terminate_backend({id})"),
                _ => format!("KILL {id}"),
            };
            // A session that ended meanwhile is fine.
            let _ = self.conns[0].execute(sql.as_str()).await;
        }
        Ok(())
    }

    /// Open connections until the server refuses for want of slots.
    async fn take_free_slots(&mut self) -> Result<()> {
        for _ in 0..2000 {
            match AnyConnection::connect(self.admin_url()).await {
                Ok(conn) => self.conns.push(conn),
                Err(sqlx::Error::Database(e)) if out_of_connections(e.as_ref()) => {
                    self.refusal = e.message().to_string();
                    return Ok(());
                }
                Err(e) => bail!("filling the server's connections: {e:?}"),
            }
        }
        bail!("the server accepted 2000 connections without refusing one")
    }

    async fn release(self) {
        for conn in self.conns {
            let _ = conn.close().await;
        }
    }
}

/// PostgreSQL's 53300 or MySQL's error 1040.
fn out_of_connections(e: &dyn sqlx::error::DatabaseError) -> bool {
    match e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        Some(my) => my.number() == 1040,
        None => e.code().as_deref() == Some("53300"),
    }
}

/// Poll a saga until it ends (a minute at most).
async fn wait_terminal(h: &TestHost, id: &str) -> Result<Value> {
    for _ in 0..600 {
        let (status, v) = h.get(&format!("/api/transactions/{id}")).await?;
        if status == 200
            && matches!(
                v["status"].as_str(),
                Some("COMPLETED" | "FAILED" | "COMPENSATED" | "COMPENSATION_FAILED" | "TIMEOUT")
            )
        {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("saga {id} did not end within a minute")
}
