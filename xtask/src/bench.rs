//! `cargo xtask bench`: side-by-side client benchmarks on the local Kafka.
//!
//! Builds `benches/compare` (its own workspace: rdkafka compiles librdkafka from C), brings
//! up one broker (reusing a running one), and for every scenario runs each client as its
//! own process against its own fresh 6-partition topic: Sluice, rdkafka (at librdkafka's
//! defaults and tuned for throughput) and rskafka via the `compare` binary, Java via
//! Kafka's ProducerPerformance / ConsumerPerformance. Besides the flat-out produce and
//! consume scenarios, one `latency` scenario produces at a fixed rate, where delivery
//! latency is not dominated by the client's own queue. CPU (user + sys) and peak RSS of
//! each client process come from `wait4(2)`. Every run appends one JSON line to
//! `target/bench/results.jsonl`; `compare report` then writes the medians to
//! `target/bench/results.md` and charts to `target/bench/*.png`.
//!
//! The defaults are the full run behind BENCHMARKS.md; `--quick` is for iteration.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
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
    /// Records per second of the fixed-rate latency scenario.
    #[arg(long, default_value_t = 10_000)]
    latency_rate: u64,
    /// Seconds of the fixed-rate latency scenario.
    #[arg(long, default_value_t = 10)]
    latency_secs: u64,
    /// Iteration run: 20,000 records, 1 repeat, 2 s at the fixed rate (about a minute
    /// once built).
    #[arg(long)]
    quick: bool,
    /// Clients to run (default: all five).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sluice,rdkafka,rdkafka-tuned,rskafka,java"
    )]
    clients: Vec<String>,
    /// PLAINTEXT port of the benchmark broker (its controller listens on port + 1).
    #[arg(long, env = "SLUICE_KAFKA_PORT", default_value_t = kafka::DEFAULT_PORT)]
    port: u16,
}

const CLIENTS: [&str; 5] = ["sluice", "rdkafka", "rdkafka-tuned", "rskafka", "java"];

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

fn size_label(size: usize) -> String {
    if size.is_multiple_of(1024) {
        format!("{}KB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// Everything a run needs to know about where things are.
struct Env {
    compare: PathBuf,
    bootstrap: String,
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
    for c in &args.clients {
        if !CLIENTS.contains(&c.as_str()) {
            bail!("unknown client {c} ({})", CLIENTS.join(", "));
        }
    }
    if args.clients.iter().all(|c| c == "rdkafka-tuned") {
        bail!("rdkafka-tuned only consumes: add a client that produces the topics");
    }
    if args.latency_rate == 0 {
        bail!("--latency-rate must be at least 1");
    }
    let started = Instant::now();
    install_signal_flag();
    let root = kafka::workspace_root();
    let manifest = root.join("benches/compare/Cargo.toml");
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

    let shape = Shape {
        version: kafka::DEFAULT_VERSION.to_string(),
        brokers: 1,
        port: args.port,
        security: false,
    };
    let was_running = kafka::status().as_ref() == Some(&shape);
    let bootstrap = kafka::up(&shape)?;
    if was_running {
        eprintln!("xtask: using the Kafka that was already running; it stays up afterwards");
    }
    let result = run_all(&args, &root, compare, bootstrap, &shape);
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
    compare: PathBuf,
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
    let mut env = Env {
        compare,
        bootstrap,
        java: kafka::java(),
        classpath: format!("{}/*", kafka::libs_dir(&shape.version).display()),
        log4j,
        out: out.clone(),
        results,
    };
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let n = args.records;
    for rep in 0..args.repeat {
        // Rotate the client order each repeat so none always runs first or last.
        let mut clients = args.clients.clone();
        let len = clients.len().max(1);
        clients.rotate_left(rep as usize % len);
        // rdkafka-tuned only consumes (see `RDKAFKA_TUNED_CONSUMER` in the compare crate).
        let producers: Vec<&String> = clients.iter().filter(|c| *c != "rdkafka-tuned").collect();
        // The consume scenarios read the topic rdkafka wrote uncompressed with acks=1 in
        // this repeat (or, without rdkafka, the first producer's), the same data for all.
        let writer = if producers.iter().any(|c| *c == "rdkafka") {
            "rdkafka"
        } else {
            producers[0].as_str()
        };
        let mut topics = Vec::new();
        let mut consume_topics = Vec::new();
        for size in SIZES {
            for (mi, mode) in MODES.iter().enumerate() {
                let scenario = format!("produce {} {}", size_label(size), mode.label);
                for &client in &producers {
                    check_interrupted()?;
                    let topic = format!("bench-{stamp}-r{rep}-{size}-m{mi}-{client}");
                    create_topic(&env, &topic)?;
                    topics.push(topic.clone());
                    eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
                    let run = Produce {
                        n,
                        size,
                        mode,
                        rate: None,
                    };
                    produce(&mut env, client, &scenario, &topic, &run, rep)?;
                    if mi == 1 && client == writer {
                        consume_topics.push((size, topic.clone()));
                    }
                }
            }
        }
        // Fixed rate: delivery latency when the client's buffer is not full.
        let mode = &MODES[0];
        let size = SIZES[0];
        let scenario = format!(
            "latency {} {}/s {}",
            size_label(size),
            args.latency_rate,
            mode.label
        );
        let fixed_rate = Produce {
            n: args.latency_rate * args.latency_secs,
            size,
            mode,
            rate: Some(args.latency_rate),
        };
        for &client in &producers {
            check_interrupted()?;
            let topic = format!("bench-{stamp}-r{rep}-latency-{client}");
            create_topic(&env, &topic)?;
            topics.push(topic.clone());
            eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
            produce(&mut env, client, &scenario, &topic, &fixed_rate, rep)?;
        }
        for (size, topic) in &consume_topics {
            let scenario = format!("consume {}", size_label(*size));
            for client in &clients {
                check_interrupted()?;
                eprintln!("xtask: [{}/{}] {scenario}: {client}", rep + 1, args.repeat);
                consume(&mut env, client, &scenario, topic, n, rep)?;
            }
        }
        for topic in &topics {
            let status = Command::new(&env.compare)
                .args([
                    "delete-topic",
                    "--bootstrap",
                    &env.bootstrap,
                    "--topic",
                    topic,
                ])
                .status()?;
            if !status.success() {
                eprintln!("xtask: warning: deleting {topic} failed");
            }
        }
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

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

fn create_topic(env: &Env, topic: &str) -> Result<()> {
    let status = Command::new(&env.compare)
        .args([
            "create-topic",
            "--bootstrap",
            &env.bootstrap,
            "--topic",
            topic,
        ])
        .args(["--partitions", &PARTITIONS.to_string()])
        .status()?;
    if !status.success() {
        bail!("creating topic {topic} failed");
    }
    Ok(())
}

/// What one produce run sends: `n` records of `size` bytes with `mode`'s settings, flat
/// out or at `rate` records per second.
struct Produce<'a> {
    n: u64,
    size: usize,
    mode: &'a Mode,
    rate: Option<u64>,
}

fn produce(
    env: &mut Env,
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
    } = *run;
    if client == "java" {
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
            .arg(format!("bootstrap.servers={}", env.bootstrap))
            .arg(format!("acks={}", mode.acks))
            .arg(format!("enable.idempotence={}", mode.idempotence))
            .arg(format!("compression.type={}", mode.compression))
            .args(["linger.ms=5", "batch.size=65536"]);
        let measured = measure(env, cmd, &format!("{topic}-java"))?;
        let line = java_producer_line(&measured.stdout, scenario, n, size)?;
        return record(env, &line, &measured, rep);
    }
    let mut cmd = Command::new(&env.compare);
    cmd.args(["produce", "--client", client, "--bootstrap", &env.bootstrap])
        .args(["--topic", topic, "--records", &n.to_string()])
        .args(["--size", &size.to_string(), "--acks", mode.acks])
        .args(["--compression", mode.compression])
        .args(["--idempotence", &mode.idempotence.to_string()])
        .args(["--scenario", scenario]);
    if let Some(r) = rate {
        cmd.args(["--rate", &r.to_string()]);
    }
    let measured = measure(env, cmd, &format!("{topic}-{client}"))?;
    let line = last_json_line(&measured.stdout)?;
    record(env, &line, &measured, rep)
}

fn consume(
    env: &mut Env,
    client: &str,
    scenario: &str,
    topic: &str,
    n: u64,
    rep: u32,
) -> Result<()> {
    let log = format!("{topic}-consume-{client}");
    if client == "java" {
        let mut cmd = java(env, "org.apache.kafka.tools.ConsumerPerformance");
        cmd.args(["--bootstrap-server", &env.bootstrap, "--topic", topic])
            .args(["--messages", &n.to_string()]);
        let run = measure(env, cmd, &log)?;
        let line = java_consumer_line(&run.stdout, scenario)?;
        return record(env, &line, &run, rep);
    }
    let mut cmd = Command::new(&env.compare);
    cmd.args(["consume", "--client", client, "--bootstrap", &env.bootstrap])
        .args(["--topic", topic, "--records", &n.to_string()])
        .args(["--partitions", &PARTITIONS.to_string()])
        .args(["--scenario", scenario]);
    let run = measure(env, cmd, &log)?;
    let line = last_json_line(&run.stdout)?;
    record(env, &line, &run, rep)
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
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child `pid`
    // (std's Child is dropped without waiting, so the pid is reaped exactly once, here).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
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

fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
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
        "{{\"client\":\"java\",\"scenario\":{},\"records\":{records},\"bytes\":{},\"secs\":{secs},\"p50_ms\":{},\"p99_ms\":{}}}",
        json_str(scenario),
        records * size as u64,
        num_before(" ms 50th")?,
        num_before(" ms 99th")?,
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
