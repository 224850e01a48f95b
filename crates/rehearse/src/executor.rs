//! The pipeline executor: reads the `AWS::CodePipeline::Pipeline` of
//! pipeline.yaml and runs its stages in order, the actions of a stage by
//! `RunOrder` (equal run orders in parallel), each with a local equivalent
//! of its AWS action type.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cfn_template::{Action, ParameterError, Pipeline, ResolveError, Template};
use serde_json::{Value, json};

use crate::alarms::AlarmState;
use crate::changeset;
use crate::endpoint::Endpoint;
use crate::ids;
use crate::lock::{LockError, WorkDirLock};
use crate::report::StageRollback;
use crate::report::{
    ActionReport, FailedAction, PlannedAction, PlannedStage, Printer, Rehearsed, RunReport,
    StageReport, Status, files, millis,
};
use crate::shift::{self, LoadSettings, ShiftOutcome, SyntheticLoad, Watched};
use crate::source::{self, Snapshot, SourceError};
use crate::stack::{self, DeployError, Deployer, Locals, ResourceValues};
use crate::traffic::{DeploymentType, TimeScale};
use crate::world::{AsyncFailure, ChangeSetRecord, JobResult, World};

/// How to rehearse.
#[derive(Debug, Clone)]
pub struct Options {
    /// The git repository whose commits the Source action takes.
    pub repo: PathBuf,
    /// A commit, tag or branch; default: the branch the Source action names.
    pub rev: Option<String>,
    /// The pipeline template inside the commit.
    pub pipeline_file: String,
    /// Overrides for pipeline.yaml's parameters (also passed to its own stack).
    pub parameters: BTreeMap<String, String>,
    /// Approve manual approvals without asking.
    pub approve: bool,
    /// Stop before this stage.
    pub until: Option<String>,
    /// How long an Invoke action waits for its job's result.
    pub job_timeout: Duration,
    /// `--arch` for scripts/build.sh.
    pub arch: String,
    /// CARGO_TARGET_DIR for the build (shared so builds stay warm).
    pub target_dir: PathBuf,
    /// Where checkouts, artifacts and logs go (`<repo>/.rehearsal`).
    pub work_dir: PathBuf,
    /// The pinned tools (`<repo>/.tools`), linked into the checkout.
    pub tools_dir: Option<PathBuf>,
    /// Ask on the terminal at manual approvals (the CLI sets it when stdin
    /// is a terminal); without it and without `approve` an approval fails.
    pub prompt: bool,
    /// Rehearse the working tree as it is (a snapshot commit of HEAD and
    /// the uncommitted changes) instead of a commit; `rev` is then unused.
    pub working_tree: bool,
    /// How often a long action (the build, a gate waiting for its job's
    /// result) prints a progress line.
    pub progress_interval: Duration,
    /// How long one AWS minute lasts in the rehearsal: traffic shifts
    /// (`DeploymentPreference`), alarm periods and bakes (`WaitTime`) run
    /// on this scale. Default: one AWS minute in one second.
    pub time_scale: TimeScale,
    /// The synthetic load a traffic shift or a bake drives against the
    /// stage's gateway (a local stage has no users).
    pub load: LoadSettings,
    /// Progress lines on stdout.
    pub printer: Printer,
    /// The time deployment windows (`DeploymentWindow` rules of a stage's
    /// `BeforeEntry` condition) are evaluated at (`--now`); default: the
    /// local clock when the stage is reached.
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

impl Options {
    /// Defaults for rehearsing `repo`.
    pub fn for_repo(repo: impl Into<PathBuf>) -> Self {
        let repo: PathBuf = repo.into();
        let tools = repo.join(".tools");
        Self {
            rev: None,
            pipeline_file: "pipeline.yaml".into(),
            parameters: BTreeMap::new(),
            approve: false,
            until: None,
            job_timeout: Duration::from_secs(60),
            arch: host_arch().to_string(),
            target_dir: repo.join("target"),
            work_dir: repo.join(".rehearsal"),
            tools_dir: tools.is_dir().then_some(tools),
            prompt: false,
            working_tree: false,
            progress_interval: Duration::from_secs(10),
            time_scale: TimeScale::default(),
            load: LoadSettings::default(),
            printer: Printer::default(),
            now: None,
            repo,
        }
    }
}

/// The architecture name build.sh takes for this machine.
pub fn host_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    }
}

/// Errors that stop a rehearsal before any stage runs.
#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{file} at {commit}: {source}")]
    Pipeline {
        file: String,
        commit: String,
        source: cfn_template::Error,
    },
    #[error("{file}: {source}; or pass --parameter NAME=VALUE")]
    PipelineParameters {
        file: String,
        source: ParameterError,
    },
    #[error("{file}: the Source action's BranchName: {source}; pass --rev")]
    BranchName { file: String, source: ResolveError },
    #[error("{file}: no Source action with a BranchName; pass --rev")]
    NoSourceBranch { file: String },
    #[error(
        "branch {branch} (the Source action's BranchName) does not exist in {repo}; pass --rev, or --parameter BranchName=<branch>"
    )]
    NoSuchBranch { branch: String, repo: String },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot start the local AWS endpoint on 127.0.0.1: {0}")]
    Endpoint(std::io::Error),
    #[error("cannot create {path}: {source}")]
    WorkDir {
        path: String,
        source: std::io::Error,
    },
}

/// A `ParameterOverrides` configuration the rehearsal cannot read.
#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    #[error(
        "configuration ParameterOverrides is not JSON ({source}): {text}; write a JSON object of parameter names to values"
    )]
    NotJson {
        text: String,
        source: serde_json::Error,
    },
    #[error(
        "configuration ParameterOverrides is not a JSON object: {text}; write a JSON object of parameter names to values"
    )]
    NotAnObject { text: String },
    #[error(
        "configuration ParameterOverrides: the value of {key} ({value}) uses a parameter override function the rehearsal does not support; give a plain value"
    )]
    Unsupported { key: String, value: String },
}

/// Why one action failed; the message is what the report shows.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(
        "action type {category}/{owner}/{provider} cannot be rehearsed locally (supported: Source CodeCommit/CodeStarSourceConnection, Build CodeBuild, Deploy CloudFormation, Invoke Lambda, Approval Manual)"
    )]
    Unsupported {
        category: String,
        owner: String,
        provider: String,
    },
    #[error("configuration {key} is missing; add it to the action's Configuration")]
    MissingConfig { key: String },
    #[error("configuration {key}: {source}")]
    Resolve { key: String, source: ResolveError },
    #[error("the action has no input artifact; add InputArtifacts")]
    NoInputArtifact,
    #[error("input artifact {0} was not produced by an earlier action")]
    MissingArtifact(String),
    #[error(
        "configuration TemplateConfiguration is not supported by the rehearsal; use ParameterOverrides"
    )]
    TemplateConfiguration,
    #[error("configuration TemplatePath {0:?} is not of the form Artifact::file")]
    TemplatePath(String),
    #[error(
        "configuration ChangeSetName: no change set {change_set} of stack {stack} was created earlier in this run; a CHANGE_SET_REPLACE action must come first"
    )]
    NoSuchChangeSet { stack: String, change_set: String },
    /// A `#{Namespace.Variable}` no earlier action of the run produced.
    #[error(
        "configuration {key}: variable #{{{reference}}} is not set: {why} (namespaces set so far: {known}); give the action that produces it `Namespace` and run it earlier"
    )]
    UnresolvedVariable {
        key: String,
        reference: String,
        why: String,
        known: String,
    },
    #[error(
        "configuration ActionMode: {0} is not a CloudFormation action mode (CREATE_UPDATE, REPLACE_ON_FAILURE, CHANGE_SET_REPLACE, CHANGE_SET_EXECUTE, DELETE_ONLY)"
    )]
    ActionMode(String),
    #[error(transparent)]
    ParameterOverrides(#[from] OverridesError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("build failed ({status}); last lines of {log}:\n{tail}")]
    Build {
        status: String,
        log: String,
        tail: String,
    },
    #[error("cannot run the build script {script}: {source}")]
    BuildStart {
        script: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The action's role may not create a role the template defines.
    #[error(transparent)]
    DeployPolicy(#[from] crate::deploy_policy::DeployPolicyError),
    #[error(
        "function {0} is not deployed locally; it must come from a stack deployed earlier or from packaged-pipeline.yaml"
    )]
    UnknownFunction(String),
    /// The job's result: a failure its function reported.
    #[error("{failure_type}: {message}")]
    JobReportedFailure {
        /// `failureDetails.type`: JobFailed, ConfigurationError, ...
        failure_type: String,
        message: String,
    },
    /// The function failed every attempt before anything reported the job.
    #[error("function {function} failed without reporting job {job_id}{}: {error}", attempts_note(*.attempts))]
    FunctionFailed {
        function: String,
        job_id: String,
        /// Invocations made: 1 + `EventInvokeConfig.MaximumRetryAttempts`.
        attempts: u32,
        error: String,
    },
    /// Nothing reported the job before the deadline.
    #[error(
        "no result reported for job {job_id} within {} s of invoking {function} (on AWS the action would time out after 20 minutes){}; see the function logs under .rehearsal/logs",
        .waited.as_secs(),
        background_note(.background)
    )]
    NoJobResult {
        job_id: String,
        function: String,
        waited: Duration,
        /// Asynchronous invocations that failed meanwhile (the gate's own
        /// follow-up invocations, say).
        background: Vec<AsyncFailure>,
    },
    #[error("job {0} was abandoned")]
    JobAbandoned(String),
    #[error(
        "manual approval needed: rerun with --approve, or run on a terminal to answer the prompt"
    )]
    ApprovalNeeded,
    #[error("rejected at the prompt")]
    Rejected,
    /// An alarm fired during a gradual deployment: the alias went back.
    #[error(
        "alarm {} went to ALARM while {resource} shifted to version {new} ({:.0}% of the traffic); all traffic is back on version {old} and version {new} stopped (CodeDeploy rollback); see the function logs under .rehearsal/logs",
        .alarms.join(", "),
        .new_weight * 100.0
    )]
    AlarmDuringShift {
        alarms: Vec<String>,
        resource: String,
        old: u32,
        new: u32,
        new_weight: f64,
    },
    /// A `BeforeEntry` `DeploymentWindow` rule whose window is closed. On
    /// AWS the execution waits at the stage's entry until the window opens;
    /// the rehearsal stops instead (a window may be days away).
    #[error(
        "outside the deployment window: rule {rule} ({window}) is closed at {now}; it opens next at {next}. On AWS the execution waits at {stage}'s entry until then; the rehearsal stops instead: rehearse again inside the window, or pass --now <RFC3339> with a time inside it"
    )]
    OutsideDeploymentWindow {
        stage: String,
        rule: String,
        window: String,
        now: String,
        /// When the window opens next, or why it never does.
        next: String,
    },
    /// A `BeforeEntry` VariableCheck rule that failed the stage's entry or
    /// could not be evaluated.
    #[error(
        "{stage}: BeforeEntry rule {rule}: {reason}; check the rule's Variable (an earlier action's #{{Namespace.Variable}}), Value and Operator in the pipeline definition"
    )]
    EntryRule {
        stage: String,
        rule: String,
        reason: String,
    },
    /// A `DeploymentWindow` rule whose configuration cannot be evaluated.
    #[error(
        "BeforeEntry rule {rule}: {source}; fix the rule's Configuration (the pipeline's deployment window parameter)"
    )]
    DeploymentWindow {
        rule: String,
        source: crate::window::WindowError,
    },
    /// An alarm of an `OnSuccess` CloudWatchAlarm rule during the bake.
    #[error("alarm {alarm} was {state} during the bake (rule {rule}, WaitTime {wait_minutes} min)")]
    AlarmDuringBake {
        rule: String,
        alarm: String,
        state: String,
        wait_minutes: u32,
    },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(
            " ({attempts} attempts, as EventInvokeConfig.MaximumRetryAttempts is {})",
            attempts - 1
        )
    } else {
        String::new()
    }
}

fn background_note(failures: &[AsyncFailure]) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let list: Vec<String> = failures
        .iter()
        .map(|f| format!("{} failed: {}", f.function, f.error))
        .collect();
    format!("; meanwhile {}", list.join("; "))
}

#[derive(Debug, Clone)]
struct RunState {
    commit: String,
    artifacts: BTreeMap<String, PathBuf>,
    run_dir: PathBuf,
    /// Output variables of the run's actions, by the action's `Namespace`.
    variables: Variables,
    /// Whether Build deploys the pipeline stack (its first deploy, or a
    /// definition without a self-update stage: the manual `sam deploy`);
    /// otherwise the self-update's change set does.
    build_deploys_pipeline_stack: bool,
}

/// Output variables by namespace, then by name.
type Variables = BTreeMap<String, BTreeMap<String, String>>;

/// Stages persist across the runs of one [`Rehearsal`] (`--watch`, or
/// several [`Rehearsal::run`] calls): a stage's last successful release is
/// what `OnFailure`/`OnSuccess` `ROLLBACK` goes back to. Its artifacts are
/// those of its run directory (kept by [`prune_runs`]); the source
/// artifact is the shared checkout, which later runs overwrite, so a
/// rollback redeploys from build outputs (as this pipeline's deploys do).
type Releases = BTreeMap<String, RunState>;

/// A rehearsal: the local AWS account, endpoint and stacks, which stay up
/// between pipeline runs (`--watch`): a redeploy publishes new versions
/// next to the running ones, and a failing stage rolls back to its last
/// successful release of an earlier run.
pub struct Rehearsal {
    options: Options,
    world: Arc<World>,
    endpoint: Endpoint,
    deployer: Arc<Deployer>,
    /// Working tree snapshots made by [`Rehearsal::source_commit`], by commit.
    snapshots: std::sync::Mutex<BTreeMap<String, Snapshot>>,
    /// Each stage's last successful release (commit and artifacts).
    releases: std::sync::Mutex<Releases>,
    _lock: WorkDirLock,
}

impl Rehearsal {
    pub async fn start(options: Options) -> Result<Self, RehearsalError> {
        std::fs::create_dir_all(&options.work_dir).map_err(|source| RehearsalError::WorkDir {
            path: options.work_dir.display().to_string(),
            source,
        })?;
        let lock = wait_for_lock(&options.work_dir, &options.printer).await?;
        let world = World::new();
        let endpoint = Endpoint::start(world.clone())
            .await
            .map_err(RehearsalError::Endpoint)?;
        let deployer = Arc::new(
            Deployer::new(world.clone(), endpoint.url(), options.work_dir.join("logs"))
                .with_moto(crate::moto::Moto::in_tools(options.tools_dir.as_deref())),
        );
        tracing::info!(endpoint = %endpoint.url(), "local AWS endpoint started");
        Ok(Self {
            options,
            world,
            endpoint,
            deployer,
            snapshots: std::sync::Mutex::new(BTreeMap::new()),
            releases: std::sync::Mutex::new(BTreeMap::new()),
            _lock: lock,
        })
    }

    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    pub fn endpoint_url(&self) -> String {
        self.endpoint.url()
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub async fn urls(&self) -> BTreeMap<String, String> {
        self.deployer.api_urls().await
    }

    pub async fn shutdown(&self) {
        self.deployer.shutdown().await;
    }

    /// The commit of each stage's last successful release in this rehearsal.
    pub fn last_releases(&self) -> BTreeMap<String, String> {
        self.lock_releases()
            .iter()
            .map(|(stage, release)| (stage.clone(), release.commit.clone()))
            .collect()
    }

    /// The current version of each alias of `stack`: (`function:alias`, version).
    pub async fn alias_versions(&self, stack: &str) -> BTreeMap<String, u32> {
        self.deployer.alias_versions(stack).await
    }

    fn lock_releases(&self) -> std::sync::MutexGuard<'_, Releases> {
        self.releases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The commit a run takes: with `working_tree`, a snapshot commit of
    /// the working tree; otherwise `--rev`, or the tip of the branch the
    /// Source action names.
    pub fn source_commit(&self) -> Result<String, RehearsalError> {
        let repo = &self.options.repo;
        if self.options.working_tree {
            let snapshot = source::snapshot_working_tree(repo, self.work_dir_in_repo().as_deref())?;
            let commit = snapshot.commit.clone();
            if snapshot.changed_files > 0 {
                self.snapshots
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(commit.clone(), snapshot);
            }
            return Ok(commit);
        }
        if let Some(rev) = &self.options.rev {
            return Ok(source::resolve_commit(repo, rev)?);
        }
        let head = source::resolve_commit(repo, "HEAD")?;
        let (pipeline, locals) = self.read_pipeline(&head)?;
        let file = &self.options.pipeline_file;
        let branch = pipeline
            .stages()
            .iter()
            .flat_map(|s| &s.actions)
            .find(|a| a.category.as_str() == "Source")
            .and_then(|a| a.config("BranchName"))
            .ok_or_else(|| RehearsalError::NoSourceBranch { file: file.clone() })?;
        let branch =
            locals
                .resolver
                .resolve_text(branch)
                .map_err(|source| RehearsalError::BranchName {
                    file: file.clone(),
                    source,
                })?;
        source::resolve_commit(repo, &format!("refs/heads/{branch}")).map_err(|_| {
            RehearsalError::NoSuchBranch {
                branch,
                repo: repo.display().to_string(),
            }
        })
    }

    /// The work directory relative to the repository when it is inside it
    /// (the default `.rehearsal`), so its files never count as changes.
    fn work_dir_in_repo(&self) -> Option<PathBuf> {
        let (repo, work_dir) = (&self.options.repo, &self.options.work_dir);
        let relative = match work_dir.strip_prefix(repo) {
            Ok(relative) => relative.to_path_buf(),
            Err(_) => {
                let repo = repo.canonicalize().ok()?;
                let work_dir = work_dir.canonicalize().ok()?;
                work_dir.strip_prefix(repo).ok()?.to_path_buf()
            }
        };
        // The repository itself as the work directory excludes nothing.
        (relative != Path::new("")).then_some(relative)
    }

    /// pipeline.yaml at `commit`: the pipeline (conditions and parameters
    /// resolved) and the local values that resolve its configuration.
    fn read_pipeline(&self, commit: &str) -> Result<(Pipeline, Locals), RehearsalError> {
        let text = source::show_file(&self.options.repo, commit, &self.options.pipeline_file)?;
        self.parse_pipeline(&text, commit)
    }

    /// A pipeline template's text (pipeline.yaml at `origin`, a commit, or
    /// the packaged template the pipeline stack runs): the pipeline and its
    /// local values.
    fn parse_pipeline(
        &self,
        text: &str,
        origin: &str,
    ) -> Result<(Pipeline, Locals), RehearsalError> {
        let file = &self.options.pipeline_file;
        let wrap = |source| RehearsalError::Pipeline {
            file: file.clone(),
            commit: origin.to_string(),
            source,
        };
        let template = Template::from_yaml_str(text).map_err(wrap)?;
        let parameters = template
            .parameter_values(&self.options.parameters)
            .map_err(|source| RehearsalError::PipelineParameters {
                file: file.clone(),
                source,
            })?;
        let stack_name = self.pipeline_stack_name(&parameters);
        let mut locals = Locals::new(&stack_name, &template, parameters);
        for resource in template.resources_of_type("AWS::Serverless::Function") {
            if let Some(name) = resource.property("FunctionName")
                && let Ok(name) = locals.resolver.resolve_text(name)
            {
                let mut values = ResourceValues::new(resource.resource_type(), name);
                values
                    .attributes
                    .insert("Arn".into(), ids::function_arn(&values.reference));
                locals.insert(resource.logical_id(), values);
            }
        }
        locals.build_environments = build_environments(&template, &locals);
        let pipeline = template
            .resolved(&locals.resolver)
            .only_pipeline()
            .map_err(wrap)?;
        Ok((pipeline, locals))
    }

    /// The definition an execution of `commit` starts under. On AWS that
    /// is the one the pipeline stack holds, not the commit's: a change to
    /// pipeline.yaml reaches the pipeline through its self-update (stage
    /// UpdatePipeline). So when the pipeline stack runs a definition that
    /// updates itself, the run starts under that one, and
    /// [`Self::changed_definition`] switches to the commit's after the
    /// self-update executed; otherwise (the first run, which stands for the
    /// first `sam deploy`, or a pipeline without a self-update) under the
    /// commit's.
    async fn starting_pipeline(&self, commit: &str) -> Result<(Pipeline, Locals), RehearsalError> {
        let (pipeline, locals) = self.read_pipeline(commit)?;
        let stack = locals.stack_name.clone();
        let Some((path, _)) = self.deployer.running(&stack).await else {
            return Ok((pipeline, locals));
        };
        let running = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| self.parse_pipeline(&text, &path.display().to_string()).ok());
        match running {
            Some((running, running_locals))
                if updates_itself(&running, &stack) && running != pipeline =>
            {
                self.options.printer.note(&format!(
                    "starting under the pipeline definition stack {stack} runs; commit {}'s pipeline.yaml differs and applies once its self-update has run",
                    short_commit(commit)
                ));
                Ok((running, running_locals))
            }
            _ => Ok((pipeline, locals)),
        }
    }

    /// After `stage` succeeded: when it deployed the pipeline stack (the
    /// self-update's execute) and the commit's pipeline definition differs
    /// from `current`, the commit's definition. On AWS, updating the pipeline
    /// lets running actions finish and ends the execution (status
    /// Cancelled), and RestartExecutionOnUpdate starts a new execution of
    /// the same revision under the new definition, whose self-update then
    /// finds nothing to change ("Edit a pipeline in CodePipeline", AWS
    /// CodePipeline User Guide; "PipelineExecution", API Reference). The
    /// rehearsal continues the same run under the new definition from the
    /// stage after `stage`, which is where that new execution's release
    /// goes on to.
    fn changed_definition(
        &self,
        commit: &str,
        stage: &cfn_template::Stage,
        current: &Pipeline,
        locals: &Locals,
    ) -> Result<Option<(Pipeline, Locals)>, RehearsalError> {
        let deployed_itself = stage.actions.iter().any(|a| {
            a.provider == "CloudFormation"
                && a.config_str("StackName") == Some(locals.stack_name.as_str())
                && matches!(
                    a.config_str("ActionMode"),
                    Some("CHANGE_SET_EXECUTE" | "CREATE_UPDATE" | "REPLACE_ON_FAILURE")
                )
        });
        if !deployed_itself {
            return Ok(None);
        }
        let (new, new_locals) = self.read_pipeline(commit)?;
        Ok((new != *current).then_some((new, new_locals)))
    }

    fn pipeline_stack_name(&self, parameters: &BTreeMap<String, String>) -> String {
        let service = parameters
            .get("ServiceName")
            .cloned()
            .unwrap_or_else(|| "rehearsal".to_string());
        format!("{service}-pipeline")
    }

    /// Runs the pipeline once, for `commit`.
    pub async fn run(&self, commit: &str) -> Result<RunReport, RehearsalError> {
        let started = Instant::now();
        let (mut pipeline, mut locals) = self.starting_pipeline(commit).await?;
        let build_deploys_pipeline_stack = !(updates_itself(&pipeline, &locals.stack_name)
            && self.deployer.running(&locals.stack_name).await.is_some());
        let printer = &self.options.printer;
        let pipeline_name = pipeline.logical_id().to_string();
        let snapshot = self
            .snapshots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(commit)
            .cloned();
        let rehearsed = match snapshot {
            Some(s) => Rehearsed::WorkingTree {
                head: s.head,
                changed_files: s.changed_files,
            },
            None => Rehearsed::Commit,
        };
        let subject = match &rehearsed {
            Rehearsed::WorkingTree { head, .. } => source::subject(&self.options.repo, head),
            Rehearsed::Commit => source::subject(&self.options.repo, commit),
        };
        let plan = pipeline
            .stages()
            .iter()
            .map(|stage| PlannedStage {
                name: stage.name.clone(),
                actions: stage
                    .run_order_groups()
                    .into_iter()
                    .flatten()
                    .map(|action| PlannedAction {
                        name: action.name.clone(),
                        provider: action.provider.clone(),
                        run_order: action.run_order,
                    })
                    .collect(),
            })
            .collect();
        printer.run_start(&pipeline_name, commit, &rehearsed, &subject, plan);
        if rehearsed == Rehearsed::Commit
            && let Ok(changed) =
                source::changed_files(&self.options.repo, self.work_dir_in_repo().as_deref())
            && changed > 0
        {
            printer.note(&format!(
                "{} in {} {} uncommitted changes; not rehearsed: the rehearsal checks out the commit (pass --working-tree to rehearse the working tree as it is)",
                files(changed),
                self.options.repo.display(),
                if changed == 1 { "has" } else { "have" },
            ));
        }

        let run_id = format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            &commit[..commit.len().min(8)]
        );
        let run_dir = self.options.work_dir.join("runs").join(&run_id);
        std::fs::create_dir_all(run_dir.join("artifacts")).map_err(|source| {
            RehearsalError::WorkDir {
                path: run_dir.display().to_string(),
                source,
            }
        })?;
        let protected: Vec<PathBuf> = self
            .lock_releases()
            .values()
            .map(|r| r.run_dir.clone())
            .collect();
        prune_runs(&self.options.work_dir.join("runs"), 10, &protected);
        let mut state = RunState {
            commit: commit.to_string(),
            artifacts: BTreeMap::new(),
            run_dir,
            variables: BTreeMap::new(),
            build_deploys_pipeline_stack,
        };

        let mut stages = Vec::new();
        let mut failed_action = None;
        let mut stopped_before = None;
        // Switched to the commit's pipeline definition (once per run).
        let mut switched = false;
        let mut index = 0;
        while let Some(stage) = pipeline.stages().get(index).cloned() {
            index += 1;
            let stage = &stage;
            let not_run = StageReport {
                name: stage.name.clone(),
                status: Status::NotRun,
                duration_ms: 0,
                actions: Vec::new(),
                rolled_back: None,
            };
            if failed_action.is_some() || stopped_before.is_some() {
                stages.push(not_run);
                continue;
            }
            if self.options.until.as_deref() == Some(stage.name.as_str()) {
                printer.stopped_before(&stage.name);
                stopped_before = Some(stage.name.clone());
                stages.push(not_run);
                continue;
            }
            let conditions = StageConditions::read(&pipeline, &stage.name);
            if let Some(error) = self.closed_entry(&stage.name, &conditions) {
                failed_action = Some(FailedAction {
                    stage: stage.name.clone(),
                    action: "BeforeEntry".to_string(),
                    reason: error.to_string(),
                    error: Some(Arc::new(error)),
                });
                let report = StageReport {
                    status: Status::Failed,
                    ..not_run
                };
                printer.stage_end(&report);
                stages.push(report);
                continue;
            }
            match entry_decision(&stage.name, &conditions.entry_checks, &state.variables) {
                Ok(EntryDecision::Enter) => {}
                Ok(EntryDecision::Skip(why)) => {
                    printer.note(&format!(
                        "{}: skipped by its BeforeEntry condition: {why}",
                        stage.name
                    ));
                    let report = StageReport {
                        status: Status::Skipped,
                        ..not_run
                    };
                    printer.stage_end(&report);
                    stages.push(report);
                    continue;
                }
                Err(error) => {
                    failed_action = Some(FailedAction {
                        stage: stage.name.clone(),
                        action: "BeforeEntry".to_string(),
                        reason: error.to_string(),
                        error: Some(Arc::new(error)),
                    });
                    let report = StageReport {
                        status: Status::Failed,
                        ..not_run
                    };
                    printer.stage_end(&report);
                    stages.push(report);
                    continue;
                }
            }
            let stage_started = Instant::now();
            let mut actions = Vec::new();
            for group in stage.run_order_groups() {
                let results = futures::future::join_all(
                    group
                        .iter()
                        .map(|action| self.run_action(&stage.name, action, &locals, &state)),
                )
                .await;
                let mut group_failed = false;
                for (action, (report, outputs)) in group.iter().zip(results) {
                    if report.status == Status::Failed && failed_action.is_none() {
                        failed_action = Some(FailedAction {
                            stage: stage.name.clone(),
                            action: action.name.clone(),
                            reason: report.error.clone().unwrap_or_default(),
                            error: report.failure.clone(),
                        });
                    }
                    group_failed |= report.status == Status::Failed;
                    state.artifacts.extend(outputs);
                    if report.status == Status::Succeeded
                        && let Some(namespace) = namespace(action)
                    {
                        state
                            .variables
                            .insert(namespace.to_string(), report.output_variables.clone());
                    }
                    actions.push(report);
                }
                if group_failed {
                    break;
                }
            }
            for note in &conditions.not_emulated {
                printer.note(&format!("{}: {note}", stage.name));
            }
            let mut failed = actions.iter().any(|a| a.status == Status::Failed);
            let mut rollback_reason = None;
            if failed {
                if conditions.on_failure_rollback
                    && let Some(f) = failed_action.as_ref().filter(|f| f.stage == stage.name)
                {
                    rollback_reason = Some(format!(
                        "{} failed: {}",
                        f.action,
                        f.reason.lines().next().unwrap_or_default()
                    ));
                }
            } else if !conditions.bake.is_empty()
                && let Err(error) = self.bake(&stage.name, &conditions.bake).await
            {
                let rolls_back = conditions
                    .bake
                    .iter()
                    .find(|r| error_rule(&error) == Some(r.rule.as_str()))
                    .is_some_and(|r| r.result == "ROLLBACK");
                if rolls_back {
                    rollback_reason = Some(error.to_string());
                }
                failed = true;
                failed_action = Some(FailedAction {
                    stage: stage.name.clone(),
                    action: "OnSuccess".to_string(),
                    reason: error.to_string(),
                    error: Some(Arc::new(error)),
                });
            }
            let rolled_back = match rollback_reason {
                Some(reason) => self.roll_back_stage(stage, &locals, reason).await,
                None => None,
            };
            if !failed {
                self.lock_releases()
                    .insert(stage.name.clone(), state.clone());
            }
            let status = if failed {
                Status::Failed
            } else {
                Status::Succeeded
            };
            let report = StageReport {
                name: stage.name.clone(),
                status,
                duration_ms: millis(stage_started.elapsed()),
                actions,
                rolled_back,
            };
            printer.stage_end(&report);
            stages.push(report);
            if !failed
                && !switched
                && let Some((new, new_locals)) =
                    self.changed_definition(commit, stage, &pipeline, &locals)?
            {
                printer.note(&format!(
                    "pipeline definition changed: continuing under the new definition (pipeline.yaml of commit {}) after stage {}",
                    short_commit(commit),
                    stage.name
                ));
                index = new.stage_index(&stage.name).map_or(index, |i| i + 1);
                pipeline = new;
                locals = new_locals;
                switched = true;
            }
        }
        let report = RunReport {
            pipeline: pipeline_name,
            commit: commit.to_string(),
            rehearsed,
            subject,
            status: if failed_action.is_some() {
                Status::Failed
            } else {
                Status::Succeeded
            },
            duration_ms: millis(started.elapsed()),
            stages,
            failed_action,
            stopped_before,
            urls: self.urls().await,
        };
        printer.run_end(&report);
        Ok(report)
    }

    /// The stage's `BeforeEntry` deployment windows at `Options::now` (or
    /// the clock): the first closed one's error, or `None` when every
    /// window is open (each printed). A `DeploymentWindow` rule's condition
    /// fails when the rule does ("Configure conditions for a stage", AWS
    /// CodePipeline User Guide: if one rule fails, the condition fails).
    fn closed_entry(&self, stage: &str, conditions: &StageConditions) -> Option<ActionError> {
        if conditions.entry_windows.is_empty() {
            return None;
        }
        let now = self.options.now.unwrap_or_else(chrono::Utc::now);
        for window in &conditions.entry_windows {
            match window.check(stage, now) {
                Ok(note) => self.options.printer.note(&note),
                Err(error) => return Some(error),
            }
        }
        None
    }

    /// Runs one action; returns its report and the artifacts it produced.
    async fn run_action(
        &self,
        stage: &str,
        action: &Action,
        locals: &Locals,
        state: &RunState,
    ) -> (ActionReport, BTreeMap<String, PathBuf>) {
        let printer = &self.options.printer;
        printer.action_start(stage, &action.name, &action.provider);
        let started = Instant::now();
        let no_variables = |(summary, outputs)| (summary, outputs, BTreeMap::new());
        let result = match with_variables(action, &state.variables) {
            Err(error) => Err(error),
            Ok(action) => {
                let action = &action;
                match (action.category.as_str(), action.provider.as_str()) {
                    ("Source", "CodeCommit" | "CodeStarSourceConnection") => {
                        self.source(action, state).map(no_variables)
                    }
                    ("Build", "CodeBuild") => self
                        .build(stage, action, locals, state)
                        .await
                        .map(no_variables),
                    ("Deploy", "CloudFormation") => self
                        .deploy(stage, action, locals, state)
                        .await
                        .map(no_variables),
                    ("Invoke", "Lambda") => self
                        .invoke(stage, action, locals)
                        .await
                        .map(|(summary, variables)| (summary, BTreeMap::new(), variables)),
                    ("Approval", "Manual") => self.approve(action, locals).await.map(no_variables),
                    _ => Err(ActionError::Unsupported {
                        category: action.category.as_str().to_string(),
                        owner: action.owner.as_str().to_string(),
                        provider: action.provider.clone(),
                    }),
                }
            }
        };
        let (status, summary, failure, outputs, output_variables) = match result {
            Ok((summary, outputs, variables)) => {
                (Status::Succeeded, Some(summary), None, outputs, variables)
            }
            Err(e) => (
                Status::Failed,
                None,
                Some(Arc::new(e)),
                BTreeMap::new(),
                BTreeMap::new(),
            ),
        };
        let report = ActionReport {
            name: action.name.clone(),
            category: action.category.as_str().to_string(),
            provider: action.provider.clone(),
            status,
            duration_ms: millis(started.elapsed()),
            summary,
            error: failure.as_ref().map(|e| e.to_string()),
            failure,
            output_variables,
        };
        printer.action_end(stage, &report);
        (report, outputs)
    }

    fn input(
        &self,
        action: &Action,
        state: &RunState,
        index: usize,
    ) -> Result<PathBuf, ActionError> {
        let name = action
            .input_artifacts
            .get(index)
            .ok_or(ActionError::NoInputArtifact)?;
        state
            .artifacts
            .get(name)
            .cloned()
            .ok_or_else(|| ActionError::MissingArtifact(name.clone()))
    }

    fn source(&self, action: &Action, state: &RunState) -> ActionResult {
        let dir = self.options.work_dir.join("checkout");
        source::checkout(
            &self.options.repo,
            &state.commit,
            &dir,
            self.options.tools_dir.as_deref(),
        )?;
        let outputs = action
            .output_artifacts
            .iter()
            .map(|name| (name.clone(), dir.clone()))
            .collect();
        Ok((
            format!(
                "commit {} of {} checked out clean",
                &state.commit[..state.commit.len().min(12)],
                self.options.repo.display()
            ),
            outputs,
        ))
    }

    async fn build(
        &self,
        stage: &str,
        action: &Action,
        locals: &Locals,
        state: &RunState,
    ) -> ActionResult {
        let source = self.input(action, state, 0)?;
        // The project's environment variables reach build.sh as CodeBuild
        // sets them (APP_DIR: where the app's templates are).
        let environment = action
            .configuration
            .get("ProjectName")
            .and_then(Value::as_str)
            .and_then(|project| locals.build_environments.get(project))
            .cloned()
            .unwrap_or_default();
        // moto starts while the build runs when the app's stacks will need
        // it; the first deploy awaits the same start (stack::Deployer::warm_up_moto).
        let app_dir = source.join(environment.get("APP_DIR").map_or(".", String::as_str));
        self.deployer
            .warm_up_moto(&[app_dir.join("app-sam.yaml"), app_dir.join("test-sam.yaml")]);
        let output_name = action
            .output_artifacts
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{}Output", action.name));
        let out = state.run_dir.join("artifacts").join(&output_name);
        let log = state.run_dir.join(format!("{stage}-{}.log", action.name));
        let script = source.join("scripts/build.sh");
        let open_log = || {
            std::fs::File::create(&log).map_err(|source| ActionError::BuildStart {
                script: log.display().to_string(),
                source,
            })
        };
        let mut child = tokio::process::Command::new("bash")
            .arg(&script)
            .args(["--arch", &self.options.arch, "--out"])
            .arg(&out)
            .args(["--profile", "rehearsal"])
            .current_dir(&source)
            .envs(&environment)
            .env("CARGO_TARGET_DIR", &self.options.target_dir)
            .env("CODEBUILD_SRC_DIR", &source)
            .env("CODEBUILD_RESOLVED_SOURCE_VERSION", &state.commit)
            .env("CODEBUILD_BUILD_ID", format!("rehearsal:{}", ids::uuid()))
            .env("CODEBUILD_CI", "true")
            .stdin(std::process::Stdio::null())
            .stdout(open_log()?)
            .stderr(
                open_log()?
                    .try_clone()
                    .map_err(|source| ActionError::BuildStart {
                        script: log.display().to_string(),
                        source,
                    })?,
            )
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ActionError::BuildStart {
                script: script.display().to_string(),
                source,
            })?;
        let started = Instant::now();
        let mut progress = progress_ticks(self.options.progress_interval);
        let status = loop {
            tokio::select! {
                status = child.wait() => break status.map_err(|source| ActionError::BuildStart {
                    script: script.display().to_string(),
                    source,
                })?,
                _ = progress.tick() => {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    self.options.printer.progress(stage, &action.name, &format!(
                        "building for {}{}",
                        whole_seconds(started.elapsed()),
                        build_progress(&text)
                    ));
                }
            }
        };
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            return Err(ActionError::Build {
                status: status.to_string(),
                log: log.display().to_string(),
                tail,
            });
        }
        let mut summary = format!(
            "scripts/build.sh --arch {} wrote {}",
            self.options.arch,
            out.display()
        );
        // The pipeline's own functions (start-tests) are built from this
        // repository too: deploy them as CodePipeline's stack would hold them.
        let pipeline_template = out.join("packaged-pipeline.yaml");
        if pipeline_template.is_file() && !state.build_deploys_pipeline_stack {
            summary += "; the pipeline stack is updated by the pipeline's own change set";
        } else if pipeline_template.is_file() {
            let template =
                Template::from_path(&pipeline_template).map_err(|source| DeployError::Load {
                    path: pipeline_template.display().to_string(),
                    source,
                })?;
            let parameters = template
                .parameter_values(&self.options.parameters)
                .map_err(|source| DeployError::Parameters {
                    stack: "packaged-pipeline.yaml".into(),
                    source,
                })?;
            let stack_name = self.pipeline_stack_name(&parameters);
            let deployed = self
                .deployer
                .deploy(&stack_name, &pipeline_template, &self.options.parameters)
                .await?;
            summary += &format!(
                "; pipeline stack {stack_name} deployed ({})",
                deployed.functions.join(", ")
            );
        }
        Ok((summary, BTreeMap::from([(output_name, out)])))
    }

    fn config_string(
        &self,
        action: &Action,
        locals: &Locals,
        key: &str,
    ) -> Result<Option<String>, ActionError> {
        action
            .config(key)
            .map(|v| locals.resolver.resolve_text(v))
            .transpose()
            .map_err(|source| ActionError::Resolve {
                key: key.to_string(),
                source,
            })
    }

    fn required(&self, action: &Action, locals: &Locals, key: &str) -> Result<String, ActionError> {
        self.config_string(action, locals, key)?
            .ok_or_else(|| ActionError::MissingConfig {
                key: key.to_string(),
            })
    }

    async fn deploy(
        &self,
        stage: &str,
        action: &Action,
        locals: &Locals,
        state: &RunState,
    ) -> ActionResult {
        let mode = self.required(action, locals, "ActionMode")?;
        let stack_name = self.required(action, locals, "StackName")?;
        if action.config("TemplateConfiguration").is_some() {
            return Err(ActionError::TemplateConfiguration);
        }
        let running = self.deployer.running(&stack_name).await;
        let pipeline_stack = self.deployer.running(&locals.stack_name).await;
        let template = || -> Result<(PathBuf, BTreeMap<String, String>), ActionError> {
            let path = self.required(action, locals, "TemplatePath")?;
            let Some((artifact, file)) = path.split_once("::") else {
                return Err(ActionError::TemplatePath(path));
            };
            let dir = state
                .artifacts
                .get(artifact)
                .ok_or_else(|| ActionError::MissingArtifact(artifact.to_string()))?;
            let overrides = match self.config_string(action, locals, "ParameterOverrides")? {
                None => BTreeMap::new(),
                Some(text) => parameter_overrides(&text)?,
            };
            // Bounded permissions: the action's role (its policies as the
            // pipeline stack runs them) must be allowed the IAM calls for
            // the template's roles, checked before anything starts.
            crate::deploy_policy::check(&crate::deploy_policy::DeployAction {
                pipeline_stack: pipeline_stack.as_ref().map(|(path, _)| path.as_path()),
                repo: &self.options.repo,
                commit: &state.commit,
                pipeline_file: &self.options.pipeline_file,
                locals,
                role_arn: self.config_string(action, locals, "RoleArn")?.as_deref(),
                stack_name: &stack_name,
                template: &dir.join(file),
                overrides: &overrides,
                running: running.as_ref(),
            })?;
            Ok((dir.join(file), overrides))
        };
        match mode.as_str() {
            "CREATE_UPDATE" | "REPLACE_ON_FAILURE" => {
                let (path, overrides) = template()?;
                self.deploy_gradually(stage, &action.name, &stack_name, &path, &overrides, state)
                    .await
            }
            "CHANGE_SET_REPLACE" => {
                let (path, overrides) = template()?;
                let change_set = self.required(action, locals, "ChangeSetName")?;
                let capabilities = self
                    .config_string(action, locals, "Capabilities")?
                    .map(|c| c.split(',').map(|c| c.trim().to_string()).collect())
                    .unwrap_or_default();
                let record = self
                    .create_change_set(&stack_name, &change_set, &path, &overrides, capabilities)
                    .await?;
                Ok((describe_change_set(&record), BTreeMap::new()))
            }
            "CHANGE_SET_EXECUTE" => {
                let change_set = self.required(action, locals, "ChangeSetName")?;
                let record = self
                    .world
                    .take_change_set(&stack_name, &change_set)
                    .ok_or_else(|| ActionError::NoSuchChangeSet {
                        stack: stack_name.clone(),
                        change_set: change_set.clone(),
                    })?;
                // A change set with nothing to do leaves the stack as it is.
                // AWS documents no CodePipeline behaviour for executing one;
                // our choice: the action succeeds and says so.
                if record.is_empty() {
                    return Ok((
                        format!(
                            "change set {change_set} of stack {stack_name} has no changes: stack {stack_name} unchanged (commit {})",
                            short_commit(&state.commit)
                        ),
                        BTreeMap::new(),
                    ));
                }
                self.deploy_gradually(
                    stage,
                    &action.name,
                    &stack_name,
                    &record.template,
                    &record.overrides,
                    state,
                )
                .await
            }
            "DELETE_ONLY" => {
                // Deleting a stack that does not exist succeeds, as on AWS.
                let _ = self.deployer.delete(&stack_name).await;
                Ok((format!("stack {stack_name} deleted"), BTreeMap::new()))
            }
            other => Err(ActionError::ActionMode(other.to_string())),
        }
    }

    /// CHANGE_SET_REPLACE: computes what deploying `path` with `overrides`
    /// would change in `stack_name` as it runs now ([`changeset::diff`]) and
    /// keeps it as change set `change_set` (replacing one of that name), for
    /// DescribeChangeSet and CHANGE_SET_EXECUTE. Nothing in the stack changes.
    async fn create_change_set(
        &self,
        stack_name: &str,
        change_set: &str,
        path: &Path,
        overrides: &BTreeMap<String, String>,
        capabilities: Vec<String>,
    ) -> Result<ChangeSetRecord, ActionError> {
        let load = |path: &Path, overrides: &BTreeMap<String, String>| {
            let template = Template::from_path(path).map_err(|source| DeployError::Load {
                path: path.display().to_string(),
                source,
            })?;
            let parameters =
                template
                    .parameter_values(overrides)
                    .map_err(|source| DeployError::Parameters {
                        stack: stack_name.to_string(),
                        source,
                    })?;
            Ok::<_, DeployError>((template, parameters))
        };
        let (template, parameters) = load(path, overrides)?;
        let running = match self.deployer.running(stack_name).await {
            Some((old_path, old_overrides)) => {
                let (old_template, old_parameters) = load(&old_path, &old_overrides)?;
                Some((old_path, old_template, old_parameters))
            }
            None => None,
        };
        let old = running
            .as_ref()
            .map(|(old_path, template, parameters)| changeset::Side {
                template,
                parameters,
                dir: old_path.parent().unwrap_or(Path::new(".")),
            });
        let new = changeset::Side {
            template: &template,
            parameters: &parameters,
            dir: path.parent().unwrap_or(Path::new(".")),
        };
        let changes = changeset::diff(stack_name, old.as_ref(), &new)?;
        let existing = self.world.stack(stack_name);
        let stack_id = existing.as_ref().map_or_else(
            || {
                format!(
                    "arn:aws:cloudformation:{}:{}:stack/{stack_name}/{}",
                    ids::REGION,
                    ids::ACCOUNT_ID,
                    ids::uuid()
                )
            },
            |s| s.stack_id.clone(),
        );
        let empty = changes.is_empty();
        let record = ChangeSetRecord {
            stack_name: stack_name.to_string(),
            change_set_name: change_set.to_string(),
            change_set_id: format!(
                "arn:aws:cloudformation:{}:{}:changeSet/{change_set}/{}",
                ids::REGION,
                ids::ACCOUNT_ID,
                ids::uuid()
            ),
            stack_id,
            created: chrono::Utc::now(),
            // An update that changes nothing: CloudFormation marks the change
            // set FAILED, not executable ("DescribeChangeSet", AWS
            // CloudFormation API Reference: Status, ExecutionStatus).
            status: if empty { "FAILED" } else { "CREATE_COMPLETE" }.to_string(),
            status_reason: empty.then(|| changeset::NO_CHANGES.to_string()),
            execution_status: if empty { "UNAVAILABLE" } else { "AVAILABLE" }.to_string(),
            change_set_type: if existing.is_some() {
                "UPDATE"
            } else {
                "CREATE"
            }
            .to_string(),
            capabilities,
            parameters,
            changes,
            template: path.to_path_buf(),
            overrides: overrides.clone(),
        };
        self.world.put_change_set(record.clone());
        Ok(record)
    }

    /// Deploys a stack; an alias with a previous version shifts its traffic
    /// to the new one as its `DeploymentPreference` says, time-scaled, under
    /// synthetic load, watched by the preference's alarms. An alarm moves
    /// all traffic back, stops the new version and fails the action, and the
    /// stack goes back to what it ran (CloudFormation's rollback of the
    /// update). A template and parameters the stack already runs are no
    /// change ("No updates are to be performed"): nothing is redeployed.
    async fn deploy_gradually(
        &self,
        stage: &str,
        action: &str,
        stack_name: &str,
        path: &Path,
        overrides: &BTreeMap<String, String>,
        state: &RunState,
    ) -> ActionResult {
        let printer = &self.options.printer;
        if self.deployer.is_current(stack_name, path, overrides).await {
            return Ok((
                format!(
                    "stack {stack_name} already runs this template and these parameters (commit {}): no changes",
                    short_commit(&state.commit)
                ),
                BTreeMap::new(),
            ));
        }
        let update = self.deployer.prepare(stack_name, path, overrides).await?;
        for note in &update.notes {
            printer.note(note);
        }
        let scale = self.options.time_scale;
        let mut shifted = Vec::new();
        for (shift, _) in &update.shifts {
            let gradual = shift.deployment_type != DeploymentType::AllAtOnce;
            let load = if gradual {
                self.start_load(stage, action, stack_name, "the traffic shift")
                    .await
            } else {
                None
            };
            if gradual {
                let names: Vec<&str> = shift.alarms.iter().map(|(n, _)| n.as_str()).collect();
                printer.progress(
                    stage,
                    action,
                    &format!(
                        "{} shifts to version {} by {} (1 AWS minute = {:.2} s), watched by {}",
                        shift.alias.resource(),
                        shift.new.number,
                        shift.deployment_type,
                        scale.per_minute().as_secs_f64(),
                        if names.is_empty() {
                            "no alarm".to_string()
                        } else {
                            names.join(", ")
                        },
                    ),
                );
            }
            let outcome = shift::run_shift(shift, scale, |line| {
                if gradual {
                    printer.progress(stage, action, line);
                }
            })
            .await;
            let sent = load.map(SyntheticLoad::stop);
            match outcome {
                ShiftOutcome::Completed { old } => {
                    shifted.push(format!(
                        "{} on version {} ({}; version {old} stopped)",
                        shift.alias.resource(),
                        shift.new.number,
                        shift.deployment_type
                    ));
                    if let Some(sent) = sent {
                        printer.progress(stage, action, &format!(
                            "shift complete; {sent} synthetic requests sent during it; version {old} stops"
                        ));
                    }
                }
                ShiftOutcome::RolledBack {
                    alarms,
                    old,
                    new,
                    breach_to_rollback,
                    new_weight,
                } => {
                    let (new_errors, new_calls) = shift.observer.version_counts(&shift.alias, new);
                    let (old_errors, old_calls) = shift.observer.version_counts(&shift.alias, old);
                    printer.progress(stage, action, &format!(
                        "alarm {} in ALARM: all traffic back on version {old} {} ms after the breaching period closed; version {new} stops (it failed {new_errors} of {new_calls} invocations, version {old} {old_errors} of {old_calls}; {} synthetic requests sent)",
                        alarms.join(", "),
                        breach_to_rollback.as_millis(),
                        sent.unwrap_or(0)
                    ));
                    let resource = shift.alias.resource();
                    self.deployer.abandon(update).await;
                    return Err(ActionError::AlarmDuringShift {
                        alarms,
                        resource,
                        old,
                        new,
                        new_weight,
                    });
                }
            }
        }
        let deployed = self.deployer.commit(update).await;
        let mut summary = describe_deploy(&deployed);
        if !shifted.is_empty() {
            summary += &format!("; {}", shifted.join("; "));
        }
        Ok((summary, BTreeMap::new()))
    }

    /// Starts synthetic load against `stack_name`'s gateway, saying so.
    async fn start_load(
        &self,
        stage: &str,
        action: &str,
        stack_name: &str,
        during: &str,
    ) -> Option<SyntheticLoad> {
        let urls = self.deployer.api_urls().await;
        let gateway = self.deployer.gateway(stack_name).await?;
        let base = urls.get(stack_name)?;
        let paths = gateway.load_paths();
        let settings = self.options.load;
        match SyntheticLoad::start(base, paths.clone(), settings) {
            Ok(load) => {
                self.options.printer.progress(stage, action, &format!(
                    "synthetic load during {during} (a local stage has no users): GET {} on {base} (loopback only), at most {} requests/s and {} requests",
                    paths.join(", "),
                    settings.rate_per_second,
                    settings.max_requests
                ));
                Some(load)
            }
            Err(error) => {
                self.options
                    .printer
                    .note(&format!("{stack_name}: no synthetic load: {error}"));
                None
            }
        }
    }

    /// The bake of an `OnSuccess` condition: watches each CloudWatchAlarm
    /// rule's alarm for its `WaitTime` (time-scaled) under synthetic load;
    /// the first alarm in one of the rule's `AlarmStates` fails the
    /// condition.
    ///
    /// "CloudWatchAlarm" (AWS CodePipeline rule reference) says WaitTime is
    /// "the wait time in minutes to allow for a state change before running
    /// the rule result"; it does not say whether an alarm that fires during
    /// WaitTime fails the rule at once or only if still firing at its end.
    /// Our choice: at once (a bake), which is what the pipeline's comments
    /// intend. A rule whose alarm no running stack defines is not evaluated
    /// (said in a note).
    async fn bake(&self, stage: &str, rules: &[BakeRule]) -> Result<(), ActionError> {
        let printer = &self.options.printer;
        let scale = self.options.time_scale;
        let mut watched = Vec::new();
        let mut stacks = Vec::new();
        for rule in rules {
            match self.deployer.alarm(&rule.alarm).await {
                Some(alarm) => {
                    if !stacks.contains(&alarm.stack) {
                        stacks.push(alarm.stack.clone());
                    }
                    watched.push((
                        rule,
                        Watched::new(&rule.alarm, alarm.rule, scale),
                        alarm.observer,
                    ));
                }
                None => printer.note(&format!(
                    "{stage}: rule {}: no running stack defines alarm {}; not evaluated",
                    rule.rule, rule.alarm
                )),
            }
        }
        if watched.is_empty() {
            return Ok(());
        }
        let wait_minutes = rules.iter().map(|r| r.wait_minutes).max().unwrap_or(0);
        let wait = scale.minutes(wait_minutes);
        let names: Vec<&str> = watched.iter().map(|(r, _, _)| r.alarm.as_str()).collect();
        printer.progress(stage, "OnSuccess", &format!(
            "baking for {wait_minutes} AWS minutes ({:.1} s at 1 AWS minute = {:.2} s), watching {}",
            wait.as_secs_f64(),
            scale.per_minute().as_secs_f64(),
            names.join(", ")
        ));
        let mut loads = Vec::new();
        for stack in &stacks {
            if let Some(load) = self.start_load(stage, "OnSuccess", stack, "the bake").await {
                loads.push(load);
            }
        }
        let tick = shift::evaluation_tick(watched.iter().map(|(_, w, _)| w));
        let started = Instant::now();
        let mut states: Vec<AlarmState> = watched
            .iter()
            .map(|(_, w, _)| w.evaluator.state())
            .collect();
        loop {
            for (i, (rule, alarm, observer)) in watched.iter_mut().enumerate() {
                let (state, _) = observer.evaluate(&mut alarm.evaluator);
                if state != states[i] {
                    printer.progress(
                        stage,
                        "OnSuccess",
                        &format!("alarm {} is {state}", rule.alarm),
                    );
                    states[i] = state;
                }
                if rule.states.contains(&state) {
                    let sent: u64 = loads.into_iter().map(SyntheticLoad::stop).sum();
                    printer.progress(stage, "OnSuccess", &format!(
                        "rule {} fails: alarm {} is {state} ({sent} synthetic requests sent during the bake)",
                        rule.rule, rule.alarm
                    ));
                    return Err(ActionError::AlarmDuringBake {
                        rule: rule.rule.clone(),
                        alarm: rule.alarm.clone(),
                        state: state.to_string(),
                        wait_minutes: rule.wait_minutes,
                    });
                }
            }
            if started.elapsed() >= wait {
                break;
            }
            tokio::time::sleep(tick.min(wait.saturating_sub(started.elapsed()))).await;
        }
        let sent: u64 = loads.into_iter().map(SyntheticLoad::stop).sum();
        printer.progress(stage, "OnSuccess", &format!(
            "bake passed: no alarm fired in {wait_minutes} AWS minutes ({sent} synthetic requests)"
        ));
        Ok(())
    }

    /// `OnFailure`/`OnSuccess` `Result: ROLLBACK`: runs the stage's Deploy
    /// actions again with the artifacts of its last successful release.
    ///
    /// "Configuring stage rollback" and "Configure a stage for automatic
    /// rollback" (AWS CodePipeline User Guide) say a rollback goes to the
    /// stage's most recent successful execution, as a new execution that
    /// uses that execution's source revisions, variables and artifacts, and
    /// that a stage never successful cannot roll back. They do not say which
    /// of the stage's actions the rollback execution runs. Our choice: the
    /// Deploy actions only; a manual approval and a test gate are not run
    /// again (that release passed them already, and a rollback should not
    /// wait for a person).
    async fn roll_back_stage(
        &self,
        stage: &cfn_template::Stage,
        locals: &Locals,
        reason: String,
    ) -> Option<StageRollback> {
        let printer = &self.options.printer;
        let Some(release) = self.lock_releases().get(&stage.name).cloned() else {
            printer.note(&format!(
                "{}: nothing to roll back to: the stage has not succeeded before in this rehearsal (a stage rolls back to its last successful release; a first deploy that fails stays failed)",
                stage.name
            ));
            return None;
        };
        printer.progress(
            &stage.name,
            "Rollback",
            &format!(
                "rolling back to commit {} (its last successful release): {reason}",
                short_commit(&release.commit)
            ),
        );
        for group in stage.run_order_groups() {
            for action in group.iter().filter(|a| a.category.as_str() == "Deploy") {
                // Progress lines of the redeploy go under "Rollback": the
                // stage's Deploy action itself has ended.
                let mut redeploy = (*action).clone();
                redeploy.name = "Rollback".to_string();
                let result = match action.provider.as_str() {
                    "CloudFormation" => self.deploy(&stage.name, &redeploy, locals, &release).await,
                    _ => Err(ActionError::Unsupported {
                        category: action.category.as_str().to_string(),
                        owner: action.owner.as_str().to_string(),
                        provider: action.provider.clone(),
                    }),
                };
                match result {
                    Ok((summary, _)) => printer.progress(
                        &stage.name,
                        "Rollback",
                        &format!("{}: {summary}", action.name),
                    ),
                    Err(error) => {
                        printer.note(&format!(
                            "{}: the rollback to commit {} failed at {}: {error}",
                            stage.name,
                            short_commit(&release.commit),
                            action.name
                        ));
                        return None;
                    }
                }
            }
        }
        Some(StageRollback {
            to_commit: release.commit,
            reason,
        })
    }

    async fn invoke(
        &self,
        stage: &str,
        action: &Action,
        locals: &Locals,
    ) -> Result<(String, BTreeMap<String, String>), ActionError> {
        let name = self.required(action, locals, "FunctionName")?;
        let user_parameters = self.config_string(action, locals, "UserParameters")?;
        let function = self
            .world
            .function(&name)
            .ok_or_else(|| ActionError::UnknownFunction(name.clone()))?;
        let job_id = ids::uuid();
        let event = job_event(&job_id, &name, user_parameters.as_deref(), action);
        let mut result = self.world.start_job(&job_id);
        let mark = self.world.async_failure_mark();
        let started = Instant::now();
        // CodePipeline invokes the function asynchronously and then waits
        // for the job's result, whichever function reports it.
        let attempts = function.config().async_retries + 1;
        let mut invocation = tokio::spawn(async move {
            function
                .invoke_async(Bytes::from(event.to_string()), |_, _| {})
                .await
        });
        let deadline = tokio::time::sleep(self.options.job_timeout);
        tokio::pin!(deadline);
        let mut progress = progress_ticks(self.options.progress_interval);
        let mut invocation_done = false;
        let outcome = loop {
            tokio::select! {
                reported = &mut result => break reported.ok(),
                _ = progress.tick() => {
                    self.options.printer.progress(stage, &action.name, &format!(
                        "waiting for job {job_id}'s result from {name} for {} (deadline {})",
                        whole_seconds(started.elapsed()),
                        whole_seconds(self.options.job_timeout),
                    ));
                }
                finished = &mut invocation, if !invocation_done => {
                    invocation_done = true;
                    let error = match finished {
                        Ok(Ok(_)) => continue,
                        Ok(Err(error)) => error.to_string(),
                        Err(join) => format!("the invocation task failed: {join}"),
                    };
                    // A report sent just before the crash still counts.
                    if let Ok(Ok(reported)) = tokio::time::timeout(Duration::from_millis(200), &mut result).await {
                        break Some(reported);
                    }
                    self.world.expire_job(&job_id);
                    return Err(ActionError::FunctionFailed {
                        function: name,
                        job_id,
                        attempts,
                        error,
                    });
                }
                _ = &mut deadline => {
                    self.world.expire_job(&job_id);
                    return Err(ActionError::NoJobResult {
                        job_id,
                        function: name,
                        waited: self.options.job_timeout,
                        background: self.world.async_failures_since(mark),
                    });
                }
            }
        };
        let gate = started.elapsed();
        match outcome {
            Some(JobResult::Succeeded { summary, variables }) => Ok((
                format!(
                    "job reported success in {:.2} s{}",
                    gate.as_secs_f64(),
                    summary.map(|s| format!(": {s}")).unwrap_or_default()
                ),
                variables,
            )),
            Some(JobResult::Failed { kind, message }) => Err(ActionError::JobReportedFailure {
                failure_type: kind,
                message,
            }),
            None => Err(ActionError::JobAbandoned(job_id)),
        }
    }

    /// A manual approval: prints what it asks a person to approve (its
    /// `CustomData`, and `ExternalEntityLink` as the URL for review, both
    /// with `#{Namespace.Variable}` references resolved: Prod's carry the
    /// change set's review), then approves with `--approve`, or asks.
    async fn approve(&self, action: &Action, locals: &Locals) -> ActionResult {
        let message = self
            .config_string(action, locals, "CustomData")?
            .unwrap_or_default();
        let link = self
            .config_string(action, locals, "ExternalEntityLink")?
            .filter(|l| !l.is_empty());
        let mut request = message.trim().to_string();
        // The review's text ends with the same link: say it once.
        if let Some(link) = link.as_deref().filter(|l| !request.contains(l)) {
            request += &format!("\nURL for review: {link}");
        }
        let request = request.trim().to_string();
        if !request.is_empty() {
            self.options.printer.note(&format!(
                "{}: approval requested:\n{}",
                action.name,
                indent(&request)
            ));
        }
        let with_request = |verdict: &str| {
            if request.is_empty() {
                verdict.to_string()
            } else {
                format!("{verdict}: {request}")
            }
        };
        if self.options.approve {
            return Ok((with_request("approved (--approve)"), BTreeMap::new()));
        }
        if !self.options.prompt {
            return Err(ActionError::ApprovalNeeded);
        }
        let answer = tokio::task::spawn_blocking(|| {
            use std::io::Write;
            print!("Approve? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await;
        match answer {
            Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") => {
                Ok((with_request("approved at the prompt"), BTreeMap::new()))
            }
            _ => Err(ActionError::Rejected),
        }
    }
}

/// Ticks every `interval`, the first one an interval from now; a late tick
/// is not made up for.
fn progress_ticks(interval: Duration) -> tokio::time::Interval {
    let interval = interval.max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// "42 s" (or "2.5 s" under ten seconds), for progress lines.
fn whole_seconds(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{} s", elapsed.as_secs())
    }
}

/// The environment variables of each `AWS::CodeBuild::Project` of the
/// pipeline template, by the name its `Ref` resolves to. Only `PLAINTEXT`
/// ones (the default type): a `PARAMETER_STORE` or `SECRETS_MANAGER`
/// variable names a value the rehearsal does not have, and one whose value
/// does not resolve locally (an attribute of a resource the rehearsal does
/// not create) is left out, as build.sh only uses APP_DIR here
/// ("EnvironmentVariable", AWS CodeBuild API Reference: Type defaults to
/// PLAINTEXT).
fn build_environments(
    template: &Template,
    locals: &Locals,
) -> BTreeMap<String, BTreeMap<String, String>> {
    template
        .resources_of_type("AWS::CodeBuild::Project")
        .filter_map(|project| {
            let name = locals.resolver.reference(project.logical_id())?;
            let name = name.as_str()?.to_string();
            let variables = project
                .property("Environment")
                .and_then(|e| e.get("EnvironmentVariables"))
                .and_then(Value::as_array)
                .map(|vars| {
                    vars.iter()
                        .filter(|v| {
                            v.get("Type")
                                .and_then(Value::as_str)
                                .is_none_or(|t| t == "PLAINTEXT")
                        })
                        .filter_map(|v| {
                            let key = v.get("Name")?.as_str()?.to_string();
                            let value = locals.resolver.resolve_text(v.get("Value")?).ok()?;
                            Some((key, value))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some((name, variables))
        })
        .collect()
}

/// What the build log says the build is doing: its last `build.sh:` line
/// (the function being built) and cargo's latest `Compiling` line.
pub fn build_progress(log: &str) -> String {
    let mut text = String::new();
    if let Some(step) = log
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with("build.sh: "))
    {
        text += &format!("; {step}");
    }
    if let Some(crate_line) = log.lines().rev().find_map(|l| {
        let line = l.trim();
        let rest = line.strip_prefix("Compiling ")?;
        // "Compiling serde v1.0.219 (/path)": the crate and its version.
        Some(rest.split(" (").next().unwrap_or(rest).to_string())
    }) {
        text += &format!("; cargo: Compiling {crate_line}");
    }
    text
}

/// The action's `Namespace`, if it has one.
fn namespace(action: &Action) -> Option<&str> {
    action.other.get("Namespace").and_then(Value::as_str)
}

/// Each line indented by four spaces (a multi-line note).
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `#{Namespace.Variable}` references in `text` replaced by the output
/// variables of earlier actions. An action's configuration may refer to
/// the output variables of any action that ran before it in the execution
/// and has a `Namespace` ("Variables reference" and "Working with
/// variables", AWS CodePipeline User Guide). CodePipeline's own namespaces
/// (`codepipeline`, pipeline-level `variables`) are not emulated: such a
/// reference is unresolved, as is an unknown namespace or name.
pub fn resolve_variables(
    key: &str,
    text: &str,
    variables: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<String, ActionError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = &after[..end];
        let unresolved = |why: &str| ActionError::UnresolvedVariable {
            key: key.to_string(),
            reference: reference.to_string(),
            why: why.to_string(),
            known: if variables.is_empty() {
                "none".to_string()
            } else {
                variables.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        };
        let Some((namespace, name)) = reference.split_once('.') else {
            return Err(unresolved("a reference is Namespace.Variable"));
        };
        let Some(values) = variables.get(namespace) else {
            return Err(unresolved(&format!(
                "no earlier action of this run has Namespace {namespace}"
            )));
        };
        let Some(value) = values.get(name) else {
            return Err(unresolved(&format!(
                "the action with Namespace {namespace} did not output {name}"
            )));
        };
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `action` with the variable references in its string configuration
/// values resolved ([`resolve_variables`]).
fn with_variables(action: &Action, variables: &Variables) -> Result<Action, ActionError> {
    let mut resolved = action.clone();
    for (key, value) in resolved.configuration.iter_mut() {
        if let Value::String(text) = value
            && text.contains("#{")
        {
            *text = resolve_variables(key, text, variables)?;
        }
    }
    Ok(resolved)
}

/// The summary of a CHANGE_SET_REPLACE: the counts and the changes.
fn describe_change_set(record: &ChangeSetRecord) -> String {
    let name = format!(
        "change set {} of stack {}",
        record.change_set_name, record.stack_name
    );
    if record.is_empty() {
        return format!(
            "{name}: no changes (status FAILED: {})",
            record.status_reason.as_deref().unwrap_or_default()
        );
    }
    let lines: Vec<String> = record.changes.iter().map(|c| c.line()).collect();
    let kind = if record.change_set_type == "CREATE" {
        " (a new stack)"
    } else {
        ""
    };
    format!(
        "{name} created{kind}: {}: {}",
        changeset::counts(&record.changes),
        lines.join("; ")
    )
}

type ActionResult = Result<(String, BTreeMap<String, PathBuf>), ActionError>;

/// Takes the work directory's lock, waiting (and saying so once) while
/// another live rehearsal holds it.
async fn wait_for_lock(
    work_dir: &std::path::Path,
    printer: &Printer,
) -> Result<WorkDirLock, RehearsalError> {
    let mut told = false;
    loop {
        match WorkDirLock::try_acquire(work_dir) {
            Ok(lock) => return Ok(lock),
            Err(busy @ LockError::Busy { .. }) => {
                if !told {
                    printer.note(&format!("{busy}; waiting for it to finish"));
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// Keeps the `keep` newest run directories (their names sort by time),
/// and every directory in `protected` (the artifacts of a stage's last
/// successful release, which a rollback deploys again).
fn prune_runs(runs: &std::path::Path, keep: usize, protected: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep);
    for dir in &dirs[..excess] {
        if protected.iter().any(|p| p == dir) {
            continue;
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn short_commit(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The rule an [`ActionError::AlarmDuringBake`] names.
fn error_rule(error: &ActionError) -> Option<&str> {
    match error {
        ActionError::AlarmDuringBake { rule, .. } => Some(rule),
        _ => None,
    }
}

/// A CloudWatchAlarm rule of an `OnSuccess` condition.
#[derive(Debug, Clone, PartialEq)]
struct BakeRule {
    /// The rule's `Name`.
    rule: String,
    /// `Configuration.AlarmName`.
    alarm: String,
    /// `Configuration.AlarmStates` (default `ALARM`).
    states: Vec<AlarmState>,
    /// `Configuration.WaitTime`, minutes (default 0: one check).
    wait_minutes: u32,
    /// The condition's `Result` (`ROLLBACK` or `FAIL`).
    result: String,
}

/// Whether `pipeline` deploys its own stack `stack` (a self-update stage).
fn updates_itself(pipeline: &Pipeline, stack: &str) -> bool {
    pipeline
        .actions()
        .any(|(_, a)| a.provider == "CloudFormation" && a.config_str("StackName") == Some(stack))
}

/// A `BeforeEntry` condition's `VariableCheck` rule, as configured, with
/// its condition's `Result`.
#[derive(Debug, Clone, PartialEq)]
struct VariableRule {
    rule: String,
    /// A `#{Namespace.Variable}` reference (or a literal).
    variable: String,
    value: String,
    operator: String,
    /// `SKIP` or `FAIL`: what happens to the stage when the rule is not met.
    result: String,
}

/// What a `BeforeEntry` VariableCheck rule decided.
#[derive(Debug, Clone, PartialEq)]
enum EntryDecision {
    /// Every rule met: the stage is entered.
    Enter,
    /// A rule of a `Result: SKIP` condition not met: the stage is skipped
    /// (why).
    Skip(String),
}

impl VariableRule {
    /// Whether the rule is met, given the run's output variables. The
    /// VariableCheck rule compares the variable's value with `Value` by
    /// `Operator`: EQ, NE, CONTAINS or MATCHES ("VariableCheck", AWS
    /// CodePipeline rule reference); MATCHES (a regular expression) is not
    /// emulated.
    fn met(&self, stage: &str, variables: &Variables) -> Result<(bool, String), ActionError> {
        let error = |reason: String| ActionError::EntryRule {
            stage: stage.to_string(),
            rule: self.rule.clone(),
            reason,
        };
        let actual = resolve_variables("Variable", &self.variable, variables)
            .map_err(|e| error(e.to_string()))?;
        let met = match self.operator.as_str() {
            "EQ" => actual == self.value,
            "NE" => actual != self.value,
            "CONTAINS" => actual.contains(&self.value),
            other => {
                return Err(error(format!(
                    "Operator {other:?} is not emulated (the rehearsal evaluates EQ, NE and CONTAINS)"
                )));
            }
        };
        Ok((
            met,
            format!(
                "rule {} ({} = {actual:?} {} {:?}) {}",
                self.rule,
                self.variable,
                self.operator,
                self.value,
                if met { "met" } else { "not met" }
            ),
        ))
    }
}

/// The stage's `BeforeEntry` VariableCheck rules: enter, skip (a `SKIP`
/// condition whose rules are not all met), or fail (a `FAIL` condition's,
/// or a rule that cannot be evaluated). A condition's result applies when
/// its rules are not met ("Configure conditions for a stage", AWS
/// CodePipeline User Guide).
fn entry_decision(
    stage: &str,
    rules: &[VariableRule],
    variables: &Variables,
) -> Result<EntryDecision, ActionError> {
    for rule in rules {
        let (met, why) = rule.met(stage, variables)?;
        if met {
            continue;
        }
        if rule.result == "SKIP" {
            return Ok(EntryDecision::Skip(why));
        }
        return Err(ActionError::EntryRule {
            stage: stage.to_string(),
            rule: rule.rule.clone(),
            reason: format!("{why}; the condition's result is {}", rule.result),
        });
    }
    Ok(EntryDecision::Enter)
}

/// A `BeforeEntry` condition's `DeploymentWindow` rule, as configured.
#[derive(Debug, Clone, PartialEq)]
struct EntryWindow {
    rule: String,
    cron: String,
    time_zone: Option<String>,
}

impl EntryWindow {
    /// A line for the printer when the window is open at `now`; the stage's
    /// failure when it is closed or its configuration cannot be read.
    fn check(
        &self,
        stage: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, ActionError> {
        use crate::window::{DeploymentWindow, describe_instant, describe_wait};
        let window =
            DeploymentWindow::parse(&self.cron, self.time_zone.as_deref()).map_err(|source| {
                ActionError::DeploymentWindow {
                    rule: self.rule.clone(),
                    source,
                }
            })?;
        if window.is_open(now) {
            return Ok(format!(
                "{stage}: inside the deployment window (rule {}, {window}) at {}",
                self.rule,
                describe_instant(now)
            ));
        }
        let next = match window.next_opening(now) {
            Some(at) => format!("{} ({})", describe_instant(at), describe_wait(now, at)),
            None => "never: the expression matches no later time".to_string(),
        };
        Err(ActionError::OutsideDeploymentWindow {
            stage: stage.to_string(),
            rule: self.rule.clone(),
            window: window.to_string(),
            now: describe_instant(now),
            next,
        })
    }
}

/// A stage's conditions as the rehearsal emulates them: `BeforeEntry`
/// DeploymentWindow rules, `OnFailure`
/// `Result: ROLLBACK`, and `OnSuccess` conditions of CloudWatchAlarm rules
/// (the shapes of "Configure conditions for a stage", AWS CodePipeline User
/// Guide, and StageDeclaration in AWS::CodePipeline::Pipeline, CloudFormation
/// Template Reference). Everything else is listed in `not_emulated`.
#[derive(Debug, Clone, Default, PartialEq)]
struct StageConditions {
    /// `BeforeEntry` DeploymentWindow rules.
    entry_windows: Vec<EntryWindow>,
    /// `BeforeEntry` VariableCheck rules.
    entry_checks: Vec<VariableRule>,
    on_failure_rollback: bool,
    bake: Vec<BakeRule>,
    not_emulated: Vec<String>,
}

/// One rule of a stage's `BeforeEntry` or `OnSuccess` conditions, with its
/// condition's `Result` (default FAIL).
struct ConditionRule<'a> {
    result: String,
    name: String,
    provider: &'a str,
    config: &'a Value,
}

/// Every rule of every condition of a stage declaration's `key`
/// (`BeforeEntry`, `OnSuccess`), in order.
fn condition_rules<'a>(
    declaration: &'a Value,
    key: &str,
) -> impl Iterator<Item = ConditionRule<'a>> {
    declaration
        .get(key)
        .and_then(|s| s.get("Conditions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|condition| {
            let result = condition
                .get("Result")
                .and_then(Value::as_str)
                .unwrap_or("FAIL")
                .to_string();
            condition
                .get("Rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |rule| ConditionRule {
                    result: result.clone(),
                    name: rule["Name"].as_str().unwrap_or("(unnamed)").to_string(),
                    provider: rule["RuleTypeId"]["Provider"].as_str().unwrap_or_default(),
                    config: &rule["Configuration"],
                })
        })
}

impl StageConditions {
    fn read(pipeline: &Pipeline, stage: &str) -> Self {
        let mut conditions = StageConditions::default();
        let Some(declaration) = pipeline
            .property("Stages")
            .and_then(Value::as_array)
            .and_then(|stages| stages.iter().find(|s| s["Name"] == stage))
        else {
            return conditions;
        };
        for ConditionRule {
            result,
            name,
            provider,
            config,
        } in condition_rules(declaration, "BeforeEntry")
        {
            match provider {
                "DeploymentWindow" => {
                    if result != "FAIL" {
                        conditions.not_emulated.push(format!(
                            "BeforeEntry Result {result} is not emulated (a closed window stops the run as FAIL does)"
                        ));
                    }
                    conditions.entry_windows.push(EntryWindow {
                        rule: name,
                        cron: config["Cron"].as_str().unwrap_or_default().to_string(),
                        time_zone: config["TimeZone"].as_str().map(str::to_string),
                    });
                }
                "VariableCheck" => conditions.entry_checks.push(VariableRule {
                    rule: name,
                    variable: config["Variable"].as_str().unwrap_or_default().to_string(),
                    value: config["Value"].as_str().unwrap_or_default().to_string(),
                    operator: config["Operator"].as_str().unwrap_or_default().to_string(),
                    result: result.clone(),
                }),
                _ => conditions.not_emulated.push(format!(
                    "BeforeEntry rule {name} ({provider}) is not emulated (the stage is entered; only DeploymentWindow and VariableCheck rules are)"
                )),
            }
        }
        if let Some(on_failure) = declaration.get("OnFailure") {
            match on_failure.get("Result").and_then(Value::as_str) {
                Some("ROLLBACK") => conditions.on_failure_rollback = true,
                Some("FAIL") | None => {}
                Some(other) => conditions.not_emulated.push(format!(
                    "OnFailure Result {other} is not emulated (a failed stage just fails)"
                )),
            }
            if on_failure.get("Conditions").is_some() {
                conditions
                    .not_emulated
                    .push("OnFailure Conditions are not emulated".into());
            }
        }
        for ConditionRule {
            result,
            name,
            provider,
            config,
        } in condition_rules(declaration, "OnSuccess")
        {
            let alarm = config["AlarmName"].as_str();
            match (provider, alarm) {
                ("CloudWatchAlarm", Some(alarm)) => {
                    let text = |v: &Value| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    };
                    let wait_minutes = text(&config["WaitTime"])
                        .and_then(|t| t.trim().parse::<u32>().ok())
                        .unwrap_or(0);
                    let mut states: Vec<AlarmState> = text(&config["AlarmStates"])
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|s| match s.trim() {
                            "ALARM" => Some(AlarmState::Alarm),
                            "OK" => Some(AlarmState::Ok),
                            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
                            _ => None,
                        })
                        .collect();
                    if states.is_empty() {
                        states.push(AlarmState::Alarm);
                    }
                    conditions.bake.push(BakeRule {
                        rule: name,
                        alarm: alarm.to_string(),
                        states,
                        wait_minutes,
                        result: result.clone(),
                    });
                }
                _ => conditions.not_emulated.push(format!(
                    "OnSuccess rule {name} ({provider}) is not emulated (only CloudWatchAlarm rules are)"
                )),
            }
        }
        conditions
    }
}

fn describe_deploy(deployed: &stack::Deployed) -> String {
    let mut text = format!("stack {}", deployed.stack);
    if !deployed.functions.is_empty() {
        text += &format!(" ({})", deployed.functions.join(", "));
    }
    if let Some(url) = &deployed.api_base {
        text += &format!(" serving {url}");
    }
    text
}

/// `ParameterOverrides`: a JSON object of parameter names to values.
fn parameter_overrides(text: &str) -> Result<BTreeMap<String, String>, OverridesError> {
    let value: Value = serde_json::from_str(text).map_err(|source| OverridesError::NotJson {
        text: text.to_string(),
        source,
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| OverridesError::NotAnObject {
            text: text.to_string(),
        })?;
    object
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
            other => Err(OverridesError::Unsupported {
                key: k.clone(),
                value: other.to_string(),
            }),
        })
        .collect()
}

/// The CodePipeline job event Lambda receives, in the documented shape.
pub fn job_event(
    job_id: &str,
    function: &str,
    user_parameters: Option<&str>,
    action: &Action,
) -> Value {
    let artifact = |name: &String| {
        json!({
            "name": name,
            "revision": null,
            "location": {
                "type": "S3",
                "s3Location": {
                    "bucketName": "rehearsal-artifacts",
                    "objectKey": format!("rehearsal/{name}/{}", ids::stable_suffix(job_id, 7))
                }
            }
        })
    };
    let mut configuration = json!({"FunctionName": function});
    if let Some(parameters) = user_parameters {
        configuration["UserParameters"] = Value::String(parameters.to_string());
    }
    json!({
        "CodePipeline.job": {
            "id": job_id,
            "accountId": ids::ACCOUNT_ID,
            "data": {
                "actionConfiguration": {"configuration": configuration},
                "inputArtifacts": action.input_artifacts.iter().map(artifact).collect::<Vec<_>>(),
                "outputArtifacts": action.output_artifacts.iter().map(artifact).collect::<Vec<_>>(),
                "artifactCredentials": {
                    "accessKeyId": "AKIAREHEARSALARTIFACT",
                    "secretAccessKey": "rehearsal/artifact/secret/not-a-real-key",
                    "sessionToken": "rehearsal-artifact-session",
                    "expirationTime": chrono::Utc::now().timestamp_millis() + 3_600_000
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::codepipeline_job::CodePipelineJobEvent;

    #[test]
    fn build_progress_names_the_last_build_step_and_the_last_compiled_crate() {
        let log = "build.sh: building a b for x86_64 (profile rehearsal)\n\
                   build.sh: building function b (2 of 2)\n\
                   \x20  Compiling serde v1.0.219\n\
                   \x20  Compiling time-service v0.1.0 (/work/functions/time-service)\n";
        assert_eq!(
            build_progress(log),
            "; build.sh: building function b (2 of 2); cargo: Compiling time-service v0.1.0"
        );
    }

    /// The build runs with the CodeBuild project's plain-text variables as
    /// pipeline.yaml sets them: APP_DIR is the AppDirectory parameter.
    #[test]
    fn the_build_gets_the_projects_environment_with_app_dir_from_the_parameter() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipeline.yaml");
        let template = Template::from_path(&path).unwrap();
        let parameters = template
            .parameter_values(&BTreeMap::from([(
                "AppDirectory".to_string(),
                "examples/orders".to_string(),
            )]))
            .unwrap();
        let locals = Locals::new("TimeService-pipeline", &template, parameters);
        let environments = build_environments(&template, &locals);
        let project = locals.resolver.reference("BuildProject").unwrap();
        let environment = &environments[project.as_str().unwrap()];
        assert_eq!(environment["APP_DIR"], "examples/orders");
        assert_eq!(environment["SERVICE_NAME"], "TimeService");
    }

    #[test]
    fn only_plain_text_build_variables_that_resolve_reach_the_build() {
        let template = Template::from_yaml_str(
            "Resources:\n  Project:\n    Type: AWS::CodeBuild::Project\n    Properties:\n      Environment:\n        EnvironmentVariables:\n          - {Name: PLAIN, Value: a}\n          - {Name: TYPED, Value: b, Type: PLAINTEXT}\n          - {Name: SECRET, Value: 'db:password', Type: SECRETS_MANAGER}\n          - {Name: STORED, Value: /p, Type: PARAMETER_STORE}\n          - {Name: UNKNOWN, Value: {'Fn::GetAtt': [Nothing, Arn]}}\n",
        )
        .unwrap();
        let locals = Locals::new("s", &template, BTreeMap::new());
        let environments = build_environments(&template, &locals);
        let environment = environments.values().next().unwrap();
        assert_eq!(
            environment.keys().collect::<Vec<_>>(),
            ["PLAIN", "TYPED"],
            "{environment:?}"
        );
    }

    fn repository_pipeline() -> Pipeline {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipeline.yaml");
        let template = Template::from_path(&path).unwrap();
        let parameters = template
            .parameter_values(&BTreeMap::from([(
                "ProdBakeMinutes".to_string(),
                "7".to_string(),
            )]))
            .unwrap();
        let locals = Locals::new("TimeService-pipeline", &template, parameters);
        template.resolved(&locals.resolver).only_pipeline().unwrap()
    }

    #[test]
    fn prods_conditions_are_read_from_pipeline_yaml_rollback_and_a_bake_on_three_alarms() {
        let conditions = StageConditions::read(&repository_pipeline(), "Prod");
        assert!(conditions.on_failure_rollback);
        assert!(conditions.not_emulated.is_empty(), "{conditions:?}");
        let alarms: Vec<(&str, u32, &str)> = conditions
            .bake
            .iter()
            .map(|r| (r.alarm.as_str(), r.wait_minutes, r.result.as_str()))
            .collect();
        assert_eq!(
            alarms,
            [
                ("TimeService-prod-errors", 7, "ROLLBACK"),
                ("TimeService-prod-5xx", 7, "ROLLBACK"),
                ("TimeService-prod-latency-p99", 7, "ROLLBACK"),
            ]
        );
        assert!(
            conditions
                .bake
                .iter()
                .all(|r| r.states == [AlarmState::Alarm])
        );
    }

    #[test]
    fn beta_rolls_back_on_failure_and_has_no_bake() {
        let conditions = StageConditions::read(&repository_pipeline(), "Beta");
        assert!(conditions.on_failure_rollback);
        assert!(conditions.bake.is_empty());
        let build = StageConditions::read(&repository_pipeline(), "Build");
        assert_eq!(build, StageConditions::default());
    }

    #[test]
    fn conditions_the_rehearsal_does_not_emulate_are_named() {
        let template = Template::from_yaml_str(
            "Resources:\n  P:\n    Type: AWS::CodePipeline::Pipeline\n    Properties:\n      Stages:\n        - Name: S\n          BeforeEntry: {Conditions: [{Result: FAIL, Rules: [{Name: E, RuleTypeId: {Category: Rule, Owner: AWS, Provider: LambdaInvoke, Version: '1'}}]}]}\n          OnFailure: {Result: RETRY}\n          OnSuccess:\n            Conditions:\n              - Result: FAIL\n                Rules:\n                  - Name: L\n                    RuleTypeId: {Category: Rule, Owner: AWS, Provider: LambdaInvoke, Version: '1'}\n                  - Name: A\n                    RuleTypeId: {Category: Rule, Owner: AWS, Provider: CloudWatchAlarm, Version: '1'}\n                    Configuration: {AlarmName: a, AlarmStates: 'ALARM,INSUFFICIENT_DATA'}\n          Actions: []\n",
        )
        .unwrap();
        let conditions = StageConditions::read(&template.only_pipeline().unwrap(), "S");
        assert!(!conditions.on_failure_rollback);
        assert_eq!(conditions.not_emulated.len(), 3, "{conditions:?}");
        assert!(conditions.not_emulated[2].contains("LambdaInvoke"));
        assert_eq!(conditions.bake.len(), 1);
        assert_eq!(
            conditions.bake[0].states,
            [AlarmState::Alarm, AlarmState::InsufficientData]
        );
        assert_eq!(conditions.bake[0].wait_minutes, 0);
        assert_eq!(conditions.bake[0].result, "FAIL");
    }

    fn window_stage(cron: &str) -> StageConditions {
        let template = Template::from_yaml_str(&format!(
            "Resources:\n  P:\n    Type: AWS::CodePipeline::Pipeline\n    Properties:\n      Stages:\n        - Name: Prod\n          BeforeEntry:\n            Conditions:\n              - Result: FAIL\n                Rules:\n                  - Name: Window\n                    RuleTypeId: {{Category: Rule, Owner: AWS, Provider: DeploymentWindow, Version: '1'}}\n                    Configuration: {{Cron: '{cron}', TimeZone: Europe/Berlin}}\n          Actions: []\n"
        ))
        .unwrap();
        StageConditions::read(&template.only_pipeline().unwrap(), "Prod")
    }

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn a_before_entry_deployment_window_rule_is_read_with_its_cron_and_time_zone() {
        let conditions = window_stage("0 * 9-16 ? * MON-FRI *");
        assert_eq!(
            conditions.entry_windows,
            [EntryWindow {
                rule: "Window".into(),
                cron: "0 * 9-16 ? * MON-FRI *".into(),
                time_zone: Some("Europe/Berlin".into()),
            }]
        );
        assert!(conditions.not_emulated.is_empty(), "{conditions:?}");
    }

    fn permission_changes(value: &str) -> Variables {
        BTreeMap::from([(
            "PipelineReview".to_string(),
            BTreeMap::from([("PermissionChanges".to_string(), value.to_string())]),
        )])
    }

    #[test]
    fn the_repository_pipeline_skips_the_pipeline_update_approval_unless_permissions_change() {
        let conditions = StageConditions::read(&repository_pipeline(), "ApprovePipelineUpdate");
        assert_eq!(
            conditions.entry_checks,
            [VariableRule {
                rule: "PermissionChanges".into(),
                variable: "#{PipelineReview.PermissionChanges}".into(),
                value: "true".into(),
                operator: "EQ".into(),
                result: "SKIP".into(),
            }]
        );
        assert!(conditions.not_emulated.is_empty(), "{conditions:?}");
    }

    #[test]
    fn an_unmet_variable_check_of_a_skip_condition_skips_the_stage() {
        let rules =
            StageConditions::read(&repository_pipeline(), "ApprovePipelineUpdate").entry_checks;
        let decision = entry_decision("S", &rules, &permission_changes("false")).unwrap();
        assert!(
            matches!(&decision, EntryDecision::Skip(why) if why.contains("not met")),
            "{decision:?}"
        );
    }

    #[test]
    fn a_met_variable_check_enters_the_stage() {
        let rules =
            StageConditions::read(&repository_pipeline(), "ApprovePipelineUpdate").entry_checks;
        assert_eq!(
            entry_decision("S", &rules, &permission_changes("true")).unwrap(),
            EntryDecision::Enter
        );
    }

    #[test]
    fn a_variable_check_on_a_variable_no_action_set_fails_entry_naming_the_rule() {
        let rules =
            StageConditions::read(&repository_pipeline(), "ApprovePipelineUpdate").entry_checks;
        let error = entry_decision("S", &rules, &Variables::new()).unwrap_err();
        assert!(matches!(error, ActionError::EntryRule { .. }), "{error:?}");
        assert!(
            error.to_string().contains("rule PermissionChanges"),
            "{error}"
        );
    }

    #[test]
    fn a_variable_check_of_a_fail_condition_fails_entry_when_not_met() {
        let rule = VariableRule {
            rule: "R".into(),
            variable: "#{PipelineReview.PermissionChanges}".into(),
            value: "true".into(),
            operator: "NE".into(),
            result: "FAIL".into(),
        };
        let error = entry_decision("S", &[rule], &permission_changes("true")).unwrap_err();
        assert!(error.to_string().contains("result is FAIL"), "{error}");
    }

    #[test]
    fn the_repository_pipeline_has_no_entry_window_by_default() {
        let conditions = StageConditions::read(&repository_pipeline(), "Prod");
        assert!(conditions.entry_windows.is_empty());
    }

    #[test]
    fn a_closed_window_fails_entry_saying_when_it_opens_and_how_to_rehearse_anyway() {
        let window = &window_stage("0 * 9-16 ? * MON-FRI *").entry_windows[0];
        // Saturday 2026-12-05, 12:00 UTC: the window opens on Monday at
        // 09:00 in Berlin, 08:00 UTC.
        let error = window
            .check("Prod", at("2026-12-05T12:00:00Z"))
            .unwrap_err();
        assert!(
            matches!(error, ActionError::OutsideDeploymentWindow { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        for part in [
            "rule Window",
            "Europe/Berlin",
            "closed at 2026-12-05T12:00:00Z",
            "opens next at 2026-12-07T08:00:00Z (in 1 d 20 h)",
            "waits at Prod's entry",
            "--now",
        ] {
            assert!(message.contains(part), "{part:?} missing: {message}");
        }
    }

    #[test]
    fn an_open_window_lets_the_stage_in_and_says_so() {
        let window = &window_stage("0 * 9-16 ? * MON-FRI *").entry_windows[0];
        let note = window.check("Prod", at("2026-12-07T08:00:00Z")).unwrap();
        assert!(note.contains("inside the deployment window"), "{note}");
    }

    #[test]
    fn a_window_that_cannot_be_read_fails_entry_naming_the_rule() {
        let window = &window_stage("0 * 9-25 ? * MON-FRI *").entry_windows[0];
        let error = window
            .check("Prod", at("2026-12-07T08:00:00Z"))
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("rule Window") && message.contains("hours field"),
            "{message}"
        );
    }

    #[test]
    fn pruning_keeps_the_newest_runs_and_every_last_successful_release() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "20260101T000000-a",
            "20260102T000000-b",
            "20260103T000000-c",
            "20260104T000000-d",
        ] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
        }
        let protected = [dir.path().join("20260101T000000-a")];
        prune_runs(dir.path(), 2, &protected);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "20260101T000000-a",
                "20260103T000000-c",
                "20260104T000000-d"
            ]
        );
    }

    fn review_variables() -> Variables {
        BTreeMap::from([(
            "ProdReview".to_string(),
            BTreeMap::from([
                ("ReviewText".to_string(), "+ added Fn2".to_string()),
                ("Added".to_string(), "2".to_string()),
                ("ChangeSetUrl".to_string(), "https://console/cs".to_string()),
            ]),
        )])
    }

    #[test]
    fn variable_references_resolve_to_earlier_actions_output_variables() {
        let text = resolve_variables(
            "CustomData",
            "Review: #{ProdReview.ReviewText} (#{ProdReview.Added} added)",
            &review_variables(),
        )
        .unwrap();
        assert_eq!(text, "Review: + added Fn2 (2 added)");
        assert_eq!(
            resolve_variables(
                "CustomData",
                "no references, ${Sub} kept",
                &review_variables()
            )
            .unwrap(),
            "no references, ${Sub} kept"
        );
    }

    #[test]
    fn an_unknown_namespace_or_variable_fails_the_action_naming_the_reference() {
        let err =
            resolve_variables("CustomData", "#{Gate.ChecksRun}", &review_variables()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("#{Gate.ChecksRun}"), "{text}");
        assert!(
            text.contains("no earlier action of this run has Namespace Gate"),
            "{text}"
        );
        assert!(text.contains("ProdReview"), "{text}");
        let err =
            resolve_variables("CustomData", "#{ProdReview.Nope}", &review_variables()).unwrap_err();
        assert!(err.to_string().contains("did not output Nope"), "{err}");
        assert!(resolve_variables("CustomData", "#{NoDot}", &review_variables()).is_err());
    }

    #[test]
    fn the_repository_pipeline_resolves_prods_approval_from_the_review() {
        let pipeline = repository_pipeline();
        let prod = pipeline.stages().iter().find(|s| s.name == "Prod").unwrap();
        let approve = prod.actions.iter().find(|a| a.name == "Approve").unwrap();
        let review = prod
            .actions
            .iter()
            .find(|a| a.name == "ReviewChanges")
            .unwrap();
        assert_eq!(namespace(review), Some("ProdReview"));
        let resolved = with_variables(approve, &review_variables()).unwrap();
        assert_eq!(resolved.config_str("CustomData"), Some("+ added Fn2"));
        assert_eq!(
            resolved.config_str("ExternalEntityLink"),
            Some("https://console/cs")
        );
        // Without the review's variables the approval cannot resolve them.
        assert!(with_variables(approve, &BTreeMap::new()).is_err());
    }

    #[test]
    fn build_progress_of_an_empty_log_says_nothing_more() {
        assert_eq!(build_progress(""), "");
    }

    #[test]
    fn parameter_overrides_are_a_json_object_of_strings() {
        let map = parameter_overrides(r#"{"ServiceName": "S", "Stage": "beta", "N": 3}"#).unwrap();
        assert_eq!(map["Stage"], "beta");
        assert_eq!(map["N"], "3");
    }

    #[test]
    fn parameter_overrides_that_are_not_json_are_refused_saying_what_to_write() {
        let err = parameter_overrides("Stage=beta").unwrap_err();
        assert!(matches!(err, OverridesError::NotJson { .. }), "{err:?}");
        assert!(err.to_string().contains("write a JSON object"), "{err}");
    }

    #[test]
    fn a_parameter_override_function_is_refused_naming_the_key() {
        let err =
            parameter_overrides(r#"{"Stage": {"Fn::GetParam": ["a", "b", "c"]}}"#).unwrap_err();
        assert!(
            matches!(&err, OverridesError::Unsupported { key, .. } if key == "Stage"),
            "{err:?}"
        );
    }

    #[test]
    fn the_job_event_has_the_documented_shape() {
        let template = Template::from_yaml_str(
            "Resources:\n  P:\n    Type: AWS::CodePipeline::Pipeline\n    Properties:\n      Stages:\n        - Name: S\n          Actions:\n            - Name: T\n              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: '1'}\n              InputArtifacts: [{Name: BuildOutput}]\n",
        )
        .unwrap();
        let pipeline = template.only_pipeline().unwrap();
        let action = &pipeline.stages()[0].actions[0];
        let event = job_event("job-1", "fn", Some("{\"a\":1}"), action);
        // Parsed by the type Lambda functions deserialize the event into.
        let parsed: CodePipelineJobEvent = serde_json::from_value(event).unwrap();
        let job = parsed.code_pipeline_job;
        assert_eq!(job.id.as_deref(), Some("job-1"));
        assert_eq!(job.account_id.as_deref(), Some(ids::ACCOUNT_ID));
        let configuration = job.data.action_configuration.configuration;
        assert_eq!(configuration.function_name.as_deref(), Some("fn"));
        assert_eq!(configuration.user_parameters.as_deref(), Some("{\"a\":1}"));
        assert_eq!(job.data.input_artifacts.len(), 1);
        assert_eq!(
            job.data.input_artifacts[0].name.as_deref(),
            Some("BuildOutput")
        );
        let location = &job.data.input_artifacts[0].location;
        assert_eq!(location.location_type.as_deref(), Some("S3"));
        assert_eq!(
            location.s3_location.bucket_name.as_deref(),
            Some("rehearsal-artifacts")
        );
        assert!(job.data.out_put_artifacts.is_empty());
        assert!(job.data.artifact_credentials.access_key_id.is_some());
        assert!(job.data.artifact_credentials.secret_access_key.is_some());
    }
}
