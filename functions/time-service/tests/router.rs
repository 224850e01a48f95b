//! The HTTP contract of the TimeService router, in-process.

mod common;

use axum::http::StatusCode;
use common::{get, send_with, summer, winter};
use serde_json::json;

#[tokio::test]
async fn time_answers_utc() {
    let r = get("/time").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json,
        json!({
            "timeZone": "Etc/UTC",
            "time": "2026-01-15T12:00:00+00:00",
            "utcOffset": "+00:00",
            "abbreviation": "UTC",
            "epochMillis": 1_768_478_400_000_i64,
        })
    );
}

#[tokio::test]
async fn a_slashed_zone_answers_with_its_offset() {
    let r = get("/time/America/New_York").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["timeZone"], "America/New_York");
    assert_eq!(r.json["time"], "2026-01-15T07:00:00-05:00");
    assert_eq!(r.json["utcOffset"], "-05:00");
    assert_eq!(r.json["abbreviation"], "EST");
    assert_eq!(r.json["epochMillis"], 1_768_478_400_000_i64);
}

#[tokio::test]
async fn daylight_saving_time_changes_the_offset() {
    let router = time_service::app_with_clock("beta", summer);
    let r = send_with(router, "GET", "/time/America/New_York").await;
    assert_eq!(r.json["utcOffset"], "-04:00");
    assert_eq!(r.json["abbreviation"], "EDT");
}

#[tokio::test]
async fn a_three_part_zone_answers() {
    let r = get("/time/America/Argentina/Buenos_Aires").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["timeZone"], "America/Argentina/Buenos_Aires");
    assert_eq!(r.json["utcOffset"], "-03:00");
    assert_eq!(r.json["abbreviation"], "-03");
}

#[tokio::test]
async fn a_percent_encoded_zone_answers_like_the_raw_one() {
    let encoded = get("/time/America%2FNew_York").await;
    let raw = get("/time/America/New_York").await;
    assert_eq!(encoded.status, StatusCode::OK);
    assert_eq!(encoded.json, raw.json);
    let lower = get("/time/america%2fnew_york").await;
    assert_eq!(lower.json, raw.json);
}

#[tokio::test]
async fn zone_names_match_case_insensitively() {
    let r = get("/time/EUROPE/london").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["timeZone"], "Europe/London");
}

#[tokio::test]
async fn old_link_names_answer_with_the_canonical_zone() {
    let r = get("/time/US/Eastern").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["timeZone"], "America/New_York");
    let r = get("/time/Asia/Calcutta").await;
    assert_eq!(r.json["timeZone"], "Asia/Kolkata");
    assert_eq!(r.json["utcOffset"], "+05:30");
}

#[tokio::test]
async fn a_trailing_slash_is_tolerated() {
    let r = get("/time/Europe/Paris/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["timeZone"], "Europe/Paris");
}

#[tokio::test]
async fn an_unknown_zone_is_a_400_naming_it_with_a_suggestion() {
    let r = get("/time/America/New_Yrok").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["timeZone"], "America/New_Yrok");
    assert_eq!(r.json["suggestion"], "America/New_York");
    assert!(
        r.json["error"]
            .as_str()
            .unwrap()
            .contains("America/New_York")
    );
}

#[tokio::test]
async fn an_unknown_zone_without_a_close_match_has_no_suggestion() {
    let r = get("/time/Qwxz/Vvvv").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["timeZone"], "Qwxz/Vvvv");
    assert!(r.json.get("suggestion").is_none());
}

#[tokio::test]
async fn an_empty_zone_is_a_400() {
    let r = get("/time/").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json["error"]
            .as_str()
            .unwrap()
            .contains("missing time zone")
    );
}

#[tokio::test]
async fn invalid_percent_encoding_is_a_400() {
    for uri in ["/time/Europe%2", "/time/%zz", "/time/%"] {
        let r = get(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            r.json["error"]
                .as_str()
                .unwrap()
                .contains("percent-encoded"),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn percent_encoded_non_utf8_bytes_are_a_400() {
    let r = get("/time/%C3%28%FF").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["timeZone"], "%C3%28%FF");
}

#[tokio::test]
async fn dot_dot_segments_are_just_an_unknown_zone() {
    let r = get("/time/../../etc/passwd").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["timeZone"], "../../etc/passwd");
}

#[tokio::test]
async fn a_10_kb_path_is_a_400_with_a_truncated_echo() {
    let uri = format!("/time/{}", "A".repeat(10_000));
    let r = get(&uri).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["timeZone"].as_str().unwrap().len() < 300);
}

#[tokio::test]
async fn an_unknown_path_is_a_404_json() {
    for uri in ["/", "/times", "/time2/UTC", "/api/time"] {
        let r = get(uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            r.json["error"].as_str().unwrap().contains("GET /time"),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_json() {
    for (method, uri) in [
        ("POST", "/time"),
        ("DELETE", "/time/Europe/London"),
        ("PUT", "/time/"),
    ] {
        let router = time_service::app_with_clock("beta", winter);
        let r = send_with(router, method, uri).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(r.headers["allow"], "GET, HEAD");
        assert!(r.json["error"].as_str().unwrap().contains(method));
    }
}

#[tokio::test]
async fn every_response_carries_json_no_store_and_the_stage() {
    for uri in [
        "/time",
        "/time/Europe/London",
        "/time/Nowhere",
        "/nope",
        "/time/%zz",
    ] {
        let r = get(uri).await;
        assert_eq!(r.headers["content-type"], "application/json", "{uri}");
        assert_eq!(r.headers["cache-control"], "no-store", "{uri}");
        assert_eq!(r.headers["x-service-stage"], "beta", "{uri}");
    }
    let router = time_service::app_with_clock("beta", winter);
    let r = send_with(router, "POST", "/time").await;
    assert_eq!(r.headers["x-service-stage"], "beta");
}

#[tokio::test]
async fn the_stage_header_names_the_stage_the_router_was_built_for() {
    let r = send_with(
        time_service::app_with_clock("gamma", winter),
        "GET",
        "/time",
    )
    .await;
    assert_eq!(r.headers["x-service-stage"], "gamma");
}

#[tokio::test]
async fn head_is_served_like_get_without_a_body() {
    let router = time_service::app_with_clock("beta", winter);
    let r = send_with(router, "HEAD", "/time").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, serde_json::Value::Null);
}
