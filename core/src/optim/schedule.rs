//! Learning rate as a pure function of the optimiser step (so a resumed run continues exactly):
//! linear warm-up from 0 to the base rate, then a half-cosine down to `min_lr` at the last step.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Cosine schedule with an optional linear warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate (reached at the end of the warm-up).
    pub base_lr: f64,
    /// Final learning rate of the cosine.
    pub min_lr: f64,
    /// Optimiser steps of linear warm-up (0 = none).
    pub warmup_steps: u64,
    /// Total optimiser steps of the run.
    pub total_steps: u64,
}

impl LrSchedule {
    /// Checks that the rates are finite, non-negative and ordered and that there is a step to take.
    pub fn validate(&self) -> Result<()> {
        let finite = self.base_lr.is_finite() && self.min_lr.is_finite();
        if !finite || self.base_lr <= 0.0 || self.min_lr < 0.0 || self.min_lr > self.base_lr {
            return Err(Error::new(
                "learning-rate schedule",
                format!(
                    "need 0 <= min_lr ({}) <= lr ({}) with lr > 0",
                    self.min_lr, self.base_lr
                ),
            ));
        }
        if self.total_steps == 0 {
            return Err(Error::new(
                "learning-rate schedule",
                "total steps must be > 0",
            ));
        }
        Ok(())
    }

    /// The rate used by optimiser step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.min_lr + (self.base_lr - self.min_lr) * cosine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_rises_linearly_then_cosine_falls_to_the_minimum() {
        let schedule = LrSchedule {
            base_lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 10,
            total_steps: 110,
        };
        assert!((schedule.lr(0) - 1e-4).abs() < 1e-12);
        assert!((schedule.lr(9) - 1e-3).abs() < 1e-12);
        assert!((schedule.lr(10) - 1e-3).abs() < 1e-12);
        let middle = 1e-5 + (1e-3 - 1e-5) * 0.5;
        assert!((schedule.lr(60) - middle).abs() < 1e-12);
        assert!((schedule.lr(110) - 1e-5).abs() < 1e-12);
        assert!(schedule.lr(500) >= 1e-5);
        let rates: Vec<f64> = (10..110).map(|s| schedule.lr(s)).collect();
        assert!(rates.windows(2).all(|pair| pair[1] <= pair[0]));
    }

    #[test]
    fn invalid_schedules_are_refused() {
        let mut schedule = LrSchedule {
            base_lr: 1e-3,
            min_lr: 0.0,
            warmup_steps: 0,
            total_steps: 10,
        };
        assert!(schedule.validate().is_ok());
        schedule.min_lr = 1.0;
        assert!(schedule.validate().is_err());
        schedule.min_lr = 0.0;
        schedule.total_steps = 0;
        assert!(schedule.validate().is_err());
    }
}
