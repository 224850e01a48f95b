//! `cargo rehearse`: runs this repository's pipeline (pipeline.yaml) on this
//! machine, stage by stage, with the real function binaries.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rehearse::console::{Console, ConsoleOptions};
use rehearse::live::{LiveOptions, LiveView};
use rehearse::parameters_file;
use rehearse::report::{Printer, StagesStayUp};
use rehearse::{Options, Rehearsal, RunReport};

/// Rehearse the CodePipeline pipeline of pipeline.yaml locally: Source, Build,
/// CloudFormation deploys as local stacks, Lambda test gates, approvals.
#[derive(Debug, Parser)]
#[command(name = "cargo rehearse", bin_name = "cargo rehearse", version)]
struct Cli {
    /// The git repository to take commits from (default: the one holding the current directory).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// The commit, tag or branch to rehearse (default: the tip of the Source action's BranchName).
    #[arg(long)]
    rev: Option<String>,
    /// Keep running and rehearse every new commit on the branch, as a push would start the pipeline.
    /// The stages persist between commits: a new commit updates the running stacks (new versions
    /// behind their aliases), and a stage that fails rolls back to its last successful release.
    /// A new `cargo rehearse` starts from empty stages.
    #[arg(long)]
    watch: bool,
    /// Rehearse the working tree as it is (uncommitted changes and new files included) instead of a commit.
    #[arg(long, conflicts_with_all = ["watch", "rev"])]
    working_tree: bool,
    /// Approve manual approval actions without asking.
    #[arg(long)]
    approve: bool,
    /// Stop before this stage (for example `--until Prod`).
    #[arg(long, value_name = "STAGE")]
    until: Option<String>,
    /// Leave the deployed stages running until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Print a line per action even on a terminal, instead of the live pipeline view.
    #[arg(long)]
    no_live: bool,
    /// Port of the local console page served with --keep or --watch (127.0.0.1; 0: any free port).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    console_port: u16,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Seconds a Lambda invoke action waits for its job's result.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    job_timeout: u64,
    /// Override a pipeline.yaml parameter (repeatable), e.g. `--parameter ServiceName=Clock`.
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    parameters: Vec<(String, String)>,
    /// Read pipeline.yaml parameters from a JSON file, in a format `aws cloudformation deploy
    /// --parameter-overrides file://FILE` reads: [{"ParameterKey": ..., "ParameterValue": ...}],
    /// {"Parameters": {...}} or ["NAME=VALUE"]. --parameter wins over the file.
    #[arg(long, value_name = "FILE")]
    parameters_file: Option<PathBuf>,
    /// Rehearse the app whose app-sam.yaml and test-sam.yaml are in this directory of the
    /// repository (the pipeline's AppDirectory parameter), e.g. `--app examples/orders`; its
    /// pipeline-parameters.json, if any, is read as with --parameters-file.
    #[arg(long, value_name = "DIR")]
    app: Option<String>,
    /// The pipeline template, relative to the repository.
    #[arg(long, default_value = "pipeline.yaml")]
    pipeline: String,
    /// Architecture to build for (default: this machine's).
    #[arg(long, value_parser = ["x86_64", "arm64"])]
    arch: Option<String>,
    /// Cargo target directory for the build (default: $CARGO_TARGET_DIR or the repository's target/).
    #[arg(long, env = "CARGO_TARGET_DIR")]
    target_dir: Option<PathBuf>,
    /// Where checkouts, artifacts and function logs go (default: <repo>/.rehearsal).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// The pinned tools scripts/build.sh and moto need (default: <repo>/.tools, from scripts/setup-tools.sh rehearsal).
    #[arg(long)]
    tools_dir: Option<PathBuf>,
    /// Seconds between progress lines of a long action (the build, a gate waiting for its job's result).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS", value_parser = parse_seconds)]
    progress_interval: f64,
    /// Seconds between checks for new commits with --watch.
    #[arg(long, default_value_t = 2)]
    poll_interval: u64,
    /// Wall-clock seconds one AWS minute lasts in traffic shifts (DeploymentPreference), alarm
    /// periods and bakes (WaitTime): 1 runs Canary10Percent5Minutes in 5 s; 60 is real time.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS", value_parser = parse_minute_seconds)]
    minute_seconds: f64,
    /// The time a stage's deployment window (a BeforeEntry DeploymentWindow
    /// rule) is checked at, as RFC 3339 (2026-12-07T09:30:00+01:00);
    /// default: the clock.
    #[arg(long, value_name = "RFC3339", value_parser = parse_now)]
    now: Option<chrono::DateTime<chrono::Utc>>,
    /// Log what the local servers do (on stderr); RUST_LOG works too.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.1 => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds of at least 0.1"
        )),
    }
}

fn parse_now(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| format!("{e}: give a time as RFC 3339, e.g. 2026-12-07T09:30:00Z"))
}

fn parse_minute_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.01..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0.01 and 3600"
        )),
    }
}

/// The pipeline's parameters: the app directory's file (`--app`), then
/// `--parameters-file`, then each `--parameter`, later ones winning.
fn pipeline_parameters(
    cli: &Cli,
    repo: &std::path::Path,
) -> Result<BTreeMap<String, String>, String> {
    let mut parameters = BTreeMap::new();
    if let Some(app) = &cli.app {
        let dir = repo.join(app);
        if !dir.join("app-sam.yaml").is_file() {
            return Err(format!(
                "--app {app}: {} has no app-sam.yaml (give the directory of the app's templates, relative to the repository)",
                dir.display()
            ));
        }
        let file = dir.join(parameters_file::APP_PARAMETERS_FILE);
        if file.is_file() {
            parameters.extend(parameters_file::read(&file)?);
        }
        parameters.insert(
            "AppDirectory".to_string(),
            app.trim_end_matches('/').to_string(),
        );
    }
    if let Some(file) = &cli.parameters_file {
        parameters.extend(parameters_file::read(file)?);
    }
    parameters.extend(cli.parameters.iter().cloned());
    Ok(parameters)
}

fn repository_root() -> PathBuf {
    std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| PathBuf::from("."))
}

fn write_json(path: &PathBuf, report: &RunReport) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if cli.verbose { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();

    let repo = cli.repo.clone().unwrap_or_else(repository_root);
    let repo = repo.canonicalize().unwrap_or(repo);
    let mut options = Options::for_repo(&repo);
    options.rev = cli.rev.clone();
    options.pipeline_file = cli.pipeline.clone();
    options.parameters = match pipeline_parameters(&cli, &repo) {
        Ok(parameters) => parameters,
        Err(e) => {
            eprintln!("rehearse: {e}");
            return ExitCode::from(2);
        }
    };
    options.approve = cli.approve;
    options.working_tree = cli.working_tree;
    options.progress_interval = Duration::from_secs_f64(cli.progress_interval);
    options.now = cli.now;
    options.time_scale =
        rehearse::traffic::TimeScale::new(Duration::from_secs_f64(cli.minute_seconds));
    options.until = cli.until.clone();
    options.job_timeout = Duration::from_secs(cli.job_timeout);
    if let Some(arch) = &cli.arch {
        options.arch = arch.clone();
    }
    if let Some(dir) = &cli.target_dir {
        options.target_dir = dir.clone();
    }
    if let Some(dir) = &cli.tools_dir {
        options.tools_dir = Some(dir.clone());
    }
    if let Some(dir) = &cli.work_dir {
        options.work_dir = dir.clone();
    }
    options.prompt = std::io::stdin().is_terminal();
    // On a terminal the live view draws the run; the lines are for the rest.
    let live = !cli.no_live && std::io::stdout().is_terminal();
    let printer = Printer::new(live);
    options.printer = printer.clone();
    let console_page = if cli.keep || cli.watch {
        let console_options = ConsoleOptions {
            port: cli.console_port,
            work_dir: options.work_dir.clone(),
        };
        match Console::start(console_options, printer.subscribe()).await {
            Ok(console_page) => {
                println!("Console: {} (the pipeline as a page)", console_page.url());
                Some(console_page)
            }
            Err(e) => {
                eprintln!("rehearse: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let live_view = live.then(|| {
        let live_options = LiveOptions {
            prompt: options.prompt && !options.approve,
            ..LiveOptions::default()
        };
        LiveView::start(printer.subscribe(), console::Term::stdout(), live_options)
    });

    let rehearsal = match Rehearsal::start(options).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rehearse: {e}");
            return ExitCode::from(2);
        }
    };

    let mut last_commit: Option<String> = None;
    let mut last_ok = true;
    loop {
        let commit = match rehearsal.source_commit() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("rehearse: {e}");
                return ExitCode::from(2);
            }
        };
        if last_commit.as_deref() != Some(commit.as_str()) {
            let result = rehearsal.run(&commit).await;
            if let Some(live_view) = &live_view {
                live_view.settle().await;
            }
            match result {
                Ok(report) => {
                    let stay_up = if cli.keep || cli.watch {
                        StagesStayUp::Yes
                    } else {
                        StagesStayUp::No
                    };
                    Printer::default().summary(&report, stay_up);
                    if let Some(path) = &cli.json
                        && let Err(e) = write_json(path, &report)
                    {
                        eprintln!("rehearse: {e}");
                    }
                    last_ok = report.succeeded();
                }
                Err(e) => {
                    eprintln!("rehearse: {e}");
                    if !cli.watch {
                        rehearsal.shutdown().await;
                        return ExitCode::from(2);
                    }
                    last_ok = false;
                }
            }
            last_commit = Some(commit);
            if cli.watch {
                println!("Watching for new commits (Ctrl-C to stop)...");
            }
        }
        if !cli.watch {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(cli.poll_interval)) => {}
        }
    }

    if cli.keep && !cli.watch {
        let urls = rehearsal.urls().await;
        if !urls.is_empty() {
            let example = urls
                .iter()
                .find(|(stack, _)| stack.ends_with("-prod"))
                .or_else(|| urls.iter().next())
                .map(|(_, url)| url.as_str())
                .unwrap_or_default();
            println!("Stages stay up until Ctrl-C; the API: {example}");
            if let Some(console_page) = &console_page {
                println!("Console: {}", console_page.url());
            }
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    rehearsal.shutdown().await;
    if let Some(live_view) = live_view {
        live_view.stop().await;
    }
    drop(console_page);
    if last_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
