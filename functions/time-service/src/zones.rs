//! Time zone lookup: IANA names, case-insensitive, with old link names mapped
//! to their canonical zone and a "did you mean" suggestion for typos.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono_tz::{TZ_VARIANTS, Tz};

use crate::tz_links::LINKS;

/// The longest name we try to resolve. The longest IANA name is 32 bytes
/// (`America/Argentina/ComodRivadavia`); anything far longer is not a zone,
/// and refusing it early keeps the suggestion search cheap.
pub const MAX_ZONE_NAME_LEN: usize = 64;

/// A zone a request resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The zone whose rules give the time.
    pub tz: Tz,
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

struct Index {
    /// Lower-case name (canonical or link) -> (zone, canonical name).
    by_name: HashMap<String, Resolved>,
    /// Every canonical name, for suggestions.
    canonical: Vec<&'static str>,
}

static INDEX: LazyLock<Index> = LazyLock::new(build_index);

fn build_index() -> Index {
    let links: HashMap<&str, &str> = LINKS.iter().copied().collect();
    let mut by_name = HashMap::with_capacity(TZ_VARIANTS.len());
    let mut canonical = Vec::with_capacity(TZ_VARIANTS.len());
    for tz in TZ_VARIANTS {
        let name = tz.name();
        let target = links.get(name).copied().unwrap_or(name);
        // A link whose target chrono-tz lacks keeps its own name: never map a
        // working zone to one we cannot serve.
        let (tz_for_rules, canonical_name) = match target.parse::<Tz>() {
            Ok(target_tz) => (target_tz, target_tz.name()),
            Err(_) => (tz, name),
        };
        if canonical_name == name {
            canonical.push(name);
        }
        by_name.insert(
            name.to_ascii_lowercase(),
            Resolved {
                tz: tz_for_rules,
                canonical: canonical_name,
            },
        );
    }
    canonical.sort_unstable();
    Index { by_name, canonical }
}

/// Builds the lookup tables now rather than on the first request.
pub fn warm_up() {
    LazyLock::force(&INDEX);
}

/// Resolves a zone name as a client sent it (already percent-decoded).
pub fn resolve(name: &str) -> Result<Resolved, LookupError> {
    if name.is_empty() {
        return Err(LookupError::Empty);
    }
    if name.len() > MAX_ZONE_NAME_LEN {
        return Err(LookupError::TooLong);
    }
    let key = name.to_ascii_lowercase();
    match INDEX.by_name.get(&key) {
        Some(resolved) => Ok(*resolved),
        None => Err(LookupError::Unknown {
            suggestion: suggest(&key),
        }),
    }
}

/// The canonical zone closest to `lower` (a lower-cased name), if any is
/// close enough to be a likely typo: "america/new_yrok", "Europe/Londn",
/// "new york", or just the city, "tokyo".
fn suggest(lower: &str) -> Option<&'static str> {
    let normalized = lower.trim_matches('/').replace(' ', "_");
    let city_of = |name: &str| name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let wanted_city = city_of(&normalized);
    let mut best: Option<(f64, &'static str)> = None;
    for &name in &INDEX.canonical {
        let full = strsim::jaro_winkler(&normalized, &name.to_ascii_lowercase());
        let city = strsim::jaro_winkler(&wanted_city, &city_of(name));
        // The full name counts most; a city match alone must be near exact.
        let score = full.max(city - 0.05);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, name));
        }
    }
    best.filter(|(score, _)| *score >= 0.88)
        .map(|(_, name)| name)
}

/// Every name (canonical or link) the service accepts, as chrono-tz knows them.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    TZ_VARIANTS.iter().map(|tz| tz.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_resolve_to_themselves() {
        let r = resolve("America/New_York").unwrap();
        assert_eq!(r.canonical, "America/New_York");
        assert_eq!(r.tz, Tz::America__New_York);
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
    fn every_link_in_the_table_points_at_a_zone_chrono_tz_knows() {
        for (name, target) in LINKS {
            let target_tz: Tz = target
                .parse()
                .unwrap_or_else(|_| panic!("link {name} -> {target}: unknown target"));
            assert!(
                !LINKS.iter().any(|(n, _)| *n == target_tz.name()),
                "link {name} -> {target} points at another link"
            );
        }
    }

    #[test]
    fn every_name_chrono_tz_knows_resolves() {
        for name in all_names() {
            let resolved = resolve(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(resolve(resolved.canonical).is_ok(), "{name}");
        }
    }
}
