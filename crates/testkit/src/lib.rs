//! Real-Kafka test harness (temporary stub; the harness branch replaces it).
pub fn bootstrap() -> String {
    std::env::var("SLUICE_BOOTSTRAP").expect("set SLUICE_BOOTSTRAP")
}
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}
