//! The `veloflux` command. Everything lives in the library so that tests can drive it.

use std::process::ExitCode;

fn main() -> ExitCode {
    veloflux::main()
}
