//! The license-store contract, written once and run against every store: the SQLite
//! file and a real PostgreSQL cluster started for each test.

mod common;

use common::{change_entry, seats};

use std::sync::Arc;

use common::pg::PgProc;
use common::tls::TestCa;
use license_server::domain::{Overrides, Secs};
use license_server::store::{
    AuditEvent, AuditKind, AuditQuery, KeptKind, License, LicenseChange, LicenseStore,
    OfflineActivation, OfflinePeriod, PgStore, Seats, SqliteStore,
};
use license_server::telemetry::Sample;

const NOW: i64 = 1_795_354_152;

/// A store, and what must live as long as it.
enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] PgProc),
    Tls(#[allow(dead_code)] PgProc, #[allow(dead_code)] Box<TestCa>),
}

fn sqlite() -> (Arc<dyn LicenseStore>, Keep) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("l.sqlite3")).unwrap();
    (Arc::new(store), Keep::Dir(dir))
}

fn postgres() -> (Arc<dyn LicenseStore>, Keep) {
    let pg = PgProc::start();
    let store = PgStore::open(&pg.url()).unwrap();
    (Arc::new(store), Keep::Pg(pg))
}

/// PostgreSQL that takes TLS only, reached with `sslmode=verify-full` against the CA
/// that issued its certificate.
fn postgres_tls() -> (Arc<dyn LicenseStore>, Keep) {
    let ca = TestCa::new("db CA");
    let pg = PgProc::start_tls(&ca);
    let store = PgStore::open(&pg.tls_url("verify-full", Some(&ca.ca_file))).unwrap();
    (Arc::new(store), Keep::Tls(pg, Box::new(ca)))
}

type Make = fn() -> (Arc<dyn LicenseStore>, Keep);

/// Every store the contract runs against: PostgreSQL where it is installed (`build.rs`
/// says so when it is not; under LIC4ES_REQUIRE_ALL=1 always).
fn stores() -> Vec<(&'static str, Make)> {
    let mut all: Vec<(&str, Make)> = vec![("sqlite", sqlite)];
    if cfg!(not(lic4es_no_postgres)) {
        all.extend([
            ("postgres", postgres as Make),
            ("postgres over TLS", postgres_tls),
        ]);
    }
    all
}

fn each_store(test: impl Fn(&str, Arc<dyn LicenseStore>)) {
    for (name, make) in stores() {
        let (store, _keep) = make();
        test(name, store);
    }
}

fn license(id: &str) -> License {
    License {
        id: id.into(),
        tier: "pro".into(),
        org_name: Some("Acme".into()),
        expires_at: NOW + 86_400,
        trial: false,
        revoked: false,
        overrides: Overrides {
            seats: Some(Seats::Count(3)),
            offline_grace_days: Some(0),
            heartbeat_interval: Some(60),
            offline_activation_days: Some(90),
            max_borrow: Some(Secs(3_600)),
            relay_grant_days: Some(30),
        },
    }
}

#[test]
fn concurrent_changes_of_different_terms_are_all_kept() {
    each_store(|name, s| {
        assert!(s
            .insert_license(&license("org-c"), NOW, &change_entry())
            .unwrap());
        // Two operators at once: one moves the expiry, the other the seats. A
        // read-modify-write of the whole record would lose one of them.
        let threads: Vec<_> = (0..2u32)
            .map(|who| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 1..=50u32 {
                        let change = if who == 0 {
                            LicenseChange {
                                expires_at: Some(NOW + i64::from(i)),
                                ..LicenseChange::default()
                            }
                        } else {
                            LicenseChange {
                                overrides: seats(Seats::Count(i)),
                                ..LicenseChange::default()
                            }
                        };
                        s.change_license("org-c", &change, &change_entry())
                            .unwrap()
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = s.license("org-c").unwrap().unwrap();
        assert_eq!(
            (got.expires_at, got.overrides.seats),
            (NOW + 50, Some(Seats::Count(50))),
            "{name}"
        );
    });
}

#[test]
fn licenses_are_created_once_updated_explicitly_and_revocations_stay() {
    each_store(|name, s| {
        let l = license("org-1");
        assert!(
            s.insert_license(&l, NOW, &change_entry()).unwrap(),
            "{name}"
        );
        assert_eq!(s.license("org-1").unwrap(), Some(l.clone()), "{name}");
        let mut other = l.clone();
        other.tier = "enterprise".into();
        assert!(
            !s.insert_license(&other, NOW, &change_entry()).unwrap(),
            "{name}: exists"
        );
        assert_eq!(s.license("org-1").unwrap().unwrap().tier, "pro", "{name}");
        assert!(s.revoke_license("org-1", &change_entry()).unwrap());
        let change = LicenseChange {
            tier: Some("team".into()),
            overrides: seats(Seats::Unlimited),
            ..LicenseChange::default()
        };
        let changed = s
            .change_license("org-1", &change, &change_entry())
            .unwrap()
            .unwrap();
        let got = s.license("org-1").unwrap().unwrap();
        assert_eq!(changed, got, "{name}: the license as changed is returned");
        assert_eq!(
            (got.tier.as_str(), got.overrides.seats, got.revoked),
            ("team", Some(Seats::Unlimited), true),
            "{name}: an unlimited seat count is kept as such"
        );
        assert_eq!(
            (&got.org_name, got.expires_at, got.trial),
            (&l.org_name, l.expires_at, l.trial),
            "{name}: terms not named stay"
        );
        let tier = LicenseChange {
            tier: Some("enterprise".into()),
            ..LicenseChange::default()
        };
        assert_eq!(
            s.change_license("org-1", &tier, &change_entry())
                .unwrap()
                .unwrap()
                .tier,
            "enterprise"
        );
        assert_eq!(
            s.change_license("nope", &tier, &change_entry()).unwrap(),
            None
        );
        assert!(!s.revoke_license("nope", &change_entry()).unwrap());
        assert_eq!(s.license("nope").unwrap(), None);
        s.ping().unwrap();
    });
}

#[test]
fn concurrent_creations_of_one_id_make_exactly_one() {
    each_store(|name, s| {
        let made: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        s.insert_license(&license("org-race"), NOW, &change_entry())
                            .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter(|_| true)
                .map(|h| h.join().unwrap() as usize)
                .sum()
        });
        assert_eq!(made, 1, "{name}");
    });
}

#[test]
fn api_keys_are_kept_as_hashes_and_revoked() {
    each_store(|name, s| {
        s.insert_license(&license("org-k"), NOW, &change_entry())
            .unwrap();
        let key = license_server::store::new_api_key().unwrap();
        let before = s.changes().unwrap();
        s.add_api_key("org-k", &key, NOW, &change_entry()).unwrap();
        assert!(key.starts_with("sk-") && key.len() == 51, "{name}: {key}");
        let rec = s.api_key(&key).unwrap().unwrap();
        assert_eq!((rec.license_id.as_str(), rec.revoked), ("org-k", false));
        assert_eq!(s.api_key("sk-unknown").unwrap(), None, "{name}");
        // Every change moves the counter that cached lookups are checked against.
        let added = s.changes().unwrap();
        assert!(added > before, "{name}: {before} -> {added}");
        assert!(s.revoke_api_key(&key, &change_entry()).unwrap());
        assert!(s.api_key(&key).unwrap().unwrap().revoked, "{name}");
        let revoked = s.changes().unwrap();
        assert!(revoked > added, "{name}: {added} -> {revoked}");
        assert!(!s.revoke_api_key("sk-unknown", &change_entry()).unwrap());
        assert_eq!(s.changes().unwrap(), revoked, "{name}: nothing changed");
    });
}

#[test]
fn telemetry_is_admitted_aggregated_and_pruned() {
    each_store(|name, s| {
        let q = |n: u64| Sample {
            queries_total: Some(n),
            joins_total: Some(1),
            mvs_active: Some(2),
            clusters_connected: Some(1),
        };
        assert!(s.record_telemetry("org-t", "i-1", &q(10), NOW).unwrap());
        assert!(
            !s.record_telemetry("org-t", "i-1", &q(11), NOW + 30)
                .unwrap(),
            "{name}"
        );
        assert!(s
            .record_telemetry("org-t", "i-1", &q(25), NOW + 61)
            .unwrap());
        assert!(s
            .record_telemetry("org-t", "i-2", &q(u64::MAX), NOW + 62)
            .unwrap());
        let latest = s.recent_telemetry(10).unwrap();
        assert_eq!(latest.len(), 2, "{name}");
        assert_eq!(latest[0].instance_id, "i-2");
        assert_eq!(latest[1].telemetry.queries_total, Some(25));
        let daily = s.daily_telemetry(Some("org-t"), 10).unwrap();
        assert_eq!(daily.len(), 1, "{name}");
        assert_eq!((daily[0].reports, daily[0].instances), (3, 2), "{name}");
        assert_eq!(
            daily[0].queries,
            i64::MAX as u64,
            "{name}: saturates, no overflow"
        );
        assert_eq!(s.daily_telemetry(Some("other"), 10).unwrap().len(), 0);
        assert!(s.prune_telemetry(NOW + 2 * 86_400).unwrap() >= 3, "{name}");
        assert!(s.recent_telemetry(10).unwrap().is_empty());
    });
}

#[test]
fn a_batch_of_audit_entries_is_appended_whole_and_in_order() {
    each_store(|name, s| {
        // More than one multi-row INSERT on PostgreSQL.
        let entries: Vec<AuditEvent> = (0..2_500)
            .map(|i| AuditEvent {
                at: NOW + i,
                kind: "acquire".into(),
                license: format!("org-{}", i % 7),
                session_id: Some(format!("ses-{i}")),
                detail: (i % 2 == 0).then(|| format!("entry {i}")),
                ..AuditEvent::default()
            })
            .collect();
        s.append_audits(&entries).unwrap();
        s.append_audits(&[]).unwrap();
        let all = s.audit(&AuditQuery::newest(5_000)).unwrap();
        assert_eq!(all.len(), 2_500, "{name}");
        let mut ats: Vec<i64> = all.iter().map(|e| e.at).collect();
        ats.reverse();
        assert_eq!(
            ats,
            (0..2_500).map(|i| NOW + i).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(all[0].session_id.as_deref(), Some("ses-2499"), "{name}");
        assert_eq!(all[1].detail.as_deref(), Some("entry 2498"), "{name}");
        if name.starts_with("postgres") {
            // PostgreSQL refuses a NUL in text: the batch it ends fails whole, its first
            // chunk included. (SQLite takes any text, so there it is not tried.)
            let mut bad = entries.clone();
            bad[2_499].detail = Some("nul \0 here".into());
            assert!(s.append_audits(&bad).is_err(), "{name}");
            assert_eq!(s.audit(&AuditQuery::newest(5_000)).unwrap().len(), 2_500);
        }
    });
}

#[test]
fn the_audit_trail_is_kept_newest_first_and_pruned() {
    each_store(|name, s| {
        for (i, kind) in ["acquire", "renew", "release"].iter().enumerate() {
            s.append_audit(&AuditEvent {
                at: NOW + i as i64,
                kind: (*kind).into(),
                license: if i == 1 {
                    "org-b".into()
                } else {
                    "org-a".into()
                },
                session_id: Some(format!("ses-{i}")),
                source: Some("127.0.0.1:1".into()),
                ..AuditEvent::default()
            })
            .unwrap();
        }
        let all = s.audit(&AuditQuery::newest(10)).unwrap();
        let kinds: Vec<&str> = all.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["release", "renew", "acquire"], "{name}");
        assert!(all[0].id > all[1].id && all[1].id > all[2].id, "{name}");
        let of_a = AuditQuery {
            license: Some("org-a".into()),
            ..AuditQuery::newest(10)
        };
        assert_eq!(s.audit(&of_a).unwrap().len(), 2);
        assert_eq!(s.audit(&AuditQuery::newest(1)).unwrap().len(), 1);
        // Paging: the next page starts after the last id shown.
        let page = AuditQuery {
            before: Some(all[0].id),
            ..AuditQuery::newest(1)
        };
        assert_eq!(s.audit(&page).unwrap()[0].kind, "renew", "{name}");
        let page = AuditQuery {
            before: Some(all[0].id),
            ..of_a
        };
        let kinds: Vec<String> = s
            .audit(&page)
            .unwrap()
            .into_iter()
            .map(|e| e.kind.to_string())
            .collect();
        assert_eq!(kinds, ["acquire"], "{name}");
        assert_eq!(s.prune_audit(NOW + 1).unwrap(), 1, "{name}");
        assert_eq!(s.audit(&AuditQuery::newest(10)).unwrap().len(), 2);
    });
}

#[test]
fn offline_periods_are_kept_once_per_session_and_a_reconnect_ends_them() {
    each_store(|name, s| {
        let period = |sid: &str, start: i64, end: i64, ended: bool| OfflinePeriod {
            license: "org-a".into(),
            session_id: sid.into(),
            start,
            end,
            ended,
        };
        // A lapse: offline from NOW until its grace would end.
        s.record_offline(&period("ses-1", NOW, NOW + 7 * 86_400, false))
            .unwrap();
        // Seen again by another sweep: nothing changes.
        s.record_offline(&period("ses-1", NOW + 5, NOW + 9 * 86_400, false))
            .unwrap();
        let got = s.offline_periods(Some("org-a"), NOW).unwrap();
        assert_eq!(
            got,
            [period("ses-1", NOW, NOW + 7 * 86_400, false)],
            "{name}"
        );
        // The reconnect reports a later start: the earlier one stays, the end is now.
        s.record_offline(&period("ses-1", NOW + 60, NOW + 3 * 86_400, true))
            .unwrap();
        // A reconnect without a lapse first.
        s.record_offline(&period("ses-2", NOW - 100, NOW - 50, true))
            .unwrap();
        let mut other = period("ses-3", NOW, NOW + 10, true);
        other.license = "org-b".into();
        s.record_offline(&other).unwrap();
        let got = s.offline_periods(Some("org-a"), NOW - 1_000).unwrap();
        assert_eq!(
            got,
            [
                period("ses-2", NOW - 100, NOW - 50, true),
                period("ses-1", NOW, NOW + 3 * 86_400, true),
            ],
            "{name}"
        );
        // `since` keeps the periods that reach past it; every license without a filter.
        assert_eq!(s.offline_periods(None, NOW).unwrap().len(), 2, "{name}");
        assert_eq!(s.prune_offline(NOW).unwrap(), 1, "{name}");
        assert_eq!(s.offline_periods(None, 0).unwrap().len(), 2, "{name}");
    });
}

#[test]
fn air_gapped_activations_are_kept_with_their_audit_and_deactivated_once() {
    each_store(|name, s| {
        let lic = license("org-site");
        assert!(s.insert_license(&lic, NOW, &change_entry()).unwrap());
        let own = s.license("org-site").unwrap().unwrap().overrides;
        assert_eq!(
            own.offline_activation_days,
            Some(90),
            "{name}: the license's own activation lifetime"
        );
        assert_eq!(
            own.max_borrow,
            Some(Secs(3_600)),
            "{name}: the license's own longest borrow"
        );
        let activation = |jti: &str, exp: i64| OfflineActivation {
            jti: jti.into(),
            license_id: "org-site".into(),
            hardware_id: "hw-1".into(),
            instance_id: "i-1".into(),
            nonce: "0123456789abcdef0123456789abcdef".into(),
            created_at: NOW,
            expires_at: exp,
            deactivated_at: None,
            kind: if jti.starts_with("bor-") {
                KeptKind::Borrow
            } else {
                KeptKind::Activation
            },
        };
        let entry = |kind: AuditKind, jti: &str| AuditEvent {
            at: NOW,
            kind,
            license: "org-site".into(),
            session_id: Some(jti.into()),
            ..AuditEvent::default()
        };
        for (jti, exp) in [
            ("off-b", NOW + 100),
            ("off-a", NOW + 100),
            ("off-old", NOW),
            ("bor-c", NOW + 50),
        ] {
            s.add_offline_activation(
                &activation(jti, exp),
                &entry(AuditKind::OfflineActivate, jti),
            )
            .unwrap();
        }
        assert_eq!(
            s.offline_activation("bor-c").unwrap().map(|a| a.kind),
            Some(KeptKind::Borrow),
            "{name}: a borrow is kept as one"
        );
        assert!(
            s.add_offline_activation(&activation("off-a", NOW + 5), &change_entry())
                .is_err(),
            "{name}: an id is kept once"
        );
        assert_eq!(
            s.offline_activation("off-a").unwrap(),
            Some(activation("off-a", NOW + 100))
        );
        assert_eq!(s.offline_activation("off-none").unwrap(), None);
        let live: Vec<String> = s
            .live_offline_activations(NOW)
            .unwrap()
            .into_iter()
            .map(|a| a.jti)
            .collect();
        assert_eq!(
            live,
            ["bor-c", "off-a", "off-b"],
            "{name}: expired ones are not live"
        );
        assert!(s
            .deactivate_offline(
                "off-a",
                NOW + 1,
                &entry(AuditKind::OfflineDeactivate, "off-a")
            )
            .unwrap());
        assert!(
            !s.deactivate_offline("off-a", NOW + 2, &change_entry())
                .unwrap(),
            "{name}: once"
        );
        assert!(!s
            .deactivate_offline("off-none", NOW, &change_entry())
            .unwrap());
        assert_eq!(
            s.offline_activation("off-a")
                .unwrap()
                .unwrap()
                .deactivated_at,
            Some(NOW + 1)
        );
        assert_eq!(s.live_offline_activations(NOW).unwrap().len(), 2, "{name}");
        let kinds: Vec<AuditKind> = s
            .audit(&AuditQuery {
                license: Some("org-site".into()),
                ..AuditQuery::newest(100)
            })
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == AuditKind::OfflineActivate)
                .count(),
            4,
            "{name}: each activation with its entry, the refused one without"
        );
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == AuditKind::OfflineDeactivate)
                .count(),
            1,
            "{name}: the deactivation once"
        );
    });
}

#[test]
fn over_budget_hours_are_kept_once_per_license_and_hour_and_pruned_with_the_window() {
    each_store(|name, s| {
        let hour = NOW - NOW.rem_euclid(3600);
        for (license, h) in [
            ("org-a", hour),
            ("org-a", hour),
            ("org-a", hour - 3600),
            ("org-b", hour),
        ] {
            s.record_over_budget(license, h).unwrap();
        }
        assert_eq!(
            s.over_budget_hours(Some("org-a"), 0).unwrap(),
            [
                ("org-a".to_string(), hour - 3600),
                ("org-a".to_string(), hour)
            ],
            "{name}: once per hour"
        );
        assert_eq!(s.over_budget_hours(None, hour).unwrap().len(), 2, "{name}");
        // Pruned with the offline periods (the rule's window).
        assert_eq!(s.prune_offline(hour).unwrap(), 1, "{name}");
        assert_eq!(s.over_budget_hours(None, 0).unwrap().len(), 2, "{name}");
    });
}

#[test]
#[cfg_attr(lic4es_no_postgres, ignore = "needs PostgreSQL")]
fn instances_starting_together_create_the_postgres_schema_once() {
    let pg = PgProc::start();
    let url = pg.url();
    let opened: Vec<Result<PgStore, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| PgStore::open(&url)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &opened {
        assert!(o.is_ok(), "{:?}", o.as_ref().err());
    }
    let store = opened.into_iter().next().unwrap().unwrap();
    assert!(store
        .insert_license(&license("org-m"), NOW, &change_entry())
        .unwrap());
}

#[test]
#[cfg_attr(lic4es_no_postgres, ignore = "needs PostgreSQL")]
fn postgres_over_tls_checks_what_sslmode_says() {
    let ca = TestCa::new("db CA");
    let pg = PgProc::start_tls(&ca);
    let opens = |url: &str| PgStore::open(url).map(|_| ()).map_err(|e| e.to_string());
    opens(&pg.tls_url("verify-full", Some(&ca.ca_file))).unwrap();
    opens(&pg.tls_url("verify-ca", Some(&ca.ca_file))).unwrap();
    // libpq's `require` without a root: encrypted, not checked.
    opens(&pg.tls_url("require", None)).unwrap();
    // The cluster takes TLS only: plain is refused.
    let e = opens(&pg.tls_url("disable", None)).unwrap_err();
    assert!(e.contains("cannot connect"), "{e}");
    // Another CA's root: refused in the handshake, at every mode that checks.
    let other = TestCa::new("not the db CA");
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = opens(&pg.tls_url(mode, Some(&other.ca_file))).unwrap_err();
        assert!(e.contains("cannot connect"), "{mode}: {e}");
    }
    // The name: a host the certificate does not name (reached at 127.0.0.1 by hostaddr)
    // passes verify-ca, which checks the chain only, and fails verify-full.
    let elsewhere = |mode: &str| {
        format!(
            "postgres://lic4es@db.invalid:{}/postgres?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
            pg.port,
            ca.ca_file.display()
        )
    };
    opens(&elsewhere("verify-ca")).unwrap();
    let e = opens(&elsewhere("verify-full")).unwrap_err();
    assert!(e.contains("cannot connect"), "{e}");
    let e = opens(&pg.tls_url("verify-nothing", None)).unwrap_err();
    assert!(e.contains("sslmode"), "{e}");
}
