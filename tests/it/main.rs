//! The one integration-test binary: a real service on loopback with real TLS, real
//! SQLite, real CSRs from openssl, and real Puppet where it is installed.

mod api;
mod ca;
pub mod cli;
mod events;
mod foreman;
mod policy_exec;
mod puppet;
mod real_puppet;
mod replicas;
mod support;
mod trust;
mod ui;
mod validate;
