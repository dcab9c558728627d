//! A remote ledger service for the `fund_transfer_remote` saga: it takes transfer and
//! reversal requests from NATS JetStream (stream `RTE_REQUESTS`, subjects
//! `rte.requests.ledger.>`, its own durable consumer) and answers on the request's
//! `Rte-Reply-To` subject with its `Rte-Correlation-Id`, the way any service answering
//! RTE's waiting steps does.
//!
//! How it answers a transfer is the request's `mode`: `ok`, `error` (an `Rte-Error`
//! answer, nothing recorded), `late` (recorded, answered after `--late-ms`), `twice` (two
//! answers), `silent` (recorded, never answered), `slow` (answered after 300 ms) or
//! `random` (mostly `ok`, sometimes `error`, `twice` or `slow`). Transfers and reversals
//! apply once per saga. After every request it writes its state as JSON to `--state`.
//!
//! Usage: `remote-ledger --nats nats://127.0.0.1:4222 --state ledger.json [--late-ms 3000] [--seed 7]`

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Request {
    tx_id: String,
    amount_cents: i64,
    #[serde(default)]
    mode: String,
}

/// What the ledger holds and has seen, as written to `--state`.
#[derive(Default, Serialize)]
struct State {
    /// Net cents recorded per saga.
    ledger: BTreeMap<String, i64>,
    /// Requests taken, by message id (a count above one is a repeated delivery).
    requests: BTreeMap<String, u32>,
    /// Answers sent.
    replies: u64,
    #[serde(skip)]
    applied: BTreeSet<String>,
}

struct Args {
    nats: String,
    state: PathBuf,
    late: Duration,
    seed: u64,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let (mut nats, mut state, mut late, mut seed) = (None, None, 3000, 7);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nats" => nats = Some(value),
            "--state" => state = Some(PathBuf::from(value)),
            "--late-ms" => late = value.parse()?,
            "--seed" => seed = value.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(Args {
        nats: nats.context("--nats is required")?,
        state: state.context("--state is required")?,
        late: Duration::from_millis(late),
        seed,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = args()?;
    let client = async_nats::connect(&args.nats).await?;
    let js = jetstream::new(client);
    let requests = js
        .get_or_create_stream(stream::Config {
            name: "RTE_REQUESTS".into(),
            subjects: vec!["rte.requests.>".into()],
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        })
        .await?;
    let consumer: jetstream::consumer::PullConsumer = requests
        .get_or_create_consumer(
            "remote-ledger",
            pull::Config {
                durable_name: Some("remote-ledger".into()),
                filter_subject: "rte.requests.ledger.>".into(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let mut state = State::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    write_state(&args.state, &state)?;
    eprintln!("remote-ledger: serving");
    // The broker may go away and come back: take requests again, from where the durable
    // consumer was, after any error.
    loop {
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("remote-ledger: cannot read requests ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("remote-ledger: reading requests failed ({e}); resubscribing");
                    break;
                }
            };
            match serve(&js, &args, &mut state, &mut rng, &message).await {
                Ok(()) => {
                    write_state(&args.state, &state)?;
                    message.ack().await.ok();
                }
                Err(e) => {
                    // Not acknowledged: the request comes again, and applies once.
                    eprintln!("remote-ledger: answering failed ({e}); it comes again");
                    let _ = message
                        .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Handle one request: record it (once per saga) and answer as its mode says.
async fn serve(
    js: &jetstream::Context,
    args: &Args,
    state: &mut State,
    rng: &mut rand::rngs::StdRng,
    message: &jetstream::Message,
) -> Result<()> {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let (Some(message_id), Some(reply_to), Some(correlation_id)) = (
        header("Rte-Message-Id"),
        header("Rte-Reply-To"),
        header("Rte-Correlation-Id"),
    ) else {
        eprintln!("remote-ledger: a request without RTE headers; dropped");
        return Ok(());
    };
    *state.requests.entry(message_id.clone()).or_default() += 1;
    let request: Request = match serde_json::from_slice(&message.payload) {
        Ok(r) => r,
        Err(e) => {
            let refusal = Err(format!("bad request: {e}"));
            return answer(js, &reply_to, &correlation_id, refusal, &message_id, 0).await;
        }
    };
    let mode = match request.mode.as_str() {
        "random" => match rng.random_range(0..10) {
            0 => "error",
            1 => "twice",
            2 => "slow",
            _ => "ok",
        },
        m => m,
    }
    .to_string();
    if message.subject.as_str() == "rte.requests.ledger.reverse" {
        if state.applied.remove(&request.tx_id) {
            *state.ledger.entry(request.tx_id.clone()).or_default() -= request.amount_cents;
        }
        let reversed = Ok(serde_json::json!({"reversed": true}));
        answer(js, &reply_to, &correlation_id, reversed, &message_id, 0).await?;
        state.replies += 1;
        return Ok(());
    }
    if mode == "error" {
        let refused = Err("the remote ledger refused the transfer".to_string());
        answer(js, &reply_to, &correlation_id, refused, &message_id, 0).await?;
        state.replies += 1;
        return Ok(());
    }
    if state.applied.insert(request.tx_id.clone()) {
        *state.ledger.entry(request.tx_id.clone()).or_default() += request.amount_cents;
    }
    let body = Ok(serde_json::json!({"ledger_ref": format!("L-{}", request.tx_id)}));
    match mode.as_str() {
        "silent" => {}
        "late" | "slow" => {
            let delay = if mode == "late" {
                args.late
            } else {
                Duration::from_millis(300)
            };
            let js = js.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = answer(&js, &reply_to, &correlation_id, body, &message_id, 0).await;
            });
            state.replies += 1;
        }
        "twice" => {
            answer(js, &reply_to, &correlation_id, body.clone(), &message_id, 0).await?;
            answer(js, &reply_to, &correlation_id, body, &message_id, 1).await?;
            state.replies += 2;
        }
        _ => {
            answer(js, &reply_to, &correlation_id, body, &message_id, 0).await?;
            state.replies += 1;
        }
    }
    Ok(())
}

/// Send an answer (or an error answer) to `reply_to`; `n` tells repeated answers apart.
async fn answer(
    js: &jetstream::Context,
    reply_to: &str,
    correlation_id: &str,
    body: std::result::Result<serde_json::Value, String>,
    message_id: &str,
    n: u32,
) -> Result<()> {
    let mut publish = jetstream::message::PublishMessage::build()
        .header("Rte-Correlation-Id", correlation_id)
        .message_id(format!("answer:{message_id}:{n}"));
    publish = match body {
        Ok(value) => publish.payload(serde_json::to_vec(&value)?.into()),
        Err(error) => publish.header("Rte-Error", error.as_str()),
    };
    js.send_publish(reply_to.to_string(), publish)
        .await?
        .await?;
    Ok(())
}

fn write_state(path: &PathBuf, state: &State) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(state)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
