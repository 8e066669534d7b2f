//! `sluice lag`: a group's lag per partition (committed or not), its status by Burrow's
//! rules over repeated samples, and the replica count KEDA's Kafka scaler would choose.
//!
//! ```text
//! sluice lag --group billing                          # one look
//! sluice lag --group billing --watch 30 --window 10   # a look every 30 s, judged over 10
//! sluice lag --group billing --lag-threshold 1000     # KEDA's lagThreshold
//! sluice lag serve --group billing --group audit      # Prometheus on 127.0.0.1:9308
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_wire::admin::lag::scaling::KedaScaling;
use sluice_wire::admin::lag::status::{GroupStatus, LagEvaluator, LagStatus};
use sluice_wire::admin::{Admin, GroupLag, UncommittedFrom};
use sluice_wire::cluster::Cluster;
use sluice_wire::types::IsolationLevel;

mod exposition;
mod rebalances;
mod serve;

/// How lag is measured: which end offset, and where uncommitted partitions start.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LagSource {
    /// Measure lag against the last stable offset (for read_committed consumers).
    #[arg(long)]
    read_committed: bool,
    /// Where the group's consumers start a partition with no committed offset (their
    /// `auto.offset.reset`): its lag counts from the log start (earliest) or is 0
    /// (latest).
    #[arg(long, default_value = "earliest", value_parser = parse_reset)]
    reset: UncommittedFrom,
}

fn parse_reset(s: &str) -> Result<UncommittedFrom, String> {
    match s {
        "earliest" => Ok(UncommittedFrom::Earliest),
        "latest" => Ok(UncommittedFrom::Latest),
        other => Err(format!("--reset {other:?}: use earliest or latest")),
    }
}

impl LagSource {
    /// The group's lag now.
    pub(crate) async fn lag(&self, admin: &Admin, group: &str) -> anyhow::Result<GroupLag> {
        let isolation = if self.read_committed {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        };
        Ok(admin.lag_from(group, isolation, self.reset).await?)
    }

    /// What an uncommitted partition's lag counts from, for the notes under the tables.
    pub(crate) fn reset_point(&self) -> &'static str {
        match self.reset {
            UncommittedFrom::Earliest => "the log start offset",
            UncommittedFrom::Latest => "the log end offset",
        }
    }
}

/// The KEDA Kafka trigger settings `sluice lag` reproduces.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KedaArgs {
    /// KEDA's `lagThreshold`: the lag one consumer replica is expected to handle.
    #[arg(long, default_value_t = 10)]
    lag_threshold: i64,
    /// KEDA's `activationLagThreshold`: at or below this total lag, zero replicas.
    #[arg(long, default_value_t = 0)]
    activation_lag_threshold: i64,
    /// KEDA's `allowIdleConsumers`: do not cap the replicas at the partition count.
    #[arg(long)]
    allow_idle_consumers: bool,
    /// KEDA's `limitToPartitionsWithLag`: cap at the partitions that have lag.
    #[arg(long)]
    limit_to_partitions_with_lag: bool,
}

impl KedaArgs {
    /// The scaling rule these flags describe.
    pub(crate) fn scaling(&self) -> KedaScaling {
        KedaScaling {
            lag_threshold: self.lag_threshold,
            activation_lag_threshold: self.activation_lag_threshold,
            allow_idle_consumers: self.allow_idle_consumers,
            limit_to_partitions_with_lag: self.limit_to_partitions_with_lag,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    look: Look,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Serve the lag of groups as Prometheus metrics (kafka_exporter's names, plus the
    /// status and the KEDA replica count), looking at them on an interval.
    Serve(serve::Args),
}

/// `sluice lag --group G`: look once, or `--watch`.
#[derive(Debug, clap::Args)]
struct Look {
    /// The consumer group.
    #[arg(long, short = 'g', required = true)]
    group: Option<String>,
    /// Look again every this many seconds (fractions allowed) and judge the status over
    /// the last `--window` looks; without it, one look.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    watch: Option<Duration>,
    /// How many looks the status is judged over (Burrow's default: 10).
    #[arg(long, default_value_t = 10)]
    window: usize,
    /// With --watch: stop after this many looks (default: until interrupted).
    #[arg(long)]
    samples: Option<u64>,
    #[command(flatten)]
    source: LagSource,
    #[command(flatten)]
    keda: KedaArgs,
}

/// A number of seconds above 0, fractions allowed.
fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{s:?}: give a number of seconds above 0"))
}

pub(crate) async fn run(cluster: &Cluster, args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(Command::Serve(serve)) => serve::run(cluster, serve).await,
        None => look(cluster, args.look).await,
    }
}

async fn look(cluster: &Cluster, args: Look) -> anyhow::Result<()> {
    let Some(group) = args.group.as_deref() else {
        anyhow::bail!("--group is required");
    };
    let admin = Admin::new(cluster.clone());
    let looks = match args.watch {
        Some(_) => args.samples.unwrap_or(u64::MAX),
        None => 1,
    };
    let mut evaluator = LagEvaluator::new(args.window);
    let mut ticks = args.watch.map(tokio::time::interval);
    for look in 0..looks {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
        }
        let lag = args.source.lag(&admin, group).await?;
        for (tp, sample) in lag.samples(now_ms()) {
            evaluator.record(tp, sample);
        }
        if look > 0 {
            println!();
        }
        print_report(&args, &lag, &evaluator.status(), evaluator.capacity());
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (0 on a clock set before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn print_report(args: &Look, lag: &GroupLag, status: &GroupStatus, window: usize) {
    println!(
        "{:<30} {:>9} {:>14} {:>14} {:>8} {:<8}  MEMBER",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "STATUS"
    );
    for p in &lag.partitions {
        let verdict = status
            .partitions
            .iter()
            .find(|s| s.partition == p.partition)
            .map_or(LagStatus::Ok, |s| s.status);
        println!(
            "{:<30} {:>9} {:>14} {:>14} {:>8} {:<8}  {}",
            p.partition.topic,
            p.partition.partition,
            offset_or_dash(p.committed),
            p.log_end,
            p.lag,
            verdict,
            p.member.as_deref().unwrap_or("-")
        );
    }
    print_uncommitted_note(lag, &args.source);
    println!("TOTAL LAG {}", lag.total);
    let seen = status
        .partitions
        .iter()
        .map(|p| p.window.len())
        .max()
        .unwrap_or(0);
    let severity = if status.status.is_error() {
        "error"
    } else if status.status == LagStatus::Warning {
        "warning"
    } else {
        "healthy"
    };
    println!(
        "STATUS {} ({severity}; {} of {window} looks)",
        status.status,
        seen.min(window)
    );
    for p in status.worst().filter(|p| p.status != LagStatus::Ok) {
        let offsets: Vec<String> = p.window.iter().map(|s| s.offset.to_string()).collect();
        let lags: Vec<String> = p.window.iter().map(|s| s.lag().to_string()).collect();
        let span = match (p.window.first(), p.window.last()) {
            (Some(a), Some(b)) => (b.at_ms - a.at_ms) as f64 / 1000.0,
            _ => 0.0,
        };
        println!(
            "  {}-{} {}: offsets [{}] lags [{}] over {span:.1}s",
            p.partition.topic,
            p.partition.partition,
            p.status,
            offsets.join(", "),
            lags.join(", ")
        );
    }
    let scaling = args.keda.scaling();
    let lags: Vec<i64> = lag.partitions.iter().map(|p| p.lag).collect();
    println!(
        "KEDA REPLICAS {} (lagThreshold {}, activationLagThreshold {}, {} partitions)",
        scaling.replicas(&lags),
        scaling.lag_threshold,
        scaling.activation_lag_threshold,
        lags.len()
    );
}

/// An offset, or `-` where the group has none (as `kafka-consumer-groups` prints it).
pub(crate) fn offset_or_dash(offset: Option<i64>) -> String {
    offset.map_or_else(|| "-".to_string(), |o| o.to_string())
}

/// The line that says which partitions' lag counts from the reset point, if any.
pub(crate) fn print_uncommitted_note(lag: &GroupLag, source: &LagSource) {
    let uncommitted = lag.partitions.iter().filter(|p| !p.is_committed()).count();
    if uncommitted > 0 {
        println!(
            "{uncommitted} partition(s) without a committed offset (CURRENT-OFFSET -): \
             their lag ({}) counts from {}",
            lag.uncommitted_total(),
            source.reset_point()
        );
    }
}
