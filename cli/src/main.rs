//! `fqc`: the command-line front end. Thin over the libraries: it parses arguments,
//! loads files, calls `fqc-onnx` / `fqc-ir` / `fqc-dataset`, and turns every failure into
//! one clear `error:` line and a non-zero exit status.
//!
//! Exit status: 0 on success, and when stdout is a pipe whose reader has gone (as
//! `fqc inspect big.onnx | head -1`: the command stops quietly, as `ls | head` does);
//! 1 for any error (one `error:` line on stderr); 2 for a malformed command line (one
//! `error:` line from the argument parser).

mod commands;
mod limits;
mod model;
mod out;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Compiler and runtime for fully quantized convolutional networks.
#[derive(Debug, Parser)]
#[command(name = "fqc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile a float model to an integer-only .fqc artifact.
    Compile(Box<commands::compile::Args>),
    /// Print a model as fqc IR text.
    Inspect(commands::inspect::Args),
    /// Run a model on an input tensor (.npy): the JIT for a .fqc, else the interpreter.
    Run(commands::run::Args),
    /// Measure a model's top-1 accuracy on a labelled dataset (.npz).
    Eval(commands::eval::Args),
    /// Measure a compiled model's JIT latency, images/s and GMAC/s.
    Bench(commands::bench::Args),
    /// List the ONNX op types the importer accepts (default domain), one per line.
    Ops(commands::ops::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: print them; a closed stdout is not an error.
            let _ = out::write(format_args!("{}", e.render()));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message is several lines (usage, a hint); keep its first line.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            out::warn(format_args!("{first}"));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Compile(args) => commands::compile::main(*args),
        Command::Inspect(args) => commands::inspect::main(args),
        Command::Run(args) => commands::run::main(args),
        Command::Eval(args) => commands::eval::main(args),
        Command::Bench(args) => commands::bench::main(args),
        Command::Ops(args) => commands::ops::main(args),
    }
    .and_then(|()| Ok(out::flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let closed_pipe = e.chain().any(|c| {
                c.downcast_ref::<out::StdoutError>()
                    .is_some_and(out::StdoutError::is_closed_pipe)
            });
            if closed_pipe {
                return ExitCode::SUCCESS;
            }
            out::warn(format_args!("error: {}", said_once(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, each said once: a cause whose text the
/// message already holds (an error that prints its source, then the source itself) is
/// left out.
fn said_once(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}
