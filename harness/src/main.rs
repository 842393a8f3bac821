//! `mpm-harness`: the command line (`cli`), and the helper roles the binary re-executes itself
//! as (the embedded reference server, the guard around Apache).

fn main() {
    mpm_harness::target::serve_if_asked();
    std::process::exit(mpm_harness::cli::main());
}
