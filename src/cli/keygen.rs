//! `gitseal keygen`: a new age X25519 identity in age-keygen's file format; `-o` creates a
//! new 0600 file and never replaces an existing one.

use super::io::{PRIVATE_MODE, write_new};
use super::{CmdResult, Failure, KeygenArgs, exit};
use crate::crypto::Identity;
use zeroize::Zeroizing;

pub fn run(args: KeygenArgs) -> CmdResult {
    let identity = Identity::generate();
    let public = identity.recipient();
    let created = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let mut text = Zeroizing::new(format!(
        "# created: {created}\n# public key: {}\n",
        public.as_str()
    ));
    text.push_str(&identity.to_secret_string());
    text.push('\n');
    match args.output {
        None => {
            eprintln!("Public key: {}", public.as_str());
            print!("{}", text.as_str());
        }
        Some(path) => {
            // Created only if nothing is there, atomically (no check-then-write race).
            if !write_new(&path, text.as_bytes(), PRIVATE_MODE)? {
                return Err(Failure::input(format!(
                    "{}: already exists; not overwriting a key file",
                    path.display()
                )));
            }
            println!("{}", public.as_str());
        }
    }
    Ok(exit::OK)
}
