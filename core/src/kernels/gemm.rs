//! Bounds-checked strided matrix views over `f32` slices and the one matrix product every
//! kernel of this module uses (the `gemm` crate, the same one burn-flex uses for its matmul).
//!
//! A view is checked against its slice when it is made ([`MatRef::new`], [`MatMut::new`]), so
//! [`gemm`] can hand raw pointers to the `gemm` crate without reading or writing outside the
//! slices.

/// A read-only `rows × cols` matrix inside a slice: element `(i, j)` is
/// `data[offset + i·row_stride + j·col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A writable `rows × cols` matrix inside a slice (same addressing as [`MatRef`]).
pub struct MatMut<'a> {
    data: &'a mut [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// Panics unless every element of a `rows × cols` view at `offset` lies inside a slice of
/// `len` values (a view past its slice is a bug in the caller).
fn check_view(
    len: usize,
    offset: usize,
    [rows, cols]: [usize; 2],
    [row_stride, col_stride]: [usize; 2],
) {
    if rows > 0 && cols > 0 {
        let last = offset + (rows - 1) * row_stride + (cols - 1) * col_stride;
        assert!(last < len, "matrix view past the end of its slice");
    }
}

impl<'a> MatRef<'a> {
    /// A view of `data`; panics if any element lies outside the slice (a bug in the caller).
    pub fn new(
        data: &'a [f32],
        offset: usize,
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [usize; 2],
    ) -> Self {
        check_view(data.len(), offset, [rows, cols], [row_stride, col_stride]);
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A contiguous row-major `rows × cols` matrix at the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, 0, [rows, cols], [cols, 1])
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

impl<'a> MatMut<'a> {
    /// A view of `data`; panics if any element lies outside the slice (a bug in the caller).
    pub fn new(
        data: &'a mut [f32],
        offset: usize,
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [usize; 2],
    ) -> Self {
        check_view(data.len(), offset, [rows, cols], [row_stride, col_stride]);
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A contiguous row-major `rows × cols` matrix at the start of `data`.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, 0, [rows, cols], [cols, 1])
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` with `accumulate`; `threaded` lets the product use
/// rayon's threads (leave it off inside work that is already parallel).
pub fn gemm(dst: MatMut<'_>, lhs: MatRef<'_>, rhs: MatRef<'_>, accumulate: bool, threaded: bool) {
    assert!(
        dst.rows == lhs.rows && dst.cols == rhs.cols && lhs.cols == rhs.rows,
        "gemm: {}×{} = {}×{} · {}×{}",
        dst.rows,
        dst.cols,
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if lhs.cols == 0 {
        if !accumulate {
            fill_zero(dst);
        }
        return;
    }
    let parallelism = parallelism(threaded);
    // SAFETY: every view was checked against its slice when it was made, `dst` is borrowed
    // mutably (it cannot alias `lhs` or `rhs`), and the shapes agree (asserted above).
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            lhs.cols,
            dst.data.as_mut_ptr().add(dst.offset),
            dst.col_stride as isize,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn fill_zero(dst: MatMut<'_>) {
    for row in 0..dst.rows {
        for col in 0..dst.cols {
            dst.data[dst.offset + row * dst.row_stride + col * dst.col_stride] = 0.0;
        }
    }
}

#[cfg(feature = "fs")]
fn parallelism(threaded: bool) -> gemm::Parallelism {
    if threaded {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

#[cfg(not(feature = "fs"))]
fn parallelism(_threaded: bool) -> gemm::Parallelism {
    gemm::Parallelism::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_views_and_accumulation_match_the_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let expected = naive(&a, &b, m, k, n);
        // rhs given as the transpose of an n × k row-major matrix.
        let mut bt = vec![0.0; n * k];
        for p in 0..k {
            for j in 0..n {
                bt[j * k + p] = b[p * n + j];
            }
        }
        let mut out = vec![1.0; m * n];
        let rhs = MatRef::rows(&bt, n, k).t();
        gemm(
            MatMut::rows(&mut out, m, n),
            MatRef::rows(&a, m, k),
            rhs,
            false,
            false,
        );
        for (x, y) in out.iter().zip(&expected) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        gemm(
            MatMut::rows(&mut out, m, n),
            MatRef::rows(&a, m, k),
            rhs,
            true,
            true,
        );
        for (x, y) in out.iter().zip(&expected) {
            assert!((x - 2.0 * y).abs() < 1e-5, "{x} vs 2·{y}");
        }
    }

    #[test]
    #[should_panic(expected = "past the end")]
    fn a_view_past_its_slice_is_refused() {
        let data = [0.0f32; 6];
        let _ = MatRef::new(&data, 1, [2, 3], [3, 1]);
    }
}
