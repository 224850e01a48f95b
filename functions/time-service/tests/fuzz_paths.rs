//! Property: no path a client can send makes the router answer 5xx or panic.

mod common;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use tower::ServiceExt;

fn status_for(path: &str) -> Option<u16> {
    let req = Request::builder().uri(path).body(Body::empty()).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let router = time_service::app_with_clock("beta", common::winter);
    Some(rt.block_on(router.oneshot(req)).unwrap().status().as_u16())
}

/// Path segments mixing zone-like pieces, escapes (valid and not), dots and noise.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("time".to_owned()),
        Just("America".to_owned()),
        Just("New_York".to_owned()),
        Just("..".to_owned()),
        Just("%2F".to_owned()),
        Just("%".to_owned()),
        Just("%FF".to_owned()),
        Just("%C3%28".to_owned()),
        "[A-Za-z0-9_+\\-.~%]{0,24}",
        "(%[0-9A-Fa-f]{2}){1,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn structured_paths_never_give_5xx(segs in prop::collection::vec(segment(), 0..8)) {
        let path = format!("/{}", segs.join("/"));
        if let Some(status) = status_for(&path) {
            prop_assert!(status < 500, "{} -> {}", path, status);
        }
    }

    #[test]
    fn time_prefixed_paths_never_give_5xx(rest in "[ -~]{0,300}") {
        let encoded: String = rest.bytes().map(|b| match b {
            b' ' | b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'^' | b'|' | b'\\' | b'#' | b'?' => format!("%{b:02X}"),
            _ => (b as char).to_string(),
        }).collect();
        let path = format!("/time/{encoded}");
        if let Some(status) = status_for(&path) {
            prop_assert!(status < 500, "{} -> {}", path, status);
        }
    }
}

#[test]
fn a_long_path_is_refused_quickly_not_hung() {
    let path = format!("/time/{}", "%41".repeat(4000));
    assert_eq!(status_for(&path), Some(400));
}
