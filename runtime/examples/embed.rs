//! Embedding fqc from Rust: load a compiled `.fqc`, open a session, run a batch of
//! MNIST test images, print the arg-max class of each.
//!
//! ```sh
//! fqc compile examples/mnist/mnist_cnn.onnx -o mnist.fqc --data examples/mnist/mnist10k.npz
//! cargo run -p fqc-runtime --example embed -- mnist.fqc 8
//! ```

use fqc_ir::{Tensor, TensorData};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: embed MODEL.fqc [N]")?;
    let n: usize = args.next().map_or(Ok(4), |s| s.parse())?;

    let model = fqc_runtime::Model::load(&path)?;
    let mut session = model.session();

    // Synthetic 28×28 "images" (a bright square moving across), raw pixel values 0–255.
    let mut px = vec![0u8; n * 28 * 28];
    for (i, img) in px.chunks_mut(28 * 28).enumerate() {
        for r in 8..20 {
            for c in 0..8 {
                img[r * 28 + (c + 3 * i) % 28] = 255;
            }
        }
    }
    let x = Tensor {
        shape: vec![n, 1, 28, 28],
        data: TensorData::U8(px),
    };
    let logits = session.run_u8(&x)?;
    let scores = logits.as_f32().ok_or("the model's output is not f32")?;
    let classes = scores.len() / n;
    for (i, row) in scores.chunks(classes).enumerate() {
        let best = (0..classes).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        println!("image {i}: class {best}");
    }
    println!(
        "(JIT compile {:.1} ms)",
        model.compile_time().as_secs_f64() * 1e3
    );
    Ok(())
}
