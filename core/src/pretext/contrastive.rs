//! Modality-aware contrastive loss (being written).
