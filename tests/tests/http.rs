//! Outbound HTTP from a plugin (`http_call`): allowed only to the hosts in the plugin's
//! manifest, with the saga's `traceparent` passed on.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use rte_tests::{HostOptions, TestHost};
use serde_json::{Value, json};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One request an upstream server received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A loopback HTTP server that records every request and answers `200 {"stock":7}` to a
/// GET, or echoes a POST's body.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    async fn start() -> anyhow::Result<Self> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let reply = match method {
                    Method::POST => body.clone(),
                    _ => Bytes::from_static(br#"{"stock":7}"#),
                };
                record.lock().unwrap().push(Seen {
                    method,
                    path: uri.path().to_string(),
                    headers,
                    body,
                });
                reply
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { port, seen })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A host with the `http` plugin allowed to call only `allowed`.
async fn host_allowing(allowed: &Upstream) -> anyhow::Result<TestHost> {
    let manifest = format!("[http]\nallow = [\"127.0.0.1:{}\"]\n", allowed.port);
    TestHost::start(HostOptions {
        plugins: vec!["http", "testkit"],
        extra_files: vec![("http.toml".into(), manifest.into_bytes())],
        ..HostOptions::default()
    })
    .await
}

/// Run a saga with `traceparent` set on the request that starts it.
async fn run_traced(h: &TestHost, body: Value) -> anyhow::Result<Value> {
    let resp = h
        .http
        .post(format!("{}/api/transactions?wait=60s", h.url))
        .header("traceparent", TRACEPARENT)
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "starting a saga: {resp:?}");
    Ok(resp.json().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_call_completes_and_carries_the_traceparent() -> anyhow::Result<()> {
    let upstream = Upstream::start().await?;
    let h = host_allowing(&upstream).await?;
    let url = format!("http://127.0.0.1:{}/stock/sku-1", upstream.port);
    let v = run_traced(&h, json!({"steps": ["http_call"], "input": {"url": url}})).await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["output"]["status"], 200, "{v}");
    assert_eq!(v["output"]["body"], r#"{"stock":7}"#, "{v}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].path, "/stock/sku-1");
    let traceparent = seen[0]
        .headers
        .get("traceparent")
        .map(|v| v.to_str().unwrap());
    assert_eq!(
        traceparent.and_then(|t| t.split('-').nth(1)),
        TRACEPARENT.split('-').nth(1),
        "the upstream sees the saga's trace id: {traceparent:?}"
    );

    // With a `body` input the step POSTs it as JSON.
    let v = h
        .run_saga(json!({"steps": ["http_call"], "input": {"url": url, "body": {"sku": "sku-1", "qty": 2}}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["output"]["status"], 200, "{v}");
    let echoed: Value = serde_json::from_str(v["output"]["body"].as_str().unwrap())?;
    assert_eq!(echoed, json!({"sku": "sku-1", "qty": 2}));
    let post = &upstream.seen()[1];
    assert_eq!(post.method, Method::POST);
    assert_eq!(post.headers["content-type"], "application/json");
    assert_eq!(serde_json::from_slice::<Value>(&post.body)?, echoed);
    assert!(
        post.headers.get("traceparent").is_none(),
        "a saga started without a traceparent sends none"
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outside_the_allow_list_fails_permanently() -> anyhow::Result<()> {
    let allowed = Upstream::start().await?;
    let other = Upstream::start().await?;
    let h = host_allowing(&allowed).await?;
    let url = format!("http://127.0.0.1:{}/stock/sku-1", other.port);
    let v = h
        .run_saga(json!({"steps": ["test_ok", "http_call"], "input": {"url": url}}))
        .await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    let step = &v["steps"][1];
    assert_eq!(step["status"], "FAILED", "{v}");
    assert!(step["error"].as_str().unwrap().contains("denied"), "{v}");
    assert_eq!(step["attempts"], 1, "a denied request is not retried");
    assert!(other.seen().is_empty(), "no request reached the other port");

    // Without a step to compensate the saga ends FAILED, and the host keeps serving.
    let v = h
        .run_saga(json!({"steps": ["http_call"], "input": {"url": url}}))
        .await?;
    assert_eq!(v["status"], "FAILED", "{v}");
    let (status, _) = h.get("/healthz").await?;
    assert_eq!(status, 200);
    let url = format!("http://127.0.0.1:{}/", allowed.port);
    let v = h
        .run_saga(json!({"steps": ["http_call"], "input": {"url": url}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    h.stop().await;
    Ok(())
}
