//! Prod safety in the rehearsal: gradual deployment watched by alarms, and
//! stage rollback, with the real functions, on one rehearsal whose stages
//! persist across commits (as with `cargo rehearse --watch`).
//!
//! One scratch repository holds the commit under test (`good`) and, as its
//! children, three commits with a deliberate fault each, switched on by a
//! condition of app-sam.yaml (template changes only, so the functions' build
//! stays warm):
//! - `canary`: Prod's function gets a STAGE it refuses, so every request to
//!   the new version fails: the canary's alarms catch it during the shift;
//! - `gate`: Prod answers with a wrong `x-service-stage`, which no alarm
//!   sees but Prod's integration tests do, after the full shift;
//! - `gamma`: the same fault in Gamma only.
//!
//! The tests share that rehearsal (one build of `good`, one run of it to
//! Prod) and run one at a time, in any order: each starts from "every stage
//! ran a release that passed", which each one's rollback restores for Prod.
//! The time scale is fast (1 AWS minute = 200 ms) and ProdBakeMinutes is 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rehearse::report::Printer;
use rehearse::shift::LoadSettings;
use rehearse::traffic::TimeScale;
use rehearse::{ActionError, Options, Rehearsal, RunReport, Status};

/// The three tests below; the last one to finish stops the stages.
const TESTS: usize = 3;
static FINISHED: AtomicUsize = AtomicUsize::new(0);

/// One runtime for every test: the rehearsal's servers and processes live
/// on it between tests.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

struct Shared {
    _dir: tempfile::TempDir,
    rehearsal: Rehearsal,
    commits: BTreeMap<&'static str, String>,
}

static SHARED: tokio::sync::Mutex<Option<Shared>> = tokio::sync::Mutex::const_new(None);

const AUTHOR: [&str; 4] = ["-c", "user.email=test@example.com", "-c", "user.name=test"];

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn edit(repo: &Path, file: &str, from: &str, to: &str) {
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(from),
        "{file} no longer contains {from:?}: update this test"
    );
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

const CONDITIONS: &str = "Conditions:\n  IsProd: !Equals [!Ref Stage, prod]\n  IsGamma: !Equals [!Ref Stage, gamma]\n\nResources:\n";

/// A commit on top of `good` whose function gets `stage` as STAGE.
fn faulty_commit(repo: &Path, good: &str, name: &str, stage: &str) -> String {
    git(repo, &["checkout", "-q", "--detach", good]);
    edit(
        repo,
        "app-sam.yaml",
        "\nResources:\n",
        &format!("\n{CONDITIONS}"),
    );
    edit(
        repo,
        "app-sam.yaml",
        "STAGE: !Ref Stage",
        &format!("STAGE: {stage}"),
    );
    let mut commit = AUTHOR.to_vec();
    commit.extend(["commit", "-qam", name]);
    git(repo, &commit);
    git(repo, &["rev-parse", "HEAD"])
}

/// The scratch repository: the commit under test and the three faults.
fn scratch_repository() -> (tempfile::TempDir, PathBuf, BTreeMap<&'static str, String>) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let under_test = rehearse::source::snapshot_working_tree(&e2e::repo_root(), None)
        .expect("a snapshot of the working tree")
        .commit;
    let out = Command::new("sh")
        .arg("-c")
        .arg("git -C \"$1\" archive --format=tar \"$2\" | tar -x -C \"$3\"")
        .arg("sh")
        .arg(e2e::repo_root())
        .arg(&under_test)
        .arg(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "--all", "."]);
    let mut commit = AUTHOR.to_vec();
    commit.extend(["commit", "-qm", "the commit under test"]);
    git(&repo, &commit);
    let good = git(&repo, &["rev-parse", "HEAD"]);
    let mut commits = BTreeMap::from([("good", good.clone())]);
    // An empty STAGE: time-service refuses to start (every request fails).
    commits.insert(
        "canary",
        faulty_commit(
            &repo,
            &good,
            "prod refuses to start",
            "!If [IsProd, \"\", !Ref Stage]",
        ),
    );
    commits.insert(
        "gate",
        faulty_commit(
            &repo,
            &good,
            "prod answers with the wrong stage",
            "!If [IsProd, prod-broken, !Ref Stage]",
        ),
    );
    commits.insert(
        "gamma",
        faulty_commit(
            &repo,
            &good,
            "gamma answers with the wrong stage",
            "!If [IsGamma, gamma-broken, !Ref Stage]",
        ),
    );
    git(&repo, &["checkout", "-q", "main"]);
    (dir, repo, commits)
}

fn options(repo: &Path) -> Options {
    let main = e2e::repo_root();
    e2e::tool("cargo-lambda");
    let mut options = Options::for_repo(repo);
    options.approve = true;
    options.job_timeout = Duration::from_secs(60);
    options.target_dir = main.join("target");
    options.work_dir = main.join(".rehearsal");
    options.tools_dir = Some(main.join(".tools"));
    options.time_scale = TimeScale::millis_per_minute(200);
    options.load = LoadSettings {
        rate_per_second: 50,
        max_requests: 1_000,
    };
    options
        .parameters
        .insert("ProdBakeMinutes".into(), "1".into());
    options.printer = Printer::default();
    options
}

/// Counts the tests that finished; the last one stops the stages.
struct Finish;

impl Drop for Finish {
    fn drop(&mut self) {
        if FINISHED.fetch_add(1, Ordering::SeqCst) + 1 == TESTS {
            RUNTIME.block_on(async {
                if let Some(shared) = SHARED.lock().await.take() {
                    shared.rehearsal.shutdown().await;
                }
            });
        }
    }
}

/// The shared rehearsal, made (and `good` run to Prod) by the first test
/// that asks; held by one test at a time.
async fn shared() -> tokio::sync::MutexGuard<'static, Option<Shared>> {
    let mut guard = SHARED.lock().await;
    if guard.is_none() {
        let (dir, repo, commits) = scratch_repository();
        let rehearsal = Rehearsal::start(options(&repo))
            .await
            .expect("rehearsal starts");
        let report = rehearsal.run(&commits["good"]).await.unwrap();
        assert!(
            report.succeeded(),
            "the commit under test passes: {report:#?}"
        );
        *guard = Some(Shared {
            _dir: dir,
            rehearsal,
            commits,
        });
    }
    guard
}

async fn stage_header(url: &str) -> (u16, String) {
    let response = reqwest::get(format!("{url}time/Europe/London"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let stage = response
        .headers()
        .get("x-service-stage")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, stage)
}

/// 50 requests to `url`: every one answered 200 by `stage`.
async fn serves_only(url: &str, stage: &str) {
    for i in 0..50 {
        let (status, got) = stage_header(url).await;
        assert_eq!((status, got.as_str()), (200, stage), "request {i} to {url}");
    }
}

fn failed(report: &RunReport) -> (String, &ActionError) {
    let f = report
        .failed_action
        .as_ref()
        .unwrap_or_else(|| panic!("the run did not fail: {report:#?}"));
    let error = f
        .error
        .as_deref()
        .expect("a failed action carries its error");
    (format!("{}/{}", f.stage, f.action), error)
}

#[test]
fn a_canary_alarm_during_the_prod_shift_fails_the_deploy_naming_the_alarm_and_keeps_the_previous_version()
 {
    let _finish = Finish;
    RUNTIME.block_on(async {
        let guard = shared().await;
        let shared = guard.as_ref().expect("made by shared()");
        {
            let rehearsal = &shared.rehearsal;
            let before = rehearsal.alias_versions("TimeService-prod").await;
            let started = Instant::now();
            let report = rehearsal.run(&shared.commits["canary"]).await.unwrap();
            let (at, error) = failed(&report);
            assert_eq!(at, "Prod/Deploy", "{error}");
            let ActionError::AlarmDuringShift {
                alarms, old, new, ..
            } = error
            else {
                panic!("not an alarm during the shift: {error:?}");
            };
            assert!(
                alarms.iter().any(|a| a.starts_with("TimeService-prod-")),
                "names Prod's alarm: {alarms:?}"
            );
            assert!(error.to_string().contains(&alarms[0]), "{error}");
            assert_eq!(Some(old), before.get("TimeService-prod-time:live"));
            assert!(new > old);
            // The alias is back on the version it had, and Prod answers as
            // the previous commit does, on every request.
            assert_eq!(rehearsal.alias_versions("TimeService-prod").await, before);
            serves_only(&report.urls["TimeService-prod"], "prod").await;
            let prod = report.stage("Prod").unwrap();
            assert_eq!(prod.status, Status::Failed);
            let rollback = prod.rolled_back.as_ref().expect("Prod rolled back");
            assert_eq!(rollback.to_commit, shared.commits["good"]);
            assert!(started.elapsed() < Duration::from_secs(120));
        }
    });
}

#[test]
fn a_prod_gate_failure_after_the_full_shift_rolls_prod_back_to_the_previous_commit() {
    let _finish = Finish;
    RUNTIME.block_on(async {
        let guard = shared().await;
        let shared = guard.as_ref().expect("made by shared()");
        {
            let rehearsal = &shared.rehearsal;
            let report = rehearsal.run(&shared.commits["gate"]).await.unwrap();
            let (at, error) = failed(&report);
            assert_eq!(at, "Prod/IntegrationTests", "{error}");
            assert!(error.to_string().contains("x-service-stage"), "{error}");
            let deploy = report
                .stage("Prod")
                .unwrap()
                .actions
                .iter()
                .find(|a| a.name == "Deploy")
                .unwrap();
            assert_eq!(deploy.status, Status::Succeeded, "the shift completed");
            let prod = report.stage("Prod").unwrap();
            let rollback = prod.rolled_back.as_ref().expect("Prod rolled back");
            assert_eq!(rollback.to_commit, shared.commits["good"]);
            assert!(
                rollback.reason.contains("IntegrationTests"),
                "{}",
                rollback.reason
            );
            // The broken commit answered "prod-broken"; the previous one "prod".
            serves_only(&report.urls["TimeService-prod"], "prod").await;
        }
    });
}

#[test]
fn a_gamma_failure_rolls_gamma_back_and_leaves_prod_untouched() {
    let _finish = Finish;
    RUNTIME.block_on(async {
        let guard = shared().await;
        let shared = guard.as_ref().expect("made by shared()");
        {
            let rehearsal = &shared.rehearsal;
            let gamma_release = rehearsal.last_releases()["Gamma"].clone();
            let prod_before = rehearsal.world().stack("TimeService-prod").unwrap();
            let prod_versions = rehearsal.alias_versions("TimeService-prod").await;
            let report = rehearsal.run(&shared.commits["gamma"]).await.unwrap();
            let (at, error) = failed(&report);
            assert_eq!(at, "Gamma/IntegrationTests", "{error}");
            let gamma = report.stage("Gamma").unwrap();
            let rollback = gamma.rolled_back.as_ref().expect("Gamma rolled back");
            assert_eq!(rollback.to_commit, gamma_release);
            serves_only(&report.urls["TimeService-gamma"], "gamma").await;
            // Prod never ran: same stack update, same alias version.
            assert_eq!(report.stage("Prod").unwrap().status, Status::NotRun);
            let prod_after = rehearsal.world().stack("TimeService-prod").unwrap();
            assert_eq!(prod_after.updated, prod_before.updated);
            assert_eq!(
                rehearsal.alias_versions("TimeService-prod").await,
                prod_versions
            );
            serves_only(&report.urls["TimeService-prod"], "prod").await;
        }
    });
}
