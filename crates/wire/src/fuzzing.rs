//! Entry points for the cargo-fuzz targets in `fuzz/`. Not a stable API.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
};

use crate::net::frame;

/// Splits `data` into response frames as a connection's reader does, and decodes each
/// frame as the response to the request type and version chosen by `selector`. Must
/// never panic.
pub fn response_frames(selector: u8, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(payload)) = frame::split_frame(&mut buf) {
        let _ = frame::correlation_id(&payload);
        decode_one(selector, payload);
    }
}

fn decode_one(selector: u8, payload: Bytes) {
    match selector % 9 {
        0 => drop(frame::decode_response::<ApiVersionsRequest>(payload, 0)),
        1 => drop(frame::decode_response::<ApiVersionsRequest>(payload, 3)),
        2 => drop(frame::decode_response::<MetadataRequest>(payload, 12)),
        3 => drop(frame::decode_response::<ProduceRequest>(payload, 9)),
        4 => drop(frame::decode_response::<FetchRequest>(payload, 12)),
        5 => drop(frame::decode_response::<ListOffsetsRequest>(payload, 7)),
        6 => drop(frame::decode_response::<CreateTopicsRequest>(payload, 7)),
        7 => drop(frame::decode_response::<DeleteTopicsRequest>(payload, 5)),
        _ => drop(frame::decode_response::<DescribeClusterRequest>(payload, 1)),
    }
}
