//! The change set in the AWS Management Console.

/// The console page of a change set, in the region and partition its ARN
/// names: `arn:<partition>:cloudformation:<region>:<account>:changeSet/...`.
///
/// The console's host depends on the partition and, in the `aws`
/// partition, on the region (as pipeline.yaml's own console links,
/// `https://<region>.console.aws.amazon.com/...`). The path and its
/// `stackId`/`changeSetId` query are the console's own change-set page, as
/// the CloudFormation console links it; AWS documents no API for console
/// URLs, so this is the one part of the review not checked against AWS's
/// documentation. `None` for an ARN this does not understand.
pub fn change_set_url(stack_id: &str, change_set_id: &str) -> Option<String> {
    let mut parts = change_set_id.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("cloudformation"), Some(region)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return None;
    }
    let host = match partition {
        "aws" => format!("{region}.console.aws.amazon.com"),
        "aws-cn" => "console.amazonaws.cn".to_string(),
        "aws-us-gov" => "console.amazonaws-us-gov.com".to_string(),
        _ => return None,
    };
    Some(format!(
        "https://{host}/cloudformation/home?region={region}#/stacks/changesets/changes?stackId={}&changeSetId={}",
        encode(stack_id),
        encode(change_set_id)
    ))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "arn:aws:cloudformation:eu-west-1:123456789012:stack/TimeService-prod/0a1b2c3d-0000-1111-2222-333344445555";
    const CHANGE_SET: &str = "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/review/9f8e7d6c-0000-1111-2222-333344445555";

    #[test]
    fn the_link_opens_the_change_set_in_its_own_region() {
        assert_eq!(
            change_set_url(STACK, CHANGE_SET).unwrap(),
            "https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1\
             #/stacks/changesets/changes?stackId=arn%3Aaws%3Acloudformation%3Aeu-west-1%3A123456789012%3Astack%2FTimeService-prod%2F0a1b2c3d-0000-1111-2222-333344445555\
             &changeSetId=arn%3Aaws%3Acloudformation%3Aeu-west-1%3A123456789012%3AchangeSet%2Freview%2F9f8e7d6c-0000-1111-2222-333344445555"
        );
    }

    #[test]
    fn china_and_govcloud_have_their_own_consoles() {
        let cn = change_set_url(
            &STACK.replace("arn:aws:", "arn:aws-cn:"),
            &CHANGE_SET
                .replace("arn:aws:", "arn:aws-cn:")
                .replace("eu-west-1", "cn-north-1"),
        )
        .unwrap();
        assert!(
            cn.starts_with("https://console.amazonaws.cn/cloudformation/home?region=cn-north-1#"),
            "{cn}"
        );
        let gov = change_set_url(
            STACK,
            &CHANGE_SET
                .replace("arn:aws:", "arn:aws-us-gov:")
                .replace("eu-west-1", "us-gov-west-1"),
        )
        .unwrap();
        assert!(
            gov.starts_with(
                "https://console.amazonaws-us-gov.com/cloudformation/home?region=us-gov-west-1#"
            ),
            "{gov}"
        );
    }

    #[test]
    fn an_arn_it_does_not_understand_gets_no_link() {
        for bad in [
            "",
            "review",
            "arn:aws:s3:::bucket",
            "arn:aws-iso:cloudformation:us-iso-east-1:1:changeSet/x/y",
            "arn:aws:cloudformation:EU WEST:1:changeSet/x/y",
        ] {
            assert_eq!(change_set_url(STACK, bad), None, "{bad}");
        }
    }
}
