//! Request ids: every request carries one — the caller's `X-Request-Id` (Foreman sends
//! one) when it is usable, a fresh UUID otherwise — the events a request causes record it,
//! and every response says it, so an event can be followed to its request and a response
//! (an opaque 500 included) to the events and log lines behind it.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpMessage;

/// The header, on requests and responses.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-supplied id kept; Foreman's are 36-character UUIDs.
const MAX_CHARS: usize = 128;

/// A request's id: printable ASCII, 1 to 128 characters, so it is safe in headers, logs,
/// events and terminals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The caller's id with everything but printable ASCII dropped (control characters,
    /// spaces, bytes that are not ASCII) and cut to 128 characters; `None` when nothing
    /// is left.
    pub fn sanitise(value: &[u8]) -> Option<RequestId> {
        let clean: String = value
            .iter()
            .filter(|b| b.is_ascii_graphic())
            .take(MAX_CHARS)
            .map(|&b| char::from(b))
            .collect();
        (!clean.is_empty()).then_some(RequestId(clean))
    }

    /// A random (version 4) UUID made of these bytes.
    pub fn from_random(bytes: [u8; 16]) -> RequestId {
        RequestId(
            uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .hyphenated()
                .to_string(),
        )
    }

    /// A fresh random id, from aws-lc-rs's RNG (the one everything else here uses);
    /// `None` only if the system has no randomness to give.
    pub fn generate() -> Option<RequestId> {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes).ok()?;
        Some(RequestId::from_random(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value; always valid, being printable ASCII.
    pub fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0).ok()
    }
}

/// Give the request its id: the caller's, sanitised, or a new one. It is kept in the
/// request's extensions, where [`super::request_id`] finds it for the handlers' actors.
pub fn assign(req: &ServiceRequest) -> Option<RequestId> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| RequestId::sanitise(v.as_bytes()))
        .or_else(|| {
            let id = RequestId::generate();
            if id.is_none() {
                tracing::error!("no randomness for a request id: the request goes without");
            }
            id
        })?;
    req.extensions_mut().insert(id.clone());
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_id_is_kept_as_sent() {
        let foreman = b"5a3e4f0c-1b2d-4c6e-8f90-a1b2c3d4e5f6";
        assert_eq!(
            RequestId::sanitise(foreman).unwrap().as_str(),
            "5a3e4f0c-1b2d-4c6e-8f90-a1b2c3d4e5f6"
        );
    }

    #[test]
    fn hostile_ids_are_cleaned_or_refused() {
        assert_eq!(
            RequestId::sanitise(b"req\t1\r\n\x00\x1b[31m \x7f\xff\xfe")
                .unwrap()
                .as_str(),
            "req1[31m"
        );
        let long = vec![b'a'; 10 * 1024];
        assert_eq!(RequestId::sanitise(&long).unwrap().as_str().len(), 128);
        for nothing in [&b""[..], b"   ", b"\t\r\n", b"\xff\xfe\x80", "é".as_bytes()] {
            assert_eq!(RequestId::sanitise(nothing), None, "{nothing:?}");
        }
    }

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let id = RequestId::from_random([0xff; 16]);
        // Version nibble 4 and variant bits 10: the rest is the random bytes.
        assert_eq!(id.as_str(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(
            RequestId::from_random([0; 16]).as_str(),
            "00000000-0000-4000-8000-000000000000"
        );
        let a = RequestId::generate().unwrap();
        let b = RequestId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 36);
        assert!(a.header_value().is_some());
    }
}
