//! Writes the fine-tuning results report (`reports/finetune.md`) and its plot
//! (`reports/finetune.png`, plotters) from the JSON files `scripts/finetune_results.sh`
//! collects: per model a folder holding `fp.json` (`fqc eval --json` of the float
//! model), `ptq_wXaY.json` and `oneshot_wXaY.json` (`fqc compile --summary-json`) and
//! `gradual.json` (one gradual run with `--save-stages`, every stage measured).
//!
//! It only reads what the runs measured — test top-1 of the integer-only JIT, of the
//! fake-quant model, their agreement, wall times — and states each target of the issue
//! as met or missed from those numbers.
//!
//! Usage: `finetune_report OUT_STEM DIR=TITLE=TARGET_W2A4=TARGET_W2A2 ...` (targets in
//! points of top-1 below FP; `-` for none), e.g.
//! `finetune_report reports/finetune target/finetune/mnist=MNIST\ CNN=0.3=-`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

/// One row of a model's table.
#[derive(Debug, Clone)]
struct Row {
    config: &'static str,
    /// Test top-1 of what runs (the integer-only JIT; the float interpreter for FP).
    top1: f64,
    fake_quant: Option<f64>,
    agreement: Option<f64>,
    seconds: f64,
}

#[derive(Debug)]
struct Model {
    title: String,
    dir: PathBuf,
    target_w2a4: Option<f64>,
    target_w2a2: Option<f64>,
    rows: Vec<Row>,
    /// The gradual run's stage epochs, for the notes.
    gradual_schedule: String,
    /// The command lines of the gradual and one-shot w2a4 runs (their settings).
    commands: Vec<String>,
}

/// The configurations in table order: (label, file, stage label in a gradual run, plot
/// label).
const CONFIGS: [(&str, &str, Option<&str>, &str); 9] = [
    ("FP (float)", "fp.json", None, "FP"),
    ("PTQ w8a8", "ptq_w8a8.json", None, "PTQ w8a8"),
    ("PTQ w4a4", "ptq_w4a4.json", None, "PTQ w4a4"),
    ("PTQ w2a4", "ptq_w2a4.json", None, "PTQ w2a4"),
    (
        "one-shot QAT w2a4",
        "oneshot_w2a4.json",
        None,
        "1-shot w2a4",
    ),
    (
        "gradual QAT w2a4",
        "gradual.json",
        Some("wta4"),
        "grad. w2a4",
    ),
    (
        "gradual QAT w2a3",
        "gradual.json",
        Some("wta3"),
        "grad. w2a3",
    ),
    (
        "gradual QAT w2a2",
        "gradual.json",
        Some("wta2"),
        "grad. w2a2",
    ),
    (
        "one-shot QAT w2a2",
        "oneshot_w2a2.json",
        None,
        "1-shot w2a2",
    ),
];

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn row(config: &'static str, dir: &Path, file: &str, stage: Option<&str>) -> Result<Row, String> {
    let path = dir.join(file);
    let v = read_json(&path)?;
    if file == "fp.json" {
        return Ok(Row {
            config,
            top1: num(&v, "top1").ok_or(format!("{}: no top1", path.display()))?,
            fake_quant: None,
            agreement: None,
            seconds: num(&v, "seconds").unwrap_or(f64::NAN),
        });
    }
    let (test, seconds) = match stage {
        None => (v.get("test"), num(&v, "compile_seconds")),
        Some(label) => {
            let st = v
                .get("stages")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|s| s.get("label").and_then(Value::as_str) == Some(label))
                })
                .ok_or(format!("{}: no stage {label}", path.display()))?;
            (st.get("test"), num(st, "seconds"))
        }
    };
    let test = test.ok_or(format!("{}: no test result", path.display()))?;
    Ok(Row {
        config,
        top1: num(test, "integer_top1").ok_or(format!("{}: no integer_top1", path.display()))?,
        fake_quant: num(test, "fake_quant_top1"),
        agreement: num(test, "agreement"),
        seconds: seconds.unwrap_or(f64::NAN),
    })
}

fn parse_model(arg: &str) -> Result<Model, String> {
    let parts: Vec<&str> = arg.split('=').collect();
    let [dir, title, t4, t2] = parts.as_slice() else {
        return Err(format!(
            "`{arg}`: expected DIR=TITLE=TARGET_W2A4=TARGET_W2A2"
        ));
    };
    let target = |t: &str| t.parse::<f64>().ok();
    let dir = PathBuf::from(dir);
    let mut rows = Vec::new();
    for (config, file, stage, _) in CONFIGS {
        rows.push(row(config, &dir, file, stage)?);
    }
    let gradual = read_json(&dir.join("gradual.json"))?;
    let epochs: Vec<String> = gradual
        .get("trained_stages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s.get("label").and_then(Value::as_str).unwrap_or("?"),
                        s.get("epochs").and_then(Value::as_u64).unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut commands = Vec::new();
    for file in ["gradual.json", "oneshot_w2a4.json"] {
        let v = read_json(&dir.join(file))?;
        let words: Vec<&str> = v
            .get("command")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        commands.push(if words.is_empty() {
            format!("({file}: command line not recorded; the settings are scripts/finetune_results.sh's)")
        } else {
            shown_command(&words)
        });
    }
    Ok(Model {
        title: title.to_string(),
        commands,
        dir,
        target_w2a4: target(t4),
        target_w2a2: target(t2),
        rows,
        gradual_schedule: epochs.join(", "),
    })
}

/// A command line as `fqc …` (the binary's path dropped).
fn shown_command(words: &[&str]) -> String {
    let mut out = String::from("fqc");
    for w in words.iter().skip(1) {
        out.push(' ');
        out.push_str(w);
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn table(m: &Model, w: &mut String) {
    let fp = m.rows[0].top1;
    let _ = writeln!(w, "### {}\n", m.title);
    let _ = writeln!(
        w,
        "| configuration | test top-1 % (integer-only JIT) | vs FP (points) | fake-quant top-1 % | same prediction % | wall time s |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|");
    for r in &m.rows {
        let delta = if r.config.starts_with("FP") {
            "—".to_string()
        } else {
            format!("{:+.2}", 100.0 * (r.top1 - fp))
        };
        let opt = |x: Option<f64>| x.map_or("—".to_string(), pct);
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {:.1} |",
            r.config,
            pct(r.top1),
            delta,
            opt(r.fake_quant),
            opt(r.agreement),
            r.seconds
        );
    }
    let _ = writeln!(
        w,
        "\nGradual run (epochs per stage as run): {}. Results folder: `{}`. Commands:\n",
        m.gradual_schedule,
        m.dir.display()
    );
    for c in &m.commands {
        let _ = writeln!(w, "    {c}");
    }
    let _ = writeln!(w);
    targets(m, w);
}

/// A gap to the float model (`fp − quantized`, points) in words: "0.18 below" or, for a
/// quantized model that beats the float one, "0.20 above".
fn relative_to_fp(gap: f64) -> String {
    if gap < 0.0 {
        format!("{:.2} above", -gap)
    } else {
        format!("{gap:.2} below")
    }
}

fn targets(m: &Model, w: &mut String) {
    let by = |c: &str| m.rows.iter().find(|r| r.config == c).map(|r| r.top1);
    let fp = m.rows[0].top1;
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    for (target, config, label) in [
        (m.target_w2a4, "gradual QAT w2a4", "gradual w2a4"),
        (m.target_w2a2, "gradual QAT w2a2", "gradual w2a2"),
    ] {
        if let (Some(t), Some(g)) = (target, by(config)) {
            let gap = 100.0 * (fp - g);
            let _ = writeln!(
                w,
                "- {label} within {t} points of FP: {} — {}",
                relative_to_fp(gap),
                verdict(gap <= t)
            );
        }
    }
    if let (Some(g), Some(o)) = (by("gradual QAT w2a2"), by("one-shot QAT w2a2")) {
        let _ = writeln!(
            w,
            "- gradual ≥ one-shot at w2a2: {} vs {} — {}",
            pct(g),
            pct(o),
            verdict(g >= o)
        );
    }
    let worst = m
        .rows
        .iter()
        .filter_map(|r| r.agreement)
        .fold(f64::INFINITY, f64::min);
    if worst.is_finite() {
        let _ = writeln!(
            w,
            "- integer-only JIT and fake-quant model predict the same class on ≥ 99.9 % of the test images: lowest {} % — {}",
            pct(worst),
            verdict(worst >= 0.999)
        );
    }
    let _ = writeln!(w);
}

fn plot(models: &[Model], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no DejaVuSans.ttf font under /usr/share/fonts/truetype/dejavu (Debian: fonts-dejavu-core)")?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "the font does not load")?;
    let root = BitMapBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    // The y axis spans the quantized results that are near FP; a post-training ternary
    // result far below (10-20 %) is drawn on the bottom edge with its value written.
    let near: Vec<f64> = models
        .iter()
        .flat_map(|m| m.rows.iter().map(|r| 100.0 * r.top1))
        .filter(|&t| t >= 50.0)
        .collect();
    let lo = (near.iter().copied().fold(100.0f64, f64::min) - 1.0).floor();
    let names: Vec<&str> = CONFIGS.iter().map(|c| c.3).collect();
    let n = names.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Test top-1 of the integer-only networks (fqc JIT) per configuration",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n - 0.5, lo..100.0f64)?;
    chart
        .configure_mesh()
        .x_labels(names.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .y_desc("test top-1 (%)")
        .label_style(("sans-serif", 14))
        .draw()?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN];
    for (k, m) in models.iter().enumerate() {
        let c = colors[k % colors.len()];
        let pts: Vec<(f64, f64)> = m
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, (100.0 * r.top1).max(lo)))
            .collect();
        for (i, r) in m.rows.iter().enumerate() {
            if 100.0 * r.top1 < lo {
                let text = format!("{:.1} %", 100.0 * r.top1);
                let y = lo + (100.0 - lo) * (0.04 + 0.05 * k as f64);
                chart.draw_series(std::iter::once(Text::new(
                    text,
                    (i as f64 + 0.08, y),
                    ("sans-serif", 13).into_font().color(&c),
                )))?;
            }
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(m.title.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::Coordinate(700, 110))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((stem, specs)) = args.split_first() else {
        eprintln!("usage: finetune_report OUT_STEM DIR=TITLE=TARGET_W2A4=TARGET_W2A2 ...");
        std::process::exit(2);
    };
    let models: Vec<Model> = match specs.iter().map(|s| parse_model(s)).collect() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let md = PathBuf::from(format!("{stem}.md"));
    let png = PathBuf::from(format!("{stem}.png"));
    let mut w = String::new();
    let header = std::env::var("FINETUNE_REPORT_HEADER").unwrap_or_default();
    let _ = writeln!(w, "{}\n", header.trim_end());
    for m in &models {
        table(m, &mut w);
    }
    let _ = writeln!(
        w,
        "![test top-1 per configuration]({})",
        png.file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned())
    );
    if let Err(e) = std::fs::write(&md, w) {
        eprintln!("error: cannot write {}: {e}", md.display());
        std::process::exit(1);
    }
    if let Err(e) = plot(&models, &png) {
        eprintln!("error: plot {}: {e}", png.display());
        std::process::exit(1);
    }
    println!("wrote {} and {}", md.display(), png.display());
}
