//! The demo's output format: the enriched order in Avro, with its schema registered in the
//! schema registry (Confluent framing, subject `<output>-value`), or as JSON text.
//!
//! `ORDERS_OUTPUT_FORMAT=avro|json` chooses. Without it the demo writes Avro when
//! `SLUICE_REGISTRY_URL` is set (`cargo xtask demo` starts a registry and sets it) and
//! JSON otherwise; a worker (`ORDERS_WORKER=1`) writes JSON unless told `avro`, because
//! the tests that spawn it read its output as JSON while `cargo xtask test` sets
//! `SLUICE_REGISTRY_URL` for every test.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use sluice_pipeline::schema::{AvroEncoder, Encoder};
use sluice_schema::{AvroDeserializer, AvroSerializer, Registry, Schema, SubjectNameStrategy};

use super::Error;

/// The enriched order's Avro schema (the writer schema of the output topic).
pub const ENRICHED_SCHEMA: &str = r#"{
  "type": "record", "name": "EnrichedOrder", "namespace": "sluice.demo",
  "fields": [
    {"name": "order_id", "type": "long"},
    {"name": "customer", "type": "string"},
    {"name": "amount_cents", "type": "long"},
    {"name": "country", "type": "string"},
    {"name": "tier", "type": "string"}
  ]
}"#;

/// One enriched order, as the service answers with it and as the check decodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enriched {
    pub order_id: i64,
    pub customer: String,
    pub amount_cents: i64,
    pub country: String,
    pub tier: String,
}

impl Enriched {
    /// The JSON text the demo wrote before it wrote Avro (and still writes in JSON mode).
    fn json(&self) -> String {
        format!(
            r#"{{"order_id":{},"customer":"{}","amount_cents":{},"country":"{}","tier":"{}"}}"#,
            self.order_id, self.customer, self.amount_cents, self.country, self.tier
        )
    }
}

/// Where the output goes and in which format.
#[derive(Debug, Clone)]
pub enum Format {
    /// JSON text, no registry.
    Json,
    /// Avro through the registry at `url`; `registry` is the pipeline's client (its
    /// request counter is the figure the summary prints).
    Avro { url: String, registry: Registry },
}

impl Format {
    /// The format `ORDERS_OUTPUT_FORMAT` and `SLUICE_REGISTRY_URL` ask for (see the
    /// module docs); `worker` says whether the example runs as the tests' worker.
    pub fn from_env(worker: bool) -> Result<Format, Error> {
        let url = std::env::var("SLUICE_REGISTRY_URL")
            .ok()
            .filter(|u| !u.trim().is_empty());
        let chosen = std::env::var("ORDERS_OUTPUT_FORMAT").ok();
        let avro = match chosen.as_deref().map(str::trim) {
            Some("avro") => true,
            Some("json") => false,
            Some(other) => {
                return Err(format!("ORDERS_OUTPUT_FORMAT={other:?}: expected avro or json").into())
            }
            None => !worker && url.is_some(),
        };
        if !avro {
            return Ok(Format::Json);
        }
        let url = url.ok_or(
            "Avro output needs SLUICE_REGISTRY_URL (run `cargo xtask demo`, which starts a \
             registry, or set ORDERS_OUTPUT_FORMAT=json)",
        )?;
        let registry = Registry::new(url.clone())?;
        Ok(Format::Avro { url, registry })
    }

    /// The encoder for the pipeline's `EncodeLayer`.
    pub fn encoder(&self) -> Result<OrderEncoder, Error> {
        Ok(match self {
            Format::Json => OrderEncoder::Json,
            Format::Avro { registry, .. } => OrderEncoder::Avro(AvroEncoder::new(
                AvroSerializer::new(registry.clone(), ENRICHED_SCHEMA)?,
            )),
        })
    }

    /// A one-line description for the demo's first lines.
    pub fn describe(&self) -> String {
        match self {
            Format::Json => "JSON (no schema registry: set SLUICE_REGISTRY_URL, or run \
                             `cargo xtask demo`, for Avro)"
                .to_string(),
            Format::Avro { url, .. } => format!("Avro, schema registered in {url}"),
        }
    }
}

/// JSON text or registry-framed Avro, behind the one `Encoder` the stack holds.
#[derive(Debug, Clone)]
pub enum OrderEncoder {
    /// JSON text.
    Json,
    /// Avro with the registered [`ENRICHED_SCHEMA`].
    Avro(AvroEncoder<Enriched>),
}

impl Encoder for OrderEncoder {
    type Value = Enriched;

    fn encode(
        &self,
        topic: &str,
        value: Enriched,
    ) -> BoxFuture<'static, Result<Bytes, sluice_schema::Error>> {
        match self {
            OrderEncoder::Json => futures::future::ready(Ok(Bytes::from(value.json()))).boxed(),
            OrderEncoder::Avro(avro) => avro.encode(topic, value),
        }
    }
}

/// The output topic's records decoded, as the final check sees them.
#[derive(Debug)]
pub struct DecodedOutput {
    /// Each record's order, in topic order (partition by partition).
    pub orders: Vec<Enriched>,
    /// Records that did not decode, with the first error.
    pub undecodable: (usize, Option<String>),
    /// Avro: the registry figures.
    pub avro: Option<AvroFigures>,
}

/// The registry figures of an Avro run.
#[derive(Debug)]
pub struct AvroFigures {
    /// The output's subject (topic strategy: `<output>-value`).
    pub subject: String,
    /// The id the pipeline registered the schema under.
    pub id: u32,
    /// Its version under the subject (the subject's latest).
    pub version: i32,
    /// The schema ids the output records carry in their header.
    pub ids_in_records: BTreeSet<u32>,
    /// HTTP requests of the pipeline's registry client for the whole run.
    pub pipeline_requests: u64,
    /// HTTP requests of the check's client to decode every output record.
    pub check_requests: u64,
}

/// Decode the values of `output`'s records: JSON text with the demo's field reader, or
/// Avro through a fresh registry client (as another consumer would: it knows only the
/// registry's URL, and looks the schema up by the id each record carries).
pub async fn decode(
    format: &Format,
    output: &str,
    values: &[Option<Bytes>],
    parse_json: impl Fn(&str) -> Option<Enriched>,
) -> Result<DecodedOutput, Error> {
    let mut orders = Vec::with_capacity(values.len());
    let mut bad = 0;
    let mut first_error = None;
    let mut fail = |e: String| {
        bad += 1;
        first_error.get_or_insert(e);
    };
    match format {
        Format::Json => {
            for v in values {
                match std::str::from_utf8(v.as_deref().unwrap_or_default())
                    .ok()
                    .and_then(&parse_json)
                {
                    Some(order) => orders.push(order),
                    None => fail(format!("not an enriched order: {v:?}")),
                }
            }
            Ok(DecodedOutput {
                orders,
                undecodable: (bad, first_error),
                avro: None,
            })
        }
        Format::Avro { url, registry } => {
            let subject = SubjectNameStrategy::Topic.subject(output, false, None)?;
            // Cached by the pipeline's serializer when it registered: no request.
            let id = registry
                .id_of(&subject, &Schema::avro(ENRICHED_SCHEMA))
                .await?;
            let pipeline_requests = registry.http_requests();
            let checker = Registry::new(url.clone())?;
            let deserializer = AvroDeserializer::new(checker.clone());
            let mut ids_in_records = BTreeSet::new();
            for v in values {
                let bytes = v.as_deref().unwrap_or_default();
                if let Ok((id, _)) = sluice_schema::framing::read_header(bytes) {
                    ids_in_records.insert(id);
                }
                match deserializer.deserialize_into::<Enriched>(bytes).await {
                    Ok(order) => orders.push(order),
                    Err(e) => fail(e.to_string()),
                }
            }
            let check_requests = checker.http_requests();
            // Not cached (it changes): one more request, not counted above.
            let latest = checker
                .version(&subject, sluice_schema::Version::Latest)
                .await?;
            if latest.id != id {
                return Err(format!(
                    "{subject}'s latest version has id {}, the pipeline wrote {id}",
                    latest.id
                )
                .into());
            }
            Ok(DecodedOutput {
                orders,
                undecodable: (bad, first_error),
                avro: Some(AvroFigures {
                    subject,
                    id,
                    version: latest.version,
                    ids_in_records,
                    pipeline_requests,
                    check_requests,
                }),
            })
        }
    }
}
