//! The limits on every count a user gives on the command line, stated once.
//!
//! Each count flag is parsed with one of the range parsers below, so a value outside its
//! range is refused by the argument parser (one `error:` line naming the flag and the
//! range) before anything is allocated; `--help` states each range. Sizes derived from
//! several flags (a benchmark batch × the model's image) are checked with checked
//! arithmetic against [`MAX_INPUT_ELEMENTS`] where they are formed. Thread counts above
//! the machine's cores are clamped to the cores, with a note on stderr.

/// Most timed runs, warm-up runs or repeats a command performs.
pub const MAX_RUNS: u64 = 1_000_000;
/// Most worker threads a command accepts on the command line (then clamped to the cores).
pub const MAX_THREADS: u64 = 1024;
/// Most images per run of `fqc bench` / per call of `fqc eval`.
pub const MAX_BATCH: u64 = 1 << 20;
/// Most elements of an input tensor a command builds (as the `.npy` readers allow).
pub const MAX_INPUT_ELEMENTS: u64 = fqc_dataset::MAX_ELEMENTS;

/// `1..=MAX_RUNS`.
pub fn runs() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RUNS)
}

/// `0..=MAX_RUNS` (warm-up runs may be none).
pub fn warmup() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_RUNS)
}

/// `1..=MAX_THREADS`.
pub fn threads() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_THREADS)
}

/// `1..=MAX_BATCH`.
pub fn batch() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_BATCH)
}

/// `0..=MAX_BATCH` (a count of images where none is allowed).
pub fn images() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_BATCH)
}

/// `requested` threads, clamped to the cores this machine has, with a note saying so
/// unless `requested` is the flag's default.
pub fn clamp_threads(requested: usize, default: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if requested <= cores {
        return requested.max(1);
    }
    if requested != default {
        crate::out::warnln!(
            "note: --threads {requested} clamped to {cores}, the cores this machine has"
        );
    }
    cores
}

/// The element count of `shape`, if it is within [`MAX_INPUT_ELEMENTS`].
pub fn input_elements(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&n| n <= MAX_INPUT_ELEMENTS)
        .map(|n| n as usize)
}
