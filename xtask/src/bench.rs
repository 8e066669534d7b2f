//! `cargo xtask bench`: side-by-side client benchmarks on the local Kafka.
//!
//! Builds `benches/compare` (its own workspace: rdkafka compiles librdkafka from C), brings
//! up one broker (reusing a running one), and for every scenario runs each client as its
//! own process against its own fresh 6-partition topic: Sluice, rdkafka (at librdkafka's
//! defaults and tuned for throughput), rskafka, kacrab and krafka via the `compare`
//! binary, franz-go via the Go program in `benches/compare/go` (built here with the
//! machine's Go toolchain, modules from the Go module proxy), Java via Kafka's
//! ProducerPerformance / ConsumerPerformance. Besides the flat-out produce and
//! consume scenarios, `keyed` scenarios write keyed records to a topic of 1,000
//! partitions and consume it (fetch sessions and the accumulator grow with partitions),
//! and `latency` scenarios produce at fixed rates (1k, 10k, 100k records/s), where
//! delivery latency is not dominated by the client's own queue, and `pipeline`
//! scenarios copy a topic consume -> service -> produce (Sluice's runner with its full
//! stack beside a loop written by hand on rdkafka), and the `stall` scenario, once per
//! run, stops the broker (SIGSTOP) while each producer keeps sending, to see its peak RSS
//! against its 32 MiB bound; `--only` picks groups. CPU (user + sys) and peak RSS of
//! each client process come from `wait4(2)`. Every run appends one JSON line to
//! `target/bench/results.jsonl`; `compare report` then writes the medians to
//! `target/bench/results.md` and charts to `target/bench/*.png`.
//!
//! `--tls` runs the TLS suite instead, on a broker started with `--security`: produce
//! 1 KiB acks=all + idempotence + lz4 and consume 1 KiB, each over the SSL listener and
//! over PLAINTEXT (the twin that gives the cost of TLS), for Sluice with each rustls crypto
//! provider (`sluice` = sluice-wire's default, graviola; `sluice-ring`; `sluice-aws-lc`),
//! rdkafka (librdkafka with OpenSSL; `rdkafka-tuned` consumes too) and Java. The providers only differ under TLS, so
//! `sluice-ring` and `sluice-aws-lc` skip the PLAINTEXT twins.
//!
//! `--brokers 3` runs the replicated suite instead, on a three-broker cluster (replication
//! factor 3, `min.insync.replicas=2`): produce 100 B and 1 KiB with acks=all, idempotence
//! and lz4, the settings recommended for production.
//!
//! The defaults are the full run behind BENCHMARKS.md; `--quick` is for iteration.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::kafka::{self, Shape, INTERRUPTED};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Records per flat-out run (the committed BENCHMARKS.md uses the default).
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Runs of every (scenario, client); the report shows medians.
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Records per second of the fixed-rate latency scenarios, one scenario per rate.
    #[arg(
        long = "latency-rates",
        alias = "latency-rate",
        value_delimiter = ',',
        default_value = "1000,10000,100000"
    )]
    latency_rates: Vec<u64>,
    /// Seconds of each fixed-rate latency scenario.
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Iteration run: 20,000 records, 1 repeat, 2 s at each fixed rate (a few minutes
    /// once built).
    #[arg(long)]
    quick: bool,
    /// Clients to run (default: sluice,rdkafka,rdkafka-tuned,rskafka,kacrab,krafka,
    /// franz-go,java; with `--tls`: sluice,sluice-ring,sluice-aws-lc,rdkafka,rdkafka-tuned,
    /// java).
    #[arg(long, value_delimiter = ',')]
    clients: Vec<String>,
    /// Run the TLS suite (see the module docs) instead of the default one.
    #[arg(long)]
    tls: bool,
    /// Brokers of the benchmark cluster. 3 runs the replicated suite instead of the
    /// default one: replication factor 3, `min.insync.replicas=2`, acks=all +
    /// idempotence + lz4 at 100 B and 1 KiB.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=3))]
    brokers: u16,
    /// Scenario groups of the default suite to run (default: all): `produce`
    /// (flat out, 6 partitions), `keyed` (keyed records to 1,000 partitions, and
    /// consuming them), `latency` (fixed rates), `consume` (6 partitions), `pipeline`
    /// (consume -> service -> produce, at-least-once and exactly-once), `stall` (peak
    /// RSS of a producer sending while the broker is stopped, first repeat only). `consume` and
    /// `pipeline` read topics of `produce`: they run the writer's runs even without it.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// PLAINTEXT port of the benchmark broker (its controller listens on port + 1).
    #[arg(long, env = "SLUICE_KAFKA_PORT", default_value_t = kafka::DEFAULT_PORT)]
    port: u16,
}

const CLIENTS: [&str; 10] = [
    "sluice",
    "sluice-ring",
    "sluice-aws-lc",
    "rdkafka",
    "rdkafka-tuned",
    "rskafka",
    "kacrab",
    "krafka",
    "franz-go",
    "java",
];
const DEFAULT_CLIENTS: [&str; 8] = [
    "sluice",
    "rdkafka",
    "rdkafka-tuned",
    "rskafka",
    "kacrab",
    "krafka",
    "franz-go",
    "java",
];
/// Clients the harness runs over PLAINTEXT only (no TLS set up for them).
const PLAINTEXT_ONLY: [&str; 4] = ["rskafka", "kacrab", "krafka", "franz-go"];
/// The Go program of the franz-go client, its module and where `go build` puts it.
const FRANZ_GO: &str = "franz-go";
const FRANZ_GO_DIR: &str = "benches/compare/go";
const FRANZ_GO_BIN: &str = "benches/compare/target/go/franz-go";
const TLS_CLIENTS: [&str; 6] = [
    "sluice",
    "sluice-ring",
    "sluice-aws-lc",
    "rdkafka",
    "rdkafka-tuned",
    "java",
];

/// Sluice with a crypto provider other than its default: the same client as `sluice`
/// except under TLS.
fn is_provider_variant(client: &str) -> bool {
    matches!(client, "sluice-ring" | "sluice-aws-lc")
}

/// Producer settings of a scenario. The fixed-rate latency scenario uses `MODES[0]`.
struct Mode {
    label: &'static str,
    acks: &'static str,
    idempotence: bool,
    compression: &'static str,
}

const MODES: [Mode; 2] = [
    Mode {
        label: "acks=all+idem lz4",
        acks: "all",
        idempotence: true,
        compression: "lz4",
    },
    Mode {
        label: "acks=1 none",
        acks: "1",
        idempotence: false,
        compression: "none",
    },
];
const SIZES: [usize; 2] = [100, 1024];
const PARTITIONS: u32 = 6;
/// The many-partitions scenario: one topic of this many partitions, records keyed with
/// [`KEYS`] distinct keys (10 per partition on average, so every partition gets some).
const MANY_PARTITIONS: u32 = 1000;
const KEYS: u64 = 10_000;
/// Scenario groups of `--only`.
const GROUPS: [&str; 6] = [
    "produce", "keyed", "latency", "consume", "pipeline", "stall",
];
/// Clients of the stalled-broker scenario (`compare stall`, franz-go's `stall`): those
/// with a bound on what they buffer. Java's ProducerPerformance cannot wait for the
/// broker to be stopped; rskafka has no such bound (its batch producer holds what it is
/// given).
const STALL_CLIENTS: [&str; 5] = ["sluice", "rdkafka", "kacrab", "krafka", FRANZ_GO];
/// Seconds the stalled-broker scenario keeps sending with the broker stopped: below the
/// broker's session timeout (9 s), so the stopped node is not fenced.
const STALL_SECS: u64 = 4;
/// Clients of the end-to-end pipeline scenario (`compare pipeline`).
const PIPELINE_CLIENTS: [&str; 2] = ["sluice", "rdkafka"];
/// Producers the keyed scenario leaves out: Java's ProducerPerformance sends no keys,
/// rskafka has no partitioner.
const KEYLESS: [&str; 2] = ["java", "rskafka"];

fn size_label(size: usize) -> String {
    if size.is_multiple_of(1024) {
        format!("{}KB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// How clients reach the broker: a listener and what it takes to use it.
struct Transport {
    /// `PLAINTEXT` or `SSL`; also the last word of the scenario names.
    name: &'static str,
    bootstrap: String,
    /// The CA of the broker's certificate (SSL).
    ca: Option<PathBuf>,
    /// Java client properties for the listener (SSL): `--producer.config` /
    /// `--consumer.config`.
    java_config: Option<PathBuf>,
}

impl Transport {
    /// `--security-protocol` / `--ca` of the compare binary.
    fn compare_args(&self, cmd: &mut Command) {
        if let Some(ca) = &self.ca {
            cmd.args(["--security-protocol", self.name])
                .arg("--ca")
                .arg(ca);
        }
    }
}

/// Everything a run needs to know about where things are.
struct Env {
    compare: PathBuf,
    /// The franz-go program (built only when `--clients` has it).
    franz_go: Option<PathBuf>,
    /// The PLAINTEXT listener: topics are created and deleted through it.
    plain: Transport,
    /// The SSL listener (`--tls` only).
    ssl: Option<Transport>,
    java: PathBuf,
    classpath: String,
    log4j: PathBuf,
    out: PathBuf,
    results: File,
}

pub fn run(mut args: BenchArgs) -> Result<ExitCode> {
    if args.quick {
        args.records = 20_000;
        args.repeat = 1;
        args.latency_secs = 2;
    }
    if args.clients.is_empty() {
        let default: &[&str] = if args.tls {
            &TLS_CLIENTS
        } else {
            &DEFAULT_CLIENTS
        };
        args.clients = default.iter().map(|c| c.to_string()).collect();
    }
    for c in &args.clients {
        if !CLIENTS.contains(&c.as_str()) {
            bail!("unknown client {c} ({})", CLIENTS.join(", "));
        }
    }
    if args.tls {
        if let Some(c) = args
            .clients
            .iter()
            .find(|c| PLAINTEXT_ONLY.contains(&c.as_str()))
        {
            bail!("--tls: the harness's {c} client has no TLS; leave it out of --clients");
        }
    }
    if args.clients.iter().all(|c| c == "rdkafka-tuned") {
        bail!("rdkafka-tuned only consumes: add a client that produces the topics");
    }
    if args.latency_rates.contains(&0) {
        bail!("--latency-rates must be at least 1");
    }
    if let Some(g) = args.only.iter().find(|g| !GROUPS.contains(&g.as_str())) {
        bail!("unknown scenario group {g} ({})", GROUPS.join(", "));
    }
    if args.brokers == 2 {
        bail!("--brokers must be 1 (the default suite) or 3 (the replicated suite)");
    }
    if args.brokers == 3 && args.tls {
        bail!("--tls runs on one broker; leave out --brokers 3");
    }
    let started = Instant::now();
    install_signal_flag();
    let root = kafka::workspace_root();
    let manifest = root.join("benches/compare/Cargo.toml");
    let with_go = args.clients.iter().any(|c| c == FRANZ_GO);
    check_build_prerequisites(with_go)?;
    eprintln!("xtask: building benches/compare (release; librdkafka from source the first time)");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .status()
        .context("running cargo build for benches/compare")?;
    if !status.success() {
        bail!("building benches/compare failed ({status})");
    }
    let compare = root.join("benches/compare/target/release/compare");
    let franz_go = if with_go {
        Some(build_franz_go(&root)?)
    } else {
        None
    };

    let shape = Shape {
        version: kafka::DEFAULT_VERSION.to_string(),
        brokers: args.brokers,
        port: args.port,
        security: args.tls,
    };
    let was_running = kafka::status().as_ref() == Some(&shape);
    let bootstrap = kafka::up(&shape)?;
    if was_running {
        eprintln!("xtask: using the Kafka that was already running; it stays up afterwards");
    }
    let result = run_all(&args, &root, (compare, franz_go), bootstrap, &shape);
    if !was_running {
        eprintln!("xtask: stopping the Kafka started for this run");
        if let Err(e) = kafka::down() {
            eprintln!("xtask: warning: stopping Kafka failed: {e:#}");
        }
    }
    result?;
    let secs = started.elapsed().as_secs();
    eprintln!("xtask: bench took {}m{:02}s", secs / 60, secs % 60);
    Ok(ExitCode::SUCCESS)
}

fn run_all(
    args: &BenchArgs,
    root: &Path,
    (compare, franz_go): (PathBuf, Option<PathBuf>),
    bootstrap: String,
    shape: &Shape,
) -> Result<()> {
    let out = root.join("target/bench");
    std::fs::create_dir_all(out.join("logs"))?;
    let log4j = out.join("log4j2.properties");
    std::fs::write(
        &log4j,
        "status = error\nappender.err.type = Console\nappender.err.name = STDERR\n\
         appender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\n\
         appender.err.layout.pattern = [%d] %p %m (%c)%n\n\
         rootLogger.level = warn\nrootLogger.appenderRef.err.ref = STDERR\n",
    )?;
    let results_path = out.join("results.jsonl");
    let results = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&results_path)?;
    let ssl = if shape.security {
        let ca = kafka::tls_dir().join("ca.pem");
        let java_config = out.join("java-ssl.properties");
        std::fs::write(
            &java_config,
            format!(
                "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n",
                ca.display()
            ),
        )?;
        let offset = kafka::SECURE_LISTENERS
            .iter()
            .find(|l| l.name == "SSL")
            .context("no SSL listener in kafka::SECURE_LISTENERS")?
            .offset;
        Some(Transport {
            name: "SSL",
            bootstrap: format!("127.0.0.1:{}", shape.port + offset),
            ca: Some(ca),
            java_config: Some(java_config),
        })
    } else {
        None
    };
    let mut env = Env {
        compare,
        franz_go,
        plain: Transport {
            name: "PLAINTEXT",
            bootstrap,
            ca: None,
            java_config: None,
        },
        ssl,
        java: kafka::java(),
        classpath: format!("{}/*", kafka::libs_dir(&shape.version).display()),
        log4j,
        out: out.clone(),
        results,
    };
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    if args.tls {
        run_tls(args, &mut env, stamp)?;
    } else if args.brokers == 3 {
        run_replicated(args, &mut env, stamp)?;
    } else {
        run_default(args, &mut env, stamp)?;
    }
    drop(env.results);
    eprintln!("xtask: results in {}", results_path.display());
    let status = Command::new(&env.compare)
        .arg("report")
        .arg("--input")
        .arg(&results_path)
        .arg("--out-dir")
        .arg(&env.out)
        .status()?;
    if !status.success() {
        bail!("compare report failed ({status})");
    }
    Ok(())
}

/// The clients of repeat `rep`: the order rotates each repeat so none always runs first
/// or last. Also the producing clients (rdkafka-tuned only consumes; see
/// `RDKAFKA_TUNED_CONSUMER` in the compare crate) and the one whose uncompressed acks=1
/// topic the consume scenarios read: rdkafka's when it runs, the same data for all.
fn rotation(args: &BenchArgs, rep: u32) -> (Vec<String>, Vec<String>, String) {
    let mut clients = args.clients.clone();
    let len = clients.len().max(1);
    clients.rotate_left(rep as usize % len);
    let producers: Vec<String> = clients
        .iter()
        .filter(|c| *c != "rdkafka-tuned")
        .cloned()
        .collect();
    let writer = if producers.iter().any(|c| c == "rdkafka") {
        "rdkafka".to_string()
    } else {
        producers[0].clone()
    };
    (clients, producers, writer)
}

/// The TLS suite (`--tls`, see the module docs): per repeat, the produce scenario over
/// both listeners, then one uncompressed acks=1 topic written over PLAINTEXT (not
/// measured) and read by every consumer over both listeners. Which listener goes first
/// alternates between repeats.
fn run_tls(args: &BenchArgs, env: &mut Env, stamp: u64) -> Result<()> {
    let mode = &MODES[0];
    let size = 1024;
    let n = args.records;
    for rep in 0..args.repeat {
        let (clients, producers, writer) = rotation(args, rep);
        // The setup producer must be a compare client (not Java).
        let writer = if writer == "java" {
            "sluice".to_string()
        } else {
            writer
        };
        if env.ssl.is_none() {
            bail!("--tls without the SSL listener");
        }
        let mut nets = [Net::Plain, Net::Ssl];
        if rep % 2 == 1 {
            nets.reverse();
        }
        let mut topics = Vec::new();
        for net in nets {
            let name = env.transport(net).name;
            let scenario = format!("produce {} {} {name}", size_label(size), mode.label);
            for client in &producers {
                if net == Net::Plain && is_provider_variant(client) {
                    continue;
                }
                check_interrupted()?;
                let topic = format!("bench-{stamp}-r{rep}-tls-{}-{client}", name.to_lowercase());
                create_topic(env, &topic, PARTITIONS)?;
                topics.push(topic.clone());
                eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
                let run = Produce::flat_out(n, size, mode);
                produce(env, net, client, &scenario, &topic, &run, rep)?;
            }
        }
        let topic = format!("bench-{stamp}-r{rep}-tls-consume");
        create_topic(env, &topic, PARTITIONS)?;
        topics.push(topic.clone());
        eprintln!(
            "xtask: [{}/{}] writing {n} x {} for the consume scenarios ({writer}, PLAINTEXT, not measured)",
            rep + 1,
            args.repeat,
            size_label(size)
        );
        let setup = Produce::flat_out(n, size, &MODES[1]);
        let cmd = produce_command(env, Net::Plain, &writer, &topic, &setup)?;
        measure(env, cmd, &format!("{topic}-write"))?;
        for net in nets {
            let scenario = format!("consume {} {}", size_label(size), env.transport(net).name);
            for client in &clients {
                if net == Net::Plain && is_provider_variant(client) {
                    continue;
                }
                check_interrupted()?;
                eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
                consume(env, net, client, &scenario, &topic, n, PARTITIONS, rep)?;
            }
        }
        delete_topics(env, &topics);
    }
    Ok(())
}

fn delete_topics(env: &Env, topics: &[String]) {
    for topic in topics {
        let status = Command::new(&env.compare)
            .args(["delete-topic", "--bootstrap", &env.plain.bootstrap])
            .args(["--topic", topic])
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("xtask: warning: deleting {topic} failed");
        }
    }
}

/// Which listener a run uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Net {
    Plain,
    Ssl,
}

impl Env {
    fn transport(&self, net: Net) -> &Transport {
        match net {
            Net::Plain => &self.plain,
            Net::Ssl => self.ssl.as_ref().unwrap_or(&self.plain),
        }
    }
}

/// The default suite, all over PLAINTEXT, by `--only` group: `produce` (2 sizes x 2
/// modes, 6 partitions), `keyed` (100 B keyed records to 1,000 partitions, then every
/// consumer reads the writer's topic), `latency` (fixed rates) and `consume` (2 sizes,
/// the writer's uncompressed acks=1 topics of `produce`) and `pipeline` (see
/// [`run_pipeline`]).
fn run_default(args: &BenchArgs, env: &mut Env, stamp: u64) -> Result<()> {
    let n = args.records;
    let group = |g: &str| args.only.is_empty() || args.only.iter().any(|o| o == g);
    if group("produce") {
        warm_broker(env, stamp, n)?;
    }
    for rep in 0..args.repeat {
        let (clients, producers, writer) = rotation(args, rep);
        let mut topics = Vec::new();
        let mut consume_topics = Vec::new();
        // `consume` and `pipeline` read what `produce` wrote: its writer topics.
        if group("produce") || group("consume") || group("pipeline") {
            for size in SIZES {
                for (mi, mode) in MODES.iter().enumerate() {
                    let scenario = format!("produce {} {}", size_label(size), mode.label);
                    for client in &producers {
                        let writes_consume_topic = mi == 1 && *client == writer;
                        if !group("produce") && !writes_consume_topic {
                            continue;
                        }
                        check_interrupted()?;
                        let topic = format!("bench-{stamp}-r{rep}-{size}-m{mi}-{client}");
                        create_topic(env, &topic, PARTITIONS)?;
                        topics.push(topic.clone());
                        eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
                        let run = Produce::flat_out(n, size, mode);
                        let ran = produce(env, Net::Plain, client, &scenario, &topic, &run, rep)?;
                        if writes_consume_topic && ran {
                            consume_topics.push((size, topic.clone()));
                        }
                    }
                }
            }
        }
        if group("keyed") {
            run_keyed(args, env, (stamp, rep), (&clients, &producers))?;
        }
        // Fixed rate: delivery latency when the client's buffer is not full.
        let mode = &MODES[0];
        let size = SIZES[0];
        for &rate in args.latency_rates.iter().filter(|_| group("latency")) {
            let scenario = format!("latency {} {rate}/s {}", size_label(size), mode.label);
            let fixed_rate = Produce {
                rate: Some(rate),
                ..Produce::flat_out(rate * args.latency_secs, size, mode)
            };
            for client in &producers {
                check_interrupted()?;
                let topic = format!("bench-{stamp}-r{rep}-latency{rate}-{client}");
                create_topic(env, &topic, PARTITIONS)?;
                topics.push(topic.clone());
                eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
                produce(env, Net::Plain, client, &scenario, &topic, &fixed_rate, rep)?;
            }
        }
        for (size, topic) in consume_topics.iter().filter(|_| group("consume")) {
            let scenario = format!("consume {}", size_label(*size));
            for client in &clients {
                check_interrupted()?;
                eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
                consume(
                    env,
                    Net::Plain,
                    client,
                    &scenario,
                    topic,
                    n,
                    PARTITIONS,
                    rep,
                )?;
            }
        }
        let input = consume_topics.iter().find(|(size, _)| *size == SIZES[0]);
        if let (true, Some((size, input))) = (group("pipeline"), input) {
            run_pipeline(
                args,
                env,
                (stamp, rep),
                &clients,
                (*size, input),
                &mut topics,
            )?;
        }
        if group("stall") && rep == 0 {
            run_stall(env, (stamp, rep), &producers, &mut topics)?;
        }
        delete_topics(env, &topics);
    }
    Ok(())
}

/// The stalled-broker scenario (`--only stall`; once per run, a bound is not a speed):
/// each of [`STALL_CLIENTS`] connects to a fresh topic and says `ready`; the broker is
/// stopped (SIGSTOP), the client sends 1 KiB records for [`STALL_SECS`] and exits with
/// them buffered, and the broker is continued. Its peak RSS should stay under its 32 MiB
/// bound plus a fixed overhead.
fn run_stall(
    env: &mut Env,
    (stamp, rep): (u64, u32),
    producers: &[String],
    topics: &mut Vec<String>,
) -> Result<()> {
    let size = 1024;
    let scenario = format!("stalled broker {} 32MiB bound", size_label(size));
    for client in producers
        .iter()
        .filter(|c| STALL_CLIENTS.contains(&c.as_str()))
    {
        check_interrupted()?;
        let topic = format!("bench-{stamp}-r{rep}-stall-{client}");
        create_topic(env, &topic, PARTITIONS)?;
        topics.push(topic.clone());
        eprintln!("xtask: [{}/1] {scenario}: {client}", rep + 1);
        let mut cmd = client_command(env, client)?;
        cmd.args(["stall", "--client", client, "--bootstrap"])
            .arg(&env.plain.bootstrap)
            .args(["--topic", &topic, "--size", &size.to_string()])
            .args(["--seconds", &STALL_SECS.to_string()])
            .args(["--scenario", &scenario]);
        let result = measure_stalled(env, cmd, &topic).and_then(|measured| {
            let line = last_json_line(&measured.stdout)?;
            record(env, &line, &measured, rep)
        });
        peer_may_fail(env, client, &scenario, rep, result)?;
    }
    Ok(())
}

/// Continues the broker when dropped: however a stalled run ends, the broker runs again.
struct Stopped;

impl Stopped {
    fn broker() -> Result<Stopped> {
        if kafka::signal_nodes(libc::SIGSTOP) == 0 {
            bail!("no broker of ours to stop");
        }
        Ok(Stopped)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        kafka::signal_nodes(libc::SIGCONT);
    }
}

/// [`measure`] with the stalled-broker handshake (see `stall.rs` in the compare crate):
/// the broker is stopped once the client prints `ready`, and continued after it exits.
fn measure_stalled(env: &Env, mut cmd: Command, log: &str) -> Result<Measured> {
    let err_path = env.out.join("logs").join(format!("{log}.err"));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let handshake = (|| -> Result<(Option<Stopped>, String)> {
        let mut stdin = child.stdin.take().context("the client's stdin")?;
        let stdout = child.stdout.take().context("the client's stdout")?;
        let mut stdout = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let stopped = loop {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                break None;
            }
            if line.trim() == "ready" {
                let stopped = Stopped::broker()?;
                writeln!(stdin, "go")?;
                break Some(stopped);
            }
        };
        let mut rest = String::new();
        stdout.read_to_string(&mut rest)?;
        Ok((stopped, rest))
    })();
    match handshake {
        Ok((stopped, rest)) => {
            let measured = reap(pid, &err_path, rest, log);
            drop(stopped);
            measured
        }
        Err(e) => {
            // The broker is continued already (the guard is dropped); end the client.
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// The end-to-end scenarios of one repeat: [`PIPELINE_CLIENTS`] copy `input` (`size`
/// records, the writer's topic) to a fresh output topic, at-least-once and exactly-once,
/// each with a fresh consumer group; `compare pipeline` checks what was committed and
/// written.
fn run_pipeline(
    args: &BenchArgs,
    env: &mut Env,
    (stamp, rep): (u64, u32),
    clients: &[String],
    (size, input): (usize, &str),
    topics: &mut Vec<String>,
) -> Result<()> {
    for exactly_once in [false, true] {
        let label = if exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        };
        let scenario = format!("pipeline {} {label}", size_label(size));
        for client in clients
            .iter()
            .filter(|c| PIPELINE_CLIENTS.contains(&c.as_str()))
        {
            check_interrupted()?;
            let name = format!("bench-{stamp}-r{rep}-pipeline-{label}-{client}");
            create_topic(env, &name, PARTITIONS)?;
            topics.push(name.clone());
            eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
            let mut cmd = Command::new(&env.compare);
            cmd.args(["pipeline", "--client", client, "--bootstrap"])
                .arg(&env.plain.bootstrap)
                .args(["--input", input, "--output", &name, "--group", &name])
                .args(["--records", &args.records.to_string()])
                .args(["--partitions", &PARTITIONS.to_string()])
                .args(["--exactly-once", &exactly_once.to_string()])
                .args(["--scenario", &scenario]);
            let result = measure(env, cmd, &name).and_then(|measured| {
                let line = last_json_line(&measured.stdout)?;
                record(env, &line, &measured, rep)
            });
            peer_may_fail(env, client, &scenario, rep, result)?;
        }
    }
    Ok(())
}

/// Before the first measured run: `records` (at most 500,000) of each size, written by
/// Sluice with the first mode (acks=all + idempotence + lz4) to a topic of their own, not
/// measured. A freshly started broker is slow to take its first writes (its JIT is
/// cold): in one run the first client took 3.3 s for what the next took 1.7 s, whichever
/// client went first.
fn warm_broker(env: &mut Env, stamp: u64, records: u64) -> Result<()> {
    let topic = format!("bench-{stamp}-warm");
    create_topic(env, &topic, PARTITIONS)?;
    for size in SIZES {
        let n = records.min(500_000);
        eprintln!(
            "xtask: warming the broker: {n} x {} (sluice, not measured)",
            size_label(size)
        );
        let run = Produce::flat_out(n, size, &MODES[0]);
        let cmd = produce_command(env, Net::Plain, "sluice", &topic, &run)?;
        measure(env, cmd, &format!("{topic}-{size}"))?;
    }
    delete_topics(env, std::slice::from_ref(&topic));
    Ok(())
}

/// The many-partitions scenarios of one repeat: every producer that sends keys (not
/// [`KEYLESS`]) writes `records` keyed 100 B records, acks=all + idempotence + lz4, to one
/// topic of [`MANY_PARTITIONS`] partitions, placed by its own murmur2 partitioner; then
/// every consumer reads `records` of it from the start.
///
/// The topic is written once, unmeasured, before the clients run: a new topic of 1,000
/// partitions is slow to take its first ~600 records per partition (one broker here:
/// 16 s, 7.6 s, 2.8 s, then 1.4 s for the same 200,000 records, whichever client sends
/// them), so without the warm-up whoever ran first would measure the broker. The topic
/// is deleted at the end: thousands of partitions left on the broker would slow every
/// later run.
fn run_keyed(
    args: &BenchArgs,
    env: &mut Env,
    (stamp, rep): (u64, u32),
    (clients, producers): (&[String], &[String]),
) -> Result<()> {
    let keyed: Vec<&String> = producers
        .iter()
        .filter(|c| !KEYLESS.contains(&c.as_str()))
        .collect();
    if keyed.is_empty() {
        eprintln!("xtask: keyed scenarios skipped: no client of --clients sends keys");
        return Ok(());
    }
    let topic = format!("bench-{stamp}-r{rep}-keyed");
    create_topic(env, &topic, MANY_PARTITIONS)?;
    let result = keyed_runs(args, env, rep, (clients, &keyed), &topic);
    delete_topics(env, std::slice::from_ref(&topic));
    result
}

fn keyed_runs(
    args: &BenchArgs,
    env: &mut Env,
    rep: u32,
    (clients, keyed): (&[String], &[&String]),
    topic: &str,
) -> Result<()> {
    let n = args.records;
    let mode = &MODES[0];
    let size = SIZES[0];
    let run = Produce {
        keys: KEYS,
        ..Produce::flat_out(n, size, mode)
    };
    let warm = 600 * u64::from(MANY_PARTITIONS);
    eprintln!(
        "xtask: [{}/{}] warming the {MANY_PARTITIONS}-partition topic: {warm} keyed records (sluice, not measured)",
        rep + 1,
        args.repeat
    );
    let warm_up = Produce { n: warm, ..run };
    let cmd = produce_command(env, Net::Plain, "sluice", topic, &warm_up)?;
    measure(env, cmd, &format!("{topic}-warm"))?;
    let scenario = format!(
        "produce {} keyed {MANY_PARTITIONS}p {}",
        size_label(size),
        mode.label
    );
    for client in keyed {
        check_interrupted()?;
        eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
        produce(env, Net::Plain, client, &scenario, topic, &run, rep)?;
    }
    let scenario = format!("consume {} {MANY_PARTITIONS}p", size_label(size));
    for client in clients {
        check_interrupted()?;
        eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
        consume(
            env,
            Net::Plain,
            client,
            &scenario,
            topic,
            n,
            MANY_PARTITIONS,
            rep,
        )?;
    }
    Ok(())
}

/// The replicated suite (`--brokers 3`): every producer writes 100 B and 1 KiB records,
/// acks=all + idempotence + lz4, to its own fresh 6-partition topic of replication
/// factor 3 (the cluster's default) with `min.insync.replicas=2`: what production runs.
fn run_replicated(args: &BenchArgs, env: &mut Env, stamp: u64) -> Result<()> {
    let mode = &MODES[0];
    for rep in 0..args.repeat {
        let (_, producers, _) = rotation(args, rep);
        let mut topics = Vec::new();
        for size in SIZES {
            let scenario = format!("produce {} {} RF3", size_label(size), mode.label);
            for client in &producers {
                check_interrupted()?;
                let topic = format!("bench-{stamp}-r{rep}-rf3-{size}-{client}");
                create_topic(env, &topic, PARTITIONS)?;
                topics.push(topic.clone());
                eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
                let run = Produce::flat_out(args.records, size, mode);
                produce(env, Net::Plain, client, &scenario, &topic, &run, rep)?;
            }
        }
        delete_topics(env, &topics);
    }
    Ok(())
}

/// What building `benches/compare` needs from the system besides Rust: rdkafka compiles
/// librdkafka with cmake and a C/C++ compiler, against the system's OpenSSL (the TLS
/// scenarios) and, for librdkafka 2.12.1's cmake build, the libcurl headers (see
/// BENCHMARKS.md). Checked before the build so a missing one is named, not buried in
/// cmake output. CI does not run the bench; these are only needed here.
fn check_build_prerequisites(with_go: bool) -> Result<()> {
    let ok = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut missing = Vec::new();
    if !ok("cmake", &["--version"]) {
        missing.push("cmake (Debian: cmake)");
    }
    if !ok("c++", &["--version"]) {
        missing.push("a C/C++ compiler (Debian: build-essential)");
    }
    if !ok("pkg-config", &["--version"]) {
        missing.push("pkg-config (Debian: pkg-config)");
    } else {
        if !ok("pkg-config", &["--exists", "openssl"]) {
            missing.push("the OpenSSL headers, for librdkafka's TLS (Debian: libssl-dev)");
        }
        if !ok("pkg-config", &["--exists", "libcurl"]) {
            missing.push(
                "the libcurl headers, for librdkafka's cmake build (Debian: libcurl4-openssl-dev)",
            );
        }
    }
    if with_go && !ok(&go_tool(), &["version"]) {
        missing.push(
            "Go (>= 1.24; or leave franz-go out of --clients), on PATH or in /usr/local/go/bin",
        );
    }
    if !missing.is_empty() {
        bail!(
            "building benches/compare (rdkafka = librdkafka from source) needs:\n  - {}\n\
             On Debian/Ubuntu: apt-get install -y cmake build-essential pkg-config libssl-dev \
             libcurl4-openssl-dev",
            missing.join("\n  - ")
        );
    }
    Ok(())
}

/// The machine's `go`: the one on PATH, else the official tarball's place.
fn go_tool() -> String {
    let on_path = Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        "go".to_string()
    } else {
        "/usr/local/go/bin/go".to_string()
    }
}

/// `go build` of the franz-go client (`benches/compare/go`, its own module; go.mod and
/// go.sum are committed, the modules come from the Go module proxy into the Go module
/// cache). The binary goes under the compare crate's target directory.
fn build_franz_go(root: &Path) -> Result<PathBuf> {
    eprintln!("xtask: building the franz-go client ({FRANZ_GO_DIR}, go build)");
    let bin = root.join(FRANZ_GO_BIN);
    let status = Command::new(go_tool())
        .current_dir(root.join(FRANZ_GO_DIR))
        .env("GOFLAGS", "-mod=mod")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .status()
        .context("running go build for the franz-go client")?;
    if !status.success() {
        bail!("building the franz-go client failed ({status})");
    }
    Ok(bin)
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

fn create_topic(env: &Env, topic: &str, partitions: u32) -> Result<()> {
    let status = Command::new(&env.compare)
        .args([
            "create-topic",
            "--bootstrap",
            &env.plain.bootstrap,
            "--topic",
            topic,
        ])
        .args(["--partitions", &partitions.to_string()])
        .status()?;
    if !status.success() {
        bail!("creating topic {topic} failed");
    }
    Ok(())
}

/// What one produce run sends: `n` records of `size` bytes with `mode`'s settings, flat
/// out or at `rate` records per second, keyless or with `keys` distinct keys.
struct Produce<'a> {
    n: u64,
    size: usize,
    mode: &'a Mode,
    rate: Option<u64>,
    keys: u64,
}

impl<'a> Produce<'a> {
    /// Keyless records as fast as the client takes them.
    fn flat_out(n: u64, size: usize, mode: &'a Mode) -> Self {
        Produce {
            n,
            size,
            mode,
            rate: None,
            keys: 0,
        }
    }
}

/// Runs one produce scenario and records it; `Ok(false)` when a peer failed (recorded as
/// such, see [`peer_may_fail`]).
fn produce(
    env: &mut Env,
    net: Net,
    client: &str,
    scenario: &str,
    topic: &str,
    run: &Produce,
    rep: u32,
) -> Result<bool> {
    let result = try_produce(env, net, client, scenario, topic, run, rep);
    peer_may_fail(env, client, scenario, rep, result)
}

fn try_produce(
    env: &mut Env,
    net: Net,
    client: &str,
    scenario: &str,
    topic: &str,
    run: &Produce,
    rep: u32,
) -> Result<()> {
    let Produce {
        n,
        size,
        mode,
        rate,
        keys,
    } = *run;
    let transport = env.transport(net);
    if client == "java" {
        if keys > 0 {
            bail!("Java's ProducerPerformance sends no keys (see KEYLESS)");
        }
        // ProducerPerformance's --throughput: -1 is flat out, else records per second.
        let throughput = rate.map_or("-1".to_string(), |r| r.to_string());
        let mut cmd = java(env, "org.apache.kafka.tools.ProducerPerformance");
        cmd.args(["--topic", topic, "--num-records", &n.to_string()])
            .args([
                "--record-size",
                &size.to_string(),
                "--throughput",
                &throughput,
            ])
            .arg("--producer-props")
            .arg(format!("bootstrap.servers={}", transport.bootstrap))
            .arg(format!("acks={}", mode.acks))
            .arg(format!("enable.idempotence={}", mode.idempotence))
            .arg(format!("compression.type={}", mode.compression))
            .args(["linger.ms=5", "batch.size=65536"]);
        if let Some(config) = &transport.java_config {
            cmd.arg("--producer.config").arg(config);
        }
        let measured = measure(env, cmd, &format!("{topic}-java"))?;
        let line = java_producer_line(&measured.stdout, scenario, n, size)?;
        return record(env, &line, &measured, rep);
    }
    let mut cmd = produce_command(env, net, client, topic, run)?;
    cmd.args(["--scenario", scenario]);
    let measured = measure(env, cmd, &format!("{topic}-{client}"))?;
    let line = last_json_line(&measured.stdout)?;
    record(env, &line, &measured, rep)
}

/// The `produce` command of `client` (a compare client or franz-go) writing `run` to
/// `topic`, without a scenario label: the measured runs add theirs.
fn produce_command(
    env: &Env,
    net: Net,
    client: &str,
    topic: &str,
    run: &Produce,
) -> Result<Command> {
    let transport = env.transport(net);
    let mut cmd = client_command(env, client)?;
    cmd.args(["produce", "--client", client, "--bootstrap"])
        .arg(&transport.bootstrap)
        .args(["--topic", topic, "--records", &run.n.to_string()])
        .args(["--size", &run.size.to_string(), "--acks", run.mode.acks])
        .args(["--compression", run.mode.compression])
        .args(["--idempotence", &run.mode.idempotence.to_string()]);
    transport.compare_args(&mut cmd);
    if let Some(r) = run.rate {
        cmd.args(["--rate", &r.to_string()]);
    }
    if run.keys > 0 {
        cmd.args(["--keys", &run.keys.to_string()]);
    }
    Ok(cmd)
}

/// Runs one consume scenario and records it; `Ok(false)` when a peer failed (recorded as
/// such, see [`peer_may_fail`]).
#[allow(clippy::too_many_arguments)]
fn consume(
    env: &mut Env,
    net: Net,
    client: &str,
    scenario: &str,
    topic: &str,
    n: u64,
    partitions: u32,
    rep: u32,
) -> Result<bool> {
    let result = try_consume(env, net, client, scenario, topic, n, partitions, rep);
    peer_may_fail(env, client, scenario, rep, result)
}

#[allow(clippy::too_many_arguments)]
fn try_consume(
    env: &mut Env,
    net: Net,
    client: &str,
    scenario: &str,
    topic: &str,
    n: u64,
    partitions: u32,
    rep: u32,
) -> Result<()> {
    let transport = env.transport(net);
    let log = format!("{topic}-consume-{}-{client}", transport.name.to_lowercase());
    if client == "java" {
        let mut cmd = java(env, "org.apache.kafka.tools.ConsumerPerformance");
        cmd.args(["--bootstrap-server", &transport.bootstrap, "--topic", topic])
            .args(["--messages", &n.to_string()]);
        if let Some(config) = &transport.java_config {
            cmd.arg("--consumer.config").arg(config);
        }
        let run = measure(env, cmd, &log)?;
        let line = java_consumer_line(&run.stdout, scenario)?;
        return record(env, &line, &run, rep);
    }
    let mut cmd = client_command(env, client)?;
    cmd.args(["consume", "--client", client, "--bootstrap"])
        .arg(&transport.bootstrap)
        .args(["--topic", topic, "--records", &n.to_string()])
        .args(["--partitions", &partitions.to_string()])
        .args(["--scenario", scenario]);
    transport.compare_args(&mut cmd);
    let run = measure(env, cmd, &log)?;
    let line = last_json_line(&run.stdout)?;
    record(env, &line, &run, rep)
}

/// The program that runs `client`: the franz-go binary for franz-go (same arguments,
/// same result line), else the compare binary.
fn client_command(env: &Env, client: &str) -> Result<Command> {
    if client == FRANZ_GO {
        let bin = env
            .franz_go
            .as_ref()
            .context("the franz-go client was not built")?;
        Ok(Command::new(bin))
    } else {
        Ok(Command::new(&env.compare))
    }
}

/// `java` with the heap Kafka's perf-test scripts use and WARN-only logging.
fn java(env: &Env, class: &str) -> Command {
    let mut cmd = Command::new(&env.java);
    cmd.arg("-Xmx512M")
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            env.log4j.display()
        ))
        .args(["-cp", &env.classpath, class]);
    cmd
}

struct Measured {
    stdout: String,
    cpu_secs: f64,
    max_rss_kb: i64,
}

/// Run `cmd` to completion; its CPU (user + sys) and peak RSS from `wait4(2)`. stderr goes
/// to `target/bench/logs/<log>.err`.
fn measure(env: &Env, mut cmd: Command, log: &str) -> Result<Measured> {
    let err_path = env.out.join("logs").join(format!("{log}.err"));
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = String::new();
    child
        .stdout
        .expect("piped")
        .read_to_string(&mut stdout)
        .context("reading the client's stdout")?;
    reap(pid, &err_path, stdout, log)
}

/// Waits for the client `pid` (its stdout read to the end), with its CPU and peak RSS.
fn reap(pid: libc::pid_t, err_path: &Path, stdout: String, log: &str) -> Result<Measured> {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child `pid`
    // (std's Child is dropped without waiting, so the pid is reaped exactly once, here).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let err = std::fs::read_to_string(err_path).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{log} failed (wait status {status}); stderr tail:\n{}\nstdout:\n{stdout}",
            tail.join("\n")
        );
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measured {
        stdout,
        cpu_secs: secs(ru.ru_utime) + secs(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss,
    })
}

/// A peer's failed run does not end the bench: it is written to results.jsonl as
/// `{"scenario", "client", "rep", "failed"}` (the report lists it) and the run goes on,
/// `Ok(false)`. Sluice's own failures, and an interrupt, still end it.
fn peer_may_fail(
    env: &mut Env,
    client: &str,
    scenario: &str,
    rep: u32,
    result: Result<()>,
) -> Result<bool> {
    let err = match result {
        Ok(()) => return Ok(true),
        Err(e) if client == "sluice" || INTERRUPTED.load(Ordering::SeqCst) => return Err(e),
        Err(e) => e,
    };
    let reason = format!("{err:#}");
    eprintln!("xtask: {client} failed {scenario:?}; recorded, going on: {reason}");
    let line = format!(
        "{{\"scenario\":{},\"client\":{},\"rep\":{rep},\"failed\":{}}}",
        json_str(scenario),
        json_str(client),
        json_str(&failure_summary(&reason))
    );
    writeln!(env.results, "{line}")?;
    Ok(false)
}

/// The lines of a failure that say what went wrong, for the report: the error and the
/// last line of the client's stderr, without the stdout dump.
fn failure_summary(reason: &str) -> String {
    let mut lines = reason.lines();
    let first = lines.next().unwrap_or_default();
    let last_err = reason
        .split("stdout:")
        .next()
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && *l != first);
    match last_err {
        Some(l) => format!("{first} {}", l.trim()),
        None => first.to_string(),
    }
}

/// Append the client's JSON object, extended with what we measured, to results.jsonl.
fn record(env: &mut Env, line: &str, run: &Measured, rep: u32) -> Result<()> {
    let body = line
        .trim()
        .strip_suffix('}')
        .context("result line is not a JSON object")?;
    let full = format!(
        "{body},\"cpu_secs\":{:.4},\"max_rss_kb\":{},\"rep\":{rep}}}",
        run.cpu_secs, run.max_rss_kb
    );
    eprintln!("xtask:   {full}");
    writeln!(env.results, "{full}")?;
    Ok(())
}

fn last_json_line(stdout: &str) -> Result<String> {
    stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .map(str::to_string)
        .with_context(|| format!("no result line in:\n{stdout}"))
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// ProducerPerformance's summary: `N records sent, R records/sec (M MB/sec), A ms avg
/// latency, X ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th.`
fn java_producer_line(stdout: &str, scenario: &str, n: u64, size: usize) -> Result<String> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("records/sec") && l.contains("50th"))
        .with_context(|| format!("no ProducerPerformance summary in:\n{stdout}"))?;
    let num_before = |marker: &str| -> Result<f64> {
        let head = &line[..line
            .find(marker)
            .with_context(|| format!("no {marker:?} in {line:?}"))?];
        let tok = head.split_whitespace().last().unwrap_or("");
        tok.trim_start_matches('(')
            .parse()
            .with_context(|| format!("parsing {tok:?} before {marker:?} in {line:?}"))
    };
    let records = num_before(" records sent")? as u64;
    if records != n {
        bail!("ProducerPerformance sent {records} records, expected {n}");
    }
    let rps = num_before(" records/sec")?;
    let secs = records as f64 / rps;
    Ok(format!(
        "{{\"client\":\"java\",\"scenario\":{},\"records\":{records},\"bytes\":{},\"secs\":{secs},\"p50_ms\":{},\"p99_ms\":{},\"p999_ms\":{}}}",
        json_str(scenario),
        records * size as u64,
        num_before(" ms 50th")?,
        num_before(" ms 99th")?,
        num_before(" ms 99.9th")?,
    ))
}

/// ConsumerPerformance's CSV: a header line (start.time, end.time, data.consumed.in.MB,
/// MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, ...) and a
/// values line. The time is fetch.time.ms: the total minus the group join, which the
/// other clients (manual assignment) do not do.
fn java_consumer_line(stdout: &str, scenario: &str) -> Result<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    let hi = lines
        .iter()
        .position(|l| l.contains("data.consumed.in.nMsg"))
        .with_context(|| format!("no ConsumerPerformance header in:\n{stdout}"))?;
    let header: Vec<&str> = lines[hi].split(',').map(str::trim).collect();
    let values: Vec<&str> = lines
        .get(hi + 1)
        .context("no ConsumerPerformance values line")?
        .split(',')
        .map(str::trim)
        .collect();
    let get = |name: &str| -> Result<f64> {
        let i = header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no column {name} in {header:?}"))?;
        values
            .get(i)
            .context("short values line")?
            .parse()
            .with_context(|| format!("parsing column {name}"))
    };
    let records = get("data.consumed.in.nMsg")? as u64;
    let bytes = (get("data.consumed.in.MB")? * 1024.0 * 1024.0).round() as u64;
    let secs = get("fetch.time.ms")? / 1000.0;
    Ok(format!(
        "{{\"client\":\"java\",\"scenario\":{},\"records\":{records},\"bytes\":{bytes},\"secs\":{secs},\"p50_ms\":null,\"p99_ms\":null}}",
        json_str(scenario)
    ))
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT/SIGTERM set the flag; the run stops between clients and Kafka is stopped.
fn install_signal_flag() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}
