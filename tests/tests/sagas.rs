//! End-to-end saga behaviour through a real host, real plugins and the REST API, on every
//! store backend: an SQLite file, PostgreSQL and MariaDB.

use rte_tests::{HostOptions, TestHost};
use serde_json::{Value, json};

fn step_statuses(view: &Value) -> Vec<String> {
    view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fund_transfer_completes_and_moves_money() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        h.open_account("a1", 1000.0).await?;
        h.open_account("b1", 50.0).await?;
        let v = h
        .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "a1", "to_account": "b1", "amount": 100.25, "currency": "USD"}}))
        .await?;
        assert_eq!(v["status"], "COMPLETED", "{v}");
        assert_eq!(step_statuses(&v), ["COMPLETED", "COMPLETED", "COMPLETED"]);
        assert_eq!(v["lock_keys"], json!(["account:a1", "account:b1"]));
        // Outputs of earlier steps are visible to later ones and kept on the saga.
        for key in ["debit_ref", "transfer_ref", "credit_ref"] {
            assert!(v["output"][key].is_string(), "missing {key}: {v}");
        }
        assert_eq!(h.balance("a1").await?, 899.75);
        assert_eq!(h.balance("b1").await?, 150.25);
        // Read back through GET.
        let (status, got) = h
            .get(&format!(
                "/api/transactions/{}",
                v["tx_id"].as_str().unwrap()
            ))
            .await?;
        assert_eq!(status, 200);
        assert_eq!(got["status"], "COMPLETED");
        assert_eq!(got["steps"][0]["step_name"], "debit");
        assert!(got["steps"][0]["plugin_digest"].as_str().unwrap().len() == 64);
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_to_closed_account_compensates_in_reverse_order() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        h.open_account("a2", 500.0).await?;
        h.open_account("b2", 0.0).await?;
        let closed = h
            .run_saga(json!({"tx_type": "close_account", "input": {"account_id": "b2"}}))
            .await?;
        assert_eq!(closed["status"], "COMPLETED", "{closed}");
        let v = h
        .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "a2", "to_account": "b2", "amount": 200, "currency": "USD"}}))
        .await?;
        assert_eq!(v["status"], "COMPENSATED", "{v}");
        assert_eq!(step_statuses(&v), ["COMPENSATED", "COMPENSATED", "FAILED"]);
        assert!(
            v["steps"][2]["error"].as_str().unwrap().contains("closed"),
            "{v}"
        );
        assert!(v["error"].as_str().unwrap().contains("credit"), "{v}");
        assert_eq!(h.balance("a2").await?, 500.0, "the debit was refunded");
        // Compensations ran transfer first, then debit.
        let tx_id = v["tx_id"].as_str().unwrap();
        let (_, events) = h
            .get(&format!("/api/events?tx_id={tx_id}&type=step.compensated"))
            .await?;
        let order: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|e| e["step_name"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["transfer", "debit"]);
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_funds_fails_at_step_one_with_nothing_to_compensate() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        h.open_account("a3", 10.0).await?;
        h.open_account("b3", 0.0).await?;
        let v = h
        .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "a3", "to_account": "b3", "amount": 11, "currency": "USD"}}))
        .await?;
        assert_eq!(v["status"], "FAILED", "{v}");
        assert_eq!(step_statuses(&v), ["FAILED", "SKIPPED", "SKIPPED"]);
        assert_eq!(
            v["steps"][0]["attempts"], 1,
            "a permanent error is not retried"
        );
        assert!(
            v["error"].as_str().unwrap().contains("insufficient funds"),
            "{v}"
        );
        assert_eq!(v["steps"][0]["compensation_attempts"], 0);
        assert_eq!(h.balance("a3").await?, 10.0);
        assert_eq!(h.balance("b3").await?, 0.0);
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_error_that_clears_completes() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        let v = h.run_saga(json!({"steps": ["test_ok", "test_flaky"], "input": {"flaky_times": 2, "greeting": "hi"}})).await?;
        assert_eq!(v["status"], "COMPLETED", "{v}");
        assert_eq!(v["tx_type"], "adhoc");
        assert_eq!(
            v["steps"][1]["attempts"], 3,
            "two retryable failures, then success"
        );
        assert_eq!(v["output"]["greeting"], "hi", "test_ok echoes its input");
        // More failures than retries: the saga fails and compensates the completed step.
        let v = h
        .run_saga(json!({"steps": ["test_ok", "test_flaky"], "input": {"flaky_times": 10}, "max_retries": 2}))
        .await?;
        assert_eq!(v["status"], "COMPENSATED", "{v}");
        assert_eq!(v["steps"][1]["attempts"], 3);
        assert_eq!(step_statuses(&v), ["COMPENSATED", "FAILED"]);
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_step_fails_its_saga_and_the_host_keeps_going() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            configure: |c| c.max_retries = 1,
            ..HostOptions::default()
        })
        .await?;
        let v = h
            .run_saga(json!({"steps": ["test_ok", "test_trap"], "input": {}}))
            .await?;
        assert_eq!(v["status"], "COMPENSATED", "{v}");
        let err = v["steps"][1]["error"].as_str().unwrap();
        assert_eq!(v["steps"][1]["failure_kind"], "trap", "{v}");
        assert!(
            err.contains("panicked"),
            "the guest's panic message reaches the step error: {err}"
        );
        let next = h
            .run_saga(json!({"steps": ["test_ok"], "input": {"x": 1}}))
            .await?;
        assert_eq!(next["status"], "COMPLETED", "{next}");
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_compensation_ends_compensation_failed_with_an_alert() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            configure: |c| c.max_retries = 1,
            ..HostOptions::default()
        })
        .await?;
        let v = h
            .run_saga(
                json!({"steps": ["test_ok", "test_bad_compensation", "test_fail"], "input": {}}),
            )
            .await?;
        assert_eq!(v["status"], "COMPENSATION_FAILED", "{v}");
        assert_eq!(
            step_statuses(&v),
            ["COMPLETED", "COMPENSATION_FAILED", "FAILED"]
        );
        assert_eq!(v["steps"][1]["compensation_attempts"], 2);
        let (_, alerts) = h
            .get(&format!(
                "/api/events?type=alert.critical&tx_id={}",
                v["tx_id"].as_str().unwrap()
            ))
            .await?;
        assert_eq!(alerts["events"].as_array().unwrap().len(), 1, "{alerts}");
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_wasm_file_beside_good_ones_leaves_them_usable() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            extra_files: vec![
                ("broken.wasm".into(), b"\0asm\x0d\0\x01\0garbage".to_vec()),
                ("notwasm.wasm".into(), b"hello".to_vec()),
            ],
            ..HostOptions::default()
        })
        .await?;
        let (_, plugins) = h.get("/api/plugins").await?;
        let plugins = plugins["plugins"].as_array().unwrap();
        let by_file = |f: &str| plugins.iter().find(|p| p["file"] == f).unwrap().clone();
        assert!(
            by_file("broken.wasm")["error"]
                .as_str()
                .unwrap()
                .contains("broken.wasm")
                || by_file("broken.wasm")["error"].is_string()
        );
        assert!(
            by_file("notwasm.wasm")["error"]
                .as_str()
                .unwrap()
                .contains("not a WebAssembly file")
        );
        assert!(by_file("bank.wasm")["error"].is_null());
        h.open_account("a4", 1.0).await?;
        assert_eq!(h.balance("a4").await?, 1.0);
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_clear_and_lose_nothing() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        let cases = [
            (
                json!({"tx_type": "no_such_saga", "input": {}}),
                422,
                "unknown saga type",
            ),
            (
                json!({"steps": ["test_ok", "no_such_step"], "input": {}}),
                422,
                "unknown step `no_such_step`",
            ),
            (
                json!({"tx_type": "fund_transfer", "input": {"to_account": "x"}}),
                422,
                "from_account",
            ),
            (json!({"input": {}}), 422, "tx_type"),
            (
                json!({"steps": ["test_ok"], "input": [1, 2]}),
                422,
                "object",
            ),
            (
                json!({"steps": ["test_ok"], "input": {}, "timeout": "soon"}),
                400,
                "timeout",
            ),
            (
                json!({"steps": ["test_ok"], "input": {}, "timeout": "0s"}),
                400,
                "timeout",
            ),
            (
                json!({"steps": ["test_ok"], "input": {}, "timeout": "200000years"}),
                400,
                "timeout",
            ),
            (
                json!({"steps": ["test_ok"], "input": {}, "timeout": "1000000000years"}),
                400,
                "timeout",
            ),
            (
                json!({"steps": ["test_ok"], "input": {}, "surprise": 1}),
                422,
                "surprise",
            ),
        ];
        for (body, status, needle) in cases {
            let (got, err) = h.post("/api/transactions", body.clone()).await?;
            assert_eq!(got, status, "{body} -> {err}");
            let message = err["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(needle), "{body}: {message}");
            assert!(err["error"]["code"].is_string());
        }
        // The framework's own refusals have the API's error shape too.
        let resp = h
            .http
            .delete(format!("{}/api/transactions", h.url))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 405);
        assert!(resp.headers().contains_key("allow"));
        let body: Value = resp.json().await?;
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
        let (status, body) = h.get("/api/transactions/%FF%FE").await?;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        // Search text is a saga id prefix: wildcards match nothing, an endless one is refused.
        let v = h
            .run_saga(json!({"steps": ["test_ok"], "input": {}}))
            .await?;
        let id = v["tx_id"].as_str().unwrap();
        let (_, found) = h.get(&format!("/api/transactions?q={}", &id[..8])).await?;
        assert_eq!(found["total"], 1, "{found}");
        for wildcard in ["%25", "_", "%25%25"] {
            let (status, found) = h.get(&format!("/api/transactions?q={wildcard}")).await?;
            assert_eq!((status, &found["total"]), (200, &json!(0)), "{found}");
        }
        let (status, err) = h
            .get(&format!("/api/transactions?q={}", "a".repeat(50_000)))
            .await?;
        assert_eq!(status, 400, "{err}");
        // Malformed JSON and a wrong content type.
        let resp = h
            .http
            .post(format!("{}/api/transactions", h.url))
            .header("content-type", "application/json")
            .body("{\"tx_type\":")
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 400);
        let body: Value = resp.json().await?;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed JSON")
        );
        let resp = h
            .http
            .post(format!("{}/api/transactions", h.url))
            .body("{}")
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 415);
        // A huge body is refused.
        let huge = format!(
            "{{\"steps\":[\"test_ok\"],\"input\":{{\"x\":\"{}\"}}}}",
            "a".repeat(2 << 20)
        );
        // A connection of its own: the server closes it after refusing the body unread.
        let resp = reqwest::Client::new()
            .post(format!("{}/api/transactions", h.url))
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 413);
        // Unknown transaction and endpoint.
        let (status, body) = h.get("/api/transactions/does-not-exist").await?;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        let (status, _) = h.get("/api/nothing-here").await?;
        assert_eq!(status, 404);
        // Nothing was recorded by the failed requests (only the search's own saga), and
        // the host still serves.
        let (_, list) = h.get("/api/transactions").await?;
        assert_eq!(list["total"], 1, "{list}");
        let (status, _) = h.get("/healthz").await?;
        assert_eq!(status, 200);
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_api_in_the_seed_shape() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        h.open_account("la", 300.0).await?;
        h.open_account("lb", 0.0).await?;
        let engine = h.engine();
        let tx = engine
        .new_transaction("fund_transfer")
        .with_lock_keys(["audit:transfers"])
        .with_input(
            json!({"from_account": "la", "to_account": "lb", "amount": 100.0, "currency": "USD"}),
        )
        .with_timeout(std::time::Duration::from_secs(60))
        .with_max_retries(2)
        .add_step("debit")
        .add_step("transfer")
        .add_step("credit")
        .build()?;
        let result = engine.execute(tx).await?;
        assert_eq!(
            result.status,
            rte_tests::rte_host::TxStatus::Completed,
            "{result:?}"
        );
        assert!(result.output.contains_key("credit_ref"));
        let (tx, _) = engine.get(&result.tx_id).await?;
        assert_eq!(
            tx.lock_keys,
            ["account:la", "account:lb", "audit:transfers"]
        );
        assert_eq!(tx.max_retries, 2);
        assert_eq!(h.balance("lb").await?, 100.0);
        let err = engine
            .new_transaction("fund_transfer")
            .add_step("nope")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("unknown step `nope`"), "{err}");
        h.stop().await;
    }
    Ok(())
}
