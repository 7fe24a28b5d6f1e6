//! The whole decision pipeline (parse, every policy rule, allow-list and token lookups, the
//! atomic consume, the event) on a real SQLite store in memory-backed storage. The first
//! byte picks the certname asked about, the rest is the CSR.
#![no_main]

use std::sync::{Arc, OnceLock};

use autosign_proxy::app::App;
use autosign_proxy::config::Config;
use autosign_proxy::domain::event::Actor;
use autosign_proxy::domain::policy::{CsrInput, ReservedNames};
use autosign_proxy::store::sqlite::SqliteStore;
use autosign_proxy::store::Store;
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    app: App,
    actor: Actor,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        // scripts/fuzz points FUZZ_SCRATCH at a directory it removes afterwards.
        let base = match std::env::var_os("FUZZ_SCRATCH") {
            Some(dir) => std::path::PathBuf::from(dir),
            None if std::path::Path::new("/dev/shm").is_dir() => {
                std::path::PathBuf::from("/dev/shm")
            }
            None => std::env::temp_dir(),
        };
        let path = base.join(format!("decide-fuzz-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let actor = Actor::new("fuzz", None);
        let app = runtime.block_on(async {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.expect("store"));
            let app = App::new(
                store,
                Config::default(),
                ReservedNames::new(["puppet", "puppet.example.com"]),
            );
            app.add_allow_entry("*.allowed.example.com", Vec::new(), &actor)
                .await
                .expect("allow entry");
            app.issue_token("agent1.example.com", Vec::new(), None, None, &actor)
                .await
                .expect("token");
            app
        });
        World {
            runtime,
            app,
            actor,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((first, csr)) = data.split_first() else {
        return;
    };
    let certname = match first % 4 {
        0 => None,
        1 => Some("agent1.example.com"),
        2 => Some("web.allowed.example.com"),
        _ => Some("puppet"),
    };
    let w = world();
    let decided = w
        .runtime
        .block_on(w.app.decide(CsrInput::Bytes(csr), certname, &w.actor));
    if let Ok(d) = decided {
        // Nothing this fuzzer writes holds the token, so only the allow-list can approve,
        // and only a name under it.
        if d.decision.approved() {
            let name = d.decision.certname.as_deref().unwrap_or_default();
            assert!(name.ends_with(".allowed.example.com"), "approved {name}");
        }
    }
});
