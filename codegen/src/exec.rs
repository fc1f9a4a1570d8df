//! The only `unsafe` of the crate: owning JIT'd machine code and calling a kernel.
//!
//! A kernel (see `emit/mod.rs`) reads `n·a_item` bytes of `a`, `n·b_item` of `b`,
//! `k_len` of `k`, and reads and writes `scratch_len` of `scratch` and `n·out_item` of
//! `out`, where every size is fixed when the kernel is planned. [`call`] checks each
//! slice against those sizes before the call, so the kernel never leaves its buffers.
//! Kernels use unaligned-tolerant loads (no `aligned` flag), so any byte alignment is
//! fine. `out` is a `&mut` slice, distinct from every shared input slice by the borrow
//! rules, so the kernel's writes alias nothing it reads.

use cranelift_jit::JITModule;

use crate::error::{CodegenError, Result};

type KernelFn = unsafe extern "C" fn(i64, *const u8, *const u8, *mut u8, *const u8, *mut u8);

/// Owns the JIT module; frees its code when dropped.
pub(crate) struct Code(Option<JITModule>);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code")
    }
}

// SAFETY (Send): `Code` only owns the JIT module so that `Drop` can free its memory.
// The module was built with `default_libcall_names()` and no custom symbol lookups, so
// it holds no thread-affine state (only heap data, mmap'd code pages and plain boxed
// functions capturing nothing); moving it to and freeing it on another thread is what
// any owner of heap memory does.
#[allow(unsafe_code)]
unsafe impl Send for Code {}
// SAFETY (Sync): through `&Code` nothing of the module is reached: `call` takes `&Code`
// only as proof that the code is alive, and calls entry addresses whose pages were
// finalized (made read+execute) by `Jit::finish` before `Code::new`, and are never
// written again. Kernels are pure functions of their pointer arguments: they keep no
// global or static state and write only the `out`/`scratch` slices their caller holds
// exclusively, so concurrent calls from several threads cannot race.
#[allow(unsafe_code)]
unsafe impl Sync for Code {}

impl Code {
    pub(crate) fn new(m: JITModule) -> Code {
        Code(Some(m))
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: entry addresses live only in the `CompiledGraph` that owns this
            // `Code`; it is being dropped, so no kernel can be called any more.
            unsafe { m.free_memory() };
        }
    }
}

/// Sizes in bytes a kernel touches per call (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extent {
    pub a: usize,
    pub b: usize,
    pub out: usize,
    pub k: usize,
    pub scratch: usize,
}

/// Calls the kernel at `entry` (an address from the live `code`).
pub(crate) fn call(
    _code: &Code,
    (entry, n): (usize, usize),
    need: Extent,
    (a, b): (&[u8], Option<&[u8]>),
    out: &mut [u8],
    (k, scratch): (&[u8], &mut [u8]),
) -> Result<()> {
    let fits = a.len() >= need.a
        && b.map_or(need.b == 0, |b| b.len() >= need.b)
        && out.len() >= need.out
        && k.len() >= need.k
        && scratch.len() >= need.scratch;
    let n = i64::try_from(n).ok().filter(|_| fits && entry != 0);
    let Some(n) = n else {
        return Err(CodegenError::Invalid(format!(
            "internal error: kernel buffers do not have their planned sizes ({need:?})"
        )));
    };
    let bp = b.map_or(std::ptr::null(), <[u8]>::as_ptr);
    // SAFETY: `entry` is the address of a finalized function of `code` (borrowed, so
    // still alive) with exactly the `KernelFn` signature (`emit::Jit::define`). Every
    // slice was just checked to hold at least the bytes the kernel touches for this
    // `n`, a null `b` is only passed to kernels that never read it (`need.b == 0`),
    // and `out`/`scratch` are exclusive borrows.
    unsafe {
        let f = std::mem::transmute::<usize, KernelFn>(entry);
        f(
            n,
            a.as_ptr(),
            bp,
            out.as_mut_ptr(),
            k.as_ptr(),
            scratch.as_mut_ptr(),
        );
    }
    Ok(())
}
