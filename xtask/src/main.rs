//! `cargo xtask`: project automation for Sluice.
//!
//! ```text
//! cargo xtask kafka up [--brokers 1|3] [--version 4.1.1] [--port 19092] [--security]
//! cargo xtask kafka down
//! cargo xtask kafka status
//! cargo xtask kafka kill <node>       # SIGKILL one node (1-based)
//! cargo xtask kafka stop <node>       # SIGTERM: controlled shutdown
//! cargo xtask kafka start <node>      # restart it; waits until it has rejoined
//! cargo xtask kafka classpath
//! cargo xtask registry up [--port 18081] [--version 3.0.9]   # Apicurio Registry
//! cargo xtask registry down
//! cargo xtask registry status
//! cargo xtask test [--brokers N] [--version V] [--no-security] [--no-registry] [-- <cargo test args>]
//! cargo xtask demo [--security] [--no-registry]
//! cargo xtask bench [--quick] [--records N] [--repeat R] [--clients a,b] [--port 19092]
//! ```
//!
//! `--security` (env `SLUICE_KAFKA_SECURITY=1`; on by default for `test`, off with
//! `--no-security` or `SLUICE_KAFKA_SECURITY=0`) adds TLS, mTLS and SASL listeners with
//! test certificates and users to every broker, and writes `target/kafka/run/security`
//! for the testkit: see the listener table in `kafka.rs`.
//!
//! With `--brokers 3` (or more), `test` also enables the root crate's `replicated`
//! feature, which builds `tests/replicated.rs` (failover tests that need three brokers);
//! the single-broker run does not build it. CI runs it alone:
//! `cargo xtask test --brokers 3 --no-security -- --test replicated`.
//!
//! `test` also starts (and afterwards stops) a schema registry for sluice-schema's tests
//! and passes its URL as SLUICE_REGISTRY_URL, unless that is already set or
//! `--no-registry` is given: see `registry.rs`. `demo` does the same, so the demo's
//! output is Avro with a registered schema (JSON with `--no-registry`).
//!
//! On one broker, `test` finds a `prometheus` binary for the exporter's test (installing
//! Debian's package with apt when it is missing and it runs as root) and passes it as
//! SLUICE_PROMETHEUS: see `prometheus.rs`.

mod bench;
mod kafka;
mod prometheus;
mod proto;
mod registry;
mod tls;

use std::process::{Command, ExitCode, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use kafka::{Shape, INTERRUPTED};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Sluice project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Side-by-side benchmarks: Sluice vs rdkafka, rskafka and Java (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Manage the local Apache Kafka (KRaft) cluster used by the tests.
    #[command(subcommand)]
    Kafka(KafkaCmd),
    /// Manage the local schema registry (Apicurio Registry, Confluent-compatible API)
    /// used by sluice-schema's tests.
    #[command(subcommand)]
    Registry(RegistryCmd),
    /// Run `cargo test --workspace` against Kafka (started and stopped unless
    /// SLUICE_BOOTSTRAP is set) and a schema registry (started and stopped unless
    /// SLUICE_REGISTRY_URL is set or --no-registry is given).
    Test {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Start no schema registry (for runs that build no schema test).
        #[arg(long)]
        no_registry: bool,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run `examples/orders_pipeline.rs` against Kafka (started and stopped unless
    /// SLUICE_BOOTSTRAP is set) and a schema registry for its Avro output (started and
    /// stopped unless SLUICE_REGISTRY_URL is set or --no-registry is given); fails if its
    /// final check (input = output + dead-lettered) fails.
    Demo {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Start no schema registry: the demo writes JSON instead of Avro.
        #[arg(long)]
        no_registry: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

#[derive(Subcommand)]
enum KafkaCmd {
    /// Fetch the jars (cached), start a fresh cluster, wait until it serves requests and
    /// print its bootstrap address. Reuses a running cluster of the same shape.
    Up {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Stop the cluster started by `up` (only the pids in its pid files).
    Down,
    /// Print the bootstrap address if our cluster is running and answering; say which
    /// nodes are down otherwise.
    Status,
    /// SIGKILL node N (1-based): no controlled shutdown; the controller fences it after
    /// broker.session.timeout.ms. Waits until the process is gone.
    Kill {
        /// The node id (1..=brokers).
        node: u16,
    },
    /// SIGTERM node N: a controlled shutdown (its partition leaders move away first).
    /// Waits until it has exited (SIGKILL after 60 s).
    Stop {
        /// The node id (1..=brokers).
        node: u16,
    },
    /// Restart node N with the same node id, properties and log dir; waits until it
    /// answers ApiVersions and every running node lists it in Metadata again.
    Start {
        /// The node id (1..=brokers).
        node: u16,
    },
    /// Print the Java classpath (`<libs>/*`) of a Kafka version, fetching it if needed.
    Classpath {
        #[arg(long, env = "SLUICE_KAFKA_VERSION", default_value = kafka::DEFAULT_VERSION)]
        version: String,
    },
}

#[derive(Subcommand)]
enum RegistryCmd {
    /// Fetch Apicurio Registry from Maven Central (cached), start it in memory on
    /// 127.0.0.1, wait for `/health/ready` and print the URL of its Confluent-compatible
    /// API. Reuses our running registry if it serves the same port.
    Up {
        /// The registry's HTTP port.
        #[arg(long, env = "SLUICE_REGISTRY_PORT", default_value_t = registry::DEFAULT_PORT)]
        port: u16,
        /// Apicurio Registry version (`io.apicurio:apicurio-registry-app:<v>:tar.gz:all`).
        #[arg(long, env = "SLUICE_REGISTRY_VERSION", default_value = registry::DEFAULT_VERSION)]
        version: String,
    },
    /// Stop the registry started by `up` (only the pid in its pid file).
    Down,
    /// Print the URL if our registry is running.
    Status,
}

#[derive(Args, Clone)]
struct RegistryArgs {
    /// The schema registry's HTTP port.
    #[arg(long = "registry-port", env = "SLUICE_REGISTRY_PORT", default_value_t = registry::DEFAULT_PORT)]
    registry_port: u16,
    /// Apicurio Registry version (`io.apicurio:apicurio-registry-app:<v>:tar.gz:all`).
    #[arg(long = "registry-version", env = "SLUICE_REGISTRY_VERSION", default_value = registry::DEFAULT_VERSION)]
    registry_version: String,
}

#[derive(Args, Clone)]
struct ClusterArgs {
    /// Number of brokers (each is also a KRaft controller).
    #[arg(long, env = "SLUICE_KAFKA_BROKERS", default_value_t = 1)]
    brokers: u16,
    /// Apache Kafka version (jars from Maven Central).
    #[arg(long, env = "SLUICE_KAFKA_VERSION", default_value = kafka::DEFAULT_VERSION)]
    version: String,
    /// PLAINTEXT port of node 1; node i listens on port+100*(i-1), its controller on +1.
    #[arg(long, env = "SLUICE_KAFKA_PORT", default_value_t = kafka::DEFAULT_PORT)]
    port: u16,
    /// Also start TLS, mTLS and SASL listeners on port+10..=port+16 of every node, with
    /// generated certificates and test users (env SLUICE_KAFKA_SECURITY=1). The default
    /// of `cargo xtask test`.
    #[arg(long, overrides_with = "no_security")]
    security: bool,
    /// Without the TLS and SASL listeners (env SLUICE_KAFKA_SECURITY=0).
    #[arg(long, overrides_with = "security")]
    no_security: bool,
}

impl ClusterArgs {
    /// The cluster to run; `security_default` applies when neither flag nor
    /// SLUICE_KAFKA_SECURITY says.
    fn shape(&self, security_default: bool) -> Result<Shape> {
        let security = if self.security {
            true
        } else if self.no_security {
            false
        } else {
            match std::env::var("SLUICE_KAFKA_SECURITY")
                .as_deref()
                .map(str::trim)
            {
                Err(_) | Ok("") => security_default,
                Ok("1" | "true" | "yes" | "on") => true,
                Ok("0" | "false" | "no" | "off") => false,
                Ok(other) => bail!("SLUICE_KAFKA_SECURITY={other:?}: expected 1 or 0"),
            }
        };
        Ok(Shape {
            version: self.version.clone(),
            brokers: self.brokers,
            port: self.port,
            security,
        })
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Bench(args) => bench::run(args),
        Cmd::Kafka(KafkaCmd::Up { cluster }) => {
            println!("{}", kafka::up(&cluster.shape(false)?)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kafka(KafkaCmd::Down) => {
            kafka::down()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kafka(KafkaCmd::Status) => match kafka::status() {
            Some(shape) => {
                eprintln!(
                    "xtask: Kafka {} with {} broker(s){} is running",
                    shape.version,
                    shape.brokers,
                    if shape.security {
                        " and the --security listeners"
                    } else {
                        ""
                    }
                );
                println!("{}", shape.bootstrap());
                Ok(ExitCode::SUCCESS)
            }
            None => {
                match kafka::shape_on_disk() {
                    Some(shape) if (1..=shape.brokers).any(kafka::node_running) => {
                        for i in 1..=shape.brokers {
                            let state = if kafka::node_running(i) {
                                "running"
                            } else {
                                "down (`cargo xtask kafka start <node>` restarts it)"
                            };
                            eprintln!("xtask: node {i}: {state}");
                        }
                        eprintln!("xtask: the cluster is not whole (or not answering yet)");
                    }
                    _ => eprintln!("xtask: no cluster of ours is running"),
                }
                Ok(ExitCode::FAILURE)
            }
        },
        Cmd::Kafka(KafkaCmd::Kill { node }) => {
            kafka::kill_node(node)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kafka(KafkaCmd::Stop { node }) => {
            kafka::stop_node(node)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kafka(KafkaCmd::Start { node }) => {
            install_signal_flag();
            kafka::start_node(node)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kafka(KafkaCmd::Classpath { version }) => {
            let major = version
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(4);
            println!("{}/*", kafka::fetch(&version, major)?.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Registry(RegistryCmd::Up { port, version }) => {
            install_signal_flag();
            println!("{}", registry::up(&version, port)?);
            eprintln!("xtask: for the schema tests:");
            for (k, v) in registry::test_env(port) {
                eprintln!("  export {k}={v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Registry(RegistryCmd::Down) => {
            registry::down()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Registry(RegistryCmd::Status) => match registry::running() {
            Some((pid, url)) => {
                eprintln!("xtask: Apicurio Registry (pid {pid}) is running");
                println!("{url}");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("xtask: no Apicurio Registry of ours is running");
                Ok(ExitCode::FAILURE)
            }
        },
        Cmd::Test {
            cluster,
            no_registry,
            registry,
            args,
        } => {
            // `--workspace` would override a `-p` given after `--`.
            let picks_packages = args
                .iter()
                .take_while(|a| *a != "--")
                .any(|a| a == "-p" || a.starts_with("--package") || a.starts_with("-p"));
            let shape = cluster.shape(true)?;
            let mut cmd = cargo();
            cmd.arg("test");
            let mut cargo_args = Vec::new();
            if !picks_packages {
                cargo_args.push("--workspace".to_string());
                // tests/replicated.rs needs three brokers: built only with this feature.
                if shape.brokers >= 3 {
                    cargo_args.extend(["--features".to_string(), REPLICATED_FEATURE.into()]);
                }
            }
            cargo_args.extend(args.iter().cloned());
            cmd.args(&cargo_args);
            // The lag exporter's test scrapes with a real Prometheus (the 3-broker
            // stage builds no such test).
            if shape.brokers < 3 && std::env::var_os("SLUICE_PROMETHEUS").is_none() {
                if let Some(binary) = prometheus::ensure() {
                    cmd.env("SLUICE_PROMETHEUS", binary);
                }
            }
            let what = format!("cargo test {}", cargo_args.join(" "));
            // The security tests (testkit's, the client's TLS/SASL ones) run here too.
            if no_registry {
                with_kafka(&shape, &what, cmd)
            } else {
                with_registry(&registry, cmd, |cmd| with_kafka(&shape, &what, cmd))
            }
        }
        Cmd::Demo {
            cluster,
            no_registry,
            registry,
        } => {
            let mut cmd = cargo();
            cmd.args(["run", "--quiet", "--example", "orders_pipeline"]);
            let shape = cluster.shape(false)?;
            let what = "the demo (cargo run --example orders_pipeline)";
            if no_registry {
                // An inherited SLUICE_REGISTRY_URL would make the example write Avro.
                cmd.env_remove("SLUICE_REGISTRY_URL");
                with_kafka(&shape, what, cmd)
            } else {
                with_registry(&registry, cmd, |cmd| with_kafka(&shape, what, cmd))
            }
        }
    }
}

/// The root crate's feature that builds `tests/replicated.rs`.
const REPLICATED_FEATURE: &str = "sluice/replicated";

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(kafka::workspace_root());
    cmd
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catch SIGINT/SIGTERM so the cluster is stopped even when the run is interrupted.
/// Children get default dispositions back on exec (caught signals are not inherited).
fn install_signal_flag() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Run `cmd` with SLUICE_BOOTSTRAP pointing at a cluster; start (and afterwards stop)
/// one unless SLUICE_BOOTSTRAP is already set or our cluster is already running.
fn with_kafka(shape: &Shape, what: &str, mut cmd: Command) -> Result<ExitCode> {
    install_signal_flag();
    let (bootstrap, started_here) = match std::env::var("SLUICE_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => {
            eprintln!("xtask: SLUICE_BOOTSTRAP={b} is set; using that cluster, starting none");
            (b, false)
        }
        _ => {
            // A cluster of the same shape that is already up is used and left running;
            // one of another shape is replaced by `up` and so counts as started here.
            let was_running = kafka::status().as_ref() == Some(shape);
            let b = kafka::up(shape)?;
            if was_running {
                eprintln!(
                    "xtask: using the cluster that was already running; it stays up afterwards"
                );
            }
            (b, !was_running)
        }
    };
    eprintln!("xtask: running {what} with SLUICE_BOOTSTRAP={bootstrap}");
    let result = run_child(cmd.env("SLUICE_BOOTSTRAP", &bootstrap));
    if started_here {
        eprintln!("xtask: stopping the Kafka cluster started for this run");
        if let Err(e) = kafka::down() {
            eprintln!("xtask: warning: stopping Kafka failed: {e:#}");
        }
    }
    let status = result?;
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    if status.success() {
        eprintln!("xtask: {what} passed");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("xtask: {what} failed ({status})");
        // Propagate the child's exit code where there is one.
        Ok(ExitCode::from(
            status.code().map_or(1, |c| c.clamp(1, 255) as u8),
        ))
    }
}

/// Run `inner` with SLUICE_REGISTRY_URL (and the TLS variables of
/// `registry::test_env`) set on `cmd`; start (and afterwards stop) a
/// registry unless SLUICE_REGISTRY_URL is already set or ours is already running.
fn with_registry(
    args: &RegistryArgs,
    mut cmd: Command,
    inner: impl FnOnce(Command) -> Result<ExitCode>,
) -> Result<ExitCode> {
    install_signal_flag();
    if let Ok(url) = std::env::var("SLUICE_REGISTRY_URL") {
        if !url.trim().is_empty() {
            eprintln!("xtask: SLUICE_REGISTRY_URL={url} is set; using that registry");
            return inner(cmd);
        }
    }
    // Ours on another port is replaced by `up`, and so counts as started here.
    let was_running =
        registry::running().is_some_and(|(_, url)| url == registry::url(args.registry_port));
    registry::up(&args.registry_version, args.registry_port)?;
    cmd.envs(registry::test_env(args.registry_port));
    let result = inner(cmd);
    if was_running {
        eprintln!("xtask: the registry was already running; it stays up afterwards");
    } else if let Err(e) = registry::down() {
        eprintln!("xtask: warning: stopping the registry failed: {e:#}");
    }
    result
}

/// Wait for the child; on SIGTERM/SIGINT to us, pass SIGTERM on once and keep waiting.
fn run_child(cmd: &mut Command) -> Result<ExitStatus> {
    let mut child = cmd.spawn().context("spawning cargo")?;
    let mut forwarded = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if INTERRUPTED.load(Ordering::SeqCst) && !forwarded {
            forwarded = true;
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
