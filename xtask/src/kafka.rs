//! A real Apache Kafka (KRaft) cluster for tests, built from jars on Maven Central.
//!
//! Layout (all under `<workspace>/target/kafka/`):
//! ```text
//! <version>/pom.xml          generated; its dependencies are the broker + tools
//! <version>/libs/*.jar       `mvn dependency:copy-dependencies` output (the classpath)
//! <version>/libs/.complete   marker: the cache is whole, skip mvn
//! run/bootstrap              "127.0.0.1:19092[,...]" of the running cluster
//! run/version                the Kafka version it runs (testkit finds the jars with it)
//! run/shape                  "version brokers base-port [security]" (to reuse a running cluster)
//! run/security               with --security only: listeners, TLS dir, users (see below)
//! run/tls/                   with --security only: CA, broker and client certs (see `tls.rs`)
//! run/node-<i>/server.properties, log4j*.properties, data/, kafka.out, server.log, kafka.pid
//! run/node-<i>/start.args    the node's command line, one argument per line (`java` first);
//!                            `kafka start <i>` and sluice-testkit's `Brokers::start` rerun it
//! ```
//!
//! # Replication
//!
//! With 3 or more brokers every topic is replicated like in production:
//! `default.replication.factor=3` and `min.insync.replicas=2` (also for the internal
//! offsets, transaction and share-state topics), so `acks=all` writes survive one broker
//! down. Fewer brokers replicate everything `brokers` times with `min.insync.replicas=1`.
//!
//! # Restarting nodes
//!
//! `kafka kill <i>` (SIGKILL: no controlled shutdown, the controller fences the node after
//! `broker.session.timeout.ms`, 4 s here with more than one node), `kafka stop <i>`
//! (SIGTERM: controlled shutdown, leaders move away first) and `kafka start <i>` (the
//! same node id, properties and log dir; waits until it answers ApiVersions and every
//! running node lists it in Metadata again).
//!
//! # Listeners
//!
//! Node `i` (1-based) has the base port `P = port + 100*(i-1)`; every listener binds and
//! advertises `127.0.0.1`. Always there:
//!
//! | listener   | port  | protocol  | what for |
//! | ---        | ---   | ---       | --- |
//! | PLAINTEXT  | P     | PLAINTEXT | clients; also inter-broker |
//! | CONTROLLER | P+1   | PLAINTEXT | KRaft quorum |
//! | FAULTY     | P+2   | PLAINTEXT | advertised as P+3, where a test's fault proxy listens |
//!
//! With `--security` (or `SLUICE_KAFKA_SECURITY=1`, the default of `cargo xtask test`):
//!
//! | listener       | port | protocol       | what for |
//! | ---            | ---  | ---            | --- |
//! | SSL            | P+10 | SSL            | TLS, server cert for 127.0.0.1/localhost |
//! | SASL_PLAINTEXT | P+11 | SASL_PLAINTEXT | PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER |
//! | SASL_SSL       | P+12 | SASL_SSL       | the same four mechanisms over TLS |
//! | MTLS           | P+13 | SSL            | `ssl.client.auth=required` (client.pem, `User:sluice-client`) |
//! | EXPIRED        | P+14 | SSL            | serves a certificate that expired in 2001 |
//! | WRONGNAME      | P+15 | SSL            | serves a certificate for `kafka.invalid` only |
//! | REAUTH         | P+16 | SASL_PLAINTEXT | the four mechanisms, `connections.max.reauth.ms=10000` (KIP-368) |
//!
//! SASL users (PLAIN in the JAAS config, SCRAM credentials written at storage format):
//! `admin`/`admin-secret` and `alice`/`alice-secret` are super users, `mallory`/
//! `mallory-secret` has no ACL. OAUTHBEARER uses Kafka's unsecured JWS tokens (no
//! signature); the principal is the token's `sub`. The `StandardAuthorizer` is on, with
//! `User:ANONYMOUS` a super user, so PLAINTEXT/SSL clients, the controllers and the
//! inter-broker traffic are allowed everything, exactly as without `--security`.
//!
//! # `run/security`
//!
//! `key=value` lines (`#` starts a comment), for the testkit:
//! ```text
//! tls.dir=/abs/path/target/kafka/run/tls
//! listener.SSL.protocol=SSL
//! listener.SSL.bootstrap=127.0.0.1:19102,127.0.0.1:19202,...   (every broker)
//! ...                                                            (every listener above)
//! sasl.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
//! sasl.user.admin=admin-secret
//! sasl.user.alice=alice-secret
//! sasl.user.mallory=mallory-secret
//! super.users=admin,alice,sluice-client
//! reauth.ms=10000
//! ```

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{proto, tls};

pub const DEFAULT_VERSION: &str = "4.1.1";
pub const DEFAULT_PORT: u16 = 19092;
/// Any 16 bytes, base64url without padding ("sluice-dev-clust").
const CLUSTER_ID: &str = "c2x1aWNlLWRldi1jbHVzdA";
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `stop <i>` waits for a controlled shutdown before it SIGKILLs.
const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The file in a node dir that holds its command line, one argument per line.
const START_ARGS: &str = "start.args";

/// Set by the SIGINT/SIGTERM handler that `cargo xtask test`/`demo` install.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A listener that `--security` adds to every broker: name, offset from the node's base
/// port, security protocol.
pub struct SecureListener {
    pub name: &'static str,
    pub offset: u16,
    pub protocol: &'static str,
}

const fn listener(name: &'static str, offset: u16, protocol: &'static str) -> SecureListener {
    SecureListener {
        name,
        offset,
        protocol,
    }
}

/// The listeners of `--security` (see the module doc).
pub const SECURE_LISTENERS: [SecureListener; 7] = [
    listener("SSL", 10, "SSL"),
    listener("SASL_PLAINTEXT", 11, "SASL_PLAINTEXT"),
    listener("SASL_SSL", 12, "SASL_SSL"),
    listener("MTLS", 13, "SSL"),
    listener("EXPIRED", 14, "SSL"),
    listener("WRONGNAME", 15, "SSL"),
    listener("REAUTH", 16, "SASL_PLAINTEXT"),
];

/// SASL mechanisms enabled on every SASL listener.
pub const SASL_MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];
/// SCRAM mechanisms whose credentials are written at storage format.
const SCRAM_MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-512"];
/// SASL users and their passwords (for PLAIN and both SCRAMs).
pub const SASL_USERS: [(&str, &str); 3] = [
    ("admin", "admin-secret"),
    ("alice", "alice-secret"),
    ("mallory", "mallory-secret"),
];
/// Principals (`User:<name>`) allowed everything besides `ANONYMOUS`.
const SUPER_USERS: [&str; 3] = ["admin", "alice", tls::CLIENT_CN];
/// `connections.max.reauth.ms` of the REAUTH listener.
const REAUTH_MS: u32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub version: String,
    pub brokers: u16,
    pub port: u16,
    /// Also the TLS and SASL listeners of [`SECURE_LISTENERS`].
    pub security: bool,
}

impl Shape {
    fn major(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(4)
    }

    /// PLAINTEXT port of node `i` (1-based); its controller port is this + 1.
    pub fn port_of(&self, i: u16) -> u16 {
        self.port + 100 * (i - 1)
    }

    pub fn bootstrap(&self) -> String {
        (1..=self.brokers)
            .map(|i| format!("127.0.0.1:{}", self.port_of(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Bootstrap list (every broker) of the listener at `offset` from the base port.
    pub fn bootstrap_at(&self, offset: u16) -> String {
        (1..=self.brokers)
            .map(|i| format!("127.0.0.1:{}", self.port_of(i) + offset))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The highest port the cluster uses: the last node's FAULTY proxy port (P+3) or,
    /// with `--security`, its REAUTH listener (P+16).
    fn top_port(&self) -> u32 {
        u32::from(self.port) + 100 * (u32::from(self.brokers) - 1) + u32::from(self.top_offset())
    }

    /// The offset of [`Self::top_port`] from the last node's base port.
    fn top_offset(&self) -> u16 {
        if self.security {
            16
        } else {
            3
        }
    }

    /// Every port node `i` binds (the FAULTY proxy's P+3 is bound by tests, not here).
    fn bound_ports(&self, i: u16) -> Vec<u16> {
        let p = self.port_of(i);
        let mut ports = vec![p, p + 1, p + 2];
        if self.security {
            ports.extend(SECURE_LISTENERS.iter().map(|l| p + l.offset));
        }
        ports
    }

    fn encode(&self) -> String {
        let security = if self.security { " security" } else { "" };
        format!("{} {} {}{security}", self.version, self.brokers, self.port)
    }

    fn decode(s: &str) -> Option<Shape> {
        let mut it = s.split_whitespace();
        Some(Shape {
            version: it.next()?.to_string(),
            brokers: it.next()?.parse().ok()?,
            port: it.next()?.parse().ok()?,
            security: it.next() == Some("security"),
        })
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

pub fn kafka_dir() -> PathBuf {
    workspace_root().join("target").join("kafka")
}

fn run_dir() -> PathBuf {
    kafka_dir().join("run")
}

/// The CA and certificates of `--security` (`run/tls/`).
pub fn tls_dir() -> PathBuf {
    run_dir().join("tls")
}

fn node_dir(i: u16) -> PathBuf {
    run_dir().join(format!("node-{i}"))
}

pub fn libs_dir(version: &str) -> PathBuf {
    kafka_dir().join(version).join("libs")
}

pub fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if Path::new(&home).join("bin/java").exists() => {
            Path::new(&home).join("bin/java")
        }
        _ => PathBuf::from("java"),
    }
}

fn classpath(version: &str) -> String {
    format!("{}/*", libs_dir(version).display())
}

// ---------------------------------------------------------------------------------------
// Fetching the jars.

fn pom(version: &str, major: u32) -> String {
    let dep = |g: &str, a: &str, v: &str| {
        format!("    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>\n")
    };
    let mut deps = dep("org.apache.kafka", "kafka_2.13", version);
    deps += &dep("org.apache.kafka", "kafka-tools", version);
    if major >= 4 {
        // Kafka 4.x logs through log4j2 (log4j-core comes with kafka_2.13) but Maven does
        // not pull the slf4j binding; its slf4j-api would also resolve to 1.7.36, which
        // cannot see an slf4j2 binding, so pin the API too.
        deps += &dep("org.apache.logging.log4j", "log4j-slf4j2-impl", "2.24.3");
        deps += &dep("org.slf4j", "slf4j-api", "2.0.17");
    } else {
        // Kafka 3.x logs through slf4j 1.7 + reload4j (log4j 1.x API).
        deps += &dep("org.slf4j", "slf4j-reload4j", "1.7.36");
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by `cargo xtask kafka up`: the jars of Apache Kafka {version}. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.sluice</groupId>
  <artifactId>kafka-dist</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}  </dependencies>
</project>
"#
    )
}

/// Make sure `target/kafka/<version>/libs` holds the broker and tools jars.
pub fn fetch(version: &str, major: u32) -> Result<PathBuf> {
    let vdir = kafka_dir().join(version);
    let libs = vdir.join("libs");
    if libs.join(".complete").exists() {
        return Ok(libs);
    }
    eprintln!(
        "xtask: fetching Apache Kafka {version} jars from Maven Central into {}",
        libs.display()
    );
    let started = Instant::now();
    fs::create_dir_all(&vdir)?;
    fs::write(vdir.join("pom.xml"), pom(version, major))?;
    let partial = vdir.join("libs.partial");
    let _ = fs::remove_dir_all(&partial);
    // Output is kept for the error message only: quiet mode still prints colour codes.
    let out = Command::new("mvn")
        .args([
            "-q",
            "-B",
            "dependency:copy-dependencies",
            "-DoutputDirectory=libs.partial",
        ])
        .current_dir(&vdir)
        .stdin(Stdio::null())
        .output()
        .context("running mvn (is Maven installed?)")?;
    if !out.status.success() {
        bail!(
            "mvn could not fetch Kafka {version} ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = fs::remove_dir_all(&libs);
    fs::rename(&partial, &libs)?;
    fs::write(libs.join(".complete"), format!("kafka {version}\n"))?;
    eprintln!("xtask: fetched in {:.1}s", started.elapsed().as_secs_f64());
    Ok(libs)
}

// ---------------------------------------------------------------------------------------
// Per-node configuration.

fn server_properties(shape: &Shape, i: u16, dir: &Path) -> String {
    let n = shape.brokers;
    let rf = n.min(3);
    let min_isr = if n >= 3 { 2 } else { 1 };
    let voters = (1..=n)
        .map(|j| format!("{j}@127.0.0.1:{}", shape.port_of(j) + 1))
        .collect::<Vec<_>>()
        .join(",");
    let port = shape.port_of(i);
    let cport = port + 1;
    // FAULTY: a second client listener on port+2 that advertises port+3, where a test's
    // fault proxy listens. Metadata asked on a listener names that listener's endpoints,
    // so a client bootstrapped at port+3 reaches every broker through the proxy.
    let fport = port + 2;
    let fadv = port + 3;
    let mut listeners = format!(
        "PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport},FAULTY://127.0.0.1:{fport}"
    );
    let mut advertised = format!("PLAINTEXT://127.0.0.1:{port},FAULTY://127.0.0.1:{fadv}");
    let mut protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,FAULTY:PLAINTEXT".to_string();
    if shape.security {
        for l in &SECURE_LISTENERS {
            let at = format!(",{}://127.0.0.1:{}", l.name, port + l.offset);
            listeners += &at;
            advertised += &at;
            let _ = write!(protocols, ",{}:{}", l.name, l.protocol);
        }
    }
    let mut p = format!(
        "# Generated by `cargo xtask kafka up`; rewritten on every up.
process.roles=broker,controller
node.id={i}
controller.quorum.voters={voters}
listeners={listeners}
advertised.listeners={advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map={protocols}
log.dirs={data}
num.partitions=1
default.replication.factor={rf}
min.insync.replicas={min_isr}
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=3
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
# Two shared cores: keep the thread pools small.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
",
        data = dir.join("data").display(),
    );
    if n > 1 {
        // A SIGKILLed node is fenced, and its partitions get new leaders, after
        // broker.session.timeout.ms without a heartbeat (9 s, heartbeats every 2 s, by
        // default; twice that when it was the active controller, whose successor waits a
        // whole timeout again). The failover tests kill nodes dozens of times: 4 s with
        // heartbeats every 500 ms still allows 7 missed heartbeats. A single node keeps the
        // defaults: a loaded machine must never fence the only broker.
        p += "broker.session.timeout.ms=4000\nbroker.heartbeat.interval.ms=500\n";
    }
    if shape.major() >= 4 {
        let _ = write!(
            p,
            "share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={min_isr}
share.coordinator.state.topic.num.partitions=3
"
        );
    }
    if shape.security {
        p += &security_properties(&tls_dir());
    }
    p
}

/// The broker side of `--security` (see the module doc). The listener names and
/// ports are in `listeners`; this is the TLS, SASL and authorizer configuration.
fn security_properties(tls: &Path) -> String {
    let tls = |file: &str| tls.join(file).display().to_string();
    let mut p = format!(
        "
# --- --security: TLS (PEM files from target/kafka/run/tls, made by xtask) ---
# Every SSL/SASL_SSL listener serves broker.pem unless overridden per listener below.
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={ca}
listener.name.mtls.ssl.client.auth=required
listener.name.expired.ssl.keystore.location={expired}
listener.name.wrongname.ssl.keystore.location={wrong}
# The mTLS client's DN is CN={cn}; its principal is User:{cn}.
ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT
# --- --security: SASL ---
sasl.enabled.mechanisms={mechanisms}
listener.name.reauth.connections.max.reauth.ms={REAUTH_MS}
# --- --security: authorization ---
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS;{supers}
",
        keystore = tls("broker-keystore.pem"),
        ca = tls("ca.pem"),
        expired = tls("expired-broker-keystore.pem"),
        wrong = tls("wrong-name-broker-keystore.pem"),
        cn = tls::CLIENT_CN,
        mechanisms = SASL_MECHANISMS.join(","),
        supers = SUPER_USERS
            .iter()
            .map(|u| format!("User:{u}"))
            .collect::<Vec<_>>()
            .join(";"),
    );
    let plain_users: String = SASL_USERS
        .iter()
        .map(|(u, pw)| format!(" user_{u}=\"{pw}\""))
        .collect();
    for l in SECURE_LISTENERS
        .iter()
        .filter(|l| l.protocol.starts_with("SASL_"))
    {
        let prefix = format!("listener.name.{}", l.name.to_lowercase());
        let _ = write!(
            p,
            "{prefix}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};
{prefix}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
{prefix}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
{prefix}.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
"
        );
    }
    p
}

/// `StorageTool format` arguments that store the SCRAM credentials of [`SASL_USERS`].
fn scram_format_args() -> Vec<String> {
    let mut args = Vec::new();
    for mechanism in SCRAM_MECHANISMS {
        for (user, password) in SASL_USERS {
            args.push("--add-scram".to_string());
            args.push(format!("{mechanism}=[name={user},password={password}]"));
        }
    }
    args
}

/// The text of `run/security` (format in the module doc).
fn security_file(shape: &Shape) -> String {
    let mut s = String::from(
        "# Written by `cargo xtask kafka up --security`; removed by `down`. Read by sluice-testkit.\n",
    );
    let _ = writeln!(s, "tls.dir={}", tls_dir().display());
    let _ = writeln!(s, "listener.PLAINTEXT.protocol=PLAINTEXT");
    let _ = writeln!(s, "listener.PLAINTEXT.bootstrap={}", shape.bootstrap());
    for l in &SECURE_LISTENERS {
        let _ = writeln!(s, "listener.{}.protocol={}", l.name, l.protocol);
        let _ = writeln!(
            s,
            "listener.{}.bootstrap={}",
            l.name,
            shape.bootstrap_at(l.offset)
        );
    }
    let _ = writeln!(s, "sasl.mechanisms={}", SASL_MECHANISMS.join(","));
    for (user, password) in SASL_USERS {
        let _ = writeln!(s, "sasl.user.{user}={password}");
    }
    let _ = writeln!(s, "super.users={}", SUPER_USERS.join(","));
    let _ = writeln!(s, "reauth.ms={REAUTH_MS}");
    s
}

/// Everything to `server.log` in the node dir; only WARN and above to the console
/// (which goes to `kafka.out`).
fn log_config(major: u32, dir: &Path) -> (String, String, String) {
    let log = dir.join("server.log");
    if major >= 4 {
        let text = format!(
            "status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
rootLogger.appenderRef.file.ref = FILE
",
            log = log.display()
        );
        let path = dir.join("log4j2.properties");
        let flag = format!("-Dlog4j2.configurationFile={}", path.display());
        (path.display().to_string(), text, flag)
    } else {
        let text = format!(
            "log4j.rootLogger=INFO, stdout, file
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Threshold=WARN
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
",
            log = log.display()
        );
        let path = dir.join("log4j.properties");
        let flag = format!("-Dlog4j.configuration=file:{}", path.display());
        (path.display().to_string(), text, flag)
    }
}

// ---------------------------------------------------------------------------------------
// Processes.

fn read_pid(i: u16) -> Option<i32> {
    fs::read_to_string(node_dir(i).join("kafka.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// True when `pid` is a live Kafka broker started from node dir `i` (checked through
/// `/proc/<pid>/cmdline`, so a recycled pid is never mistaken for ours).
fn is_our_node(pid: i32, i: u16) -> bool {
    let Some(cmdline) = command_line(pid) else {
        return false;
    };
    let props = node_dir(i).join("server.properties");
    cmdline.contains("kafka.Kafka") && cmdline.contains(&*props.to_string_lossy())
}

/// The command line of a live process (empty for a zombie); `ps` where there is no /proc.
fn command_line(pid: i32) -> Option<String> {
    if Path::new("/proc/self").exists() {
        let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        return Some(String::from_utf8_lossy(&raw).into_owned());
    }
    let out = Command::new("ps")
        .args(["-ww", "-o", "command=", "-p", &pid.to_string()])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Sends `sig` to every running node we started (the bench's stalled-broker scenario
/// stops and continues them); returns how many there were.
pub fn signal_nodes(sig: i32) -> usize {
    let nodes = running_nodes();
    for &(_, pid) in &nodes {
        signal(pid, sig);
    }
    nodes.len()
}

/// Pids of running nodes we started, from the pid files under target/kafka/run.
fn running_nodes() -> Vec<(u16, i32)> {
    let Ok(entries) = fs::read_dir(run_dir()) else {
        return Vec::new();
    };
    let mut nodes: Vec<(u16, i32)> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("node-")?
                .parse::<u16>()
                .ok()
        })
        .filter_map(|i| Some((i, read_pid(i)?)))
        .filter(|&(i, pid)| is_our_node(pid, i))
        .collect();
    nodes.sort();
    nodes
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn node_logs(i: u16) -> String {
    let dir = node_dir(i);
    format!(
        "--- {0}/kafka.out (tail) ---\n{1}\n--- {0}/server.log (tail) ---\n{2}",
        dir.display(),
        tail(&dir.join("kafka.out"), 15),
        tail(&dir.join("server.log"), 30)
    )
}

/// Stop the cluster in target/kafka/run: SIGTERM, wait, SIGKILL. Only pids from our pid
/// files whose command line points at our node dir are signalled.
pub fn down() -> Result<()> {
    let nodes = running_nodes();
    if nodes.is_empty() {
        eprintln!("xtask: no Kafka node of ours is running");
    }
    for &(i, pid) in &nodes {
        eprintln!("xtask: stopping node {i} (pid {pid})");
        signal(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let alive = || {
        nodes
            .iter()
            .filter(|&&(i, pid)| is_our_node(pid, i))
            .count()
    };
    while alive() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &(i, pid) in &nodes {
        if is_our_node(pid, i) {
            eprintln!("xtask: node {i} (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT:?}; SIGKILL");
            signal(pid, libc::SIGKILL);
        }
    }
    if let Ok(entries) = fs::read_dir(run_dir()) {
        for e in entries.flatten() {
            let _ = fs::remove_file(e.path().join("kafka.pid"));
        }
    }
    let _ = fs::remove_file(run_dir().join("bootstrap"));
    let _ = fs::remove_file(run_dir().join("shape"));
    let _ = fs::remove_file(run_dir().join("security"));
    Ok(())
}

/// Is the cluster described by `shape` fully up (every node answers, all registered)?
fn cluster_ready(shape: &Shape) -> bool {
    (1..=shape.brokers)
        .all(|i| proto::api_versions_ok(&format!("127.0.0.1:{}", shape.port_of(i))).is_ok())
        && proto::broker_count(&format!("127.0.0.1:{}", shape.port))
            .is_ok_and(|n| n == shape.brokers as usize)
        && (1..=shape.brokers).all(|i| {
            secure_ports(shape, i)
                .into_iter()
                .all(|p| tcp_accepts(p).is_ok())
        })
        && (!shape.security || run_dir().join("security").exists())
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Start a fresh cluster (or reuse a running one of the same shape); returns the bootstrap.
pub fn up(shape: &Shape) -> Result<String> {
    if !(1..=9).contains(&shape.brokers) {
        bail!("--brokers must be between 1 and 9");
    }
    let running = running_nodes();
    if !running.is_empty() {
        let current = fs::read_to_string(run_dir().join("shape"))
            .ok()
            .and_then(|s| Shape::decode(&s));
        if current.as_ref() == Some(shape)
            && running.len() == shape.brokers as usize
            && cluster_ready(shape)
        {
            eprintln!(
                "xtask: Kafka {} ({} broker(s)) is already running",
                shape.version, shape.brokers
            );
            return Ok(shape.bootstrap());
        }
        eprintln!("xtask: a cluster of another shape (or unhealthy) is running; stopping it first");
        down()?;
    }
    let top = shape.top_port();
    if top >= 32768 {
        bail!(
            "node ports reach port+100*(brokers-1)+{} = {top}: keep that below 32768, where \
             the kernel's ephemeral ports start (pick a lower --port)",
            shape.top_offset()
        );
    }
    for i in 1..=shape.brokers {
        for port in shape.bound_ports(i) {
            if !port_free(port) {
                bail!(
                    "port {port} on 127.0.0.1 is in use by something that is not our cluster; \
                     stop it or pick other ports with --port"
                );
            }
        }
    }

    let started = Instant::now();
    let major = shape.major();
    fetch(&shape.version, major)?;
    let cp = classpath(&shape.version);

    // Fresh cluster every time: wipe the old node dirs and the run files.
    let run = run_dir();
    let _ = fs::remove_dir_all(&run);
    fs::create_dir_all(&run)?;
    if shape.security {
        tls::generate(&tls_dir())?;
    }

    let mut formats = Vec::new();
    let mut log_flags = Vec::new();
    for i in 1..=shape.brokers {
        let dir = node_dir(i);
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join("server.properties"),
            server_properties(shape, i, &dir),
        )?;
        let (path, text, flag) = log_config(major, &dir);
        fs::write(&path, text)?;
        let out = fs::File::create(dir.join("format.out"))?;
        let child = Command::new(java())
            .args([
                "-Xshare:auto",
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                &flag,
                "-cp",
                &cp,
            ])
            .args(["kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c"])
            .arg(dir.join("server.properties"))
            .args(if shape.security {
                scram_format_args()
            } else {
                Vec::new()
            })
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting java (is a JDK 17+ on PATH or JAVA_HOME?)")?;
        formats.push((i, child));
        log_flags.push(flag);
    }
    for (i, mut child) in formats {
        let status = child.wait()?;
        if !status.success() {
            bail!(
                "formatting storage of node {i} failed ({status}):\n{}",
                tail(&node_dir(i).join("format.out"), 30)
            );
        }
    }

    for i in 1..=shape.brokers {
        let dir = node_dir(i);
        let args = node_command(&cp, &log_flags[i as usize - 1], &dir);
        fs::write(dir.join(START_ARGS), args.join("\n") + "\n")?;
        if let Err(e) = spawn_node(i) {
            let _ = down();
            return Err(e);
        }
    }
    fs::write(run.join("shape"), shape.encode())?;
    fs::write(run.join("version"), format!("{}\n", shape.version))?;

    eprintln!(
        "xtask: starting Kafka {} with {} broker(s); logs in {}",
        shape.version,
        shape.brokers,
        run.display()
    );
    if let Err(e) = wait_ready(shape, Instant::now() + READY_TIMEOUT) {
        let logs: Vec<String> = (1..=shape.brokers).map(node_logs).collect();
        let _ = down();
        bail!("{e:#}\n{}", logs.join("\n"));
    }
    let bootstrap = shape.bootstrap();
    if shape.security {
        fs::write(run.join("security"), security_file(shape))?;
    }
    fs::write(run.join("bootstrap"), format!("{bootstrap}\n"))?;
    eprintln!(
        "xtask: Kafka is up in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(bootstrap)
}

/// The command line of node `dir`'s broker (`java` first), as written to `start.args`.
fn node_command(cp: &str, log_flag: &str, dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![java().display().to_string()];
    args.extend(
        [
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
        ]
        .map(String::from),
    );
    args.push(log_flag.to_string());
    args.push(format!("-Dkafka.logs.dir={}", dir.display()));
    args.extend(["-cp".to_string(), cp.to_string(), "kafka.Kafka".to_string()]);
    args.push(dir.join("server.properties").display().to_string());
    args
}

/// Start node `i` from its `start.args` (output appended to `kafka.out`) and write its
/// pid file; returns once `/proc` shows the broker's command line.
fn spawn_node(i: u16) -> Result<()> {
    let dir = node_dir(i);
    let text = fs::read_to_string(dir.join(START_ARGS))
        .with_context(|| format!("reading {}/{START_ARGS}", dir.display()))?;
    let args: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let Some((program, args)) = args.split_first() else {
        bail!("{}/{START_ARGS} is empty", dir.display());
    };
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("kafka.out"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // Own process group: the broker outlives xtask and a terminal Ctrl-C.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting the Kafka broker")?;
    let pid = child.id() as i32;
    fs::write(dir.join("kafka.pid"), format!("{pid}\n"))?;
    // spawn() can return before the kernel has set up the new program's arguments
    // (a vfork parent resumes early in execve), so wait until /proc shows them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_our_node(pid, i) {
        if child.try_wait()?.is_some() || Instant::now() > deadline {
            bail!("Kafka node {i} did not start:\n{}", node_logs(i));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The shape of the cluster in target/kafka/run (running or not), and that node `i` is
/// one of its nodes.
fn shape_with_node(i: u16) -> Result<Shape> {
    let shape =
        shape_on_disk().context("no cluster of ours: start one with `cargo xtask kafka up`")?;
    if !(1..=shape.brokers).contains(&i) {
        bail!(
            "the cluster has nodes 1..={}; there is no node {i}",
            shape.brokers
        );
    }
    Ok(shape)
}

/// The pid of node `i` if it is running.
fn node_pid(i: u16) -> Option<i32> {
    read_pid(i).filter(|&pid| is_our_node(pid, i))
}

/// Whether node `i` of our cluster is running (its process is alive).
pub fn node_running(i: u16) -> bool {
    node_pid(i).is_some()
}

/// Send `sig` to node `i` and wait up to `timeout` for it to exit; false on timeout.
fn signal_node(i: u16, sig: i32, timeout: Duration) -> Result<bool> {
    shape_with_node(i)?;
    let Some(pid) = node_pid(i) else {
        bail!("node {i} is not running");
    };
    signal(pid, sig);
    let deadline = Instant::now() + timeout;
    while is_our_node(pid, i) {
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}

/// SIGKILL node `i` (no controlled shutdown) and wait until it is gone.
pub fn kill_node(i: u16) -> Result<()> {
    if !signal_node(i, libc::SIGKILL, Duration::from_secs(10))? {
        bail!("node {i} is still alive 10 s after SIGKILL");
    }
    eprintln!("xtask: node {i} killed");
    Ok(())
}

/// SIGTERM node `i` (a controlled shutdown: its leaders move away first) and wait until
/// it has exited; SIGKILL after [`NODE_STOP_TIMEOUT`].
pub fn stop_node(i: u16) -> Result<()> {
    if !signal_node(i, libc::SIGTERM, NODE_STOP_TIMEOUT)? {
        eprintln!("xtask: node {i} ignored SIGTERM for {NODE_STOP_TIMEOUT:?}; SIGKILL");
        kill_node(i)?;
    } else {
        eprintln!("xtask: node {i} stopped");
    }
    Ok(())
}

/// Restart node `i` (same node id, properties and log dir) and wait until it serves
/// ApiVersions and every running node, itself included, lists it in Metadata.
pub fn start_node(i: u16) -> Result<()> {
    let shape = shape_with_node(i)?;
    if node_running(i) {
        bail!("node {i} is already running");
    }
    let started = Instant::now();
    spawn_node(i)?;
    let deadline = started + READY_TIMEOUT;
    let addr = format!("127.0.0.1:{}", shape.port_of(i));
    let others = || (1..=shape.brokers).filter(|&j| j != i && node_running(j));
    loop {
        if !node_running(i) {
            bail!("node {i} exited while starting:\n{}", node_logs(i));
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted while waiting for node {i}");
        }
        let listed = |at: &str| proto::broker_ids(at).is_ok_and(|ids| ids.contains(&i32::from(i)));
        let ready = proto::api_versions_ok(&addr).is_ok()
            && listed(&addr)
            && others().all(|j| listed(&format!("127.0.0.1:{}", shape.port_of(j))));
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "node {i} did not rejoin within {READY_TIMEOUT:?}:\n{}",
                node_logs(i)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "xtask: node {i} is back in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn wait_ready(shape: &Shape, deadline: Instant) -> Result<()> {
    let check_alive = || -> Result<()> {
        for i in 1..=shape.brokers {
            let alive = read_pid(i).is_some_and(|pid| is_our_node(pid, i));
            if !alive {
                bail!("Kafka node {i} exited during startup");
            }
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted while waiting for Kafka");
        }
        Ok(())
    };
    for i in 1..=shape.brokers {
        let addr = format!("127.0.0.1:{}", shape.port_of(i));
        loop {
            check_alive()?;
            match proto::api_versions_ok(&addr) {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    bail!("node {i} at {addr} did not answer ApiVersions within {READY_TIMEOUT:?}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
    let addr = format!("127.0.0.1:{}", shape.port);
    loop {
        check_alive()?;
        match proto::broker_count(&addr) {
            Ok(n) if n == shape.brokers as usize => break,
            r if Instant::now() > deadline => {
                bail!(
                    "the cluster did not report {} registered brokers in time (last: {r:?})",
                    shape.brokers
                )
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    // The secured listeners start with the PLAINTEXT one; that they accept TCP is
    // enough (speaking TLS or SASL here would mean a TLS stack in xtask).
    for i in 1..=shape.brokers {
        for port in secure_ports(shape, i) {
            loop {
                check_alive()?;
                match tcp_accepts(port) {
                    Ok(()) => break,
                    Err(e) if Instant::now() > deadline => {
                        bail!("node {i}'s secured listener on 127.0.0.1:{port} did not accept TCP in time: {e}")
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
    }
    Ok(())
}

fn secure_ports(shape: &Shape, i: u16) -> Vec<u16> {
    if !shape.security {
        return Vec::new();
    }
    SECURE_LISTENERS
        .iter()
        .map(|l| shape.port_of(i) + l.offset)
        .collect()
}

fn tcp_accepts(port: u16) -> std::io::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map(drop)
}

/// The shape in `run/shape`: the cluster `up` started last, whether its nodes run or not.
pub fn shape_on_disk() -> Option<Shape> {
    Shape::decode(&fs::read_to_string(run_dir().join("shape")).ok()?)
}

/// The shape of our running cluster, if all its nodes are alive and answering.
pub fn status() -> Option<Shape> {
    let shape = shape_on_disk()?;
    (running_nodes().len() == shape.brokers as usize && cluster_ready(&shape)).then_some(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(brokers: u16, version: &str) -> Shape {
        Shape {
            version: version.into(),
            brokers,
            port: DEFAULT_PORT,
            security: false,
        }
    }

    #[test]
    fn ports_and_bootstrap() {
        let s = shape(3, "4.1.1");
        assert_eq!(
            s.bootstrap(),
            "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"
        );
        assert_eq!(Shape::decode(&s.encode()), Some(s));
        assert_eq!(shape(1, "4.1.1").bootstrap(), "127.0.0.1:19092");
    }

    #[test]
    fn three_node_properties() {
        let p = server_properties(&shape(3, "4.1.1"), 2, Path::new("/n2"));
        assert!(p.contains("node.id=2\n"));
        assert!(p.contains(
            "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293\n"
        ));
        assert!(p.contains(
            "listeners=PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193,FAULTY://127.0.0.1:19194\n"
        ));
        assert!(p.contains(
            "advertised.listeners=PLAINTEXT://127.0.0.1:19192,FAULTY://127.0.0.1:19195\n"
        ));
        assert!(p.contains("offsets.topic.replication.factor=3\n"));
        assert!(p.contains("default.replication.factor=3\n"));
        assert!(p.contains("min.insync.replicas=2\n"));
        assert!(p.contains("transaction.state.log.min.isr=2\n"));
        assert!(p.contains("share.coordinator.state.topic.min.isr=2\n"));
    }

    #[test]
    fn ports_stay_below_the_ephemeral_range() {
        let s = Shape {
            port: 27092,
            ..shape(3, "4.1.1")
        };
        assert_eq!(s.top_port(), 27295);
        let secure = Shape {
            security: true,
            ..s.clone()
        };
        assert_eq!(secure.top_port(), 27308);
        let high = Shape {
            port: 32600,
            ..s.clone()
        };
        assert!(high.top_port() >= 32768);
    }

    #[test]
    fn node_command_runs_the_broker_with_its_properties() {
        let args = node_command(
            "/libs/*",
            "-Dlog4j2.configurationFile=/n2/l",
            Path::new("/n2"),
        );
        assert!(args[0].ends_with("java"));
        assert_eq!(args.last().unwrap(), "/n2/server.properties");
        let at = args.iter().position(|a| a == "-cp").unwrap();
        assert_eq!(args[at + 1..at + 3], ["/libs/*", "kafka.Kafka"]);
        assert!(args.contains(&"-Dkafka.logs.dir=/n2".to_string()));
    }

    #[test]
    fn security_shape_listeners_and_files() {
        let s = Shape {
            security: true,
            ..shape(3, "4.1.1")
        };
        assert_eq!(Shape::decode(&s.encode()), Some(s.clone()));
        assert_eq!(
            Shape::decode("4.1.1 1 19092").map(|s| s.security),
            Some(false)
        );
        assert_eq!(
            s.bootstrap_at(13),
            "127.0.0.1:19105,127.0.0.1:19205,127.0.0.1:19305"
        );
        assert_eq!(s.bound_ports(2).len(), 3 + SECURE_LISTENERS.len());

        let p = server_properties(&s, 2, Path::new("/n2"));
        assert!(p.contains(
            "listeners=PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193,FAULTY://127.0.0.1:19194,\
             SSL://127.0.0.1:19202,SASL_PLAINTEXT://127.0.0.1:19203,SASL_SSL://127.0.0.1:19204,\
             MTLS://127.0.0.1:19205,EXPIRED://127.0.0.1:19206,WRONGNAME://127.0.0.1:19207,\
             REAUTH://127.0.0.1:19208\n"
        ));
        assert!(p.contains(
            "advertised.listeners=PLAINTEXT://127.0.0.1:19192,FAULTY://127.0.0.1:19195,SSL://127.0.0.1:19202,"
        ));
        assert!(p.contains(",MTLS:SSL,EXPIRED:SSL,WRONGNAME:SSL,REAUTH:SASL_PLAINTEXT\n"));
        assert!(p.contains("inter.broker.listener.name=PLAINTEXT\n"));
        assert!(p.contains("super.users=User:ANONYMOUS;User:admin;User:alice;User:sluice-client\n"));
        assert!(p.contains("listener.name.reauth.connections.max.reauth.ms=10000\n"));
        assert!(!p.contains("\nconnections.max.reauth.ms"));
        for l in ["sasl_plaintext", "sasl_ssl", "reauth"] {
            for m in ["plain", "scram-sha-256", "scram-sha-512", "oauthbearer"] {
                assert!(p.contains(&format!("listener.name.{l}.{m}.sasl.jaas.config=")));
            }
        }
        assert!(p.contains(r#"user_mallory="mallory-secret";"#));
        assert!(!server_properties(&shape(1, "4.1.1"), 1, Path::new("/n1")).contains("SSL"));

        let scram = scram_format_args();
        assert_eq!(scram.len(), 12);
        assert!(scram.contains(&"SCRAM-SHA-512=[name=alice,password=alice-secret]".to_string()));

        let file = security_file(&s);
        assert!(file.contains("listener.SASL_SSL.protocol=SASL_SSL\n"));
        assert!(file.contains(
            "listener.REAUTH.bootstrap=127.0.0.1:19108,127.0.0.1:19208,127.0.0.1:19308\n"
        ));
        assert!(file.contains("sasl.user.mallory=mallory-secret\n"));
    }

    #[test]
    fn single_node_3x_properties() {
        let p = server_properties(&shape(1, "3.9.1"), 1, Path::new("/n1"));
        assert!(p.contains("offsets.topic.replication.factor=1\n"));
        assert!(p.contains("default.replication.factor=1\n"));
        assert!(p.contains("min.insync.replicas=1\n"));
        assert!(p.contains("transaction.state.log.min.isr=1\n"));
        assert!(!p.contains("share.coordinator"));
        assert!(pom("3.9.1", 3).contains("slf4j-reload4j"));
        assert!(pom("4.1.1", 4).contains("log4j-slf4j2-impl"));
    }
}
