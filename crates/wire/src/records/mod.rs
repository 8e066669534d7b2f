//! Record batch v2: encoder, zero-copy decoder, compression (being written).
