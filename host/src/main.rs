//! The `joule` binary: node and CLI in one.

fn main() {
    std::process::exit(joule::cli::main());
}
