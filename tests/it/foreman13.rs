//! Foreman as Foreman really behaves: hosts with alt names under `[policy]
//! token_alt_names`, tokens that stay valid while a host is built.

use std::time::Duration;

use autosign_proxy::domain::allowlist::AltNamePattern;

use crate::puppet;
use crate::support::*;

fn token_yaml(token: &str) -> String {
    format!("custom_attributes:\n  1.2.840.113549.1.9.7: \"{token}\"\n")
}

#[test]
fn a_real_agent_with_dns_alt_names_bootstraps_through_a_foreman_token() {
    if !puppet::require_puppet("a_real_agent_with_dns_alt_names_bootstraps_through_a_foreman_token")
    {
        return;
    }
    let svc = Service::start_with("foreman-alt-names", |c| {
        c.policy.token_alt_names = vec![
            AltNamePattern::parse("puppet").unwrap(),
            AltNamePattern::parse("*.compile.example.com").unwrap(),
            AltNamePattern::parse("IP:10.1.0.0/16").unwrap(),
        ];
    });
    let mut c = svc.client();
    // Foreman posts the host and gets a token; it cannot send alt names with it.
    let token = foreman_token(&mut c, "compile01.example.com");
    let dir = temp_dir("foreman-alt-names");
    let run = puppet::agent_bootstrap(
        &dir,
        "compile01.example.com",
        svc.port,
        Some(&token_yaml(&token)),
        Some("puppet,c1.compile.example.com,IP:10.1.2.3"),
    );
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let st = json(&c.ca().status("compile01.example.com"));
    assert_eq!(st["state"], "signed", "{st}");
    assert_eq!(
        st["subject_alt_names"],
        serde_json::json!([
            "IP:10.1.2.3",
            "DNS:c1.compile.example.com",
            "DNS:compile01.example.com",
            "DNS:puppet"
        ]),
        "{st}"
    );

    // A name outside the patterns still needs the token's own allowance.
    let token = foreman_token(&mut c, "compile02.example.com");
    let dir = temp_dir("foreman-alt-names-2");
    let run = puppet::agent_bootstrap_with(
        &dir,
        "compile02.example.com",
        svc.port,
        &puppet::AgentOptions {
            csr_attributes_yaml: Some(&token_yaml(&token)),
            dns_alt_names: Some("puppet,db.example.com"),
            timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    );
    assert!(!run.success, "must not be signed");
    let st = json(&c.ca().status("compile02.example.com"));
    assert_eq!(st["state"], "requested", "{st}");
    assert!(
        st["pending_reason"]
            .as_str()
            .unwrap()
            .contains("DNS:db.example.com"),
        "{st}"
    );
}

#[test]
fn token_alt_name_patterns_read_as_puppetserver_globs_and_ip_ranges() {
    use autosign_proxy::domain::token::AltName;
    let dns = |s: &str| AltName::Dns(s.into());
    let ip = |s: &str| AltName::Ip(s.parse().unwrap());
    let glob = AltNamePattern::parse("*.example.com").unwrap();
    assert!(glob.matches(&dns("a.example.com")));
    assert!(
        glob.matches(&dns("example.com")),
        "puppetserver's glob includes the domain"
    );
    assert!(!glob.matches(&dns("a.example.org")));
    assert!(!glob.matches(&ip("10.0.0.1")));
    let range = AltNamePattern::parse("IP:10.1.0.0/16").unwrap();
    assert!(range.matches(&ip("10.1.255.3")));
    assert!(!range.matches(&ip("10.2.0.1")));
    let v6 = AltNamePattern::parse("IP:fd00::/8").unwrap();
    assert!(v6.matches(&ip("fd12::1")));
    assert!(!v6.matches(&ip("10.1.0.1")));
    assert!(AltNamePattern::parse("puppet")
        .unwrap()
        .matches(&dns("puppet")));
    for bad in ["*", "IP:10.0.0.0/33", "IP:nope", "foo bar", "URI:x"] {
        assert!(AltNamePattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_rejected_attempt_shows_in_foremans_logs_tab() {
    let svc = Service::start("foreman-logs");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "good.example.com");
    let csr = openssl_csr(&CsrOpts::new("evil.example.com").challenge(&token));
    let resp = validate(&mut c, Some("evil.example.com"), &csr);
    assert_eq!(resp.status, 404);
    // As Foreman's proxy Logs tab asks: GET /logs/?from_timestamp=<float>.
    let since = autosign_proxy::time::now() - 60;
    let resp = c.foreman().logs(Some(&format!("{since}.5")));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = json(&resp);
    assert!(body["info"]["failed_modules"].is_object(), "{body}");
    let logs = body["logs"].as_array().unwrap();
    let warn = logs
        .iter()
        .find(|l| {
            l["level"] == "WARN" && l["message"].as_str().unwrap().contains("evil.example.com")
        })
        .unwrap_or_else(|| panic!("no WARN record for the rejection: {body}"));
    assert!(warn["message"]
        .as_str()
        .unwrap()
        .contains("token_wrong_host"));
    assert!(warn["timestamp"].as_f64().unwrap() >= since as f64);
    assert!(
        logs.iter().any(|l| l["level"] == "ERROR"),
        "the suspicious request is an ERROR: {body}"
    );
    // Trusted hosts only; listed as a feature.
    let mut anyone = svc.client_with(None);
    assert_eq!(anyone.foreman().logs(None).status, 403);
    let features = json(&c.foreman().features());
    assert!(features.as_array().unwrap().contains(&"logs".into()));
}

#[test]
fn the_csr_attributes_template_renders_under_foremans_safe_mode() {
    // Safe mode's host jail allows `puppetca_token` (and the token's `value`); nothing
    // else on @host may be called.
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/csr_attributes.yaml.erb"
    ))
    .unwrap();
    let calls: Vec<&str> = template
        .match_indices("@host.")
        .map(|(i, _)| {
            let rest = &template[i + "@host.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|m| *m == "puppetca_token"),
        "only what the jail allows: {calls:?}"
    );
    for after in template.split("@host.puppetca_token.").skip(1) {
        let method: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '?')
            .collect();
        assert!(
            method == "value" || method == "present?",
            "the token's {method}"
        );
    }
}

#[test]
fn hostname_autosigning_makes_an_exact_entry_foreman_removes() {
    let svc = Service::start_with("foreman-hostname", |c| {
        c.smart_proxy.autosign = autosign_proxy::config::ForemanAutosign::Hostname;
    });
    let mut c = svc.client();
    let resp = c
        .foreman()
        .plain()
        .create_autosign("web07.example.com", None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let listed = json(&c.foreman().autosign_list());
    assert!(
        listed
            .as_array()
            .unwrap()
            .contains(&"web07.example.com".into()),
        "{listed}"
    );
    let csr = openssl_csr(&CsrOpts::new("web07.example.com"));
    assert_eq!(validate(&mut c, None, &csr).status, 200, "the name alone");
    let other = openssl_csr(&CsrOpts::new("web08.example.com"));
    assert_eq!(
        validate(&mut c, None, &other).status,
        404,
        "exactly that name"
    );
    assert_eq!(c.foreman().delete_autosign("web07.example.com").status, 200);
    assert_eq!(validate(&mut c, None, &csr).status, 404, "removed");
}
