//! One conformance suite for the store contract, run on every backend: an SQLite file,
//! and the loopback PostgreSQL and MariaDB (each test on a fresh database). Plus the
//! end-to-end sagas on each backend, and a saga that survives its database connection
//! being cut mid-run.

use std::sync::Arc;
use std::time::Duration;

use rte_tests::faults::Proxy;
use rte_tests::rte_host::engine::{StepStatus, TxStatus};
use rte_tests::rte_host::lifecycle::{
    Actor, AttemptOutcome, FailureKind, HistoryKind, Phase, Undo,
};
use rte_tests::rte_host::store::Attempt;
use rte_tests::rte_host::store::{
    self, Commit, CreateOutcome, HistoryEntry, IdempotencyChange, IdempotencyKey,
    IdempotencyRecord, KvChanges, KvRead, KvWrite, StepRecord, TxFilter, TxRecord, TxStore, now_ms,
};
use rte_tests::{Backend, HostOptions, TestHost, backends, fresh_database};
use serde_json::json;

fn tx(id: &str, tx_type: &str, status: TxStatus, created_at: i64) -> TxRecord {
    TxRecord {
        tx_id: id.into(),
        tx_type: tx_type.into(),
        status,
        input: json!({"k": id}),
        outputs: serde_json::Map::new(),
        lock_keys: vec!["a".into(), "b".into()],
        current_step: 0,
        total_steps: 2,
        retry_count: 0,
        max_retries: 3,
        timeout_ms: 1000,
        deadline_at: created_at + 1000,
        last_error: None,
        version: 0,
        request_key: None,
        created_at,
        updated_at: created_at,
        completed_at: None,
        undo: None,
    }
}

/// Blind writes to the `bank` namespace: `None` deletes.
fn bank_writes(writes: &[(&str, Option<&str>)]) -> KvChanges {
    bank_changes(&[], writes)
}

/// Reads (key, version seen) and writes to the `bank` namespace.
fn bank_changes(reads: &[(&str, i64)], writes: &[(&str, Option<&str>)]) -> KvChanges {
    KvChanges {
        namespace: "bank".into(),
        reads: reads
            .iter()
            .map(|(key, version)| KvRead {
                key: (*key).into(),
                version: *version,
            })
            .collect(),
        writes: writes
            .iter()
            .map(|(key, value)| KvWrite {
                key: (*key).into(),
                value: value.map(Into::into),
            })
            .collect(),
    }
}

fn idem_key(plugin: &str, step: &str, key: &str) -> IdempotencyKey {
    IdempotencyKey {
        plugin: plugin.into(),
        step_name: step.into(),
        key: key.into(),
    }
}

fn steps(id: &str) -> Vec<StepRecord> {
    vec![
        StepRecord::pending(id, 0, "one"),
        StepRecord::pending(id, 1, "two"),
    ]
}

async fn open(backend: Backend, dir: &std::path::Path) -> anyhow::Result<Arc<dyn TxStore>> {
    let url = fresh_database(backend, dir).await?;
    Ok(store::from_url(&url).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_contract_holds_on_every_backend() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for backend in backends() {
        println!("backend: {backend:?}");
        let s = open(backend, dir.path()).await?;
        conformance(&*s)
            .await
            .map_err(|e| anyhow::anyhow!("{backend:?}: {e:#}"))?;
    }
    Ok(())
}

/// Texts come back byte for byte whatever they hold (MySQL sends a create and a state-only
/// commit as one batch with the values written in as literals), and a change too long for
/// one batch still commits (as a transaction of prepared statements).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_round_trip_on_every_backend() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for backend in backends() {
        let s = open(backend, dir.path()).await?;
        let t0 = now_ms();
        let mut odd = tx("tx-odd", "it's \\ \"odd\"", TxStatus::Created, t0);
        odd.input = json!({"account_id": "ACC-'1'; --", "note": "é 🦀 \\"});
        odd.request_key = Some("key 'with' quotes".into());
        let odd_steps = steps("tx-odd");
        assert_eq!(s.create(&odd, &odd_steps).await?, CreateOutcome::Created);
        assert_eq!(s.get("tx-odd").await?, Some((odd.clone(), odd_steps)));
        let mut again = tx("tx-odd-2", "x", TxStatus::Created, t0);
        again.request_key = odd.request_key.clone();
        assert_eq!(
            s.create(&again, &steps("tx-odd-2")).await?,
            CreateOutcome::Existing("tx-odd".into()),
            "{backend:?}: a request key is matched whatever it holds"
        );
        let found = s
            .list(&TxFilter {
                input: vec![store::InputMatch::new("account_id", "ACC-'1'; --")?],
                limit: 10,
                ..TxFilter::default()
            })
            .await?;
        assert_eq!(found.total, 1, "{backend:?}: the indexed input is written");
        for text in [
            "it's a \"quote\" \\ back\\slash; -- comment /* */ ?".to_string(),
            "'); DELETE FROM rte_transactions; --".to_string(),
            "é 日本 🦀 \u{7f}\t\r\n".to_string(),
            String::new(),
            "x".repeat(5 << 20),
        ] {
            let (cur, cur_steps) = s.get("tx-odd").await?.unwrap();
            let mut next = cur.clone();
            // Errors are short texts (the engine cuts them); outputs may be long.
            let short: String = text.chars().take(1000).collect();
            next.last_error = Some(short.clone());
            next.outputs.insert("text".into(), json!(text));
            let mut step = cur_steps[1].clone();
            step.error = Some(short);
            let v = s.commit(&Commit::new(&next, &[&step])).await?;
            let (got, got_steps) = s.get("tx-odd").await?.unwrap();
            assert_eq!(
                got,
                TxRecord { version: v, ..next },
                "{backend:?}: {text:.80}"
            );
            assert_eq!(got_steps[1], step, "{backend:?}: {text:.80}");
        }
    }
    Ok(())
}

/// The log hosts share events through: in order, each host's reads leave out the payloads
/// of its own events (it has them) but keep their positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_events_come_back_without_the_readers_own_payloads() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for backend in backends() {
        let s = open(backend, dir.path()).await?;
        let t = now_ms();
        s.events_append(
            "host-a",
            &[(t, "{\"n\":1}".into()), (t, "{\"n\":2}".into())],
        )
        .await?;
        s.events_append("host-b", &[(t, "{\"n\":3}".into())])
            .await?;
        let read = s.events_after(0, 10, "host-a").await?;
        let seen: Vec<(&str, &str)> = read
            .iter()
            .map(|e| (e.origin.as_str(), e.payload.as_str()))
            .collect();
        assert_eq!(
            seen,
            [("host-a", ""), ("host-a", ""), ("host-b", "{\"n\":3}")],
            "{backend:?}"
        );
        assert!(read.windows(2).all(|w| w[0].id < w[1].id), "{backend:?}");
        let later = s.events_after(read[0].id, 10, "host-b").await?;
        assert_eq!(later.len(), 2, "{backend:?}");
        assert_eq!(later[0].payload, "{\"n\":2}", "{backend:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_starting_together_migrate_a_fresh_database_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for backend in backends() {
        let url = fresh_database(backend, dir.path()).await?;
        let opened = futures::future::join_all((0..4).map(|_| store::from_url(&url))).await;
        for s in opened {
            let s = s.map_err(|e| anyhow::anyhow!("{backend:?}: {e}"))?;
            s.ping().await?;
        }
    }
    Ok(())
}

async fn conformance(s: &dyn TxStore) -> anyhow::Result<()> {
    s.ping().await?;
    // Create and read back, field for field.
    let t0 = now_ms() - 10_000;
    let mut a = tx("tx-a", "transfer", TxStatus::Created, t0);
    a.request_key = Some("req-1".into());
    assert_eq!(s.create(&a, &steps("tx-a")).await?, CreateOutcome::Created);
    let (got, got_steps) = s.get("tx-a").await?.expect("created");
    assert_eq!(got, a);
    assert_eq!(got_steps, steps("tx-a"));
    assert!(s.get("nope").await?.is_none());
    // The same request key returns the first saga and writes nothing.
    let mut dup = tx("tx-dup", "transfer", TxStatus::Created, t0);
    dup.request_key = Some("req-1".into());
    assert_eq!(
        s.create(&dup, &steps("tx-dup")).await?,
        CreateOutcome::Existing("tx-a".into())
    );
    assert!(s.get("tx-dup").await?.is_none());

    // A commit writes the saga, its steps, kv, idempotency and history together.
    let mut next = got.clone();
    next.status = TxStatus::Executing;
    next.current_step = 1;
    next.outputs.insert("x".into(), json!(1));
    next.updated_at = t0 + 5;
    next.undo = Some(Undo::Cancel);
    let mut s0 = got_steps[0].clone();
    s0.status = StepStatus::Completed;
    s0.attempts = 2;
    s0.output = Some(serde_json::from_value(json!({"x": 1}))?);
    s0.idempotency_key = Some("one:tx-a".into());
    s0.plugin_digest = Some("d".repeat(64));
    s0.started_at = Some(t0 + 1);
    s0.finished_at = Some(t0 + 4);
    s0.failure_kind = Some(FailureKind::Trap);
    for (n, outcome) in [(1, AttemptOutcome::Failed), (2, AttemptOutcome::Completed)] {
        s0.log_attempt(Attempt {
            phase: Phase::Execute,
            attempt: n,
            started_at: t0 + n as i64,
            ended_at: t0 + 2 * n as i64,
            outcome,
            failure_kind: (n == 1).then_some(FailureKind::Trap),
            message: (n == 1).then(|| "plugin aborted".into()),
            host: "host-a".into(),
            plugin_digest: Some("d".repeat(64)),
        });
    }
    let kv = bank_writes(&[("acct/1", Some("100")), ("gone", None)]);
    let idem = IdempotencyRecord {
        key: idem_key("bank", "one", "one:tx-a"),
        tx_id: "tx-a".into(),
        output: "{\"x\":1}".into(),
        expires_at: now_ms() + 60_000,
    };
    let history = [HistoryEntry {
        tx_id: "tx-a".into(),
        at: t0 + 5,
        kind: HistoryKind::Retry,
        actor: Some(Actor::Operator {
            reason: "card fixed".into(),
        }),
        message: "hello".into(),
    }];
    let v1 = s
        .commit(&Commit {
            tx: &next,
            steps: &[&s0],
            kv: Some(&kv),
            idempotency: Some(IdempotencyChange::Remember(&idem)),
            history: &history,
            waits: Default::default(),
            outbox: &[],
        })
        .await?;
    assert_eq!(v1, 1);
    let (after, after_steps) = s.get("tx-a").await?.unwrap();
    assert_eq!(
        after,
        TxRecord {
            version: 1,
            ..next.clone()
        }
    );
    assert_eq!(after_steps[0], s0);
    assert_eq!(after_steps[1].status, StepStatus::Pending);
    assert_eq!(s.kv_get("bank", "acct/1").await?.as_deref(), Some("100"));
    assert_eq!(
        s.kv_get("other", "acct/1").await?,
        None,
        "namespaces are separate"
    );
    assert_eq!(
        s.idempotency_get(&idem.key, now_ms()).await?.as_deref(),
        Some("{\"x\":1}")
    );
    for other in [
        idem_key("bank", "two", "one:tx-a"),
        idem_key("hotel", "one", "one:tx-a"),
    ] {
        assert_eq!(
            s.idempotency_get(&other, now_ms()).await?,
            None,
            "a key counts only for the plugin and step that stored it: {other:?}"
        );
    }
    assert_eq!(s.history("tx-a").await?, history);

    // Two writers read version 1; the second to commit is fenced out and changes nothing.
    let mut w1 = after.clone();
    w1.last_error = Some("first".into());
    let mut w2 = after.clone();
    w2.last_error = Some("second".into());
    let kv2 = bank_writes(&[("acct/1", Some("999"))]);
    assert_eq!(s.commit(&Commit::new(&w1, &[])).await?, 2);
    let err = s
        .commit(&Commit {
            kv: Some(&kv2),
            ..Commit::new(&w2, &[])
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, store::StoreError::VersionConflict { .. }),
        "{err}"
    );
    assert_eq!(
        s.get("tx-a").await?.unwrap().0.last_error.as_deref(),
        Some("first")
    );
    assert_eq!(
        s.kv_get("bank", "acct/1").await?.as_deref(),
        Some("100"),
        "a fenced commit writes nothing"
    );
    // State-only commits, which go as one statement where the dialect allows: two steps,
    // then one; a fenced one changes neither the saga nor its steps.
    let (cur, cur_steps) = s.get("tx-a").await?.unwrap();
    let mut n1 = cur.clone();
    n1.current_step = 1;
    n1.outputs.insert("y".into(), json!(2));
    let mut st0 = cur_steps[0].clone();
    st0.status = StepStatus::Completed;
    st0.output = Some(serde_json::Map::from_iter([("y".to_string(), json!(2))]));
    let mut st1 = cur_steps[1].clone();
    st1.status = StepStatus::Executing;
    st1.started_at = Some(t0 + 9);
    let v = s.commit(&Commit::new(&n1, &[&st0, &st1])).await?;
    assert_eq!(v, cur.version + 1);
    let (got, got_steps) = s.get("tx-a").await?.unwrap();
    assert_eq!(
        got,
        TxRecord {
            version: v,
            ..n1.clone()
        }
    );
    assert_eq!(got_steps, vec![st0.clone(), st1.clone()]);
    let mut stale = n1.clone();
    stale.last_error = Some("stale".into());
    let mut st1_stale = st1.clone();
    st1_stale.status = StepStatus::Failed;
    for changed in [vec![&st1_stale], vec![&st0, &st1_stale]] {
        let err = s.commit(&Commit::new(&stale, &changed)).await.unwrap_err();
        assert!(
            matches!(err, store::StoreError::VersionConflict { .. }),
            "{err}"
        );
    }
    assert_eq!(
        s.get("tx-a").await?.unwrap(),
        (got.clone(), got_steps.clone()),
        "a fenced state-only commit writes nothing"
    );
    let mut n2 = got.clone();
    n2.updated_at += 1;
    let mut st1_again = st1.clone();
    st1_again.attempts = 2;
    assert_eq!(
        s.commit(&Commit::new(&n2, &[&st1_again])).await?,
        got.version + 1
    );
    assert_eq!(s.get("tx-a").await?.unwrap().1[1], st1_again);

    // Upsert and delete of kv.
    let kv3 = bank_writes(&[("acct/1", Some("150")), ("acct/2", Some("7"))]);
    let w3 = s.get("tx-a").await?.unwrap().0;
    s.commit(&Commit {
        kv: Some(&kv3),
        ..Commit::new(&w3, &[])
    })
    .await?;
    let w4 = s.get("tx-a").await?.unwrap().0;
    let kv4 = bank_writes(&[("acct/2", None)]);
    s.commit(&Commit {
        kv: Some(&kv4),
        ..Commit::new(&w4, &[])
    })
    .await?;
    assert_eq!(s.kv_get("bank", "acct/1").await?.as_deref(), Some("150"));
    assert_eq!(s.kv_get("bank", "acct/2").await?, None);

    // Writes after reads commit only while every key read still has the version read;
    // otherwise the commit changes nothing, not even the saga row.
    let seen = s.kv_read("bank", "acct/1").await?.expect("written above");
    assert_eq!(seen.value, "150");
    let cur = s.get("tx-a").await?.unwrap().0;
    let ok = bank_changes(&[("acct/1", seen.version)], &[("acct/1", Some("200"))]);
    s.commit(&Commit {
        kv: Some(&ok),
        ..Commit::new(&cur, &[])
    })
    .await?;
    let now_at = s.kv_read("bank", "acct/1").await?.unwrap();
    assert_eq!(now_at.value, "200");
    assert_ne!(
        now_at.version, seen.version,
        "every write changes the version"
    );
    let stale_cases = [
        (
            "stale read-modify-write",
            bank_changes(&[("acct/1", seen.version)], &[("acct/1", Some("300"))]),
        ),
        (
            "stale read, other key written",
            bank_changes(&[("acct/1", seen.version)], &[("acct/3", Some("1"))]),
        ),
        (
            "insert of a key that now exists",
            bank_changes(&[("acct/1", 0)], &[("acct/1", Some("1"))]),
        ),
        (
            "stale delete",
            bank_changes(&[("acct/1", seen.version)], &[("acct/1", None)]),
        ),
        (
            "delete of a key read absent that now exists",
            bank_changes(&[("acct/1", 0)], &[("acct/1", None)]),
        ),
    ];
    for (case, changes) in &stale_cases {
        let cur = s.get("tx-a").await?.unwrap().0;
        let mut moved = cur.clone();
        moved.last_error = Some((*case).into());
        let err = s
            .commit(&Commit {
                kv: Some(changes),
                ..Commit::new(&moved, &[])
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, store::StoreError::KvConflict { namespace, key } if namespace == "bank" && key == "acct/1"),
            "{case}: {err}"
        );
        assert_eq!(
            s.get("tx-a").await?.unwrap().0,
            cur,
            "{case}: saga unchanged"
        );
        assert_eq!(
            s.kv_read("bank", "acct/1").await?,
            Some(now_at.clone()),
            "{case}"
        );
        assert_eq!(s.kv_get("bank", "acct/3").await?, None, "{case}");
    }
    // A key read absent may be created once.
    let cur = s.get("tx-a").await?.unwrap().0;
    let create = bank_changes(&[("acct/4", 0)], &[("acct/4", Some("5"))]);
    s.commit(&Commit {
        kv: Some(&create),
        ..Commit::new(&cur, &[])
    })
    .await?;
    assert_eq!(s.kv_get("bank", "acct/4").await?.as_deref(), Some("5"));

    // Listing: filters, newest first, pagination, totals.
    for i in 0..25 {
        let status = if i % 3 == 0 {
            TxStatus::Failed
        } else {
            TxStatus::Completed
        };
        let ty = if i % 2 == 0 { "even" } else { "odd" };
        let mut t = tx(&format!("list-{i:02}"), ty, status, t0 + 100 + i);
        t.completed_at = Some(t0 + 200 + i);
        s.create(&t, &[]).await?;
    }
    let page = s
        .list(&TxFilter {
            limit: 10,
            ..TxFilter::default()
        })
        .await?;
    assert_eq!(page.total, 26);
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.items[0].tx_id, "list-24", "newest first");
    let page3 = s
        .list(&TxFilter {
            limit: 10,
            offset: 20,
            ..TxFilter::default()
        })
        .await?;
    assert_eq!(page3.items.len(), 6);
    let failed_even = s
        .list(&TxFilter {
            statuses: vec![TxStatus::Failed],
            tx_type: Some("even".into()),
            limit: 50,
            ..TxFilter::default()
        })
        .await?;
    assert_eq!(failed_even.total, 5, "i in 0,6,12,18,24");
    let two_statuses = s
        .list(&TxFilter {
            statuses: vec![TxStatus::Failed, TxStatus::Executing],
            limit: 50,
            ..TxFilter::default()
        })
        .await?;
    assert_eq!(two_statuses.total, 10);
    let ranged = s
        .list(&TxFilter {
            created_after: Some(t0 + 110),
            created_before: Some(t0 + 115),
            limit: 50,
            ..TxFilter::default()
        })
        .await?;
    assert_eq!(
        ranged
            .items
            .iter()
            .map(|t| t.tx_id.as_str())
            .collect::<Vec<_>>(),
        ["list-14", "list-13", "list-12", "list-11", "list-10"]
    );
    let by_part = s
        .list(&TxFilter {
            tx_id_contains: Some("ist-2".into()),
            limit: 50,
            ..TxFilter::default()
        })
        .await?;
    assert_eq!(by_part.total, 5, "anywhere in the id");

    // Stats by status and type.
    let stats = s.stats().await?;
    let count = |st: TxStatus, ty: &str| {
        stats
            .iter()
            .find(|c| c.status == st && c.tx_type == ty)
            .map_or(0, |c| c.count)
    };
    assert_eq!(count(TxStatus::Failed, "even"), 5);
    assert_eq!(count(TxStatus::Completed, "odd"), 8);
    assert_eq!(count(TxStatus::Executing, "transfer"), 1);

    // The stuck scan finds non-terminal sagas not updated since the threshold, oldest first.
    assert_eq!(s.find_stuck(now_ms(), 10).await?, ["tx-a"]);
    assert!(s.find_stuck(t0, 10).await?.is_empty());

    // Timeline buckets finished sagas.
    let tl = s.timeline(t0, 1000).await?;
    let total: u64 = tl.iter().map(|(_, _, n)| n).sum();
    assert_eq!(total, 25);

    // Idempotency records expire and are purged in batches.
    for i in 0..5 {
        let rec = IdempotencyRecord {
            key: idem_key("bank", "one", &format!("old-{i}")),
            expires_at: now_ms() - 1,
            ..idem.clone()
        };
        let cur = s.get("tx-a").await?.unwrap().0;
        s.commit(&Commit {
            idempotency: Some(IdempotencyChange::Remember(&rec)),
            ..Commit::new(&cur, &[])
        })
        .await?;
    }
    assert_eq!(
        s.idempotency_get(&idem_key("bank", "one", "old-1"), now_ms())
            .await?,
        None,
        "expired records do not count"
    );
    assert_eq!(s.purge_idempotency(now_ms(), 3).await?, 3);
    assert_eq!(s.purge_idempotency(now_ms(), 3).await?, 2);
    assert_eq!(s.purge_idempotency(now_ms(), 3).await?, 0);
    assert!(
        s.idempotency_get(&idem.key, now_ms()).await?.is_some(),
        "live records stay"
    );
    // Forgetting a key (its step was compensated) removes only that record.
    let cur = s.get("tx-a").await?.unwrap().0;
    s.commit(&Commit {
        idempotency: Some(IdempotencyChange::Forget(&idem.key)),
        ..Commit::new(&cur, &[])
    })
    .await?;
    assert_eq!(s.idempotency_get(&idem.key, now_ms()).await?, None);

    // Finished sagas older than the retention go, with their steps and history.
    let mut old = tx("old-done", "transfer", TxStatus::Completed, t0 - 1000);
    old.completed_at = Some(t0 - 900);
    s.create(&old, &steps("old-done")).await?;
    s.append_history(&HistoryEntry {
        tx_id: "old-done".into(),
        at: t0,
        kind: HistoryKind::Recovery,
        actor: None,
        message: "m".into(),
    })
    .await?;
    let purged = s.purge_finished(t0 + 209, 10).await?;
    assert_eq!(
        purged, 10,
        "old-done and list-00..08 finished before the cut"
    );
    assert!(s.get("old-done").await?.is_none());
    assert!(s.history("old-done").await?.is_empty());
    assert!(
        s.get("tx-a").await?.is_some(),
        "running sagas are never purged"
    );
    // Requests with one key racing: one saga, every caller told its id, and no
    // connection left inside the loser's transaction (the store keeps committing).
    let racers = (0..8).map(|i| {
        let mut t = tx(&format!("tx-race-{i}"), "transfer", TxStatus::Created, t0);
        t.request_key = Some("req-race".into());
        t
    });
    let racers: Vec<TxRecord> = racers.collect();
    let racer_steps: Vec<Vec<StepRecord>> = racers.iter().map(|t| steps(&t.tx_id)).collect();
    let outcomes = futures::future::join_all(
        racers
            .iter()
            .zip(&racer_steps)
            .map(|(t, st)| s.create(t, st)),
    )
    .await;
    let created: Vec<&str> = outcomes
        .iter()
        .zip(&racers)
        .filter(|(o, _)| matches!(o, Ok(CreateOutcome::Created)))
        .map(|(_, t)| t.tx_id.as_str())
        .collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    for o in &outcomes {
        match o {
            Ok(CreateOutcome::Existing(id)) => assert_eq!(id, created[0]),
            Ok(CreateOutcome::Created) => {}
            Err(e) => panic!("a racing create failed: {e}"),
        }
    }
    let (winner, winner_steps) = s.get(created[0]).await?.unwrap();
    let mut moved = winner.clone();
    moved.status = TxStatus::Executing;
    let mut first = winner_steps[0].clone();
    first.status = StepStatus::Executing;
    for _ in 0..4 {
        // Every kept connection is used at least once.
        let v = s.commit(&Commit::new(&moved, &[&first])).await?;
        moved.version = v;
    }

    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_run_on_every_backend() -> anyhow::Result<()> {
    for backend in backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        h.open_account("x", 100.0).await?;
        h.open_account("y", 0.0).await?;
        let ok = h
            .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "x", "to_account": "y", "amount": 30, "currency": "USD"}}))
            .await?;
        assert_eq!(ok["status"], "COMPLETED", "{backend:?}: {ok}");
        h.run_saga(json!({"tx_type": "close_account", "input": {"account_id": "y"}}))
            .await?;
        let comp = h
            .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "x", "to_account": "y", "amount": 30, "currency": "USD"}}))
            .await?;
        assert_eq!(comp["status"], "COMPENSATED", "{backend:?}: {comp}");
        let failed = h
            .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "x", "to_account": "y", "amount": 1000, "currency": "USD"}}))
            .await?;
        assert_eq!(failed["status"], "FAILED", "{backend:?}: {failed}");
        assert_eq!(h.balance("x").await?, 70.0, "{backend:?}");
        let flaky = h
            .run_saga(json!({"steps": ["test_ok", "test_flaky"], "input": {"flaky_times": 1}}))
            .await?;
        assert_eq!(flaky["status"], "COMPLETED", "{backend:?}: {flaky}");
        let (_, list) = h
            .get("/api/transactions?status=COMPENSATED&status=FAILED&page=1&page_size=20")
            .await?;
        assert_eq!(list["total"], 2, "{backend:?}: {list}");
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_survives_its_database_connection_being_cut() -> anyhow::Result<()> {
    if !backends().contains(&Backend::Postgres) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let url = fresh_database(Backend::Postgres, dir.path()).await?;
    let proxy = Proxy::start("127.0.0.1:5432").await?;
    let db = url.rsplit('/').next().unwrap().to_string();
    let proxied = format!("postgres://postgres@{}/{db}", proxy.addr());
    // The host talks to PostgreSQL only through the proxy.
    let h = TestHost::start(HostOptions {
        database_url: Some(proxied),
        configure: |c| c.step_timeout = Duration::from_secs(5),
        ..HostOptions::default()
    })
    .await?;
    let (status, v) = h
        .post("/api/transactions", json!({"steps": ["test_kv_counter", "test_sleep", "test_kv_counter"], "input": {"sleep_ms": 700, "key": "cut"}}))
        .await?;
    assert_eq!(status, 201, "{v}");
    let tx_id = v["tx_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Reads fail clearly while the database is away; nothing is lost.
    let (status, body) = h.get(&format!("/api/transactions/{tx_id}")).await?;
    assert_eq!(status, 503, "{body}");
    proxy.restore();
    let done = h.engine().wait(&tx_id, Duration::from_secs(30)).await?;
    assert_eq!(done.status, TxStatus::Completed, "{done:?}");
    // Each counter step ran once: the shared counter moved by exactly two.
    assert_eq!(done.output["count"], 2, "{done:?}");
    h.stop().await;
    Ok(())
}
