//! Which kernel paths this machine's test run covers. The native kernels (`std::arch`
//! AVX2) are tested only where the CPU has AVX2 (`if is_avx2()` in the other tests), so a
//! run on a CPU without it would pass while testing only the portable JIT forms. This
//! test prints what the run covers and, under CI (whose machines have AVX2), fails when
//! the native kernels would go untested.

mod common;

#[test]
fn report_the_kernel_paths_this_run_covers() {
    #[cfg(target_arch = "x86_64")]
    let features: Vec<(&str, bool)> = vec![
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
        (
            "avx512vnni",
            std::arch::is_x86_feature_detected!("avx512vnni"),
        ),
        ("avxvnni", std::arch::is_x86_feature_detected!("avxvnni")),
    ];
    #[cfg(not(target_arch = "x86_64"))]
    let features: Vec<(&str, bool)> = Vec::new();
    let have: Vec<&str> = features.iter().filter(|f| f.1).map(|f| f.0).collect();
    println!(
        "kernel paths covered: portable JIT forms (Cranelift) yes; native AVX2 kernels {}; CPU features {have:?}",
        if common::is_avx2() { "yes" } else { "NO" }
    );
    assert!(
        common::is_avx2() || std::env::var_os("CI").is_none(),
        "this CI machine has no AVX2: the native kernels' tests would not run"
    );
}
