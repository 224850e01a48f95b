//! The pipeline executor: reads the `AWS::CodePipeline::Pipeline` of
//! pipeline.yaml and runs its stages in order, the actions of a stage by
//! `RunOrder` (equal run orders in parallel), each with a local equivalent
//! of its AWS action type.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cfn_template::{Action, Pipeline, Resolver, Template};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::cfn::{self, Context, ResourceValues};
use crate::endpoint::Endpoint;
use crate::ids;
use crate::report::{ActionReport, FailedAction, Printer, RunReport, StageReport, Status, millis};
use crate::source::{self, SourceError};
use crate::stack::{self, DeployError, Deployer};
use crate::world::{JobResult, World};

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
    #[error("{0}")]
    Config(String),
    #[error("cannot start the local AWS endpoint on 127.0.0.1: {0}")]
    Endpoint(std::io::Error),
    #[error("cannot create {path}: {source}")]
    WorkDir {
        path: String,
        source: std::io::Error,
    },
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
    #[error("configuration {key}: {message}")]
    Config { key: String, message: String },
    #[error("input artifact {0} was not produced by an earlier action")]
    MissingArtifact(String),
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
    #[error("{0}")]
    JobFailed(String),
    #[error(
        "manual approval needed: rerun with --approve, or run on a terminal to answer the prompt"
    )]
    ApprovalNeeded,
    #[error("rejected at the prompt")]
    Rejected,
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
    _lock: WorkDirLock,
}

impl Rehearsal {
    pub async fn start(options: Options) -> Result<Self, RehearsalError> {
        std::fs::create_dir_all(&options.work_dir).map_err(|source| RehearsalError::WorkDir {
            path: options.work_dir.display().to_string(),
            source,
        })?;
        let lock = WorkDirLock::acquire(&options.work_dir, &options.printer).await?;
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

    /// The commit a run takes: `--rev`, or the tip of the branch the
    /// Source action names.
    pub fn source_commit(&self) -> Result<String, RehearsalError> {
        let repo = &self.options.repo;
        if let Some(rev) = &self.options.rev {
            return Ok(source::resolve_commit(repo, rev)?);
        }
        let head = source::resolve_commit(repo, "HEAD")?;
        let (pipeline, ctx) = self.read_pipeline(&head)?;
        let branch = pipeline
            .stages()
            .iter()
            .flat_map(|s| &s.actions)
            .find(|a| a.category.as_str() == "Source")
            .and_then(|a| a.config("BranchName"))
            .map(|v| ctx.resolve_string(v, "Source action BranchName"))
            .transpose()
            .map_err(|e| RehearsalError::Config(e.to_string()))?
            .ok_or_else(|| {
                RehearsalError::Config(format!(
                    "{}: no Source action with a BranchName; pass --rev",
                    self.options.pipeline_file
                ))
            })?;
        source::resolve_commit(repo, &format!("refs/heads/{branch}")).map_err(|_| {
            RehearsalError::Config(format!(
                "branch {branch} (the Source action's BranchName) does not exist in {}; pass --rev, or --parameter BranchName=<branch>",
                repo.display()
            ))
        })
    }

    /// pipeline.yaml at `commit`: the pipeline (conditions and parameters
    /// resolved) and a context that resolves its configuration values.
    fn read_pipeline(&self, commit: &str) -> Result<(Pipeline, Context), RehearsalError> {
        let file = &self.options.pipeline_file;
        let text = source::show_file(&self.options.repo, commit, file)?;
        let wrap = |source| RehearsalError::Pipeline {
            file: file.clone(),
            commit: commit.to_string(),
            source,
        };
        let template = Template::from_yaml_str(&text).map_err(wrap)?;
        let resolver = Resolver::for_template(&template, self.options.parameters.clone())
            .with_ref("AWS::Region", ids::REGION)
            .with_ref("AWS::AccountId", ids::ACCOUNT_ID)
            .with_ref("AWS::Partition", "aws")
            .with_ref("AWS::URLSuffix", "amazonaws.com")
            .with_ref("AWS::NoValue", Value::Null);
        let pipeline = template.resolved(&resolver).only_pipeline().map_err(wrap)?;

        let json = template.into_json();
        let parameters = cfn::parameter_values(&json, &self.options.parameters, file)
            .map_err(|e| RehearsalError::Config(e.to_string()))?;
        let stack_name = self.pipeline_stack_name(&parameters);
        let mut ctx = Context::new(&stack_name, &json, parameters);
        for (logical_id, body) in json["Resources"].as_object().into_iter().flatten() {
            let kind = body["Type"].as_str().unwrap_or_default();
            let mut values = ResourceValues {
                resource_type: kind.to_string(),
                reference: stack::generated_name(&stack_name, logical_id),
                attributes: BTreeMap::new(),
            };
            if stack::FUNCTION_TYPES.contains(&kind)
                && let Some(name) = body["Properties"].get("FunctionName")
                && let Ok(name) = ctx.resolve_string(name, "FunctionName")
            {
                values.reference = name;
            }
            ctx.resources.insert(logical_id.clone(), values);
        }
        Ok((pipeline, ctx))
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
        let (pipeline, ctx) = self.read_pipeline(commit)?;
        let printer = &self.options.printer;
        let subject = source::subject(&self.options.repo, commit);
        let pipeline_name = pipeline.logical_id().to_string();
        printer.run_start(&pipeline_name, commit, &subject);

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
                        .map(|action| self.run_action(&stage.name, action, &ctx, &state)),
                )
                .await;
                let mut group_failed = false;
                for (action, (report, outputs)) in group.iter().zip(results) {
                    if report.status == Status::Failed && failed_action.is_none() {
                        failed_action = Some(FailedAction {
                            stage: stage.name.clone(),
                            action: action.name.clone(),
                            reason: report.error.clone().unwrap_or_default(),
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
            let status = if actions.iter().any(|a| a.status == Status::Failed) {
                Status::Failed
            } else {
                Status::Succeeded
            };
            stages.push(StageReport {
                name: stage.name.clone(),
                status,
                duration_ms: millis(stage_started.elapsed()),
                actions,
            });
        }
        let report = RunReport {
            pipeline: pipeline_name,
            commit: commit.to_string(),
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
        Ok(report)
    }

    /// Runs one action; returns its report and the artifacts it produced.
    async fn run_action(
        &self,
        stage: &str,
        action: &Action,
        ctx: &Context,
        state: &RunState,
    ) -> (ActionReport, BTreeMap<String, PathBuf>) {
        let printer = &self.options.printer;
        printer.action_start(stage, &action.name, &action.provider);
        let started = Instant::now();
        let result = match (action.category.as_str(), action.provider.as_str()) {
            ("Source", "CodeCommit" | "CodeStarSourceConnection") => self.source(action, state),
            ("Build", "CodeBuild") => self.build(stage, action, state).await,
            ("Deploy", "CloudFormation") => self.deploy(action, ctx, state).await,
            ("Invoke", "Lambda") => self.invoke(action, ctx).await,
            ("Approval", "Manual") => self.approve(action, ctx).await,
            _ => Err(ActionError::Unsupported {
                category: action.category.as_str().to_string(),
                owner: action.owner.as_str().to_string(),
                provider: action.provider.clone(),
            }),
        };
        let (status, summary, error, outputs) = match result {
            Ok((summary, outputs)) => (Status::Succeeded, Some(summary), None, outputs),
            Err(e) => (Status::Failed, None, Some(e.to_string()), BTreeMap::new()),
        };
        let report = ActionReport {
            name: action.name.clone(),
            category: action.category.as_str().to_string(),
            provider: action.provider.clone(),
            status,
            duration_ms: millis(started.elapsed()),
            summary,
            error,
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
            .ok_or_else(|| ActionError::Config {
                key: "InputArtifacts".into(),
                message: "the action needs an input artifact".into(),
            })?;
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
        let status = tokio::process::Command::new("bash")
            .arg(&script)
            .args(["--arch", &self.options.arch, "--out"])
            .arg(&out)
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
            .status()
            .await
            .map_err(|source| ActionError::BuildStart {
                script: script.display().to_string(),
                source,
            })?;
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
            let parameters = cfn::parameter_values(
                &cfn::load(&pipeline_template).map_err(DeployError::from)?,
                &self.options.parameters,
                "packaged-pipeline.yaml",
            )
            .map_err(DeployError::from)?;
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
        ctx: &Context,
        key: &str,
    ) -> Result<Option<String>, ActionError> {
        action
            .config(key)
            .map(|v| ctx.resolve_string(v, &format!("{}.Configuration.{key}", action.name)))
            .transpose()
            .map_err(|e| ActionError::Config {
                key: key.to_string(),
                message: e.to_string(),
            })
    }

    fn required(&self, action: &Action, ctx: &Context, key: &str) -> Result<String, ActionError> {
        self.config_string(action, ctx, key)?
            .ok_or_else(|| ActionError::Config {
                key: key.to_string(),
                message: "missing".into(),
            })
    }

    async fn deploy(&self, action: &Action, ctx: &Context, state: &RunState) -> ActionResult {
        let mode = self.required(action, ctx, "ActionMode")?;
        let stack_name = self.required(action, ctx, "StackName")?;
        if action.config("TemplateConfiguration").is_some() {
            return Err(ActionError::Config {
                key: "TemplateConfiguration".into(),
                message: "not supported by the rehearsal; use ParameterOverrides".into(),
            });
        }
        let template = || -> Result<(PathBuf, BTreeMap<String, String>), ActionError> {
            let path = self.required(action, ctx, "TemplatePath")?;
            let (artifact, file) = path.split_once("::").ok_or_else(|| ActionError::Config {
                key: "TemplatePath".into(),
                message: format!("{path:?} is not of the form Artifact::file"),
            })?;
            let dir = state
                .artifacts
                .get(artifact)
                .ok_or_else(|| ActionError::MissingArtifact(artifact.to_string()))?;
            let overrides = match self.config_string(action, ctx, "ParameterOverrides")? {
                None => BTreeMap::new(),
                Some(text) => parameter_overrides(&text)?,
            };
            Ok((dir.join(file), overrides))
        };
        match mode.as_str() {
            "CREATE_UPDATE" | "REPLACE_ON_FAILURE" => {
                let (path, overrides) = template()?;
                let deployed = self.deployer.deploy(&stack_name, &path, &overrides).await?;
                Ok((describe_deploy(&deployed), BTreeMap::new()))
            }
            "CHANGE_SET_REPLACE" => {
                let (path, overrides) = template()?;
                let change_set = self.required(action, ctx, "ChangeSetName")?;
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
                let change_set = self.required(action, ctx, "ChangeSetName")?;
                let (path, overrides) = self
                    .change_sets
                    .lock()
                    .await
                    .remove(&format!("{stack_name}/{change_set}"))
                    .ok_or_else(|| ActionError::Config {
                        key: "ChangeSetName".into(),
                        message: format!("no change set {change_set} of stack {stack_name} was created earlier in this run"),
                    })?;
                let deployed = self.deployer.deploy(&stack_name, &path, &overrides).await?;
                Ok((describe_deploy(&deployed), BTreeMap::new()))
            }
            "DELETE_ONLY" => {
                // Deleting a stack that does not exist succeeds, as on AWS.
                let _ = self.deployer.delete(&stack_name).await;
                Ok((format!("stack {stack_name} deleted"), BTreeMap::new()))
            }
            other => Err(ActionError::Config {
                key: "ActionMode".into(),
                message: format!("{other} is not a CloudFormation action mode"),
            }),
        }
    }

    async fn invoke(&self, action: &Action, ctx: &Context) -> ActionResult {
        let name = self.required(action, ctx, "FunctionName")?;
        let user_parameters = self.config_string(action, ctx, "UserParameters")?;
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
        let mut invocation_done = false;
        let outcome = loop {
            tokio::select! {
                reported = &mut result => break reported.ok(),
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
                    let tries = if attempts > 1 {
                        format!(
                            " ({attempts} attempts, as EventInvokeConfig.MaximumRetryAttempts is {})",
                            attempts - 1
                        )
                    } else {
                        String::new()
                    };
                    return Err(ActionError::JobFailed(format!(
                        "function {name} failed without reporting job {job_id}{tries}: {error}"
                    )));
                }
                _ = &mut deadline => {
                    self.world.expire_job(&job_id);
                    let background: Vec<String> = self
                        .world
                        .async_failures_since(mark)
                        .into_iter()
                        .map(|f| format!("{} failed: {}", f.function, f.error))
                        .collect();
                    let mut message = format!(
                        "no result reported for job {job_id} within {} s of invoking {name} (on AWS the action would time out after 20 minutes)",
                        self.options.job_timeout.as_secs()
                    );
                    if !background.is_empty() {
                        message += &format!("; meanwhile {}", background.join("; "));
                    }
                    return Err(ActionError::JobFailed(message));
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
            Some(JobResult::Failed { kind, message }) => {
                Err(ActionError::JobFailed(format!("{kind}: {message}")))
            }
            None => Err(ActionError::JobFailed(format!(
                "job {job_id} was abandoned"
            ))),
        }
    }

    async fn approve(&self, action: &Action, ctx: &Context) -> ActionResult {
        let message = self
            .config_string(action, ctx, "CustomData")?
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

/// A change set created by `CHANGE_SET_REPLACE`: template and parameters.
type ChangeSet = (PathBuf, BTreeMap<String, String>);

type ActionResult = Result<(String, BTreeMap<String, PathBuf>), ActionError>;

/// One rehearsal at a time per work directory (they share the checkout):
/// a `lock` directory holding the owner's process id. A lock whose owner
/// process is gone is taken over.
struct WorkDirLock {
    path: PathBuf,
}

impl WorkDirLock {
    async fn acquire(
        work_dir: &std::path::Path,
        printer: &Printer,
    ) -> Result<Self, RehearsalError> {
        let path = work_dir.join("lock");
        let pid_file = path.join("pid");
        let mut told = false;
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    std::fs::write(&pid_file, std::process::id().to_string()).map_err(
                        |source| RehearsalError::WorkDir {
                            path: pid_file.display().to_string(),
                            source,
                        },
                    )?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&pid_file).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                    if !alive && !owner.is_empty() {
                        tracing::warn!(
                            owner = owner.trim(),
                            "taking over the lock of a rehearsal that is gone"
                        );
                        let _ = std::fs::remove_dir_all(&path);
                        continue;
                    }
                    if !told {
                        printer.note(&format!(
                            "another rehearsal (process {}) is using {}; waiting for it to finish",
                            owner.trim(),
                            work_dir.display()
                        ));
                        told = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(source) => {
                    return Err(RehearsalError::WorkDir {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
    }
}

impl Drop for WorkDirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
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
fn parameter_overrides(text: &str) -> Result<BTreeMap<String, String>, ActionError> {
    let config = |message: String| ActionError::Config {
        key: "ParameterOverrides".into(),
        message,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| config(format!("not JSON ({e}): {text}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| config(format!("not a JSON object: {text}")))?;
    object
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
            other => Err(config(format!(
                "the value of {k} ({other}) uses a parameter override function the rehearsal does not support"
            ))),
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

    #[test]
    fn parameter_overrides_are_a_json_object_of_strings() {
        let map = parameter_overrides(r#"{"ServiceName": "S", "Stage": "beta", "N": 3}"#).unwrap();
        assert_eq!(map["Stage"], "beta");
        assert_eq!(map["N"], "3");
    }

    #[test]
    fn parameter_overrides_that_are_not_json_name_the_key() {
        let err = parameter_overrides("Stage=beta").unwrap_err();
        assert!(err.to_string().contains("ParameterOverrides"), "{err}");
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
        let job = &event["CodePipeline.job"];
        assert_eq!(job["id"], "job-1");
        assert_eq!(job["accountId"], ids::ACCOUNT_ID);
        assert_eq!(
            job["data"]["actionConfiguration"]["configuration"]["FunctionName"],
            "fn"
        );
        assert_eq!(
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"],
            "{\"a\":1}"
        );
        assert_eq!(job["data"]["inputArtifacts"][0]["name"], "BuildOutput");
        assert!(job["data"]["artifactCredentials"]["accessKeyId"].is_string());
    }
}
