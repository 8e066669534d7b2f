//! `compare`: one benchmark client run per process, so `cargo xtask bench` can measure
//! each client's CPU time and peak RSS on its own (`wait4` rusage of the child).
//!
//! ```text
//! compare create-topic --bootstrap B --topic T [--partitions 6]
//! compare delete-topic --bootstrap B --topic T
//! compare produce --client sluice|sluice-ring|sluice-aws-lc|rdkafka|rskafka|kacrab|krafka
//!                 --bootstrap B --topic T
//!                 --records N --size S --acks all|1 --compression lz4|none
//!                 --idempotence true|false [--rate R] [--keys K]
//!                 [--security-protocol SSL --ca CA.pem]
//! compare consume --client sluice|sluice-ring|sluice-aws-lc|rdkafka|rdkafka-tuned|rskafka|kacrab|krafka
//!                 --bootstrap B --topic T --records N [--security-protocol SSL --ca CA.pem]
//! compare pipeline --client sluice|rdkafka --bootstrap B --input T --output T2
//!                  --records N --group G --exactly-once true|false
//! compare stall --client sluice|rdkafka|kacrab|krafka --bootstrap B --topic T
//!               [--size 1024] [--seconds 4]      (see `stall.rs`)
//! compare report --input results.jsonl --out-dir target/bench
//! ```
//!
//! `produce` and `consume` print ONE JSON line on stdout at the end:
//! `{"client","scenario","records","bytes","secs","p50_ms","p99_ms","p999_ms"}`.
//!
//! franz-go is not in this binary: it is the Go program in `go/` (its own module), which
//! takes the same produce/consume arguments and prints the same line.

mod clients;
mod pipeline;
mod report;
mod stall;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(name = "compare", about = "Side-by-side Kafka client benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    /// Sluice with sluice-wire's default TLS provider (graviola).
    Sluice,
    /// Sluice with rustls' ring provider (installed as the process default).
    SluiceRing,
    /// Sluice with rustls' aws-lc-rs provider (installed as the process default).
    SluiceAwsLc,
    /// librdkafka at its defaults (plus the scenario's settings).
    Rdkafka,
    /// librdkafka's consumer with the throughput settings of
    /// `clients::RDKAFKA_TUNED_CONSUMER` (consume only).
    RdkafkaTuned,
    Rskafka,
    /// kacrab 0.4 (pure Rust; see `clients::kacrab_produce` for its settings).
    Kacrab,
    /// krafka 0.28 (pure Rust; see `clients::krafka_consume` for its read-ahead).
    Krafka,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Sluice => "sluice",
            Client::SluiceRing => "sluice-ring",
            Client::SluiceAwsLc => "sluice-aws-lc",
            Client::Rdkafka => "rdkafka",
            Client::RdkafkaTuned => "rdkafka-tuned",
            Client::Rskafka => "rskafka",
            Client::Kacrab => "kacrab",
            Client::Krafka => "krafka",
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a topic (replication factor 1) with Sluice's Admin and wait for leaders.
    CreateTopic {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 6)]
        partitions: i32,
    },
    /// Delete a topic (frees the broker's disk between runs).
    DeleteTopic {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
    },
    /// Produce N records of S bytes (keyless, or with `--keys`) as fast as the client
    /// goes, or at `--rate`.
    Produce(ProduceArgs),
    /// Consume N records of a topic from the beginning of all its partitions.
    Consume(ConsumeArgs),
    /// Copy an input topic of N records to an output topic through a consume ->
    /// service -> produce pipeline, committing as it goes (see `pipeline.rs`).
    Pipeline(pipeline::PipelineArgs),
    /// Keep sending while `cargo xtask bench` holds the broker stopped: what the client
    /// buffers (its peak RSS) against its 32 MiB bound (see `stall.rs`).
    Stall(stall::StallArgs),
    /// Medians of a results.jsonl: results.md and PNG charts.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out_dir: PathBuf,
    },
}

#[derive(clap::Args, Clone)]
pub struct ProduceArgs {
    #[arg(long, value_enum)]
    pub client: Client,
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long)]
    pub size: usize,
    /// `all` or `1`.
    #[arg(long)]
    pub acks: String,
    /// `lz4` or `none`.
    #[arg(long)]
    pub compression: String,
    #[arg(long, action = clap::ArgAction::Set)]
    pub idempotence: bool,
    /// Send at this many records per second (record i is sent i/R seconds after the
    /// first) instead of as fast as the client takes them.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Give record `i` the key `keys[i % K]` of K distinct 10-byte keys (0: no keys), so
    /// the client's own partitioner (murmur2 for every client here) spreads them.
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// Label for the result line (defaults to one derived from the settings).
    #[arg(long)]
    pub scenario: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How the client connects: PLAINTEXT (the default) or SSL with a CA file.
#[derive(clap::Args, Clone, Debug)]
pub struct TlsArgs {
    /// `PLAINTEXT` or `SSL`.
    #[arg(long, default_value = "PLAINTEXT")]
    pub security_protocol: String,
    /// PEM file of the CA that signed the broker's certificate (with SSL).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

impl TlsArgs {
    pub fn ssl(&self) -> bool {
        self.security_protocol.eq_ignore_ascii_case("SSL")
    }

    fn check(&self) -> Result<()> {
        match self.security_protocol.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(()),
            "SSL" if self.ca.is_some() => Ok(()),
            "SSL" => bail!("--security-protocol SSL needs --ca"),
            other => bail!("--security-protocol must be PLAINTEXT or SSL, not {other}"),
        }
    }

    /// The CA path as a string (SSL only).
    pub fn ca(&self) -> Option<String> {
        self.ssl()
            .then(|| self.ca.as_ref().map(|p| p.display().to_string()))
            .flatten()
    }
}

impl ProduceArgs {
    pub fn scenario(&self) -> String {
        self.scenario.clone().unwrap_or_else(|| {
            let settings = format!(
                "acks={}{} {}",
                self.acks,
                if self.idempotence { "+idem" } else { "" },
                self.compression
            );
            match self.rate {
                Some(r) => format!("latency {} {r}/s {settings}", size_label(self.size)),
                None => format!("produce {} {settings}", size_label(self.size)),
            }
        })
    }
}

#[derive(clap::Args, Clone)]
pub struct ConsumeArgs {
    #[arg(long, value_enum)]
    pub client: Client,
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub records: u64,
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    #[arg(long)]
    pub scenario: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Installs the rustls crypto provider a `sluice-*` client names as the process default,
/// which sluice-wire uses instead of its own (see `provider()` in its `net/tls.rs`).
fn install_provider(client: Client) -> Result<()> {
    let provider = match client {
        Client::SluiceRing => rustls::crypto::ring::default_provider(),
        Client::SluiceAwsLc => rustls::crypto::aws_lc_rs::default_provider(),
        _ => return Ok(()),
    };
    if provider.install_default().is_err() {
        bail!("a rustls crypto provider was already installed");
    }
    Ok(())
}

pub fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{}KB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// The line each client run prints.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RunResult {
    pub client: String,
    pub scenario: String,
    pub records: u64,
    pub bytes: u64,
    pub secs: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Absent from result lines written before p99.9 was measured.
    #[serde(default)]
    pub p999_ms: Option<f64>,
}

/// p50, p99 and p99.9 of per-record latencies in ms (None when there are none): the
/// value at index floor(p * n) of the sorted latencies, found by selection (O(n)), not
/// by sorting them all, so the harness's own CPU stays small beside the client's.
pub fn percentiles(mut lat: Vec<f32>) -> Percentiles {
    if lat.is_empty() {
        return Percentiles::default();
    }
    let n = lat.len();
    let mut at = |p: f64| {
        let i = ((p * n as f64) as usize).min(n - 1);
        let (_, v, _) = lat.select_nth_unstable_by(i, f32::total_cmp);
        Some(f64::from(*v))
    };
    Percentiles {
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
    }
}

/// Latency percentiles of one run, ms.
#[derive(Debug, Default, Clone, Copy)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Cmd::Report { input, out_dir } = &cli.cmd {
        return report::run(input, out_dir);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::CreateTopic {
                bootstrap,
                topic,
                partitions,
            } => {
                let admin = admin(&bootstrap).await?;
                admin
                    .create_topics(
                        &[sluice_wire::admin::NewTopic::new(topic, partitions)],
                        Duration::from_secs(30),
                    )
                    .await?;
                Ok(())
            }
            Cmd::DeleteTopic { bootstrap, topic } => {
                let admin = admin(&bootstrap).await?;
                admin
                    .delete_topics(&[topic.as_str()], Duration::from_secs(30))
                    .await?;
                Ok(())
            }
            Cmd::Produce(args) => {
                let scenario = args.scenario();
                if !matches!(args.acks.as_str(), "all" | "1") {
                    bail!("--acks must be all or 1");
                }
                if !matches!(args.compression.as_str(), "lz4" | "none") {
                    bail!("--compression must be lz4 or none");
                }
                if args.rate == Some(0) {
                    bail!("--rate must be at least 1");
                }
                args.tls.check()?;
                install_provider(args.client)?;
                let mut r = match args.client {
                    Client::Sluice | Client::SluiceRing | Client::SluiceAwsLc => {
                        clients::sluice_produce(&args).await?
                    }
                    Client::Rdkafka => clients::rdkafka_produce(&args).await?,
                    Client::RdkafkaTuned => {
                        bail!("rdkafka-tuned only consumes (see clients::RDKAFKA_TUNED_CONSUMER)")
                    }
                    Client::Rskafka => clients::rskafka_produce(&args).await?,
                    Client::Kacrab => clients::kacrab_produce(&args).await?,
                    Client::Krafka => clients::krafka_produce(&args).await?,
                };
                r.client = args.client.name().into();
                r.scenario = scenario;
                println!("{}", serde_json::to_string(&r)?);
                Ok(())
            }
            Cmd::Consume(args) => {
                let scenario = args
                    .scenario
                    .clone()
                    .unwrap_or_else(|| "consume".to_string());
                args.tls.check()?;
                install_provider(args.client)?;
                let mut r = match args.client {
                    Client::Sluice | Client::SluiceRing | Client::SluiceAwsLc => {
                        clients::sluice_consume(&args).await?
                    }
                    Client::Rdkafka => clients::rdkafka_consume(&args, false).await?,
                    Client::RdkafkaTuned => clients::rdkafka_consume(&args, true).await?,
                    Client::Rskafka => clients::rskafka_consume(&args).await?,
                    Client::Kacrab => clients::kacrab_consume(&args).await?,
                    Client::Krafka => clients::krafka_consume(&args).await?,
                };
                r.client = args.client.name().into();
                r.scenario = scenario;
                println!("{}", serde_json::to_string(&r)?);
                Ok(())
            }
            Cmd::Pipeline(args) => {
                let r = pipeline::run(&args).await?;
                println!("{}", serde_json::to_string(&r)?);
                Ok(())
            }
            Cmd::Stall(args) => stall::run(&args).await,
            Cmd::Report { .. } => unreachable!(),
        }
    })
}

async fn admin(bootstrap: &str) -> Result<sluice_wire::admin::Admin> {
    let cluster =
        sluice_wire::cluster::Cluster::connect(sluice_wire::cluster::ClusterConfig::new(bootstrap))
            .await?;
    Ok(sluice_wire::admin::Admin::new(cluster))
}
