//! Cranelift plumbing shared by every kernel: the JIT module, the one kernel signature,
//! counted loops, element loads and stores, and small vector helpers.
//!
//! Every kernel is `extern "C" fn(n: i64, a: *const u8, b: *const u8, out: *mut u8,
//! k: *const u8, scratch: *mut u8)`: `n` is the runtime extent of axis 0 (the batch),
//! `a`/`b` the operand buffers, `out` the result, `k` the kernel's constant blob (weights,
//! bias, thresholds) and `scratch` a per-kernel work area. All other extents are
//! compile-time constants baked into the code, so address arithmetic is plain `iadd` of
//! immediates; the plan (`plan.rs`) sizes every buffer from the same numbers, which is
//! what makes the `notrap` flag on the loads and stores true.
//!
//! Loops are counted (`0..n`, signed compare, block parameter as the induction
//! variable), and accumulators that cross loop edges are frontend `Variable`s, so the
//! SSA is built by `cranelift-frontend`; every block is sealed once the body is complete.

pub(crate) mod conv;
pub(crate) mod dense;
pub(crate) mod misc;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, InstBuilder, MemFlagsData, Type, UserFuncName, Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

use crate::error::{CodegenError, Result};

/// Storage of a buffer element, as [`fqc_ir::Tensor`] stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    U8,
    I8,
    I32,
}

impl Elem {
    pub(crate) fn size(self) -> usize {
        match self {
            Elem::U8 | Elem::I8 => 1,
            Elem::I32 => 4,
        }
    }
}

/// The kernel's parameters as SSA values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub n: Value,
    pub a: Value,
    pub b: Value,
    pub out: Value,
    pub k: Value,
    pub scratch: Value,
}

/// A JIT module being filled with kernels.
pub(crate) struct Jit {
    module: JITModule,
    ctx: Context,
    fctx: FunctionBuilderContext,
    keep_ir: bool,
    /// `(kernel name, Cranelift IR text)` of every kernel, when asked for.
    pub ir: Vec<(String, String)>,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("kernels", &self.ir.len())
            .finish()
    }
}

fn cl_err(e: impl std::fmt::Display) -> CodegenError {
    CodegenError::Cranelift(e.to_string())
}

impl Jit {
    /// A module for the host CPU (its vector extensions detected by `cranelift-native`).
    pub(crate) fn new(keep_ir: bool) -> Result<Jit> {
        let mut fb = settings::builder();
        fb.set("opt_level", "speed").map_err(cl_err)?;
        fb.set("use_colocated_libcalls", "false").map_err(cl_err)?;
        fb.set("is_pic", "false").map_err(cl_err)?;
        let isa = cranelift_native::builder()
            .map_err(cl_err)?
            .finish(settings::Flags::new(fb))
            .map_err(cl_err)?;
        let module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let ctx = module.make_context();
        Ok(Jit {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            keep_ir,
            ir: Vec::new(),
        })
    }

    /// Defines one kernel named `name` whose body `body` emits (after the entry block;
    /// the return is appended here).
    pub(crate) fn define(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut FunctionBuilder, &Params),
    ) -> Result<FuncId> {
        let ptr = self.module.target_config().pointer_type();
        let mut sig = self.module.make_signature();
        sig.params.push(AbiParam::new(types::I64));
        for _ in 0..5 {
            sig.params.push(AbiParam::new(ptr));
        }
        let id = self
            .module
            .declare_function(name, Linkage::Local, &sig)
            .map_err(cl_err)?;
        self.ctx.func.signature = sig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let v = b.block_params(entry).to_vec();
            let p = Params {
                n: v[0],
                a: v[1],
                b: v[2],
                out: v[3],
                k: v[4],
                scratch: v[5],
            };
            body(&mut b, &p);
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(self.module.target_config());
        }
        if self.keep_ir {
            self.ir
                .push((name.to_string(), self.ctx.func.display().to_string()));
        }
        let r = self.module.define_function(id, &mut self.ctx);
        self.module.clear_context(&mut self.ctx);
        r.map_err(|e| CodegenError::Cranelift(format!("kernel `{name}`: {e:?}")))?;
        Ok(id)
    }

    /// Links the module; returns it with the entry address of every kernel in `ids`.
    pub(crate) fn finish(mut self, ids: &[FuncId]) -> Result<(JITModule, Vec<usize>)> {
        self.module.finalize_definitions().map_err(cl_err)?;
        let addrs = ids
            .iter()
            .map(|&id| self.module.get_finalized_function(id) as usize)
            .collect();
        Ok((self.module, addrs))
    }
}

/// Flags of every kernel load/store: in bounds by construction (see the module docs),
/// alignment not assumed.
pub(crate) fn mf() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

pub(crate) fn iconst(b: &mut FunctionBuilder, v: i64) -> Value {
    b.ins().iconst(types::I64, v)
}

/// `base + idx * scale` (pointer arithmetic in i64).
pub(crate) fn addr(b: &mut FunctionBuilder, base: Value, idx: Value, scale: i64) -> Value {
    let off = b.ins().imul_imm_s(idx, scale);
    b.ins().iadd(base, off)
}

/// Emits `for i in 0..n { f(i) }` with `n` an i64 value.
pub(crate) fn counted(
    b: &mut FunctionBuilder,
    n: Value,
    mut f: impl FnMut(&mut FunctionBuilder, Value),
) {
    let header = b.create_block();
    let body = b.create_block();
    let exit = b.create_block();
    let i = b.append_block_param(header, types::I64);
    let zero = iconst(b, 0);
    b.ins().jump(header, &[BlockArg::from(zero)]);
    b.switch_to_block(header);
    let c = b.ins().icmp(IntCC::SignedLessThan, i, n);
    b.ins().brif(c, body, &[], exit, &[]);
    b.switch_to_block(body);
    f(b, i);
    let next = b.ins().iadd_imm_s(i, 1);
    b.ins().jump(header, &[BlockArg::from(next)]);
    b.switch_to_block(exit);
}

/// [`counted`] with a compile-time trip count.
pub(crate) fn counted_const(
    b: &mut FunctionBuilder,
    n: usize,
    f: impl FnMut(&mut FunctionBuilder, Value),
) {
    let n = iconst(b, n as i64);
    counted(b, n, f);
}

/// Loads one element at `p + off` and widens it to i32 exactly.
pub(crate) fn load_i32(b: &mut FunctionBuilder, e: Elem, p: Value, off: i32) -> Value {
    match e {
        Elem::U8 => b.ins().uload8(types::I32, mf(), p, off),
        Elem::I8 => b.ins().sload8(types::I32, mf(), p, off),
        Elem::I32 => b.ins().load(types::I32, mf(), p, off),
    }
}

/// Stores the i32 `v` as element type `e` (the caller proves it fits).
pub(crate) fn store_elem(b: &mut FunctionBuilder, e: Elem, v: Value, p: Value, off: i32) {
    match e {
        Elem::U8 | Elem::I8 => {
            b.ins().istore8(mf(), v, p, off);
        }
        Elem::I32 => {
            b.ins().store(mf(), v, p, off);
        }
    }
}

/// Sum of the four i32 lanes of `v` (wrapping; exact when the true sum fits i32).
pub(crate) fn hsum(b: &mut FunctionBuilder, v: Value) -> Value {
    let l: Vec<Value> = (0..4u8).map(|i| b.ins().extractlane(v, i)).collect();
    let s01 = b.ins().iadd(l[0], l[1]);
    let s23 = b.ins().iadd(l[2], l[3]);
    b.ins().iadd(s01, s23)
}

/// A vector of type `ty` with every lane `v` (an integer of the lane type).
pub(crate) fn splat(b: &mut FunctionBuilder, ty: Type, v: i64) -> Value {
    let lane = iconst_ty(b, ty.lane_type(), v);
    b.ins().splat(ty, lane)
}

/// An integer constant of scalar type `ty` (≤ 64 bits): Cranelift wants the immediate
/// zero-extended from the type's width, so `v` is masked to it (two's complement).
pub(crate) fn iconst_ty(b: &mut FunctionBuilder, ty: Type, v: i64) -> Value {
    let bits = ty.bits();
    let imm = if bits >= 64 {
        v
    } else {
        (v as u64 & ((1u64 << bits) - 1)) as i64
    };
    b.ins().iconst(ty, imm)
}
