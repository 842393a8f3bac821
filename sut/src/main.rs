//! The `refhttpd` binary: see [`refhttpd::cli`].

use clap::Parser;

fn main() {
    let args = refhttpd::cli::Args::parse();
    std::process::exit(refhttpd::cli::run(&args));
}
