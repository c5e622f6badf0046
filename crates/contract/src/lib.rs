//! Validates HTTP exchanges against the official API descriptions copied into `contracts/`.
