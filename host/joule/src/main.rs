//! The `joule` binary: node and CLI in one, plus the demo and the benchmarks.

mod bench;
mod cli;
mod demo;
mod enrol;
mod up;

fn main() {
    std::process::exit(cli::main());
}
