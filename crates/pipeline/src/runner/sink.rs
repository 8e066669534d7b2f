//! `sluice-wire`'s producer as a `tower::Service<OutputRecord>`: the shape the DLQ layer
//! publishes through, and what the runner produces outputs with.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use sluice_wire::producer::{Producer, ProducerRecord};
use tower::Service;

use crate::{BoxError, Delivered, OutputRecord};

/// A [`Producer`] as a `Service<OutputRecord, Response = Delivered, Error = BoxError>`.
///
/// A call answers once the broker acknowledged the record (the [`Delivery`] resolved),
/// so a [`DeadLetterLayer`](crate::dlq::DeadLetterLayer) over it acknowledges a dead
/// letter only once it is written. Clones share the producer. Always ready: the producer
/// applies its own backpressure (`buffer.memory`, `max.block.ms`) inside `send`.
///
/// [`Delivery`]: sluice_wire::producer::Delivery
#[derive(Debug, Clone)]
pub struct ProducerSink {
    producer: Producer,
}

impl ProducerSink {
    /// Produces through `producer`.
    pub fn new(producer: Producer) -> Self {
        ProducerSink { producer }
    }

    /// The producer.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}

/// Converts the pipeline's output record into the producer's record.
pub(crate) fn producer_record(record: OutputRecord) -> ProducerRecord {
    ProducerRecord {
        topic: record.topic,
        key: record.key,
        value: record.value,
        headers: record.headers,
        partition: record.partition,
        timestamp: record.timestamp,
        sub_key: None,
    }
}

impl Service<OutputRecord> for ProducerSink {
    type Response = Delivered;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Delivered, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, record: OutputRecord) -> Self::Future {
        let producer = self.producer.clone();
        Box::pin(async move {
            let delivery = producer.send(producer_record(record)).await?;
            let written = delivery.await?;
            Ok(Delivered {
                topic: written.topic,
                partition: written.partition,
                offset: written.offset,
            })
        })
    }
}
