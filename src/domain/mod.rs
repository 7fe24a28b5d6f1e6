//! The decision domain: certnames, CSRs, build tokens, the allow-list and the pipeline
//! that turns a CSR into a recorded decision. No actix, no sqlx; time is passed in.

pub mod allowlist;
pub mod certname;
pub mod csr;
pub mod decision;
pub mod event;
pub mod policy;
pub mod token;
