//! Entry point puppetserver runs as its `autosign` executable: `autosign-policy CERTNAME <
//! csr.pem`; exit 0 signs, anything else leaves the CSR pending.
//!
//! Only wiring lives here: the deadline watchdog and the single stderr line.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use autosign_policy::policy::{self, Outcome};

/// The normal path reports a timeout itself at the deadline; the watchdog is the backstop
/// for what has no timeout (stdin, DNS), so it waits a little longer.
const WATCHDOG_GRACE: Duration = Duration::from_millis(100);

/// Set by whichever of main and the watchdog reports first, so there is exactly one
/// verdict: a late watchdog cannot turn an approval into a failure half-way.
static REPORTED: AtomicBool = AtomicBool::new(false);

fn main() {
    let started = Instant::now();
    let argv: Vec<_> = std::env::args_os().skip(1).collect();
    let plan = match policy::prepare(&argv, std::env::var_os(policy::CONFIG_ENV), started) {
        Ok(plan) => plan,
        Err(outcome) => finish(&outcome),
    };
    let fire_at = plan.deadline + WATCHDOG_GRACE;
    let on_timeout = plan.timed_out();
    let watchdog = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            while let Some(left) = fire_at.checked_duration_since(Instant::now()) {
                std::thread::sleep(left);
            }
            finish(&on_timeout)
        });
    if let Err(e) = watchdog {
        finish(&Outcome::Fail(format!(
            "leaving the CSR pending: cannot start the timeout watchdog: {e}"
        )));
    }
    let outcome = policy::execute(&plan, &mut std::io::stdin().lock());
    finish(&outcome)
}

fn finish(outcome: &Outcome) -> ! {
    if REPORTED.swap(true, Ordering::SeqCst) {
        // The other thread is reporting and will exit the process.
        loop {
            std::thread::park();
        }
    }
    if let Some(line) = outcome.message() {
        // Not eprintln!: it panics when stderr is gone, and a panicking watchdog would
        // leave main parked forever.
        // One write, so the line cannot interleave with anything else.
        let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
    }
    std::process::exit(outcome.exit_code())
}
