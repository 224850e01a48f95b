//! The IANA time zone database, compiled by `build.rs` from `tzdata/` into
//! compact static tables: one [`Rules`] per distinct set of rules (links share
//! their target's), and every name, sorted case-insensitively, in [`NAMES`].

/// An offset and abbreviation a zone uses at some time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    /// Total offset from UTC, DST included, in seconds.
    offset: i32,
    /// Index into [`ABBREVIATIONS`].
    abbreviation: u16,
}

impl Kind {
    const fn new(offset: i32, abbreviation: u16) -> Self {
        Self {
            offset,
            abbreviation,
        }
    }
}

/// Every how many transitions `Rules::checkpoints` holds the absolute instant
/// (build.rs has the same constant).
const CHECKPOINT_EVERY: usize = 16;

/// One zone's transitions. There are `kind_at.len() - 1` of them: transition
/// `i` is at `checkpoints[i / CHECKPOINT_EVERY]` plus the `gaps` that follow
/// it (`gaps[i - 1]` is the time from transition `i - 1` to `i`). `u32` gaps
/// rather than `i64` instants keep the tables small; the checkpoints keep a
/// lookup to a binary search and at most 15 additions. `kind_at[0]` is in
/// force before the first transition and `kind_at[i + 1]` from transition `i`
/// (inclusive) on; its values index `kinds`. build.rs guarantees the lengths
/// agree and every index is in range.
pub(crate) struct Rules {
    kinds: &'static [Kind],
    checkpoints: &'static [i64],
    gaps: &'static [u32],
    kind_at: &'static [u8],
}

impl std::fmt::Debug for Rules {
    /// A summary: the tables themselves run to hundreds of entries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("kinds", &self.kinds.len())
            .field("transitions", &self.transition_count())
            .finish()
    }
}

impl Rules {
    fn transition_count(&self) -> usize {
        self.kind_at.len().saturating_sub(1)
    }

    /// How many transitions happened at or before `unix_seconds`.
    fn transitions_until(&self, unix_seconds: i64) -> usize {
        let passed = self.checkpoints.partition_point(|&t| t <= unix_seconds);
        let Some(block) = passed.checked_sub(1) else {
            return 0;
        };
        let mut index = block * CHECKPOINT_EVERY;
        let mut instant = self.checkpoints[block];
        // `index` has happened; step through the rest of its block.
        while index + 1 < self.transition_count() {
            let next = instant + i64::from(self.gaps[index]);
            if next > unix_seconds {
                break;
            }
            index += 1;
            instant = next;
        }
        index + 1
    }
}

/// A name a client may ask for.
#[derive(Debug)]
pub(crate) struct Name {
    /// `name` in lower case: what lookups and suggestions compare.
    pub(crate) key: &'static str,
    /// The name as tzdata spells it.
    pub(crate) name: &'static str,
    /// The name we answer with: the target of an old link, else `name`.
    pub(crate) canonical: &'static str,
    /// Index into [`RULES`].
    rules: u16,
}

include!(concat!(env!("OUT_DIR"), "/tzdb.rs"));

/// A zone's offset from UTC at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneOffset {
    /// Seconds east of UTC, DST included.
    pub seconds: i32,
    /// The abbreviation: `EST`, `CEST`, or tzdata's numeric form (`-03`,
    /// `+0545`) where the zone has no letters.
    pub abbreviation: &'static str,
}

/// A time zone's rules.
#[derive(Debug, Clone, Copy)]
pub struct Zone {
    rules: &'static Rules,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.rules, other.rules)
    }
}

impl Eq for Zone {}

impl Zone {
    /// The zone's offset at `unix_seconds`; a transition takes effect at its
    /// own instant.
    pub fn offset_at(self, unix_seconds: i64) -> ZoneOffset {
        let rules = self.rules;
        let span = rules.transitions_until(unix_seconds);
        let kind = rules.kinds[usize::from(rules.kind_at[span])];
        ZoneOffset {
            seconds: kind.offset,
            abbreviation: ABBREVIATIONS[usize::from(kind.abbreviation)],
        }
    }

    /// The instants, ascending, at which the zone's offset or abbreviation
    /// changes.
    pub fn transitions(self) -> impl Iterator<Item = i64> {
        let rules = self.rules;
        (0..rules.transition_count()).scan(0_i64, move |instant, i| {
            *instant = if i % CHECKPOINT_EVERY == 0 {
                rules.checkpoints[i / CHECKPOINT_EVERY]
            } else {
                *instant + i64::from(rules.gaps[i - 1])
            };
            Some(*instant)
        })
    }
}

impl Name {
    pub(crate) fn zone(&self) -> Zone {
        Zone {
            rules: &RULES[usize::from(self.rules)],
        }
    }
}

/// The entry for `name`, ignoring ASCII case.
pub(crate) fn find(name: &str) -> Option<&'static Name> {
    // Lower-case into a stack buffer: no name is longer (build.rs), so a
    // longer input cannot match.
    let mut buffer = [0_u8; MAX_NAME_LEN];
    let lower = buffer.get_mut(..name.len())?;
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    NAMES
        .binary_search_by(|entry| entry.key.as_bytes().cmp(lower))
        .ok()
        .map(|i| &NAMES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_case_insensitively_without_duplicates() {
        for pair in NAMES.windows(2) {
            assert!(
                pair[0].key < pair[1].key,
                "{} / {}",
                pair[0].name,
                pair[1].name
            );
            assert_eq!(pair[0].key, pair[0].name.to_ascii_lowercase());
        }
    }

    #[test]
    fn every_zone_has_one_kind_per_span_and_strictly_ascending_transitions() {
        for rules in &RULES {
            let transitions = rules.transition_count();
            assert_eq!(rules.gaps.len(), transitions.saturating_sub(1));
            assert_eq!(
                rules.checkpoints.len(),
                transitions.div_ceil(CHECKPOINT_EVERY)
            );
            assert!(rules.gaps.iter().all(|&gap| gap > 0));
            assert!(
                rules
                    .kind_at
                    .iter()
                    .all(|&k| usize::from(k) < rules.kinds.len())
            );
        }
    }

    #[test]
    fn names_longer_than_any_zone_or_not_ascii_are_not_found() {
        assert!(find(&"a".repeat(MAX_NAME_LEN + 1)).is_none());
        assert!(find("América/New_York").is_none());
        assert!(find("").is_none());
        assert_eq!(find("AMERICA/NEW_YORK").unwrap().name, "America/New_York");
    }

    #[test]
    fn links_share_their_targets_rules() {
        let eastern = find("US/Eastern").unwrap().zone();
        let new_york = find("America/New_York").unwrap().zone();
        assert_eq!(eastern, new_york);
        assert!(RULES.len() < NAMES.len());
    }

    #[test]
    fn the_checkpointed_lookup_agrees_with_a_linear_scan_around_every_transition() {
        for rules in &RULES {
            let zone = Zone { rules };
            let all: Vec<i64> = zone.transitions().collect();
            assert!(all.windows(2).all(|w| w[0] < w[1]));
            for &t in &all {
                for instant in [t - 1, t, t + 1] {
                    let expected = all.iter().take_while(|&&x| x <= instant).count();
                    assert_eq!(rules.transitions_until(instant), expected, "at {instant}");
                }
            }
        }
    }

    #[test]
    fn a_transition_takes_effect_at_its_own_instant() {
        let zone = find("America/New_York").unwrap().zone();
        // 2026-03-08 07:00:00 UTC: EST -> EDT.
        let change = 1_772_953_200;
        assert!(zone.transitions().any(|t| t == change));
        assert_eq!(zone.offset_at(change - 1).seconds, -5 * 3600);
        assert_eq!(zone.offset_at(change).seconds, -4 * 3600);
        assert_eq!(zone.offset_at(change).abbreviation, "EDT");
    }

    #[test]
    fn instants_before_the_first_and_after_the_last_transition_are_covered() {
        let zone = find("America/New_York").unwrap().zone();
        assert_eq!(zone.offset_at(i64::MIN).abbreviation, "LMT");
        assert!(!zone.offset_at(i64::MAX).abbreviation.is_empty());
        let utc = find("Etc/UTC").unwrap().zone();
        assert_eq!(utc.transitions().count(), 0);
        assert_eq!(
            utc.offset_at(0),
            ZoneOffset {
                seconds: 0,
                abbreviation: "UTC"
            }
        );
    }

    #[test]
    fn zones_without_letters_have_tzdatas_numeric_abbreviation() {
        let zone = find("America/Sao_Paulo").unwrap().zone();
        let offset = zone.offset_at(1_795_705_634);
        assert_eq!(offset.seconds, -3 * 3600);
        assert_eq!(offset.abbreviation, "-03");
        let kathmandu = find("Asia/Kathmandu").unwrap().zone();
        assert_eq!(kathmandu.offset_at(1_795_705_634).abbreviation, "+0545");
    }
}
