//! Gradual deployment in the rehearsal: an alias's local versions, what the
//! stage's gateway observes (the metrics CloudWatch would hold), the traffic
//! shift that [`crate::traffic`] schedules, watched by the alarms that
//! [`crate::alarms`] evaluates, and the small synthetic load that gives a
//! local stage (which has no users) something to measure.
//!
//! A function with `AutoPublishAlias` gets a new [`Version`] (its own
//! process) on every deploy. Its [`Alias`] routes each request to the old or
//! the new version by the alias's weight ([`AliasRouting`] and the
//! deterministic [`VersionChooser`]). [`run_shift`] moves the weight on the
//! `DeploymentPreference`'s schedule, time-scaled, and rolls the alias back
//! to the old version when an alarm of the preference enters `ALARM`, as
//! CodeDeploy does ("Working with deployment configurations in CodeDeploy",
//! AWS CodeDeploy User Guide; "Deploying serverless applications gradually
//! with AWS SAM", AWS SAM Developer Guide).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::alarms::{AlarmEvaluator, AlarmRule, AlarmState, MetricId, Metrics};
use crate::runtime::FunctionHost;
use crate::traffic::{AliasRouting, DeploymentType, TimeScale, VersionChooser};

/// One published version of a function: its number and its process.
#[derive(Debug)]
pub struct Version {
    pub number: u32,
    pub host: Arc<FunctionHost>,
}

/// A function alias (`AutoPublishAlias`): the version(s) it points to and
/// the weight of the new one during a shift. Outside a shift both sides are
/// the same version.
#[derive(Debug)]
pub struct Alias {
    pub function: String,
    pub name: String,
    routing: RwLock<AliasRouting<Arc<Version>>>,
    chooser: VersionChooser,
    next_version: AtomicU32,
}

impl Alias {
    /// A new alias on version 1, served by `host`.
    pub fn new(function: &str, name: &str, host: Arc<FunctionHost>) -> Self {
        let first = Arc::new(Version { number: 1, host });
        Self {
            function: function.to_string(),
            name: name.to_string(),
            routing: RwLock::new(settled(first)),
            chooser: VersionChooser::new(),
            next_version: AtomicU32::new(2),
        }
    }

    /// `<function>:<alias>`, the `Resource` dimension of its metrics.
    pub fn resource(&self) -> String {
        format!("{}:{}", self.function, self.name)
    }

    /// Publishes a new version served by `host` (no traffic yet).
    pub fn publish(&self, host: Arc<FunctionHost>) -> Arc<Version> {
        let number = self.next_version.fetch_add(1, Ordering::Relaxed);
        Arc::new(Version { number, host })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, AliasRouting<Arc<Version>>> {
        self.routing
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, routing: AliasRouting<Arc<Version>>) {
        *self
            .routing
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = routing;
    }

    /// The version that serves the next request.
    pub fn pick(&self) -> Arc<Version> {
        self.read().choose(&self.chooser).1.clone()
    }

    /// The version the alias points to outside a shift (the old one during
    /// a shift).
    pub fn current(&self) -> Arc<Version> {
        self.read().old.clone()
    }

    /// (old version, new version, new version's weight).
    pub fn weights(&self) -> (u32, u32, f64) {
        let routing = self.read();
        (routing.old.number, routing.new.number, routing.new_weight())
    }

    /// Starts a shift from the current version to `new`, with no traffic on it.
    pub fn begin_shift(&self, new: Arc<Version>) {
        let old = self.current();
        self.write(AliasRouting::new(old, new, 0.0).expect("0.0 is a valid weight"));
    }

    /// Gives the new version `weight` of the traffic (clamped to 0..=1).
    pub fn set_new_weight(&self, weight: f64) {
        let routing = self.read().clone();
        let weight = if weight.is_nan() {
            0.0
        } else {
            weight.clamp(0.0, 1.0)
        };
        if let Ok(routing) = routing.with_new_weight(weight) {
            self.write(routing);
        }
    }

    /// All traffic on the new version, which becomes the current one;
    /// returns the old version (to stop).
    pub fn promote(&self) -> Arc<Version> {
        let routing = self.read().clone().promoted();
        let old = routing.old.clone();
        self.write(settled(routing.new));
        old
    }

    /// All traffic back on the old version; returns the new one (to stop).
    pub fn roll_back(&self) -> Arc<Version> {
        let routing = self.read().clone().rolled_back();
        let new = routing.new.clone();
        self.write(settled(routing.old));
        new
    }

    /// Points the alias at `version` at once (a stack going back to an
    /// earlier template).
    pub fn point_to(&self, version: Arc<Version>) {
        self.write(settled(version));
    }
}

fn settled(version: Arc<Version>) -> AliasRouting<Arc<Version>> {
    AliasRouting::new(version.clone(), version, 0.0).expect("0.0 is a valid weight")
}

/// What a stack's gateway observed, as CloudWatch metrics: samples since
/// the observation (re)started, timestamped on the rehearsal's clock.
#[derive(Debug)]
pub struct Observer {
    inner: Mutex<(Instant, Metrics)>,
    requests: AtomicU64,
}

impl Default for Observer {
    fn default() -> Self {
        Self {
            inner: Mutex::new((Instant::now(), Metrics::new())),
            requests: AtomicU64::new(0),
        }
    }
}

impl Observer {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Instant, Metrics)> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts afresh (a new deployment): no samples, time zero now.
    pub fn reset(&self) {
        *self.lock() = (Instant::now(), Metrics::new());
    }

    /// Time since the observation started.
    pub fn elapsed(&self) -> Duration {
        self.lock().0.elapsed()
    }

    /// Records one sample of `metric` now.
    pub fn record(&self, metric: &MetricId, value: f64) {
        let mut inner = self.lock();
        let at = inner.0.elapsed();
        inner.1.record(metric, at, value);
    }

    /// Records one request the gateway answered: the function's `Errors`,
    /// `Duration` and `Invocations` (under `FunctionName`, and for an alias
    /// under `Resource` = `<function>:<alias>` and, per version, with
    /// `ExecutedVersion` too), and the API's `5xx` and `Count` under `ApiId`
    /// and `Stage`.
    pub fn record_request(&self, request: &ObservedRequest<'_>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        let at = inner.0.elapsed();
        let (_, metrics) = &mut *inner;
        if let Some(function) = request.function {
            let version = request.version.map(|v| v.to_string());
            let mut dimension_sets = vec![vec![("FunctionName", function.to_string())]];
            if let Some(resource) = &request.alias_resource {
                dimension_sets.push(vec![
                    ("FunctionName", function.to_string()),
                    ("Resource", resource.clone()),
                ]);
                if let Some(version) = &version {
                    dimension_sets.push(vec![
                        ("FunctionName", function.to_string()),
                        ("Resource", resource.clone()),
                        ("ExecutedVersion", version.clone()),
                    ]);
                }
            }
            for dimensions in dimension_sets {
                let pairs = dimensions.iter().map(|(k, v)| (*k, v.as_str()));
                let id = |name: &str| MetricId::new("AWS/Lambda", name, pairs.clone());
                metrics.record(&id("Invocations"), at, 1.0);
                metrics.record(&id("Errors"), at, f64::from(u8::from(request.error)));
                metrics.record(&id("Duration"), at, request.duration_ms);
            }
        }
        let api = [("ApiId", request.api_id), ("Stage", request.api_stage)];
        let is_5xx = (500..600).contains(&request.status);
        metrics.record(&MetricId::new("AWS/ApiGateway", "Count", api), at, 1.0);
        metrics.record(
            &MetricId::new("AWS/ApiGateway", "5xx", api),
            at,
            f64::from(u8::from(is_5xx)),
        );
    }

    /// Requests recorded since this observer was made.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// (errors, invocations) of one version of `alias` since the
    /// observation started.
    pub fn version_counts(&self, alias: &Alias, version: u32) -> (usize, usize) {
        let version = version.to_string();
        let resource = alias.resource();
        let dimensions = [
            ("FunctionName", alias.function.as_str()),
            ("Resource", resource.as_str()),
            ("ExecutedVersion", version.as_str()),
        ];
        let errors = MetricId::new("AWS/Lambda", "Errors", dimensions);
        let invocations = MetricId::new("AWS/Lambda", "Invocations", dimensions);
        let inner = self.lock();
        (
            inner
                .1
                .samples(&errors)
                .iter()
                .filter(|(_, v)| *v > 0.0)
                .count(),
            inner.1.samples(&invocations).len(),
        )
    }

    /// Evaluates `evaluator` now; returns its state and the time now.
    pub fn evaluate(&self, evaluator: &mut AlarmEvaluator) -> (AlarmState, Duration) {
        let inner = self.lock();
        let now = inner.0.elapsed();
        (evaluator.evaluate(&inner.1, now), now)
    }

    /// The number of samples of `metric` whose value is above zero
    /// (errors, 5xx), for progress lines.
    pub fn count_positive(&self, metric: &MetricId) -> usize {
        self.lock()
            .1
            .samples(metric)
            .iter()
            .filter(|(_, v)| *v > 0.0)
            .count()
    }
}

/// One request as the gateway saw it.
#[derive(Debug, Clone)]
pub struct ObservedRequest<'a> {
    pub api_id: &'a str,
    /// `$default` for an HTTP API, the stage name for a REST API.
    pub api_stage: &'a str,
    pub status: u16,
    /// The function that served it, if a route matched.
    pub function: Option<&'a str>,
    /// `<function>:<alias>` when the route invokes an alias.
    pub alias_resource: Option<String>,
    pub version: Option<u32>,
    /// The invocation failed (a function error, a crash, a timeout).
    pub error: bool,
    pub duration_ms: f64,
}

/// How much synthetic load a shift or a bake drives: at most
/// `rate_per_second` requests a second, one at a time, at most
/// `max_requests` in all, to the stage's gateway on 127.0.0.1 only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSettings {
    pub rate_per_second: u32,
    pub max_requests: u32,
}

impl Default for LoadSettings {
    /// 20 requests a second, at most 2,000 per shift or bake.
    fn default() -> Self {
        Self {
            rate_per_second: 20,
            max_requests: 2_000,
        }
    }
}

/// Why synthetic load was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error(
        "synthetic load only goes to the rehearsal's own gateways on 127.0.0.1, not to {0}; this is a bug in the rehearsal"
    )]
    NotLoopback(String),
    #[error("the stage's gateway serves no GET route to send synthetic load to")]
    NoPaths,
    #[error("cannot make an HTTP client for synthetic load: {0}")]
    Client(String),
}

/// A running synthetic load; stops when dropped or [`SyntheticLoad::stop`]ped.
pub struct SyntheticLoad {
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SyntheticLoad {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SyntheticLoad {
    /// Starts sending GET requests for `paths` (in turn) to `base_url`.
    pub fn start(
        base_url: &str,
        paths: Vec<String>,
        settings: LoadSettings,
    ) -> Result<Self, LoadError> {
        let loopback = base_url
            .strip_prefix("http://127.0.0.1:")
            .is_some_and(|rest| rest.chars().take_while(char::is_ascii_digit).count() > 0);
        if !loopback {
            return Err(LoadError::NotLoopback(base_url.to_string()));
        }
        if paths.is_empty() {
            return Err(LoadError::NoPaths);
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| LoadError::Client(e.to_string()))?;
        let sent = Arc::new(AtomicU64::new(0));
        let base = base_url.trim_end_matches('/').to_string();
        let counter = sent.clone();
        let rate = settings.rate_per_second.max(1);
        let max = u64::from(settings.max_requests);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 0..max {
                ticks.tick().await;
                let path = &paths[(n as usize) % paths.len()];
                let _ = client.get(format!("{base}{path}")).send().await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Self { sent, task })
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the load; returns how many requests it sent.
    pub fn stop(self) -> u64 {
        self.task.abort();
        self.sent()
    }
}

/// An alarm being watched: its name and its evaluator.
pub struct Watched {
    pub name: String,
    pub evaluator: AlarmEvaluator,
}

impl Watched {
    pub fn new(name: &str, rule: AlarmRule, scale: TimeScale) -> Self {
        Self {
            name: name.to_string(),
            evaluator: AlarmEvaluator::new(rule, scale),
        }
    }
}

/// How often alarms are evaluated: four times per shortest period, between
/// 10 ms and 100 ms (so a breach is acted on within 100 ms of its period
/// closing).
pub fn evaluation_tick<'a>(alarms: impl IntoIterator<Item = &'a Watched>) -> Duration {
    alarms
        .into_iter()
        .map(|a| a.evaluator.period() / 4)
        .min()
        .unwrap_or(Duration::from_millis(100))
        .clamp(Duration::from_millis(10), Duration::from_millis(100))
}

/// Evaluates every alarm now; returns the names of those in one of `states`
/// and, for the first, when its breaching period closed (the moment the
/// breach became observable).
pub fn alarms_in(
    observer: &Observer,
    alarms: &mut [Watched],
    states: &[AlarmState],
) -> Vec<(String, Duration)> {
    let mut firing = Vec::new();
    for alarm in alarms.iter_mut() {
        let (state, now) = observer.evaluate(&mut alarm.evaluator);
        if states.contains(&state) {
            let period = alarm.evaluator.period();
            let closed = Duration::from_nanos(
                u64::try_from((now.as_nanos() / period.as_nanos().max(1)) * period.as_nanos())
                    .unwrap_or(u64::MAX),
            );
            firing.push((alarm.name.clone(), now.saturating_sub(closed)));
        }
    }
    firing
}

/// A traffic shift to run.
pub struct Shift {
    pub alias: Arc<Alias>,
    pub new: Arc<Version>,
    pub deployment_type: DeploymentType,
    /// The `DeploymentPreference`'s alarms that the stack defines.
    pub alarms: Vec<(String, AlarmRule)>,
    pub observer: Arc<Observer>,
}

/// How a shift ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ShiftOutcome {
    /// All traffic on the new version; the old one (to stop) was `old`.
    Completed { old: u32 },
    /// An alarm fired: all traffic is back on `old`.
    RolledBack {
        alarms: Vec<String>,
        old: u32,
        new: u32,
        /// From the close of the breaching period (when the breach became
        /// observable) to all traffic on the old version.
        breach_to_rollback: Duration,
        /// Weight the new version had when the alarm fired.
        new_weight: f64,
    },
}

/// Runs `shift`: moves the alias's weight on the schedule, time-scaled,
/// evaluating the alarms between steps; the first alarm in `ALARM` moves
/// all traffic back to the old version. `progress` gets one line per step
/// and per alarm change. Does not stop any process (the caller does).
pub async fn run_shift(
    shift: &Shift,
    scale: TimeScale,
    mut progress: impl FnMut(&str),
) -> ShiftOutcome {
    let alias = &shift.alias;
    alias.begin_shift(shift.new.clone());
    let (old, new, _) = alias.weights();
    let timeline = shift.deployment_type.schedule().timeline(scale);
    let mut alarms: Vec<Watched> = shift
        .alarms
        .iter()
        .map(|(name, rule)| Watched::new(name, rule.clone(), scale))
        .collect();
    let tick = evaluation_tick(&alarms);
    let started = Instant::now();
    let mut states: Vec<AlarmState> = alarms.iter().map(|a| a.evaluator.state()).collect();
    for (index, (at, weight)) in timeline.iter().enumerate() {
        // Watch the alarms until this step is due.
        while started.elapsed() < *at {
            let wait = (*at - started.elapsed()).min(tick);
            tokio::time::sleep(wait).await;
            let firing = alarms_in(&shift.observer, &mut alarms, &[AlarmState::Alarm]);
            for (i, alarm) in alarms.iter().enumerate() {
                let state = alarm.evaluator.state();
                if state != states[i] {
                    progress(&format!("alarm {} is {state}", alarm.name));
                    states[i] = state;
                }
            }
            if let Some((_, since_close)) = firing.first() {
                let detected = Instant::now();
                let (_, _, weight) = alias.weights();
                alias.roll_back();
                let breach_to_rollback = *since_close + detected.elapsed();
                let names: Vec<String> = firing.into_iter().map(|(n, _)| n).collect();
                return ShiftOutcome::RolledBack {
                    alarms: names,
                    old,
                    new,
                    breach_to_rollback,
                    new_weight: weight,
                };
            }
        }
        alias.set_new_weight(*weight);
        let next = timeline
            .get(index + 1)
            .map(|(next_at, _)| {
                format!(
                    "; next step in {:.1} s",
                    next_at.saturating_sub(started.elapsed()).as_secs_f64()
                )
            })
            .unwrap_or_default();
        progress(&format!(
            "{}: version {new} has {:.0}% of the traffic, version {old} {:.0}% ({}){next}",
            alias.resource(),
            weight * 100.0,
            (1.0 - weight) * 100.0,
            shift.deployment_type,
        ));
    }
    let old_version = alias.promote();
    ShiftOutcome::Completed {
        old: old_version.number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn host(name: &str) -> Arc<FunctionHost> {
        Arc::new(FunctionHost::new(crate::runtime::FunctionConfig {
            name: name.into(),
            command: "/bin/true".into(),
            args: Vec::new(),
            task_root: "/tmp".into(),
            handler: "bootstrap".into(),
            memory_mb: 128,
            timeout: Duration::from_secs(1),
            environment: BTreeMap::new(),
            log_file: None,
            async_retries: 0,
        }))
    }

    fn errors_rule() -> AlarmRule {
        let properties = serde_json::json!({
            "AlarmName": "f-errors",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [
                {"Name": "FunctionName", "Value": "f"},
                {"Name": "Resource", "Value": "f:live"}
            ],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching"
        });
        AlarmRule::from_properties(properties.as_object().unwrap()).unwrap()
    }

    fn request(version: u32, error: bool) -> ObservedRequest<'static> {
        ObservedRequest {
            api_id: "api",
            api_stage: "$default",
            status: if error { 500 } else { 200 },
            function: Some("f"),
            alias_resource: Some("f:live".into()),
            version: Some(version),
            error,
            duration_ms: 3.0,
        }
    }

    #[test]
    fn a_new_alias_serves_version_1_and_publishing_numbers_the_next() {
        let alias = Alias::new("f", "live", host("f"));
        assert_eq!(alias.pick().number, 1);
        assert_eq!(alias.publish(host("f")).number, 2);
        assert_eq!(alias.publish(host("f")).number, 3);
        assert_eq!(alias.resource(), "f:live");
    }

    #[test]
    fn during_a_shift_requests_split_by_the_weight_and_rollback_returns_all_to_the_old() {
        let alias = Alias::new("f", "live", host("f"));
        let v2 = alias.publish(host("f"));
        alias.begin_shift(v2);
        assert!((0..100).all(|_| alias.pick().number == 1), "weight 0");
        alias.set_new_weight(0.1);
        let on_new = (0..1000).filter(|_| alias.pick().number == 2).count();
        assert!((90..=110).contains(&on_new), "{on_new} of 1000 at 10%");
        let stopped = alias.roll_back();
        assert_eq!(stopped.number, 2);
        assert!((0..100).all(|_| alias.pick().number == 1));
    }

    #[test]
    fn promoting_makes_the_new_version_current_and_returns_the_old() {
        let alias = Alias::new("f", "live", host("f"));
        let v2 = alias.publish(host("f"));
        alias.begin_shift(v2);
        assert_eq!(alias.promote().number, 1);
        assert_eq!(alias.current().number, 2);
        assert!((0..100).all(|_| alias.pick().number == 2));
    }

    #[test]
    fn the_observer_records_alias_and_per_version_metrics() {
        let observer = Observer::new();
        observer.record_request(&request(2, true));
        observer.record_request(&request(1, false));
        let alias_errors = MetricId::new(
            "AWS/Lambda",
            "Errors",
            [("FunctionName", "f"), ("Resource", "f:live")],
        );
        let v2_errors = MetricId::new(
            "AWS/Lambda",
            "Errors",
            [
                ("FunctionName", "f"),
                ("Resource", "f:live"),
                ("ExecutedVersion", "2"),
            ],
        );
        let api_5xx = MetricId::new(
            "AWS/ApiGateway",
            "5xx",
            [("ApiId", "api"), ("Stage", "$default")],
        );
        assert_eq!(observer.count_positive(&alias_errors), 1);
        assert_eq!(observer.count_positive(&v2_errors), 1);
        assert_eq!(observer.count_positive(&api_5xx), 1);
        assert_eq!(observer.requests(), 2);
        let alias = Alias::new("f", "live", host("f"));
        assert_eq!(observer.version_counts(&alias, 2), (1, 1));
        assert_eq!(observer.version_counts(&alias, 1), (0, 1));
    }

    #[tokio::test]
    async fn an_all_at_once_shift_completes_at_once() {
        let alias = Arc::new(Alias::new("f", "live", host("f")));
        let new = alias.publish(host("f"));
        let shift = Shift {
            alias: alias.clone(),
            new,
            deployment_type: DeploymentType::AllAtOnce,
            alarms: vec![("f-errors".into(), errors_rule())],
            observer: Arc::new(Observer::new()),
        };
        let started = Instant::now();
        let outcome = run_shift(&shift, TimeScale::default(), |_| {}).await;
        assert_eq!(outcome, ShiftOutcome::Completed { old: 1 });
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(alias.current().number, 2);
    }

    #[tokio::test]
    async fn a_canary_without_errors_completes_after_its_scaled_interval() {
        let alias = Arc::new(Alias::new("f", "live", host("f")));
        let new = alias.publish(host("f"));
        let observer = Arc::new(Observer::new());
        let shift = Shift {
            alias: alias.clone(),
            new,
            deployment_type: "Canary10Percent5Minutes".parse().unwrap(),
            alarms: vec![("f-errors".into(), errors_rule())],
            observer: observer.clone(),
        };
        let mut lines = Vec::new();
        let started = Instant::now();
        // 1 AWS minute = 40 ms: the canary lasts 200 ms.
        let outcome = run_shift(&shift, TimeScale::millis_per_minute(40), |l| {
            lines.push(l.to_string())
        })
        .await;
        assert_eq!(outcome, ShiftOutcome::Completed { old: 1 });
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            lines[0].contains("version 2 has 10% of the traffic"),
            "{lines:?}"
        );
        assert!(
            lines.last().unwrap().contains("version 2 has 100%"),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn a_linear_shift_moves_ten_percent_more_per_scaled_interval() {
        let alias = Arc::new(Alias::new("f", "live", host("f")));
        let new = alias.publish(host("f"));
        let shift = Shift {
            alias: alias.clone(),
            new,
            deployment_type: "Linear10PercentEvery1Minute".parse().unwrap(),
            alarms: vec![("f-errors".into(), errors_rule())],
            observer: Arc::new(Observer::new()),
        };
        let mut weights = Vec::new();
        let started = Instant::now();
        // 1 AWS minute = 10 ms: nine intervals, 90 ms.
        let outcome = run_shift(&shift, TimeScale::millis_per_minute(10), |line| {
            if let Some(rest) = line.split("version 2 has ").nth(1) {
                weights.push(rest.split('%').next().unwrap().to_string());
            }
        })
        .await;
        assert_eq!(outcome, ShiftOutcome::Completed { old: 1 });
        let expected: Vec<String> = (1..=10).map(|i| (i * 10).to_string()).collect();
        assert_eq!(weights, expected);
        assert!(started.elapsed() >= Duration::from_millis(90));
    }

    #[tokio::test]
    async fn an_error_during_a_canary_rolls_back_within_a_tick_of_the_period_closing() {
        let alias = Arc::new(Alias::new("f", "live", host("f")));
        let new = alias.publish(host("f"));
        let observer = Arc::new(Observer::new());
        let shift = Shift {
            alias: alias.clone(),
            new,
            deployment_type: "Canary10Percent5Minutes".parse().unwrap(),
            alarms: vec![("f-errors".into(), errors_rule())],
            observer: observer.clone(),
        };
        observer.record_request(&request(2, true));
        // 1 AWS minute = 100 ms: the errors alarm's period is 100 ms.
        let outcome = run_shift(&shift, TimeScale::millis_per_minute(100), |_| {}).await;
        let ShiftOutcome::RolledBack {
            alarms,
            old,
            new,
            breach_to_rollback,
            ..
        } = outcome
        else {
            panic!("not rolled back: {outcome:?}");
        };
        assert_eq!((alarms, old, new), (vec!["f-errors".to_string()], 1, 2));
        assert!(
            breach_to_rollback < Duration::from_millis(100),
            "{breach_to_rollback:?}"
        );
        assert_eq!(alias.current().number, 1);
        assert!((0..100).all(|_| alias.pick().number == 1));
    }

    #[test]
    fn synthetic_load_refuses_anything_but_loopback() {
        let error = SyntheticLoad::start(
            "http://example.com/",
            vec!["/".into()],
            LoadSettings::default(),
        )
        .err()
        .unwrap();
        assert_eq!(error, LoadError::NotLoopback("http://example.com/".into()));
    }

    #[tokio::test]
    async fn synthetic_load_stops_at_its_maximum_count() {
        let gateway = crate::gateway::Gateway::start().await.unwrap();
        let load = SyntheticLoad::start(
            &gateway.base_url(),
            vec!["/".into()],
            LoadSettings {
                rate_per_second: 200,
                max_requests: 5,
            },
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while load.sent() < 5 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // No more than the maximum, however long it runs.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(load.stop(), 5);
    }
}
