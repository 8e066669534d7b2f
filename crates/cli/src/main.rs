//! `sluice`: inspect and exercise a Kafka cluster from the shell.
//!
//! ```text
//! sluice metadata
//! sluice topic create orders --partitions 6 --config retention.ms=3600000
//! echo 'k1:hello' | sluice produce orders --key-separator :
//! sluice consume orders --from earliest --count 10
//! sluice consume orders --group billing --count 10
//! sluice groups describe billing
//! sluice perf produce --topic orders --num-records 500000 --record-size 100 --throughput -1
//! ```

mod commands;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_wire::cluster::{Cluster, ClusterConfig};

/// Inspect and exercise a Kafka cluster.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// Bootstrap servers, `host:port[,host:port...]`.
    #[arg(short = 'b', long, env = "SLUICE_BOOTSTRAP", global = true)]
    bootstrap: Option<String>,

    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 30_000, global = true)]
    timeout_ms: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List brokers, topics, partitions and leaders (like `kcat -L`).
    Metadata(commands::metadata::Args),
    /// Create or delete topics.
    #[command(subcommand)]
    Topic(commands::topic::Command),
    /// Produce one record per line of standard input.
    Produce(commands::produce::Args),
    /// Print records of a topic.
    Consume(commands::consume::Args),
    /// List consumer groups, or describe one with its lag.
    #[command(subcommand)]
    Groups(commands::groups::Command),
    /// Load tests (`perf produce`), comparable with Kafka's ProducerPerformance.
    #[command(subcommand)]
    Perf(commands::perf::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let bootstrap = cli.bootstrap.ok_or_else(|| {
        anyhow::anyhow!("no bootstrap servers: pass -b host:port or set SLUICE_BOOTSTRAP")
    })?;
    let timeout = Duration::from_millis(cli.timeout_ms);
    let config = ClusterConfig::new(&bootstrap)
        .client_id("sluice-cli")
        .request_timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)));
    let cluster = Cluster::connect(config).await?;
    match cli.command {
        Command::Metadata(args) => commands::metadata::run(&cluster, args).await,
        Command::Topic(cmd) => commands::topic::run(&cluster, cmd, timeout).await,
        Command::Produce(args) => commands::produce::run(&cluster, args, timeout).await,
        Command::Consume(args) => commands::consume::run(&cluster, args).await,
        Command::Groups(cmd) => commands::groups::run(&cluster, cmd).await,
        Command::Perf(cmd) => commands::perf::run(&cluster, cmd, timeout).await,
    }
}
