#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fqc_fuzz::onnx_import(data);
});
