//! Deployment windows: CodePipeline's `DeploymentWindow` rule (a stage
//! condition rule) evaluated on a clock.
//!
//! The rule's configuration, from "DeploymentWindow" (AWS CodePipeline rule
//! reference, AWS CodePipeline User Guide):
//! - `Cron` (required): "the days and times when the deployment will be
//!   allowed", 6 required fields and an optional year, separated by white
//!   space: seconds (`*` only: "N/A"), minutes 0-59, hours 0-23,
//!   day-of-month 1-31 (`, - * ? / L W`), month 1-12 or JAN-DEC, day-of-week
//!   1-7 or SUN-SAT (`, - * ? / L #`), year 1970-2199. Names and letters are
//!   not case sensitive. (The Quartz-style format, with SUN = 1; not
//!   EventBridge's 6-field `cron()`, which has no seconds field.)
//! - `TimeZone` (optional): Region/City (`Europe/Berlin`), `UTC` with an
//!   optional `+HH:MM`/`-HH:MM` offset (the default), or a 3 to 5 letter
//!   abbreviation from the table the page links (Java's time zone IDs:
//!   `PST` is America/Los_Angeles, `EST` a fixed -05:00).
//!
//! Our reading, where the page is silent: the window is the set of minutes
//! the expression matches, in the zone's wall-clock time (the page's own
//! example `0 0 9-17 ? * MON-FRI *` sets seconds to 0, so the seconds field
//! is accepted as `*` or numbers and ignored); a repeated wall-clock hour
//! (daylight saving time ending) is open twice, a skipped one never.
//! Day-of-month and day-of-week cannot both be given: one must be `?`
//! (Quartz's rule, which the page's table and wording come from).

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc, Weekday,
};

/// Why a `DeploymentWindow` rule's configuration cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "Cron {cron:?} has {count} fields; it needs 6 or 7 (seconds minutes hours day-of-month month day-of-week [year]), e.g. \"0 * 9-16 ? * MON-FRI *\""
    )]
    FieldCount { cron: String, count: usize },
    #[error("Cron {cron:?}, {field} field {value:?}: {why}")]
    Field {
        cron: String,
        field: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "Cron {cron:?}: day-of-month and day-of-week cannot both be given; put '?' in one of them (e.g. \"0 * 9-16 ? * MON-FRI *\")"
    )]
    BothDays { cron: String },
    #[error(
        "Cron {cron:?}: day-of-month and day-of-week cannot both be '?'; put '*' in one of them"
    )]
    NoDays { cron: String },
    #[error(
        "TimeZone {0:?} is not a time zone the rehearsal knows: use Region/City (America/New_York), UTC, UTC+05:30, or an abbreviation such as PST"
    )]
    TimeZone(String),
}

/// A `DeploymentWindow` rule's schedule, ready to evaluate.
#[derive(Debug, Clone)]
pub struct DeploymentWindow {
    cron: Cron,
    zone: Zone,
    text: String,
}

impl DeploymentWindow {
    /// Parses the rule's `Cron` and `TimeZone` (empty or absent: UTC).
    pub fn parse(cron: &str, time_zone: Option<&str>) -> Result<Self, WindowError> {
        let zone = Zone::parse(time_zone.unwrap_or("").trim())?;
        Ok(Self {
            cron: Cron::parse(cron)?,
            text: format!("{} ({})", cron.trim(), zone),
            zone,
        })
    }

    /// Whether a deployment may start at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.cron.matches(&self.zone.local(now))
    }

    /// The first instant at or after `now` that is inside the window (`now`
    /// itself, to the minute, when it is open); `None` when the expression
    /// never matches again (a past year, or the 30th of February).
    pub fn next_opening(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(now) {
            return Some(now);
        }
        let local = self.zone.local(now);
        let mut day = local.date();
        let last = NaiveDate::from_ymd_opt(2199, 12, 31)?;
        let mut from = local.time().with_second(0)?.with_nanosecond(0)?;
        while day <= last {
            if self.cron.day_matches(day) {
                for hour in from.hour()..24 {
                    if !self.cron.hours.contains(hour) {
                        continue;
                    }
                    let first_minute = if hour == from.hour() {
                        from.minute()
                    } else {
                        0
                    };
                    for minute in first_minute..60 {
                        if !self.cron.minutes.contains(minute) {
                            continue;
                        }
                        let wall = day.and_hms_opt(hour, minute, 0)?;
                        // A wall-clock time the zone skips has no instant;
                        // a repeated one opens at its first occurrence.
                        if let Some(at) = self.zone.instant(wall)
                            && at > now
                        {
                            return Some(at);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
            from = NaiveTime::MIN;
        }
        None
    }
}

impl fmt::Display for DeploymentWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The rule's time zone.
#[derive(Debug, Clone, Copy)]
enum Zone {
    Named(chrono_tz::Tz),
    Fixed(FixedOffset),
}

/// Java's short time zone IDs (`ZoneId.SHORT_IDS`), the table of
/// abbreviations the DeploymentWindow page links to.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("ACT", "Australia/Darwin"),
    ("AET", "Australia/Sydney"),
    ("AGT", "America/Argentina/Buenos_Aires"),
    ("ART", "Africa/Cairo"),
    ("AST", "America/Anchorage"),
    ("BET", "America/Sao_Paulo"),
    ("BST", "Asia/Dhaka"),
    ("CAT", "Africa/Harare"),
    ("CNT", "America/St_Johns"),
    ("CST", "America/Chicago"),
    ("CTT", "Asia/Shanghai"),
    ("EAT", "Africa/Addis_Ababa"),
    ("ECT", "Europe/Paris"),
    ("IET", "America/Indiana/Indianapolis"),
    ("IST", "Asia/Kolkata"),
    ("JST", "Asia/Tokyo"),
    ("MIT", "Pacific/Apia"),
    ("NET", "Asia/Yerevan"),
    ("NST", "Pacific/Auckland"),
    ("PLT", "Asia/Karachi"),
    ("PNT", "America/Phoenix"),
    ("PRT", "America/Puerto_Rico"),
    ("PST", "America/Los_Angeles"),
    ("SST", "Pacific/Guadalcanal"),
    ("VST", "Asia/Ho_Chi_Minh"),
];

/// Java's fixed-offset short IDs (hours east of UTC).
const FIXED_ABBREVIATIONS: &[(&str, i32)] = &[("EST", -5), ("MST", -7), ("HST", -10)];

impl Zone {
    fn parse(text: &str) -> Result<Self, WindowError> {
        let bad = || WindowError::TimeZone(text.to_string());
        if text.is_empty() || text == "UTC" {
            return Ok(Zone::Fixed(FixedOffset::east_opt(0).ok_or_else(bad)?));
        }
        if let Some(offset) = text.strip_prefix("UTC") {
            let (sign, rest) = match offset.as_bytes().first() {
                Some(b'+') => (1, &offset[1..]),
                Some(b'-') => (-1, &offset[1..]),
                _ => return Err(bad()),
            };
            let (h, m) = rest.split_once(':').ok_or_else(bad)?;
            let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 18 || m > 59 || rest.len() != 5 {
                return Err(bad());
            }
            let offset = FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)?;
            return Ok(Zone::Fixed(offset));
        }
        if let Some((_, hours)) = FIXED_ABBREVIATIONS.iter().find(|(a, _)| *a == text) {
            return Ok(Zone::Fixed(
                FixedOffset::east_opt(hours * 3600).ok_or_else(bad)?,
            ));
        }
        let name = ABBREVIATIONS
            .iter()
            .find(|(a, _)| *a == text)
            .map_or(text, |(_, name)| name);
        chrono_tz::Tz::from_str(name)
            .map(Zone::Named)
            .map_err(|_| bad())
    }

    fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Named(tz) => at.with_timezone(tz).naive_local(),
            Zone::Fixed(offset) => at.with_timezone(offset).naive_local(),
        }
    }

    /// The instant of a wall-clock time: the earlier one when the time
    /// occurs twice, `None` when the zone skips it.
    fn instant(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let earliest = |r: LocalResult<DateTime<Utc>>| match r {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t),
            LocalResult::None => None,
        };
        match self {
            Zone::Named(tz) => earliest(tz.from_local_datetime(&wall).map(|t| t.to_utc())),
            Zone::Fixed(offset) => earliest(offset.from_local_datetime(&wall).map(|t| t.to_utc())),
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Named(tz) => write!(f, "{}", tz.name()),
            Zone::Fixed(offset) if offset.local_minus_utc() == 0 => f.write_str("UTC"),
            Zone::Fixed(offset) => write!(f, "UTC{offset}"),
        }
    }
}

/// A set of small numbers (0..=63).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Set(u64);

impl Set {
    fn contains(self, n: u32) -> bool {
        n < 64 && self.0 & (1 << n) != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    /// `?`
    NoSpec,
    Days(Set),
    /// `L` or `L-n`: the last day, or `n` days before it.
    Last(u32),
    /// `LW`: the last weekday (Monday to Friday) of the month.
    LastWeekday,
    /// `nW`: the weekday nearest the `n`th, within the month.
    NearestWeekday(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    /// `?`
    NoSpec,
    /// Days as 1 (SUN) to 7 (SAT).
    Days(Set),
    /// `nL`: the last such day of the month.
    Last(u32),
    /// `n#k`: the `k`th such day of the month.
    Nth(u32, u32),
}

#[derive(Debug, Clone)]
struct Cron {
    minutes: Set,
    hours: Set,
    day_of_month: DayOfMonth,
    months: Set,
    day_of_week: DayOfWeek,
    /// Years since 1970 would not fit a u64 set; kept as ranges.
    years: Option<Vec<(u32, u32, u32)>>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

impl Cron {
    fn parse(text: &str) -> Result<Self, WindowError> {
        let cron = text.trim().to_string();
        let fields: Vec<&str> = cron.split_whitespace().collect();
        if !(6..=7).contains(&fields.len()) {
            return Err(WindowError::FieldCount {
                count: fields.len(),
                cron,
            });
        }
        let field_error = |field: &'static str, value: &str, why: String| WindowError::Field {
            cron: cron.clone(),
            field,
            value: value.to_string(),
            why,
        };
        let spec = |name, min, max, names| FieldSpec {
            name,
            min,
            max,
            names,
        };
        // Seconds: accepted and ignored (the window is minutes).
        let seconds = spec("seconds", 0, 59, &[]);
        ranges(&seconds, fields[0]).map_err(|why| field_error("seconds", fields[0], why))?;
        let minutes = set(&spec("minutes", 0, 59, &[]), fields[1])
            .map_err(|why| field_error("minutes", fields[1], why))?;
        let hours = set(&spec("hours", 0, 23, &[]), fields[2])
            .map_err(|why| field_error("hours", fields[2], why))?;
        let day_of_month =
            day_of_month(fields[3]).map_err(|why| field_error("day-of-month", fields[3], why))?;
        let months = set(&spec("month", 1, 12, &MONTHS), fields[4])
            .map_err(|why| field_error("month", fields[4], why))?;
        let day_of_week =
            day_of_week(fields[5]).map_err(|why| field_error("day-of-week", fields[5], why))?;
        let years = match fields.get(6) {
            None => None,
            Some(year) => Some(
                ranges(&spec("year", 1970, 2199, &[]), year)
                    .map_err(|why| field_error("year", year, why))?,
            ),
        };
        match (&day_of_month, &day_of_week) {
            (DayOfMonth::NoSpec, DayOfWeek::NoSpec) => return Err(WindowError::NoDays { cron }),
            (DayOfMonth::NoSpec, _) | (_, DayOfWeek::NoSpec) => {}
            _ => return Err(WindowError::BothDays { cron }),
        }
        Ok(Cron {
            minutes,
            hours,
            day_of_month,
            months,
            day_of_week,
            years,
        })
    }

    fn matches(&self, local: &NaiveDateTime) -> bool {
        self.hours.contains(local.hour())
            && self.minutes.contains(local.minute())
            && self.day_matches(local.date())
    }

    fn day_matches(&self, day: NaiveDate) -> bool {
        if !self.months.contains(day.month()) {
            return false;
        }
        if let Some(years) = &self.years {
            let year = u32::try_from(day.year()).unwrap_or(0);
            if !years
                .iter()
                .any(|&(a, b, step)| (a..=b).contains(&year) && (year - a) % step == 0)
            {
                return false;
            }
        }
        let last = last_day_of_month(day);
        let dom = day.day();
        let dom_ok = match self.day_of_month {
            DayOfMonth::NoSpec => true,
            DayOfMonth::Days(set) => set.contains(dom),
            DayOfMonth::Last(offset) => last.checked_sub(offset) == Some(dom),
            DayOfMonth::LastWeekday => weekday_near(day, last, last) == Some(dom),
            DayOfMonth::NearestWeekday(n) => n <= last && weekday_near(day, n, last) == Some(dom),
        };
        // 1 (SUN) to 7 (SAT).
        let dow = day.weekday().num_days_from_sunday() + 1;
        let dow_ok = match self.day_of_week {
            DayOfWeek::NoSpec => true,
            DayOfWeek::Days(set) => set.contains(dow),
            DayOfWeek::Last(d) => d == dow && dom + 7 > last,
            DayOfWeek::Nth(d, k) => d == dow && (dom - 1) / 7 + 1 == k,
        };
        dom_ok && dow_ok
    }
}

fn last_day_of_month(day: NaiveDate) -> u32 {
    let (y, m) = (day.year(), day.month());
    let first_of_next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    first_of_next
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// The weekday nearest day `n` of `day`'s month, not leaving the month.
fn weekday_near(day: NaiveDate, n: u32, last: u32) -> Option<u32> {
    let target = day.with_day(n)?;
    Some(match target.weekday() {
        Weekday::Sat if n == 1 => 3,
        Weekday::Sat => n - 1,
        Weekday::Sun if n == last => n - 2,
        Weekday::Sun => n + 1,
        _ => n,
    })
}

/// One value: a number, or a name (case-insensitive) numbered from `min`.
fn value(spec: &FieldSpec, text: &str) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    let n = match spec.names.iter().position(|name| *name == upper) {
        Some(i) => spec.min + u32::try_from(i).map_err(|e| e.to_string())?,
        None => text.parse::<u32>().map_err(|_| {
            let names = if spec.names.is_empty() {
                String::new()
            } else {
                format!(" or {}-{}", spec.names[0], spec.names[spec.names.len() - 1])
            };
            format!(
                "{text:?} is not a {} value ({}-{}{names})",
                spec.name, spec.min, spec.max
            )
        })?,
    };
    if !(spec.min..=spec.max).contains(&n) {
        return Err(format!(
            "{n} is out of range for {} ({}-{})",
            spec.name, spec.min, spec.max
        ));
    }
    Ok(n)
}

/// A comma-separated list of `*`, `n`, `a-b`, each with an optional `/step`.
fn ranges(spec: &FieldSpec, text: &str) -> Result<Vec<(u32, u32, u32)>, String> {
    text.split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step
                        .parse()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("step {step:?} is not a positive number"))?;
                    (range, Some(step))
                }
                None => (item, None),
            };
            let (a, b) = match range {
                "*" => (spec.min, spec.max),
                "" => return Err("an empty list item".to_string()),
                _ => match range.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (value(spec, a)?, value(spec, b)?);
                        if a > b {
                            return Err(format!("range {range} runs backwards"));
                        }
                        (a, b)
                    }
                    // `a/step` runs from a to the field's maximum.
                    None if step.is_some() => (value(spec, range)?, spec.max),
                    None => {
                        let a = value(spec, range)?;
                        (a, a)
                    }
                },
            };
            Ok((a, b, step.unwrap_or(1)))
        })
        .collect()
}

fn set(spec: &FieldSpec, text: &str) -> Result<Set, String> {
    let mut bits = 0u64;
    for (a, b, step) in ranges(spec, text)? {
        for n in (a..=b).step_by(step as usize) {
            bits |= 1 << n;
        }
    }
    Ok(Set(bits))
}

fn day_of_month(text: &str) -> Result<DayOfMonth, String> {
    let upper = text.to_ascii_uppercase();
    let spec = FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    };
    Ok(match upper.as_str() {
        "?" => DayOfMonth::NoSpec,
        "L" => DayOfMonth::Last(0),
        "LW" => DayOfMonth::LastWeekday,
        _ if upper.starts_with("L-") => {
            let offset: u32 = upper[2..]
                .parse()
                .ok()
                .filter(|n| (1..=30).contains(n))
                .ok_or_else(|| format!("{text}: L-n takes n from 1 to 30"))?;
            DayOfMonth::Last(offset)
        }
        _ if upper.ends_with('W') => {
            DayOfMonth::NearestWeekday(value(&spec, &upper[..upper.len() - 1])?)
        }
        _ if upper.contains(['L', 'W', '#']) => {
            return Err("L and W stand alone (L, L-3, LW, 15W), not in lists or ranges".into());
        }
        _ => DayOfMonth::Days(set(&spec, text)?),
    })
}

fn day_of_week(text: &str) -> Result<DayOfWeek, String> {
    let upper = text.to_ascii_uppercase();
    let spec = FieldSpec {
        name: "day-of-week",
        min: 1,
        max: 7,
        names: &DAYS,
    };
    Ok(match upper.as_str() {
        "?" => DayOfWeek::NoSpec,
        // `L` alone is the last day of the week: 7, SAT.
        "L" => DayOfWeek::Days(Set(1 << 7)),
        _ if upper.len() > 1 && upper.ends_with('L') => {
            DayOfWeek::Last(value(&spec, &upper[..upper.len() - 1])?)
        }
        _ if upper.contains('#') => {
            let (day, nth) = upper.split_once('#').unwrap_or_default();
            let nth: u32 = nth
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| format!("{text}: day#n takes n from 1 to 5"))?;
            DayOfWeek::Nth(value(&spec, day)?, nth)
        }
        _ if upper.contains('L') => {
            return Err("L stands alone or after one day (6L), not in lists or ranges".into());
        }
        _ => DayOfWeek::Days(set(&spec, text)?),
    })
}

/// The next opening as text for messages: in the window's zone and UTC.
pub fn describe_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How long from `now` to `at`, for messages ("in 2 h 5 min").
pub fn describe_wait(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let minutes = (at - now).num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} d"));
    }
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    if mins > 0 || parts.is_empty() {
        parts.push(format!("{mins} min"));
    }
    format!("in {}", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn window(cron: &str, zone: &str) -> DeploymentWindow {
        DeploymentWindow::parse(cron, Some(zone)).unwrap()
    }

    const WEEKDAY_HOURS: &str = "0 * 9-16 ? * MON-FRI *";

    #[test]
    fn a_weekday_inside_business_hours_is_open() {
        // 2026-12-01 is a Tuesday.
        assert!(window(WEEKDAY_HOURS, "UTC").is_open(at("2026-12-01T09:00:00Z")));
        assert!(window(WEEKDAY_HOURS, "UTC").is_open(at("2026-12-01T16:59:59Z")));
    }

    #[test]
    fn after_hours_and_weekends_are_closed() {
        let w = window(WEEKDAY_HOURS, "UTC");
        assert!(!w.is_open(at("2026-12-01T17:00:00Z")));
        assert!(!w.is_open(at("2026-12-01T08:59:59Z")));
        assert!(!w.is_open(at("2026-12-05T12:00:00Z")), "a Saturday");
    }

    #[test]
    fn the_next_opening_after_friday_evening_is_monday_morning() {
        let w = window(WEEKDAY_HOURS, "UTC");
        // Friday 2026-12-04 18:30 -> Monday 2026-12-07 09:00.
        assert_eq!(
            w.next_opening(at("2026-12-04T18:30:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
    }

    #[test]
    fn the_next_opening_of_an_open_window_is_now() {
        let w = window(WEEKDAY_HOURS, "UTC");
        let now = at("2026-12-01T10:15:30Z");
        assert_eq!(w.next_opening(now), Some(now));
    }

    #[test]
    fn the_window_is_read_in_its_time_zone() {
        let w = window(WEEKDAY_HOURS, "America/New_York");
        // 09:00 in New York in December is 14:00 UTC.
        assert!(!w.is_open(at("2026-12-01T13:59:00Z")));
        assert!(w.is_open(at("2026-12-01T14:00:00Z")));
        assert_eq!(
            w.next_opening(at("2026-12-01T03:00:00Z")),
            Some(at("2026-12-01T14:00:00Z"))
        );
    }

    #[test]
    fn a_window_in_a_skipped_hour_opens_after_the_skip_and_a_repeated_hour_at_its_first_occurrence()
    {
        // Europe/Berlin: 2026-03-29 02:00 -> 03:00 (02:xx does not exist).
        let gap = window("0 30 2 ? * SUN *", "Europe/Berlin");
        assert_eq!(
            gap.next_opening(at("2026-03-28T12:00:00Z")),
            // The next Sunday whose 02:30 exists: 2026-04-05, 00:30 UTC (CEST).
            Some(at("2026-04-05T00:30:00Z"))
        );
        // 2026-10-25 03:00 -> 02:00: 02:30 happens twice; the first is 00:30 UTC.
        let repeated = window("0 30 2 25 OCT ? 2026", "Europe/Berlin");
        assert_eq!(
            repeated.next_opening(at("2026-10-24T12:00:00Z")),
            Some(at("2026-10-25T00:30:00Z"))
        );
        assert!(
            repeated.is_open(at("2026-10-25T01:30:00Z")),
            "the second 02:30"
        );
    }

    #[test]
    fn utc_offsets_and_abbreviations_are_time_zones() {
        let india = window("0 * 9 ? * * *", "UTC+05:30");
        assert!(india.is_open(at("2026-12-01T03:30:00Z")));
        let pst = window("0 * 9 ? * * *", "PST");
        assert!(
            pst.is_open(at("2026-12-01T17:00:00Z")),
            "PST is Los Angeles"
        );
        let est = window("0 * 9 ? * * *", "EST");
        assert!(
            est.is_open(at("2026-07-01T14:00:00Z")),
            "EST is a fixed -05:00"
        );
        let default = DeploymentWindow::parse("0 * 9 ? * * *", None).unwrap();
        assert!(
            default.is_open(at("2026-12-01T09:00:00Z")),
            "UTC by default"
        );
    }

    #[test]
    fn lists_steps_names_and_years_match() {
        let w = window("* 0/15 8,12 ? JAN-MAR,DEC mon,WED 2026-2027", "UTC");
        assert!(
            w.is_open(at("2026-12-02T12:45:00Z")),
            "a Wednesday in December"
        );
        assert!(!w.is_open(at("2026-12-02T12:44:00Z")));
        assert!(!w.is_open(at("2026-12-03T12:45:00Z")), "a Thursday");
        assert!(!w.is_open(at("2028-01-03T08:00:00Z")), "2028 is not listed");
        assert_eq!(w.next_opening(at("2027-12-31T23:00:00Z")), None);
    }

    #[test]
    fn last_days_nearest_weekdays_and_nth_weekdays_match() {
        let last = window("0 * * L * ? *", "UTC");
        assert!(last.is_open(at("2028-02-29T10:00:00Z")), "a leap February");
        assert!(!last.is_open(at("2028-02-28T10:00:00Z")));
        let third_to_last = window("0 * * L-2 * ? *", "UTC");
        assert!(third_to_last.is_open(at("2026-12-29T10:00:00Z")));
        // 2026-11-15 is a Sunday: 15W is Monday the 16th.
        let near = window("0 * * 15W * ? *", "UTC");
        assert!(near.is_open(at("2026-11-16T10:00:00Z")));
        assert!(!near.is_open(at("2026-11-15T10:00:00Z")));
        // 2026-10-31 is a Saturday: LW is Friday the 30th.
        let last_weekday = window("0 * * LW * ? *", "UTC");
        assert!(last_weekday.is_open(at("2026-10-30T10:00:00Z")));
        // The third Friday of December 2026 is the 18th; the last, the 25th.
        assert!(window("0 * * ? * 6#3 *", "UTC").is_open(at("2026-12-18T10:00:00Z")));
        assert!(window("0 * * ? * 6L *", "UTC").is_open(at("2026-12-25T10:00:00Z")));
        assert!(!window("0 * * ? * 6L *", "UTC").is_open(at("2026-12-18T10:00:00Z")));
    }

    #[test]
    fn bad_expressions_say_which_field_is_wrong() {
        let err = |cron: &str| DeploymentWindow::parse(cron, None).unwrap_err().to_string();
        assert!(
            err("0 9-17 * *").contains("has 4 fields"),
            "{}",
            err("0 9-17 * *")
        );
        let hours = err("0 * 9-25 ? * MON-FRI *");
        assert!(
            hours.contains("hours field \"9-25\"") && hours.contains("0-23"),
            "{hours}"
        );
        let day = err("0 * 9 ? * FUNDAY *");
        assert!(
            day.contains("day-of-week") && day.contains("SUN-SAT"),
            "{day}"
        );
        assert!(err("0 * 9 * * MON *").contains("put '?' in one of them"));
        assert!(err("0 * 9 ? * ? *").contains("cannot both be '?'"));
        assert!(err("0 * 17-9 ? * * *").contains("runs backwards"));
        assert!(err("0 */0 9 ? * * *").contains("step"));
    }

    #[test]
    fn an_unknown_time_zone_is_an_error_naming_the_formats() {
        let err = DeploymentWindow::parse(WEEKDAY_HOURS, Some("Mars/Olympus"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Mars/Olympus") && err.contains("Region/City"),
            "{err}"
        );
        assert!(DeploymentWindow::parse(WEEKDAY_HOURS, Some("UTC+5")).is_err());
    }

    #[test]
    fn the_wait_is_described_in_days_hours_and_minutes() {
        let now = at("2026-12-04T18:30:00Z");
        assert_eq!(
            describe_wait(now, at("2026-12-07T09:00:00Z")),
            "in 2 d 14 h 30 min"
        );
        assert_eq!(describe_wait(now, now), "in 0 min");
    }
}
