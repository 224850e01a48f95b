//! How much of a client's input the service repeats, in error bodies and in
//! log lines: enough to recognise it, never the whole of a huge request.

use crate::zones::MAX_ZONE_NAME_LEN;

/// How many characters of a client's unusable input are echoed back.
pub(crate) const ECHO_LIMIT: usize = 2 * MAX_ZONE_NAME_LEN;

/// `sent`, cut to [`ECHO_LIMIT`] characters with a trailing `…` when cut.
pub(crate) fn echo(sent: &str) -> String {
    match sent.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &sent[..cut]),
        None => sent.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_keeps_short_input() {
        assert_eq!(echo("Europe/Londn"), "Europe/Londn");
    }

    #[test]
    fn echo_truncates_long_input() {
        let long = "x".repeat(10_000);
        let echoed = echo(&long);
        assert_eq!(echoed.chars().count(), ECHO_LIMIT + 1);
        assert!(echoed.ends_with('…'));
    }
}
