//! Killing, stopping and restarting the brokers of the `cargo xtask kafka up` cluster
//! from tests (what `cargo xtask kafka kill|stop|start <node>` do from a shell).
//!
//! xtask writes each node's command line to `target/kafka/run/node-<i>/start.args` (one
//! argument per line); a restart runs it again, so the node comes back with the same
//! node id, properties and log dir.

use crate::sync;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::admin::{metadata_on, Admin};
use crate::kafka_dir;
use crate::protocol::KafkaConnection;

/// How long [`Brokers::start`] waits for a node to rejoin.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long [`Brokers::stop`] waits for a controlled shutdown before it SIGKILLs.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Brokers::kill`] waits for the process to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Nodes this process started (restarted); reaped so a killed one leaves no zombie.
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn reap() {
    let mut children = sync::lock(&CHILDREN);
    children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
}

/// The brokers of the test cluster, to kill, stop and restart from a test. Get it with
/// [`brokers`].
///
/// Only one `Brokers` exists per test process at a time ([`brokers`] waits for the
/// previous one to be dropped), so tests that take nodes down do not overlap. Dropping
/// it restarts every node it took down that is still down (and waits until they have
/// rejoined), so the next test finds the whole cluster.
///
/// Node ids are Kafka's `node.id`s: `1..=n` for `cargo xtask kafka up --brokers n`.
///
/// ```no_run
/// use std::time::Duration;
/// let brokers = sluice_testkit::brokers();
/// let admin = brokers.admin();
/// let topic = sluice_testkit::unique_topic("failover");
/// admin.create_topic(&topic, 1, 3, &[("min.insync.replicas", "2")]).unwrap();
/// let leader = admin.leader_of(&topic, 0).unwrap().unwrap();
/// brokers.kill(leader).unwrap();
/// let new_leader = admin.wait_for_leader(&topic, 0, Some(leader), Duration::from_secs(15)).unwrap();
/// brokers.start(leader).unwrap();
/// admin.wait_until_isr_full(&topic, Duration::from_secs(60)).unwrap();
/// # let _ = new_leader;
/// ```
pub struct Brokers {
    run: PathBuf,
    brokers: u16,
    port: u16,
    admin: Admin,
    taken_down: Mutex<BTreeSet<i32>>,
    _serial: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brokers")
            .field("brokers", &self.brokers)
            .field("port", &self.port)
            .finish()
    }
}

/// The cluster `cargo xtask kafka up` started (see [`Brokers`]). Waits until no other
/// `Brokers` of this process is alive.
///
/// Panics, saying how to start one, when `target/kafka/run/shape` is missing (no cluster,
/// or `SLUICE_BOOTSTRAP` names a cluster xtask did not start: its processes cannot be
/// controlled from here).
pub fn brokers() -> Brokers {
    static SERIAL: Mutex<()> = Mutex::new(());
    let serial = sync::lock(&SERIAL);
    let run = kafka_dir().join("run");
    let shape = fs::read_to_string(run.join("shape")).unwrap_or_else(|e| {
        panic!(
            "brokers() controls the cluster of `cargo xtask kafka up` (or `cargo xtask test`), \
             but there is none: cannot read {}: {e}",
            run.join("shape").display()
        )
    });
    let mut it = shape.split_whitespace().skip(1);
    let (Some(Ok(brokers)), Some(Ok(port))) = (
        it.next().map(str::parse::<u16>),
        it.next().map(str::parse::<u16>),
    ) else {
        panic!(
            "{} is not what xtask writes: {shape:?}",
            run.join("shape").display()
        );
    };
    let bootstrap = (1..=brokers)
        .map(|i| format!("127.0.0.1:{}", port + 100 * (i - 1)))
        .collect::<Vec<_>>()
        .join(",");
    if let Ok(env) = std::env::var("SLUICE_BOOTSTRAP") {
        if !env.trim().is_empty() && env.trim() != bootstrap {
            panic!(
                "SLUICE_BOOTSTRAP={env} is not the cluster of `cargo xtask kafka up` \
                 ({bootstrap}); brokers() can only control the latter"
            );
        }
    }
    Brokers {
        run,
        brokers,
        port,
        admin: Admin::new(&bootstrap),
        taken_down: Mutex::new(BTreeSet::new()),
        _serial: serial,
    }
}

impl Brokers {
    /// Every node id of the cluster, running or not: `[1, 2, ..., n]`.
    pub fn node_ids(&self) -> Vec<i32> {
        (1..=i32::from(self.brokers)).collect()
    }

    /// Queries through every node's PLAINTEXT listener (those that are down are skipped).
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// The PLAINTEXT `host:port` of `node`.
    pub fn addr(&self, node: i32) -> String {
        format!("127.0.0.1:{}", self.base_port(node))
    }

    /// The PLAINTEXT bootstrap of every node.
    pub fn bootstrap(&self) -> String {
        self.admin.addrs().join(",")
    }

    fn base_port(&self, node: i32) -> u16 {
        self.check(node);
        self.port + 100 * (node as u16 - 1)
    }

    fn check(&self, node: i32) {
        assert!(
            (1..=i32::from(self.brokers)).contains(&node),
            "the cluster has nodes 1..={}; there is no node {node}",
            self.brokers
        );
    }

    fn node_dir(&self, node: i32) -> PathBuf {
        self.check(node);
        self.run.join(format!("node-{node}"))
    }

    fn pid(&self, node: i32) -> Option<i32> {
        reap();
        let dir = self.node_dir(node);
        let pid: i32 = fs::read_to_string(dir.join("kafka.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        is_broker_of(pid, &dir).then_some(pid)
    }

    /// Whether `node`'s broker process is alive (it may still be starting).
    pub fn is_running(&self, node: i32) -> bool {
        self.pid(node).is_some()
    }

    /// SIGKILLs `node`: no controlled shutdown, as in a crash or a power cut. Returns
    /// once the process is gone; the controller fences the node (and moves its leaders)
    /// only after `broker.session.timeout.ms` (4 s in the clusters `cargo xtask kafka up
    /// --brokers 3` starts; 9 s at Kafka's default).
    pub fn kill(&self, node: i32) -> Result<()> {
        if !self.signal(node, libc::SIGKILL, KILL_TIMEOUT)? {
            bail!("node {node} is still alive {KILL_TIMEOUT:?} after SIGKILL");
        }
        Ok(())
    }

    /// SIGTERMs `node`: a controlled shutdown (its leaders move to other replicas first).
    /// Returns once it has exited; SIGKILLs it after 60 s.
    pub fn stop(&self, node: i32) -> Result<()> {
        if !self.signal(node, libc::SIGTERM, STOP_TIMEOUT)? {
            eprintln!("sluice-testkit: node {node} ignored SIGTERM for {STOP_TIMEOUT:?}; SIGKILL");
            self.kill(node)?;
        }
        Ok(())
    }

    fn signal(&self, node: i32, sig: i32, timeout: Duration) -> Result<bool> {
        let Some(pid) = self.pid(node) else {
            bail!("node {node} is not running");
        };
        sync::lock(&self.taken_down).insert(node);
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our broker's.
        unsafe {
            libc::kill(pid, sig);
        }
        let deadline = Instant::now() + timeout;
        while self.is_running(node) {
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(true)
    }

    /// Restarts `node` (same node id, properties and log dir) and returns once it serves
    /// ApiVersions and has rejoined: it and every other running node list it as a
    /// registered broker in Metadata. Up to 120 s.
    pub fn start(&self, node: i32) -> Result<()> {
        if self.is_running(node) {
            bail!("node {node} is already running");
        }
        let dir = self.node_dir(node);
        let text = fs::read_to_string(dir.join("start.args")).with_context(|| {
            format!(
                "reading {}/start.args (written by `cargo xtask kafka up`; an older xtask \
                 did not write it: run `cargo xtask kafka up` again)",
                dir.display()
            )
        })?;
        let args: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let Some((program, args)) = args.split_first() else {
            bail!("{}/start.args is empty", dir.display());
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
        // Its own process group, like xtask's: outlives this test process (and is
        // stopped by `cargo xtask kafka down`).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let started = Instant::now();
        let child = cmd.spawn().context("starting the Kafka broker")?;
        let pid = child.id() as i32;
        sync::lock(&CHILDREN).push(child);
        fs::write(dir.join("kafka.pid"), format!("{pid}\n"))?;
        let deadline = started + START_TIMEOUT;
        // /proc shows the command line a moment after spawn.
        while !is_broker_of(pid, &dir) {
            if started.elapsed() > Duration::from_secs(5) {
                bail!("node {node} did not start:\n{}", self.logs(node));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        loop {
            if !self.is_running(node) {
                bail!("node {node} exited while starting:\n{}", self.logs(node));
            }
            if self.rejoined(node) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "node {node} did not rejoin within {START_TIMEOUT:?}:\n{}",
                    self.logs(node)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        sync::lock(&self.taken_down).remove(&node);
        Ok(())
    }

    /// Whether `node` answers and it and every other running node list it in Metadata.
    fn rejoined(&self, node: i32) -> bool {
        let lists = |addr: &str| {
            KafkaConnection::connect_timeout(addr, Duration::from_secs(1))
                .ok()
                .and_then(|mut c| metadata_on(&mut c, Some(&[])).ok())
                .is_some_and(|m| m.brokers.iter().any(|b| b.node_id.0 == node))
        };
        lists(&self.addr(node))
            && self
                .node_ids()
                .into_iter()
                .filter(|&j| j != node && self.is_running(j))
                .all(|j| lists(&self.addr(j)))
    }

    fn logs(&self, node: i32) -> String {
        let dir = self.node_dir(node);
        format!(
            "--- {0}/kafka.out (tail) ---\n{1}\n--- {0}/server.log (tail) ---\n{2}",
            dir.display(),
            tail(&dir.join("kafka.out"), 15),
            tail(&dir.join("server.log"), 30)
        )
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        let down: Vec<i32> = sync::lock(&self.taken_down).iter().copied().collect();
        for node in down {
            if !self.is_running(node) {
                if let Err(e) = self.start(node) {
                    eprintln!(
                        "sluice-testkit: restarting node {node} after the test failed: {e:#}"
                    );
                }
            }
        }
    }
}

/// True when `pid` is a live broker started from node dir `dir` (its command line names
/// `dir/server.properties`), so a recycled pid is never mistaken for ours. A zombie has
/// an empty command line.
fn is_broker_of(pid: i32, dir: &Path) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&raw);
    let props = dir.join("server.properties");
    cmdline.contains("kafka.Kafka") && cmdline.contains(&*props.to_string_lossy())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
