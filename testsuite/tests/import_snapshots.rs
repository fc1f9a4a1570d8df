//! File-driven snapshots of the imported IR: every `filetests/import/*.onnx` model and the
//! bundled MNIST and Fashion CNNs, printed in fqc's text format. Review changes with
//! `cargo insta review`; CI runs with `CI=true`, so a missing snapshot fails. Each snapshot
//! must also parse back to the same text (the format round-trips).

use std::path::Path;

fn imported_text(path: &Path) -> String {
    let graph = fqc_onnx::import_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = fqc_ir::text::print(&graph);
    let reparsed = fqc_ir::text::parse(&text)
        .unwrap_or_else(|e| panic!("{}: reparse: {e}\n{text}", path.display()));
    assert_eq!(
        fqc_ir::text::print(&reparsed),
        text,
        "text format does not round-trip"
    );
    text
}

#[test]
fn import_filetests() {
    insta::glob!("../filetests/import", "*.onnx", |path| {
        insta::assert_snapshot!(imported_text(path));
    });
}

#[test]
fn import_bundled_models() {
    let root = fqc_testsuite::repo_root();
    insta::assert_snapshot!(
        "mnist_cnn",
        imported_text(&root.join("examples/mnist/mnist_cnn.onnx"))
    );
    let fashion = root.join("examples/fashion/fashion_cnn.onnx");
    if fashion.exists() || std::env::var_os("CI").is_some() {
        insta::assert_snapshot!("fashion_cnn", imported_text(&fashion));
    }
}
