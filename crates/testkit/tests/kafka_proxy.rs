//! The Kafka-aware fault proxy in front of the real broker: a rewritten error reaches
//! the client while the broker has acted, drops close or hang the connection after the
//! broker acted, delays hold responses, pipelined requests keep their order, and
//! traffic no rule changes carries Kafka's own Java console tools unchanged.
//!
//! The client here is `sluice_testkit::KafkaConnection` (kafka-protocol messages, no
//! retries), so each test sees exactly what the proxy forwards.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, FetchResponse, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_testkit::{codes, is_closed, is_timeout, KafkaConnection, KafkaProxy, Rule};

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// A one-partition topic (the cluster's default replication) and its leader's address.
fn topic_and_leader(prefix: &str) -> (String, String) {
    let admin = sluice_testkit::admin();
    let topic = sluice_testkit::unique_topic(prefix);
    admin.create_topic(&topic, 1, -1, &[]).unwrap();
    let leader = admin.leader_of(&topic, 0).unwrap().expect("a leader");
    let md = admin.metadata(Some(&[])).unwrap();
    let b = md
        .brokers
        .iter()
        .find(|b| b.node_id.0 == leader)
        .expect("the leader is a registered broker");
    (topic, format!("{}:{}", b.host, b.port))
}

/// The topic id (for Produce v13 / Fetch v13+, which name topics by id).
fn topic_id(topic: &str) -> kafka_protocol::messages::MetadataResponse {
    sluice_testkit::admin().metadata(Some(&[topic])).unwrap()
}

fn batch(values: &[&str]) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch where `offset - sequence` changes, and
            // the broker takes one batch per partition: keep it constant (the batch's
            // base sequence is the first record's, -1: no idempotence).
            sequence: i as i32 - 1,
            timestamp: now,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// A Produce request for partition 0 of `topic` at `version` (by name, or by id from
/// v13).
fn produce_request(topic: &str, values: &[&str], acks: i16, version: i16) -> ProduceRequest {
    let mut data =
        TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch(values)))]);
    if version >= 13 {
        data = data.with_topic_id(topic_id(topic).topics[0].topic_id);
    } else {
        data = data.with_name(name(topic));
    }
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![data])
}

/// Produce through `conn` and wait for the answer of partition 0.
fn produce(
    conn: &mut KafkaConnection,
    topic: &str,
    values: &[&str],
    version: i16,
) -> std::io::Result<PartitionProduceResponse> {
    let response = conn.request_at(&produce_request(topic, values, -1, version), version)?;
    Ok(response.responses[0].partition_responses[0].clone())
}

fn fetch_request(topic: &str, offset: i64, version: i16) -> FetchRequest {
    let mut t = FetchTopic::default().with_partitions(vec![FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)]);
    if version >= 13 {
        t = t.with_topic_id(topic_id(topic).topics[0].topic_id);
    } else {
        t = t.with_topic(name(topic));
    }
    FetchRequest::default()
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_topics(vec![t])
}

fn values_of(response: &FetchResponse) -> Vec<String> {
    let Some(records) = response.responses[0].partitions[0].records.clone() else {
        return Vec::new();
    };
    let mut records = records;
    RecordBatchDecoder::decode_all(&mut records)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

/// Every value of `topic`-0, read from the leader directly (no proxy).
fn log_of(leader: &str, topic: &str) -> Vec<String> {
    let mut conn = KafkaConnection::connect(leader).unwrap();
    let version = conn.version::<FetchRequest>().unwrap();
    let response = conn
        .request_at(&fetch_request(topic, 0, version), version)
        .unwrap();
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
    values_of(&response)
}

/// The high watermark of `topic`-0, asked of the leader directly.
fn end_offset(leader: &str, topic: &str) -> i64 {
    let mut conn = KafkaConnection::connect(leader).unwrap();
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response = conn.request(&request).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

#[test]
fn a_rewritten_produce_error_reaches_the_client_while_the_record_is_in_the_log() {
    let (topic, leader) = topic_and_leader("kproxy-rewrite");
    let proxy = KafkaProxy::start(&leader).unwrap();
    let mut conn = KafkaConnection::connect(&proxy.addr().to_string()).unwrap();
    let max = conn.version::<ProduceRequest>().unwrap();
    // By topic name (v12) and, where the broker has it, by topic id (v13).
    let versions: Vec<i16> = [12.min(max), max].into_iter().collect();
    let mut expected_log = Vec::new();
    for (i, &version) in versions.iter().enumerate() {
        let rule = proxy.add_rule(
            Rule::new(ApiKey::Produce)
                .partition(&topic, 0)
                .nth(1)
                .set_error(codes::NOT_LEADER_OR_FOLLOWER),
        );
        let first = format!("v{version}-first");
        let answer = produce(&mut conn, &topic, &[&first], version).unwrap();
        assert_eq!(
            answer.error_code,
            codes::NOT_LEADER_OR_FOLLOWER,
            "v{version}: the client sees the rewritten error"
        );
        assert_eq!(rule.hits(), 1);
        // The broker acted: the record is in the log, at the offset the broker gave it.
        expected_log.push(first);
        assert_eq!(log_of(&leader, &topic), expected_log, "v{version}");
        assert_eq!(
            answer.base_offset,
            2 * i as i64,
            "only the error code changed"
        );
        // Exactly one byte differs from what the broker sent: the low byte of the code.
        let rewrite = rule.last_rewrite().unwrap();
        assert_eq!(
            rewrite.differing_offsets().len(),
            1,
            "v{version}: {rewrite:?}"
        );
        assert_eq!(rewrite.original.len(), rewrite.forwarded.len());

        // nth(1): the second produce passes untouched.
        let second = format!("v{version}-second");
        let answer = produce(&mut conn, &topic, &[&second], version).unwrap();
        assert_eq!(answer.error_code, 0);
        assert_eq!((rule.matched(), rule.hits()), (2, 1));
        expected_log.push(second);
        rule.remove();
    }
    assert_eq!(log_of(&leader, &topic), expected_log);
    assert_eq!(proxy.undecodable(), 0, "{:?}", proxy.last_error());
    assert_eq!(proxy.rewritten(), versions.len() as u64);
}

#[test]
fn drop_and_close_closes_the_connection_after_the_broker_acted() {
    let (topic, leader) = topic_and_leader("kproxy-close");
    let proxy = KafkaProxy::start(&leader).unwrap();
    let rule = proxy.add_rule(Rule::new(ApiKey::Produce).nth(1).drop_and_close());
    let mut conn = KafkaConnection::connect(&proxy.addr().to_string()).unwrap();
    let version = conn.version::<ProduceRequest>().unwrap();
    let err = produce(&mut conn, &topic, &["ambiguous"], version).unwrap_err();
    assert!(
        is_closed(&err),
        "the client sees the connection closed: {err:?}"
    );
    assert_eq!(rule.hits(), 1);
    assert_eq!(log_of(&leader, &topic), ["ambiguous"], "the broker acted");
    // A new connection goes through (the rule fired once).
    let mut conn = KafkaConnection::connect(&proxy.addr().to_string()).unwrap();
    let answer = produce(&mut conn, &topic, &["retried"], version).unwrap();
    assert_eq!((answer.error_code, answer.base_offset), (0, 1));
    assert_eq!(proxy.connections(), 2);
}

#[test]
fn drop_and_hang_leaves_the_client_to_time_out_on_a_dead_connection() {
    let (topic, leader) = topic_and_leader("kproxy-hang");
    let proxy = KafkaProxy::start(&leader).unwrap();
    let rule = proxy.add_rule(Rule::new(ApiKey::Produce).nth(1).drop_and_hang());
    let mut conn = KafkaConnection::connect(&proxy.addr().to_string()).unwrap();
    conn.set_timeout(Duration::from_secs(2)).unwrap();
    let version = conn.version::<ProduceRequest>().unwrap();
    let started = Instant::now();
    let err = produce(&mut conn, &topic, &["acted"], version).unwrap_err();
    assert!(is_timeout(&err), "the client times out: {err:?}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(rule.hits(), 1);
    assert_eq!(end_offset(&leader, &topic), 1, "the broker acted");
    // The connection is open but dead: a later request is not forwarded at all.
    let err = produce(&mut conn, &topic, &["never"], version).unwrap_err();
    assert!(is_timeout(&err), "still no answer: {err:?}");
    assert_eq!(
        end_offset(&leader, &topic),
        1,
        "nothing forwarded after the hang"
    );
    assert_eq!(proxy.connections(), 1, "the client never had to reconnect");
    assert_eq!(
        rule.matched(),
        1,
        "the hung connection's later traffic is not matched"
    );
}

#[test]
fn a_delay_holds_the_response_at_least_that_long() {
    let (_topic, leader) = topic_and_leader("kproxy-delay");
    let proxy = KafkaProxy::start(&leader).unwrap();
    let delay = Duration::from_millis(1500);
    let rule = proxy.add_rule(Rule::new(ApiKey::Metadata).times(1).delay(delay));
    let mut conn = KafkaConnection::connect(&proxy.addr().to_string()).unwrap();
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    let started = Instant::now();
    conn.request(&request).unwrap();
    let first = started.elapsed();
    assert!(first >= delay, "delayed by {first:?} < {delay:?}");
    let started = Instant::now();
    conn.request(&request).unwrap();
    let second = started.elapsed();
    assert!(
        second < delay,
        "times(1): the second is not delayed ({second:?})"
    );
    assert_eq!(rule.hits(), 1);
}

#[test]
fn pipelined_requests_keep_their_order_and_api_versions_its_v0_header() {
    let (topic, leader) = topic_and_leader("kproxy-pipeline");
    let proxy = KafkaProxy::start(&leader).unwrap();
    let versions_rule = proxy.add_rule(
        Rule::new(ApiKey::ApiVersions)
            .client_id("pipelined")
            .set_error(35),
    );
    let produce_rule = proxy.add_rule(
        Rule::new(ApiKey::Produce)
            .partition(&topic, 0)
            .set_error(codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    let mut conn = KafkaConnection::connect(&proxy.addr().to_string()).unwrap();
    conn.set_client_id("pipelined");
    let pv = conn.version::<ProduceRequest>().unwrap();
    let mv = conn.version::<MetadataRequest>().unwrap();
    let metadata = MetadataRequest::default().with_topics(Some(vec![]));
    // Five requests before reading anything; the acks=0 Produce gets no response.
    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-testkit"))
        .with_client_software_version(StrBytes::from_static_str("0"));
    let c1 = conn.send_at(&api_versions, 3).unwrap();
    let c2 = conn.send_at(&metadata, mv).unwrap();
    let c3 = conn
        .send_at(&produce_request(&topic, &["fire-and-forget"], 0, pv), pv)
        .unwrap();
    let c4 = conn
        .send_at(&produce_request(&topic, &["acked"], -1, pv), pv)
        .unwrap();
    let c5 = conn.send_at(&metadata, mv).unwrap();
    assert!(c1 < c2 && c2 < c3 && c3 < c4 && c4 < c5);

    let versions = conn.receive::<ApiVersionsRequest>(c1, 3).unwrap();
    assert_eq!(
        versions.error_code, 35,
        "rewritten through the v0 response header"
    );
    assert!(!versions.api_keys.is_empty(), "the rest is the broker's");
    conn.receive::<MetadataRequest>(c2, mv).unwrap();
    let produced = conn.receive::<ProduceRequest>(c4, pv).unwrap();
    assert_eq!(
        produced.responses[0].partition_responses[0].error_code,
        codes::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    conn.receive::<MetadataRequest>(c5, mv).unwrap();
    assert_eq!(versions_rule.hits(), 1);
    assert_eq!(
        produce_rule.hits(),
        1,
        "only the acked produce has a response"
    );
    assert_eq!(log_of(&leader, &topic), ["fire-and-forget", "acked"]);
    assert_eq!(proxy.undecodable(), 0, "{:?}", proxy.last_error());
}

#[test]
fn fetch_errors_go_to_the_partition_or_the_top_level() {
    let (topic, leader) = topic_and_leader("kproxy-fetch");
    let mut direct = KafkaConnection::connect(&leader).unwrap();
    let pv = direct.version::<ProduceRequest>().unwrap();
    let answer = produce(&mut direct, &topic, &["a", "b"], pv).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");

    let proxy = KafkaProxy::start(&leader).unwrap();
    let mut conn = KafkaConnection::connect(&proxy.addr().to_string()).unwrap();
    let fv = conn.version::<FetchRequest>().unwrap();
    let fetch = fetch_request(&topic, 0, fv);
    assert_eq!(values_of(&conn.request_at(&fetch, fv).unwrap()), ["a", "b"]);

    let range = proxy.add_rule(
        Rule::new(ApiKey::Fetch)
            .partition(&topic, 0)
            .nth(1)
            .set_error(codes::OFFSET_OUT_OF_RANGE),
    );
    let answer = conn.request_at(&fetch, fv).unwrap();
    let p = &answer.responses[0].partitions[0];
    assert_eq!(p.error_code, codes::OFFSET_OUT_OF_RANGE);
    assert!(values_of(&answer).is_empty(), "no records with an error");
    assert_eq!(range.hits(), 1);

    let session = proxy.add_rule(
        Rule::new(ApiKey::Fetch)
            .nth(1)
            .set_error(codes::FETCH_SESSION_ID_NOT_FOUND),
    );
    let answer = conn.request_at(&fetch, fv).unwrap();
    assert_eq!(answer.error_code, codes::FETCH_SESSION_ID_NOT_FOUND);
    assert!(answer.responses.is_empty());
    assert_eq!(answer.session_id, 0);
    assert_eq!(session.hits(), 1);

    assert_eq!(values_of(&conn.request_at(&fetch, fv).unwrap()), ["a", "b"]);
}

#[test]
fn cluster_rules_fire_on_every_broker_and_coordinator_errors_are_retried() {
    let faults = sluice_testkit::kafka_fault_cluster();
    let admin = sluice_testkit::Admin::new(faults.bootstrap());
    let group = sluice_testkit::unique_topic("kproxy-group");
    let coordinator = sluice_testkit::admin().group_coordinator(&group).unwrap();
    let rule = faults.add_rule(
        Rule::new(ApiKey::FindCoordinator)
            .times(2)
            .set_error(codes::NOT_COORDINATOR),
    );
    // Admin asks again on NOT_COORDINATOR: twice rewritten, then the real answer.
    assert_eq!(admin.group_coordinator(&group).unwrap(), coordinator);
    assert_eq!((rule.hits(), rule.matched()), (2, 3));
    assert_eq!(faults.undecodable(), 0);
}

#[test]
fn untouched_traffic_carries_the_java_console_tools() {
    let faults = sluice_testkit::kafka_fault_cluster();
    let topic = sluice_testkit::unique_topic("kproxy-java");
    sluice_testkit::admin()
        .create_topic(&topic, 2, -1, &[])
        .unwrap();
    // Rules that only count, and one that decodes every Produce and Fetch response but
    // matches none (another topic): nothing may change on the wire.
    let produces = faults.add_rule(Rule::new(ApiKey::Produce));
    let fetches = faults.add_rule(Rule::new(ApiKey::Fetch).topic(&topic));
    let elsewhere = faults.add_rule(
        Rule::new(ApiKey::Produce)
            .topic("no-such-topic")
            .set_error(codes::NOT_LEADER_OR_FOLLOWER),
    );
    let lines = ["k1\tone", "k2\ttwo", "k3\tthree", "k4\tfour"];
    sluice_testkit::console_produce(faults.bootstrap(), &topic, lines, true).unwrap();
    let mut got = sluice_testkit::console_consume(
        faults.bootstrap(),
        &topic,
        lines.len(),
        Duration::from_secs(20),
    )
    .unwrap();
    got.sort();
    let expected: Vec<String> = lines.iter().map(|l| format!("NO_HEADERS\t{l}")).collect();
    assert_eq!(got, expected);
    assert!(
        produces.hits() >= 1,
        "the producer went through the proxies"
    );
    assert!(
        fetches.hits() >= 1,
        "the consumer fetched {topic} through the proxies"
    );
    assert_eq!(elsewhere.hits(), 0);
    assert_eq!(
        faults
            .proxies
            .iter()
            .map(KafkaProxy::rewritten)
            .sum::<u64>(),
        0
    );
    assert_eq!(faults.undecodable(), 0);
}
