//! Typed view of an `AWS::CodePipeline::Pipeline` resource.

use serde_json::{Map, Value};

use crate::{Error, Resource};

pub(crate) const PIPELINE_TYPE: &str = "AWS::CodePipeline::Pipeline";

/// An `AWS::CodePipeline::Pipeline` resource: its stages in order, plus
/// its other properties as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    logical_id: String,
    properties: Map<String, Value>,
    stages: Vec<Stage>,
}

/// One stage: its name and its actions in template order.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The stage's `Name`.
    pub name: String,
    /// Its actions, in the order the template lists them (see
    /// [`Stage::run_order_groups`] for execution order).
    pub actions: Vec<Action>,
}

/// One action of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The action's `Name`.
    pub name: String,
    /// `ActionTypeId.Category`.
    pub category: ActionCategory,
    /// `ActionTypeId.Owner`.
    pub owner: ActionOwner,
    /// `ActionTypeId.Provider` (`CodeBuild`, `CloudFormation`, `Lambda`,
    /// `Manual`, `CodeCommit`, `CodeStarSourceConnection`, ...).
    pub provider: String,
    /// `ActionTypeId.Version` as text (`"1"`).
    pub version: String,
    /// `RunOrder`; CodePipeline's default 1 when absent. Actions with the
    /// same run order run in parallel, lower numbers first.
    pub run_order: u32,
    /// `Configuration`, values as written (possibly intrinsic functions).
    pub configuration: Map<String, Value>,
    /// Names of `InputArtifacts`.
    pub input_artifacts: Vec<String>,
    /// Names of `OutputArtifacts`.
    pub output_artifacts: Vec<String>,
    /// `RoleArn`, `Region`, `Namespace`, `TimeoutInMinutes`, ... : every
    /// other key of the action, as written.
    pub other: Map<String, Value>,
}

/// `ActionTypeId.Category`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionCategory {
    /// Fetches the source revision.
    Source,
    /// Builds (CodeBuild, ...).
    Build,
    /// Tests.
    Test,
    /// Deploys (CloudFormation, ...).
    Deploy,
    /// Waits for a person (Manual).
    Approval,
    /// Invokes a Lambda function (or Step Functions, ...).
    Invoke,
    /// Runs commands (the Commands action).
    Compute,
}

/// `ActionTypeId.Owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionOwner {
    /// An AWS action.
    Aws,
    /// A partner action.
    ThirdParty,
    /// A custom action.
    Custom,
}

impl ActionCategory {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Source" => Self::Source,
            "Build" => Self::Build,
            "Test" => Self::Test,
            "Deploy" => Self::Deploy,
            "Approval" => Self::Approval,
            "Invoke" => Self::Invoke,
            "Compute" => Self::Compute,
            _ => return None,
        })
    }

    /// The name CodePipeline uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "Source",
            Self::Build => "Build",
            Self::Test => "Test",
            Self::Deploy => "Deploy",
            Self::Approval => "Approval",
            Self::Invoke => "Invoke",
            Self::Compute => "Compute",
        }
    }
}

impl ActionOwner {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "AWS" => Self::Aws,
            "ThirdParty" => Self::ThirdParty,
            "Custom" => Self::Custom,
            _ => return None,
        })
    }

    /// The name CodePipeline uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "AWS",
            Self::ThirdParty => "ThirdParty",
            Self::Custom => "Custom",
        }
    }
}

impl Pipeline {
    /// Parses a pipeline resource (see [`crate::Template::pipeline`] for the
    /// rules).
    pub fn from_resource(resource: &Resource<'_>) -> Result<Self, Error> {
        let ctx = format!("Resources.{}", resource.logical_id());
        if resource.resource_type() != PIPELINE_TYPE {
            return Err(Error::shape(
                ctx,
                format!("is a {}, not a {PIPELINE_TYPE}", resource.resource_type()),
            ));
        }
        let properties = resource.properties().clone();
        let stages = properties
            .get("Stages")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::shape(&ctx, "Properties.Stages is not a list"))?
            .iter()
            .enumerate()
            .map(|(i, s)| Stage::parse(s, &format!("{ctx}.Properties.Stages[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Pipeline {
            logical_id: resource.logical_id().to_string(),
            properties,
            stages,
        })
    }

    /// The resource's logical id.
    pub fn logical_id(&self) -> &str {
        &self.logical_id
    }

    /// The stages in order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The stage names in order.
    pub fn stage_names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name.as_str()).collect()
    }

    /// One stage by name.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The position of a stage in the pipeline.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Every action with the name of its stage, in pipeline order.
    pub fn actions(&self) -> impl Iterator<Item = (&Stage, &Action)> {
        self.stages
            .iter()
            .flat_map(|s| s.actions.iter().map(move |a| (s, a)))
    }

    /// The action that outputs artifact `name`, with its stage.
    pub fn producer_of(&self, artifact: &str) -> Option<(&Stage, &Action)> {
        self.actions()
            .find(|(_, a)| a.output_artifacts.iter().any(|o| o == artifact))
    }

    /// Any pipeline property as written (`RoleArn`, `ArtifactStore`,
    /// `Name`, `PipelineType`, `Triggers`, ...).
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name)
    }
}

impl Stage {
    fn parse(v: &Value, ctx: &str) -> Result<Self, Error> {
        if v.as_object().is_some_and(is_intrinsic) {
            return Err(Error::shape(
                ctx,
                "is an intrinsic function (resolve it with Template::resolved first)",
            ));
        }
        let name = literal_str(v, "Name", ctx)?;
        let ctx = format!("{ctx} ({name})");
        let actions = v
            .get("Actions")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::shape(&ctx, "Actions is not a list"))?
            .iter()
            .enumerate()
            .map(|(i, a)| Action::parse(a, &format!("{ctx}.Actions[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Stage { name, actions })
    }

    /// One action by name.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// The actions of one category.
    pub fn actions_of(&self, category: ActionCategory) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(move |a| a.category == category)
    }

    /// The actions grouped by `RunOrder`, lowest first: each group runs in
    /// parallel, and a group starts when the previous one succeeded.
    pub fn run_order_groups(&self) -> Vec<Vec<&Action>> {
        let mut orders: Vec<u32> = self.actions.iter().map(|a| a.run_order).collect();
        orders.sort_unstable();
        orders.dedup();
        orders
            .into_iter()
            .map(|o| self.actions.iter().filter(|a| a.run_order == o).collect())
            .collect()
    }
}

impl Action {
    fn parse(v: &Value, ctx: &str) -> Result<Self, Error> {
        let obj = v.as_object().filter(|m| !is_intrinsic(m)).ok_or_else(|| {
            Error::shape(
                ctx,
                "is not a literal mapping (resolve Fn::If with Template::resolved first)",
            )
        })?;
        let name = literal_str(v, "Name", ctx)?;
        let ctx = format!("{ctx} ({name})");
        let type_id = obj
            .get("ActionTypeId")
            .ok_or_else(|| Error::shape(&ctx, "has no ActionTypeId"))?;
        let type_ctx = format!("{ctx}.ActionTypeId");
        let category = literal_str(type_id, "Category", &type_ctx)?;
        let category = ActionCategory::parse(&category)
            .ok_or_else(|| Error::shape(&type_ctx, format!("unknown Category {category}")))?;
        let owner = literal_str(type_id, "Owner", &type_ctx)?;
        let owner = ActionOwner::parse(&owner)
            .ok_or_else(|| Error::shape(&type_ctx, format!("unknown Owner {owner}")))?;
        let provider = literal_str(type_id, "Provider", &type_ctx)?;
        let version = match type_id.get("Version") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(Error::shape(&type_ctx, "Version is not a literal")),
        };
        let run_order = match obj.get("RunOrder") {
            None => Some(1),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(Value::String(s)) => s.parse().ok(),
            Some(_) => None,
        }
        .filter(|o| *o >= 1)
        .ok_or_else(|| Error::shape(&ctx, "RunOrder is not a positive integer"))?;
        let configuration = match obj.get("Configuration") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(Error::shape(&ctx, "Configuration is not a mapping")),
        };
        let input_artifacts = artifact_names(obj.get("InputArtifacts"), &ctx)?;
        let output_artifacts = artifact_names(obj.get("OutputArtifacts"), &ctx)?;
        let known = [
            "Name",
            "ActionTypeId",
            "RunOrder",
            "Configuration",
            "InputArtifacts",
            "OutputArtifacts",
        ];
        let other = obj
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Action {
            name,
            category,
            owner,
            provider,
            version,
            run_order,
            configuration,
            input_artifacts,
            output_artifacts,
            other,
        })
    }

    /// One configuration value as written.
    pub fn config(&self, key: &str) -> Option<&Value> {
        self.configuration.get(key)
    }

    /// One configuration value, if it is a literal string.
    pub fn config_str(&self, key: &str) -> Option<&str> {
        self.config(key).and_then(Value::as_str)
    }

    /// For a CloudFormation action, `TemplatePath` (`Artifact::file`) split
    /// into the artifact name and the file inside it.
    pub fn template_path(&self) -> Option<(&str, &str)> {
        self.config_str("TemplatePath")?.split_once("::")
    }

    /// `Capabilities` split at commas (CloudFormation actions).
    pub fn capabilities(&self) -> Vec<&str> {
        self.config_str("Capabilities")
            .map(|c| c.split(',').collect())
            .unwrap_or_default()
    }
}

/// `{"Ref": ..}` or `{"Fn::..": ..}`.
fn is_intrinsic(m: &Map<String, Value>) -> bool {
    m.len() == 1 && m.keys().all(|k| k == "Ref" || k.starts_with("Fn::"))
}

fn literal_str(v: &Value, key: &str, ctx: &str) -> Result<String, Error> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::shape(ctx, format!("{key} is not a literal string")))
}

fn artifact_names(v: Option<&Value>, ctx: &str) -> Result<Vec<String>, Error> {
    let Some(v) = v else { return Ok(Vec::new()) };
    v.as_array()
        .ok_or_else(|| Error::shape(ctx, "artifacts are not a list"))?
        .iter()
        .map(|a| literal_str(a, "Name", &format!("{ctx} artifact")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Resolver, Template};
    use serde_json::json;

    const PIPELINE: &str = r#"
Parameters:
  ServiceName: {Type: String, Default: svc}
  UseCodeCommit: {Type: String, Default: "true"}
Conditions:
  CodeCommit: !Equals [!Ref UseCodeCommit, "true"]
Resources:
  Pipeline:
    Type: AWS::CodePipeline::Pipeline
    Properties:
      RoleArn: !GetAtt Role.Arn
      Stages:
        - Name: Source
          Actions:
            - !If
              - CodeCommit
              - Name: Source
                ActionTypeId: {Category: Source, Owner: AWS, Provider: CodeCommit, Version: "1"}
                OutputArtifacts: [{Name: SourceCode}]
              - Name: Source
                ActionTypeId: {Category: Source, Owner: AWS, Provider: CodeStarSourceConnection, Version: "1"}
                OutputArtifacts: [{Name: SourceCode}]
        - Name: Beta
          Actions:
            - Name: Test
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: 1}
              RunOrder: 2
              Configuration:
                FunctionName: !Sub ${ServiceName}_start_tests
              InputArtifacts: [{Name: BuildOutput}]
            - Name: Deploy
              ActionTypeId: {Category: Deploy, Owner: AWS, Provider: CloudFormation, Version: "1"}
              RoleArn: !GetAtt DeployRole.Arn
              Configuration:
                TemplatePath: BuildOutput::packaged-app.yaml
                Capabilities: CAPABILITY_IAM,CAPABILITY_AUTO_EXPAND
              InputArtifacts: [{Name: BuildOutput}]
            - Name: Lint
              ActionTypeId: {Category: Test, Owner: AWS, Provider: CodeBuild, Version: "1"}
              InputArtifacts: [{Name: SourceCode}]
              OutputArtifacts: [{Name: BuildOutput}]
"#;

    fn template() -> Template {
        Template::from_yaml_str(PIPELINE).unwrap()
    }

    fn resolved(use_codecommit: &str) -> Pipeline {
        let t = template();
        let r = Resolver::for_template(&t, [("UseCodeCommit", use_codecommit)]);
        t.resolved(&r).pipeline("Pipeline").unwrap()
    }

    #[test]
    fn an_action_chosen_with_fn_if_needs_resolving_first() {
        let err = template().pipeline("Pipeline").unwrap_err();
        assert!(
            err.to_string()
                .contains("resolve Fn::If with Template::resolved first"),
            "{err}"
        );
    }

    #[test]
    fn resolving_picks_the_source_action_by_condition() {
        let source = |p: &Pipeline| p.stage("Source").unwrap().actions[0].provider.clone();
        assert_eq!(source(&resolved("true")), "CodeCommit");
        assert_eq!(source(&resolved("false")), "CodeStarSourceConnection");
    }

    #[test]
    fn stages_keep_their_order() {
        let p = resolved("true");
        assert_eq!(p.stage_names(), vec!["Source", "Beta"]);
        assert_eq!(p.stage_index("Beta"), Some(1));
        assert_eq!(p.logical_id(), "Pipeline");
    }

    #[test]
    fn action_fields_are_typed() {
        let p = resolved("true");
        let test = p.stage("Beta").unwrap().action("Test").unwrap();
        assert_eq!(test.category, ActionCategory::Invoke);
        assert_eq!(test.owner, ActionOwner::Aws);
        assert_eq!(test.provider, "Lambda");
        assert_eq!(test.version, "1");
        assert_eq!(test.run_order, 2);
        assert_eq!(test.config_str("FunctionName"), Some("svc_start_tests"));
        assert_eq!(test.input_artifacts, vec!["BuildOutput"]);
    }

    #[test]
    fn run_order_defaults_to_one_and_groups_sort_by_it() {
        let p = resolved("true");
        let groups: Vec<Vec<&str>> = p
            .stage("Beta")
            .unwrap()
            .run_order_groups()
            .into_iter()
            .map(|g| g.into_iter().map(|a| a.name.as_str()).collect())
            .collect();
        assert_eq!(groups, vec![vec!["Deploy", "Lint"], vec!["Test"]]);
    }

    #[test]
    fn deploy_helpers_split_template_path_and_capabilities() {
        let p = resolved("true");
        let deploy = p.stage("Beta").unwrap().action("Deploy").unwrap();
        assert_eq!(
            deploy.template_path(),
            Some(("BuildOutput", "packaged-app.yaml"))
        );
        assert_eq!(
            deploy.capabilities(),
            vec!["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
        );
        assert_eq!(
            deploy.other.get("RoleArn"),
            Some(&json!({"Fn::GetAtt": ["DeployRole", "Arn"]}))
        );
    }

    #[test]
    fn producer_of_finds_the_action_that_outputs_an_artifact() {
        let p = resolved("true");
        let (stage, action) = p.producer_of("BuildOutput").unwrap();
        assert_eq!(
            (stage.name.as_str(), action.name.as_str()),
            ("Beta", "Lint")
        );
        assert!(p.producer_of("Nothing").is_none());
    }

    #[test]
    fn actions_of_filters_by_category() {
        let p = resolved("true");
        let names: Vec<_> = p
            .stage("Beta")
            .unwrap()
            .actions_of(ActionCategory::Deploy)
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, vec!["Deploy"]);
    }

    #[test]
    fn pipeline_properties_stay_available() {
        let p = resolved("true");
        assert_eq!(
            p.property("RoleArn"),
            Some(&json!({"Fn::GetAtt": ["Role", "Arn"]}))
        );
    }

    #[test]
    fn rejects_a_resource_that_is_not_a_pipeline() {
        let t = Template::from_yaml_str("Resources:\n  T:\n    Type: AWS::SNS::Topic\n").unwrap();
        assert!(t.pipeline("T").unwrap_err().to_string().contains("not a"));
        assert!(t.pipeline("Missing").is_err());
        assert!(t.only_pipeline().is_err());
    }

    #[test]
    fn rejects_an_unknown_category() {
        let t = Template::from_yaml_str(
            "Resources:\n  P:\n    Type: AWS::CodePipeline::Pipeline\n    Properties:\n      Stages:\n        - Name: S\n          Actions:\n            - Name: A\n              ActionTypeId: {Category: Nope, Owner: AWS, Provider: X, Version: '1'}\n",
        )
        .unwrap();
        assert!(
            t.only_pipeline()
                .unwrap_err()
                .to_string()
                .contains("unknown Category Nope")
        );
    }

    #[test]
    fn rejects_a_zero_run_order() {
        let t = Template::from_yaml_str(
            "Resources:\n  P:\n    Type: AWS::CodePipeline::Pipeline\n    Properties:\n      Stages:\n        - Name: S\n          Actions:\n            - Name: A\n              RunOrder: 0\n              ActionTypeId: {Category: Build, Owner: AWS, Provider: X, Version: '1'}\n",
        )
        .unwrap();
        assert!(
            t.only_pipeline()
                .unwrap_err()
                .to_string()
                .contains("RunOrder")
        );
    }
}
