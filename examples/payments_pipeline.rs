//! A payment-scoring pipeline, as a new user writes one, on the Kafka at `SLUICE_BOOTSTRAP`
//! (default `127.0.0.1:19092`, where `cargo xtask kafka up` starts one).
//!
//! It creates `<topic>` (8 partitions), `<topic>-dlt` and `<topic>-scored`, where
//! `<topic>` is `PAYMENTS_TOPIC` (default `payments-<unix time>`), and writes
//! `PAYMENTS_COUNT` (default 20,000) JSON payments keyed by account: 5 hot accounts take
//! 40 % of them, and about 1 % are malformed. The producer's [`HotKeyPartitioner`] spreads
//! each hot account over 4 partitions by its sub-key, the card, so a card's payments keep
//! their order while the account's load is shared. A cold account stays on its murmur2
//! partition; a hot one moves once, when the partitioner first finds it hot.
//!
//! Then it runs the pipeline: parse → a fraud service that times out now and then →
//! the scored payment, keyed by account. Timeouts are retried, a breaker guards the
//! service, each account is processed in order within its partition, malformed payments
//! go to the DLQ, spans and metrics come from `InstrumentLayer` (Prometheus on
//! <http://127.0.0.1:9465/metrics>). It stops when every payment is handled (the
//! pipeline's `stop_at_end`: every partition read to its end and committed), or at
//! Ctrl-C, and prints a summary from the pipeline's stats. `--exactly-once` (or `PAYMENTS_EXACTLY_ONCE=1`) makes
//! the outputs, dead letters and input offsets commit in one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sluice::partition::{HotKeyConfig, HotKeyPartitioner, SpreadStrategy};
use sluice::pipeline::breaker::{BreakerConfig, BreakerLayer};
use sluice::pipeline::concurrency::{ConcurrencyLayer, Ordering as Order};
use sluice::pipeline::dlq::DeadLetterLayer;
use sluice::pipeline::metrics::InstrumentLayer;
use sluice::pipeline::retry::{RetryLayer, RetryPolicy};
use sluice::pipeline::runner::{Pipeline, ProducerSink, Shutdown};
use sluice::pipeline::{BoxError, Classify, ConsumedRecord, Disposition, OutputRecord};
use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::consumer::{ConsumerConfig, OffsetReset};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use tower::util::BoxCloneService;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

const PARTITIONS: i32 = 8;
const HOT_ACCOUNTS: u64 = 5;

/// A payment as the generator writes it. `seq` counts the card's payments from 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payment {
    id: u64,
    account: String,
    card: String,
    seq: u64,
    amount_cents: u64,
}

/// What the pipeline writes for a payment.
#[derive(Debug, Serialize)]
struct Scored {
    #[serde(flatten)]
    payment: Payment,
    /// The fraud service's risk score, 0 to 99.
    score: u64,
    /// The partition the payment was read from.
    input_partition: i32,
}

/// Every way scoring a payment fails, and what the pipeline should do about it.
#[derive(Debug, thiserror::Error)]
enum ScoreError {
    #[error("not a payment: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("fraud service: {0}")]
    Fraud(#[from] BoxError),
}

impl Classify for ScoreError {
    fn disposition(&self) -> Disposition {
        match self {
            ScoreError::Malformed(_) => Disposition::DeadLetter,
            // A timeout or an outage: the world's failure, so retry (and let the breaker
            // stop admitting if it persists).
            ScoreError::Fraud(_) => Disposition::Retriable,
        }
    }
}

/// The `i`-th payment, or (about 1 %) a truncated line; `seqs` numbers each card's payments.
fn payment(
    i: u64,
    seqs: &mut BTreeMap<(String, String), u64>,
) -> serde_json::Result<(String, String, String)> {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    let (account, card) = if h % 100 < 40 {
        (
            format!("acct-hot-{}", h % HOT_ACCOUNTS),
            format!("card-{}", h / 100 % 8),
        )
    } else {
        (
            format!("acct-{:04}", h % 1000),
            format!("card-{}", h / 1000 % 2),
        )
    };
    let seq = seqs.entry((account.clone(), card.clone())).or_default();
    let p = Payment {
        id: i,
        account: account.clone(),
        card: card.clone(),
        seq: *seq,
        amount_cents: 100 + h % 50_000,
    };
    *seq += 1;
    let mut json = serde_json::to_string(&p)?;
    if i % 97 == 13 {
        json.truncate(json.len() / 2);
    }
    Ok((account, card, json))
}

/// The fraud service: a tower service that hangs on about 3 % of calls (at random, so a
/// retry usually gets through), behind a 50 ms timeout.
type Fraud = BoxCloneService<Payment, u64, BoxError>;

fn fraud_service() -> Fraud {
    let service = service_fn(|p: Payment| async move {
        if RandomState::new().hash_one(p.id) % 100 < 3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok::<_, BoxError>(p.amount_cents * 7 % 100)
    });
    BoxCloneService::new(
        ServiceBuilder::new()
            .timeout(Duration::from_millis(50))
            .service(service),
    )
}

/// The service the pipeline runs: parse, ask the fraud service, answer the scored payment
/// (keyed by account, as its input) for `output`. `?` turns each failure into a
/// [`ScoreError`].
async fn score(
    record: ConsumedRecord,
    mut fraud: Fraud,
    output: Arc<str>,
) -> Result<Vec<OutputRecord>, ScoreError> {
    let payment: Payment = serde_json::from_slice(record.value().unwrap_or_default())?;
    let score = fraud.ready().await?.call(payment.clone()).await?;
    let scored = Scored {
        payment,
        score,
        input_partition: record.partition,
    };
    let out = record.forward(output, serde_json::to_vec(&scored)?);
    Ok(vec![
        out.header("fraud-score", Some(score.to_string().into()))
    ])
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // `cargo xtask kafka up`'s broker unless told otherwise.
    let bootstrap =
        std::env::var("SLUICE_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".to_string());
    let count: u64 = std::env::var("PAYMENTS_COUNT").map_or(Ok(20_000), |v| v.parse())?;
    let exactly_once = std::env::args().any(|a| a == "--exactly-once")
        || std::env::var("PAYMENTS_EXACTLY_ONCE").is_ok_and(|v| v == "1");
    let input = match std::env::var("PAYMENTS_TOPIC") {
        Ok(t) => t,
        Err(_) => format!(
            "payments-{}",
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs()
        ),
    };
    let (dlq, output, group) = (
        format!("{input}-dlt"),
        format!("{input}-scored"),
        format!("{input}-scorer"),
    );

    let cluster = Cluster::connect(ClusterConfig::new(&bootstrap).client_id("payments")).await?;
    let topics: Vec<NewTopic> = [&input, &dlq, &output]
        .iter()
        .map(|t| NewTopic::new(t.as_str(), PARTITIONS))
        .collect();
    Admin::new(cluster)
        .create_topics(&topics, Duration::from_secs(30))
        .await?;
    if metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(([127, 0, 0, 1], 9465))
        .install()
        .is_ok()
    {
        sluice::pipeline::metrics::describe();
    }

    // Hot accounts (over 3 % of recent payments) spread over 4 partitions by card.
    let writer = Producer::new(
        ProducerConfig::new(&bootstrap)
            .linger(Duration::from_millis(5))
            .partitioner(|| {
                Box::new(HotKeyPartitioner::new(
                    HotKeyConfig::new()
                        .hot_share(0.03, 0.02)
                        .spread(4)
                        .strategy(SpreadStrategy::SubKey),
                ))
            }),
    )
    .await?;
    let (mut seqs, mut sent) = (BTreeMap::new(), Vec::new());
    for i in 0..count {
        let (account, card, json) = payment(i, &mut seqs)?;
        let record = ProducerRecord::new(input.as_str(), json)
            .key(account.clone())
            .sub_key(card);
        sent.push((account, writer.send(record).await?));
    }
    let mut placed: BTreeMap<i32, (u64, BTreeSet<String>)> = BTreeMap::new();
    for (account, delivery) in sent {
        let at = placed.entry(delivery.await?.partition).or_default();
        at.0 += 1;
        if account.starts_with("acct-hot") {
            at.1.insert(account);
        }
    }
    writer.close(Duration::from_secs(10)).await?;
    println!("wrote {count} payments to {input} ({PARTITIONS} partitions)");

    let mut config = ProducerConfig::new(&bootstrap);
    if exactly_once {
        config = config.transactional_id(format!("{group}-0"));
    }
    let producer = Producer::new(config).await?;
    let (fraud, output) = (fraud_service(), Arc::<str>::from(output));
    let stack = ServiceBuilder::new()
        .layer(InstrumentLayer::new().consumer_group(&group))
        // One payment at a time per account within a partition (the fraud service sees an
        // account's payments in order); accounts run concurrently.
        .layer(ConcurrencyLayer::new(Order::PerKey, 256))
        .layer(DeadLetterLayer::new(ProducerSink::new(producer.clone())).consumer_group(&group))
        .layer(BreakerLayer::new(
            BreakerConfig::new()
                .name("fraud")
                .wait_in_open(Duration::from_secs(2)),
        ))
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(5)
                .initial_delay(Duration::from_millis(10)),
        ))
        .service(service_fn(move |r| {
            score(r, fraud.clone(), Arc::clone(&output))
        }));

    let consumer = ConsumerConfig::new(&bootstrap)
        .group_id(&group)
        .auto_offset_reset(OffsetReset::Earliest);
    // Every payment is handled once every partition is read to its end and committed.
    let pipeline = Pipeline::new(consumer, producer.clone(), [&input], stack)
        .max_in_flight(1000)
        .exactly_once(exactly_once)
        .stop_at_end(true)
        .shutdown(Shutdown::on_signals());
    let (stats, stop) = (pipeline.stats(), pipeline.shutdown_handle());
    pipeline.run().await?;
    let interrupted = stop.is_cancelled();
    producer.close(Duration::from_secs(10)).await?;

    let mode = if exactly_once {
        "exactly-once"
    } else {
        "at-least-once"
    };
    if interrupted {
        println!("stopped by a signal before every payment was handled");
    }
    println!(
        "{mode}: in {count}, out {} scored, dead-lettered {}, retried {} fraud timeouts, \
         redelivered {}",
        stats.produced(),
        stats.dead_lettered(),
        stats.retried(),
        stats.redelivered(),
    );
    for (partition, (n, hot)) in placed {
        println!("  {input}-{partition}: {n:>6} payments; hot accounts here: {hot:?}");
    }
    Ok(())
}
