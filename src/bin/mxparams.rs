//! The `mxparams` command for Rust users (`cargo install mxparams --features cli`).
//! The Python package installs the same command with PyTorch and numpy
//! formats added; see `mxparams::cli`.

fn main() {
    let code = mxparams::cli::run(std::env::args_os().skip(1), &mxparams::cli::NoHooks);
    std::process::exit(code);
}
