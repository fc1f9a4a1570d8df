//! Rewrites a `.fqc` artifact in the current format (an older artifact keeps loading,
//! but is rewritten this way when its bytes should be what today's fqc writes): loads
//! and verifies it, then saves the same graph.
//!
//! `cargo run --release -p fqc-runtime --example resave -- IN.fqc OUT.fqc`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: resave IN.fqc OUT.fqc".into());
    };
    let g = fqc_runtime::artifact::load_file(&input)?;
    fqc_runtime::artifact::save_file(&output, &g)?;
    println!(
        "{input} -> {output} (format {})",
        fqc_runtime::artifact::FORMAT_VERSION
    );
    Ok(())
}
