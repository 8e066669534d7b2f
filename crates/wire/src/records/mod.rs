//! Record batch v2: encoder, zero-copy decoder, compression (being written).

/// Placeholder until the codec lands.
#[derive(Debug, thiserror::Error)]
#[error("records")]
pub struct RecordsError;
