//! The pipeline as a picture: each stage and action with its state, built
//! from the run's [`Event`]s. The terminal's live view ([`crate::live`]) and
//! the local console page ([`crate::console`]) both draw it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::{
    ActionReport, Event, PlannedStage, Rehearsed, RunReport, StageReport, StageRollback, Status,
    millis,
};

/// What a stage or an action is doing, as the console draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Not started yet.
    Pending,
    Running,
    Succeeded,
    Failed,
    /// A failed stage that went back to its last successful release.
    RolledBack,
    /// The run ended without running it (an earlier failure, `--until`).
    NotRun,
    /// A `BeforeEntry` condition skipped it.
    Skipped,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::RolledBack => "rolled back",
            State::NotRun => "not run",
            State::Skipped => "skipped",
        }
    }

    /// Whether it is over (a final state).
    pub fn is_done(self) -> bool {
        !matches!(self, State::Pending | State::Running)
    }

    fn of(status: Status) -> Self {
        match status {
            Status::Succeeded => State::Succeeded,
            Status::Failed => State::Failed,
            Status::NotRun => State::NotRun,
            Status::Skipped => State::Skipped,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionView {
    pub name: String,
    pub provider: String,
    pub run_order: u32,
    pub state: State,
    /// When it started (running) or how long it took (done).
    #[serde(skip)]
    pub started: Option<Instant>,
    /// How long it took, once done; how long it has run, in a snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The latest progress line while it runs (a build's crate, a gate waiting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// What it did (the gate's summary, the stack deployed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The output variables it published (its namespace's `#{Ns.Name}`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub output_variables: BTreeMap<String, String>,
}

impl ActionView {
    fn pending(name: &str, provider: &str, run_order: u32) -> Self {
        Self {
            name: name.to_string(),
            provider: provider.to_string(),
            run_order,
            state: State::Pending,
            started: None,
            duration_ms: None,
            progress: None,
            summary: None,
            error: None,
            output_variables: BTreeMap::new(),
        }
    }

    /// How long it has run (running) or took (done).
    pub fn elapsed(&self, now: Instant) -> Option<Duration> {
        match (self.state, self.started, self.duration_ms) {
            (State::Running, Some(started), _) => Some(now.saturating_duration_since(started)),
            (_, _, Some(ms)) => Some(Duration::from_millis(ms)),
            _ => None,
        }
    }

    fn end(&mut self, report: &ActionReport) {
        self.state = State::of(report.status);
        self.duration_ms = Some(report.duration_ms);
        self.summary = report.summary.clone();
        self.output_variables = report.output_variables.clone();
        self.error = report.error.clone();
        self.progress = None;
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageView {
    pub name: String,
    pub state: State,
    #[serde(skip)]
    pub started: Option<Instant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub actions: Vec<ActionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<StageRollback>,
    /// The latest progress of the stage's own work after or between its
    /// actions (a bake's `OnSuccess`, a rollback), as `<what>: <text>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// The API base URL of the stack this stage deployed, while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The stack whose URL `url` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl StageView {
    fn planned(plan: &PlannedStage) -> Self {
        Self {
            name: plan.name.clone(),
            state: State::Pending,
            started: None,
            duration_ms: None,
            actions: plan
                .actions
                .iter()
                .map(|a| ActionView::pending(&a.name, &a.provider, a.run_order))
                .collect(),
            rolled_back: None,
            progress: None,
            url: None,
            stack: None,
        }
    }

    pub fn elapsed(&self, now: Instant) -> Option<Duration> {
        match (self.state, self.started, self.duration_ms) {
            (State::Running, Some(started), _) => Some(now.saturating_duration_since(started)),
            (_, _, Some(ms)) => Some(Duration::from_millis(ms)),
            _ => None,
        }
    }

    fn action_mut(&mut self, name: &str, provider: &str) -> &mut ActionView {
        let index = match self.actions.iter().position(|a| a.name == name) {
            Some(index) => index,
            None => {
                // Not in the plan (should not happen): shown all the same.
                let run_order = self.actions.last().map_or(1, |a| a.run_order);
                self.actions
                    .push(ActionView::pending(name, provider, run_order));
                self.actions.len() - 1
            }
        };
        &mut self.actions[index]
    }

    fn end(&mut self, report: &StageReport) {
        self.state = match (&report.rolled_back, report.status) {
            (Some(_), _) => State::RolledBack,
            (None, status) => State::of(status),
        };
        self.duration_ms = (!matches!(report.status, Status::NotRun | Status::Skipped))
            .then_some(report.duration_ms);
        self.rolled_back = report.rolled_back.clone();
        self.progress = None;
        for action in &report.actions {
            self.action_mut(&action.name, &action.provider).end(action);
        }
        // Actions after a failed run order never started.
        for action in &mut self.actions {
            if !action.state.is_done() {
                action.state = if self.state == State::Skipped {
                    State::Skipped
                } else {
                    State::NotRun
                };
                action.progress = None;
            }
        }
    }
}

/// One pipeline run as it goes: what [`Event`]s have said so far.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub pipeline: String,
    pub commit: String,
    pub rehearsed: Rehearsed,
    pub subject: String,
    /// How the header names what is rehearsed (a commit, a snapshot).
    pub describe: String,
    pub state: State,
    #[serde(skip)]
    pub started: Instant,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub stages: Vec<StageView>,
    /// Lines that belong to no action (the latest few).
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_before: Option<String>,
    /// API base URLs of the running stacks, by stack name (once the run ended).
    pub urls: BTreeMap<String, String>,
    /// The failed action's `stage/action: reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl RunView {
    /// How many notes a view keeps.
    pub const NOTES: usize = 5;

    /// A run that has just started, every stage pending.
    pub fn started(
        pipeline: &str,
        commit: &str,
        rehearsed: &Rehearsed,
        subject: &str,
        stages: &[PlannedStage],
        now: Instant,
    ) -> Self {
        Self {
            pipeline: pipeline.to_string(),
            commit: commit.to_string(),
            rehearsed: rehearsed.clone(),
            subject: subject.to_string(),
            describe: rehearsed.describe(commit),
            state: State::Running,
            started: now,
            duration_ms: None,
            stages: stages.iter().map(StageView::planned).collect(),
            notes: Vec::new(),
            stopped_before: None,
            urls: BTreeMap::new(),
            failure: None,
        }
    }

    pub fn stage(&self, name: &str) -> Option<&StageView> {
        self.stages.iter().find(|s| s.name == name)
    }

    fn stage_mut(&mut self, name: &str) -> &mut StageView {
        let index = match self.stages.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                self.stages.push(StageView::planned(&PlannedStage {
                    name: name.to_string(),
                    actions: Vec::new(),
                }));
                self.stages.len() - 1
            }
        };
        &mut self.stages[index]
    }

    /// How long the run has taken so far (or took).
    pub fn elapsed(&self, now: Instant) -> Duration {
        match self.duration_ms {
            Some(ms) => Duration::from_millis(ms),
            None => now.saturating_duration_since(self.started),
        }
    }

    /// Applies an event of this run. `RunStarted` is for [`RunView::from_start`].
    pub fn apply(&mut self, event: &Event, now: Instant) {
        match event {
            Event::RunStarted { .. } => {}
            Event::ActionStarted {
                stage,
                action,
                provider,
            } => {
                let stage = self.stage_mut(stage);
                if stage.state == State::Pending {
                    stage.state = State::Running;
                    stage.started = Some(now);
                }
                let action = stage.action_mut(action, provider);
                action.state = State::Running;
                action.started = Some(now);
                action.progress = None;
            }
            Event::ActionProgress {
                stage,
                action,
                text,
            } => {
                let stage = self.stage_mut(stage);
                match stage.actions.iter_mut().find(|a| a.name == *action) {
                    Some(action) => action.progress = Some(text.clone()),
                    // Not an action of the plan: the stage's own work.
                    None => stage.progress = Some(format!("{action}: {text}")),
                }
            }
            Event::ActionEnded { stage, report } => {
                let stage = self.stage_mut(stage);
                stage.action_mut(&report.name, &report.provider).end(report);
                // A deploy says which stack it made and where it serves.
                if report.provider == "CloudFormation"
                    && let Some((stack, url)) = report.summary.as_deref().and_then(deployed_at)
                {
                    stage.stack = Some(stack);
                    stage.url = Some(url);
                }
            }
            Event::StageEnded { report } => self.stage_mut(&report.name).end(report),
            Event::Note { text } => {
                self.notes.push(text.clone());
                if self.notes.len() > Self::NOTES {
                    self.notes.remove(0);
                }
            }
            Event::StoppedBefore { stage } => {
                self.stopped_before = Some(stage.clone());
            }
            Event::RunEnded { report } => self.end(report),
        }
    }

    /// The view of a run that `RunStarted` begins.
    pub fn from_start(event: &Event, now: Instant) -> Option<Self> {
        match event {
            Event::RunStarted {
                pipeline,
                commit,
                rehearsed,
                subject,
                stages,
            } => Some(Self::started(
                pipeline, commit, rehearsed, subject, stages, now,
            )),
            _ => None,
        }
    }

    fn end(&mut self, report: &RunReport) {
        for stage in &report.stages {
            let view = self.stage_mut(&stage.name);
            if !view.state.is_done() {
                view.end(stage);
            }
        }
        // A stage the report does not list never ran.
        for stage in &mut self.stages {
            if !stage.state.is_done() {
                stage.state = State::NotRun;
                for action in &mut stage.actions {
                    if !action.state.is_done() {
                        action.state = State::NotRun;
                    }
                }
            }
        }
        self.state = State::of(report.status);
        self.duration_ms = Some(report.duration_ms);
        self.stopped_before = report.stopped_before.clone();
        self.urls = report.urls.clone();
        self.failure = report
            .failed_action
            .as_ref()
            .map(|f| format!("{}/{}: {}", f.stage, f.action, f.reason));
        self.link_stages_to_urls();
    }

    /// Each deployed stack's URL on the stage that deployed it: the stage
    /// whose deploy summary names the stack, or else whose name the stack's
    /// name ends with (`Svc-beta` for Beta).
    fn link_stages_to_urls(&mut self) {
        for (stack, url) in &self.urls {
            let by_summary = self.stages.iter().position(|s| {
                s.actions.iter().any(|a| {
                    a.provider == "CloudFormation"
                        && a.summary.as_deref().is_some_and(|t| names_stack(t, stack))
                })
            });
            let by_name = || {
                let lower = stack.to_ascii_lowercase();
                self.stages
                    .iter()
                    .position(|s| lower.ends_with(&format!("-{}", s.name.to_ascii_lowercase())))
            };
            if let Some(index) = by_summary.or_else(by_name) {
                let stage = &mut self.stages[index];
                if stage.url.is_none() {
                    stage.url = Some(url.clone());
                    stage.stack = Some(stack.clone());
                }
            }
        }
    }

    /// A copy whose running actions and stages carry how long they have run
    /// so far (`durationMs`), for the console's JSON.
    pub fn snapshot(&self, now: Instant) -> Self {
        let mut view = self.clone();
        for stage in &mut view.stages {
            if stage.state == State::Running {
                stage.duration_ms = stage.elapsed(now).map(millis);
            }
            for action in &mut stage.actions {
                if action.state == State::Running {
                    action.duration_ms = action.elapsed(now).map(millis);
                }
            }
        }
        if view.state == State::Running {
            view.duration_ms = Some(millis(self.elapsed(now)));
        }
        view
    }
}

/// The stack and URL of a deploy's summary (`stack Svc-beta (fn) serving
/// http://127.0.0.1:4000/`), if it serves one.
fn deployed_at(summary: &str) -> Option<(String, String)> {
    let stack = summary.strip_prefix("stack ")?.split_whitespace().next()?;
    let (_, after) = summary.rsplit_once(" serving ")?;
    let url = after.split_whitespace().next()?;
    url.starts_with("http://")
        .then(|| (stack.to_string(), url.to_string()))
}

/// Whether `text` names `stack` as a whole word (`Svc-beta` is not in `Svc-beta2`).
fn names_stack(text: &str, stack: &str) -> bool {
    text.match_indices(stack).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + stack.len()..].chars().next();
        let boundary = |c: Option<char>| {
            c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        };
        boundary(before) && boundary(after)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{FailedAction, PlannedAction};

    pub(crate) fn plan() -> Vec<PlannedStage> {
        let stage = |name: &str, actions: &[(&str, &str, u32)]| PlannedStage {
            name: name.into(),
            actions: actions
                .iter()
                .map(|(name, provider, run_order)| PlannedAction {
                    name: (*name).into(),
                    provider: (*provider).into(),
                    run_order: *run_order,
                })
                .collect(),
        };
        vec![
            stage("Source", &[("Source", "CodeCommit", 1)]),
            stage("Build", &[("Build", "CodeBuild", 1)]),
            stage(
                "Beta",
                &[("Deploy", "CloudFormation", 1), ("Gate", "Lambda", 2)],
            ),
            stage(
                "Prod",
                &[("Approve", "Manual", 1), ("Deploy", "CloudFormation", 2)],
            ),
        ]
    }

    pub(crate) fn started(now: Instant) -> RunView {
        RunView::started(
            "Pipeline",
            "0123456789abcdef",
            &Rehearsed::Commit,
            "a change",
            &plan(),
            now,
        )
    }

    pub(crate) fn action(name: &str, provider: &str, status: Status, ms: u64) -> ActionReport {
        ActionReport {
            name: name.into(),
            category: String::new(),
            provider: provider.into(),
            status,
            duration_ms: ms,
            summary: None,
            error: None,
            failure: None,
            output_variables: Default::default(),
        }
    }

    pub(crate) fn start(stage: &str, action: &str) -> Event {
        Event::ActionStarted {
            stage: stage.into(),
            action: action.into(),
            provider: String::new(),
        }
    }

    pub(crate) fn end(stage: &str, report: ActionReport) -> Event {
        Event::ActionEnded {
            stage: stage.into(),
            report,
        }
    }

    pub(crate) fn stage_end(
        name: &str,
        status: Status,
        actions: Vec<ActionReport>,
        rolled_back: Option<StageRollback>,
    ) -> Event {
        Event::StageEnded {
            report: StageReport {
                name: name.into(),
                status,
                duration_ms: 2000,
                actions,
                rolled_back,
            },
        }
    }

    pub(crate) fn run_end(
        stages: Vec<(&str, Status)>,
        status: Status,
        urls: &[(&str, &str)],
    ) -> Event {
        Event::RunEnded {
            report: RunReport {
                pipeline: "Pipeline".into(),
                commit: "0123456789abcdef".into(),
                rehearsed: Rehearsed::Commit,
                subject: "a change".into(),
                status,
                duration_ms: 9000,
                stages: stages
                    .into_iter()
                    .map(|(name, status)| StageReport {
                        name: name.into(),
                        status,
                        duration_ms: 0,
                        actions: Vec::new(),
                        rolled_back: None,
                    })
                    .collect(),
                failed_action: (status == Status::Failed).then(|| FailedAction {
                    stage: "Beta".into(),
                    action: "Gate".into(),
                    reason: "1 of 3 checks failed".into(),
                    error: None,
                }),
                stopped_before: None,
                urls: urls
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        }
    }

    fn states(view: &RunView) -> Vec<(&str, State)> {
        view.stages
            .iter()
            .map(|s| (s.name.as_str(), s.state))
            .collect()
    }

    #[test]
    fn a_started_run_shows_every_planned_stage_and_action_pending() {
        let view = started(Instant::now());
        assert_eq!(
            states(&view),
            [
                ("Source", State::Pending),
                ("Build", State::Pending),
                ("Beta", State::Pending),
                ("Prod", State::Pending)
            ]
        );
        let beta: Vec<_> = view.stages[2].actions.iter().map(|a| &a.name).collect();
        assert_eq!(beta, ["Deploy", "Gate"]);
        assert!(
            view.stages[2]
                .actions
                .iter()
                .all(|a| a.state == State::Pending)
        );
    }

    #[test]
    fn a_started_action_runs_and_counts_its_elapsed_time() {
        let t0 = Instant::now();
        let mut view = started(t0);
        view.apply(&start("Build", "Build"), t0);
        let build = &view.stage("Build").unwrap().actions[0];
        assert_eq!(build.state, State::Running);
        assert_eq!(view.stage("Build").unwrap().state, State::Running);
        assert_eq!(
            build.elapsed(t0 + Duration::from_secs(7)),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn an_ended_action_shows_the_output_variables_it_published() {
        let t0 = Instant::now();
        let mut view = started(t0);
        view.apply(&start("Beta", "Gate"), t0);
        let mut report = action("Gate", "Lambda", Status::Succeeded, 40);
        report.output_variables = BTreeMap::from([("ChecksRun".to_string(), "11".to_string())]);
        view.apply(&end("Beta", report), t0);
        let gate = &view.stage("Beta").unwrap().actions[1];
        let json = serde_json::to_value(gate).unwrap();
        assert_eq!(json["outputVariables"]["ChecksRun"], "11");
    }

    #[test]
    fn progress_keeps_only_the_latest_line_and_the_end_clears_it() {
        let t0 = Instant::now();
        let mut view = started(t0);
        view.apply(&start("Build", "Build"), t0);
        for text in ["building for 10 s", "building for 20 s"] {
            view.apply(
                &Event::ActionProgress {
                    stage: "Build".into(),
                    action: "Build".into(),
                    text: text.into(),
                },
                t0,
            );
        }
        assert_eq!(
            view.stage("Build").unwrap().actions[0].progress.as_deref(),
            Some("building for 20 s")
        );
        view.apply(
            &end(
                "Build",
                action("Build", "CodeBuild", Status::Succeeded, 20_500),
            ),
            t0,
        );
        let build = &view.stage("Build").unwrap().actions[0];
        assert_eq!(build.progress, None);
        assert_eq!(build.state, State::Succeeded);
        assert_eq!(build.duration_ms, Some(20_500));
    }

    #[test]
    fn a_failed_run_order_leaves_the_later_actions_of_the_stage_not_run() {
        let t0 = Instant::now();
        let mut view = started(t0);
        let mut failed = action("Deploy", "CloudFormation", Status::Failed, 30);
        failed.error = Some("template invalid".into());
        view.apply(&start("Beta", "Deploy"), t0);
        view.apply(&end("Beta", failed.clone()), t0);
        view.apply(&stage_end("Beta", Status::Failed, vec![failed], None), t0);
        let beta = view.stage("Beta").unwrap();
        assert_eq!(beta.state, State::Failed);
        assert_eq!(beta.actions[0].error.as_deref(), Some("template invalid"));
        assert_eq!(beta.actions[1].state, State::NotRun);
    }

    #[test]
    fn a_stage_that_rolled_back_shows_as_rolled_back_with_its_commit() {
        let t0 = Instant::now();
        let mut view = started(t0);
        let rollback = StageRollback {
            to_commit: "fedcba9876543210".into(),
            reason: "Gate failed".into(),
        };
        view.apply(
            &stage_end(
                "Beta",
                Status::Failed,
                vec![action("Gate", "Lambda", Status::Failed, 10)],
                Some(rollback.clone()),
            ),
            t0,
        );
        let beta = view.stage("Beta").unwrap();
        assert_eq!(beta.state, State::RolledBack);
        assert_eq!(beta.rolled_back, Some(rollback));
        let json = serde_json::to_value(beta).unwrap();
        assert_eq!(json["state"], "rolledBack");
    }

    #[test]
    fn the_end_of_a_run_marks_the_stages_it_never_reached_not_run() {
        let t0 = Instant::now();
        let mut view = started(t0);
        view.apply(
            &run_end(
                vec![
                    ("Source", Status::Succeeded),
                    ("Build", Status::Succeeded),
                    ("Beta", Status::Failed),
                    ("Prod", Status::NotRun),
                ],
                Status::Failed,
                &[],
            ),
            t0,
        );
        assert_eq!(view.state, State::Failed);
        assert_eq!(view.stage("Prod").unwrap().state, State::NotRun);
        assert!(
            view.stage("Prod")
                .unwrap()
                .actions
                .iter()
                .all(|a| a.state == State::NotRun)
        );
        assert_eq!(
            view.failure.as_deref(),
            Some("Beta/Gate: 1 of 3 checks failed")
        );
    }

    #[test]
    fn each_running_stack_url_goes_to_the_stage_that_deployed_it() {
        let t0 = Instant::now();
        let mut view = started(t0);
        let mut deploy = action("Deploy", "CloudFormation", Status::Succeeded, 10);
        deploy.summary = Some("stack Svc-live deployed (2 functions)".into());
        view.apply(&end("Prod", deploy), t0);
        view.apply(
            &run_end(
                vec![("Beta", Status::Succeeded), ("Prod", Status::Succeeded)],
                Status::Succeeded,
                &[
                    ("Svc-beta", "http://127.0.0.1:1/"),
                    ("Svc-live", "http://127.0.0.1:2/"),
                ],
            ),
            t0,
        );
        let url = |name| view.stage(name).unwrap().url.as_deref();
        assert_eq!(url("Beta"), Some("http://127.0.0.1:1/"));
        assert_eq!(url("Prod"), Some("http://127.0.0.1:2/"));
        assert_eq!(url("Build"), None);
    }

    #[test]
    fn a_deploy_that_serves_an_api_links_its_stage_before_the_run_ends() {
        let t0 = Instant::now();
        let mut view = started(t0);
        let mut deploy = action("Deploy", "CloudFormation", Status::Succeeded, 10);
        deploy.summary = Some("stack Svc-beta (Svc-beta-fn) serving http://127.0.0.1:4000/".into());
        view.apply(&end("Beta", deploy), t0);
        let beta = view.stage("Beta").unwrap();
        assert_eq!(beta.stack.as_deref(), Some("Svc-beta"));
        assert_eq!(beta.url.as_deref(), Some("http://127.0.0.1:4000/"));
    }

    #[test]
    fn progress_of_work_that_is_no_planned_action_shows_on_its_stage_until_it_ends() {
        let t0 = Instant::now();
        let mut view = started(t0);
        view.apply(
            &Event::ActionProgress {
                stage: "Prod".into(),
                action: "OnSuccess".into(),
                text: "baking for 10 s".into(),
            },
            t0,
        );
        assert_eq!(
            view.stage("Prod").unwrap().progress.as_deref(),
            Some("OnSuccess: baking for 10 s")
        );
        view.apply(&stage_end("Prod", Status::Succeeded, vec![], None), t0);
        assert_eq!(view.stage("Prod").unwrap().progress, None);
    }

    #[test]
    fn a_stack_name_counts_only_as_a_whole_word() {
        assert!(names_stack("stack Svc-beta deployed", "Svc-beta"));
        assert!(!names_stack("stack Svc-beta2 deployed", "Svc-beta"));
        assert!(!names_stack("stack MySvc-beta deployed", "Svc-beta"));
    }

    #[test]
    fn a_snapshot_gives_running_actions_their_time_so_far() {
        let t0 = Instant::now();
        let mut view = started(t0);
        view.apply(&start("Build", "Build"), t0);
        let json = serde_json::to_value(view.snapshot(t0 + Duration::from_millis(2500))).unwrap();
        assert_eq!(json["stages"][1]["actions"][0]["state"], "running");
        assert_eq!(json["stages"][1]["actions"][0]["durationMs"], 2500);
        assert_eq!(json["stages"][0]["actions"][0]["state"], "pending");
        assert!(json["stages"][0]["actions"][0].get("durationMs").is_none());
    }

    #[test]
    fn notes_keep_the_latest_few() {
        let t0 = Instant::now();
        let mut view = started(t0);
        for i in 0..8 {
            view.apply(
                &Event::Note {
                    text: format!("note {i}"),
                },
                t0,
            );
        }
        assert_eq!(view.notes.len(), RunView::NOTES);
        assert_eq!(view.notes.last().map(String::as_str), Some("note 7"));
    }
}
