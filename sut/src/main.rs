//! The `refhttpd` binary: see [`refhttpd::run`].

use clap::Parser;

fn main() {
    let args = refhttpd::Args::parse();
    std::process::exit(refhttpd::run(&args));
}
