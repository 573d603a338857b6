//! Work splitting for the kernels: rayon's pool on native builds (feature `fs`), a plain loop in
//! the browser build (one thread).

/// Threads the kernels may use.
pub fn threads() -> usize {
    #[cfg(feature = "fs")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "fs"))]
    {
        1
    }
}

/// Runs `task` on every item, in parallel where threads exist.
pub fn for_each<T: Send>(items: Vec<T>, task: impl Fn(T) + Sync + Send) {
    #[cfg(feature = "fs")]
    {
        use rayon::prelude::*;
        items.into_par_iter().for_each(task);
    }
    #[cfg(not(feature = "fs"))]
    items.into_iter().for_each(task);
}

/// `Σ_items task(item)`, where each task adds its part into a zeroed buffer of `len` values;
/// one buffer per thread, summed at the end.
pub fn sum<T: Send>(
    items: Vec<T>,
    len: usize,
    task: impl Fn(T, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    #[cfg(feature = "fs")]
    {
        use rayon::prelude::*;
        items
            .into_par_iter()
            .fold(
                || vec![0.0f32; len],
                |mut partial, item| {
                    task(item, &mut partial);
                    partial
                },
            )
            .reduce(
                || vec![0.0f32; len],
                |mut left, right| {
                    left.iter_mut().zip(&right).for_each(|(l, r)| *l += r);
                    left
                },
            )
    }
    #[cfg(not(feature = "fs"))]
    {
        let mut total = vec![0.0f32; len];
        items.into_iter().for_each(|item| task(item, &mut total));
        total
    }
}

/// An output buffer that parallel tasks fill in disjoint parts.
pub struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: tasks only write through `part`, whose callers guarantee disjoint ranges; the
// buffer outlives every task (`for_each` returns after all of them).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Wraps `values` for the duration of a parallel loop.
    pub fn new(values: &mut [f32]) -> Self {
        Self {
            ptr: values.as_mut_ptr(),
            len: values.len(),
        }
    }

    /// The values `[start, start + len)`.
    ///
    /// # Safety
    /// No two live parts may overlap, and the wrapped buffer must outlive the part.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len, "output part past the end");
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }
}
