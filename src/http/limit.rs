//! A per-address limit on anonymous certificate requests: agents submit without a client
//! certificate, and every submission writes a request, events and webhook deliveries, so
//! one address may not submit without bound. A token bucket per address, in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most addresses remembered at once; beyond this, full buckets are forgotten first.
const MAX_ADDRESSES: usize = 50_000;

pub struct AnonymousLimit {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AnonymousLimit {
    /// `per_minute` requests a minute per address, in bursts of as many; 0: no limit.
    pub fn new(per_minute: u32) -> AnonymousLimit {
        AnonymousLimit {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request from the address's allowance; `Err(seconds)` to wait when none is
    /// left.
    pub fn take(&self, address: IpAddr) -> Result<(), u64> {
        self.take_at(address, Instant::now())
    }

    fn take_at(&self, address: IpAddr, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock must not stop agents: fail open on the limit only, which
            // guards load, not trust.
            return Ok(());
        };
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&address) {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refilled = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second)
            .min(capacity);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            // Whole seconds until one request is allowed again, at least one.
            let wait = ((1.0 - refilled) / per_second).ceil();
            Err(if wait.is_finite() && wait >= 1.0 {
                wait as u64
            } else {
                1
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let limit = AnonymousLimit::new(6);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(limit.take_at(a, t0), Ok(()));
        }
        assert_eq!(limit.take_at(a, t0), Err(10), "one per 10 s at 6/min");
        assert_eq!(limit.take_at(b, t0), Ok(()), "per address");
        assert_eq!(limit.take_at(a, t0 + Duration::from_secs(10)), Ok(()));
        assert!(limit.take_at(a, t0 + Duration::from_secs(10)).is_err());
        assert_eq!(AnonymousLimit::new(0).take_at(a, t0), Ok(()), "0: no limit");
    }
}
