//! The network layer: framing (no I/O), API version negotiation, security (TLS and
//! SASL), and one broker connection that pipelines requests.

pub mod connection;
pub(crate) mod frame;
mod rcvlowat;
#[cfg(feature = "tls")]
mod readahead;
pub mod sasl;
pub mod security;
pub mod tls;
pub mod versions;

pub use connection::{BrokerConnection, ConnectionConfig};
pub use sasl::{
    OAuthToken, SaslConfig, SaslMechanism, Secret, StaticToken, TokenFuture, TokenProvider,
    UnsecuredToken,
};
pub use security::{SecurityConfig, SecurityProtocol};
pub use tls::{Pem, TlsConfig};
pub use versions::ApiVersions;
