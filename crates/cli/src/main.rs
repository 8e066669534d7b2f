//! `sluice`: inspect and exercise a Kafka cluster from the shell.
//!
//! ```text
//! sluice metadata
//! sluice topic create orders --partitions 6 --config retention.ms=3600000
//! echo 'k1:hello' | sluice produce orders --key-separator :
//! sluice consume orders --from earliest --count 10
//! sluice consume orders --group billing --count 10
//! sluice consume orders --exit            # stop at the end of every partition
//! sluice groups describe billing
//! sluice lag --group billing --watch 30 --lag-threshold 1000
//! sluice perf produce --topic orders --num-records 500000 --record-size 100 --throughput -1
//! sluice -F client.properties metadata # a secured cluster (Java properties)
//! sluice -X security.protocol=SASL_SSL -X sasl.mechanism=SCRAM-SHA-512 \
//! -X sasl.username=alice -X sasl.password=... -X ssl.ca.location=ca.pem metadata
//! ```

mod commands;
mod progress;
mod properties;
mod time_spec;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_wire::cluster::{Cluster, ClusterConfig};

/// Inspect and exercise a Kafka cluster.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// Bootstrap servers, `host:port[,host:port...]`. Default: `SLUICE_BOOTSTRAP`, else
    /// the cluster `cargo xtask kafka up` runs (inside the repository).
    #[arg(short = 'b', long, env = "SLUICE_BOOTSTRAP", global = true)]
    bootstrap: Option<String>,

    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 30_000, global = true)]
    timeout_ms: u64,

    /// Client settings from a Java / kcat properties file (`security.protocol`,
    /// `ssl.*`, `sasl.*`, and producer or consumer keys), for every command: each takes
    /// the keys that fit it (a consumer's keys do not trouble `produce`). Applied before
    /// `-X`.
    #[arg(short = 'F', long = "config-file", value_name = "FILE", global = true)]
    config_file: Option<std::path::PathBuf>,

    /// Any client setting as a Java-style `key=value` (`-X security.protocol=SSL`,
    /// `-X enable.idempotence=false`, `-X session.timeout.ms=10000`); repeat for more.
    /// Cluster and security keys apply to every command; producer keys to `produce` and
    /// `perf produce`, consumer keys to `consume`.
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true)]
    config: Vec<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List brokers, topics, partitions and leaders (like `kcat -L`).
    Metadata(commands::metadata::Args),
    /// Create, delete, list, describe or change topics.
    #[command(subcommand)]
    Topic(commands::topic::Command),
    /// Describe the configs of a topic or a broker.
    #[command(subcommand)]
    Configs(commands::configs::Command),
    /// Produce one record per line of standard input, or from files.
    Produce(commands::produce::Args),
    /// Print records of a topic.
    Consume(commands::consume::Args),
    /// List, describe, reset or delete consumer groups.
    #[command(subcommand)]
    Groups(commands::groups::Command),
    /// A group's lag, its status over repeated looks (Burrow's rules), and the replicas
    /// KEDA would run for it.
    Lag(commands::lag::Args),
    /// Load tests (`perf produce`, `perf consume`), comparable with Kafka's
    /// ProducerPerformance and ConsumerPerformance.
    #[command(subcommand)]
    Perf(commands::perf::Command),
}

impl Command {
    /// Which client's settings the command takes.
    fn role(&self) -> properties::Role {
        match self {
            Command::Produce(_) | Command::Perf(commands::perf::Command::Produce(_)) => {
                properties::Role::Producer
            }
            Command::Consume(_) | Command::Perf(commands::perf::Command::Consume(_)) => {
                properties::Role::Consumer
            }
            Command::Metadata(_)
            | Command::Topic(_)
            | Command::Configs(_)
            | Command::Groups(_)
            | Command::Lag(_) => properties::Role::Admin,
        }
    }

    /// The command's name, for messages.
    fn name(&self) -> &'static str {
        match self {
            Command::Metadata(_) => "metadata",
            Command::Topic(_) => "topic",
            Command::Configs(_) => "configs",
            Command::Produce(_) => "produce",
            Command::Consume(_) => "consume",
            Command::Groups(_) => "groups",
            Command::Lag(_) => "lag",
            Command::Perf(_) => "perf",
        }
    }
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
        // The reader went away (`sluice consume ... | head`): the end of the run, as
        // for kcat and other Unix tools, not an error to report.
        Err(e) if stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// True when `e` is a write to a closed pipe.
fn stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The address of the cluster `cargo xtask kafka up` started (what the tests use), from
/// `target/kafka/run/bootstrap` in the current directory or one above it: then commands
/// pasted from the README need no `-b`.
fn local_cluster() -> Option<String> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("target/kafka/run/bootstrap")).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let bootstrap = cli.bootstrap.or_else(local_cluster).ok_or_else(|| {
        anyhow::anyhow!(
            "no bootstrap servers: pass -b host:port, set SLUICE_BOOTSTRAP, or run inside \
             the repository after `cargo xtask kafka up`"
        )
    })?;
    let timeout = Duration::from_millis(cli.timeout_ms);
    let mut config = ClusterConfig::new(&bootstrap)
        .client_id("sluice-cli")
        .request_timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)));
    let role = cli.command.role();
    let from_file = match &cli.config_file {
        Some(path) => properties::read_file(path)?,
        None => Vec::new(),
    };
    // Keys every client shares (security, client.id, timeouts) configure the cluster
    // connection; the rest belong to the command's producer or consumer. `-b` wins over
    // a bootstrap.servers in the file. One client.properties serves every command: its
    // keys of the other client kind are left out; `-X` keys must fit the command.
    let mut client = Vec::new();
    for (key, value) in from_file {
        if key == "bootstrap.servers" || config.try_set(&key, &value)? {
            continue;
        }
        if properties::fits(role, &key, &value) {
            client.push((key, value));
        }
    }
    for (key, value) in properties::from_args(&cli.config)? {
        if key == "bootstrap.servers" || config.try_set(&key, &value)? {
            continue;
        }
        client.push((key, value));
    }
    if let (properties::Role::Admin, Some((key, _))) = (role, client.first()) {
        anyhow::bail!("{key} is not a setting of `{}`", cli.command.name());
    }
    let cluster = Cluster::connect(config).await?;
    match cli.command {
        Command::Metadata(args) => commands::metadata::run(&cluster, args).await,
        Command::Topic(cmd) => commands::topic::run(&cluster, cmd, timeout).await,
        Command::Configs(cmd) => commands::configs::run(&cluster, cmd).await,
        Command::Produce(args) => commands::produce::run(&cluster, args, timeout, &client).await,
        Command::Consume(args) => commands::consume::run(&cluster, args, &client).await,
        Command::Groups(cmd) => commands::groups::run(&cluster, cmd).await,
        Command::Lag(args) => commands::lag::run(&cluster, args).await,
        Command::Perf(cmd) => commands::perf::run(&cluster, cmd, timeout, &client).await,
    }
}
