//! Runs a `.fqc` N times at batch 1 through one session: the program
//! `scripts/batch1_profile.sh` counts instructions of under callgrind. One warm-up run
//! first (it allocates the session's arena), then N runs of the same pseudo-random image
//! (f32 pixels 0–255; the input `quantize` and output `dequantize` are included).
//!
//! `cargo run --release -p fqc-runtime --example run_n -- MODEL.fqc N`

use fqc_ir::{Tensor, TensorData};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: run_n MODEL.fqc N")?;
    let n: usize = args.next().ok_or("usage: run_n MODEL.fqc N")?.parse()?;
    let model = fqc_runtime::Model::load(&path)?;
    let mut session = model.session();
    let mut shape = vec![1];
    shape.extend(model.input_item_shape());
    let numel: usize = shape.iter().product();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let pixels = (0..numel)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as f32
        })
        .collect();
    let x = Tensor {
        shape,
        data: TensorData::F32(pixels),
    };
    session.run(&x)?;
    for _ in 0..n {
        std::hint::black_box(session.run(&x)?);
    }
    Ok(())
}
