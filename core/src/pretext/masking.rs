//! Block masking (being written).
