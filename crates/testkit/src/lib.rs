//! Real-Kafka test harness for Sluice (dev-only, not published).
//!
//! Integration tests run against a real Apache Kafka broker started by
//! `cargo xtask kafka up` (or implicitly by `cargo xtask test`). This crate finds it,
//! fails loudly when there is none (tests never skip silently), makes unique topic names,
//! and drives Kafka's own Java console tools for interop checks in both directions.
//!
//! ```no_run
//! let bootstrap = sluice_testkit::bootstrap();
//! let topic = sluice_testkit::unique_topic("interop");
//! sluice_testkit::console_produce(&bootstrap, &topic, ["k1\tv1"], true).unwrap();
//! let lines = sluice_testkit::console_consume(
//!     &bootstrap, &topic, 1, std::time::Duration::from_secs(20)).unwrap();
//! assert_eq!(lines, ["NO_HEADERS\tk1\tv1"]);
//! ```
//!
//! The TLS and SASL listeners of `cargo xtask kafka up --security` (on by default in
//! `cargo xtask test`) are found with [`secured()`]; the `_with` variants of the console
//! tools take Java client properties, such as [`Secured::java_props`] gives:
//!
//! ```no_run
//! use sluice_testkit::SaslMechanism;
//! let sec = sluice_testkit::secured();
//! let props = sec.java_props("SASL_SSL", Some(SaslMechanism::ScramSha256), "admin");
//! let topic = sluice_testkit::unique_topic("tls");
//! sluice_testkit::console_produce_with(&sec.sasl_ssl(), &topic, ["v"], false, &props).unwrap();
//! ```
//!
//! # Failover
//!
//! [`brokers()`] kills, stops and restarts the nodes of the `cargo xtask kafka up`
//! cluster; [`admin()`] asks it who leads a partition, who coordinates a group or a
//! transaction, elects leaders, creates topics and waits for full ISRs;
//! [`kafka_fault_cluster()`] puts every broker behind a [`KafkaProxy`] whose [`Rule`]s
//! rewrite error codes of, delay, or drop chosen responses:
//!
//! ```no_run
//! use kafka_protocol::messages::ApiKey;
//! use sluice_testkit::{codes, Rule};
//! let faults = sluice_testkit::kafka_fault_cluster();
//! let rule = faults.add_rule(
//!     Rule::new(ApiKey::Produce).partition("orders", 0).nth(1).set_error(codes::NOT_LEADER_OR_FOLLOWER),
//! );
//! // ... a client bootstrapped at faults.bootstrap() produces to orders-0 ...
//! assert_eq!(rule.hits(), 1);
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod admin;
mod brokers;
mod kafka_proxy;
mod protocol;
mod proxy;
mod secured;
mod sync;

pub use admin::{Admin, ElectionType, PartitionInfo};
pub use brokers::{brokers, Brokers};
pub use kafka_proxy::{codes, Action, KafkaProxy, Rewrite, Rule, RuleHandle};
pub use protocol::{is_closed, is_timeout, KafkaConnection};
pub use proxy::FaultProxy;
pub use secured::{java_jaas_config, secured, SaslMechanism, Secured};

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

/// The Kafka version `cargo xtask kafka up` uses unless told otherwise.
pub const DEFAULT_KAFKA_VERSION: &str = "4.1.1";
/// The bootstrap of a default single-broker `cargo xtask kafka up`.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:19092";

/// `<workspace>/target/kafka`, where xtask keeps the jars and the running cluster.
pub fn kafka_dir() -> PathBuf {
    let testkit = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = testkit.parent().and_then(Path::parent).unwrap_or(testkit);
    workspace.join("target").join("kafka")
}

/// The bootstrap servers of the Kafka cluster to test against.
///
/// The schema registry's Confluent-compatible URL the tests use: `SLUICE_REGISTRY_URL`
/// (`cargo xtask test` sets it; `cargo xtask registry up` prints it). Panics, saying how
/// to start one, when it is not set.
pub fn registry_url() -> String {
    std::env::var("SLUICE_REGISTRY_URL").unwrap_or_else(|_| {
        panic!(
            "SLUICE_REGISTRY_URL is not set: run `cargo xtask registry up` and export what it \
             prints, or run `cargo xtask test`"
        )
    })
}

/// `SLUICE_BOOTSTRAP` if set, else the address `cargo xtask kafka up` wrote to
/// `target/kafka/run/bootstrap`. Panics, saying how to start one, when no address of it
/// accepts a TCP connection.
pub fn bootstrap() -> String {
    let from_env = std::env::var("SLUICE_BOOTSTRAP")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let bootstrap = from_env
        .or_else(|| {
            std::fs::read_to_string(kafka_dir().join("run/bootstrap"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
    if !any_reachable(&bootstrap) {
        panic!(
            "no Kafka broker reachable at {bootstrap}: run `cargo xtask kafka up` \
             (or `cargo xtask test`), or set SLUICE_BOOTSTRAP=host:port"
        );
    }
    bootstrap
}

fn any_reachable(bootstrap: &str) -> bool {
    bootstrap.split(',').map(str::trim).any(|addr| {
        addr.to_socket_addrs()
            .map(|mut addrs| {
                addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
            })
            .unwrap_or(false)
    })
}

/// A topic name unique per call and per run: `<prefix>-<pid>-<counter>-<nanos>`.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// The directory of the Kafka jars in use: `SLUICE_KAFKA_LIBS` if set, else
/// `target/kafka/<version>/libs` for the version in `target/kafka/run/version`
/// (written by `cargo xtask kafka up`), else for [`DEFAULT_KAFKA_VERSION`].
pub fn kafka_libs() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_KAFKA_LIBS").filter(|s| !s.is_empty()) {
        return PathBuf::from(dir);
    }
    let version = std::fs::read_to_string(kafka_dir().join("run/version"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_KAFKA_VERSION.to_string());
    kafka_dir().join(version).join("libs")
}

/// The Java classpath of the Kafka jars in use (`<libs>/*`).
pub fn java_classpath() -> String {
    format!("{}/*", kafka_libs().display())
}

/// The `java` to run: `$JAVA_HOME/bin/java` if it exists, else `java` from PATH.
pub fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if Path::new(&home).join("bin/java").exists() => {
            Path::new(&home).join("bin/java")
        }
        _ => PathBuf::from("java"),
    }
}

/// The major version of the Kafka jars in `libs` (from `kafka-clients-<v>.jar`).
fn kafka_major(libs: &Path) -> Result<u32> {
    let entries = std::fs::read_dir(libs).with_context(|| {
        format!(
            "no Kafka jars in {}: run `cargo xtask kafka up` (it fetches them) or set SLUICE_KAFKA_LIBS",
            libs.display()
        )
    })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(v) = name
            .strip_prefix("kafka-clients-")
            .and_then(|r| r.strip_suffix(".jar"))
        {
            if let Some(major) = v.split('.').next().and_then(|m| m.parse().ok()) {
                return Ok(major);
            }
        }
    }
    bail!("no kafka-clients-<version>.jar in {}", libs.display())
}

/// A logging config for the Java tools: WARN and above to stderr, so stdout carries
/// only the tool's output. One file per logging framework (log4j2 for 4.x, log4j 1 /
/// reload4j for 3.x); both flags are passed, each framework reads its own.
fn tool_log_flags() -> Result<Vec<String>> {
    let dir = kafka_dir().join("tools-log");
    std::fs::create_dir_all(&dir)?;
    let log4j2 = dir.join("log4j2.properties");
    let log4j1 = dir.join("log4j.properties");
    write_once(
        &log4j2,
        "status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
",
    )?;
    write_once(
        &log4j1,
        "log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
",
    )?;
    Ok(vec![
        format!("-Dlog4j2.configurationFile={}", log4j2.display()),
        format!("-Dlog4j.configuration=file:{}", log4j1.display()),
    ])
}

/// Write `text` to `path` atomically (tests run in parallel) unless it is already there.
fn write_once(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), unique_topic("w")));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A `java` command for a Kafka tool main class, tuned to start fast.
fn tool(main_class: &str) -> Result<Command> {
    let mut cmd = Command::new(java());
    cmd.args([
        "-Xshare:auto",
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Xmx256m",
    ])
    .args(tool_log_flags()?)
    .args(["-cp", &java_classpath(), main_class]);
    Ok(cmd)
}

/// Output of a child, killed if it runs past `deadline`.
fn run_with_deadline(
    cmd: &mut Command,
    stdin: Option<String>,
    deadline: Duration,
) -> Result<(bool, String, String)> {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting java (is a JDK 17+ on PATH or JAVA_HOME?)")?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    match status {
        Some(status) => Ok((status.success(), stdout, stderr)),
        None => Err(anyhow!(
            "killed after {deadline:?}; stderr:\n{stderr}\nstdout:\n{stdout}"
        )),
    }
}

/// Escape `s` for a Java `.properties` file (as a key when `key`).
fn properties_escape(s: &str, key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '=' | ':' | ' ' if key => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '#' | '!' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Runs `f` with the path of a fresh Java properties file holding `props` (or with
/// `None` when there are none); the file is removed afterwards.
fn with_props_file<K, V, T>(props: &[(K, V)], f: impl FnOnce(Option<&Path>) -> T) -> Result<T>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    if props.is_empty() {
        return Ok(f(None));
    }
    let dir = kafka_dir().join("tools-props");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.properties", unique_topic("client")));
    let mut text = String::from("# Written by sluice-testkit for one Java tool run.\n");
    for (k, v) in props {
        text.push_str(&properties_escape(k.as_ref(), true));
        text.push('=');
        text.push_str(&properties_escape(v.as_ref(), false));
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let result = f(Some(&path));
    let _ = std::fs::remove_file(&path);
    Ok(result)
}

/// Read up to `max_messages` records of `topic` from the beginning with Kafka's own
/// console consumer (`org.apache.kafka.tools.consumer.ConsoleConsumer`), stopping early
/// when no record arrives for `timeout`.
///
/// One line per record, fields separated by a TAB:
/// `<headers>\t<key>\t<value>`, where `<headers>` is `NO_HEADERS` or
/// `k1:v1,k2:v2`, and a null key or value prints as `null`.
pub fn console_consume(
    bootstrap: &str,
    topic: &str,
    max_messages: usize,
    timeout: Duration,
) -> Result<Vec<String>> {
    console_consume_with(bootstrap, topic, max_messages, timeout, NO_PROPS)
}

/// No Java client properties, for the `_with` functions.
const NO_PROPS: &[(&str, &str)] = &[];

/// [`console_consume`] with Java consumer properties (`--consumer.config`), e.g. the
/// security settings of [`Secured::java_props`] for a secured listener at `bootstrap`.
pub fn console_consume_with<K, V>(
    bootstrap: &str,
    topic: &str,
    max_messages: usize,
    timeout: Duration,
    props: &[(K, V)],
) -> Result<Vec<String>>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    kafka_major(&kafka_libs())?;
    with_props_file(props, |config| {
        console_consume_inner(bootstrap, topic, max_messages, timeout, config)
    })?
}

fn console_consume_inner(
    bootstrap: &str,
    topic: &str,
    max_messages: usize,
    timeout: Duration,
    config: Option<&Path>,
) -> Result<Vec<String>> {
    let mut cmd = tool("org.apache.kafka.tools.consumer.ConsoleConsumer")?;
    if let Some(config) = config {
        cmd.arg("--consumer.config").arg(config);
    }
    cmd.args([
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--from-beginning",
    ])
    .args(["--max-messages", &max_messages.to_string()])
    .args(["--timeout-ms", &timeout.as_millis().to_string()])
    .args(["--property", "print.headers=true"])
    .args(["--property", "print.key=true"])
    .args(["--property", "print.value=true"])
    .args(["--property", "key.separator=\t"])
    .args(["--property", "headers.separator=,"])
    .args(["--property", "null.literal=null"]);
    // JVM start + group join + the idle timeout, with room to spare on a busy machine.
    let (ok, stdout, stderr) = run_with_deadline(&mut cmd, None, timeout + Duration::from_secs(90))
        .with_context(|| format!("console consumer on {topic}"))?;
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    // Running into --timeout-ms is how a short read ends; anything else is an error.
    if !ok && !stderr.contains("TimeoutException") {
        bail!("console consumer on {topic} failed; stderr:\n{stderr}");
    }
    Ok(lines)
}

/// Write `lines` to `topic` with Kafka's own console producer, one record per line.
/// With `with_keys`, each line is `key<TAB>value`; otherwise the whole line is the value
/// and the key is null. Waits for all records to be acknowledged (acks=all).
pub fn console_produce<I, S>(bootstrap: &str, topic: &str, lines: I, with_keys: bool) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    console_produce_with(bootstrap, topic, lines, with_keys, NO_PROPS)
}

/// [`console_produce`] with Java producer properties (`--producer.config`), e.g. the
/// security settings of [`Secured::java_props`] for a secured listener at `bootstrap`.
/// A failed send (authentication, authorization) is an `Err` whose message holds the
/// tool's stderr, e.g. `TopicAuthorizationException`.
pub fn console_produce_with<I, S, K, V>(
    bootstrap: &str,
    topic: &str,
    lines: I,
    with_keys: bool,
    props: &[(K, V)],
) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let lines: Vec<String> = lines.into_iter().map(|l| l.as_ref().to_string()).collect();
    with_props_file(props, |config| {
        console_produce_inner(bootstrap, topic, &lines, with_keys, config)
    })?
}

fn console_produce_inner(
    bootstrap: &str,
    topic: &str,
    lines: &[String],
    with_keys: bool,
    config: Option<&Path>,
) -> Result<()> {
    let major = kafka_major(&kafka_libs())?;
    let class = if major >= 4 {
        "org.apache.kafka.tools.ConsoleProducer"
    } else {
        "kafka.tools.ConsoleProducer"
    };
    let mut input = String::new();
    for line in lines {
        input.push_str(line);
        input.push('\n');
    }
    let mut cmd = tool(class)?;
    if let Some(config) = config {
        cmd.arg("--producer.config").arg(config);
    }
    cmd.args(["--bootstrap-server", bootstrap, "--topic", topic])
        .args(["--producer-property", "acks=all"]);
    if with_keys {
        cmd.args([
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=\t",
        ]);
    }
    let (ok, _stdout, stderr) = run_with_deadline(&mut cmd, Some(input), Duration::from_secs(120))
        .with_context(|| format!("console producer on {topic}"))?;
    // The producer exits 0 even when a send failed; its callback logs an ERROR.
    if !ok || stderr.lines().any(|l| l.contains("] ERROR ")) {
        bail!("console producer on {topic} failed; stderr:\n{stderr}");
    }
    Ok(())
}

/// A Java console consumer running as a member of a consumer group; killed on drop.
#[derive(Debug)]
pub struct JavaGroupConsumer {
    child: std::process::Child,
}

impl JavaGroupConsumer {
    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for JavaGroupConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Kafka's own console consumer (`org.apache.kafka.tools.consumer.ConsoleConsumer`)
/// on `topic` as a member of `group`, with extra `--consumer-property key=value`s (for
/// example `partition.assignment.strategy=...`). Its output is discarded; it runs until
/// the returned guard is dropped.
pub fn spawn_java_group_consumer(
    bootstrap: &str,
    topic: &str,
    group: &str,
    consumer_properties: &[&str],
) -> Result<JavaGroupConsumer> {
    kafka_major(&kafka_libs())?;
    let mut cmd = tool("org.apache.kafka.tools.consumer.ConsoleConsumer")?;
    cmd.args([
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
    ]);
    for p in consumer_properties {
        cmd.args(["--consumer-property", p]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting java (is a JDK 17+ on PATH or JAVA_HOME?)")?;
    Ok(JavaGroupConsumer { child })
}

/// Every broker of the test cluster behind its own [`FaultProxy`], with a bootstrap that
/// keeps the client behind them. Dropping it stops the proxies and lets the next fault
/// test in this process run.
///
/// `cargo xtask kafka up` gives broker *i* (client port `P`) a second listener, FAULTY,
/// on `P+2`, advertised as `P+3`. Kafka answers Metadata with the endpoints of the
/// listener a request came in on, so a client bootstrapped at the `P+3` addresses only
/// ever connects to `P+3`, where these proxies listen and forward to `P+2`.
pub struct FaultCluster {
    /// One proxy per broker, in bootstrap order.
    pub proxies: Vec<FaultProxy>,
    bootstrap: String,
    _serial: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for FaultCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultCluster")
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

impl FaultCluster {
    /// The bootstrap that goes through the proxies.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// [`FaultProxy::cut_after`] on every proxy.
    pub fn cut_after(&self, bytes: Option<u64>) {
        self.proxies.iter().for_each(|p| p.cut_after(bytes));
    }

    /// [`FaultProxy::cut_randomly`] on every proxy.
    pub fn cut_randomly(&self, probability: f64) {
        self.proxies
            .iter()
            .for_each(|p| p.cut_randomly(probability));
    }

    /// [`FaultProxy::blackhole`] on every proxy.
    pub fn blackhole(&self, on: bool) {
        self.proxies.iter().for_each(|p| p.blackhole(on));
    }

    /// [`FaultProxy::reset_all`] on every proxy.
    pub fn reset_all(&self) {
        self.proxies.iter().for_each(FaultProxy::reset_all);
    }

    /// Connections accepted by all proxies so far.
    pub fn connections(&self) -> u64 {
        self.proxies.iter().map(FaultProxy::connections).sum()
    }

    /// [`FaultProxy::set_latency`] on every proxy.
    pub fn set_latency(&self, latency: Duration) {
        self.proxies.iter().for_each(|p| p.set_latency(latency));
    }
}

/// Serializes the users of the FAULTY proxy ports (`P+3`) within one test process:
/// [`fault_cluster`] and [`kafka_fault_cluster`].
static FAULTY_PORTS: Mutex<()> = Mutex::new(());

/// For every broker of [`bootstrap`]: its FAULTY listener (`P+2`, checked to accept
/// connections) and the address it advertises (`P+3`), where a proxy must listen.
fn faulty_listeners() -> Vec<(String, String)> {
    let plain = bootstrap();
    let mut out = Vec::new();
    for addr in plain.split(',').map(str::trim) {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .unwrap_or_else(|| panic!("bootstrap address {addr} is not host:port"));
        let faulty = format!("{host}:{}", port + 2);
        let advertised = format!("{host}:{}", port + 3);
        let resolved = faulty
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve {faulty}"));
        // A broker that is down (killed by a test) refuses; one that never had the
        // listener refuses too. Only the first case is fine, and only if some node has it.
        let up = TcpStream::connect_timeout(&resolved, Duration::from_secs(1)).is_ok();
        out.push((faulty, advertised, up));
    }
    if !out.iter().any(|(_, _, up)| *up) {
        panic!(
            "no FAULTY listener at {}: fault tests need a cluster started by \
             `cargo xtask kafka up` (it adds one per broker)",
            out.iter()
                .map(|(f, _, _)| f.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    out.into_iter().map(|(f, a, _)| (f, a)).collect()
}

/// Puts the cluster of [`bootstrap`] behind fault proxies (see [`FaultCluster`]). The
/// proxies use fixed ports, so fault tests of one process run one at a time: this waits
/// for the previous `FaultCluster` (or [`KafkaFaultCluster`]) to be dropped.
pub fn fault_cluster() -> FaultCluster {
    let serial = sync::lock(&FAULTY_PORTS);
    let mut proxies = Vec::new();
    let mut addrs = Vec::new();
    for (faulty, advertised) in faulty_listeners() {
        let proxy = FaultProxy::start_on(&advertised, &faulty)
            .unwrap_or_else(|e| panic!("cannot listen on {advertised} for the fault proxy: {e}"));
        proxies.push(proxy);
        addrs.push(advertised);
    }
    FaultCluster {
        proxies,
        bootstrap: addrs.join(","),
        _serial: serial,
    }
}

/// Cluster queries through the brokers of [`bootstrap`] (see [`Admin`]).
pub fn admin() -> Admin {
    Admin::new(&bootstrap())
}

/// Every broker of the test cluster behind its own [`KafkaProxy`], with a bootstrap that
/// keeps the client behind them (the FAULTY listeners, as for [`FaultCluster`]).
/// Dropping it stops the proxies and lets the next fault test in this process run.
///
/// Rules added here ([`Self::add_rule`]) apply on every proxy and count occurrences
/// across all of them; `proxies[i].add_rule` applies to broker `i + 1` only.
pub struct KafkaFaultCluster {
    /// One proxy per broker, in bootstrap order (node 1 first).
    pub proxies: Vec<KafkaProxy>,
    bootstrap: String,
    rules: std::sync::Arc<kafka_proxy::RuleSet>,
    _serial: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for KafkaFaultCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaFaultCluster")
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

impl KafkaFaultCluster {
    /// The bootstrap that goes through the proxies.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Puts `rule` in force on every proxy; its counts are over all of them.
    pub fn add_rule(&self, rule: Rule) -> RuleHandle {
        self.rules.add(rule)
    }

    /// Takes every rule out of force: the cluster's and each proxy's own.
    pub fn clear_rules(&self) {
        self.rules.clear();
        self.proxies.iter().for_each(KafkaProxy::clear_rules);
    }

    /// [`KafkaProxy::reset_all`] on every proxy.
    pub fn reset_all(&self) {
        self.proxies.iter().for_each(KafkaProxy::reset_all);
    }

    /// Connections accepted by all proxies so far.
    pub fn connections(&self) -> u64 {
        self.proxies.iter().map(KafkaProxy::connections).sum()
    }

    /// [`KafkaProxy::undecodable`] summed over the proxies.
    pub fn undecodable(&self) -> u64 {
        self.proxies.iter().map(KafkaProxy::undecodable).sum()
    }
}

/// Puts the cluster of [`bootstrap`] behind Kafka-aware proxies (see
/// [`KafkaFaultCluster`]). Shares the proxy ports with [`fault_cluster`]: waits until no
/// `FaultCluster` or `KafkaFaultCluster` of this process is alive.
pub fn kafka_fault_cluster() -> KafkaFaultCluster {
    let serial = sync::lock(&FAULTY_PORTS);
    let rules = std::sync::Arc::<kafka_proxy::RuleSet>::default();
    let topic_ids = std::sync::Arc::<kafka_proxy::TopicIds>::default();
    let mut proxies = Vec::new();
    let mut addrs = Vec::new();
    for (faulty, advertised) in faulty_listeners() {
        let proxy =
            KafkaProxy::start_shared(&advertised, &faulty, Some(rules.clone()), topic_ids.clone())
                .unwrap_or_else(|e| {
                    panic!("cannot listen on {advertised} for the Kafka proxy: {e}")
                });
        proxies.push(proxy);
        addrs.push(advertised);
    }
    KafkaFaultCluster {
        proxies,
        bootstrap: addrs.join(","),
        rules,
        _serial: serial,
    }
}
