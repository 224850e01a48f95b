//! The service's own compiled tzdata (build.rs) agrees with chrono-tz, built
//! from the same tzdata release, for every name at every instant we check:
//! both sides of each of our transitions, every day (noon UTC) from 1970 to
//! 2040 so that a short-lived transition only chrono-tz has would show, and
//! the first of every month from 1800 to 2200.

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::{OffsetName, TZ_VARIANTS, Tz};
use time_service::zones::{self, Zone, ZoneOffset};

/// (seconds east of UTC, abbreviation) as chrono-tz gives them. chrono-tz
/// 0.10 leaves tzdata's `%z` unexpanded and reports no abbreviation there;
/// zic (and our parser) expand it to the numeric form, `+0230`.
fn chrono_tz_offset(tz: Tz, unix_seconds: i64) -> (i32, String) {
    let utc = DateTime::from_timestamp(unix_seconds, 0).expect("instant in chrono's range");
    let offset = tz.offset_from_utc_datetime(&utc.naive_utc());
    let seconds = offset.fix().local_minus_utc();
    let abbreviation = offset
        .abbreviation()
        .map_or_else(|| numeric(seconds), str::to_owned);
    (seconds, abbreviation)
}

/// zic's `%z`: `-03`, `+0530`, `+002018` (hours, then minutes and seconds
/// only as far as they are needed).
fn numeric(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (m, s) {
        (0, 0) => format!("{sign}{h:02}"),
        (m, 0) => format!("{sign}{h:02}{m:02}"),
        (m, s) => format!("{sign}{h:02}{m:02}{s:02}"),
    }
}

fn our_offset(zone: Zone, unix_seconds: i64) -> (i32, String) {
    let ZoneOffset {
        seconds,
        abbreviation,
    } = zone.offset_at(unix_seconds);
    (seconds, abbreviation.to_owned())
}

fn zone(name: &str) -> Zone {
    zones::resolve(name)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
        .zone
}

/// 1800-01-01 to 2200-01-01, monthly (30.44 days).
fn monthly() -> impl Iterator<Item = i64> {
    (-5_364_662_400_i64..7_258_118_400).step_by(2_629_746)
}

#[test]
fn the_service_knows_exactly_the_names_chrono_tz_knows() {
    let mut ours: Vec<&str> = zones::all_names().collect();
    let mut theirs: Vec<&str> = TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs);
}

/// Asserts that `tz` and our zone of the same name agree at every instant;
/// returns how many were checked.
fn assert_agree(tz: Tz, instants: impl IntoIterator<Item = i64>) -> usize {
    let zone = zone(tz.name());
    let mut checked = 0;
    for instant in instants {
        assert_eq!(
            our_offset(zone, instant),
            chrono_tz_offset(tz, instant),
            "{} at {instant}",
            tz.name()
        );
        checked += 1;
    }
    checked
}

#[test]
fn every_name_agrees_with_chrono_tz_on_both_sides_of_every_transition() {
    let mut checked = 0;
    for tz in TZ_VARIANTS {
        let around = zone(tz.name())
            .transitions()
            .flat_map(|t| [t - 1, t, t + 1]);
        checked += assert_agree(tz, around);
    }
    assert!(checked > 100_000, "only {checked} instants checked");
}

#[test]
fn every_name_agrees_with_chrono_tz_every_month_from_1800_to_2200() {
    for tz in TZ_VARIANTS {
        assert_agree(tz, monthly());
    }
}

#[test]
fn every_name_agrees_with_chrono_tz_every_day_from_1970_to_2040() {
    for tz in TZ_VARIANTS {
        // 1970-01-01T12:00Z to 2040-01-01, daily.
        assert_agree(tz, (43_200_i64..2_208_988_800).step_by(86_400));
    }
}

#[test]
fn a_link_answers_with_its_targets_rules() {
    let eastern = zone("US/Eastern");
    for instant in monthly() {
        assert_eq!(
            our_offset(eastern, instant),
            chrono_tz_offset(Tz::America__New_York, instant)
        );
    }
}
