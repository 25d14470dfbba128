//! Identity and metrics hardening: bounded tenant labels, the number of tenants one read
//! may name, placeholders that no tenant id can spell, and the admin API switch.

use super::*;

#[tokio::test]
async fn only_known_tenants_become_metric_labels() {
    let f = fixture().await;
    let (s, body) = f
        .write(Some("real"), "snappy", request("up", "a", &[(1000, 1.0)]))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    // A federated read of 60 tenants that hold nothing, and reads of them one by one.
    let ghosts: Vec<String> = (0..60).map(|i| format!("ghost-{i}")).collect();
    let (s, v) = f
        .get_json("/api/v1/query?query=up&time=1", Some(&ghosts.join("|")))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for g in &ghosts[..5] {
        let (s, v) = f.get_json("/api/v1/labels", Some(g)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = f
        .get_json("/api/v1/query?query=up&time=1", Some("real"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, metrics) = f.get("/metrics", None).await;
    assert!(!metrics.contains("ghost-"), "{metrics}");
    for line in [
        r#"hypnos_queries_total{kind="instant",tenant="<other>"} 60"#,
        r#"hypnos_queries_total{kind="labels",tenant="<other>"} 5"#,
        r#"hypnos_queries_total{kind="instant",tenant="real"} 1"#,
        r#"hypnos_queries_running{tenant="<other>"} 0"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_read_names_a_bounded_number_of_tenants() {
    let f = fixture().await;
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let (s, v) = f
        .get_json("/api/v1/query?query=up&time=1", Some(&many.join("|")))
        .await;
    assert_error(s, &v, 400, "bad_data");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("names 101 tenants") && msg.contains("at most 100"),
        "{msg}"
    );
    let (s, v) = f
        .get_json(
            "/api/v1/query?query=up&time=1",
            Some(&many[..100].join("|")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The flag sets the bound.
    let f = fixture_args(1 << 20, |c| c.max_tenants = 2).await;
    let (s, v) = f.get_json("/api/v1/labels", Some("a|b|c")).await;
    assert_error(s, &v, 400, "bad_data");
    let (s, v) = f.get_json("/api/v1/labels", Some("a|b")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn tenants_named_like_the_old_placeholders_are_tenants() {
    let f = fixture().await;
    for t in ["unknown", "invalid", "other"] {
        let (s, body) = f
            .write(Some(t), "snappy", request("up", t, &[(1000, 1.0)]))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
        let (s, v) = f.get_json("/api/v1/labels", Some(t)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = f.get_json("/api/v1/status/tenants", Some(t)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let rows = v["data"]["tenants"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{t}: {v}");
        assert_eq!(rows[0]["tenant"], t, "{v}");
        assert_eq!(rows[0]["queries"], 1, "{v}");
    }
    // Refusals count under placeholders that are not tenant ids.
    let (s, _) = f
        .write(Some("no such/tenant"), "snappy", request("up", "a", &[]))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, metrics) = f.get("/metrics", None).await;
    assert!(
        metrics.contains(
            r#"hypnos_receive_rejected_total{reason="invalid_tenant",tenant="<invalid>"} 1"#
        ),
        "{metrics}"
    );
    for placeholder in [
        crate::metrics::OTHER_TENANT,
        crate::metrics::UNAUTHENTICATED_TENANT,
        crate::metrics::INVALID_TENANT,
    ] {
        assert!(
            hypnos_schemas::TenantId::new(placeholder).is_err(),
            "{placeholder}"
        );
    }
}

#[tokio::test]
async fn admin_api_is_off_unless_enabled() {
    let f = fixture_args(1 << 20, |_| {}).await;
    let req = Request::post("/api/v1/admin/flush")
        .body(Body::empty())
        .unwrap();
    let (s, body) = f.send(req).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_error(s, &v, 503, "unavailable");
    assert_eq!(v["error"], "admin APIs disabled");
    // Reads and /metrics stay open in header mode.
    let (s, _) = f.get("/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = f.get_json("/api/v1/labels", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // --auth=none trusts every caller too: the same switch.
    let f = fixture_args(1 << 20, |c| c.auth = AuthMode::None).await;
    let req = Request::post("/api/v1/admin/flush")
        .body(Body::empty())
        .unwrap();
    assert_eq!(f.send(req).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let f = fixture_args(1 << 20, |c| {
        c.auth = AuthMode::None;
        c.enable_admin_api = true;
    })
    .await;
    let req = Request::post("/api/v1/admin/flush")
        .body(Body::empty())
        .unwrap();
    assert_eq!(f.send(req).await.0, StatusCode::OK);
}
