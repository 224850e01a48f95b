//! Every zone chrono-tz knows answers, with chrono-tz's own offset, time and
//! abbreviation. The expected values are computed here with chrono and
//! chrono-tz alone, never with the service's own formatting code.

mod common;

use axum::http::StatusCode;
use chrono::{Offset, SecondsFormat};
use chrono_tz::{OffsetName, TZ_VARIANTS};
use common::{send_with, summer, winter};

/// `±HH:MM`, written by chrono's formatter (`%:z`).
fn chrono_offset_text(local: &chrono::DateTime<chrono_tz::Tz>) -> String {
    local.format("%:z").to_string()
}

/// A numeric abbreviation as tzdata writes one: `+03`, `-0930`.
fn is_numeric_abbreviation(text: &str) -> bool {
    let (sign, digits) = text.split_at(1);
    matches!(sign, "+" | "-")
        && matches!(digits.len(), 2 | 4)
        && digits.bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn every_known_zone_answers_200_with_chrono_tz_offset() {
    for clock in [winter as fn() -> _, summer] {
        let now = clock();
        let router = time_service::app_with_clock("beta", clock);
        for tz in TZ_VARIANTS {
            let name = tz.name();
            let r = send_with(router.clone(), "GET", &format!("/time/{name}")).await;
            assert_eq!(r.status, StatusCode::OK, "{name}");
            let local = now.with_timezone(&tz);

            assert_eq!(r.json["utcOffset"], chrono_offset_text(&local), "{name}");
            assert_eq!(
                r.json["time"],
                local.to_rfc3339_opts(SecondsFormat::Secs, false),
                "{name}"
            );
            assert_eq!(r.json["epochMillis"], now.timestamp_millis(), "{name}");
            let abbreviation = r.json["abbreviation"].as_str().unwrap();
            match local.offset().abbreviation() {
                Some(expected) => assert_eq!(abbreviation, expected, "{name}"),
                None => assert!(
                    is_numeric_abbreviation(abbreviation),
                    "{name}: {abbreviation:?} is neither chrono-tz's abbreviation nor numeric"
                ),
            }
            // The offset chrono-tz computes, in seconds, agrees with the text.
            let parsed =
                chrono::DateTime::parse_from_rfc3339(r.json["time"].as_str().unwrap()).unwrap();
            assert_eq!(
                parsed.offset().local_minus_utc(),
                local.offset().fix().local_minus_utc(),
                "{name}"
            );
        }
    }
}
