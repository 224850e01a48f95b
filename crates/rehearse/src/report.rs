//! What the user sees: a line per action as it starts and ends, the summary
//! each gate reported, a table of stages at the end, and the same result as
//! JSON (`--json`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::executor::ActionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Succeeded,
    Failed,
    /// Not run because an earlier stage failed or `--until` stopped before it.
    NotRun,
    /// Skipped by a `BeforeEntry` condition with `Result: SKIP` whose rules
    /// were not met ("Configure conditions for a stage", AWS CodePipeline
    /// User Guide).
    Skipped,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::NotRun => "Not run",
            Status::Skipped => "Skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionReport {
    pub name: String,
    pub category: String,
    pub provider: String,
    pub status: Status,
    pub duration_ms: u64,
    /// What the action did (the stack deployed, the gate's summary, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it failed, as the typed error (`error` is its message).
    #[serde(skip)]
    pub failure: Option<Arc<ActionError>>,
    /// The output variables it produced (a Lambda job's
    /// `outputVariables`), which later actions read through its
    /// `Namespace`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub output_variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    pub name: String,
    pub status: Status,
    pub duration_ms: u64,
    pub actions: Vec<ActionReport>,
    /// A failed stage that rolled back (`OnFailure: ROLLBACK`, or an alarm
    /// during its bake): what it runs again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<StageRollback>,
}

/// A stage's automatic rollback to its last successful release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRollback {
    /// The commit the stage runs again (its last successful release).
    pub to_commit: String,
    /// Why it rolled back (the failed action, or the alarm that fired).
    pub reason: String,
}

/// The stages and actions a run will go through, in order, before any runs
/// (what a live view draws as pending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStage {
    pub name: String,
    pub actions: Vec<PlannedAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedAction {
    pub name: String,
    pub provider: String,
    /// Actions with the same run order run in parallel.
    pub run_order: u32,
}

/// What happens during a run, as it happens: the same facts as the printed
/// lines, for views that draw them (the terminal's live view, the local
/// console page). [`Printer`] sends each to its subscribers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Event {
    #[serde(rename_all = "camelCase")]
    RunStarted {
        pipeline: String,
        commit: String,
        rehearsed: Rehearsed,
        subject: String,
        stages: Vec<PlannedStage>,
    },
    #[serde(rename_all = "camelCase")]
    ActionStarted {
        stage: String,
        action: String,
        provider: String,
    },
    /// A line about an action still running (a build's progress, a gate
    /// waiting, a traffic shift).
    #[serde(rename_all = "camelCase")]
    ActionProgress {
        stage: String,
        action: String,
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    ActionEnded { stage: String, report: ActionReport },
    /// A stage finished (its actions, and its rollback if it had one).
    #[serde(rename_all = "camelCase")]
    StageEnded { report: StageReport },
    /// A line that belongs to no one action.
    #[serde(rename_all = "camelCase")]
    Note { text: String },
    #[serde(rename_all = "camelCase")]
    StoppedBefore { stage: String },
    #[serde(rename_all = "camelCase")]
    RunEnded { report: RunReport },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedAction {
    pub stage: String,
    pub action: String,
    /// The error's message.
    pub reason: String,
    /// The error itself, for code (and tests) that match on what failed.
    #[serde(skip)]
    pub error: Option<Arc<ActionError>>,
}

/// What a run rehearsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Rehearsed {
    /// The commit, as checked in.
    Commit,
    /// `--working-tree`: a snapshot commit of `head` plus the working
    /// tree's uncommitted changes.
    #[serde(rename_all = "camelCase")]
    WorkingTree { head: String, changed_files: usize },
}

impl Rehearsed {
    /// How the header names what is rehearsed.
    /// (`commit` itself is in the JSON result.)
    pub fn describe(&self, commit: &str) -> String {
        match self {
            Rehearsed::Commit => short(commit).to_string(),
            Rehearsed::WorkingTree {
                head,
                changed_files,
            } => format!(
                "working tree snapshot of {} + {}",
                short(head),
                changed(*changed_files)
            ),
        }
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// "1 file", "3 files".
pub fn files(count: usize) -> String {
    if count == 1 {
        "1 file".to_string()
    } else {
        format!("{count} files")
    }
}

fn changed(count: usize) -> String {
    if count == 1 {
        "1 changed file".to_string()
    } else {
        format!("{count} changed files")
    }
}

/// The result of one pipeline execution.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub pipeline: String,
    pub commit: String,
    /// Whether `commit` is a commit of the repository or a snapshot of its
    /// working tree (`--working-tree`).
    pub rehearsed: Rehearsed,
    pub subject: String,
    pub status: Status,
    pub duration_ms: u64,
    pub stages: Vec<StageReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_action: Option<FailedAction>,
    /// `--until`: the stage the run stopped before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_before: Option<String>,
    /// API base URLs of the running stacks, by stack name.
    pub urls: BTreeMap<String, String>,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.status == Status::Succeeded
    }

    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }
}

pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// Prints progress lines and sends the same facts as [`Event`]s to its
/// subscribers. Writes go to stdout (the rehearsal's output), so logs on
/// stderr do not interleave with them in a pipe.
#[derive(Debug, Clone)]
pub struct Printer {
    /// No lines on stdout (events are still sent).
    pub quiet: bool,
    events: broadcast::Sender<Event>,
}

impl Default for Printer {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Printer {
    /// How many events a slow subscriber may fall behind before it misses some.
    const EVENT_BACKLOG: usize = 1024;

    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            events: broadcast::channel(Self::EVENT_BACKLOG).0,
        }
    }

    /// A printer that prints nothing (tests).
    pub fn quiet() -> Self {
        Self::new(true)
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn send(&self, event: Event) {
        // No subscriber is not an error: the lines are the default view.
        let _ = self.events.send(event);
    }

    fn line(&self, text: &str) {
        if !self.quiet {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    pub fn run_start(
        &self,
        pipeline: &str,
        commit: &str,
        rehearsed: &Rehearsed,
        subject: &str,
        stages: Vec<PlannedStage>,
    ) {
        self.line(&format!(
            "[{}] Rehearsing pipeline {pipeline} at {} ({subject})",
            clock(),
            rehearsed.describe(commit)
        ));
        self.send(Event::RunStarted {
            pipeline: pipeline.to_string(),
            commit: commit.to_string(),
            rehearsed: rehearsed.clone(),
            subject: subject.to_string(),
            stages,
        });
    }

    pub fn action_start(&self, stage: &str, action: &str, provider: &str) {
        self.line(&format!(
            "[{}] ▶ {stage}/{action} ({provider}) started",
            clock()
        ));
        self.send(Event::ActionStarted {
            stage: stage.to_string(),
            action: action.to_string(),
            provider: provider.to_string(),
        });
    }

    /// A line about the running action `stage`/`action`.
    pub fn progress(&self, stage: &str, action: &str, text: &str) {
        self.line(&format!("[{}]   {stage}/{action}: {text}", clock()));
        self.send(Event::ActionProgress {
            stage: stage.to_string(),
            action: action.to_string(),
            text: text.to_string(),
        });
    }

    pub fn stage_end(&self, report: &StageReport) {
        if let Some(rollback) = &report.rolled_back {
            self.line(&format!(
                "[{}] ↩ {} rolled back to {}: {}",
                clock(),
                report.name,
                short(&rollback.to_commit),
                rollback.reason
            ));
        }
        self.send(Event::StageEnded {
            report: report.clone(),
        });
    }

    pub fn run_end(&self, report: &RunReport) {
        self.send(Event::RunEnded {
            report: report.clone(),
        });
    }

    pub fn action_end(&self, stage: &str, report: &ActionReport) {
        self.send(Event::ActionEnded {
            stage: stage.to_string(),
            report: report.clone(),
        });
        let took = seconds(report.duration_ms);
        match report.status {
            Status::Succeeded => {
                let mut detail = report
                    .summary
                    .as_deref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                if !report.output_variables.is_empty() {
                    detail += &format!(
                        "\n    variables: {}",
                        variables_line(&report.output_variables)
                    );
                }
                self.line(&format!(
                    "[{}] ✔ {stage}/{} succeeded in {took}{detail}",
                    clock(),
                    report.name
                ));
            }
            _ => self.line(&format!(
                "[{}] ✘ {stage}/{} failed after {took}: {}",
                clock(),
                report.name,
                report.error.as_deref().unwrap_or("unknown error")
            )),
        }
    }

    pub fn note(&self, text: &str) {
        self.line(&format!("[{}]   {text}", clock()));
        self.send(Event::Note {
            text: text.to_string(),
        });
    }

    pub fn stopped_before(&self, stage: &str) {
        self.line(&format!(
            "[{}] ■ stopping before stage {stage} (--until)",
            clock()
        ));
        self.send(Event::StoppedBefore {
            stage: stage.to_string(),
        });
    }

    /// The final table, the failure and the URLs.
    pub fn summary(&self, report: &RunReport, stages_stay_up: StagesStayUp) {
        self.line(summary_text(report, stages_stay_up).trim_end());
    }
}

/// Output variables on one line, `Name=value, ...`, each value on one line
/// and at most 80 characters (the full values are in `--json`).
pub fn variables_line(variables: &BTreeMap<String, String>) -> String {
    variables
        .iter()
        .map(|(name, value)| {
            let flat = value.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = if flat.chars().count() > 80 {
                flat.chars().take(79).chain(['…']).collect()
            } else {
                flat
            };
            format!("{name}={short}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the deployed stages outlive the summary: with `--keep` or
/// `--watch` they do; otherwise the command stops them as it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagesStayUp {
    Yes,
    No,
}

/// The final table, the failure, and the stages' URLs while they run (or
/// that they stop with the command).
pub fn summary_text(report: &RunReport, stages_stay_up: StagesStayUp) -> String {
    let width = report
        .stages
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut text = format!("\n{:<width$}  {:<10}  {:>8}\n", "Stage", "Result", "Time");
    for stage in &report.stages {
        let result = match &stage.rolled_back {
            Some(rollback) => format!(
                "{}, rolled back to {}",
                stage.status.label(),
                short(&rollback.to_commit)
            ),
            None => stage.status.label().to_string(),
        };
        text += &format!(
            "{:<width$}  {:<10}  {:>8}\n",
            stage.name,
            result,
            if matches!(stage.status, Status::NotRun | Status::Skipped) {
                "-".to_string()
            } else {
                seconds(stage.duration_ms)
            }
        );
    }
    text += &format!(
        "{:<width$}  {:<10}  {:>8}\n",
        "Total",
        report.status.label(),
        seconds(report.duration_ms)
    );
    if let Some(failed) = &report.failed_action {
        text += &format!(
            "\nFAILED: {}/{}: {}\n",
            failed.stage, failed.action, failed.reason
        );
    }
    if !report.urls.is_empty() {
        match stages_stay_up {
            StagesStayUp::Yes => {
                text += "\nRunning stages:\n";
                for (stack, url) in &report.urls {
                    text += &format!("  {stack:<24} {url}\n");
                }
            }
            StagesStayUp::No => {
                let stacks: Vec<&str> = report.urls.keys().map(String::as_str).collect();
                text += &format!(
                    "\nStages deployed ({}) stop when this command exits; pass --keep to leave them running until Ctrl-C.\n",
                    stacks.join(", ")
                );
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> RunReport {
        RunReport {
            pipeline: "Pipeline".into(),
            commit: "abc".into(),
            rehearsed: Rehearsed::Commit,
            subject: "s".into(),
            status: Status::Failed,
            duration_ms: 1500,
            stages: vec![StageReport {
                name: "Beta".into(),
                status: Status::Failed,
                duration_ms: 1000,
                actions: vec![ActionReport {
                    name: "IntegrationTests".into(),
                    category: "Invoke".into(),
                    provider: "Lambda".into(),
                    status: Status::Failed,
                    duration_ms: 40,
                    summary: None,
                    error: Some("JobFailed: 1 of 10 checks failed".into()),
                    failure: None,
                    output_variables: Default::default(),
                }],
                rolled_back: None,
            }],
            failed_action: Some(FailedAction {
                stage: "Beta".into(),
                action: "IntegrationTests".into(),
                reason: "JobFailed: 1 of 10 checks failed".into(),
                error: None,
            }),
            stopped_before: None,
            urls: BTreeMap::from([("svc-beta".to_string(), "http://127.0.0.1:1/".to_string())]),
        }
    }

    #[test]
    fn the_json_result_names_the_failed_action_and_its_reason() {
        let json = serde_json::to_value(report()).unwrap();
        assert_eq!(json["status"], "Failed");
        assert_eq!(json["failedAction"]["action"], "IntegrationTests");
        assert_eq!(
            json["failedAction"]["reason"],
            "JobFailed: 1 of 10 checks failed"
        );
        assert_eq!(json["stages"][0]["actions"][0]["durationMs"], 40);
        assert_eq!(json["urls"]["svc-beta"], "http://127.0.0.1:1/");
        assert!(json.get("stoppedBefore").is_none());
    }

    #[test]
    fn the_summary_lists_running_stages_with_their_urls_when_they_stay_up() {
        let text = summary_text(&report(), StagesStayUp::Yes);
        assert!(
            text.contains("Running stages:\n  svc-beta                 http://127.0.0.1:1/"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_says_the_stages_stop_with_the_command_unless_kept() {
        let text = summary_text(&report(), StagesStayUp::No);
        assert!(!text.contains("Running stages"), "{text}");
        assert!(!text.contains("http://127.0.0.1:1/"), "{text}");
        assert!(
            text.contains("Stages deployed (svc-beta) stop when this command exits; pass --keep"),
            "{text}"
        );
    }

    #[test]
    fn a_rolled_back_stage_shows_the_commit_it_runs_again_in_the_table_and_json() {
        let mut report = report();
        report.stages[0].rolled_back = Some(StageRollback {
            to_commit: "0123456789abcdef".into(),
            reason: "IntegrationTests failed".into(),
        });
        let text = summary_text(&report, StagesStayUp::No);
        assert!(
            text.contains("Beta   Failed, rolled back to 0123456789ab"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["stages"][0]["rolledBack"]["toCommit"],
            "0123456789abcdef"
        );
        assert_eq!(
            json["stages"][0]["rolledBack"]["reason"],
            "IntegrationTests failed"
        );
    }

    #[test]
    fn the_printer_sends_each_line_as_an_event_to_subscribers() {
        let printer = Printer::quiet();
        let mut events = printer.subscribe();
        printer.action_start("Beta", "Deploy", "CloudFormation");
        printer.progress("Beta", "Deploy", "10% of traffic on version 2");
        match events.try_recv().unwrap() {
            Event::ActionStarted { stage, action, .. } => {
                assert_eq!((stage.as_str(), action.as_str()), ("Beta", "Deploy"))
            }
            other => panic!("unexpected {other:?}"),
        }
        let json = serde_json::to_value(events.try_recv().unwrap()).unwrap();
        assert_eq!(json["type"], "actionProgress");
        assert_eq!(json["text"], "10% of traffic on version 2");
    }

    #[test]
    fn the_json_result_says_a_working_tree_snapshot_was_rehearsed() {
        let mut report = report();
        report.rehearsed = Rehearsed::WorkingTree {
            head: "0123456789abcdef".into(),
            changed_files: 2,
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rehearsed"]["kind"], "workingTree");
        assert_eq!(json["rehearsed"]["head"], "0123456789abcdef");
        assert_eq!(json["rehearsed"]["changedFiles"], 2);
        assert_eq!(
            report.rehearsed.describe(&report.commit),
            "working tree snapshot of 0123456789ab + 2 changed files"
        );
    }
}
