//! Every zone chrono-tz knows answers, with chrono-tz's own offset.

mod common;

use axum::http::StatusCode;
use chrono::Offset;
use chrono_tz::TZ_VARIANTS;
use common::{send_with, summer, winter};
use time_service::api::format_offset;

#[tokio::test]
async fn every_known_zone_answers_200_with_chrono_tz_offset() {
    for clock in [winter as fn() -> _, summer] {
        let now = clock();
        let router = time_service::app_with_clock("beta", clock);
        for tz in TZ_VARIANTS {
            let r = send_with(router.clone(), "GET", &format!("/time/{}", tz.name())).await;
            assert_eq!(r.status, StatusCode::OK, "{}", tz.name());
            let expected = format_offset(now.with_timezone(&tz).offset().fix().local_minus_utc());
            assert_eq!(r.json["utcOffset"], expected.as_str(), "{}", tz.name());
            let abbreviation = r.json["abbreviation"].as_str().unwrap();
            assert!(!abbreviation.is_empty(), "{}: no abbreviation", tz.name());
            let time = r.json["time"].as_str().unwrap();
            assert!(
                time.ends_with(&expected) || (expected == "+00:00" && time.ends_with("+00:00")),
                "{}: {time}",
                tz.name()
            );
            let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap();
            assert_eq!(parsed.timestamp(), now.timestamp(), "{}", tz.name());
        }
    }
}
