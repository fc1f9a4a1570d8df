//! Where the native kernel's direct panel packing (`pack::pack_direct`) reads each
//! chunk of im2col columns, planned once per layer from its geometry.
//!
//! With column stride 1, the im2col row of a tap whose row base in the (padded) image
//! is `base` holds, at output pixel `(oy, ox)`, the byte at `base + oy·rs + ox` (`rs =
//! sh·Ws`). A chunk of `W` consecutive output pixels (16 for path A, 8 for path B) is
//! therefore one run of bytes when it stays inside an output row ([`Chunk::Run`]), two
//! runs when it crosses into the next row ([`Chunk::Split`]: two 16-byte loads and a
//! byte blend), and is copied piecewise otherwise ([`Chunk::Gather`]: rows narrower
//! than the chunk). Only the columns `< N` of a chunk matter (the others feed
//! accumulators that are never stored), so a load may cover bytes past them.
//!
//! Offsets are relative to the tap's base; [`Chunks::reach`] is the largest end
//! (`offset + W` of a run, `offset + 16` of a split's loads) of any load, so a tap
//! whose `base + reach` fits the image may use the loads unchecked, and
//! `pack::pack_direct` checks exactly that per tap pair (others use the piecewise
//! copy).

/// How one chunk of columns is read (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// One `W`-byte load at this offset.
    Run(usize),
    /// The first `len` columns from a load at `a`; the rest from a load at `b`, which
    /// starts `len` bytes before the next output row's first column.
    Split { a: usize, b: usize, len: usize },
    /// Copied segment by segment.
    Gather,
}

/// The chunks of one layer, and the row base of each tap.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chunks {
    pub list: Vec<Chunk>,
    /// Largest end (offset plus bytes read) of any load.
    pub reach: usize,
    /// Per tap `t < 2·pairs` of group 0, its row base in the image (`usize::MAX` for
    /// the missing odd tap of the last pair); group `g` adds `g·Cg·Hs·Ws`.
    pub taps: Vec<usize>,
    /// Per group, [`Chunks::fast_pairs`] for an image of the planned length
    /// (`src_len`), counted once when the layer is planned instead of every tile.
    pub fast: Vec<usize>,
    /// The image length `fast` was counted for (`C·Hs·Ws`).
    pub src_len: usize,
}

impl Chunks {
    /// Chunks of `w` columns over `n = oh·ow` output pixels, rows `rs` bytes apart.
    pub(crate) fn new(n: usize, ow: usize, rs: usize, w: usize) -> Chunks {
        let mut c = Chunks::default();
        for n0 in (0..n).step_by(w) {
            let need = (n - n0).min(w);
            let (oy, ox) = (n0 / ow, n0 % ow);
            let first = (ow - ox).min(need);
            let a = oy * rs + ox;
            let rest = need - first;
            let next = (oy + 1) * rs;
            let chunk = if rest == 0 {
                Chunk::Run(a)
            } else if rest <= ow && next >= first {
                Chunk::Split {
                    a,
                    b: next - first,
                    len: first,
                }
            } else {
                Chunk::Gather
            };
            c.reach = c.reach.max(match chunk {
                Chunk::Run(a) => a + w,
                Chunk::Split { a, b, .. } => a.max(b) + 16,
                Chunk::Gather => 0,
            });
            c.list.push(chunk);
        }
        c
    }

    /// How many leading tap pairs (of the `full` whose two taps exist) have every load
    /// inside an image of `len` bytes when the group's taps start at `goff`: the larger
    /// tap base plus `goff` and [`Chunks::reach`] is at most `len`. Tap bases grow with
    /// the tap index, so the others are usually one last pair.
    pub(crate) fn fast_pairs(&self, full: usize, goff: usize, len: usize) -> usize {
        self.taps[..2 * full]
            .chunks_exact(2)
            .take_while(|t| t[0].max(t[1]) + goff + self.reach <= len)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column `< N` of every chunk is read from the byte the im2col row holds.
    #[test]
    fn chunks_read_the_im2col_bytes() {
        for (oh, ow, rs, w) in [
            (28, 28, 30, 16),
            (14, 14, 16, 16),
            (8, 8, 10, 16),
            (7, 3, 5, 8),
        ] {
            let n = oh * ow;
            let c = Chunks::new(n, ow, rs, w);
            for (i, ch) in c.list.iter().enumerate() {
                for j in 0..w.min(n - i * w) {
                    let col = i * w + j;
                    let want = (col / ow) * rs + col % ow;
                    let got = match *ch {
                        Chunk::Run(a) => Some(a + j),
                        Chunk::Split { a, b, len } => Some(if j < len { a + j } else { b + j }),
                        Chunk::Gather => None,
                    };
                    if let Some(g) = got {
                        assert_eq!(g, want, "{oh}x{ow} chunk {i} col {j}");
                        assert!(g < c.reach);
                    }
                }
            }
        }
    }
}
