//! The one `unsafe` call of the interpreter: a bounds-checked wrapper around
//! `matrixmultiply::sgemm`.
//!
//! `sgemm` takes raw pointers and strides; it reads `A` (m×k), `B` (k×n) and writes `C`
//! (m×n) at `ptr + i*rs + j*cs`. [`sgemm`] takes slices plus a [`Mat`] layout (offset,
//! row stride, column stride, all non-negative) and proves, before the call, that every
//! element it will touch lies inside its slice and that no two elements of `C` alias.
//! A violated check is an interpreter bug, so it panics instead of reading out of bounds.

/// Placement of a row-major-or-strided matrix inside a slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat {
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl Mat {
    /// A dense row-major matrix with `cols` columns starting at `offset`.
    pub fn rows(offset: usize, cols: usize) -> Mat {
        Mat {
            offset,
            rs: cols,
            cs: 1,
        }
    }

    /// The largest index touched by a `rows`×`cols` matrix (both > 0), if it fits usize.
    fn last_index(&self, rows: usize, cols: usize) -> Option<usize> {
        (rows - 1)
            .checked_mul(self.rs)?
            .checked_add((cols - 1).checked_mul(self.cs)?)?
            .checked_add(self.offset)
    }

    fn check(&self, len: usize, rows: usize, cols: usize, what: &str) {
        let ok = self.last_index(rows, cols).is_some_and(|last| last < len)
            && isize::try_from(self.rs).is_ok()
            && isize::try_from(self.cs).is_ok();
        assert!(
            ok,
            "sgemm: {what} layout {self:?} out of bounds for {rows}x{cols} in {len}"
        );
    }
}

/// `C ← alpha·A·B + beta·C` for A m×k, B k×n, C m×n; with `beta == 0`, `C` is only
/// written (its previous contents, even NaN, are ignored).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    a: &[f32],
    la: Mat,
    b: &[f32],
    lb: Mat,
    beta: f32,
    c: &mut [f32],
    lc: Mat,
) {
    if m == 0 || n == 0 {
        return;
    }
    lc.check(c.len(), m, n, "C");
    // Distinct (i, j) must map to distinct offsets: one stride must step over the whole
    // extent of the other (or that dimension is 1).
    let no_alias = (m == 1 || lc.rs >= 1)
        && (n == 1 || lc.cs >= 1)
        && (m == 1
            || n == 1
            || n.checked_mul(lc.cs).is_some_and(|s| lc.rs >= s)
            || m.checked_mul(lc.rs).is_some_and(|s| lc.cs >= s));
    assert!(no_alias, "sgemm: C layout {lc:?} aliases for {m}x{n}");
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let e = &mut c[lc.offset + i * lc.rs + j * lc.cs];
                *e = if beta == 0.0 { 0.0 } else { beta * *e };
            }
        }
        return;
    }
    la.check(a.len(), m, k, "A");
    lb.check(b.len(), k, n, "B");
    // SAFETY: `check` proved offset + (rows-1)*rs + (cols-1)*cs < len for A (m×k),
    // B (k×n) and C (m×n), so every element sgemm reads or writes is inside its slice;
    // strides fit in isize (checked) and are non-negative, so pointer offsets are in
    // range of one allocation. C's elements do not alias each other (`no_alias`), and C
    // is a unique `&mut` borrow, so it cannot overlap A or B. m, k, n > 0 here.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr().add(la.offset),
            la.rs as isize,
            la.cs as isize,
            b.as_ptr().add(lb.offset),
            lb.rs as isize,
            lb.cs as isize,
            beta,
            c.as_mut_ptr().add(lc.offset),
            lc.rs as isize,
            lc.cs as isize,
        );
    }
}
