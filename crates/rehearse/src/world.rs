//! The local "AWS account": deployed stacks, functions by name, and the
//! CodePipeline jobs waiting for a result. The local endpoint answers the
//! functions' AWS calls from here; the pipeline executor fills it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::changeset::ResourceChange;
use crate::ids;
use crate::runtime::{FunctionError, FunctionHost};

/// What DescribeStacks tells about a local stack.
#[derive(Debug, Clone)]
pub struct StackRecord {
    pub name: String,
    pub stack_id: String,
    pub created: DateTime<Utc>,
    pub updated: Option<DateTime<Utc>>,
    pub status: String,
    pub parameters: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
}

impl StackRecord {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            stack_id: format!(
                "arn:aws:cloudformation:{}:{}:stack/{name}/{}",
                ids::REGION,
                ids::ACCOUNT_ID,
                ids::uuid()
            ),
            created: Utc::now(),
            updated: None,
            status: "CREATE_COMPLETE".to_string(),
            parameters: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }
}

/// A change set made by a `CHANGE_SET_REPLACE` action: what
/// DescribeChangeSet tells about it, and what executing it deploys.
#[derive(Debug, Clone)]
pub struct ChangeSetRecord {
    pub stack_name: String,
    pub change_set_name: String,
    pub change_set_id: String,
    /// The stack's id; for a stack that does not exist yet, the id it gets
    /// (CloudFormation creates it in `REVIEW_IN_PROGRESS`).
    pub stack_id: String,
    pub created: DateTime<Utc>,
    /// `CREATE_COMPLETE`, or `FAILED` (with `status_reason`) when nothing
    /// would change.
    pub status: String,
    pub status_reason: Option<String>,
    /// `AVAILABLE`, or `UNAVAILABLE` for a failed change set.
    pub execution_status: String,
    /// `CREATE` (a new stack) or `UPDATE`.
    pub change_set_type: String,
    pub capabilities: Vec<String>,
    /// Parameter values (defaults applied).
    pub parameters: BTreeMap<String, String>,
    pub changes: Vec<ResourceChange>,
    /// What executing it deploys.
    pub template: PathBuf,
    pub overrides: BTreeMap<String, String>,
}

impl ChangeSetRecord {
    /// Whether it has nothing to do (FAILED for want of changes).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// The result a function reported for a CodePipeline job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Succeeded {
        summary: Option<String>,
        /// `outputVariables` (empty when none were sent).
        variables: BTreeMap<String, String>,
    },
    Failed {
        /// `failureDetails.type`: JobFailed, ConfigurationError, ...
        kind: String,
        message: String,
    },
}

/// Why a job report is refused, with the AWS error code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobReportError {
    #[error("JobNotFoundException: no job with id {0} was started by this rehearsal")]
    NotFound(String),
    #[error(
        "InvalidJobStateException: job {0} is no longer in progress (it already has a result or timed out)"
    )]
    NotInProgress(String),
}

/// A function invocation that failed in the background (`InvocationType: Event`).
#[derive(Debug, Clone)]
pub struct AsyncFailure {
    pub function: String,
    pub error: FunctionError,
}

#[derive(Default)]
pub struct World {
    stacks: RwLock<BTreeMap<String, StackRecord>>,
    functions: RwLock<HashMap<String, Arc<FunctionHost>>>,
    jobs: Mutex<HashMap<String, Option<oneshot::Sender<JobResult>>>>,
    change_sets: RwLock<BTreeMap<(String, String), ChangeSetRecord>>,
    async_failures: Mutex<Vec<AsyncFailure>>,
}

impl World {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn put_stack(&self, record: StackRecord) {
        self.stacks
            .write()
            .expect("stacks poisoned")
            .insert(record.name.clone(), record);
    }

    pub fn remove_stack(&self, name: &str) -> Option<StackRecord> {
        self.stacks.write().expect("stacks poisoned").remove(name)
    }

    /// A stack by name or stack id, as DescribeStacks accepts either.
    pub fn stack(&self, name_or_id: &str) -> Option<StackRecord> {
        let stacks = self.stacks.read().expect("stacks poisoned");
        stacks
            .get(name_or_id)
            .or_else(|| stacks.values().find(|s| s.stack_id == name_or_id))
            .cloned()
    }

    pub fn stacks(&self) -> Vec<StackRecord> {
        self.stacks
            .read()
            .expect("stacks poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Creates a change set, replacing one of the same name on the same
    /// stack (CHANGE_SET_REPLACE).
    pub fn put_change_set(&self, record: ChangeSetRecord) {
        self.change_sets
            .write()
            .expect("change sets poisoned")
            .insert(
                (record.stack_name.clone(), record.change_set_name.clone()),
                record,
            );
    }

    /// A change set by stack (name or id) and change set (name or ARN), as
    /// DescribeChangeSet accepts them.
    pub fn change_set(&self, stack: Option<&str>, change_set: &str) -> Option<ChangeSetRecord> {
        let sets = self.change_sets.read().expect("change sets poisoned");
        sets.values()
            .find(|c| {
                c.change_set_id == change_set
                    || (c.change_set_name == change_set
                        && stack.is_some_and(|s| s == c.stack_name || s == c.stack_id))
            })
            .cloned()
    }

    /// Removes a change set (it was executed: CloudFormation deletes a
    /// stack's change sets once one of them runs).
    pub fn take_change_set(&self, stack: &str, change_set: &str) -> Option<ChangeSetRecord> {
        self.change_sets
            .write()
            .expect("change sets poisoned")
            .remove(&(stack.to_string(), change_set.to_string()))
    }

    pub fn put_function(&self, host: Arc<FunctionHost>) {
        self.functions
            .write()
            .expect("functions poisoned")
            .insert(host.name().to_string(), host);
    }

    pub fn remove_function(&self, name: &str) -> Option<Arc<FunctionHost>> {
        self.functions
            .write()
            .expect("functions poisoned")
            .remove(name)
    }

    /// A function by name, partial ARN or ARN.
    pub fn function(&self, name_or_arn: &str) -> Option<Arc<FunctionHost>> {
        self.functions
            .read()
            .expect("functions poisoned")
            .get(ids::function_name_from(name_or_arn))
            .cloned()
    }

    /// Registers a new job and returns where its result will arrive.
    pub fn start_job(&self, id: &str) -> oneshot::Receiver<JobResult> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .lock()
            .expect("jobs poisoned")
            .insert(id.to_string(), Some(tx));
        rx
    }

    /// Ends a job that got no result in time: later reports are refused.
    pub fn expire_job(&self, id: &str) {
        if let Some(slot) = self.jobs.lock().expect("jobs poisoned").get_mut(id) {
            slot.take();
        }
    }

    /// Records a job's result (PutJobSuccessResult / PutJobFailureResult).
    pub fn report_job(&self, id: &str, result: JobResult) -> Result<(), JobReportError> {
        let mut jobs = self.jobs.lock().expect("jobs poisoned");
        let slot = jobs
            .get_mut(id)
            .ok_or_else(|| JobReportError::NotFound(id.to_string()))?;
        let sender = slot
            .take()
            .ok_or_else(|| JobReportError::NotInProgress(id.to_string()))?;
        // The waiter may have gone (the action was cancelled): the job is
        // still finished as far as CodePipeline is concerned.
        let _ = sender.send(result);
        Ok(())
    }

    pub fn record_async_failure(&self, failure: AsyncFailure) {
        self.async_failures
            .lock()
            .expect("failures poisoned")
            .push(failure);
    }

    /// Background invocation failures recorded since `since` (an index
    /// returned by [`World::async_failure_mark`]).
    pub fn async_failures_since(&self, since: usize) -> Vec<AsyncFailure> {
        let failures = self.async_failures.lock().expect("failures poisoned");
        failures.get(since..).unwrap_or_default().to_vec()
    }

    pub fn async_failure_mark(&self) -> usize {
        self.async_failures.lock().expect("failures poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_takes_exactly_one_report() {
        let world = World::new();
        let mut rx = world.start_job("j1");
        world
            .report_job(
                "j1",
                JobResult::Succeeded {
                    summary: None,
                    variables: BTreeMap::new(),
                },
            )
            .unwrap();
        assert_eq!(
            rx.try_recv().unwrap(),
            JobResult::Succeeded {
                summary: None,
                variables: BTreeMap::new()
            }
        );
        assert_eq!(
            world.report_job(
                "j1",
                JobResult::Succeeded {
                    summary: None,
                    variables: BTreeMap::new()
                }
            ),
            Err(JobReportError::NotInProgress("j1".into()))
        );
    }

    #[test]
    fn reports_for_unknown_jobs_are_refused() {
        let world = World::new();
        assert_eq!(
            world.report_job(
                "nope",
                JobResult::Succeeded {
                    summary: None,
                    variables: BTreeMap::new()
                }
            ),
            Err(JobReportError::NotFound("nope".into()))
        );
    }

    #[test]
    fn an_expired_job_refuses_late_reports() {
        let world = World::new();
        let _rx = world.start_job("j2");
        world.expire_job("j2");
        assert!(matches!(
            world.report_job(
                "j2",
                JobResult::Succeeded {
                    summary: None,
                    variables: BTreeMap::new()
                }
            ),
            Err(JobReportError::NotInProgress(_))
        ));
    }

    #[test]
    fn stacks_are_found_by_name_or_id() {
        let world = World::new();
        let record = StackRecord::new("svc-beta");
        let id = record.stack_id.clone();
        world.put_stack(record);
        assert_eq!(world.stack("svc-beta").unwrap().stack_id, id);
        assert_eq!(world.stack(&id).unwrap().name, "svc-beta");
        assert!(world.stack("svc-gamma").is_none());
    }
}
