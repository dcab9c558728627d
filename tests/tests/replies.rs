//! Steps that talk to a remote service through NATS JetStream and wait for its reply,
//! against a real `nats-server` and the `remote-ledger` responder: a saga waits and
//! completes with the reply's outputs; an error reply compensates; no reply in time
//! retries and then compensates; duplicate and late replies change nothing; the HTTP
//! completion endpoint completes a wait once, behind the admin token; the outbox sends a
//! committed step's messages exactly once across a host killed between commit and send,
//! and a failed step's never; and 200 sagas waiting while their host is killed all end
//! on the next host, each request published once.

use std::time::Duration;

use anyhow::{Context, Result};
use rte_tests::nats::{NatsServer, RemoteLedger};
use rte_tests::process::HostProcess;
use rte_tests::rte_host::lifecycle::{AttemptOutcome, Phase};
use rte_tests::{Backend, HostOptions, TestHost};
use serde_json::{Value, json};

/// A host on SQLite using `nats` as its broker, timing out waits every 100 ms.
async fn host_on(nats: &NatsServer) -> Result<TestHost> {
    TestHost::start(HostOptions {
        nats_url: Some(nats.url.clone()),
        configure: |c| c.wait_sweep_interval = Duration::from_millis(100),
        ..HostOptions::default()
    })
    .await
}

/// Accounts `from` (100.00) and `to` (0.00).
async fn accounts(h: &TestHost, from: &str, to: &str) -> Result<()> {
    h.open_account(from, 100.0).await?;
    h.open_account(to, 0.0).await
}

fn remote_transfer(from: &str, to: &str, mode: &str, extra: Value) -> Value {
    let mut input =
        json!({"from_account": from, "to_account": to, "amount": 10.0, "remote_mode": mode});
    if let Value::Object(more) = extra {
        input.as_object_mut().unwrap().extend(more);
    }
    json!({"tx_type": "fund_transfer_remote", "input": input})
}

/// A counter of the host's `/metrics`, summed over series whose labels contain `labels`.
async fn metric(h: &TestHost, name: &str, labels: &str) -> Result<f64> {
    let text = h
        .http
        .get(format!("{}/metrics", h.url))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Poll `f` until it holds, for up to `limit`.
async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let end = tokio::time::Instant::now() + limit;
    loop {
        if f().await? {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < end,
            "condition not met in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_step_completes_with_the_remote_answer_and_a_duplicate_changes_nothing()
-> Result<()> {
    let nats = NatsServer::start().await?;
    let h = host_on(&nats).await?;
    let ledger = RemoteLedger::start(&nats, h.dir.path(), 1500).await?;
    accounts(&h, "A", "B").await?;

    let v = h
        .run_saga(remote_transfer("A", "B", "ok", json!({})))
        .await?;
    let tx_id = v["tx_id"].as_str().context("tx_id")?.to_string();
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["output"]["ledger_ref"], format!("L-{tx_id}"), "{v}");
    assert_eq!(h.balance("A").await?, 90.0);
    assert_eq!(h.balance("B").await?, 10.0);
    assert_eq!(ledger.net(&tx_id)?, 1000);
    // The step ended its execute waiting, then on-reply completed the same attempt.
    let (_, steps) = h.engine().get(&tx_id).await?;
    let outcomes: Vec<_> = steps[1]
        .attempt_log
        .iter()
        .map(|a| (a.phase, a.attempt, a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (Phase::Execute, 1, AttemptOutcome::Waiting),
            (Phase::Execute, 1, AttemptOutcome::Completed)
        ]
    );
    let waits = h.engine().store().waits_of(&tx_id).await?;
    assert_eq!(waits.len(), 1);
    assert!(waits[0].replied_at.is_some() && waits[0].closed_at.is_some());
    assert_eq!(nats.stream_messages("RTE_REQUESTS").await?, 1);

    // The ledger answers twice: the second answer is counted and ignored.
    let v = h
        .run_saga(remote_transfer("A", "B", "twice", json!({})))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    eventually(Duration::from_secs(10), async || {
        Ok(metric(&h, "rte_replies_total", "outcome=\"duplicate\"").await? >= 1.0)
    })
    .await?;
    assert_eq!(h.balance("A").await?, 80.0);
    assert_eq!(h.balance("B").await?, 20.0);
    let state = ledger.state()?;
    let deliveries: Vec<u64> = state["requests"]
        .as_object()
        .context("requests")?
        .values()
        .map(|n| n.as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        deliveries,
        vec![1, 1],
        "each request reached the ledger once: {state}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_compensates_and_no_answer_in_time_retries_then_compensates() -> Result<()>
{
    let nats = NatsServer::start().await?;
    let h = host_on(&nats).await?;
    let ledger = RemoteLedger::start(&nats, h.dir.path(), 1500).await?;
    accounts(&h, "A", "B").await?;

    let v = h
        .run_saga(remote_transfer("A", "B", "error", json!({})))
        .await?;
    let tx_id = v["tx_id"].as_str().context("tx_id")?.to_string();
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    assert_eq!(v["steps"][1]["status"], "FAILED", "{v}");
    assert_eq!(v["steps"][1]["failure_kind"], "permanent", "{v}");
    assert!(
        v["steps"][1]["error"]
            .as_str()
            .unwrap_or("")
            .contains("refused the transfer"),
        "{v}"
    );
    assert_eq!(h.balance("A").await?, 100.0);
    assert_eq!(ledger.net(&tx_id)?, 0);

    // Every answer comes after the 300 ms wait: each attempt times out (a new request, a
    // new wait), then the saga compensates, the ledger's recorded transfer reversed.
    let v = h
        .run_saga(remote_transfer(
            "A",
            "B",
            "late",
            json!({"remote_timeout_ms": 300}),
        ))
        .await?;
    let tx_id = v["tx_id"].as_str().context("tx_id")?.to_string();
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    let step = &v["steps"][1];
    assert_eq!(step["status"], "COMPENSATED", "{v}");
    assert_eq!(step["attempts"], 4, "three retries after the first: {v}");
    let (_, steps) = h.engine().get(&tx_id).await?;
    let waited = steps[1]
        .attempt_log
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Waiting)
        .count();
    assert_eq!(
        waited, 5,
        "four execute waits and the reversal's: {steps:?}"
    );
    assert_eq!(h.balance("A").await?, 100.0);
    assert_eq!(h.balance("B").await?, 0.0);
    assert_eq!(
        ledger.net(&tx_id)?,
        0,
        "the reversal undid the late transfer"
    );
    // The late answers arrive after their waits timed out: counted, never applied.
    eventually(Duration::from_secs(10), async || {
        Ok(metric(&h, "rte_replies_total", "outcome=\"late\"").await? >= 4.0)
    })
    .await?;
    assert!(metric(&h, "rte_replies_total", "source=\"deadline\"").await? >= 4.0);
    let (_, after) = h.engine().get(&tx_id).await?;
    assert_eq!(after, steps, "late answers changed nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completion_endpoint_completes_a_wait_once_behind_the_token() -> Result<()> {
    let nats = NatsServer::start().await?;
    let h = TestHost::start(HostOptions {
        nats_url: Some(nats.url.clone()),
        configure: |c| c.admin_token = Some("s3cret-token-for-tests".into()),
        ..HostOptions::default()
    })
    .await?;
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth("s3cret-token-for-tests");
    let post = async |path: &str, body: Value, token: bool| -> Result<(u16, Value)> {
        let mut req = h.http.post(format!("{}{path}", h.url)).json(&body);
        if token {
            req = auth(req);
        }
        let resp = req.send().await?;
        Ok((
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ))
    };
    for (id, balance) in [("A", 100.0), ("B", 0.0)] {
        let (status, v) = post(
            "/api/transactions?wait=30s",
            json!({"tx_type": "open_account", "input": {"account_id": id, "balance": balance}}),
            true,
        )
        .await?;
        assert_eq!(
            (status, v["status"].as_str()),
            (201, Some("COMPLETED")),
            "{v}"
        );
    }
    // No ledger runs: the step waits until someone answers.
    let (status, v) = post(
        "/api/transactions",
        remote_transfer("A", "B", "silent", json!({})),
        true,
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    let tx_id = v["tx_id"].as_str().context("tx_id")?.to_string();
    let mut waits = Value::Null;
    eventually(Duration::from_secs(20), async || {
        let resp = auth(h.http.get(format!("{}/api/waits", h.url)))
            .send()
            .await?;
        waits = resp.json().await?;
        Ok(waits.as_array().is_some_and(|w| !w.is_empty()))
    })
    .await?;
    let wait = &waits[0];
    assert_eq!(wait["tx_id"], tx_id.as_str(), "{waits}");
    assert_eq!(wait["phase"], "execute");
    let cid = wait["correlation_id"].as_str().context("cid")?.to_string();
    assert_eq!(cid, format!("{tx_id}:remote_transfer:do:1"));
    let resp = auth(h.http.get(format!("{}/api/transactions/{tx_id}", h.url)))
        .send()
        .await?;
    let detail: Value = resp.json().await?;
    assert_eq!(detail["steps"][1]["status"], "WAITING", "{detail}");
    assert_eq!(detail["steps"][1]["wait"]["correlation_id"], cid.as_str());

    let path = format!("/api/waits/{cid}/reply");
    let answer =
        json!({"payload": {"ledger_ref": "by-hand"}, "reason": "ledger answered by phone"});
    // Without the token: refused, nothing applied.
    assert_eq!(post(&path, answer.clone(), false).await?.0, 401);
    // Malformed: refused with a clear error.
    let (status, v) = post(&path, json!({"payload": 1, "error": "x"}), true).await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("invalid_reply")),
        "{v}"
    );
    let (status, v) = post(&path, answer.clone(), true).await?;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("recorded")),
        "{v}"
    );
    let (status, v) = post(&path, answer, true).await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("reply_already_recorded")),
        "{v}"
    );
    let (status, _) = post("/api/waits/no-such-wait/reply", json!({"error": "x"}), true).await?;
    assert_eq!(status, 404);
    let resp = auth(
        h.http
            .get(format!("{}/api/transactions/{tx_id}?wait=30s", h.url)),
    )
    .send()
    .await?;
    let v: Value = resp.json().await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["output"]["ledger_ref"], "by-hand", "{v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_publishes_nothing_and_a_committed_one_once() -> Result<()> {
    let nats = NatsServer::start().await?;
    let h = host_on(&nats).await?;
    let v = h
        .run_saga(json!({"steps": ["test_publish"], "input": {"count": 3, "fail": true}}))
        .await?;
    assert_eq!(v["status"], "FAILED", "{v}");
    let v = h
        .run_saga(json!({"steps": ["test_publish", "test_publish"], "input": {"count": 2}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    let tx_id = v["tx_id"].as_str().context("tx_id")?;
    eventually(Duration::from_secs(10), async || {
        Ok(nats.stream_messages("RTE_REQUESTS").await? == 4)
    })
    .await?;
    let outbox = h.engine().store().outbox_of(tx_id).await?;
    assert_eq!(outbox.len(), 4);
    assert!(outbox.iter().all(|(_, sent)| sent.is_some()), "{outbox:?}");
    // Publishing outside the host's subjects fails the step plainly.
    let v = h
        .run_saga(json!({"steps": ["test_publish"], "input": {"subject": "elsewhere.x"}}))
        .await?;
    assert_eq!(v["status"], "FAILED", "{v}");
    assert!(
        v["steps"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("not one of this host's subjects"),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(nats.stream_messages("RTE_REQUESTS").await?, 4);
    Ok(())
}

/// The host is SIGKILLed while a step's messages are committed but the broker stalls
/// (SIGSTOP): after the broker resumes and a new host starts, each is in the stream once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_sends_exactly_once_across_a_host_killed_before_the_send() -> Result<()> {
    let nats = NatsServer::start().await?;
    let dir = tempfile::tempdir()?;
    let settings = [
        format!("nats_url={}", nats.url),
        "wait_sweep_interval=100ms".to_string(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let host = HostProcess::start(dir.path(), &["bank", "testkit"], &settings)?;
    host.get("/healthz").await?;
    // The relay is connected once a first message goes through.
    let client = reqwest::Client::new();
    let start = async |url: &str, body: Value| -> Result<Value> {
        Ok(client
            .post(format!("{url}/api/transactions"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?)
    };
    let first = start(
        &host.url,
        json!({"steps": ["test_publish"], "input": {"count": 1}}),
    )
    .await?;
    let first_id = first["tx_id"].as_str().context("tx_id")?.to_string();
    eventually(Duration::from_secs(20), async || {
        Ok(nats.stream_messages("RTE_REQUESTS").await.unwrap_or(0) == 1)
    })
    .await?;

    nats.pause()?;
    let v = start(
        &host.url,
        json!({"steps": ["test_publish"], "input": {"count": 3}}),
    )
    .await?;
    let tx_id = v["tx_id"].as_str().context("tx_id")?.to_string();
    host.poll(&format!("/api/transactions/{tx_id}"), |v| {
        v["status"] == "COMPLETED"
    })
    .await?;
    // Committed, the sends stalled on the broker: the host dies now.
    host.kill();
    nats.resume()?;
    let host = HostProcess::start(dir.path(), &["bank", "testkit"], &settings)?;
    host.get("/healthz").await?;
    eventually(Duration::from_secs(30), async || {
        Ok(nats.stream_messages("RTE_REQUESTS").await.unwrap_or(0) >= 4)
    })
    .await?;
    // Give a repeat every chance to show up, then count again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(nats.stream_messages("RTE_REQUESTS").await?, 4);
    drop(host);
    let store = rte_tests::rte_host::store::from_url(&format!(
        "sqlite://{}",
        dir.path().join("rte.db").display()
    ))
    .await?;
    let outbox = store.outbox_of(&tx_id).await?;
    assert_eq!(outbox.len(), 3);
    assert!(outbox.iter().all(|(_, sent)| sent.is_some()), "{outbox:?}");
    assert_eq!(store.outbox_of(&first_id).await?.len(), 1);
    Ok(())
}

/// 200 sagas wait for the ledger; their host is killed; the ledger answers while no host
/// runs; a new host takes the replies from the stream and ends every saga, each request
/// published once and the money right to the cent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_waiting_sagas_end_on_the_next_host_after_a_kill() -> Result<()> {
    const SAGAS: usize = 200;
    let nats = NatsServer::start().await?;
    let dir = tempfile::tempdir()?;
    let backend = if rte_tests::backends().contains(&Backend::Postgres) {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let database = rte_tests::fresh_database(backend, dir.path()).await?;
    let settings = [
        format!("nats_url={}", nats.url),
        "wait_sweep_interval=200ms".to_string(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let host = HostProcess::start_on(dir.path(), &database, &["bank"], &settings)?;
    host.get("/healthz").await?;
    let client = reqwest::Client::new();
    for (id, balance) in [("S", 10_000.0), ("D", 0.0)] {
        let v: Value = client
            .post(format!("{}/api/transactions?wait=30s", host.url))
            .json(&json!({"tx_type": "open_account", "input": {"account_id": id, "balance": balance}}))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(v["status"] == "COMPLETED", "{v}");
    }
    let body = remote_transfer("S", "D", "ok", json!({"remote_timeout_ms": 120_000}));
    let mut ids = Vec::with_capacity(SAGAS);
    let starts = futures::future::join_all((0..SAGAS).map(|_| {
        let (client, url, body) = (client.clone(), host.url.clone(), body.clone());
        async move {
            let v: Value = client
                .post(format!("{url}/api/transactions"))
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            v["tx_id"].as_str().map(String::from).context("tx_id")
        }
    }))
    .await;
    for id in starts {
        ids.push(id?);
    }
    // Every saga waits (no ledger yet): no task, no instance, no lock held.
    host.poll("/api/waits", |v| {
        v.as_array().is_some_and(|w| w.len() == SAGAS)
    })
    .await?;
    host.kill();

    let ledger = RemoteLedger::start(&nats, dir.path(), 0).await?;
    eventually(Duration::from_secs(60), async || {
        Ok(ledger.state()?["replies"].as_u64() == Some(SAGAS as u64))
    })
    .await?;
    let host = HostProcess::start_on(dir.path(), &database, &["bank"], &settings)?;
    for id in &ids {
        let v = host
            .poll(&format!("/api/transactions/{id}"), |v| {
                v["status"] == "COMPLETED" || v["status"] == "COMPENSATED"
            })
            .await?;
        assert_eq!(v["status"], "COMPLETED", "{v}");
        assert_eq!(v["output"]["ledger_ref"], format!("L-{id}"), "{v}");
    }
    let state = ledger.state()?;
    let requests = state["requests"].as_object().context("requests")?;
    assert_eq!(requests.len(), SAGAS, "one request per saga: {state}");
    assert!(
        requests.values().all(|n| n == 1),
        "each delivered once: {state}"
    );
    assert_eq!(nats.stream_messages("RTE_REQUESTS").await?, SAGAS as u64);
    let net: i64 = ids.iter().map(|id| ledger.net(id).unwrap_or(0)).sum();
    assert_eq!(net, 1000 * SAGAS as i64);
    for (id, want) in [
        ("S", 10_000.0 - 10.0 * SAGAS as f64),
        ("D", 10.0 * SAGAS as f64),
    ] {
        let v: Value = client
            .post(format!("{}/api/transactions?wait=30s", host.url))
            .json(&json!({"tx_type": "get_balance", "input": {"account_id": id}}))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(v["output"]["balance"], want, "{id}: {v}");
    }
    Ok(())
}

/// Recovery scanning every 100 ms for sagas idle 300 ms leaves a waiting saga alone (no
/// claim, no history), and the wait still completes once answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_does_not_take_a_waiting_saga_for_stuck() -> Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| {
            c.recovery_interval = Duration::from_millis(100);
            c.stuck_threshold = Duration::from_millis(300);
        },
        ..HostOptions::default()
    })
    .await?;
    let (status, v) = h
        .post(
            "/api/transactions",
            json!({"steps": ["test_wait", "test_ok"], "input": {"wait_ms": 60000}}),
        )
        .await?;
    assert_eq!(status, 201, "{v}");
    let tx_id = v["tx_id"].as_str().context("tx_id")?.to_string();
    eventually(Duration::from_secs(10), async || {
        let (_, v) = h.get(&format!("/api/transactions/{tx_id}")).await?;
        Ok(v["steps"][0]["status"] == "WAITING")
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, v) = h.get(&format!("/api/transactions/{tx_id}")).await?;
    assert_eq!(v["steps"][0]["status"], "WAITING", "{v}");
    assert_eq!(v["history"], json!([]), "recovery left it alone: {v}");
    let (_, stats) = h.get("/api/recovery/stats").await?;
    assert_eq!(stats["processed"], 0, "{stats}");
    let cid = format!("{tx_id}:test_wait:0:1");
    let (status, r) = h
        .post(
            &format!("/api/waits/{cid}/reply"),
            json!({"payload": "yes"}),
        )
        .await?;
    assert_eq!(status, 200, "{r}");
    let (_, v) = h
        .get(&format!("/api/transactions/{tx_id}?wait=30s"))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["output"]["reply"], "yes", "{v}");
    Ok(())
}

/// An operator completes a saga whose step waits: the step ends `FAILED` (`lost`), its
/// wait is closed, and a reply that comes later is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_completing_a_waiting_saga_closes_its_wait() -> Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let (status, v) = h
        .post(
            "/api/transactions",
            json!({"steps": ["test_ok", "test_wait"], "input": {"wait_ms": 60000}}),
        )
        .await?;
    assert_eq!(status, 201, "{v}");
    let tx_id = v["tx_id"].as_str().context("tx_id")?.to_string();
    eventually(Duration::from_secs(10), async || {
        let (_, v) = h.get(&format!("/api/transactions/{tx_id}")).await?;
        Ok(v["steps"][1]["status"] == "WAITING")
    })
    .await?;
    let (status, v) = h
        .post(
            &format!("/api/transactions/{tx_id}/force-complete"),
            json!({"reason": "settled with the partner by phone"}),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["steps"][1]["status"], "FAILED", "{v}");
    assert_eq!(v["steps"][1]["failure_kind"], "lost", "{v}");
    let (_, waits) = h.get("/api/waits").await?;
    assert_eq!(waits, json!([]));
    let cid = format!("{tx_id}:test_wait:1:1");
    let (status, r) = h
        .post(&format!("/api/waits/{cid}/reply"), json!({"payload": 1}))
        .await?;
    assert_eq!(
        (status, r["error"]["code"].as_str()),
        (409, Some("wait_closed")),
        "{r}"
    );
    let (_, after) = h.get(&format!("/api/transactions/{tx_id}")).await?;
    assert_eq!(after["status"], "COMPLETED");
    assert_eq!(
        after["version"], v["version"],
        "the late reply wrote nothing to the saga"
    );
    Ok(())
}

/// The broker crashes (SIGKILL) while sagas publish and wait, and comes back on its disk:
/// the relay sends what it could not, the consumers pick up where they were, and every
/// saga ends with its transfer recorded exactly once, the stream holding each request once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_ride_out_a_broker_crash() -> Result<()> {
    const SAGAS: usize = 30;
    let mut nats = NatsServer::start().await?;
    let h = host_on(&nats).await?;
    let ledger = RemoteLedger::start(&nats, h.dir.path(), 0).await?;
    h.open_account("S", 1000.0).await?;
    h.open_account("D", 0.0).await?;
    let body = remote_transfer("S", "D", "slow", json!({"remote_timeout_ms": 120_000}));
    let mut ids = Vec::new();
    for i in 0..SAGAS {
        if i == SAGAS / 2 {
            nats.kill();
        }
        let (status, v) = h.post("/api/transactions", body.clone()).await?;
        assert_eq!(status, 201, "{v}");
        ids.push(v["tx_id"].as_str().context("tx_id")?.to_string());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.restart().await?;
    for id in &ids {
        let (_, v) = h.get(&format!("/api/transactions/{id}?wait=120s")).await?;
        assert_eq!(v["status"], "COMPLETED", "{v}");
        assert_eq!(v["output"]["ledger_ref"], format!("L-{id}"), "{v}");
    }
    assert_eq!(nats.stream_messages("RTE_REQUESTS").await?, SAGAS as u64);
    let net: i64 = ids.iter().map(|id| ledger.net(id).unwrap_or(0)).sum();
    assert_eq!(net, 1000 * SAGAS as i64, "each transfer recorded once");
    assert_eq!(h.balance("S").await?, 1000.0 - 10.0 * SAGAS as f64);
    assert_eq!(h.balance("D").await?, 10.0 * SAGAS as f64);
    Ok(())
}

/// A wait failed by hand through the completion endpoint (an error answer, with a reason):
/// the step fails with that error and the saga compensates what ran before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answered_by_hand_fails_the_step_and_compensates() -> Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let (status, v) = h
        .post(
            "/api/transactions",
            json!({"steps": ["test_ok", "test_wait"], "input": {"wait_ms": 60000}}),
        )
        .await?;
    assert_eq!(status, 201, "{v}");
    let tx_id = v["tx_id"].as_str().context("tx_id")?.to_string();
    eventually(Duration::from_secs(10), async || {
        let (_, v) = h.get(&format!("/api/transactions/{tx_id}")).await?;
        Ok(v["steps"][1]["status"] == "WAITING")
    })
    .await?;
    let cid = format!("{tx_id}:test_wait:1:1");
    let (status, r) = h
        .post(
            &format!("/api/waits/{cid}/reply"),
            json!({"error": "the partner declined", "reason": "called the partner"}),
        )
        .await?;
    assert_eq!(status, 200, "{r}");
    let (_, v) = h
        .get(&format!("/api/transactions/{tx_id}?wait=30s"))
        .await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    assert_eq!(v["steps"][1]["status"], "FAILED", "{v}");
    assert_eq!(v["steps"][1]["failure_kind"], "permanent", "{v}");
    assert!(
        v["steps"][1]["error"]
            .as_str()
            .unwrap_or("")
            .contains("the partner declined"),
        "{v}"
    );
    assert_eq!(v["steps"][0]["status"], "COMPENSATED", "{v}");
    Ok(())
}
