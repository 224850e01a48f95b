//! Compiles the vendored IANA tzdata (`tzdata/`) into the compact tables in
//! `src/tzdb.rs`.
//!
//! Why not chrono-tz at run time: chrono-tz compiles every name, links
//! included, into its own table of `(i64, FixedTimespan)` entries, each with a
//! pointer to its abbreviation. That is ~1.9 MB of relocated data and
//! relocations in a 3.9 MB binary, and kept the deployment zip above 1 MB.
//! Here the same transitions, computed by the same parser chrono-tz uses
//! (`parse-zoneinfo`), become one table per distinct set of rules (a link
//! shares its target's), with transition instants as `u32` gaps from the one
//! before plus an `i64` checkpoint every 16th (together a fifth of the
//! compressed size of plain `i64`s, and still a binary search away), and each
//! span's offset and abbreviation as a one-byte index into a per-zone list.
//! `tests/tzdb_parity.rs` checks the result against chrono-tz, instant by
//! instant, for every name.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use parse_zoneinfo::FILES;
use parse_zoneinfo::line::Line;
use parse_zoneinfo::table::{Table, TableBuilder};
use parse_zoneinfo::transitions::{FixedTimespan, TableTransitions};

/// The `backward` section whose links we do not follow for the canonical
/// name: zone.tab locations (Europe/Amsterdam, Europe/Oslo, ...) merged only
/// because their clocks agree since 1970. Users know them as real zones, so
/// they keep their own name (with their target's rules, which is what tzdata
/// gives them).
const KEEP_OWN_NAME_SECTION: &str = "Pre-2013 practice";

/// Every how many transitions the absolute instant is stored (src/tzdb.rs
/// has the same constant).
const CHECKPOINT_EVERY: usize = 16;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let tzdata = manifest.join("tzdata");
    println!("cargo:rerun-if-changed=tzdata");
    println!("cargo:rerun-if-changed=build.rs");

    let release = fs::read_to_string(tzdata.join("version"))
        .unwrap_or_else(|e| panic!("{}: {e}", tzdata.join("version").display()));
    let release = release.trim();

    let mut sources = Vec::new();
    for file in FILES {
        let path = tzdata.join(file);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        sources.push((path, text));
    }

    let table = parse(&sources);
    let renames = renaming_links(&sources);
    let out = generate(&table, &renames, release);
    let dest = Path::new(&std::env::var("OUT_DIR").expect("run by cargo")).join("tzdb.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}

fn parse(sources: &[(PathBuf, String)]) -> Table {
    let mut builder = TableBuilder::new();
    for (path, text) in sources {
        for (number, line) in text.lines().enumerate() {
            // tzdata has no '#' inside quotes; chrono-tz strips comments the same way.
            let line = line.split('#').next().unwrap_or_default();
            let parsed = Line::new(line).unwrap_or_else(|e| {
                panic!("{}:{}: {e:?}", path.display(), number + 1);
            });
            builder.add_line(parsed).unwrap_or_else(|e| {
                panic!("{}:{}: {e:?}", path.display(), number + 1);
            });
        }
    }
    builder.build()
}

/// Links whose name should answer with the target's name: every `Link`
/// except those in [`KEEP_OWN_NAME_SECTION`]. A section starts at a comment
/// right after a blank line.
fn renaming_links(sources: &[(PathBuf, String)]) -> HashMap<String, String> {
    let mut renames = HashMap::new();
    for (_, text) in sources {
        let mut section = "";
        let mut after_blank = true;
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                if after_blank && !comment.starts_with("Link") {
                    section = comment;
                }
            } else if line.starts_with("Link") && !section.starts_with(KEEP_OWN_NAME_SECTION) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                renames.insert(fields[2].to_owned(), fields[1].to_owned());
            }
            after_blank = line.trim().is_empty();
        }
    }
    renames
}

/// One span's total offset and abbreviation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Kind {
    offset: i64,
    abbreviation: String,
}

impl Kind {
    fn of(span: &FixedTimespan) -> Self {
        let offset = span.utc_offset + span.dst_offset;
        assert!(
            offset.abs() < 86_400,
            "offset {offset} s is not a valid UTC offset"
        );
        // parse-zoneinfo expands every format (`%s`, `%z`, `A/B`); a `%` left
        // over would be served to clients as is.
        assert!(
            !span.name.is_empty() && !span.name.contains('%'),
            "unexpanded abbreviation {:?}",
            span.name
        );
        Self {
            offset,
            abbreviation: span.name.clone(),
        }
    }
}

/// A zone's rules: the kind in force before any transition, then each
/// transition instant with the kind it starts.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Rules {
    first: Kind,
    rest: Vec<(i64, Kind)>,
}

impl Rules {
    /// Every span's kind, in order.
    fn kinds(&self) -> impl Iterator<Item = &Kind> {
        std::iter::once(&self.first).chain(self.rest.iter().map(|(_, kind)| kind))
    }
}

fn generate(table: &Table, renames: &HashMap<String, String>, release: &str) -> String {
    let mut names: Vec<&String> = table.zonesets.keys().chain(table.links.keys()).collect();
    names.sort_by_key(|name| name.to_ascii_lowercase());
    for pair in names.windows(2) {
        assert!(
            !pair[0].eq_ignore_ascii_case(pair[1]),
            "{} and {} differ only in case",
            pair[0],
            pair[1]
        );
    }

    let mut rules_index: HashMap<Rules, usize> = HashMap::new();
    let mut rules_list: Vec<Rules> = Vec::new();
    let mut abbreviations: BTreeMap<String, usize> = BTreeMap::new();
    let mut entries = Vec::new();
    for name in &names {
        let spans = table
            .timespans(name)
            .unwrap_or_else(|| panic!("{name}: no rules"));
        let rules = Rules {
            first: Kind::of(&spans.first),
            rest: spans.rest.iter().map(|(t, s)| (*t, Kind::of(s))).collect(),
        };
        for kind in rules.kinds() {
            abbreviations.entry(kind.abbreviation.clone()).or_default();
        }
        let index = *rules_index.entry(rules.clone()).or_insert_with(|| {
            rules_list.push(rules);
            rules_list.len() - 1
        });
        // Only a link to a zone (not to another link) renames; anything else
        // keeps its own name rather than pointing at a name we cannot serve.
        let canonical = match renames.get(name.as_str()) {
            Some(target) if table.zonesets.contains_key(target) => target.as_str(),
            _ => name.as_str(),
        };
        entries.push((name.as_str(), canonical, index));
    }
    for (i, value) in abbreviations.values_mut().enumerate() {
        *value = i;
    }
    assert!(abbreviations.len() <= usize::from(u16::MAX));
    // src/api.rs writes names and abbreviations into JSON strings as they are.
    let json_safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
    };
    for text in names
        .iter()
        .map(|n| n.as_str())
        .chain(abbreviations.keys().map(String::as_str))
    {
        assert!(json_safe(text), "{text:?} needs JSON escaping");
    }
    assert!(
        names.iter().any(|n| *n == "Etc/UTC"),
        "tzdata without Etc/UTC: GET /time needs it"
    );

    let mut out = String::new();
    let w = &mut out;
    writeln!(
        w,
        "// @generated by build.rs from tzdata {release}: do not edit."
    )
    .unwrap();
    writeln!(w, "pub(crate) const TZDATA_RELEASE: &str = {release:?};").unwrap();
    let longest = names.iter().map(|n| n.len()).max().unwrap_or(0);
    writeln!(
        w,
        "/// The longest name, in bytes.\npub(crate) const MAX_NAME_LEN: usize = {longest};"
    )
    .unwrap();

    writeln!(
        w,
        "pub(crate) static ABBREVIATIONS: [&str; {}] = [",
        abbreviations.len()
    )
    .unwrap();
    for a in abbreviations.keys() {
        writeln!(w, "{a:?},").unwrap();
    }
    writeln!(w, "];").unwrap();

    writeln!(
        w,
        "pub(crate) static RULES: [Rules; {}] = [",
        rules_list.len()
    )
    .unwrap();
    for rules in &rules_list {
        let mut kinds: Vec<&Kind> = rules.kinds().collect();
        kinds.sort();
        kinds.dedup();
        assert!(
            kinds.len() <= usize::from(u8::MAX),
            "too many kinds in one zone"
        );
        let kind_index = |k: &Kind| kinds.iter().position(|x| *x == k).unwrap();
        w.push_str("Rules { kinds: &[");
        for k in &kinds {
            let abbreviation = abbreviations[&k.abbreviation];
            write!(w, "Kind::new({}, {abbreviation}),", k.offset).unwrap();
        }
        w.push_str("], checkpoints: &[");
        for (t, _) in rules.rest.iter().step_by(CHECKPOINT_EVERY) {
            write!(w, "{t},").unwrap();
        }
        w.push_str("], gaps: &[");
        for pair in rules.rest.windows(2) {
            let gap = u32::try_from(pair[1].0 - pair[0].0)
                .ok()
                .filter(|gap| *gap > 0)
                .unwrap_or_else(|| panic!("transitions {} and {}", pair[0].0, pair[1].0));
            write!(w, "{gap},").unwrap();
        }
        w.push_str("], kind_at: &[");
        write!(w, "{},", kind_index(&rules.first)).unwrap();
        for (_, k) in &rules.rest {
            write!(w, "{},", kind_index(k)).unwrap();
        }
        w.push_str("] },\n");
    }
    writeln!(w, "];").unwrap();

    writeln!(
        w,
        "/// Every name, sorted case-insensitively.\npub(crate) static NAMES: [Name; {}] = [",
        entries.len()
    )
    .unwrap();
    for (name, canonical, rules) in &entries {
        let key = name.to_ascii_lowercase();
        writeln!(
            w,
            "Name {{ key: {key:?}, name: {name:?}, canonical: {canonical:?}, rules: {rules} }},"
        )
        .unwrap();
    }
    writeln!(w, "];").unwrap();
    out
}
