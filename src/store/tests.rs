//! The store test suite, run against both backends: SQLite in a temp file and a real
//! PostgreSQL server (a scratch database per test). "Another" store on the same database
//! stands for a second replica (or the CLI next to the service).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use super::postgres::PostgresStore;
use super::scratch::ScratchDatabase;
use super::sqlite::SqliteStore;
use super::*;
use crate::domain::certname::Certname;
use crate::domain::decision::Verdict;
use crate::domain::event::{kind, Actor};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Fixture {
    backend: Backend,
    store: Arc<dyn Store>,
    sqlite_path: PathBuf,
    database: Option<ScratchDatabase>,
}

/// The fixture's temp dir, removed when the test ends, passed or failed.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Fixture {
    async fn new(backend: Backend, name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "autosign-store-{}-{name}-{backend:?}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sqlite_path = dir.join("db.sqlite");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(ScratchDatabase::create(name).unwrap()),
        };
        let mut fixture = Fixture {
            backend,
            store: Arc::new(SqliteStore::open(&sqlite_path).await.unwrap()),
            sqlite_path,
            database,
        };
        fixture.store = fixture.another().await;
        fixture
    }

    /// A second store on the same database, as another replica opens it.
    async fn another(&self) -> Arc<dyn Store> {
        match (&self.database, self.backend) {
            (Some(db), Backend::Postgres) => {
                Arc::new(PostgresStore::open(&db.url, 8).await.unwrap())
            }
            _ => Arc::new(SqliteStore::open(&self.sqlite_path).await.unwrap()),
        }
    }
}

fn run<F, Fut>(backend: Backend, name: &str, test: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let fixture = Fixture::new(backend, name).await;
            // Held here: a test's future captures only the fixture fields it uses.
            let _dir = RemoveOnDrop(fixture.sqlite_path.parent().unwrap().to_path_buf());
            test(fixture).await;
        });
}

/// One test per backend.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::run(super::Backend::Sqlite, stringify!($name), super::$name);
            }
            #[test]
            fn postgres() {
                super::run(super::Backend::Postgres, stringify!($name), super::$name);
            }
        }
    };
}

fn event(at: i64) -> NewEvent {
    NewEvent::new(at, kind::TOKEN_ISSUED, &Actor::new("test", None))
}

fn approval(at: i64, certname: &str) -> NewEvent {
    NewEvent {
        decision: Some(Verdict::Approved),
        ..NewEvent::new(at, kind::DECISION, &Actor::new("test", None)).certname(certname)
    }
}

async fn token(store: &dyn Store, name: &str, secret: &str, now: i64) -> TokenRecord {
    let request =
        TokenRequest::new(Certname::parse(name).unwrap(), vec![], None, Some(3600)).unwrap();
    store
        .issue_token(&request, &TokenHash::of(secret), now, event(now))
        .await
        .unwrap()
}

fn certificate(serial: u64, certname: &str) -> CaCertificate {
    CaCertificate {
        serial,
        certname: certname.into(),
        cert_pem: format!("-----BEGIN CERTIFICATE-----\n{serial}\n-----END CERTIFICATE-----\n"),
        fingerprint: format!("FP:{serial}"),
        not_before: 1000,
        not_after: 2000,
        issued_at: 1000,
        revoked_at: None,
        revocation_reason: None,
    }
}

on_both!(a_token_is_consumed_once_and_only_while_live);
async fn a_token_is_consumed_once_and_only_while_live(f: Fixture) {
    let store = f.store.as_ref();
    let t = token(store, "a.example.com", "s1", 1000).await;
    assert_eq!(t.expires_at, 1000 + 3600);
    assert!(store
        .consume_token(t.id, 1001, event(1001))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .consume_token(t.id, 1002, event(1002))
        .await
        .unwrap()
        .is_none());
    let found = store
        .find_token(&TokenHash::of("s1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.used_at, Some(1001));

    let late = token(store, "b.example.com", "s2", 1000).await;
    assert!(
        store
            .consume_token(late.id, 1000 + 3600, event(5000))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    let revoked = token(store, "c.example.com", "s3", 1000).await;
    let ids = store
        .revoke_tokens(&TokenSelector::Id(revoked.id), 1001, event(1001))
        .await
        .unwrap();
    assert_eq!(ids, [revoked.id]);
    assert!(store
        .consume_token(revoked.id, 1002, event(1002))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .find_token(&TokenHash::of("unknown"))
        .await
        .unwrap()
        .is_none());
    let by_name = store
        .revoke_tokens(
            &TokenSelector::Certname("b.example.com".into()),
            1001,
            event(1001),
        )
        .await
        .unwrap();
    assert_eq!(by_name, [late.id]);
    assert_eq!(store.live_token_count(1001).await.unwrap(), 0);
}

on_both!(issuing_keeps_the_hosts_earlier_tokens_valid);
async fn issuing_keeps_the_hosts_earlier_tokens_valid(f: Fixture) {
    // As Foreman's smart proxy: a second token for a host being built leaves the first
    // (already rendered into the host) valid; one of them is consumed.
    let store = f.store.as_ref();
    let first = token(store, "a.example.com", "s1", 1000).await;
    let second = token(store, "a.example.com", "s2", 1010).await;
    let live = store
        .list_tokens(Some("a.example.com"), Some(1020))
        .await
        .unwrap();
    assert_eq!(
        live.iter().map(|t| t.id).collect::<Vec<_>>(),
        [second.id, first.id]
    );
    let events = store
        .list_events(&EventFilter {
            kind: Some(kind::TOKEN_REVOKED.into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(events.is_empty(), "nothing revoked: {events:?}");
    assert!(store
        .consume_token(first.id, 1030, approval(1030, "a.example.com"))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .list_tokens(Some("a.example.com"), Some(1040))
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        [second.id],
        "the other stays listed and revocable"
    );
}

on_both!(concurrent_consumers_on_two_stores_approve_once);
async fn concurrent_consumers_on_two_stores_approve_once(f: Fixture) {
    let other = f.another().await;
    let t = token(f.store.as_ref(), "race.example.com", "race", 1000).await;
    let attempts = (0..64).map(|i| {
        let store = if i % 2 == 0 {
            f.store.clone()
        } else {
            other.clone()
        };
        async move {
            store
                .consume_token(t.id, 1001, approval(1001, "race.example.com"))
                .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(won, 1, "exactly one consumer wins");
    let approvals = f
        .store
        .list_events(&EventFilter {
            certname: Some("race.example.com".into()),
            decision: Some(Verdict::Approved),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(approvals.len(), 1, "only the winner's approval is recorded");
}

on_both!(serials_are_unique_across_stores);
async fn serials_are_unique_across_stores(f: Fixture) {
    assert_eq!(f.store.next_serial().await.unwrap(), 1);
    let other = f.another().await;
    assert_eq!(
        other.next_serial().await.unwrap(),
        2,
        "continues, not restarts"
    );
    let draws = (0..200).map(|i| {
        let store = if i % 2 == 0 {
            f.store.clone()
        } else {
            other.clone()
        };
        async move { store.next_serial().await.unwrap() }
    });
    let mut serials = futures_util::future::join_all(draws).await;
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(serials.len(), 200);
    assert_eq!(serials.first(), Some(&3));
    assert_eq!(serials.last(), Some(&202));
}

on_both!(deliveries_are_claimed_by_one_worker);
async fn deliveries_are_claimed_by_one_worker(f: Fixture) {
    let other = f.another().await;
    for store in [&f.store, &other] {
        store
            .set_webhook_targets(vec![
                ("all".into(), vec![]),
                ("decisions".into(), vec![kind::DECISION.into()]),
            ])
            .await
            .unwrap();
    }
    for i in 0..10 {
        f.store
            .record_event(approval(1000 + i, "h.example.com"))
            .await
            .unwrap();
        other.record_event(event(1000 + i)).await.unwrap();
    }
    // 20 events to "all", the 10 decisions also to "decisions".
    assert_eq!(f.store.webhook_backlog().await.unwrap(), 30);
    let (a, b) = futures_util::future::join(
        f.store.claim_deliveries(2000, 100, 60),
        other.claim_deliveries(2000, 100, 60),
    )
    .await;
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        30,
        "every delivery claimed once: {} + {}",
        a.len(),
        b.len()
    );
    assert_eq!(a.len() + b.len(), 30);
    let keys: std::collections::HashSet<&str> = a
        .iter()
        .chain(&b)
        .map(|d| d.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), 30);
    assert!(a
        .iter()
        .chain(&b)
        .filter(|d| d.target == "decisions")
        .all(|d| d.event.kind == kind::DECISION));
    assert!(
        f.store
            .claim_deliveries(2000, 100, 60)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let first = a.first().or(b.first()).unwrap().clone();
    f.store
        .delivery_failed(first.id, 2100, "receiver down")
        .await
        .unwrap();
    for d in a.iter().chain(&b).filter(|d| d.id != first.id) {
        other.delivery_done(d.id, 2001).await.unwrap();
    }
    assert_eq!(f.store.webhook_backlog().await.unwrap(), 1);
    assert!(
        f.store
            .claim_deliveries(2050, 10, 60)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let retried = other.claim_deliveries(2100, 10, 60).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].idempotency_key, first.idempotency_key);
}

on_both!(the_crl_number_only_grows);
async fn the_crl_number_only_grows(f: Fixture) {
    let other = f.another().await;
    assert!(f.store.ca_crl().await.unwrap().is_none());
    let n1 = f.store.ca_next_crl_number().await.unwrap();
    let n2 = other.ca_next_crl_number().await.unwrap();
    assert!(n2 > n1);
    other.ca_store_crl(n2, b"newer", 1000).await.unwrap();
    f.store.ca_store_crl(n1, b"older", 1001).await.unwrap();
    assert_eq!(
        f.store.ca_crl().await.unwrap(),
        Some((n2, b"newer".to_vec()))
    );
}

on_both!(a_revocation_is_recorded_once_and_listed);
async fn a_revocation_is_recorded_once_and_listed(f: Fixture) {
    let other = f.another().await;
    let store = f.store.as_ref();
    store
        .ca_add_certificate(
            &certificate(7, "web.example.com"),
            Some("{}".into()),
            false,
            event(1000),
        )
        .await
        .unwrap();
    let revoked_event = || NewEvent::new(1100, "certificate_revoked", &Actor::new("t", None));
    let (a, b) = futures_util::future::join(
        store.ca_revoke("web.example.com", 1100, 1, revoked_event()),
        other.ca_revoke("web.example.com", 1100, 1, revoked_event()),
    )
    .await;
    assert_eq!((a.unwrap(), b.unwrap()), (Some(7), Some(7)));
    let events = store
        .list_events(&EventFilter {
            kind: Some("certificate_revoked".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "one revocation, one event");
    assert_eq!(
        store.ca_revocations().await.unwrap(),
        [Revocation {
            serial: 7,
            revoked_at: 1100,
            reason: Some(1)
        }]
    );
    assert!(store
        .ca_revoke("absent.example.com", 1100, 1, revoked_event())
        .await
        .unwrap()
        .is_none());
    let rows = store.ca_status_rows().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].revoked);
    assert!(store
        .ca_clean("web.example.com", 1200, event(1200))
        .await
        .unwrap());
    assert!(store
        .ca_certificate("web.example.com")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.ca_revocations().await.unwrap().len(),
        1,
        "still on the CRL"
    );
}

on_both!(the_current_certificate_is_the_newest);
async fn the_current_certificate_is_the_newest(f: Fixture) {
    let store = f.store.as_ref();
    for (serial, name) in [
        (3, "b.example.com"),
        (5, "a.example.com"),
        (9, "b.example.com"),
    ] {
        store
            .ca_add_certificate(&certificate(serial, name), None, true, event(1000))
            .await
            .unwrap();
    }
    let current = store.ca_certificates().await.unwrap();
    assert_eq!(
        current
            .iter()
            .map(|c| (c.certname.as_str(), c.serial))
            .collect::<Vec<_>>(),
        [("a.example.com", 5), ("b.example.com", 9)]
    );
    assert_eq!(
        store
            .ca_certificate("b.example.com")
            .await
            .unwrap()
            .unwrap()
            .serial,
        9
    );
    let request = CaRequest {
        certname: "c.example.com".into(),
        csr_pem: "csr".into(),
        fingerprint: "FP".into(),
        received_at: 1000,
        reason: Some("no_token".into()),
        message: None,
    };
    assert!(store.ca_add_request(&request, event(1000)).await.unwrap());
    assert!(
        !store.ca_add_request(&request, event(1000)).await.unwrap(),
        "one per certname"
    );
    assert_eq!(
        store.ca_request("c.example.com").await.unwrap(),
        Some(request.clone())
    );
    store
        .ca_add_certificate(&certificate(11, "c.example.com"), None, false, event(1000))
        .await
        .unwrap();
    assert!(
        store.ca_requests().await.unwrap().is_empty(),
        "signing drops the request"
    );
}

on_both!(the_ca_identity_is_claimed_once_and_cleared_by_a_reset);
async fn the_ca_identity_is_claimed_once_and_cleared_by_a_reset(f: Fixture) {
    let other = f.another().await;
    let a = CaIdentity {
        fingerprint: "AA".into(),
        subject: "CA A".into(),
    };
    let b = CaIdentity {
        fingerprint: "BB".into(),
        subject: "CA B".into(),
    };
    assert_eq!(f.store.ca_identity().await.unwrap(), None);
    assert_eq!(f.store.claim_ca_identity(&a, 1000).await.unwrap(), a);
    assert_eq!(
        other.claim_ca_identity(&b, 1001).await.unwrap(),
        a,
        "the first claim holds"
    );
    f.store
        .ca_add_certificate(&certificate(2, "x.example.com"), None, false, event(1000))
        .await
        .unwrap();
    let reset = NewEvent::new(1002, "ca_regenerated", &Actor::new("t", None));
    assert_eq!(other.ca_reset(reset).await.unwrap(), ["x.example.com"]);
    assert_eq!(f.store.ca_identity().await.unwrap(), None);
    assert_eq!(other.claim_ca_identity(&b, 1003).await.unwrap(), b);
}

on_both!(an_import_over_foreign_state_writes_nothing);
async fn an_import_over_foreign_state_writes_nothing(f: Fixture) {
    let store = f.store.as_ref();
    store
        .ca_add_certificate(&certificate(2, "own.example.com"), None, false, event(1000))
        .await
        .unwrap();
    store
        .ca_add_certificate(
            &certificate(3, "agent.example.com"),
            None,
            false,
            event(1000),
        )
        .await
        .unwrap();
    let import = CaImport {
        certificates: vec![(certificate(40, "imported.example.com"), None)],
        next_serial: 100,
        crl_number: 10,
        ..Default::default()
    };
    let imported = NewEvent::new(1000, "ca_imported", &Actor::new("t", None));
    let err = store
        .ca_import(
            import.clone(),
            vec!["own.example.com".into()],
            imported.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.ca_certificates().await.unwrap().len(),
        2,
        "nothing changed"
    );
    assert_eq!(store.next_serial().await.unwrap(), 1);

    store
        .ca_clean("agent.example.com", 1001, event(1001))
        .await
        .unwrap();
    let allowed = vec!["own.example.com".into(), "agent.example.com".into()];
    store.ca_import(import, allowed, imported).await.unwrap();
    let names: Vec<String> = store
        .ca_certificates()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.certname)
        .collect();
    assert_eq!(names, ["imported.example.com"]);
    assert_eq!(
        store.next_serial().await.unwrap(),
        100,
        "serials continue the import's"
    );
    assert!(store.ca_next_crl_number().await.unwrap() > 10);
}

on_both!(event_pages_filter_and_follow_cursors);
async fn event_pages_filter_and_follow_cursors(f: Fixture) {
    let store = f.store.as_ref();
    let mut ids = Vec::new();
    for i in 0..6 {
        let name = if i % 2 == 0 {
            "even.example.com"
        } else {
            "odd.example.com"
        };
        let mut e = approval(1000 + i, name);
        if i == 5 {
            e.decision = Some(Verdict::Rejected);
            e.details = Some(serde_json::json!({ "reason": "unknown_token" }));
        }
        ids.push(store.record_event(e).await.unwrap());
    }
    let page = |filter: EventFilter| async move {
        store
            .list_events(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        page(EventFilter {
            limit: 2,
            ..Default::default()
        })
        .await,
        [ids[5], ids[4]]
    );
    assert_eq!(
        page(EventFilter {
            limit: 2,
            before_id: Some(ids[4]),
            ..Default::default()
        })
        .await,
        [ids[3], ids[2]]
    );
    assert_eq!(
        page(EventFilter {
            limit: 10,
            after_id: Some(ids[3]),
            ascending: true,
            ..Default::default()
        })
        .await,
        [ids[4], ids[5]]
    );
    assert_eq!(
        page(EventFilter {
            certname: Some("odd.example.com".into()),
            limit: 10,
            ..Default::default()
        })
        .await,
        [ids[5], ids[3], ids[1]]
    );
    assert_eq!(
        page(EventFilter {
            since: Some(1002),
            until: Some(1003),
            limit: 10,
            ..Default::default()
        })
        .await,
        [ids[3], ids[2]]
    );
    let rejected = store
        .list_events(&EventFilter {
            decision: Some(Verdict::Rejected),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].details,
        Some(serde_json::json!({ "reason": "unknown_token" }))
    );
    assert_eq!(
        store
            .count_rejections("odd.example.com", 1000, 10)
            .await
            .unwrap(),
        1
    );
    // The count stops at the cap and reads only the window.
    for i in 0..4 {
        let mut e = approval(2000 + i, "odd.example.com");
        e.decision = Some(Verdict::Rejected);
        store.record_event(e).await.unwrap();
    }
    assert_eq!(
        store
            .count_rejections("odd.example.com", 1000, 3)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .count_rejections("odd.example.com", 1000, 10)
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        store
            .count_rejections("odd.example.com", 2002, 10)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count_rejections("odd.example.com", 1000, 0)
            .await
            .unwrap(),
        0
    );
    assert!(store
        .has_event("even.example.com", kind::DECISION, 1004)
        .await
        .unwrap());
    assert!(!store
        .has_event("even.example.com", kind::DECISION, 1005)
        .await
        .unwrap());
}

on_both!(expired_tokens_are_recorded_once);
async fn expired_tokens_are_recorded_once(f: Fixture) {
    let other = f.another().await;
    let t = token(f.store.as_ref(), "late.example.com", "late", 1000).await;
    let (a, b) = futures_util::future::join(
        f.store
            .record_expired_tokens(t.expires_at, "sweeper".into()),
        other.record_expired_tokens(t.expires_at, "sweeper".into()),
    )
    .await;
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(
        f.store
            .record_expired_tokens(t.expires_at + 60, "sweeper".into())
            .await
            .unwrap(),
        0
    );
}

on_both!(allow_entries_are_added_once);
async fn allow_entries_are_added_once(f: Fixture) {
    let store = f.store.as_ref();
    let record = AllowRecord {
        pattern: "*.example.com".into(),
        alt_names: vec![],
        created_at: 1000,
        created_by: "test".into(),
    };
    assert!(store.add_allow_entry(&record, event(1000)).await.unwrap());
    assert!(!store.add_allow_entry(&record, event(1000)).await.unwrap());
    assert_eq!(store.list_allow_entries().await.unwrap(), [record]);
    assert!(store
        .remove_allow_entry("*.example.com", event(1001))
        .await
        .unwrap());
    assert!(!store
        .remove_allow_entry("*.example.com", event(1001))
        .await
        .unwrap());
}

#[test]
fn sqlite_refuses_a_newer_schema() {
    run(Backend::Sqlite, "newer", |f| async move {
        drop(f.store);
        let conn = rusqlite::Connection::open(&f.sqlite_path).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)",
            [],
        )
        .unwrap();
        drop(conn);
        let err = SqliteStore::open(&f.sqlite_path).await.err().unwrap();
        assert!(err.to_string().contains("newer than this binary"), "{err}");
    });
}

#[test]
fn postgres_refuses_a_newer_schema() {
    run(Backend::Postgres, "newer", |f| async move {
        let db = f.database.as_ref().unwrap();
        let store = PostgresStore::open(&db.url, 1).await.unwrap();
        store
            .batch_execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
            .await
            .unwrap();
        let err = PostgresStore::open(&db.url, 1).await.err().unwrap();
        assert!(err.to_string().contains("newer than this binary"), "{err}");
    });
}

#[test]
fn an_unreachable_postgres_is_unavailable_not_a_hang() {
    run(Backend::Sqlite, "unreachable", |_| async move {
        let started = std::time::Instant::now();
        let err = PostgresStore::open("postgres://postgres@127.0.0.1:1/none", 1)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    });
}

#[test]
fn sqlite_state_migrates_to_postgres_and_back() {
    run(Backend::Sqlite, "migrate", |f| async move {
        let store = f.store.as_ref();
        store
            .set_webhook_targets(vec![("hook".into(), vec![])])
            .await
            .unwrap();
        let used = token(store, "used.example.com", "u", 1000).await;
        store
            .consume_token(used.id, 1001, approval(1001, "used.example.com"))
            .await
            .unwrap();
        let live = token(store, "live.example.com", "l", 1000).await;
        store
            .add_allow_entry(
                &AllowRecord {
                    pattern: "*.lab".into(),
                    alt_names: vec![],
                    created_at: 1000,
                    created_by: "t".into(),
                },
                event(1000),
            )
            .await
            .unwrap();
        let serial = store.next_serial().await.unwrap();
        store
            .ca_add_certificate(
                &certificate(serial, "used.example.com"),
                Some("{\"s\":1}".into()),
                false,
                event(1002),
            )
            .await
            .unwrap();
        store
            .ca_revoke("used.example.com", 1003, 4, event(1003))
            .await
            .unwrap();
        let n = store.ca_next_crl_number().await.unwrap();
        store
            .ca_store_crl(n, &[0x30, 0x03, 0x02, 0x01, 0x01], 1003)
            .await
            .unwrap();
        store
            .claim_ca_identity(
                &CaIdentity {
                    fingerprint: "FF".into(),
                    subject: "CA".into(),
                },
                1000,
            )
            .await
            .unwrap();
        let events_before = store
            .list_events(&EventFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        drop(f.store);

        let target_db = ScratchDatabase::create("migrate_target").unwrap();
        let target = PostgresStore::open(&target_db.url, 4).await.unwrap();
        let counts = migrate::sqlite_to_postgres(&f.sqlite_path, &target, &mut |_, _| {})
            .await
            .unwrap();
        let count = |name: &str| counts.iter().find(|(t, _)| *t == name).unwrap().1;
        assert_eq!(count("build_tokens"), 2);
        assert_eq!(count("events"), events_before.len() as u64);
        assert_eq!(count("webhook_deliveries"), events_before.len() as u64);

        // The copy is the state: same answers, and counters continue.
        let pg: &dyn Store = &target;
        assert_eq!(
            pg.list_events(&EventFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap(),
            events_before
        );
        assert!(
            pg.consume_token(used.id, 1100, event(1100))
                .await
                .unwrap()
                .is_none(),
            "stays used"
        );
        assert!(pg
            .consume_token(live.id, 1100, event(1100))
            .await
            .unwrap()
            .is_some());
        assert_eq!(pg.next_serial().await.unwrap(), serial + 1);
        assert_eq!(pg.ca_crl().await.unwrap().unwrap().0, n);
        assert!(pg.ca_next_crl_number().await.unwrap() > n);
        assert_eq!(pg.ca_identity().await.unwrap().unwrap().fingerprint, "FF");
        assert_eq!(pg.ca_revocations().await.unwrap()[0].reason, Some(4));
        let newer = token(pg, "new.example.com", "n", 1200).await;
        assert!(newer.id > live.id, "ids continue after the copied ones");

        // A second migration into a database that holds state is refused.
        let err = migrate::sqlite_to_postgres(&f.sqlite_path, &target, &mut |_, _| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");

        // And back: the PostgreSQL state as an SQLite backup file.
        let backup = f.sqlite_path.with_file_name("backup.sqlite");
        pg.backup_to(&backup).await.unwrap();
        let restored = SqliteStore::open(&backup).await.unwrap();
        assert_eq!(restored.list_tokens(None, None).await.unwrap().len(), 3);
        assert_eq!(
            restored
                .ca_certificate("used.example.com")
                .await
                .unwrap()
                .unwrap()
                .serial,
            serial
        );
        assert!(
            pg.backup_to(&backup).await.is_err(),
            "never overwrites a file"
        );
    });
}

on_both!(a_name_holds_one_live_certificate_whoever_inserts);
async fn a_name_holds_one_live_certificate_whoever_inserts(f: Fixture) {
    // 32 certificates for one name, at once, through two stores (two replicas): the
    // database keeps one; the others are refused with puppetserver's message.
    let other = f.another().await;
    let store = f.store.as_ref();
    let attempts = (0..32u64).map(|i| {
        let s: &dyn Store = if i % 2 == 0 { store } else { other.as_ref() };
        async move {
            s.ca_add_certificate(
                &certificate(100 + i, "twin.example.com"),
                None,
                false,
                event(1000),
            )
            .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| matches!(
        e,
        StoreError::Conflict(m) if m == "twin.example.com already has a signed certificate; ignoring certificate request"
    )));
    let live: Vec<_> = store
        .ca_certificates()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.certname == "twin.example.com")
        .collect();
    assert_eq!(live.len(), 1);

    // A replacement supersedes; revoking the name revokes both.
    store
        .ca_add_certificate(
            &certificate(200, "twin.example.com"),
            None,
            true,
            event(1001),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .ca_certificate("twin.example.com")
            .await
            .unwrap()
            .map(|c| c.serial),
        Some(200)
    );
    let before = store.ca_revocation_count().await.unwrap();
    assert_eq!(
        store
            .ca_revoke("twin.example.com", 1100, 1, event(1100))
            .await
            .unwrap(),
        Some(200)
    );
    assert_eq!(store.ca_revocation_count().await.unwrap(), before + 2);
    // Revoked, a new certificate for the name may be issued again.
    store
        .ca_add_certificate(
            &certificate(300, "twin.example.com"),
            None,
            false,
            event(1200),
        )
        .await
        .unwrap();
}

#[test]
fn sqlite_on_a_full_disk_keeps_what_it_acknowledged_and_nothing_else() {
    run(Backend::Sqlite, "full-disk", |f| async move {
        let sqlite = SqliteStore::open(&f.sqlite_path).await.unwrap();
        sqlite.limit_pages(40).await.unwrap();
        let sqlite = Arc::new(sqlite);
        // Concurrent writers (so batches hold several jobs) until the disk is full.
        let padding = "x".repeat(3000);
        let mut attempts = Vec::new();
        for round in 0..20 {
            let writes = (0..16).map(|i| {
                let store = sqlite.clone();
                let message = format!("event {round}-{i} {padding}");
                async move {
                    let e = NewEvent::new(1000, kind::TOKEN_ISSUED, &Actor::new("t", None))
                        .certname(format!("h{round}-{i}.example.com"))
                        .message(message);
                    (
                        format!("h{round}-{i}.example.com"),
                        store.record_event(e).await,
                    )
                }
            });
            attempts.extend(futures_util::future::join_all(writes).await);
        }
        let acknowledged: Vec<&String> = attempts
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .collect();
        let refused: Vec<&String> = attempts
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(n, _)| n)
            .collect();
        assert!(!acknowledged.is_empty(), "some writes fit");
        assert!(!refused.is_empty(), "the disk filled up");
        // Reopen without the limit: exactly the acknowledged events are there.
        drop(sqlite);
        let reopened = SqliteStore::open(&f.sqlite_path).await.unwrap();
        let stored: std::collections::HashSet<String> = reopened
            .list_events(&EventFilter {
                kind: Some(kind::TOKEN_ISSUED.into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| e.certname)
            .collect();
        for name in &acknowledged {
            assert!(stored.contains(*name), "acknowledged but lost: {name}");
        }
        for name in &refused {
            assert!(!stored.contains(*name), "refused but kept: {name}");
        }
        // The store still works once there is room.
        reopened.record_event(event(2000)).await.unwrap();
        reopened.health().await.unwrap();
    });
}

#[test]
fn sqlite_fails_a_whole_batch_that_sqlite_rolled_back() {
    // SQLite rolls a transaction back by itself after some errors. A job doing exactly
    // that in the middle of a batch: the jobs before it lost their changes and the jobs
    // after it must not run in autocommit; every caller hears the truth.
    run(Backend::Sqlite, "rolled-back", |f| async move {
        let sqlite = Arc::new(SqliteStore::open(&f.sqlite_path).await.unwrap());
        // Hold the writer so the next jobs queue up into one batch.
        let slow = {
            let s = sqlite.clone();
            tokio::spawn(async move {
                s.write_job(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok(())
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let write = |name: &'static str| {
            let s = sqlite.clone();
            tokio::spawn(async move {
                let e =
                    NewEvent::new(1000, kind::TOKEN_ISSUED, &Actor::new("t", None)).certname(name);
                (name, s.record_event(e).await.is_ok())
            })
        };
        let before = write("before.example.com");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let rollback = {
            let s = sqlite.clone();
            tokio::spawn(async move {
                s.write_job(|conn| {
                    conn.execute_batch("ROLLBACK")
                        .map_err(|e| StoreError::Unavailable(e.to_string()))
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let after = write("after.example.com");
        slow.await.unwrap().unwrap();
        assert!(rollback.await.unwrap().is_err());
        let outcomes = [before.await.unwrap(), after.await.unwrap()];
        let stored: std::collections::HashSet<String> = sqlite
            .list_events(&EventFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| e.certname)
            .collect();
        for (name, acknowledged) in outcomes {
            assert_eq!(
                stored.contains(name),
                acknowledged,
                "{name}: acknowledged {acknowledged}, stored {}",
                stored.contains(name)
            );
            assert!(!acknowledged, "{name}: the batch was rolled back as one");
        }
        // The writer goes on with the next batch.
        sqlite.record_event(event(2000)).await.unwrap();
        sqlite.health().await.unwrap();
    });
}

on_both!(operator_accounts_sessions_and_failures);
async fn operator_accounts_sessions_and_failures(f: Fixture) {
    let store = f.store.as_ref();
    let record = OperatorRecord {
        name: "alice".into(),
        created_at: 1000,
        created_by: "cli:root".into(),
    };
    assert!(store
        .add_operator(&record, "$argon2id$x", event(1000))
        .await
        .unwrap());
    assert!(!store
        .add_operator(&record, "$argon2id$y", event(1000))
        .await
        .unwrap());
    assert_eq!(
        store.list_operators().await.unwrap(),
        std::slice::from_ref(&record)
    );
    assert_eq!(
        store
            .operator_password_hash("alice")
            .await
            .unwrap()
            .as_deref(),
        Some("$argon2id$x")
    );
    assert_eq!(store.operator_password_hash("bob").await.unwrap(), None);

    // A session is found by its hash while not idle, on another replica too.
    let session = OperatorSession {
        operator: "alice".into(),
        via: "password".into(),
        created_at: 1000,
        last_seen: 1000,
    };
    store
        .create_session("h1", &session, 0, event(1000))
        .await
        .unwrap();
    let other = f.another().await;
    assert_eq!(
        other.find_session("h1", 900).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        other.find_session("h1", 1001).await.unwrap(),
        None,
        "idle too long"
    );
    other.touch_session("h1", 2000).await.unwrap();
    assert_eq!(
        store
            .find_session("h1", 1500)
            .await
            .unwrap()
            .unwrap()
            .last_seen,
        2000
    );
    // Starting a session sweeps the idle ones.
    store
        .create_session("h2", &session, 2500, event(3000))
        .await
        .unwrap();
    assert_eq!(store.find_session("h1", 0).await.unwrap(), None);
    assert!(store.end_session("h2", event(3001)).await.unwrap());
    assert!(!store.end_session("h2", event(3001)).await.unwrap());

    // A certificate session needs no account; removing an account ends its sessions.
    let cert = OperatorSession {
        operator: "admin-host".into(),
        via: "certificate".into(),
        ..session.clone()
    };
    store
        .create_session("c1", &cert, 0, event(1000))
        .await
        .unwrap();
    store
        .create_session("h3", &session, 0, event(1000))
        .await
        .unwrap();
    assert!(store.find_session("c1", 0).await.unwrap().is_some());
    assert!(store.remove_operator("alice", event(1100)).await.unwrap());
    assert!(!store.remove_operator("alice", event(1100)).await.unwrap());
    assert_eq!(store.find_session("h3", 0).await.unwrap(), None);
    assert!(store.find_session("c1", 0).await.unwrap().is_some());

    // Failures count up, start again when stale, and clear.
    assert_eq!(store.login_failures("account:alice").await.unwrap(), None);
    assert_eq!(
        store
            .record_login_failure("account:alice", 100, 0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_login_failure("account:alice", 101, 0)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.login_failures("account:alice").await.unwrap(),
        Some(LoginFailures {
            failures: 2,
            last_failure: 101
        })
    );
    assert_eq!(
        store
            .record_login_failure("account:alice", 9000, 5000)
            .await
            .unwrap(),
        1
    );
    store.clear_login_failures("account:alice").await.unwrap();
    assert_eq!(store.login_failures("account:alice").await.unwrap(), None);
}

on_both!(the_pages_queries_count_chart_and_page);
async fn the_pages_queries_count_chart_and_page(f: Fixture) {
    let store = f.store.as_ref();
    let rejected = |at: i64, name: &str, reason: &str| NewEvent {
        decision: Some(Verdict::Rejected),
        reason: Some(reason.into()),
        ..NewEvent::new(at, kind::DECISION, &Actor::new("test", None)).certname(name)
    };
    store
        .record_event(approval(3600, "a.example.com"))
        .await
        .unwrap();
    store
        .record_event(approval(3700, "a.example.com"))
        .await
        .unwrap();
    store
        .record_event(rejected(7300, "b.example.com", "token_unknown"))
        .await
        .unwrap();
    store
        .record_event(rejected(7400, "b.example.com", "not_authorized"))
        .await
        .unwrap();
    assert_eq!(store.count_decisions("approved", 0).await.unwrap(), 2);
    assert_eq!(store.count_decisions("rejected", 7350).await.unwrap(), 1);
    assert_eq!(store.count_kind(kind::DECISION, 0).await.unwrap(), 4);
    assert_eq!(
        store
            .decisions_per_hour("approved", 0, 10_000)
            .await
            .unwrap(),
        [(3600, 2)]
    );
    assert_eq!(
        store.decisions_per_hour("rejected", 0, 7350).await.unwrap(),
        [(7200, 1)]
    );
    let by_reason = store
        .list_events(&EventFilter {
            reason: Some("token_unknown".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_reason.len(), 1);
    assert_eq!(by_reason[0].at, 7300);

    // Certificates: pages by name, state and expiry; expiring soonest first; globs.
    for (serial, name, not_after) in [
        (1, "web1.example.com", 5000),
        (2, "web2.example.com", 9000),
        (3, "db1.example.com", 20_000),
        (4, "web_x.lab", 30_000),
    ] {
        let cert = CaCertificate {
            not_after,
            ..certificate(serial, name)
        };
        store
            .ca_add_certificate(&cert, None, false, event(1000))
            .await
            .unwrap();
    }
    store
        .ca_revoke("db1.example.com", 1100, 4, event(1100))
        .await
        .unwrap();
    let page = |q: CertQuery| async move {
        store
            .ca_certificate_page(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.certname)
            .collect::<Vec<_>>()
    };
    let all = CertQuery {
        name_prefix: None,
        state: None,
        expires_before: None,
        now: 6000,
        after: None,
        limit: 50,
    };
    assert_eq!(
        page(all.clone()).await,
        [
            "db1.example.com",
            "web1.example.com",
            "web2.example.com",
            "web_x.lab"
        ]
    );
    assert_eq!(
        page(CertQuery {
            name_prefix: Some("web".into()),
            limit: 2,
            ..all.clone()
        })
        .await,
        ["web1.example.com", "web2.example.com"]
    );
    assert_eq!(
        page(CertQuery {
            name_prefix: Some("web_".into()),
            ..all.clone()
        })
        .await,
        ["web_x.lab"],
        "LIKE's wildcards are literal in a prefix"
    );
    assert_eq!(
        page(CertQuery {
            after: Some("web1.example.com".into()),
            ..all.clone()
        })
        .await,
        ["web2.example.com", "web_x.lab"]
    );
    assert_eq!(
        page(CertQuery {
            state: Some(CertState::Revoked),
            ..all.clone()
        })
        .await,
        ["db1.example.com"]
    );
    assert_eq!(
        page(CertQuery {
            state: Some(CertState::Expired),
            ..all.clone()
        })
        .await,
        ["web1.example.com"]
    );
    assert_eq!(
        page(CertQuery {
            state: Some(CertState::Valid),
            expires_before: Some(10_000),
            ..all.clone()
        })
        .await,
        ["web2.example.com"]
    );
    let (expiring, n) = store.ca_expiring(4000, 25_000, 1).await.unwrap();
    assert_eq!(n, 2, "the revoked one does not expire");
    assert_eq!(expiring[0].certname, "web1.example.com");
    assert!(
        expiring[0].cert_pem.is_empty(),
        "listings leave the PEM out"
    );
    assert_eq!(
        store.ca_recent_certnames(2).await.unwrap(),
        ["web_x.lab", "db1.example.com"],
        "newest first"
    );
}
