//! `fqc`: the command-line front end. Thin over the libraries: it parses arguments,
//! loads files, calls `fqc-onnx` / `fqc-ir` / `fqc-dataset`, and turns every failure into
//! one clear `error:` line and a non-zero exit status.

mod commands;
mod model;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(args) => commands::compile::main(*args),
        Command::Inspect(args) => commands::inspect::main(args),
        Command::Run(args) => commands::run::main(args),
        Command::Eval(args) => commands::eval::main(args),
        Command::Bench(args) => commands::bench::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
