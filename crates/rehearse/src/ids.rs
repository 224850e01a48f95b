//! Identifiers in the formats AWS uses (request ids, trace ids, job ids).

use std::time::{SystemTime, UNIX_EPOCH};

/// The fake AWS account every local resource lives in.
pub const ACCOUNT_ID: &str = "123456789012";
/// The region the rehearsal pretends to be in.
pub const REGION: &str = "us-east-1";

/// A random version-4 UUID, as Lambda request ids and CodePipeline job ids are.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// 64 random bits (from a version-4 UUID's random part).
fn random_u64() -> u64 {
    // Truncation keeps the low 64 bits, all of them random in a v4 UUID
    // except the two variant bits.
    uuid::Uuid::new_v4().as_u128() as u64
}

/// An X-Ray trace header as Lambda passes it in `Lambda-Runtime-Trace-Id`.
pub fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!(
        "Root=1-{secs:08x}-{:016x}{:08x};Parent={:016x};Sampled=0",
        random_u64(),
        random_u64() as u32,
        random_u64()
    )
}

/// A short stable suffix derived from `text`, in the upper-case alphanumeric
/// alphabet CloudFormation uses for generated physical names.
pub fn stable_suffix(text: &str, len: usize) -> String {
    // FNV-1a: stable across runs and Rust versions (unlike `RandomState`).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| {
            let c = ALPHABET[(hash % ALPHABET.len() as u64) as usize] as char;
            hash = (hash / ALPHABET.len() as u64) ^ hash.rotate_left(17);
            c
        })
        .collect()
}

/// The ARN of a Lambda function in the local account.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
}

/// The function name inside a function name, partial ARN or full ARN
/// (`my-fn`, `123456789012:function:my-fn`, `arn:aws:lambda:...:function:my-fn[:qualifier]`).
pub fn function_name_from(name_or_arn: &str) -> &str {
    match name_or_arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] => name,
        [_, "function", name, ..] => name,
        _ => name_or_arn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let a = uuid();
        let b = uuid();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a, parsed.hyphenated().to_string(), "lower-case, hyphenated");
    }

    #[test]
    fn function_names_are_taken_out_of_arns() {
        assert_eq!(function_name_from("fn"), "fn");
        assert_eq!(function_name_from("123456789012:function:fn"), "fn");
        assert_eq!(
            function_name_from("arn:aws:lambda:us-east-1:123456789012:function:fn:$LATEST"),
            "fn"
        );
    }

    #[test]
    fn stable_suffixes_do_not_change_between_calls() {
        assert_eq!(stable_suffix("a-b", 12), stable_suffix("a-b", 12));
        assert_ne!(stable_suffix("a-b", 12), stable_suffix("a-c", 12));
    }
}
