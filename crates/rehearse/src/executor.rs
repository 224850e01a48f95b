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
use tokio::sync::Mutex;

use crate::endpoint::Endpoint;
use crate::ids;
use crate::lock::{LockError, WorkDirLock};
use crate::report::{
    ActionReport, FailedAction, PlannedAction, PlannedStage, Printer, Rehearsed, RunReport,
    StageReport, Status, files, millis,
};
use crate::source::{self, Snapshot, SourceError};
use crate::stack::{self, DeployError, Deployer, Locals, ResourceValues};
use crate::world::{AsyncFailure, JobResult, World};

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
    /// Progress lines on stdout.
    pub printer: Printer,
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
            printer: Printer::default(),
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

struct RunState {
    commit: String,
    artifacts: BTreeMap<String, PathBuf>,
    run_dir: PathBuf,
}

/// A rehearsal: the local AWS account, endpoint and stacks, which stay up
/// between pipeline runs (`--watch`) so redeploys replace processes.
pub struct Rehearsal {
    options: Options,
    world: Arc<World>,
    endpoint: Endpoint,
    deployer: Arc<Deployer>,
    change_sets: Mutex<BTreeMap<String, ChangeSet>>,
    /// Working tree snapshots made by [`Rehearsal::source_commit`], by commit.
    snapshots: std::sync::Mutex<BTreeMap<String, Snapshot>>,
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
        let deployer = Arc::new(Deployer::new(
            world.clone(),
            endpoint.url(),
            options.work_dir.join("logs"),
        ));
        tracing::info!(endpoint = %endpoint.url(), "local AWS endpoint started");
        Ok(Self {
            options,
            world,
            endpoint,
            deployer,
            change_sets: Mutex::new(BTreeMap::new()),
            snapshots: std::sync::Mutex::new(BTreeMap::new()),
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
        let file = &self.options.pipeline_file;
        let text = source::show_file(&self.options.repo, commit, file)?;
        let wrap = |source| RehearsalError::Pipeline {
            file: file.clone(),
            commit: commit.to_string(),
            source,
        };
        let template = Template::from_yaml_str(&text).map_err(wrap)?;
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
        let pipeline = template
            .resolved(&locals.resolver)
            .only_pipeline()
            .map_err(wrap)?;
        Ok((pipeline, locals))
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
        let (pipeline, locals) = self.read_pipeline(commit)?;
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
        prune_runs(&self.options.work_dir.join("runs"), 10);
        let mut state = RunState {
            commit: commit.to_string(),
            artifacts: BTreeMap::new(),
            run_dir,
        };

        let mut stages = Vec::new();
        let mut failed_action = None;
        let mut stopped_before = None;
        for stage in pipeline.stages() {
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
                    actions.push(report);
                }
                if group_failed {
                    break;
                }
            }
            if let Some(conditions) = stage_conditions(&pipeline, &stage.name) {
                printer.note(&format!(
                    "{}: {conditions} not emulated yet (automatic rollback and alarm bakes happen on AWS only)",
                    stage.name
                ));
            }
            let status = if actions.iter().any(|a| a.status == Status::Failed) {
                Status::Failed
            } else {
                Status::Succeeded
            };
            let report = StageReport {
                name: stage.name.clone(),
                status,
                duration_ms: millis(stage_started.elapsed()),
                actions,
                rolled_back: None,
            };
            printer.stage_end(&report);
            stages.push(report);
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
        let result = match (action.category.as_str(), action.provider.as_str()) {
            ("Source", "CodeCommit" | "CodeStarSourceConnection") => self.source(action, state),
            ("Build", "CodeBuild") => self.build(stage, action, state).await,
            ("Deploy", "CloudFormation") => self.deploy(action, locals, state).await,
            ("Invoke", "Lambda") => self.invoke(stage, action, locals).await,
            ("Approval", "Manual") => self.approve(action, locals).await,
            _ => Err(ActionError::Unsupported {
                category: action.category.as_str().to_string(),
                owner: action.owner.as_str().to_string(),
                provider: action.provider.clone(),
            }),
        };
        let (status, summary, failure, outputs) = match result {
            Ok((summary, outputs)) => (Status::Succeeded, Some(summary), None, outputs),
            Err(e) => (Status::Failed, None, Some(Arc::new(e)), BTreeMap::new()),
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

    async fn build(&self, stage: &str, action: &Action, state: &RunState) -> ActionResult {
        let source = self.input(action, state, 0)?;
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
        if pipeline_template.is_file() {
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

    async fn deploy(&self, action: &Action, locals: &Locals, state: &RunState) -> ActionResult {
        let mode = self.required(action, locals, "ActionMode")?;
        let stack_name = self.required(action, locals, "StackName")?;
        if action.config("TemplateConfiguration").is_some() {
            return Err(ActionError::TemplateConfiguration);
        }
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
            Ok((dir.join(file), overrides))
        };
        match mode.as_str() {
            "CREATE_UPDATE" | "REPLACE_ON_FAILURE" => {
                let (path, overrides) = template()?;
                let deployed = self.deployer.deploy(&stack_name, &path, &overrides).await?;
                self.note_gradual_deployment(&stack_name, &path);
                Ok((describe_deploy(&deployed), BTreeMap::new()))
            }
            "CHANGE_SET_REPLACE" => {
                let (path, overrides) = template()?;
                let change_set = self.required(action, locals, "ChangeSetName")?;
                self.change_sets
                    .lock()
                    .await
                    .insert(format!("{stack_name}/{change_set}"), (path, overrides));
                Ok((
                    format!("change set {change_set} of stack {stack_name} created"),
                    BTreeMap::new(),
                ))
            }
            "CHANGE_SET_EXECUTE" => {
                let change_set = self.required(action, locals, "ChangeSetName")?;
                let (path, overrides) = self
                    .change_sets
                    .lock()
                    .await
                    .remove(&format!("{stack_name}/{change_set}"))
                    .ok_or_else(|| ActionError::NoSuchChangeSet {
                        stack: stack_name.clone(),
                        change_set: change_set.clone(),
                    })?;
                let deployed = self.deployer.deploy(&stack_name, &path, &overrides).await?;
                self.note_gradual_deployment(&stack_name, &path);
                Ok((describe_deploy(&deployed), BTreeMap::new()))
            }
            "DELETE_ONLY" => {
                // Deleting a stack that does not exist succeeds, as on AWS.
                let _ = self.deployer.delete(&stack_name).await;
                Ok((format!("stack {stack_name} deleted"), BTreeMap::new()))
            }
            other => Err(ActionError::ActionMode(other.to_string())),
        }
    }

    /// Says so when a deployed template asks for CodeDeploy's gradual
    /// traffic shifting, which the local stack does not do.
    fn note_gradual_deployment(&self, stack_name: &str, path: &std::path::Path) {
        let gradual = Template::from_path(path).is_ok_and(|t| {
            t.resources()
                .any(|r| r.property("DeploymentPreference").is_some())
        });
        if gradual {
            self.options.printer.note(&format!(
                "{stack_name}: DeploymentPreference not emulated yet (the new version takes all traffic at once)"
            ));
        }
    }

    async fn invoke(&self, stage: &str, action: &Action, locals: &Locals) -> ActionResult {
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
            Some(JobResult::Succeeded { summary }) => Ok((
                format!(
                    "job reported success in {:.2} s{}",
                    gate.as_secs_f64(),
                    summary.map(|s| format!(": {s}")).unwrap_or_default()
                ),
                BTreeMap::new(),
            )),
            Some(JobResult::Failed { kind, message }) => Err(ActionError::JobReportedFailure {
                failure_type: kind,
                message,
            }),
            None => Err(ActionError::JobAbandoned(job_id)),
        }
    }

    async fn approve(&self, action: &Action, locals: &Locals) -> ActionResult {
        let message = self
            .config_string(action, locals, "CustomData")?
            .unwrap_or_default();
        if self.options.approve {
            return Ok(("approved (--approve)".to_string(), BTreeMap::new()));
        }
        if !self.options.prompt {
            return Err(ActionError::ApprovalNeeded);
        }
        self.options
            .printer
            .note(&format!("{}: {message}", action.name));
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
                Ok(("approved at the prompt".to_string(), BTreeMap::new()))
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

/// A change set created by `CHANGE_SET_REPLACE`: template and parameters.
type ChangeSet = (PathBuf, BTreeMap<String, String>);

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

/// Keeps the `keep` newest run directories (their names sort by time).
fn prune_runs(runs: &std::path::Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep);
    for dir in &dirs[..excess] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The conditions a stage declares (`BeforeEntry`, `OnFailure`,
/// `OnSuccess`), which the rehearsal does not emulate yet.
fn stage_conditions(pipeline: &Pipeline, stage: &str) -> Option<String> {
    let declaration = pipeline
        .property("Stages")?
        .as_array()?
        .iter()
        .find(|s| s["Name"] == stage)?;
    let declared: Vec<&str> = ["BeforeEntry", "OnFailure", "OnSuccess"]
        .into_iter()
        .filter(|k| declaration.get(*k).is_some())
        .collect();
    (!declared.is_empty()).then(|| declared.join(" and "))
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
