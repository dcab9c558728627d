//! The host process's own limits, through a real `rte serve`: the cap on connections served
//! at once, and memory handed back after a spike.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use rte_tests::process::HostProcess;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Open a connection to the host at `url` and send `request` (a whole HTTP/1.1 request).
async fn send(url: &str, request: &str) -> Result<TcpStream> {
    let mut s = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .context("connecting to the host")?;
    s.write_all(request.as_bytes())
        .await
        .context("sending a request")?;
    Ok(s)
}

/// Read from `s` until the response's head has arrived (or `deadline` passed); returns it.
async fn response_head(s: &mut TcpStream, deadline: Duration) -> Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(deadline, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.context("reading a response")?;
            ensure!(n > 0, "the host closed the connection before answering");
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    })
    .await
    .context("no response in time")??;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// With `server_max_connections = 4`, four open event streams fill the cap: connections past
/// it are accepted by the kernel but not served, the host stays up, and when the streams
/// close every waiting connection is served in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_until_others_close() -> Result<()> {
    const CAP: usize = 4;
    let dir = tempfile::tempdir()?;
    let mut host =
        HostProcess::start(dir.path(), &[], &[&format!("server_max_connections={CAP}")])?;
    host.get("/healthz").await?;

    // Fill the cap with event streams, which stay open (a slow client is cut off at the
    // header-read timeout; a stream is not).
    let mut streams = Vec::new();
    for _ in 0..CAP {
        let mut s = send(
            &host.url,
            "GET /api/events/stream HTTP/1.1\r\nHost: rte\r\n\r\n",
        )
        .await?;
        let head = response_head(&mut s, Duration::from_secs(30)).await?;
        ensure!(head.starts_with("HTTP/1.1 200"), "event stream: {head}");
        streams.push(s);
    }

    // Further clients get through the kernel's backlog, and no answer while the cap is full.
    let mut waiting = Vec::new();
    for _ in 0..8 {
        waiting.push(
            send(
                &host.url,
                "GET /healthz HTTP/1.1\r\nHost: rte\r\nConnection: close\r\n\r\n",
            )
            .await?,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in &mut waiting {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(10), s.read(&mut byte)).await {
            Err(_) => {}
            Ok(read) => bail!("a connection past the cap was served or closed: {read:?}"),
        }
    }
    ensure!(host.is_running(), "the host died at its connection cap");

    // Closing the streams frees their places: every waiting client is answered.
    drop(streams);
    for s in &mut waiting {
        let head = response_head(s, Duration::from_secs(60)).await?;
        ensure!(head.starts_with("HTTP/1.1 200"), "after the cap: {head}");
    }
    drop(waiting);
    ensure!(host.get("/healthz").await?["status"] == "ok");
    ensure!(host.is_running());
    Ok(())
}

/// Resident memory of the host settles back near where it was before a spike: 24 sagas
/// whose steps each touch 48 MiB of linear memory, six at a time, raise it by hundreds of
/// MiB, and once they end it falls back to within 32 MiB of its level after a warm-up burst
/// of the same sagas touching 1 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_after_a_spike() -> Result<()> {
    const SAGAS: usize = 24;
    const AT_ONCE: usize = 6;
    const SPIKE_MB: u64 = 48;
    const SLACK: u64 = 32 << 20;
    let dir = tempfile::tempdir()?;
    let host = HostProcess::start(dir.path(), &["testkit"], &[])?;
    host.poll("/api/plugins", |v| v.to_string().contains("test_alloc"))
        .await?;
    let http = reqwest::Client::new();
    let burst = |mb: u64| {
        let http = &http;
        let url = format!("{}/api/transactions?wait=60s", host.url);
        futures::stream::iter(0..SAGAS)
            .map(move |_| {
                let url = url.clone();
                async move {
                    let v: serde_json::Value = http
                        .post(&url)
                        .json(&json!({"steps": ["test_alloc"], "input": {"alloc_mb": mb}}))
                        .send()
                        .await?
                        .json()
                        .await?;
                    ensure!(v["status"] == "COMPLETED", "{v}");
                    ensure!(v["output"]["touched_mb"] == mb, "{v}");
                    Ok(())
                }
            })
            .buffer_unordered(AT_ONCE)
            .collect::<Vec<Result<()>>>()
    };

    for done in burst(1).await {
        done?;
    }
    let baseline = host.memory("VmRSS")?;
    for done in burst(SPIKE_MB).await {
        done?;
    }
    let peak = host.memory("VmHWM")?;
    ensure!(
        peak > baseline + ((2 * SPIKE_MB) << 20),
        "the burst made no spike: {} MiB at peak, {} MiB before",
        peak >> 20,
        baseline >> 20
    );
    let mut now = host.memory("VmRSS")?;
    for _ in 0..300 {
        if now <= baseline + SLACK {
            eprintln!(
                "resident: {} MiB before, {} MiB at peak, {} MiB after",
                baseline >> 20,
                peak >> 20,
                now >> 20
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = host.memory("VmRSS")?;
    }
    bail!(
        "resident memory stayed at {} MiB after the spike ({} MiB at peak, {} MiB before)",
        now >> 20,
        peak >> 20,
        baseline >> 20
    )
}
