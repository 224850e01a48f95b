//! Identifiers in the formats AWS uses (request ids, trace ids, job ids).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The fake AWS account every local resource lives in.
pub const ACCOUNT_ID: &str = "123456789012";
/// The region the rehearsal pretends to be in.
pub const REGION: &str = "us-east-1";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// A random version-4 UUID, as Lambda request ids and CodePipeline job ids are.
pub fn uuid() -> String {
    let hi = random_u64();
    let lo = random_u64();
    let bytes: Vec<u8> = hi
        .to_be_bytes()
        .into_iter()
        .chain(lo.to_be_bytes())
        .collect();
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
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
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
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
