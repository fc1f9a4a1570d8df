//! Measuring a compile, for `fqc compile --test SET [--save-stages DIR] [--summary-json F]`:
//! the integer-only graph's top-1 on a labelled test set (run on the JIT), the last
//! stage's fake-quant graph's top-1 (run on the float interpreter) and how often the
//! two predict the same class; with `--save-stages`, every stage of a gradual run
//! integerized, saved as `DIR/NN_wXaY.fqc` and measured the same way (each equals what a
//! schedule ending at that stage would produce, so one gradual run yields every
//! bit-width on the way down); a JSON summary of all of it for scripts.
//!
//! Evaluation time is kept out of the reported compile time: the clock that times the
//! stages stops while a stage is measured.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fqc_dataset::LabelledSet;
use fqc_ir::Graph;
use fqc_passes::schedule::StageSummary;
use fqc_train::StageReport;
use serde::Serialize;

use crate::commands::eval::{hits, predictions};
use crate::commands::run::Engine;
use crate::out::outln;

/// Threads of the evaluation runs (the batch is split between them).
const EVAL_THREADS: usize = 2;
/// Images per evaluation call.
const EVAL_BATCH: usize = 256;

/// The measuring options of `fqc compile`.
#[derive(Debug, clap::Args)]
pub(super) struct CheckArgs {
    /// After compiling, measure top-1 on this labelled set: the integer-only JIT, the
    /// fake-quant model, and how often they agree.
    #[arg(long, value_name = "SET")]
    test: Option<PathBuf>,
    /// Split of --test.
    #[arg(long, default_value = "test", requires = "test")]
    test_split: String,
    /// Save every stage of the schedule, integerized, as DIR/NN_wXaY.fqc (and measure
    /// each on --test).
    #[arg(long, value_name = "DIR")]
    save_stages: Option<PathBuf>,
    /// Write what was measured (stages, times, accuracies) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
}

impl CheckArgs {
    /// The `--test` set, if any.
    pub fn test_set(&self) -> Option<&Path> {
        self.test.as_deref()
    }

    /// The `--summary-json` file, if any.
    pub fn summary_json(&self) -> Option<&Path> {
        self.summary_json.as_deref()
    }

    /// The files `--save-stages` will write, one per stage label (creating the folder,
    /// so the files can be claimed before the compile).
    pub fn stage_files(&self, labels: &[String]) -> Result<Vec<PathBuf>> {
        let Some(dir) = &self.save_stages else {
            return Ok(Vec::new());
        };
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(labels
            .iter()
            .enumerate()
            .map(|(i, l)| stage_file(dir, i, l))
            .collect())
    }
}

/// Where `--save-stages DIR` saves stage `index` (from 0) labelled `label`.
fn stage_file(dir: &Path, index: usize, label: &str) -> PathBuf {
    dir.join(format!("{:02}_{label}.fqc", index + 1))
}

/// Top-1 of an integer-only graph and its fake-quant twin on one set.
#[derive(Clone, Debug, Serialize)]
pub(super) struct TestResult {
    pub images: usize,
    /// Top-1 of the integer-only graph on the JIT.
    pub integer_top1: f64,
    /// Top-1 of the fake-quant graph on the float interpreter.
    pub fake_quant_top1: f64,
    /// Fraction of images on which both predict the same class.
    pub agreement: f64,
}

/// One stage of the run, as measured.
#[derive(Clone, Debug, Serialize)]
pub(super) struct StageResult {
    pub index: usize,
    pub label: String,
    /// Compile time from the start of the compile to the end of this stage (fine-tuning
    /// included, measuring excluded).
    pub seconds: f64,
    pub artifact: Option<PathBuf>,
    pub test: Option<TestResult>,
}

/// The trainer's view of a stage.
#[derive(Clone, Debug, Serialize)]
struct TrainedStage {
    label: String,
    epochs: usize,
    train_loss: f64,
    val_top1_before: f64,
    val_top1: f64,
    seconds: f64,
}

/// Collects measurements during and after a compile.
#[derive(Debug)]
pub(super) struct Checker {
    test: Option<LabelledSet>,
    save_stages: Option<PathBuf>,
    summary_json: Option<PathBuf>,
    started: Instant,
    /// Time spent measuring, excluded from the stage times.
    measuring: Duration,
    pub stages: Vec<StageResult>,
}

impl Checker {
    pub fn new(args: &CheckArgs) -> Result<Checker> {
        let test = match &args.test {
            Some(p) => Some(crate::commands::eval::labelled_set(p, &args.test_split)?),
            None => None,
        };
        Ok(Checker {
            test,
            save_stages: args.save_stages.clone(),
            summary_json: args.summary_json.clone(),
            started: Instant::now(),
            measuring: Duration::ZERO,
            stages: Vec::new(),
        })
    }

    /// Whether the compile should call [`Checker::observe`] after every stage.
    pub fn wants_stages(&self) -> bool {
        self.save_stages.is_some()
    }

    /// Compile time so far, measuring excluded.
    pub fn compile_seconds(&self) -> f64 {
        (self.started.elapsed().saturating_sub(self.measuring)).as_secs_f64()
    }

    /// After a stage: saves and measures its integer-only graph.
    pub fn observe(&mut self, s: &StageSummary, fake_quant: &Graph, integer: &Graph) -> Result<()> {
        let seconds = self.compile_seconds();
        let t = Instant::now();
        let artifact = match &self.save_stages {
            Some(dir) => {
                let path = stage_file(dir, s.info.index, &s.info.label);
                fqc_runtime::artifact::save_file(&path, integer)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let test = self.measure(fake_quant, integer)?;
        if let Some(r) = &test {
            outln!(
                "  stage {}/{} {}: test top-1 {} (after {:.1} s){}",
                s.info.index + 1,
                s.info.count,
                s.info.label,
                describe(r),
                seconds,
                artifact
                    .as_ref()
                    .map_or(String::new(), |p| format!(" -> {}", p.display()))
            )?;
        }
        self.stages.push(StageResult {
            index: s.info.index,
            label: s.info.label.clone(),
            seconds,
            artifact,
            test,
        });
        self.measuring += t.elapsed();
        Ok(())
    }

    /// Measures the final graphs on the test set (reusing the last stage's measurement
    /// when every stage was measured) and prints it.
    pub fn finish(
        &mut self,
        fake_quant: Option<&Graph>,
        integer: &Graph,
    ) -> Result<Option<TestResult>> {
        let t = Instant::now();
        let result = match (self.stages.last().and_then(|s| s.test.clone()), fake_quant) {
            (Some(r), _) => Some(r),
            (None, Some(fq)) => self.measure(fq, integer)?,
            (None, None) => None,
        };
        if let Some(r) = &result {
            outln!("test top-1: {}", describe(r))?;
        }
        self.measuring += t.elapsed();
        Ok(result)
    }

    fn measure(&self, fake_quant: &Graph, integer: &Graph) -> Result<Option<TestResult>> {
        let Some(set) = &self.test else {
            return Ok(None);
        };
        let n = set.len();
        let mut jit = Engine::from_graph(integer.clone(), true, EVAL_THREADS)?;
        let int_pred = predictions(&mut jit, set, n, EVAL_BATCH)?;
        let mut interp = Engine::from_graph(fake_quant.clone(), false, EVAL_THREADS)?;
        let fq_pred = predictions(&mut interp, set, n, EVAL_BATCH)?;
        let same = int_pred
            .iter()
            .zip(&fq_pred)
            .filter(|(a, b)| a == b)
            .count();
        let n = n.max(1) as f64;
        Ok(Some(TestResult {
            images: set.len(),
            integer_top1: hits(&int_pred, &set.y) as f64 / n,
            fake_quant_top1: hits(&fq_pred, &set.y) as f64 / n,
            agreement: same as f64 / n,
        }))
    }

    /// Writes the JSON summary if asked for (its path was claimed before the compile).
    pub fn write_summary(&self, summary: Summary<'_>) -> Result<()> {
        let Some(path) = &self.summary_json else {
            return Ok(());
        };
        let json = serde_json::to_string_pretty(&SummaryJson::from(summary, self))?;
        Ok(fqc_files::write(path, json.as_bytes())?)
    }
}

fn describe(r: &TestResult) -> String {
    format!(
        "integer-only JIT {:.2}%, fake-quant {:.2}%, same prediction on {:.2}% ({} images)",
        100.0 * r.integer_top1,
        100.0 * r.fake_quant_top1,
        100.0 * r.agreement,
        r.images
    )
}

/// What the compile knows that the summary reports.
#[derive(Debug)]
pub(super) struct Summary<'a> {
    pub model: &'a Path,
    pub output: &'a Path,
    pub schedule: String,
    pub trained: &'a [StageReport],
    pub val_integer_top1: Option<f64>,
    pub float_check: Option<super::sanity::FloatCheck>,
    pub test: Option<TestResult>,
}

#[derive(Debug, Serialize)]
struct SummaryJson<'a> {
    /// The command line that produced it (the settings, exactly).
    command: Vec<String>,
    model: &'a Path,
    output: &'a Path,
    schedule: String,
    compile_seconds: f64,
    trained_stages: Vec<TrainedStage>,
    stages: &'a [StageResult],
    val_integer_top1: Option<f64>,
    float_check: Option<super::sanity::FloatCheck>,
    test: Option<TestResult>,
}

impl<'a> SummaryJson<'a> {
    fn from(s: Summary<'a>, c: &'a Checker) -> SummaryJson<'a> {
        SummaryJson {
            command: std::env::args().collect(),
            model: s.model,
            output: s.output,
            schedule: s.schedule,
            compile_seconds: c.compile_seconds(),
            trained_stages: s
                .trained
                .iter()
                .map(|r| TrainedStage {
                    label: r.label.clone(),
                    epochs: r.epochs,
                    train_loss: r.train_loss,
                    val_top1_before: r.val_acc_before,
                    val_top1: r.val_acc,
                    seconds: r.time.as_secs_f64(),
                })
                .collect(),
            stages: &c.stages,
            val_integer_top1: s.val_integer_top1,
            float_check: s.float_check,
            test: s.test,
        }
    }
}
