//! The review of a change set: what it adds, modifies (and replaces) and
//! removes, which of those change permissions, and how that reads in the
//! job's summary and output variables.

use aws_sdk_cloudformation::types::{Change, ChangeAction, Replacement, ResourceAttribute};
use codepipeline_job::{
    MAX_SUMMARY_CHARS, OutputVariables, OutputVariablesError, echo, truncate_chars,
};

/// Most characters of the `ReviewText` output variable. The approval that
/// shows it takes it into an action configuration value, and CodePipeline
/// declares those at most 1000 characters long (`ActionConfigurationValue`,
/// "Length Constraints: Maximum length of 1000", CodePipeline API
/// Reference); the job's summary (up to 2048) carries the full list.
pub const MAX_REVIEW_TEXT_CHARS: usize = 1000;

/// The output variables the review publishes (`docs/contracts.md`).
pub mod variables {
    pub const PERMISSION_CHANGES: &str = "PermissionChanges";
    pub const ADDED: &str = "Added";
    pub const MODIFIED: &str = "Modified";
    pub const REPLACED: &str = "Replaced";
    pub const REMOVED: &str = "Removed";
    pub const REVIEW_TEXT: &str = "ReviewText";
    pub const CHANGE_SET_URL: &str = "ChangeSetUrl";
}

/// What a change set does to one resource, as the review counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `Add`, and `Import` (the stack takes over an existing resource).
    Added,
    /// `Modify`, `Dynamic`, `SyncWithActual` and actions this build does not
    /// know yet: reviewed as modifications rather than left out.
    Modified,
    /// `Remove`.
    Removed,
}

/// Whether a modification replaces the resource (`ResourceChange.Replacement`:
/// "True", "Conditional" or "False", AWS CloudFormation API Reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacing {
    No,
    /// Replacement depends on a value CloudFormation only knows at execution.
    Conditional,
    Yes,
}

/// One resource the change set touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReview {
    pub kind: Kind,
    pub logical_id: String,
    pub resource_type: String,
    pub replacing: Replacing,
    /// The properties (and other attributes) a modification changes.
    pub changed: Vec<String>,
    /// IAM, a resource policy, a security group, or a property that grants
    /// or hands over permissions.
    pub permission: bool,
}

/// Resource types whose every change is a permission change besides all of
/// `AWS::IAM::*`: resource-based policies (who may call or read a
/// resource) and security groups (who may reach it on the network).
const PERMISSION_TYPES: &[&str] = &[
    "AWS::Lambda::Permission",
    "AWS::Lambda::LayerVersionPermission",
    "AWS::Lambda::Url",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::KMS::Key",
    "AWS::Logs::ResourcePolicy",
    "AWS::Events::EventBusPolicy",
    "AWS::SecretsManager::ResourcePolicy",
    "AWS::ECR::RepositoryPolicy",
    "AWS::ApiGateway::Authorizer",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress",
];

/// Properties that grant, hand over or widen permissions on any resource
/// type: a function's role, a resource's policy, an API route's
/// authorization, the security groups a resource sits in.
const PERMISSION_PROPERTIES: &[&str] = &[
    "Role",
    "RoleArn",
    "ExecutionRoleArn",
    "ServiceRole",
    "ServiceRoleArn",
    "Policies",
    "PolicyDocument",
    "ManagedPolicyArns",
    "PermissionsBoundary",
    "AssumeRolePolicyDocument",
    "KeyPolicy",
    "ResourcePolicy",
    "AuthType",
    "AuthorizationType",
    "AuthorizerId",
    "SecurityGroupIds",
    "SecurityGroups",
];

/// Whether a change to `resource_type` touching `changed` changes
/// permissions.
pub fn is_permission_change(resource_type: &str, changed: &[String]) -> bool {
    resource_type.starts_with("AWS::IAM::")
        || PERMISSION_TYPES.contains(&resource_type)
        || changed
            .iter()
            .any(|p| PERMISSION_PROPERTIES.contains(&p.as_str()))
}

impl ResourceReview {
    /// The review of one `Change` of a `DescribeChangeSet` answer; `None`
    /// for a change that is not a resource change.
    pub fn from_change(change: &Change) -> Option<Self> {
        let rc = change.resource_change()?;
        let kind = match rc.action() {
            Some(ChangeAction::Add | ChangeAction::Import) => Kind::Added,
            Some(ChangeAction::Remove) => Kind::Removed,
            _ => Kind::Modified,
        };
        let replacing = match (kind, rc.replacement()) {
            (Kind::Modified, Some(Replacement::True)) => Replacing::Yes,
            (Kind::Modified, Some(Replacement::Conditional)) => Replacing::Conditional,
            _ => Replacing::No,
        };
        let mut changed: Vec<String> = rc
            .details()
            .iter()
            .filter_map(|d| d.target())
            .filter_map(|t| match (t.attribute(), t.name()) {
                (Some(ResourceAttribute::Properties), Some(name)) => Some(name.to_string()),
                (Some(attribute), _) => Some(attribute.as_str().to_string()),
                (None, name) => name.map(str::to_string),
            })
            .collect();
        if changed.is_empty() {
            // Scope names what kind of thing changes ("Properties", "Tags").
            changed = rc.scope().iter().map(|s| s.as_str().to_string()).collect();
        }
        changed.sort();
        changed.dedup();
        let resource_type = rc.resource_type().unwrap_or("unknown type").to_string();
        let permission = is_permission_change(&resource_type, &changed);
        Some(Self {
            kind,
            logical_id: rc.logical_resource_id().unwrap_or("?").to_string(),
            resource_type,
            replacing,
            changed,
            permission,
        })
    }

    /// One line of the review: `+ Added Role (AWS::IAM::Role) [PERMISSIONS]`.
    fn line(&self) -> String {
        let (mark, verb) = match self.kind {
            Kind::Added => ('+', "added"),
            Kind::Modified => ('~', "modified"),
            Kind::Removed => ('-', "removed"),
        };
        let mut line = format!(
            "{mark} {verb} {} ({})",
            echo(&self.logical_id),
            echo(&self.resource_type)
        );
        if self.kind == Kind::Modified && !self.changed.is_empty() {
            line.push_str(": ");
            line.push_str(&echo(&self.changed.join(", ")));
        }
        match self.replacing {
            Replacing::Yes => line.push_str(" [REPLACED]"),
            Replacing::Conditional => line.push_str(" [MAY BE REPLACED]"),
            Replacing::No => {}
        }
        if self.permission {
            line.push_str(" [PERMISSIONS]");
        }
        line
    }
}

/// The review of one change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub stack: String,
    pub change_set: String,
    /// The change set in the CloudFormation console, when its ARN is known.
    pub url: Option<String>,
    pub resources: Vec<ResourceReview>,
    /// Why a change set has nothing to do (CloudFormation's status reason),
    /// when that is so.
    pub no_changes: Option<String>,
}

impl Review {
    fn count(&self, kind: Kind) -> usize {
        self.resources.iter().filter(|r| r.kind == kind).count()
    }

    pub fn added(&self) -> usize {
        self.count(Kind::Added)
    }

    pub fn modified(&self) -> usize {
        self.count(Kind::Modified)
    }

    /// Modifications that replace the resource, certainly or conditionally.
    pub fn replaced(&self) -> usize {
        self.resources
            .iter()
            .filter(|r| r.replacing != Replacing::No)
            .count()
    }

    pub fn removed(&self) -> usize {
        self.count(Kind::Removed)
    }

    pub fn permission_changes(&self) -> usize {
        self.resources.iter().filter(|r| r.permission).count()
    }

    /// The first line: stack, change set and the counts.
    fn headline(&self) -> String {
        let names = format!(
            "Stack {}, change set {}",
            echo(&self.stack),
            echo(&self.change_set)
        );
        if self.resources.is_empty() {
            let why = self
                .no_changes
                .as_deref()
                .map(|r| format!(" (CloudFormation: {})", echo(r)))
                .unwrap_or_default();
            return format!("{names}: no changes{why}.");
        }
        let permissions = match self.permission_changes() {
            0 => "no permission changes".to_string(),
            n => format!("PERMISSION CHANGES in {n}"),
        };
        format!(
            "{names}: {} added, {} modified ({} replaced), {} removed; {permissions}.",
            self.added(),
            self.modified(),
            self.replaced(),
            self.removed()
        )
    }

    /// The resources, permission changes and replacements first, each
    /// group in change-set order.
    fn lines(&self) -> Vec<String> {
        let mut ordered: Vec<&ResourceReview> = self.resources.iter().collect();
        ordered.sort_by_key(|r| (!r.permission, r.replacing == Replacing::No, r.kind));
        ordered.iter().map(|r| r.line()).collect()
    }

    /// The headline, as many resource lines as fit in `max` characters
    /// (then how many more), and the console link, which always fits.
    fn text(&self, max: usize) -> String {
        let headline = self.headline();
        let footer = self
            .url
            .as_deref()
            .map(|u| format!("\nChange set: {u}"))
            .unwrap_or_default();
        let lines = self.lines();
        let chars = |s: &str| s.chars().count();
        // "\n… and 99999 more": room kept for the note while lines follow.
        const NOTE: usize = 20;
        let budget = max.saturating_sub(chars(&headline) + chars(&footer));
        let mut used = 0;
        let mut body = String::new();
        for (i, line) in lines.iter().enumerate() {
            let cost = 1 + chars(line);
            let reserve = if i + 1 == lines.len() { 0 } else { NOTE };
            if used + cost + reserve > budget {
                body.push_str(&format!("\n… and {} more", lines.len() - i));
                break;
            }
            body.push('\n');
            body.push_str(line);
            used += cost;
        }
        let text = format!("{headline}{body}{footer}");
        truncate_chars(&text, max).into_owned()
    }

    /// The job's execution summary, within `PutJobSuccessResult`'s 2048
    /// characters.
    pub fn summary(&self) -> String {
        self.text(MAX_SUMMARY_CHARS)
    }

    /// The `ReviewText` variable, within [`MAX_REVIEW_TEXT_CHARS`].
    pub fn review_text(&self) -> String {
        self.text(MAX_REVIEW_TEXT_CHARS)
    }

    /// The job's output variables (names in [`variables`]).
    pub fn output_variables(&self) -> Result<OutputVariables, OutputVariablesError> {
        let mut out = OutputVariables::new();
        out.insert(
            variables::PERMISSION_CHANGES,
            (self.permission_changes() > 0).to_string(),
        )?
        .insert(variables::ADDED, self.added().to_string())?
        .insert(variables::MODIFIED, self.modified().to_string())?
        .insert(variables::REPLACED, self.replaced().to_string())?
        .insert(variables::REMOVED, self.removed().to_string())?
        .insert(variables::REVIEW_TEXT, self.review_text())?
        .insert(
            variables::CHANGE_SET_URL,
            self.url.clone().unwrap_or_default(),
        )?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: Kind, id: &str, ty: &str, replacing: Replacing) -> ResourceReview {
        ResourceReview {
            kind,
            logical_id: id.into(),
            resource_type: ty.into(),
            replacing,
            changed: vec!["Code".into()],
            permission: is_permission_change(ty, &[]),
        }
    }

    fn review(resources: Vec<ResourceReview>) -> Review {
        Review {
            stack: "TimeService-prod".into(),
            change_set: "review".into(),
            url: Some("https://eu-west-1.console.aws.amazon.com/cloudformation/home".into()),
            resources,
            no_changes: None,
        }
    }

    #[test]
    fn iam_resource_policies_and_security_groups_are_permission_changes() {
        for ty in [
            "AWS::IAM::Role",
            "AWS::IAM::ManagedPolicy",
            "AWS::Lambda::Permission",
            "AWS::S3::BucketPolicy",
            "AWS::EC2::SecurityGroupIngress",
        ] {
            assert!(is_permission_change(ty, &[]), "{ty}");
        }
        assert!(!is_permission_change("AWS::Logs::LogGroup", &[]));
        assert!(is_permission_change(
            "AWS::Lambda::Function",
            &["Role".to_string()]
        ));
        assert!(!is_permission_change(
            "AWS::Lambda::Function",
            &["Code".to_string(), "MemorySize".to_string()]
        ));
    }

    #[test]
    fn permission_changes_and_replacements_come_first() {
        let r = review(vec![
            resource(Kind::Modified, "Logs", "AWS::Logs::LogGroup", Replacing::No),
            resource(
                Kind::Modified,
                "Fn",
                "AWS::Lambda::Function",
                Replacing::Yes,
            ),
            resource(Kind::Added, "Role", "AWS::IAM::Role", Replacing::No),
        ]);
        let lines = r.lines();
        assert!(
            lines[0].contains("Role (AWS::IAM::Role) [PERMISSIONS]"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("Fn") && lines[1].contains("[REPLACED]"),
            "{lines:?}"
        );
        assert!(lines[2].contains("Logs"), "{lines:?}");
    }

    #[test]
    fn a_long_review_keeps_its_headline_and_link_within_the_limits() {
        let many: Vec<ResourceReview> = (0..500)
            .map(|i| {
                resource(
                    Kind::Added,
                    &format!("Topic{i:03}WithAFairlyLongLogicalId"),
                    "AWS::SNS::Topic",
                    Replacing::No,
                )
            })
            .collect();
        let r = review(many);
        for (text, max) in [
            (r.summary(), MAX_SUMMARY_CHARS),
            (r.review_text(), MAX_REVIEW_TEXT_CHARS),
        ] {
            assert!(text.chars().count() <= max, "{}", text.chars().count());
            assert!(text.starts_with("Stack TimeService-prod, change set review: 500 added"));
            assert!(text.contains("more"), "{text}");
            assert!(
                text.ends_with(
                    "Change set: https://eu-west-1.console.aws.amazon.com/cloudformation/home"
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn the_variables_count_and_flag() {
        let r = review(vec![
            resource(
                Kind::Modified,
                "Fn",
                "AWS::Lambda::Function",
                Replacing::Conditional,
            ),
            resource(Kind::Removed, "Old", "AWS::SNS::Topic", Replacing::No),
        ]);
        let v = r.output_variables().unwrap();
        assert_eq!(v.get(variables::PERMISSION_CHANGES), Some("false"));
        assert_eq!(v.get(variables::MODIFIED), Some("1"));
        assert_eq!(v.get(variables::REPLACED), Some("1"));
        assert_eq!(v.get(variables::REMOVED), Some("1"));
        assert_eq!(v.get(variables::ADDED), Some("0"));
        assert!(
            v.get(variables::REVIEW_TEXT)
                .unwrap()
                .contains("[MAY BE REPLACED]")
        );
    }
}
