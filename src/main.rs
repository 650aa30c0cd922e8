//! The `gitseal` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    gitseal::cli::main()
}
