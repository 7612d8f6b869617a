//! End-to-end tests of the `veloflux` binary: each starts the real process on loopback
//! ports chosen by the OS and talks to it over HTTP, as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr, reason = "tests")]

mod architecture;
mod cli;
mod durability;
mod edge;
mod errors;
mod framing;
mod harness;
mod identity;
mod magic;
mod oidc;
mod openapi;
mod registration;
mod server;
mod takeover;
mod tenancy;
mod tls;
