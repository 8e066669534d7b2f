//! `compare report`: medians per (scenario, client) of the runs in a results.jsonl
//! written by `cargo xtask bench`, as `results.md` and PNG bar charts: records/s, CPU
//! per record and peak RSS per family of scenarios (`<family>-throughput.png`,
//! `-cpu.png`, `-rss.png`; families: produce, consume, partitions, pipeline,
//! replicated, tls; `stalled-rss.png` only for the stalled broker) and `latency.png` for
//! the fixed-rate ones.
//!
//! Scenarios named `latency ...` run at a fixed rate: their records/s is the rate, not a
//! throughput, so they are left out of the throughput chart and the throughput ratios and
//! get a latency chart and latency ratios of their own.
//!
//! Scenarios that end in ` SSL` and have a twin ending in ` PLAINTEXT` (`cargo xtask bench
//! --tls`) also get a table of what TLS costs each client: SSL ÷ PLAINTEXT. The Sluice
//! variants with another crypto provider (`sluice-ring`, `sluice-aws-lc`) run over SSL
//! only; their PLAINTEXT figure is plain `sluice`'s (the provider is not used there).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Deserialize;

use crate::RunResult;

/// One line of results.jsonl: a client's result line plus what xtask measured.
#[derive(Deserialize, Debug, Clone)]
struct Row {
    #[serde(flatten)]
    r: RunResult,
    /// user + sys CPU seconds of the client process.
    cpu_secs: f64,
    /// Peak resident set size of the client process, KiB.
    max_rss_kb: u64,
}

/// A run that failed (a peer's: xtask records it and goes on).
#[derive(Deserialize, Debug, Clone)]
struct Failure {
    scenario: String,
    client: String,
    rep: u32,
    failed: String,
}

/// The "Failed runs" section: which peer failed which scenario in which repeat, and why.
fn failed_runs(s: &mut String, failures: &[Failure]) {
    use std::fmt::Write;
    if failures.is_empty() {
        return;
    }
    s.push_str("\n## Failed runs\n\nThese runs failed; their scenario has no row for the client in that repeat.\n\n");
    s.push_str("| scenario | client | repeat | error |\n|---|---|---|---|\n");
    for f in failures {
        let reason = f.failed.replace('|', "\\|");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {reason} |",
            f.scenario,
            f.client,
            f.rep + 1
        );
    }
}

/// Medians of one (scenario, client).
#[derive(Debug, Clone, Default)]
struct Med {
    runs: usize,
    rps: f64,
    mbps: f64,
    /// MiB of the records (the stalled-broker scenario: accepted while stopped).
    mib: f64,
    cpu_per_m: f64,
    rss_mb: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_opt(v: Vec<Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = v.into_iter().flatten().collect();
    (!v.is_empty()).then(|| median(v))
}

const CLIENT_ORDER: [&str; 10] = [
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

/// The peers added for issue 18, compared with Sluice in tables of their own.
const PEERS: [&str; 3] = ["kacrab", "krafka", "franz-go"];

fn is_fixed_rate(scenario: &str) -> bool {
    scenario.starts_with("latency ")
}

/// The stalled-broker scenario (`stall.rs`): its records are sends accepted while the
/// broker was stopped and its figure is the peak RSS, so it has no throughput or CPU
/// ratios, only a table and an RSS chart of its own.
fn is_stalled(scenario: &str) -> bool {
    scenario.starts_with("stalled broker")
}

/// A scenario whose records/s and CPU per record compare clients' speed.
fn is_flat_out(scenario: &str) -> bool {
    !is_fixed_rate(scenario) && !is_stalled(scenario)
}

/// The chart family of a flat-out scenario: `tls` (SSL and PLAINTEXT twins),
/// `replicated` (RF3), `partitions` (1,000 partitions), `pipeline`, `produce`, `consume`.
fn family(scenario: &str) -> &'static str {
    if scenario.ends_with(" SSL") || scenario.ends_with(" PLAINTEXT") {
        "tls"
    } else if scenario.ends_with(" RF3") {
        "replicated"
    } else if scenario.contains(" 1000p") {
        "partitions"
    } else if scenario.starts_with("pipeline ") {
        "pipeline"
    } else if is_stalled(scenario) {
        "stalled"
    } else if scenario.starts_with("consume ") {
        "consume"
    } else {
        "produce"
    }
}

fn client_rank(c: &str) -> usize {
    CLIENT_ORDER
        .iter()
        .position(|x| *x == c)
        .unwrap_or(CLIENT_ORDER.len())
}

fn color(c: &str) -> RGBColor {
    match c {
        "sluice" => RGBColor(0x1f, 0x77, 0xb4),
        "sluice-ring" => RGBColor(0x17, 0xbe, 0xcf),
        "sluice-aws-lc" => RGBColor(0x94, 0x67, 0xbd),
        "rdkafka" => RGBColor(0xd6, 0x27, 0x28),
        "rdkafka-tuned" => RGBColor(0xff, 0x98, 0x96),
        "rskafka" => RGBColor(0x2c, 0xa0, 0x2c),
        "java" => RGBColor(0xff, 0x7f, 0x0e),
        "kacrab" => RGBColor(0x8c, 0x56, 0x4b),
        "krafka" => RGBColor(0xe3, 0x77, 0xc2),
        "franz-go" => RGBColor(0xbc, 0xbd, 0x22),
        _ => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

pub fn run(input: &Path, out_dir: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let mut groups: BTreeMap<(String, String), Vec<Row>> = BTreeMap::new();
    let mut failures: Vec<Failure> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}: {line}", input.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line).with_context(at)?;
        if value.get("failed").is_some() {
            failures.push(serde_json::from_value(value).with_context(at)?);
            continue;
        }
        let row: Row = serde_json::from_value(value).with_context(at)?;
        groups
            .entry((row.r.scenario.clone(), row.r.client.clone()))
            .or_default()
            .push(row);
    }
    // scenario -> [(client, medians)] in a fixed client order.
    let mut by_scenario: BTreeMap<String, Vec<(String, Med)>> = BTreeMap::new();
    for ((scenario, client), rows) in groups {
        let m = Med {
            runs: rows.len(),
            rps: median(rows.iter().map(|r| r.r.records as f64 / r.r.secs).collect()),
            mbps: median(
                rows.iter()
                    .map(|r| r.r.bytes as f64 / r.r.secs / 1e6)
                    .collect(),
            ),
            mib: median(
                rows.iter()
                    .map(|r| r.r.bytes as f64 / (1024.0 * 1024.0))
                    .collect(),
            ),
            cpu_per_m: median(
                rows.iter()
                    .map(|r| r.cpu_secs / (r.r.records as f64 / 1e6))
                    .collect(),
            ),
            rss_mb: median(rows.iter().map(|r| r.max_rss_kb as f64 / 1024.0).collect()),
            p50: median_opt(rows.iter().map(|r| r.r.p50_ms).collect()),
            p99: median_opt(rows.iter().map(|r| r.r.p99_ms).collect()),
            p999: median_opt(rows.iter().map(|r| r.r.p999_ms).collect()),
        };
        by_scenario.entry(scenario).or_default().push((client, m));
    }
    for v in by_scenario.values_mut() {
        v.sort_by_key(|(c, _)| client_rank(c));
    }

    std::fs::create_dir_all(out_dir)?;
    let mut md = markdown(&by_scenario);
    failed_runs(&mut md, &failures);
    std::fs::write(out_dir.join("results.md"), &md)?;
    print!("{md}");

    let font = load_font();
    let all: Vec<&String> = by_scenario.keys().collect();
    // One set of charts per family of flat-out scenarios: their scales differ by 10x
    // (consume vs produce), so one chart for all would flatten the smaller bars.
    let mut families: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for s in all.iter().copied().filter(|s| !is_fixed_rate(s)) {
        families.entry(family(s)).or_default().push(s);
    }
    for (family, scenarios) in &families {
        for (what, title, pick) in [
            (
                "throughput",
                "records/s (median, higher is better)",
                (|m: &Med| m.rps) as fn(&Med) -> f64,
            ),
            (
                "cpu",
                "client CPU s per million records (median, lower is better)",
                |m: &Med| m.cpu_per_m,
            ),
            (
                "rss",
                "client peak RSS MiB (median, lower is better)",
                |m: &Med| m.rss_mb,
            ),
        ] {
            if *family == "stalled" && what != "rss" {
                continue;
            }
            let series: Vec<Vec<(String, f64)>> = scenarios
                .iter()
                .map(|s| {
                    by_scenario[*s]
                        .iter()
                        .map(|(c, m)| (c.clone(), pick(m)))
                        .collect()
                })
                .collect();
            let path = out_dir.join(format!("{family}-{what}.png"));
            bar_chart(&path, title, scenarios, &series, font)
                .with_context(|| format!("drawing {}", path.display()))?;
            eprintln!("compare: wrote {}", path.display());
        }
    }

    // Fixed-rate scenarios: a "p50 ...", a "p99 ..." and a "p99.9 ..." group each.
    let mut groups = Vec::new();
    let mut series = Vec::new();
    for s in all.iter().filter(|s| is_fixed_rate(s)) {
        let rest = s.trim_start_matches("latency ");
        for (name, pick) in [
            ("p50", (|m: &Med| m.p50) as fn(&Med) -> Option<f64>),
            ("p99", |m: &Med| m.p99),
            ("p99.9", |m: &Med| m.p999),
        ] {
            groups.push(format!("{name} {rest}"));
            series.push(
                by_scenario[*s]
                    .iter()
                    .filter_map(|(c, m)| Some((c.clone(), pick(m)?)))
                    .collect::<Vec<_>>(),
            );
        }
    }
    if !groups.is_empty() {
        let path = out_dir.join("latency.png");
        let names: Vec<&String> = groups.iter().collect();
        bar_chart(
            &path,
            "delivery latency ms at a fixed rate (median of runs, lower is better)",
            &names,
            &series,
            font,
        )
        .with_context(|| format!("drawing {}", path.display()))?;
        eprintln!("compare: wrote {}", path.display());
    }
    Ok(())
}

/// The SSL ÷ PLAINTEXT table (see the module docs); nothing without SSL scenarios.
fn tls_cost(s: &mut String, by_scenario: &BTreeMap<String, Vec<(String, Med)>>) {
    type Runs = Vec<(String, Med)>;
    let pairs: Vec<(&str, &Runs, &Runs)> = by_scenario
        .iter()
        .filter_map(|(name, ssl)| {
            let base = name.strip_suffix(" SSL")?;
            let plain = by_scenario.get(&format!("{base} PLAINTEXT"))?;
            Some((base, ssl, plain))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    s.push_str("
The cost of TLS for each client: SSL ÷ PLAINTEXT on the same broker (medians; throughput <1 means slower over SSL; CPU per record >1 means more CPU over SSL). `sluice-ring` and `sluice-aws-lc` are divided by plain `sluice`'s PLAINTEXT run:

");
    s.push_str(
        "| scenario | client | throughput SSL / PLAINTEXT | CPU per record SSL / PLAINTEXT |
",
    );
    s.push_str(
        "|---|---|---:|---:|
",
    );
    for (base, ssl, plain) in pairs {
        for (client, m) in ssl {
            let twin = if client.starts_with("sluice") {
                plain
                    .iter()
                    .find(|(c, _)| c == client)
                    .or_else(|| plain.iter().find(|(c, _)| c == "sluice"))
            } else {
                plain.iter().find(|(c, _)| c == client)
            };
            let Some((_, p)) = twin else { continue };
            let _ = writeln!(
                s,
                "| {base} | {client} | {:.2} | {:.2} |",
                m.rps / p.rps,
                m.cpu_per_m / p.cpu_per_m
            );
        }
    }
}

/// The stalled-broker table: what each client took while the broker was stopped, and
/// its peak RSS against the 32 MiB bound.
fn stalled(s: &mut String, by_scenario: &BTreeMap<String, Vec<(String, Med)>>) {
    let bound_mib = crate::stall::BUFFER_BYTES as f64 / (1024.0 * 1024.0);
    for (scenario, clients) in by_scenario.iter().filter(|(s, _)| is_stalled(s)) {
        let _ = write!(
            s,
            "\n{scenario}: sends accepted while the broker was stopped, and the client's peak RSS (above the {bound_mib:.0} MiB bound: its fixed overhead, and what it holds besides the records):\n\n| client | runs | accepted MiB | peak RSS MiB | RSS - {bound_mib:.0} MiB |\n|---|---:|---:|---:|---:|\n"
        );
        for (c, m) in clients {
            let _ = writeln!(
                s,
                "| {c} | {} | {:.1} | {:.0} | {:.0} |",
                m.runs,
                m.mib,
                m.rss_mb,
                m.rss_mb - bound_mib
            );
        }
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1}"))
}

fn markdown(by_scenario: &BTreeMap<String, Vec<(String, Med)>>) -> String {
    let mut s = String::new();
    s.push_str("| scenario | client | runs | records/s | MB/s | CPU s / M records | peak RSS MiB | p50 ms | p99 ms | p99.9 ms |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (scenario, clients) in by_scenario {
        for (c, m) in clients {
            let _ = writeln!(
                s,
                "| {scenario} | {c} | {} | {:.0} | {:.1} | {:.2} | {:.0} | {} | {} | {} |",
                m.runs,
                m.rps,
                m.mbps,
                m.cpu_per_m,
                m.rss_mb,
                fmt_opt(m.p50),
                fmt_opt(m.p99),
                fmt_opt(m.p999)
            );
        }
    }
    let flat_out = by_scenario.keys().any(|s| is_flat_out(s));
    if flat_out {
        s.push_str("\nSluice relative to the others, flat-out scenarios (medians; throughput: >1 means Sluice is faster; CPU: <1 means Sluice uses less CPU per record):\n\n");
        s.push_str("| scenario | throughput / rdkafka | CPU per record / rdkafka | throughput / rdkafka-tuned | CPU per record / rdkafka-tuned | throughput / Java | CPU per record / Java | throughput / rskafka |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    }
    let ratio = |sl: &Med, other: Option<&Med>, f: fn(&Med) -> Option<f64>| match (
        f(sl),
        other.and_then(f),
    ) {
        (Some(a), Some(b)) => format!("{:.2}", a / b),
        _ => "n/a".to_string(),
    };
    for (scenario, clients) in by_scenario.iter().filter(|(s, _)| is_flat_out(s)) {
        let get = |name: &str| clients.iter().find(|(c, _)| c == name).map(|(_, m)| m);
        let rps: fn(&Med) -> Option<f64> = |m| Some(m.rps);
        let cpu: fn(&Med) -> Option<f64> = |m| Some(m.cpu_per_m);
        // One row per Sluice client (`sluice`, and the other crypto providers under TLS).
        for (name, sl) in clients.iter().filter(|(c, _)| c.starts_with("sluice")) {
            let label = if name == "sluice" {
                scenario.clone()
            } else {
                format!("{scenario} ({name})")
            };
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} | {} | {} | {} |",
                ratio(sl, get("rdkafka"), rps),
                ratio(sl, get("rdkafka"), cpu),
                ratio(sl, get("rdkafka-tuned"), rps),
                ratio(sl, get("rdkafka-tuned"), cpu),
                ratio(sl, get("java"), rps),
                ratio(sl, get("java"), cpu),
                ratio(sl, get("rskafka"), rps),
            );
        }
    }
    tls_cost(&mut s, by_scenario);
    stalled(&mut s, by_scenario);
    if by_scenario.keys().any(|s| is_fixed_rate(s)) {
        s.push_str("\nSluice's delivery latency relative to the others at a fixed rate (medians; <1 means Sluice's records are acknowledged sooner):\n\n");
        s.push_str("| scenario | p50 / rdkafka | p99 / rdkafka | p50 / Java | p99 / Java | p50 / rskafka | p99 / rskafka |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for (scenario, clients) in by_scenario.iter().filter(|(s, _)| is_fixed_rate(s)) {
            let get = |name: &str| clients.iter().find(|(c, _)| c == name).map(|(_, m)| m);
            let Some(sl) = get("sluice") else { continue };
            let p50: fn(&Med) -> Option<f64> = |m| m.p50;
            let p99: fn(&Med) -> Option<f64> = |m| m.p99;
            let _ = writeln!(
                s,
                "| {scenario} | {} | {} | {} | {} | {} | {} |",
                ratio(sl, get("rdkafka"), p50),
                ratio(sl, get("rdkafka"), p99),
                ratio(sl, get("java"), p50),
                ratio(sl, get("java"), p99),
                ratio(sl, get("rskafka"), p50),
                ratio(sl, get("rskafka"), p99),
            );
        }
    }
    peers(&mut s, by_scenario);
    s
}

/// Sluice ÷ kacrab, krafka and franz-go (the peers of issue 18), throughput and CPU per
/// record in the flat-out scenarios and p50 / p99 / p99.9 at the fixed rate; nothing when none
/// of them ran.
fn peers(s: &mut String, by_scenario: &BTreeMap<String, Vec<(String, Med)>>) {
    let ran: Vec<&str> = PEERS
        .iter()
        .copied()
        .filter(|c| by_scenario.values().flatten().any(|(x, _)| x == c))
        .collect();
    if ran.is_empty() {
        return;
    }
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", a / b),
        _ => "n/a".to_string(),
    };
    let get = |clients: &Vec<(String, Med)>, name: &str| {
        clients
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, m)| m.clone())
    };
    if by_scenario.keys().any(|s| is_flat_out(s)) {
        s.push_str("\nSluice relative to kacrab, krafka and franz-go, flat-out scenarios (medians; throughput: >1 means Sluice is faster; CPU: <1 means Sluice uses less CPU per record):\n\n| scenario |");
        for label in &ran {
            let _ = write!(s, " throughput / {label} | CPU per record / {label} |");
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|---:|".repeat(ran.len()));
        s.push('\n');
        for (scenario, clients) in by_scenario.iter().filter(|(s, _)| is_flat_out(s)) {
            let Some(sl) = get(clients, "sluice") else {
                continue;
            };
            let _ = write!(s, "| {scenario} |");
            for c in &ran {
                let p = get(clients, c);
                let _ = write!(
                    s,
                    " {} | {} |",
                    ratio(Some(sl.rps), p.as_ref().map(|m| m.rps)),
                    ratio(Some(sl.cpu_per_m), p.as_ref().map(|m| m.cpu_per_m)),
                );
            }
            s.push('\n');
        }
    }
    if !by_scenario.keys().any(|s| is_fixed_rate(s)) {
        return;
    }
    s.push_str("\nSluice's delivery latency relative to kacrab, krafka and franz-go at a fixed rate (medians; <1 means Sluice's records are acknowledged sooner):\n\n| scenario |");
    for label in &ran {
        let _ = write!(s, " p50 / {label} | p99 / {label} | p99.9 / {label} |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|---:|---:|".repeat(ran.len()));
    s.push('\n');
    for (scenario, clients) in by_scenario.iter().filter(|(s, _)| is_fixed_rate(s)) {
        let Some(sl) = get(clients, "sluice") else {
            continue;
        };
        let _ = write!(s, "| {scenario} |");
        for c in &ran {
            let p = get(clients, c);
            let _ = write!(
                s,
                " {} | {} | {} |",
                ratio(sl.p50, p.as_ref().and_then(|m| m.p50)),
                ratio(sl.p99, p.as_ref().and_then(|m| m.p99)),
                ratio(sl.p999, p.as_ref().and_then(|m| m.p999)),
            );
        }
        s.push('\n');
    }
}

/// Registers a TTF for plotters' pure-Rust (ab_glyph) text. Without one the charts have
/// bars and legend swatches but no text (the numbers are in results.md).
fn load_font() -> bool {
    let candidates = [
        std::env::var("COMPARE_FONT").unwrap_or_default(),
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into(),
        "/usr/share/fonts/TTF/DejaVuSans.ttf".into(),
        "/usr/share/fonts/dejavu/DejaVuSans.ttf".into(),
    ];
    for c in candidates.iter().filter(|c| !c.is_empty()) {
        if let Ok(bytes) = std::fs::read(c) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    eprintln!("compare: no TTF font found (set COMPARE_FONT); charts will have no text");
    false
}

/// Grouped bars: one group per scenario, one bar per client.
fn bar_chart(
    path: &Path,
    title: &str,
    scenarios: &[&String],
    series: &[Vec<(String, f64)>],
    font: bool,
) -> Result<()> {
    let root = BitMapBackend::new(path, (1200, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = series
        .iter()
        .flatten()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        * 1.1;
    let n = scenarios.len().max(1);
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(20)
        .set_label_area_size(LabelAreaPosition::Bottom, 60);
    if font {
        builder
            .caption(title, ("sans-serif", 22))
            .set_label_area_size(LabelAreaPosition::Left, 90);
    } else {
        builder.set_label_area_size(LabelAreaPosition::Left, 10);
    }
    let mut chart = builder.build_cartesian_2d(0f64..n as f64, 0f64..max.max(1e-9))?;
    if font {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| {
                if *v >= 1e6 {
                    format!("{:.1}M", v / 1e6)
                } else if *v >= 1e3 {
                    format!("{:.0}k", v / 1e3)
                } else {
                    format!("{v:.1}")
                }
            })
            .label_style(("sans-serif", 15))
            .draw()?;
    }
    let mut clients: Vec<String> = series.iter().flatten().map(|(c, _)| c.clone()).collect();
    clients.sort_by_key(|c| client_rank(c));
    clients.dedup();
    let k = clients.len().max(1) as f64;
    for client in &clients {
        let bars: Vec<Rectangle<(f64, f64)>> = series
            .iter()
            .enumerate()
            .filter_map(|(i, group)| {
                let (_, v) = group.iter().find(|(c, _)| c == client)?;
                let j = clients.iter().position(|c| c == client)? as f64;
                let x0 = i as f64 + 0.1 + 0.8 * j / k;
                let x1 = x0 + 0.8 / k * 0.9;
                Some(Rectangle::new(
                    [(x0, 0.0), (x1, *v)],
                    color(client).filled(),
                ))
            })
            .collect();
        let c = color(client);
        let s = chart.draw_series(bars)?;
        if font {
            s.label(client.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        }
    }
    if font {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()?;
        // Scenario names under their groups.
        for (i, s) in scenarios.iter().enumerate() {
            // Two lines: "produce 100B" / "acks=1 none".
            let words: Vec<&str> = s.split(' ').collect();
            let lines = [
                words[..words.len().min(2)].join(" "),
                words[words.len().min(2)..].join(" "),
            ];
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            for (k, l) in lines.iter().enumerate() {
                root.draw(&Text::new(
                    l.clone(),
                    (px - 4 * l.len() as i32, py + 10 + 18 * k as i32),
                    ("sans-serif", 15),
                ))?;
            }
        }
    }
    root.present()?;
    Ok(())
}
