//! The admin REST API through a real host: the seed's curl examples, idempotent starts,
//! access control, the live event stream, events across hosts, and subscribers that
//! misbehave without slowing sagas.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rte_tests::rte_host::store::now_ms;
use rte_tests::{HostOptions, TestHost, backends, fresh_database, services_required};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_curl_examples_work_as_written() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    for i in 0..3 {
        h.run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": format!("none-{i}"), "to_account": "x", "amount": 1, "currency": "USD"}}))
            .await?;
    }
    h.run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    // curl "http://localhost:8080/api/transactions?status=FAILED&page=1&page_size=20"
    let (status, page) = h
        .get("/api/transactions?status=FAILED&page=1&page_size=20")
        .await?;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 3, "{page}");
    assert_eq!(page["page"], 1);
    assert_eq!(page["page_size"], 20);
    let page2 = h
        .get("/api/transactions?status=FAILED&page=2&page_size=2")
        .await?
        .1;
    assert_eq!(page2["transactions"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.get("/api/transactions?tx_type=adhoc").await?.1["total"],
        1
    );
    let (status, bad) = h.get("/api/transactions?status=DONE").await?;
    assert_eq!(status, 400, "{bad}");
    let from = "2000-01-01T00:00:00Z";
    assert_eq!(
        h.get(&format!("/api/transactions?from={from}")).await?.1["total"],
        4
    );
    assert_eq!(
        h.get("/api/transactions?to=2000-01-01T00:00:00Z").await?.1["total"],
        0
    );
    // curl -X POST ".../api/transactions/tx-123/force-complete" -d '{"reason": "manual intervention"}'
    let tx_id = page["transactions"][0]["tx_id"].as_str().unwrap();
    let (status, done) = h
        .post(
            &format!("/api/transactions/{tx_id}/force-complete"),
            json!({"reason": "manual intervention"}),
        )
        .await?;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["history"][0]["kind"], "force_complete");
    let (status, refused) = h
        .post(
            &format!("/api/transactions/{tx_id}/force-complete"),
            json!({"reason": "again"}),
        )
        .await?;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{refused}"
    );
    let (status, _) = h
        .post(
            "/api/transactions/nope/force-cancel",
            json!({"reason": "x"}),
        )
        .await?;
    assert_eq!(status, 404);
    // curl "http://localhost:8080/api/stats"
    let (_, stats) = h.get("/api/stats").await?;
    assert_eq!(stats["total_transactions"], 4, "{stats}");
    assert_eq!(stats["completed_transactions"], 2);
    assert_eq!(stats["failed_transactions"], 2);
    assert_eq!(stats["by_type"]["fund_transfer"]["FAILED"], 2);
    // The rest of the surface answers in its documented shape.
    assert!(h.get("/api/sagas").await?.1["sagas"]["fund_transfer"]["steps"].is_array());
    assert!(h.get("/api/stats/timeline?hours=1").await?.1["points"].is_array());
    assert!(h.get("/api/recovery/stats").await?.1["interval_ms"].is_u64());
    assert!(h.get("/api/plugins").await?.1["plugins"].is_array());
    assert!(h.get("/api/circuit-breakers").await?.1["circuit_breakers"].is_array());
    assert!(
        h.get("/api/events?limit=5").await?.1["events"]
            .as_array()
            .unwrap()
            .len()
            <= 5
    );
    assert_eq!(h.get("/readyz").await?.0, 200);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_post_with_one_idempotency_key_makes_one_saga() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let post = |key: &'static str| {
        h.http
            .post(format!("{}/api/transactions", h.url))
            .header("Idempotency-Key", key)
            .json(&json!({"steps": ["test_kv_counter"], "input": {"key": key}}))
            .send()
    };
    let first = post("order-42").await?;
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await?;
    // Retried sequentially and concurrently: always the first saga, never a second.
    let again = post("order-42").await?;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.json::<Value>().await?["tx_id"], first["tx_id"]);
    let racing = futures::future::join_all((0..8).map(|_| post("order-43"))).await;
    let mut ids = Vec::new();
    for r in racing {
        ids.push(
            r?.json::<Value>().await?["tx_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    h.engine()
        .wait(first["tx_id"].as_str().unwrap(), Duration::from_secs(10))
        .await?;
    assert_eq!(h.get("/api/transactions").await?.1["total"], 2);
    // The key names one request: reused for another saga, it is refused, not answered
    // with the first saga.
    let other = h
        .http
        .post(format!("{}/api/transactions", h.url))
        .header("Idempotency-Key", "order-42")
        .json(&json!({"steps": ["test_kv_counter"], "input": {"key": "something else"}}))
        .send()
        .await?;
    assert_eq!(other.status().as_u16(), 422);
    let other: Value = other.json().await?;
    assert_eq!(other["error"]["code"], "idempotency_key_reused", "{other}");
    let message = other["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("different request"), "{other}");
    // A key that is not visible ASCII is refused, not ignored (ignoring it would let every
    // retry make a new saga).
    let bad = h
        .http
        .post(format!("{}/api/transactions", h.url))
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes("commande-é".as_bytes())?,
        )
        .json(&json!({"steps": ["test_ok"], "input": {}}))
        .send()
        .await?;
    assert_eq!(bad.status().as_u16(), 400);
    let bad: Value = bad.json().await?;
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Idempotency-Key"),
        "{bad}"
    );
    assert_eq!(h.get("/api/transactions").await?.1["total"], 2);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_token_guards_every_api_call() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| c.admin_token = Some("s3cret-token-for-tests".into()),
        ..HostOptions::default()
    })
    .await?;
    let (status, body) = h.get("/api/transactions").await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, _) = h
        .post("/api/transactions", json!({"steps": ["test_ok"]}))
        .await?;
    assert_eq!(status, 401, "nothing is started without the token");
    let wrong = h
        .http
        .get(format!("{}/api/stats", h.url))
        .bearer_auth("s3cret-token-for-tesst")
        .send()
        .await?;
    assert_eq!(wrong.status().as_u16(), 401);
    let right = h
        .http
        .get(format!("{}/api/stats", h.url))
        .bearer_auth("s3cret-token-for-tests")
        .send()
        .await?;
    assert_eq!(right.status().as_u16(), 200);
    assert_eq!(
        h.get("/healthz").await?.0,
        200,
        "health stays open for probes"
    );
    let stream = h
        .http
        .get(format!(
            "{}/api/events/stream?access_token=s3cret-token-for-tests",
            h.url
        ))
        .send()
        .await?;
    assert_eq!(
        stream.status().as_u16(),
        200,
        "the stream takes the token as a query parameter"
    );
    let stream = h
        .http
        .get(format!("{}/api/events/stream?access_token=nope", h.url))
        .send()
        .await?;
    assert_eq!(stream.status().as_u16(), 401);
    // A token with `+ / =` (as base64 makes them) works on the stream once percent-encoded.
    h.stop().await;
    let h = TestHost::start(HostOptions {
        configure: |c| c.admin_token = Some("a+b/c=d-token-for-tests".into()),
        ..HostOptions::default()
    })
    .await?;
    let stream = h
        .http
        .get(format!(
            "{}/api/events/stream?access_token=a%2Bb%2Fc%3Dd-token-for-tests",
            h.url
        ))
        .send()
        .await?;
    assert_eq!(stream.status().as_u16(), 200, "an encoded token is decoded");
    // The query token is accepted only on the stream.
    let (status, _) = h
        .get("/api/stats?access_token=a%2Bb%2Fc%3Dd-token-for-tests")
        .await?;
    assert_eq!(status, 401);
    // CORS is off: no cross-origin grant in any answer.
    let pre = h
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/stats", h.url))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await?;
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_events_live() -> anyhow::Result<()> {
    use futures::StreamExt;
    let h = TestHost::start(HostOptions::default()).await?;
    let resp = h
        .http
        .get(format!("{}/api/events/stream?type=tx.completed", h.url))
        .send()
        .await?;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    let tx_id = v["tx_id"].as_str().unwrap().to_string();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk?));
            if seen.contains(&tx_id) {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("stream ended")
    })
    .await;
    assert!(matches!(found, Ok(Ok(()))), "{seen}");
    assert!(seen.contains("event: tx.completed"), "{seen}");
    assert!(
        !seen.contains("tx.created"),
        "the type filter applies: {seen}"
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_or_sleeping_subscriber_never_stops_sagas() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let events = h.engine().events();
    events.subscribe_all(|_| panic!("a broken subscriber"));
    events.subscribe("tx.completed", |_| {
        std::thread::sleep(Duration::from_secs(3600))
    });
    let completed = Arc::new(AtomicUsize::new(0));
    let counter = completed.clone();
    events.subscribe("tx.completed", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    for _ in 0..20 {
        let v = h
            .run_saga(json!({"steps": ["test_ok"], "input": {}}))
            .await?;
        assert_eq!(v["status"], "COMPLETED");
    }
    for _ in 0..100 {
        if completed.load(Ordering::SeqCst) == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        completed.load(Ordering::SeqCst),
        20,
        "the healthy subscriber saw every completion"
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_shows_every_hosts_events() -> anyhow::Result<()> {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        assert!(
            !services_required(),
            "Redis is required (RTE_REQUIRE_SERVICES=1)"
        );
        return Ok(());
    }
    let prefix = format!("rte-api-{}:", now_ms());
    let a = TestHost::start(HostOptions {
        redis_prefix: Some(prefix.clone()),
        ..HostOptions::default()
    })
    .await?;
    let b = TestHost::start(HostOptions {
        redis_prefix: Some(prefix.clone()),
        ..HostOptions::default()
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = a
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    let tx_id = v["tx_id"].as_str().unwrap();
    let mut found = Value::Null;
    for _ in 0..100 {
        let (_, ev) = b
            .get(&format!("/api/events?tx_id={tx_id}&type=tx.completed"))
            .await?;
        if !ev["events"].as_array().unwrap().is_empty() {
            found = ev;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        found["events"][0]["tx_id"] == tx_id,
        "host B shows host A's events: {found}"
    );
    a.stop().await;
    b.stop().await;
    Ok(())
}

/// A saga started on one host is awaited on another (`GET /api/transactions/{id}?wait=`):
/// the waiting host is woken by the saga's end event shared through the database
/// (PostgreSQL notifies it; the others read the shared log), and answers with the final
/// saga. A short wait on an unfinished saga answers with it as it is; bad waits are 400s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_is_awaited_on_another_host() -> anyhow::Result<()> {
    for backend in backends() {
        let dir = tempfile::tempdir()?;
        let url = fresh_database(backend, dir.path()).await?;
        let start = |url: String| {
            TestHost::start(HostOptions {
                backend,
                database_url: Some(url),
                ..HostOptions::default()
            })
        };
        let a = start(url.clone()).await?;
        let b = start(url).await?;
        let (status, created) = a
            .post(
                "/api/transactions",
                json!({"steps": ["test_sleep", "test_ok"], "input": {"sleep_ms": 1500}}),
            )
            .await?;
        assert_eq!(status, 201, "{created}");
        let id = created["tx_id"].as_str().unwrap().to_string();

        let (status, now) = b.get(&format!("/api/transactions/{id}?wait=10ms")).await?;
        assert_eq!(status, 200, "{now}");
        assert!(
            ["LOCKED", "EXECUTING"].contains(&now["status"].as_str().unwrap_or_default()),
            "{backend:?}: still running: {now}"
        );

        let (status, done) = b.get(&format!("/api/transactions/{id}?wait=60s")).await?;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["status"], "COMPLETED", "{backend:?}: {done}");
        assert_eq!(done["steps"][1]["status"], "COMPLETED", "{done}");
        assert_eq!(
            b.engine().events().awaited_sagas(),
            0,
            "{backend:?}: no waiter left behind"
        );

        for bad in ["soon", "-1s"] {
            let (status, err) = b.get(&format!("/api/transactions/{id}?wait={bad}")).await?;
            assert_eq!(status, 400, "{bad}: {err}");
            assert_eq!(err["error"]["code"], "invalid_request", "{err}");
        }
        let (status, _) = b
            .get("/api/transactions/00000000-0000-0000-0000-000000000000?wait=1s")
            .await?;
        assert_eq!(status, 404);
        a.stop().await;
        b.stop().await;
    }
    Ok(())
}

/// Without Redis, hosts on one database share their events through it: each host's
/// event log and live stream show the sagas another host ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_on_one_database_share_events_without_redis() -> anyhow::Result<()> {
    use futures::StreamExt;
    for backend in backends() {
        let dir = tempfile::tempdir()?;
        let url = fresh_database(backend, dir.path()).await?;
        let a = TestHost::start(HostOptions {
            backend,
            database_url: Some(url.clone()),
            ..HostOptions::default()
        })
        .await?;
        let b = TestHost::start(HostOptions {
            backend,
            database_url: Some(url.clone()),
            ..HostOptions::default()
        })
        .await?;
        let resp = b
            .http
            .get(format!("{}/api/events/stream?type=tx.completed", b.url))
            .send()
            .await?;
        let mut stream = resp.bytes_stream();
        let v = a
            .run_saga(json!({"steps": ["test_ok"], "input": {}}))
            .await?;
        let tx_id = v["tx_id"].as_str().unwrap().to_string();

        // The live stream on B carries A's completion.
        let mut seen = String::new();
        let streamed = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(chunk) = stream.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk?));
                if seen.contains(&tx_id) {
                    return anyhow::Ok(());
                }
            }
            anyhow::bail!("stream ended")
        })
        .await;
        assert!(
            matches!(streamed, Ok(Ok(()))),
            "{backend:?}: B's stream shows A's saga: {seen}"
        );

        // B's event log holds A's events for that saga, each once (newest first).
        let (_, ev) = b.get(&format!("/api/events?tx_id={tx_id}")).await?;
        let kinds: Vec<&str> = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "tx.completed",
                "step.completed",
                "step.started",
                "tx.created"
            ],
            "{backend:?}: {ev}"
        );
        // And A shows its own events once, not echoed back from the database.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (_, own) = a.get(&format!("/api/events?tx_id={tx_id}")).await?;
        assert_eq!(own["events"].as_array().unwrap().len(), 4, "{own}");

        // Every host answers for all: the hosts, their recovery workers, their plugins.
        let (status, hosts) = b.get("/api/hosts").await?;
        assert_eq!(status, 200, "{hosts}");
        let hosts = hosts["hosts"].as_array().unwrap().clone();
        assert_eq!(hosts.len(), 2, "{backend:?}: {hosts:?}");
        assert_eq!(hosts[0]["this_host"], true, "this host first: {hosts:?}");
        assert_eq!(hosts[1]["this_host"], false);
        for h in &hosts {
            assert!(h["plugins"]["testkit.wasm"].is_string(), "{h}");
            assert!(h["recovery"]["scanned"].is_u64(), "{h}");
        }
        assert_eq!(hosts[0]["recovery"]["running"], true, "{hosts:?}");
        let (_, rec_a) = a.get("/api/recovery/stats").await?;
        let (_, rec_b) = b.get("/api/recovery/stats").await?;
        assert_eq!(rec_a["hosts"].as_array().unwrap().len(), 2, "{rec_a}");
        assert_eq!(rec_a["running"], true);
        for key in ["scanned", "processed", "failed"] {
            assert_eq!(rec_a[key], rec_b[key], "{key}: {rec_a} against {rec_b}");
        }
        // Without Redis each host keeps its own breakers; every host lists them all.
        let (_, br) = a.get("/api/circuit-breakers").await?;
        assert_eq!(br["shared"], false, "{br}");
        let br_hosts = br["hosts"].as_array().unwrap();
        assert_eq!(br_hosts.len(), 2, "{br}");
        assert_eq!(br_hosts[0]["this_host"], true);
        assert!(
            br_hosts[0]["circuit_breakers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["service"] == "testkit:testkit" && b["total_successes"] == 1),
            "A's own breaker saw its step: {br}"
        );
        let (_, br_b) = b.get("/api/circuit-breakers").await?;
        assert_eq!(br_b["hosts"].as_array().unwrap().len(), 2, "{br_b}");
        let (_, plugins) = a.get("/api/plugins").await?;
        assert_eq!(plugins["same_on_every_host"], true, "{plugins}");
        assert_eq!(plugins["hosts"].as_array().unwrap().len(), 2);

        // A host started later sees the recent history of the others, and a host serving
        // other plugins shows up as a difference.
        let c = TestHost::start(HostOptions {
            backend,
            database_url: Some(url),
            plugins: vec!["testkit"],
            ..HostOptions::default()
        })
        .await?;
        let (_, late) = c
            .get(&format!("/api/events?tx_id={tx_id}&type=tx.completed"))
            .await?;
        assert_eq!(late["events"].as_array().unwrap().len(), 1, "{late}");
        let mut differs = Value::Null;
        for _ in 0..50 {
            let (_, p) = a.get("/api/plugins").await?;
            if p["hosts"].as_array().unwrap().len() == 3 {
                differs = p;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(differs["same_on_every_host"], false, "{differs}");
        a.stop().await;
        b.stop().await;
        c.stop().await;
    }
    Ok(())
}

/// A client that never finishes its request headers (slowloris) is cut off, and the host
/// keeps answering everyone else meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = TestHost::start(HostOptions::default()).await?;
    let addr = h.url.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(b"GET /api/stats HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await?;
        slow.push(s);
    }
    assert_eq!(h.get("/healthz").await?.0, 200, "others are still served");
    let limit = rte_tests::rte_host::server::HEADER_READ_TIMEOUT + Duration::from_secs(10);
    for mut s in slow {
        let mut buf = [0u8; 256];
        // Closed (EOF, or a 408 then EOF), not held open for ever.
        let closed = tokio::time::timeout(limit, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow client was held past {limit:?}");
    }
    h.stop().await;
    Ok(())
}

/// A request whose body never finishes is answered `408` in the JSON shape once
/// `request_timeout` passes, while a request that asks to wait longer than that for its
/// saga gets its wait, and the event stream is not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_answered_408() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = TestHost::start(HostOptions {
        configure: |c| c.request_timeout = Duration::from_millis(800),
        ..HostOptions::default()
    })
    .await?;
    let addr = h.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    s.write_all(
        b"POST /api/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"steps\": ",
    )
    .await?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the stalled request was held");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");

    // Waiting for a saga is not cut by the request timeout.
    let v = h
        .post(
            "/api/transactions?wait=20s",
            json!({"steps": ["test_sleep"], "input": {"sleep_ms": 1500}}),
        )
        .await?;
    assert_eq!(v.1["status"], "COMPLETED", "{v:?}");
    assert_eq!(h.get("/healthz").await?.0, 200);
    h.stop().await;
    Ok(())
}

/// An operator's breaker reset is recorded with its reason (in the answer and in a
/// `circuit.reset` event), and the dashboard's shortest range has per-minute buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_reset_records_its_reason_and_timelines_go_down_to_minutes() -> anyhow::Result<()>
{
    let h = TestHost::start(HostOptions::default()).await?;
    h.run_saga(json!({"steps": ["test_fail"], "input": {}}))
        .await?;
    let (status, body) = h
        .post(
            "/api/circuit-breakers/testkit:testkit/reset",
            json!({"reason": "supplier fixed their outage"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "closed");
    assert_eq!(
        body["previous_state"], "closed",
        "one failure does not open it"
    );
    assert_eq!(body["reason"], "supplier fixed their outage");
    let (_, events) = h.get("/api/events?type=circuit.reset").await?;
    let events = events["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["service"], "testkit:testkit");
    assert_eq!(events[0]["data"]["reason"], "supplier fixed their outage");
    assert_eq!(events[0]["data"]["by"], "operator");
    let (status, _) = h
        .post(
            "/api/circuit-breakers/testkit:testkit/reset",
            json!({"reason": "  "}),
        )
        .await?;
    assert_eq!(status, 422, "a blank reason is refused");

    let (_, timeline) = h.get("/api/stats/timeline?minutes=15").await?;
    assert_eq!(timeline["bucket_seconds"], 60, "{timeline}");
    let points = timeline["points"].as_array().unwrap();
    assert!((15..=17).contains(&points.len()), "{}", points.len());
    let finished: u64 = points
        .iter()
        .map(|p| p["completed"].as_u64().unwrap() + p["failed"].as_u64().unwrap())
        .sum();
    assert_eq!(finished, 1, "{timeline}");
    h.stop().await;
    Ok(())
}

/// The console's files: compressed as the browser accepts (brotli first, else gzip),
/// content-hashed scripts and styles cached for good, `index.html` revalidated by ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_compressed_and_cached_by_name() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut req = h.http.get(format!("{}{path}", h.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };

    // index.html: revalidated every time, by its ETag.
    let index = get("/transactions", &[]).await?;
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "cache-control").as_deref(), Some("no-cache"));
    let etag = header(&index, "etag").expect("index.html has an ETag");
    let html = index.text().await?;
    let again = get("/", &[("if-none-match", &etag)]).await?;
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "etag").as_deref(), Some(etag.as_str()));
    assert!(again.bytes().await?.is_empty());

    // The script it names: hashed, immutable, and compressed as asked.
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index.html names its script")
        .to_string();
    assert!(script.starts_with("/assets/app-"), "{script}");
    let plain = get(&script, &[]).await?;
    assert_eq!(plain.status(), 200);
    assert_eq!(header(&plain, "content-encoding"), None);
    assert_eq!(
        header(&plain, "cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    let plain_len = plain.bytes().await?.len();

    let br = get(&script, &[("accept-encoding", "gzip, deflate, br")]).await?;
    assert_eq!(header(&br, "content-encoding").as_deref(), Some("br"));
    assert_eq!(header(&br, "vary").as_deref(), Some("accept-encoding"));
    assert!(
        header(&br, "content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    let br_etag = header(&br, "etag").unwrap();
    assert!(br.bytes().await?.len() < plain_len / 2);

    let gz = get(&script, &[("accept-encoding", "gzip")]).await?;
    assert_eq!(header(&gz, "content-encoding").as_deref(), Some("gzip"));
    assert_ne!(header(&gz, "etag").unwrap(), br_etag, "one tag per coding");
    let body = gz.bytes().await?;
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");

    let not_modified = get(
        &script,
        &[("accept-encoding", "br"), ("if-none-match", &br_etag)],
    )
    .await?;
    assert_eq!(not_modified.status(), 304);
    h.stop().await;
    Ok(())
}

/// The event log is filtered (type, saga, step, time) and paged by the host, over more
/// events than a page holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_filtered_and_paged_by_the_host() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let mut ids = Vec::new();
    for i in 0..30 {
        let v = h
            .run_saga(json!({"steps": ["test_ok", "test_ok"], "input": {"i": i}}))
            .await?;
        ids.push(v["tx_id"].as_str().unwrap().to_string());
    }
    let (_, all) = h.get("/api/events?limit=1000").await?;
    assert!(all["total"].as_u64().unwrap() > 150, "{}", all["total"]);
    assert_eq!(all["log_size"], 1000);

    // Pages of one type, newest first, with the total that match.
    let (_, p1) = h.get("/api/events?type=tx.completed&limit=12").await?;
    let (_, p3) = h
        .get("/api/events?type=tx.completed&limit=12&page=3")
        .await?;
    assert_eq!(p1["total"], 30);
    assert_eq!(p1["events"].as_array().unwrap().len(), 12);
    assert_eq!(p1["events"][0]["tx_id"], ids[29].as_str());
    assert_eq!(p3["page"], 3);
    let last: Vec<&str> = p3["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tx_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        last,
        ids[..6]
            .iter()
            .rev()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let (_, past) = h.get("/api/events?type=tx.completed&page=9").await?;
    assert_eq!(past["events"].as_array().unwrap().len(), 0);
    assert_eq!(past["total"], 30);

    // Several types, a step, part of a saga id.
    let (_, two) = h
        .get("/api/events?type=tx.created,tx.completed&limit=1")
        .await?;
    assert_eq!(two["total"], 60);
    let (_, steps) = h
        .get("/api/events?type=step.completed&step=test_ok&limit=5")
        .await?;
    assert_eq!(steps["total"], 60);
    let part = &ids[7][9..20];
    let (_, one) = h.get(&format!("/api/events?tx={part}")).await?;
    assert!(
        one["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tx_id"] == ids[7].as_str()),
        "{one}"
    );
    assert!(one["total"].as_u64().unwrap() >= 4);

    // A time window: from the 20th saga's end on.
    let (_, ends) = h.get("/api/events?type=tx.completed&limit=100").await?;
    let at = ends["events"][10]["timestamp"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, since) = h
        .get(&format!("/api/events?type=tx.completed&since={at}"))
        .await?;
    assert!(since["total"].as_u64().unwrap() >= 11, "{since}");
    let (_, until) = h
        .get(&format!("/api/events?type=tx.completed&until={at}"))
        .await?;
    assert_eq!(
        since["total"].as_u64().unwrap() + until["total"].as_u64().unwrap(),
        30
    );
    let (status, _) = h.get("/api/events?since=yesterday").await?;
    assert_eq!(status, 400);
    h.stop().await;
    Ok(())
}

/// Bulk actions over a list filter: a preview, then a bounded batch with each saga's
/// outcome, refusals included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_actions_act_on_a_filter_with_a_result_per_saga() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let mut failed = Vec::new();
    for _ in 0..3 {
        let v = h
            .run_saga(json!({"steps": ["test_fail"], "input": {}}))
            .await?;
        assert_eq!(v["status"], "FAILED", "{v}");
        failed.push(v["tx_id"].as_str().unwrap().to_string());
    }
    let done = h
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;

    // Refused outright: no status in the filter, or a cancel without a reason.
    let (status, _) = h
        .post(
            "/api/transactions/bulk",
            json!({"action": "retry", "filter": {}}),
        )
        .await?;
    assert_eq!(status, 422);
    let (status, _) = h
        .post(
            "/api/transactions/bulk",
            json!({"action": "force-cancel", "filter": {"status": ["FAILED"]}}),
        )
        .await?;
    assert_eq!(status, 422);

    // A preview changes nothing.
    let (status, preview) = h
        .post(
            "/api/transactions/bulk",
            json!({"action": "force-cancel", "filter": {"status": ["FAILED", "COMPLETED"]}, "dry_run": true, "limit": 2}),
        )
        .await?;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["matched"], 4);
    assert_eq!(preview["remaining"], 2);
    assert_eq!(preview["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        h.get("/api/transactions?status=FAILED").await?.1["total"],
        3
    );

    // The batch: failed sagas cancelled, the completed one refused, each said so.
    let (status, out) = h
        .post(
            "/api/transactions/bulk",
            json!({"action": "force-cancel", "filter": {"status": ["FAILED", "COMPLETED"]}, "reason": "supplier gone"}),
        )
        .await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["succeeded"], 3, "{out}");
    assert_eq!(out["failed"], 1);
    assert_eq!(out["remaining"], 0);
    for r in out["results"].as_array().unwrap() {
        if r["tx_id"] == done["tx_id"] {
            assert_eq!(r["ok"], false);
            assert_eq!(r["error"]["code"], "conflict", "{r}");
            assert_eq!(r["status_before"], "COMPLETED");
        } else {
            assert!(failed.iter().any(|id| r["tx_id"] == id.as_str()), "{r}");
            assert_eq!(r["ok"], true);
            assert_eq!(r["status"], "CANCELLED", "{r}");
        }
    }
    let (_, one) = h.get(&format!("/api/transactions/{}", failed[0])).await?;
    assert!(
        one["history"].to_string().contains("supplier gone"),
        "the reason is in each saga's history: {one}"
    );
    // The endpoint is in the OpenAPI document.
    let (_, doc) = h.get("/api/openapi.json").await?;
    assert!(doc["paths"]["/api/transactions/bulk"]["post"].is_object());
    h.stop().await;
    Ok(())
}
