//! What the schema tests share: the registry they run against (SLUICE_REGISTRY_URL,
//! started by `cargo xtask registry up` or `cargo xtask test`), unique subject names, and
//! the Avro schemas of an evolving `Order`.

// Each test binary uses a part of this.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use sluice_schema::Registry;

pub fn url() -> String {
    match std::env::var("SLUICE_REGISTRY_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "SLUICE_REGISTRY_URL is not set: start a registry with `cargo xtask registry up` \
             and export SLUICE_REGISTRY_URL=<the URL it prints>, or run `cargo xtask test`"
        ),
    }
}

pub fn registry() -> Registry {
    Registry::new(url()).expect("registry client")
}

/// A name no other test (or earlier run against the same registry) uses.
pub fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub const V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"id","type":"long"},
    {"name":"amount","type":"double"}]}"#;
/// V1 plus a field with a default: BACKWARD compatible (a V2 reader reads V1 data).
pub const V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"id","type":"long"},
    {"name":"amount","type":"double"},
    {"name":"currency","type":"string","default":"EUR"}]}"#;
/// A field added without a default and `amount` removed: not BACKWARD compatible.
pub const BREAKING: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"id","type":"long"},
    {"name":"customer","type":"string"}]}"#;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct OrderV1 {
    pub id: i64,
    pub amount: f64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct OrderV2 {
    pub id: i64,
    pub amount: f64,
    pub currency: String,
}
