//! Time zone lookup: IANA names, case-insensitive, with old link names mapped
//! to their canonical zone and a "did you mean" suggestion for typos.

use crate::tzdb::{self, NAMES};

pub use crate::tzdb::{Zone, ZoneOffset};

/// The tzdata release the service answers from.
pub const TZDATA_RELEASE: &str = tzdb::TZDATA_RELEASE;

/// The longest name we try to resolve. The longest IANA name is 32 bytes
/// (`America/Argentina/ComodRivadavia`); anything far longer is not a zone,
/// and refusing it early keeps the suggestion search cheap.
pub const MAX_ZONE_NAME_LEN: usize = 64;

/// A zone a request resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The zone whose rules give the time.
    pub zone: Zone,
    /// Its canonical IANA name (`America/New_York` for `US/Eastern`).
    pub canonical: &'static str,
}

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    Empty,
    TooLong,
    Unknown { suggestion: Option<&'static str> },
}

/// Resolves a zone name as a client sent it (already percent-decoded).
pub fn resolve(name: &str) -> Result<Resolved, LookupError> {
    if name.is_empty() {
        return Err(LookupError::Empty);
    }
    if name.len() > MAX_ZONE_NAME_LEN {
        return Err(LookupError::TooLong);
    }
    match tzdb::find(name) {
        Some(entry) => Ok(Resolved {
            zone: entry.zone(),
            canonical: entry.canonical,
        }),
        None => Err(LookupError::Unknown {
            suggestion: suggest(&name.to_ascii_lowercase()),
        }),
    }
}

/// UTC, for `GET /time`.
pub fn utc() -> Resolved {
    resolve("Etc/UTC").expect("tzdata defines Etc/UTC")
}

/// The canonical zone closest to `lower` (a lower-cased name), if any is
/// close enough to be a likely typo: "america/new_yrok", "Europe/Londn",
/// "new york", or just the city, "tokyo".
fn suggest(lower: &str) -> Option<&'static str> {
    let normalized = lower.trim_matches('/').replace(' ', "_");
    fn city_of(name: &str) -> &str {
        name.rsplit('/').next().unwrap_or(name)
    }
    let wanted_city = city_of(&normalized);
    let mut best: Option<(f64, &'static str)> = None;
    // Compared in lower case: the tables hold each name's lower-case key.
    for entry in NAMES.iter().filter(|entry| entry.name == entry.canonical) {
        let full = strsim::jaro_winkler(&normalized, entry.key);
        let city = strsim::jaro_winkler(wanted_city, city_of(entry.key));
        // The full name counts most; a city match alone must be near exact.
        let score = full.max(city - 0.05);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, entry.name));
        }
    }
    best.filter(|(score, _)| *score >= 0.88)
        .map(|(_, name)| name)
}

/// Every name (canonical or link) the service accepts.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    NAMES.iter().map(|entry| entry.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_resolve_to_themselves() {
        let r = resolve("America/New_York").unwrap();
        assert_eq!(r.canonical, "America/New_York");
        assert_eq!(r.zone, resolve("US/Eastern").unwrap().zone);
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(
            resolve("america/NEW_york").unwrap().canonical,
            "America/New_York"
        );
    }

    #[test]
    fn old_link_names_resolve_to_their_canonical_zone() {
        assert_eq!(resolve("US/Eastern").unwrap().canonical, "America/New_York");
        assert_eq!(resolve("Asia/Calcutta").unwrap().canonical, "Asia/Kolkata");
        assert_eq!(resolve("UTC").unwrap().canonical, "Etc/UTC");
    }

    #[test]
    fn zone_tab_locations_merged_since_1970_keep_their_own_name() {
        assert_eq!(
            resolve("Europe/Amsterdam").unwrap().canonical,
            "Europe/Amsterdam"
        );
    }

    #[test]
    fn three_part_names_resolve() {
        assert_eq!(
            resolve("America/Argentina/Buenos_Aires").unwrap().canonical,
            "America/Argentina/Buenos_Aires"
        );
    }

    #[test]
    fn empty_and_overlong_names_are_refused_before_lookup() {
        assert_eq!(resolve(""), Err(LookupError::Empty));
        assert_eq!(resolve(&"a".repeat(65)), Err(LookupError::TooLong));
    }

    #[test]
    fn a_typo_gets_the_closest_zone_as_suggestion() {
        assert_eq!(
            resolve("America/New_Yrok"),
            Err(LookupError::Unknown {
                suggestion: Some("America/New_York")
            })
        );
        assert_eq!(
            resolve("Europe/Londn"),
            Err(LookupError::Unknown {
                suggestion: Some("Europe/London")
            })
        );
    }

    #[test]
    fn a_bare_city_gets_its_zone_as_suggestion() {
        assert_eq!(
            resolve("Tokyo"),
            Err(LookupError::Unknown {
                suggestion: Some("Asia/Tokyo")
            })
        );
    }

    #[test]
    fn nonsense_gets_no_suggestion() {
        assert_eq!(
            resolve("zzzzqqqq-9"),
            Err(LookupError::Unknown { suggestion: None })
        );
    }

    #[test]
    fn a_canonical_name_is_its_own_canonical_name() {
        for name in all_names() {
            let canonical = resolve(name).unwrap().canonical;
            assert_eq!(resolve(canonical).unwrap().canonical, canonical, "{name}");
        }
    }

    #[test]
    fn links_between_zone_tab_locations_are_not_renamed_but_old_names_are() {
        let renamed: Vec<&str> = all_names()
            .filter(|n| resolve(n).unwrap().canonical != *n)
            .collect();
        assert!(renamed.contains(&"America/Buenos_Aires"));
        assert!(renamed.contains(&"GMT"));
        assert!(!renamed.contains(&"Europe/Oslo"));
        assert!(!renamed.contains(&"Africa/Accra"));
    }

    /// build.rs finds the "Pre-2013 practice" section of tzdata's backward
    /// file by its heading; if a tzdata update split that section, the names
    /// after the split would start answering with their link target.
    #[test]
    fn every_link_of_the_pre_2013_section_keeps_its_name_to_the_sections_end() {
        for name in [
            "Africa/Accra",
            "America/Anguilla",
            "Asia/Kuwait",
            "Europe/Oslo",
            "Pacific/Wake",
            "Pacific/Wallis",
        ] {
            assert_eq!(resolve(name).unwrap().canonical, name);
        }
        let renamed = all_names()
            .filter(|n| resolve(n).unwrap().canonical != *n)
            .count();
        assert_eq!(
            renamed, 151,
            "tzdata {TZDATA_RELEASE}: check build.rs's backward sections, then update this count"
        );
    }

    #[test]
    fn utc_is_etc_utc_with_offset_zero() {
        let utc = utc();
        assert_eq!(utc.canonical, "Etc/UTC");
        assert_eq!(utc.zone.offset_at(1_795_705_634).seconds, 0);
    }

    #[test]
    fn every_name_resolves() {
        for name in all_names() {
            let resolved = resolve(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(resolve(resolved.canonical).is_ok(), "{name}");
        }
    }
}
