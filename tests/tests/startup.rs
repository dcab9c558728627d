//! `rte serve` answers while its plugins compile: a fresh host with the 18 MB Python plugin
//! (an interpreter to compile, seconds even with an optimised compiler) serves the API at
//! once, readiness lists what is still loading, a saga needing the Python step gets a
//! clear 503 after a bounded wait, a saga of an already loaded plugin runs, and once the
//! Python plugin is in, its saga runs.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use rte_tests::process::HostProcess;

async fn post(url: &str, body: Value) -> Result<(u16, Value)> {
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/transactions?wait=30s"))
        .json(&body)
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

async fn readyz(url: &str) -> Result<(u16, Value)> {
    let resp = reqwest::get(format!("{url}/readyz")).await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

#[tokio::test]
async fn the_api_answers_while_a_large_plugin_compiles() -> Result<()> {
    let python = rte_tests::polyglot::polyglot_dir().join("python.wasm");
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("plugins"))?;
    std::fs::copy(&python, dir.path().join("plugins/python.wasm"))?;
    let cache = dir.path().join("compiled");
    let cache_setting = format!("plugin_cache_dir={}", cache.display());
    // bank.wasm sorts before python.wasm, so it loads first and serves meanwhile.
    let host = HostProcess::start(
        dir.path(),
        &["bank"],
        &[
            &cache_setting,
            "plugin_load_wait=1s",
            "plugin_compile_timeout=15m",
        ],
    )?;

    // The process answers before the Python plugin is in.
    let health = host.get("/healthz").await?;
    assert_eq!(health["status"], "ok", "{health}");
    let (status, ready) = readyz(&host.url).await?;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "loading", "{ready}");
    assert!(
        ready["loading"]
            .as_array()
            .is_some_and(|files| files.iter().any(|f| f == "python.wasm")),
        "{ready}"
    );

    // A saga needing the Python step: a bounded wait (plugin_load_wait), then a 503 that
    // says why, in the API's error shape.
    let body = json!({"steps": ["py_reserve"], "input": {"item": "fig", "stock": 5}});
    let (status, refused) = post(&host.url, body.clone()).await?;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "plugins_loading", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("py_reserve") && message.contains("python.wasm"),
        "{refused}"
    );

    // A saga of the bank plugin (loaded before Python) runs meanwhile.
    host.poll("/api/plugins", |v| {
        v["plugins"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["file"] == "bank.wasm" && p["digest"].is_string())
        })
    })
    .await?;
    let (status, saga) = post(
        &host.url,
        json!({"steps": ["open_account"], "input": {"account_id": "early", "balance": 5}}),
    )
    .await?;
    assert_eq!(
        (status, saga["status"].as_str()),
        (201, Some("COMPLETED")),
        "{saga}"
    );

    // Once everything is in: ready, and the same saga runs.
    let ready = host.poll("/readyz", |v| v["status"] == "ready").await;
    let ready = match ready {
        Ok(v) => v,
        // A slow machine: give the compile more time.
        Err(_) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            host.poll("/readyz", |v| v["status"] == "ready").await?
        }
    };
    assert!(ready["steps"].as_u64().unwrap_or(0) > 6, "{ready}");
    let (status, saga) = post(&host.url, body).await?;
    assert_eq!(
        (status, saga["status"].as_str()),
        (201, Some("COMPLETED")),
        "{saga}"
    );
    host.kill();
    Ok(())
}
