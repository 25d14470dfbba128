use http::HeaderValue;

use super::*;

const TOKENS: &str = r#"
tokens:
  - name: a-writer
    token: secret-a
    write: [a]
  - name: a-reader
    token: secret-ra
    read: [a, shared]
  - name: team-reader
    token: secret-team
    read_regex: "team-.*"
  - name: ops
    token: secret-ops
    admin: true
"#;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn token_auth() -> (tempfile::TempDir, Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokens.yml");
    std::fs::write(&p, TOKENS).unwrap();
    let a = Authenticator::new(AuthMode::Token, Some(&p)).unwrap();
    (dir, a)
}

fn tenants(s: &Scope) -> Vec<&str> {
    s.tenants().iter().map(TenantId::as_str).collect()
}

#[test]
fn header_mode_precedence_default_and_federation() {
    let a = Authenticator::new(AuthMode::Header, None).unwrap();
    let scope = |pairs: &[(&'static str, &str)], access| {
        a.authenticate(&headers(pairs), access)
            .map(|s| s.label())
            .map_err(|e| e.to_string())
    };
    assert_eq!(scope(&[], Access::Read).unwrap(), "default-tenant");
    assert_eq!(
        scope(&[("x-scope-orgid", "mimir")], Access::Write).unwrap(),
        "mimir"
    );
    assert_eq!(
        scope(
            &[("thanos-tenant", "thanos"), ("x-scope-orgid", "mimir")],
            Access::Read
        )
        .unwrap(),
        "thanos"
    );
    assert_eq!(
        scope(
            &[("THANOS-TENANT", " "), ("X-Scope-OrgID", "b")],
            Access::Read
        )
        .unwrap(),
        "b"
    );
    // Cortex-style federation: sorted, unique; reads only.
    assert_eq!(
        scope(&[("x-scope-orgid", "b|a|b")], Access::Read).unwrap(),
        "a|b"
    );
    let e = scope(&[("x-scope-orgid", "a|b")], Access::Write).unwrap_err();
    assert!(e.contains("one tenant") && e.contains("names 2"), "{e}");
    let e = scope(&[("thanos-tenant", "a/b")], Access::Read).unwrap_err();
    assert!(e.contains("THANOS-TENANT") && e.contains("\"a/b\""), "{e}");
    let e = scope(&[("x-scope-orgid", "a||b")], Access::Read).unwrap_err();
    assert!(e.contains("X-Scope-OrgID"), "{e}");
    let e = scope(&[("thanos-tenant", &"x".repeat(151))], Access::Read).unwrap_err();
    assert!(e.contains("150"), "{e}");
    let mut h = HeaderMap::new();
    h.insert("thanos-tenant", HeaderValue::from_bytes(b"\xff").unwrap());
    assert!(a.authenticate(&h, Access::Read).is_err());
}

#[test]
fn none_mode_ignores_headers() {
    let a = Authenticator::new(AuthMode::None, None).unwrap();
    let s = a
        .authenticate(&headers(&[("x-scope-orgid", "other|x")]), Access::Write)
        .unwrap();
    assert_eq!(tenants(&s), ["default-tenant"]);
}

#[test]
fn flags_must_agree() {
    assert!(Authenticator::new(AuthMode::Token, None).is_err());
    assert!(Authenticator::new(AuthMode::Header, Some(Path::new("x"))).is_err());
}

#[test]
fn tokens_authenticate_and_authorize() {
    let (_dir, a) = token_auth();
    let auth = |pairs: &[(&'static str, &str)], access| a.authenticate(&headers(pairs), access);
    // No token, a malformed header, an unknown token: 401.
    for pairs in [
        vec![],
        vec![("authorization", "Basic abc")],
        vec![("authorization", "Bearer")],
        vec![("authorization", "Bearer wrong")],
        vec![
            ("authorization", "Bearer secret-a-"),
            ("x-scope-orgid", "a"),
        ],
    ] {
        let e = auth(&pairs, Access::Read).unwrap_err();
        assert!(matches!(e, AuthError::Unauthenticated(_)), "{pairs:?}: {e}");
    }
    // The writer writes its own tenant by default, nothing else, and may not read.
    let s = auth(&[("authorization", "Bearer secret-a")], Access::Write).unwrap();
    assert_eq!((tenants(&s), s.principal()), (vec!["a"], Some("a-writer")));
    let e = auth(
        &[("authorization", "bearer secret-a"), ("thanos-tenant", "b")],
        Access::Write,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), r#"token "a-writer" may not write tenant b"#);
    assert!(matches!(
        auth(&[("authorization", "Bearer secret-a")], Access::Read).unwrap_err(),
        AuthError::Forbidden { .. }
    ));
    // The reader reads a list, several at once, and no other.
    let s = auth(
        &[
            ("authorization", "Bearer secret-ra"),
            ("x-scope-orgid", "shared|a"),
        ],
        Access::Read,
    )
    .unwrap();
    assert_eq!(tenants(&s), ["a", "shared"]);
    let e = auth(
        &[
            ("authorization", "Bearer secret-ra"),
            ("x-scope-orgid", "a|b"),
        ],
        Access::Read,
    )
    .unwrap_err();
    assert!(e.to_string().contains("may not read tenant b"), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
    // A regex, anchored: team-x yes, my-team-x no; no default tenant of its own.
    let t = |h: &'static str| {
        auth(
            &[
                ("authorization", "Bearer secret-team"),
                ("x-scope-orgid", h),
            ],
            Access::Read,
        )
    };
    assert!(t("team-x|team-y").is_ok());
    assert!(t("my-team-x").is_err());
    // Naming no tenant reads the known tenants it matches: none without a provider.
    let e = auth(&[("authorization", "Bearer secret-team")], Access::Read).unwrap_err();
    assert!(
        matches!(e, AuthError::Tenant(TenantError::NoneKnown { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("X-Scope-OrgID"), "{e}");
    // It has no tenant to write to.
    let e = auth(&[("authorization", "Bearer secret-team")], Access::Write).unwrap_err();
    assert!(
        matches!(e, AuthError::Tenant(TenantError::NoDefault { .. })),
        "{e}"
    );
    // Admin.
    assert!(
        auth(
            &[
                ("authorization", "Bearer secret-ops"),
                ("x-scope-orgid", "x")
            ],
            Access::Admin
        )
        .is_ok()
    );
    assert!(
        auth(
            &[
                ("authorization", "Bearer secret-ra"),
                ("x-scope-orgid", "a")
            ],
            Access::Admin
        )
        .is_err()
    );
}

#[test]
fn tokens_file_errors_never_show_tokens() {
    for (bad, want) in [
        ("tokens: [{name: x, token: ''}]", "empty"),
        (
            "tokens: [{name: x, token: abc}, {name: y, token: abc}]",
            "listed twice",
        ),
        ("tokens: [{name: x, token: abc, write: ['a/b']}]", "a/b"),
        (
            "tokens: [{name: x, token: abc, read_regex: '('}]",
            "read_regex",
        ),
        (
            "tokens: [{name: x, token: abc, writes: [a]}]",
            "unknown field",
        ),
    ] {
        let e = TokenTable::parse(bad).unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
        assert!(!e.contains("abc"), "{e}");
    }
}

const REGEX_TOKENS: &str = r#"
tokens:
  - name: team-reader
    token: secret-team
    read_regex: "team-.*"
  - name: team-and-shared
    token: secret-ts
    read: [shared]
    read_regex: "team-a.*"
  - name: pinned
    token: secret-pinned
    tenant: team-a
    read_regex: "team-.*"
"#;

fn known(names: &[&str]) -> KnownTenants {
    let set: BTreeSet<TenantId> = names.iter().map(|n| TenantId::new(n).unwrap()).collect();
    KnownTenants::new(move || set.clone())
}

#[test]
fn regex_grants_read_the_known_tenants_they_match() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokens.yml");
    std::fs::write(&p, REGEX_TOKENS).unwrap();
    let a = Authenticator::new(AuthMode::Token, Some(&p))
        .unwrap()
        .with_known_tenants(known(&[
            "other",
            "my-team-x",
            "team-b",
            "team-a",
            "team-ab",
        ]));
    let read = |token: &str, tenant: Option<&str>| {
        let bearer = format!("Bearer {token}");
        let mut pairs: Vec<(&'static str, &str)> = vec![("authorization", bearer.as_str())];
        if let Some(t) = tenant {
            pairs.push(("x-scope-orgid", t));
        }
        a.authenticate(&headers(&pairs), Access::Read)
            .map(|s| s.label())
    };
    // No tenant named: every known tenant matching the anchored expression, never others.
    assert_eq!(read("secret-team", None).unwrap(), "team-a|team-ab|team-b");
    // With a list too: the list (known or not) and the matching known tenants.
    assert_eq!(read("secret-ts", None).unwrap(), "shared|team-a|team-ab");
    // An explicit tenant stays the default; the grant is used by naming tenants.
    assert_eq!(read("secret-pinned", None).unwrap(), "team-a");
    assert_eq!(
        read("secret-pinned", Some("team-b|team-zz")).unwrap(),
        "team-b|team-zz"
    );
    // Named tenants are checked one by one: unknown but matching is allowed (it reads
    // nothing), outside the grant is 403, and a pattern is no tenant id (400).
    assert_eq!(read("secret-team", Some("team-new")).unwrap(), "team-new");
    let e = read("secret-team", Some("team-a|other")).unwrap_err();
    assert!(
        matches!(&e, AuthError::Forbidden { tenant, .. } if tenant == "other"),
        "{e}"
    );
    let e = read("secret-team", Some("team-.*")).unwrap_err();
    assert!(
        matches!(e, AuthError::Tenant(TenantError::Invalid { .. })),
        "{e}"
    );
    // The known tenants are asked at each request: a new tenant shows up at once.
    let set = Arc::new(std::sync::Mutex::new(BTreeSet::from([TenantId::new(
        "other",
    )
    .unwrap()])));
    let b = Authenticator::new(AuthMode::Token, Some(&p))
        .unwrap()
        .with_known_tenants(KnownTenants::new({
            let set = Arc::clone(&set);
            move || set.lock().unwrap().clone()
        }));
    let h = headers(&[("authorization", "Bearer secret-team")]);
    let e = b.authenticate(&h, Access::Read).unwrap_err();
    assert!(
        matches!(e, AuthError::Tenant(TenantError::NoneKnown { .. })),
        "{e}"
    );
    set.lock().unwrap().insert(TenantId::new("team-c").unwrap());
    assert_eq!(b.authenticate(&h, Access::Read).unwrap().label(), "team-c");
}

#[test]
fn metrics_need_a_metrics_or_admin_token_in_token_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokens.yml");
    std::fs::write(
        &p,
        format!("{TOKENS}  - name: scraper\n    token: secret-scrape\n    metrics: true\n"),
    )
    .unwrap();
    let a = Authenticator::new(AuthMode::Token, Some(&p)).unwrap();
    let auth = |tok: Option<&str>| {
        let bearer = tok.map(|t| format!("Bearer {t}"));
        let pairs: Vec<(&'static str, &str)> = bearer
            .as_deref()
            .map(|b| ("authorization", b))
            .into_iter()
            .collect();
        a.authenticate(&headers(&pairs), Access::Metrics)
    };
    assert!(matches!(auth(None), Err(AuthError::Unauthenticated(_))));
    let e = auth(Some("secret-ra")).unwrap_err();
    assert!(matches!(e, AuthError::NotAllowed { .. }), "{e}");
    assert!(e.to_string().contains("a-reader"), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
    assert!(auth(Some("secret-scrape")).is_ok());
    assert!(auth(Some("secret-ops")).is_ok());
    // Admin endpoints: a token without admin rights is forbidden (403), whether it has a
    // tenant of its own or not (the scraper has none), and whatever tenant it names.
    for (tok, name) in [("secret-scrape", "scraper"), ("secret-ra", "a-reader")] {
        for extra in [None, Some("a")] {
            let bearer = format!("Bearer {tok}");
            let mut pairs = vec![("authorization", bearer.as_str())];
            pairs.extend(extra.map(|t| ("x-scope-orgid", t)));
            let e = a.authenticate(&headers(&pairs), Access::Admin).unwrap_err();
            assert!(matches!(e, AuthError::NotAllowed { .. }), "{tok}: {e}");
            assert!(e.to_string().contains(name), "{e}");
            assert!(e.to_string().contains("admin"), "{e}");
        }
    }
    let h = headers(&[("authorization", "Bearer secret-ops")]);
    assert!(a.authenticate(&h, Access::Admin).is_ok());
    // The metrics scope reads nothing else: a scraper token cannot read a tenant.
    let h = headers(&[("authorization", "Bearer secret-scrape")]);
    assert!(a.authenticate(&h, Access::Read).is_err());
    // Header and none modes: open, whatever the headers say.
    for mode in [AuthMode::Header, AuthMode::None] {
        let a = Authenticator::new(mode, None).unwrap();
        let h = headers(&[("x-scope-orgid", "not/valid")]);
        assert!(a.authenticate(&h, Access::Metrics).is_ok());
        // Admin endpoints: off unless enabled.
        assert!(matches!(
            a.authenticate(&HeaderMap::new(), Access::Admin),
            Err(AuthError::AdminDisabled)
        ));
        let a = a.with_admin_api(true);
        assert!(a.authenticate(&HeaderMap::new(), Access::Admin).is_ok());
    }
}

#[test]
fn auth_errors_have_one_code_for_http_and_grpc() {
    use hypnos_schemas::{ErrorCode, ServiceError};
    let (_dir, a) = token_auth();
    let code = |h: &[(&'static str, &str)], access| {
        let e = a.authenticate(&headers(h), access).unwrap_err();
        (
            e.error_code(),
            e.error_code().http_status(),
            e.error_code().prometheus_error_type(),
        )
    };
    assert_eq!(
        code(&[], Access::Read),
        (ErrorCode::Unauthenticated, 401, "unauthorized")
    );
    assert_eq!(
        code(
            &[("authorization", "Bearer secret-a"), ("thanos-tenant", "b")],
            Access::Write
        ),
        (ErrorCode::PermissionDenied, 403, "forbidden")
    );
    assert_eq!(
        code(
            &[
                ("authorization", "Bearer secret-a"),
                ("thanos-tenant", "a/b")
            ],
            Access::Write
        ),
        (ErrorCode::BadRequest, 400, "bad_data")
    );
    assert_eq!(
        code(&[("authorization", "Bearer secret-a")], Access::Metrics),
        (ErrorCode::PermissionDenied, 403, "forbidden")
    );
    let header = Authenticator::new(AuthMode::Header, None).unwrap();
    let e = header
        .authenticate(&headers(&[]), Access::Admin)
        .unwrap_err();
    assert_eq!(
        (
            e.error_code().http_status(),
            e.error_code().prometheus_error_type()
        ),
        (503, "unavailable")
    );
}

#[test]
fn auth_modes_parse_as_the_flag_spells_them() {
    for name in AuthMode::NAMES {
        let m: AuthMode = name.parse().unwrap();
        assert_eq!(m.to_string(), name);
    }
    assert_eq!(AuthMode::default().name(), "header");
    let e = "tokens".parse::<AuthMode>().unwrap_err();
    assert!(e.contains("header, token, none"), "{e}");
}
