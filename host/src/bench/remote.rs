//! The throughput run against a running host: each worker keeps one HTTP/1.1 connection
//! and starts sagas with `POST /api/transactions?wait=…`, which answers at the saga's end.
//!
//! A few lines of HTTP over a `TcpStream` keep the host free of an HTTP client dependency;
//! only plain `http://` is spoken.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{BenchArgs, Finished, ThroughputReport, baseline, fails, saga_steps, summarise};
use crate::engine::TxStatus;
use crate::store::{SqlStore, TxStore};

/// Largest response body read.
const MAX_BODY: usize = 16 << 20;

pub(super) async fn throughput(args: &BenchArgs, url: &str) -> anyhow::Result<ThroughputReport> {
    let authority = url
        .strip_prefix("http://")
        .with_context(|| format!("--url `{url}` must start with http://"))?
        .trim_end_matches('/')
        .to_string();
    // One saga first: it checks the host answers and has the steps, and warms it up.
    let mut probe = Client::connect(&authority, args.admin_token.clone()).await?;
    let first = probe.saga(args, 0).await?;
    if first.status.is_none() {
        bail!(
            "the host at {url} did not run a bench saga: {}",
            first.error.unwrap_or_default()
        );
    }
    // Then a round at full concurrency, unmeasured: the host opens its database connections
    // under load, which would otherwise land in the first measured seconds.
    let warmup = (0..args.concurrency).map(|j| {
        let (args, authority) = (args.clone(), authority.clone());
        async move {
            let mut client = Client::connect(&authority, args.admin_token.clone()).await?;
            client.saga(&args, args.sagas + 1 + j).await
        }
    });
    for warmed in futures::future::join_all(warmup).await {
        warmed?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.min(args.sagas))
        .map(|_| {
            let (args, next, authority) = (args.clone(), next.clone(), authority.clone());
            tokio::spawn(async move {
                let mut client = Client::connect(&authority, args.admin_token.clone()).await?;
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.sagas {
                        return anyhow::Ok(done);
                    }
                    done.push(client.saga(&args, i + 1).await?);
                }
            })
        })
        .collect();
    let mut finished = Vec::with_capacity(args.sagas);
    for w in workers {
        finished.extend(w.await??);
    }
    let elapsed = started.elapsed();
    let mut report = summarise(args, &finished, elapsed);
    report.engine = url.to_string();
    report.store = "the host's".into();
    report.locks = "the host's".into();
    // The host's commits cannot be counted from here; the raw rate can, given its database.
    if let Some(db) = &args.database_url {
        let sql = SqlStore::connect_with(db, &super::bench_store_options()).await?;
        let window = elapsed.clamp(Duration::from_secs(1), Duration::from_secs(10));
        report.store = sql.summary();
        report.baseline_commits_per_s =
            Some(baseline(sql.pool(), sql.dialect(), args.concurrency, window).await?);
        sql.pool().close().await;
    }
    Ok(report)
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    conn: BufReader<TcpStream>,
    authority: String,
    token: Option<String>,
}

impl Client {
    async fn connect(authority: &str, token: Option<String>) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("cannot connect to {authority}"))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            conn: BufReader::new(stream),
            authority: authority.to_string(),
            token,
        })
    }

    /// Start bench saga `i` and wait for its end.
    async fn saga(&mut self, args: &BenchArgs, i: usize) -> anyhow::Result<Finished> {
        let body = json!({
            "tx_type": "bench",
            "steps": saga_steps(args, i),
            "input": {"n": i, "key": format!("bench-{i}")},
            "lock_keys": [format!("bench:{}", uuid::Uuid::now_v7().simple())],
        });
        let started = Instant::now();
        let (code, reply) = self.post("/api/transactions?wait=300s", &body).await?;
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        let status = reply
            .get("status")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<TxStatus>().ok());
        let error = match code {
            200 | 201 => reply
                .get("last_error")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => Some(format!("HTTP {code}: {reply}")),
        };
        Ok(Finished {
            latency_ms,
            status: status.filter(|_| code < 300),
            planned_failure: fails(i, args.fail_ratio),
            error,
        })
    }

    async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let body = serde_json::to_vec(body)?;
        let auth = self
            .token
            .as_deref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{auth}\r\n",
            self.authority,
            body.len()
        );
        let stream = self.conn.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        self.response().await.context("reading the host's response")
    }

    async fn response(&mut self) -> anyhow::Result<(u16, Value)> {
        let mut line = String::new();
        self.conn.read_line(&mut line).await?;
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("not an HTTP response: `{}`", line.trim()))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            if self.conn.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        let body = if chunked {
            self.chunked_body().await?
        } else {
            let n = length.context("response has no length")?;
            if n > MAX_BODY {
                bail!("response of {n} bytes is too large");
            }
            let mut body = vec![0; n];
            self.conn.read_exact(&mut body).await?;
            body
        };
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((code, value))
    }

    async fn chunked_body(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.conn.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .context("bad chunk size")?;
            if body.len() + size > MAX_BODY {
                bail!("response is too large");
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.conn.read_exact(&mut body[start..]).await?;
            line.clear();
            self.conn.read_line(&mut line).await?;
            if size == 0 {
                return Ok(body);
            }
        }
    }
}
