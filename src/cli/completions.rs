//! `gitseal completions SHELL`: a completion script generated from the clap definitions.

use super::{Cli, CmdResult, exit};
use clap::CommandFactory;

pub fn run(shell: clap_complete::Shell) -> CmdResult {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "gitseal",
        &mut std::io::stdout(),
    );
    Ok(exit::OK)
}
