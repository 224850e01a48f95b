//! The live view on a terminal: the pipeline as stages with their actions
//! and states, redrawn in place as the run's [`Event`]s arrive (and every
//! quarter second, for the running actions' elapsed time).
//!
//! [`render`] is a pure function of the [`RunView`], the time and the
//! terminal's size; [`LiveView`] feeds it events and draws its lines with
//! `indicatif` on any [`TermLike`] (the real terminal, or a fake in tests).
//! Notes print above the picture and stay; the picture of a finished run
//! stays on screen, and the final summary follows it.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::report::Event;
use crate::view::{ActionView, RunView, StageView, State};

/// The spinner's frames, one per 100 ms.
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// How a duration reads: "0.4 s", "12.3 s", "2 min 05 s".
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// `text` cut to `width` characters, ending in "…" when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

fn icon(state: State, now: Instant, started: Option<Instant>) -> char {
    match state {
        State::Pending => '○',
        State::Running => {
            let ms = started.map_or(0, |s| now.saturating_duration_since(s).as_millis());
            SPINNER[(ms / 100 % SPINNER.len() as u128) as usize]
        }
        State::Succeeded => '✔',
        State::Failed => '✘',
        State::RolledBack => '↩',
        State::NotRun => '–',
        State::Skipped => '↷',
    }
}

/// One line: the icon, the name padded to `pad`, the state and the time.
fn state_line(
    indent: &str,
    icon: char,
    name: &str,
    pad: usize,
    state: State,
    time: Option<Duration>,
) -> String {
    let time = time.map(duration).unwrap_or_default();
    let line = format!(
        "{indent}{icon} {name:<pad$}  {:<11} {time:>10}",
        state.label()
    );
    line.trim_end().to_string()
}

fn action_name(action: &ActionView) -> String {
    format!("{} ({})", action.name, action.provider)
}

/// The detail under an action: what it is doing while it runs, why it
/// failed, or a gate's summary.
fn action_detail(action: &ActionView) -> Option<&str> {
    match action.state {
        State::Running => action.progress.as_deref(),
        State::Failed => action.error.as_deref(),
        State::Succeeded if action.provider == "Lambda" => action.summary.as_deref(),
        _ => None,
    }
}

fn stage_lines(stage: &StageView, now: Instant, pad: usize, collapsed: bool) -> Vec<String> {
    let mut lines = vec![state_line(
        "  ",
        icon(stage.state, now, stage.started),
        &stage.name,
        pad + 4,
        stage.state,
        stage.elapsed(now),
    )];
    if let Some(rollback) = &stage.rolled_back {
        lines.push(format!(
            "        rolled back to {}: {}",
            &rollback.to_commit[..rollback.to_commit.len().min(12)],
            rollback.reason
        ));
    }
    if stage.state == State::Running
        && let Some(progress) = &stage.progress
    {
        lines.push(format!("        {}", one_line(progress)));
    }
    if collapsed {
        return lines;
    }
    for action in &stage.actions {
        lines.push(state_line(
            "    ",
            icon(action.state, now, action.started),
            &action_name(action),
            pad + 2,
            action.state,
            action.elapsed(now),
        ));
        if let Some(detail) = action_detail(action) {
            lines.push(format!("        {}", one_line(detail)));
        }
    }
    lines
}

/// Multi-line text (a build's tail) as one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The picture of a run, as lines no wider than `width`. When it would be
/// taller than `height`, the stages that succeeded show as one line each.
pub fn render(view: &RunView, now: Instant, width: u16, height: u16) -> Vec<String> {
    let width = if width == 0 { 80 } else { usize::from(width) };
    let pad = view
        .stages
        .iter()
        .flat_map(|s| {
            std::iter::once(s.name.chars().count().saturating_sub(2))
                .chain(s.actions.iter().map(|a| action_name(a).chars().count()))
        })
        .max()
        .unwrap_or(0)
        .min(40);
    let header = format!(
        "{} at {} ({}): {}, {}",
        view.pipeline,
        view.describe,
        view.subject,
        view.state.label(),
        duration(view.elapsed(now))
    );
    let draw = |collapse: bool| {
        let mut lines = vec![header.clone()];
        for stage in &view.stages {
            let collapsed = collapse && stage.state == State::Succeeded;
            lines.extend(stage_lines(stage, now, pad, collapsed));
        }
        lines
    };
    let mut lines = draw(false);
    if height > 0 && lines.len() > usize::from(height) {
        lines = draw(true);
    }
    lines.iter().map(|l| truncate(l, width)).collect()
}

/// What a [`LiveView`] needs besides its terminal.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Manual approvals ask on the terminal: stop drawing while one waits.
    pub prompt: bool,
    /// How often running actions' times are redrawn.
    pub tick: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            prompt: false,
            tick: Duration::from_millis(250),
        }
    }
}

enum Command {
    /// Draw every event received so far, leave the picture and answer.
    Settle(oneshot::Sender<()>),
}

/// Draws the runs a printer's events describe on a terminal, in place.
pub struct LiveView {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveView {
    /// Draws on `term` from now on. `events` come from `Printer::subscribe`.
    pub fn start<T>(events: broadcast::Receiver<Event>, term: T, options: LiveOptions) -> Self
    where
        T: TermLike + Clone + 'static,
    {
        let (commands, receiver) = mpsc::channel(4);
        let task = tokio::spawn(drive(events, receiver, term, options));
        Self { commands, task }
    }

    /// Waits until every event sent so far is drawn, and leaves the picture
    /// on screen (call before printing below it: the final summary).
    pub async fn settle(&self) {
        let (done, answer) = oneshot::channel();
        if self.commands.send(Command::Settle(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
        }
    }

    /// Settles and stops drawing.
    pub async fn stop(self) {
        self.settle().await;
        self.task.abort();
    }
}

struct Drawer<T> {
    term: T,
    options: LiveOptions,
    view: Option<RunView>,
    bar: Option<ProgressBar>,
    /// The picture is redrawn as events come (not yet left on screen).
    active: bool,
    /// An approval asks on the terminal: nothing is drawn until it ends.
    waiting_for: Option<(String, String)>,
}

impl<T: TermLike + Clone + 'static> Drawer<T> {
    fn new_bar(&self) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            None,
            ProgressDrawTarget::term_like(Box::new(self.term.clone())),
        );
        if let Ok(style) = ProgressStyle::with_template("{msg}") {
            bar.set_style(style);
        }
        bar
    }

    fn draw(&mut self) {
        if !self.active {
            return;
        }
        let Some(view) = &self.view else {
            return;
        };
        let lines = render(
            view,
            Instant::now(),
            self.term.width(),
            self.term.height().saturating_sub(1),
        );
        if self.bar.is_none() {
            self.bar = Some(self.new_bar());
        }
        if let Some(bar) = &self.bar {
            bar.set_message(lines.join("\n"));
        }
    }

    /// Leaves the picture as it is and draws the next one below it.
    fn leave(&mut self) {
        self.draw();
        self.active = false;
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    fn print(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = self.term.write_line(text);
                let _ = self.term.flush();
            }
        }
    }

    fn handle(&mut self, event: &Event) {
        let now = Instant::now();
        match event {
            Event::RunStarted { .. } => {
                self.leave();
                self.view = RunView::from_start(event, now);
                self.active = true;
            }
            Event::Note { text } => {
                if let Some(view) = &mut self.view {
                    view.apply(event, now);
                }
                self.print(text);
                return;
            }
            Event::ActionStarted {
                stage,
                action,
                provider,
            } if provider == "Manual" && self.options.prompt => {
                if let Some(view) = &mut self.view {
                    view.apply(event, now);
                }
                self.leave();
                self.waiting_for = Some((stage.clone(), action.clone()));
                return;
            }
            Event::ActionEnded { stage, report }
                if self.waiting_for.as_ref() == Some(&(stage.clone(), report.name.clone())) =>
            {
                self.waiting_for = None;
                self.active = true;
                if let Some(view) = &mut self.view {
                    view.apply(event, now);
                }
            }
            Event::RunEnded { .. } => {
                self.waiting_for = None;
                if let Some(view) = &mut self.view {
                    view.apply(event, now);
                }
                self.leave();
                return;
            }
            _ => {
                if let Some(view) = &mut self.view {
                    view.apply(event, now);
                }
            }
        }
        self.draw();
    }
}

async fn drive<T: TermLike + Clone + 'static>(
    mut events: broadcast::Receiver<Event>,
    mut commands: mpsc::Receiver<Command>,
    term: T,
    options: LiveOptions,
) {
    let mut ticks = tokio::time::interval(options.tick.max(Duration::from_millis(50)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut drawer = Drawer {
        term,
        options,
        view: None,
        bar: None,
        active: false,
        waiting_for: None,
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => drawer.handle(&event),
                // Missed some: the next ones (and the run's end) still draw.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            command = commands.recv() => match command {
                Some(Command::Settle(done)) => {
                    while let Ok(event) = events.try_recv() {
                        drawer.handle(&event);
                    }
                    drawer.leave();
                    let _ = done.send(());
                }
                None => break,
            },
            _ = ticks.tick() => {
                drawer.draw();
            }
        }
    }
    drawer.leave();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::report::{Printer, Rehearsed, StageRollback, Status};
    use crate::view::tests::{action, end, run_end, stage_end, start, started};

    fn t0() -> Instant {
        Instant::now()
    }

    fn text(lines: &[String]) -> String {
        lines.join("\n")
    }

    #[test]
    fn a_new_run_draws_every_stage_and_action_as_pending() {
        let now = t0();
        let lines = render(&started(now), now, 100, 50);
        assert_eq!(
            lines[0],
            "Pipeline at 0123456789ab (a change): running, 0.0 s"
        );
        for name in ["Source", "Build", "Beta", "Prod"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("  ○ {name} ")) && l.ends_with("pending")),
                "{name}: {}",
                text(&lines)
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("    ○ Gate (Lambda) ") && l.ends_with("pending")),
            "{}",
            text(&lines)
        );
    }

    #[test]
    fn a_running_action_shows_its_elapsed_time_and_latest_progress_indented() {
        let now = t0();
        let mut view = started(now);
        view.apply(&start("Build", "Build"), now);
        view.apply(
            &Event::ActionProgress {
                stage: "Build".into(),
                action: "Build".into(),
                text: "building for 10 s; cargo: Compiling serde v1.0.228".into(),
            },
            now,
        );
        let lines = render(&view, now + Duration::from_millis(12_300), 100, 50);
        let at = lines
            .iter()
            .position(|l| l.starts_with("    ") && l.contains("Build (CodeBuild)"))
            .unwrap();
        assert!(lines[at].contains("running"), "{}", lines[at]);
        assert!(lines[at].ends_with("12.3 s"), "{}", lines[at]);
        assert_eq!(
            lines[at + 1],
            "        building for 10 s; cargo: Compiling serde v1.0.228"
        );
    }

    #[test]
    fn a_finished_action_shows_its_duration_and_a_gate_its_summary() {
        let now = t0();
        let mut view = started(now);
        let mut gate = action("Gate", "Lambda", Status::Succeeded, 1500);
        gate.summary = Some("10 of 10 checks passed".into());
        view.apply(&end("Beta", gate), now);
        let lines = render(&view, now, 100, 50);
        let at = lines
            .iter()
            .position(|l| l.contains("✔ Gate (Lambda)"))
            .unwrap();
        assert!(lines[at].contains("succeeded") && lines[at].ends_with("1.5 s"));
        assert_eq!(lines[at + 1], "        10 of 10 checks passed");
    }

    #[test]
    fn a_failed_action_shows_its_error_on_one_indented_line() {
        let now = t0();
        let mut view = started(now);
        let mut deploy = action("Deploy", "CloudFormation", Status::Failed, 40);
        deploy.error = Some("the template\n  does not resolve".into());
        view.apply(&end("Beta", deploy), now);
        let lines = render(&view, now, 100, 50);
        let at = lines.iter().position(|l| l.contains("✘ Deploy")).unwrap();
        assert!(lines[at].contains("failed"));
        assert_eq!(lines[at + 1], "        the template does not resolve");
    }

    #[test]
    fn a_rolled_back_stage_says_to_which_commit_and_why() {
        let now = t0();
        let mut view = started(now);
        view.apply(
            &stage_end(
                "Beta",
                Status::Failed,
                vec![],
                Some(StageRollback {
                    to_commit: "fedcba9876543210".into(),
                    reason: "Gate failed".into(),
                }),
            ),
            now,
        );
        let lines = render(&view, now, 100, 50);
        let at = lines.iter().position(|l| l.contains("↩ Beta")).unwrap();
        assert!(lines[at].contains("rolled back"), "{}", lines[at]);
        assert_eq!(
            lines[at + 1],
            "        rolled back to fedcba987654: Gate failed"
        );
    }

    #[test]
    fn a_running_stage_shows_the_progress_of_its_own_work_under_its_name() {
        let now = t0();
        let mut view = started(now);
        view.apply(&start("Prod", "Deploy"), now);
        view.apply(
            &Event::ActionProgress {
                stage: "Prod".into(),
                action: "OnSuccess".into(),
                text: "baking: 2 of 3 alarms OK".into(),
            },
            now,
        );
        let lines = render(&view, now, 100, 50);
        let at = lines.iter().position(|l| l.contains(" Prod ")).unwrap();
        assert_eq!(lines[at + 1], "        OnSuccess: baking: 2 of 3 alarms OK");
    }

    #[test]
    fn stages_never_reached_show_as_not_run_at_the_end() {
        let now = t0();
        let mut view = started(now);
        view.apply(
            &run_end(
                vec![("Beta", Status::Failed), ("Prod", Status::NotRun)],
                Status::Failed,
                &[],
            ),
            now,
        );
        let lines = render(&view, now, 100, 50);
        assert!(lines[0].ends_with("failed, 9.0 s"), "{}", lines[0]);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("  – Prod") && l.ends_with("not run")),
            "{}",
            text(&lines)
        );
    }

    #[test]
    fn no_line_is_wider_than_the_terminal() {
        let now = t0();
        let mut view = started(now);
        view.apply(&start("Build", "Build"), now);
        view.apply(
            &Event::ActionProgress {
                stage: "Build".into(),
                action: "Build".into(),
                text: "x".repeat(300),
            },
            now,
        );
        let lines = render(&view, now, 40, 50);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:#?}");
        assert!(lines.iter().any(|l| l.ends_with('…')), "{lines:#?}");
    }

    #[test]
    fn a_short_terminal_folds_the_stages_that_succeeded() {
        let now = t0();
        let mut view = started(now);
        view.apply(
            &stage_end(
                "Source",
                Status::Succeeded,
                vec![action("Source", "CodeCommit", Status::Succeeded, 100)],
                None,
            ),
            now,
        );
        let tall = render(&view, now, 100, 50);
        let short = render(&view, now, 100, 8);
        assert!(tall.iter().any(|l| l.contains("Source (CodeCommit)")));
        assert!(!short.iter().any(|l| l.contains("Source (CodeCommit)")));
        assert!(short.iter().any(|l| l.starts_with("  ✔ Source")));
    }

    #[test]
    fn durations_read_in_seconds_then_minutes() {
        assert_eq!(duration(Duration::from_millis(400)), "0.4 s");
        assert_eq!(duration(Duration::from_millis(59_940)), "59.9 s");
        assert_eq!(duration(Duration::from_secs(125)), "2 min 05 s");
    }

    /// A terminal that keeps what is on its screen, as the cursor moves and
    /// lines are cleared and written.
    #[derive(Debug, Clone, Default)]
    struct Screen {
        state: Arc<Mutex<ScreenState>>,
    }

    #[derive(Debug, Default)]
    struct ScreenState {
        rows: Vec<String>,
        row: usize,
        col: usize,
    }

    impl ScreenState {
        const WIDTH: usize = 72;

        /// Writes as a terminal does: `\r` and `\n` move the cursor, and a
        /// character past the last column wraps to the next row first
        /// (the deferred wrap indicatif's padding relies on).
        fn write(&mut self, text: &str) {
            for c in text.chars() {
                match c {
                    '\r' => self.col = 0,
                    '\n' => {
                        self.row += 1;
                        self.col = 0;
                    }
                    c => {
                        if self.col >= Self::WIDTH {
                            self.row += 1;
                            self.col = 0;
                        }
                        while self.rows.len() <= self.row {
                            self.rows.push(String::new());
                        }
                        let mut chars: Vec<char> = self.rows[self.row].chars().collect();
                        while chars.len() <= self.col {
                            chars.push(' ');
                        }
                        chars[self.col] = c;
                        self.rows[self.row] = chars.into_iter().collect();
                        self.col += 1;
                    }
                }
            }
        }
    }

    impl Screen {
        fn lines(&self) -> Vec<String> {
            let state = self.state.lock().unwrap();
            let mut rows: Vec<String> = state
                .rows
                .iter()
                .map(|r| r.trim_end().to_string())
                .collect();
            while rows.last().is_some_and(|r| r.is_empty()) {
                rows.pop();
            }
            rows
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            ScreenState::WIDTH as u16
        }
        fn height(&self) -> u16 {
            40
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            let mut s = self.state.lock().unwrap();
            s.row = s.row.saturating_sub(n);
            Ok(())
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.state.lock().unwrap().row += n;
            Ok(())
        }
        fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
            self.state.lock().unwrap().col += n;
            Ok(())
        }
        fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
            let mut s = self.state.lock().unwrap();
            s.col = s.col.saturating_sub(n);
            Ok(())
        }
        fn write_line(&self, text: &str) -> std::io::Result<()> {
            let mut s = self.state.lock().unwrap();
            s.write(text);
            s.write("\n");
            Ok(())
        }
        fn write_str(&self, text: &str) -> std::io::Result<()> {
            self.state.lock().unwrap().write(text);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            let mut s = self.state.lock().unwrap();
            let row = s.row;
            if let Some(line) = s.rows.get_mut(row) {
                line.clear();
            }
            s.col = 0;
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn plan_events(printer: &Printer) {
        printer.run_start(
            "Pipeline",
            "0123456789abcdef",
            &Rehearsed::Commit,
            "a change",
            crate::view::tests::plan(),
        );
    }

    #[tokio::test]
    async fn the_live_view_redraws_the_picture_in_place_on_a_terminal() {
        let printer = Printer::quiet();
        let screen = Screen::default();
        let live = LiveView::start(printer.subscribe(), screen.clone(), LiveOptions::default());
        plan_events(&printer);
        printer.action_start("Source", "Source", "CodeCommit");
        printer.action_end(
            "Source",
            &action("Source", "CodeCommit", Status::Succeeded, 120),
        );
        printer.action_start("Build", "Build", "CodeBuild");
        printer.progress("Build", "Build", "building for 10 s");
        live.settle().await;
        let lines = screen.lines();
        let headers = lines
            .iter()
            .filter(|l| l.starts_with("Pipeline at "))
            .count();
        assert_eq!(headers, 1, "drawn once, in place: {lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("    ✔ Source (CodeCommit)")),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l == "        building for 10 s"),
            "{lines:#?}"
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 72), "{lines:#?}");
        live.stop().await;
    }

    #[tokio::test]
    async fn notes_print_above_the_picture_and_stay() {
        let printer = Printer::quiet();
        let screen = Screen::default();
        let live = LiveView::start(printer.subscribe(), screen.clone(), LiveOptions::default());
        plan_events(&printer);
        printer.note("2 files have uncommitted changes; not rehearsed");
        printer.action_start("Source", "Source", "CodeCommit");
        live.settle().await;
        let lines = screen.lines();
        assert_eq!(lines[0], "2 files have uncommitted changes; not rehearsed");
        assert!(lines[1].starts_with("Pipeline at "), "{lines:#?}");
        live.stop().await;
    }

    #[tokio::test]
    async fn the_next_run_draws_below_the_finished_one() {
        let printer = Printer::quiet();
        let screen = Screen::default();
        let live = LiveView::start(printer.subscribe(), screen.clone(), LiveOptions::default());
        plan_events(&printer);
        live.settle().await;
        plan_events(&printer);
        live.settle().await;
        let headers = screen
            .lines()
            .iter()
            .filter(|l| l.starts_with("Pipeline at "))
            .count();
        assert_eq!(headers, 2, "{:#?}", screen.lines());
        live.stop().await;
    }
}
