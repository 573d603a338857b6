//! Hand corrections of a label map, and what the model learns from them.
//!
//! - [`editor`]: the painting tools of the page (round brush sized in mm, eraser, 2-D flood fill
//!   bounded by the seed's label and an intensity window) on one slice plane at a time, every
//!   stroke undoable, every painted voxel marked as a correction with the plane it was painted on;
//! - [`weights`]: which voxels a "Teach" run trains on and how much each counts
//!   ([`weights::TeachingFocus`]), as weight classes that ride through preprocessing with the
//!   label map ([`crate::finetune::few_shot`]).
//!
//! The image is never touched: the tools read it (the fill's intensity window) and write labels.

pub mod editor;
pub mod weights;

pub use editor::{Corrections, SlicePlane, UNDO_STROKES};
pub use weights::{TeachingFocus, WeightClass};
