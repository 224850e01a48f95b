//! The resource types moto's CloudFormation can create.
//!
//! Generated from the installed moto by `gen/moto_cfn_types.py` (moto's
//! `moto/cloudformation/parsing.py`: `get_model_map()`, every
//! `CloudFormationModel` subclass by `cloudformation_type()`, and
//! `NULL_MODELS`, the types it accepts and ignores). moto logs a warning
//! and silently skips any other type, so the list is checked before a stack
//! is created. The test `moto_types_match_installed_moto` regenerates it
//! from the installed moto, so it cannot go stale.

/// The embedded list: `TYPE [ATTR...]` lines, `?` when moto declares no
/// attributes (its `has_cfn_attr` accepts anything).
pub(crate) const MOTO_CFN_TYPES: &str = include_str!("../data/moto-cfn-types.txt");

/// The moto version the list was generated from (the pin in
/// scripts/setup-tools.sh).
pub const MOTO_VERSION: &str = "5.2.5";

fn entries() -> impl Iterator<Item = (&'static str, Vec<&'static str>)> {
    MOTO_CFN_TYPES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let ty = words.next()?;
            Some((ty, words.collect()))
        })
}

/// Whether moto's CloudFormation creates resources of this type.
/// `Custom::*` and `AWS::CloudFormation::CustomResource` are not: moto would
/// invoke the custom resource's function itself, which is not in moto.
pub fn moto_can_create(resource_type: &str) -> bool {
    entries().any(|(t, _)| t == resource_type)
}

/// The attributes (of `Arn`, `QueueName`, `StreamArn`, `TopicName`, `Name`,
/// `DomainName`, `RegionalDomainName`, `WebsiteURL`, `Id`) moto's
/// `Fn::GetAtt` declares for this type; empty when it declares none or
/// cannot create the type.
pub fn moto_declared_attributes(resource_type: &str) -> Vec<&'static str> {
    entries()
        .find(|(t, _)| *t == resource_type)
        .map(|(_, attrs)| attrs.into_iter().filter(|a| *a != "?").collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_its_moto_version() {
        assert!(MOTO_CFN_TYPES.starts_with(&format!("# moto {MOTO_VERSION}:")));
    }

    #[test]
    fn common_types_and_their_attributes() {
        assert!(moto_can_create("AWS::DynamoDB::Table"));
        assert!(moto_can_create("AWS::SQS::Queue"));
        assert!(moto_can_create("AWS::S3::Bucket"));
        assert!(!moto_can_create("AWS::SecretsManager::Secret"));
        assert!(!moto_can_create("Custom::Thing"));
        assert_eq!(
            moto_declared_attributes("AWS::SQS::Queue"),
            ["Arn", "QueueName"]
        );
        assert_eq!(
            moto_declared_attributes("AWS::DynamoDB::Table"),
            ["Arn", "StreamArn"]
        );
        assert!(moto_declared_attributes("AWS::SSM::Parameter").is_empty());
    }
}
