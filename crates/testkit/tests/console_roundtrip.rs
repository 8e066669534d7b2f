//! The Java console tools driven by the testkit work against the broker under test:
//! what the console producer writes, the console consumer reads back.

use std::time::Duration;

#[test]
fn console_produce_then_consume_round_trips() {
    let bootstrap = sluice_testkit::bootstrap();
    let topic = sluice_testkit::unique_topic("testkit-roundtrip");
    let lines = ["k1\tv1", "k2\thello world", "k1\tv3"];

    sluice_testkit::console_produce(&bootstrap, &topic, lines, true).expect("console producer");
    let got =
        sluice_testkit::console_consume(&bootstrap, &topic, lines.len(), Duration::from_secs(30))
            .expect("console consumer");

    let expected: Vec<String> = lines.iter().map(|l| format!("NO_HEADERS\t{l}")).collect();
    assert_eq!(got, expected);
}

#[test]
fn unique_topic_names_differ() {
    let a = sluice_testkit::unique_topic("t");
    let b = sluice_testkit::unique_topic("t");
    assert_ne!(a, b);
    assert!(a.starts_with("t-"));
}

#[test]
fn console_consume_stops_when_idle_and_prints_null_keys() {
    let bootstrap = sluice_testkit::bootstrap();
    let topic = sluice_testkit::unique_topic("testkit-idle");
    sluice_testkit::console_produce(&bootstrap, &topic, ["only value"], false)
        .expect("console producer");

    // Ask for more than there is: the consumer gives up after the idle timeout.
    let got = sluice_testkit::console_consume(&bootstrap, &topic, 5, Duration::from_secs(5))
        .expect("console consumer");
    assert_eq!(got, ["NO_HEADERS\tnull\tonly value"]);
}
