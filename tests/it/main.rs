//! The one integration-test binary: a real service on loopback with real TLS, real
//! SQLite, real CSRs from openssl, and real Puppet where it is installed.

mod api;
mod ca;
pub mod cli;
mod client;
mod differential;
mod events;
mod foreman;
mod foreman13;
mod policy_exec;
mod puppet;
mod puppet8;
mod real_puppet;
mod replicas;
mod request_id;
mod support;
mod trust;
mod ui;
mod validate;
