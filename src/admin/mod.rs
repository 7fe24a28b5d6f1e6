//! Operations on a whole CA and its state, run by an operator with the service stopped or
//! beside it: take over a puppetserver CA directory, write ours back out, start over.

pub mod export;
pub mod import;
pub mod regenerate;
