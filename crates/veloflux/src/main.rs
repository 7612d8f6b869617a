//! The `veloflux` command. Everything lives in the library so that tests can drive it.

use std::process::ExitCode;

/// mimalloc: measured faster than the system allocator on the edge's request path (see
/// ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    veloflux::main()
}
