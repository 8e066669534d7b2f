//! The network layer: framing (no I/O), API version negotiation, and one broker
//! connection that pipelines requests.

pub mod connection;
pub(crate) mod frame;
mod rcvlowat;
pub mod versions;

pub use connection::{BrokerConnection, ConnectionConfig};
pub use versions::ApiVersions;
