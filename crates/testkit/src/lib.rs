//! Real-Kafka test harness (being written).
