//! The C ABI (`include/fqc.h`): opaque model and session handles, status codes, and a
//! per-thread last-error message. The crate's only `unsafe`.
//!
//! No Rust panic crosses the boundary: every entry point runs its body under
//! `catch_unwind` and turns a panic into `FQC_ERR_PANIC`. Null pointers are checked
//! and reported as `FQC_ERR_ARG`. Handles are `Box`es turned into raw pointers; the
//! `_free` functions take them back (null is a no-op).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Model, Session};

/// Success.
pub const FQC_OK: c_int = 0;
/// A null or otherwise invalid argument.
pub const FQC_ERR_ARG: c_int = 1;
/// The model could not be loaded (I/O, corrupt artifact, unsupported by the JIT).
pub const FQC_ERR_LOAD: c_int = 2;
/// The input has the wrong shape for the model.
pub const FQC_ERR_INPUT: c_int = 3;
/// The output buffer is too small.
pub const FQC_ERR_OUTPUT: c_int = 4;
/// An internal error (including a caught panic).
pub const FQC_ERR_PANIC: c_int = 5;

/// Opaque model handle of the C ABI.
#[derive(Debug)]
pub struct FqcModel(Model);
/// Opaque session handle of the C ABI.
#[derive(Debug)]
pub struct FqcSession(Session);

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs `f`, catching a panic as `Err((FQC_ERR_PANIC, …))`, and records any error.
fn guard<T>(f: impl FnOnce() -> Result<T, (c_int, String)>) -> Result<T, c_int> {
    let r = catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err((FQC_ERR_PANIC, "internal error: panic in fqc".into())));
    r.map_err(|(code, msg)| {
        set_error(&msg);
        code
    })
}

/// The message of the last failed call on this thread ("" if none); valid until the
/// next failing call on this thread.
#[no_mangle]
pub extern "C" fn fqc_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Loads and JIT-compiles the `.fqc` at `path`; null on failure, with the message in
/// `err_buf` (if non-null, NUL-terminated, truncated to `err_len`) and `fqc_last_error`.
///
/// # Safety
/// `path` must be a NUL-terminated string; `err_buf`, if non-null, must point to
/// `err_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn fqc_model_load(
    path: *const c_char,
    err_buf: *mut c_char,
    err_len: usize,
) -> *mut FqcModel {
    let r = guard(|| {
        if path.is_null() {
            return Err((FQC_ERR_ARG, "path is null".into()));
        }
        // SAFETY: non-null and NUL-terminated by the caller's contract.
        let p = unsafe { CStr::from_ptr(path) };
        let p = p
            .to_str()
            .map_err(|_| (FQC_ERR_ARG, "path is not UTF-8".to_string()))?;
        Model::load(p).map_err(|e| (FQC_ERR_LOAD, format!("{p}: {e}")))
    });
    match r {
        Ok(m) => Box::into_raw(Box::new(FqcModel(m))),
        Err(_) => {
            if !err_buf.is_null() && err_len > 0 {
                LAST_ERROR.with(|e| {
                    let msg = e.borrow();
                    let bytes = msg.as_bytes();
                    let n = bytes.len().min(err_len - 1);
                    // SAFETY: the caller gives `err_len` writable bytes at `err_buf`;
                    // we write `n + 1 <= err_len` of them, from a distinct allocation.
                    unsafe {
                        std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), err_buf, n);
                        *err_buf.add(n) = 0;
                    }
                });
            }
            std::ptr::null_mut()
        }
    }
}

/// Frees a model from `fqc_model_load` (null is a no-op). Sessions keep their own
/// reference, so they stay usable after this.
///
/// # Safety
/// `model` must be null or a pointer from `fqc_model_load` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fqc_model_free(model: *mut FqcModel) {
    if !model.is_null() {
        // SAFETY: from `Box::into_raw` in `fqc_model_load`, freed once by contract.
        let b = unsafe { Box::from_raw(model) };
        let _ = catch_unwind(AssertUnwindSafe(move || drop(b)));
    }
}

/// Number of f32 values the model's output has per batch item (e.g. 10), 0 for null.
///
/// # Safety
/// `model` must be null or a live pointer from `fqc_model_load`.
#[no_mangle]
pub unsafe extern "C" fn fqc_model_output_len(model: *const FqcModel) -> usize {
    // SAFETY: null or live by contract; only read.
    unsafe { model.as_ref() }.map_or(0, |m| m.0.output_item_len())
}

/// A new session of `model` (one per thread); null on failure.
///
/// # Safety
/// `model` must be null or a live pointer from `fqc_model_load`.
#[no_mangle]
pub unsafe extern "C" fn fqc_session_new(model: *const FqcModel) -> *mut FqcSession {
    // SAFETY: null or live by contract; only read.
    let m = unsafe { model.as_ref() };
    match guard(|| {
        m.map(|m| m.0.session())
            .ok_or((FQC_ERR_ARG, "model is null".into()))
    }) {
        Ok(s) => Box::into_raw(Box::new(FqcSession(s))),
        Err(_) => std::ptr::null_mut(),
    }
}

/// Frees a session (null is a no-op).
///
/// # Safety
/// `session` must be null or a pointer from `fqc_session_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fqc_session_free(session: *mut FqcSession) {
    if !session.is_null() {
        // SAFETY: from `Box::into_raw` in `fqc_session_new`, freed once by contract.
        let b = unsafe { Box::from_raw(session) };
        let _ = catch_unwind(AssertUnwindSafe(move || drop(b)));
    }
}

/// Runs the model on `n·c·h·w` f32 values at `input` (NCHW) and writes the first
/// output (`n · fqc_model_output_len` f32) to `output`, which holds `output_len` f32.
/// Returns `FQC_OK` or an `FQC_ERR_*` code (message in `fqc_last_error`).
///
/// # Safety
/// `session` must be a live pointer from `fqc_session_new`, used by one thread at a
/// time; `input` must point to `n·c·h·w` readable f32 and `output` to `output_len`
/// writable f32.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn fqc_session_run_f32(
    session: *mut FqcSession,
    input: *const f32,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    output: *mut f32,
    output_len: usize,
) -> c_int {
    let r = guard(|| {
        // SAFETY: live and used by one thread at a time, by contract.
        let s = unsafe { session.as_mut() }.ok_or((FQC_ERR_ARG, "session is null".into()))?;
        if input.is_null() || output.is_null() {
            return Err((FQC_ERR_ARG, "input or output is null".into()));
        }
        let len = [n, c, h, w]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&l| l <= isize::MAX as usize / 4)
            .ok_or((FQC_ERR_INPUT, "input size overflows".to_string()))?;
        // SAFETY: `input` points to `n·c·h·w = len` readable f32 by contract (the size
        // fits in isize, checked above).
        let x = unsafe { std::slice::from_raw_parts(input, len) };
        let y =
            s.0.run_f32_slice(x, &[n, c, h, w])
                .map_err(|e| (FQC_ERR_INPUT, e.to_string()))?;
        let Some(v) = y.as_f32() else {
            return Err((FQC_ERR_OUTPUT, "the model's output is not f32".into()));
        };
        if v.len() > output_len {
            return Err((
                FQC_ERR_OUTPUT,
                format!("output needs {} floats, buffer holds {output_len}", v.len()),
            ));
        }
        // SAFETY: `output` holds `output_len >= v.len()` writable f32 by contract, and
        // does not overlap `v` (a fresh Rust allocation).
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), output, v.len()) };
        Ok(())
    });
    r.err().unwrap_or(FQC_OK)
}
