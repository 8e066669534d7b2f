//! `sluice lag serve`: looks at groups on an interval and serves what it saw as
//! Prometheus metrics on `/metrics` (kafka_exporter's names, Sluice's status and KEDA
//! replica count: see [`exposition`](super::exposition)).
//!
//! The sampling loop owns the evaluators and is the one writer of the rendered page;
//! each scrape reads the last page, so a scrape never waits for Kafka and a burst of
//! scrapes does not multiply the load on the cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sluice_wire::admin::lag::status::LagEvaluator;
use sluice_wire::admin::Admin;
use sluice_wire::cluster::{Cluster, TopicInfo};

use super::exposition::{render, Looked, Verdict};
use super::rebalances::RebalanceCounter;
use super::{now_ms, parse_secs, KedaArgs, LagSource};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A consumer group to watch; repeat for more.
    #[arg(long, short = 'g', required = true)]
    group: Vec<String>,
    /// Where to serve `/metrics` (kafka_exporter's port by default).
    #[arg(long, default_value = "127.0.0.1:9308")]
    listen: SocketAddr,
    /// Look at the groups every this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    interval: Duration,
    /// How many looks the status is judged over (Burrow's default: 10).
    #[arg(long, default_value_t = 10)]
    window: usize,
    #[command(flatten)]
    source: LagSource,
    #[command(flatten)]
    keda: KedaArgs,
}

/// The last rendered page, written by the sampling loop, read by every scrape.
type Page = Arc<Mutex<String>>;

pub(crate) async fn run(cluster: &Cluster, args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // The first line says where, so `--listen 127.0.0.1:0` can be found.
    println!("serving http://{addr}/metrics");
    let page: Page = Arc::new(Mutex::new(render(&[], &[])));
    let admin = Admin::new(cluster.clone());
    tokio::select! {
        () = sample(&admin, &args, &page) => Ok(()),
        served = serve(listener, page.clone()) => served,
    }
}

/// Looks at every group each interval, judges it over its window, renders the page.
async fn sample(admin: &Admin, args: &Args, page: &Page) {
    let mut evaluators: BTreeMap<&str, LagEvaluator> = BTreeMap::new();
    let mut rebalances: BTreeMap<&str, RebalanceCounter> = BTreeMap::new();
    let scaling = args.keda.scaling();
    let mut ticks = tokio::time::interval(args.interval);
    loop {
        ticks.tick().await;
        let mut looked = Vec::with_capacity(args.group.len());
        for group in &args.group {
            let evaluator = evaluators
                .entry(group.as_str())
                .or_insert_with(|| LagEvaluator::new(args.window));
            let outcome = match args.source.lag(admin, group).await {
                Ok(lag) => {
                    // Partitions gone from the group's topics leave the window.
                    for gone in evaluator.status().partitions {
                        if !lag.partitions.iter().any(|p| p.partition == gone.partition) {
                            evaluator.forget(&gone.partition);
                        }
                    }
                    for (tp, s) in lag.samples(now_ms()) {
                        evaluator.record(tp, s);
                    }
                    let lags: Vec<i64> = lag.partitions.iter().map(|p| p.lag).collect();
                    let counter = rebalances.entry(group.as_str()).or_default();
                    Ok(Verdict {
                        rebalances: counter.observe(&lag.group),
                        replicas: scaling.replicas(&lags),
                        status: evaluator.status(),
                        lag,
                    })
                }
                Err(e) => {
                    eprintln!("error: group {group}: {e:#}");
                    Err(format!("{e:#}"))
                }
            };
            looked.push(Looked {
                group: group.clone(),
                outcome,
            });
        }
        let topics = replication(admin, &looked).await;
        let rendered = render(&looked, &topics);
        *page.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = rendered;
    }
}

/// The metadata of the topics the groups read (their replicas, in-sync replicas and
/// leaders); none when the metadata could not be read this time.
async fn replication(admin: &Admin, looked: &[Looked]) -> Vec<TopicInfo> {
    let mut names: Vec<&str> = looked
        .iter()
        .filter_map(|l| l.outcome.as_ref().ok())
        .flat_map(|v| v.lag.partitions.iter().map(|p| p.partition.topic.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Vec::new();
    }
    match admin.cluster().refresh(&names, false).await {
        Ok(md) => names
            .iter()
            .filter_map(|n| md.topic(n).filter(|t| t.error.is_none()).cloned())
            .collect(),
        Err(e) => {
            eprintln!("error: topic metadata: {e:#}");
            Vec::new()
        }
    }
}

/// Accepts scrapers until the listener fails; each connection is served on its own
/// task.
async fn serve(listener: tokio::net::TcpListener, page: Page) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await.context("accepting a scrape")?;
        let page = page.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let page = page.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&request, &page)) }
            });
            // A scraper that hangs up mid-answer is its own business.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(request: &Request<Incoming>, page: &Page) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => {
            let text = page
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        "/" => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "sluice lag serve: metrics on /metrics\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are on /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
