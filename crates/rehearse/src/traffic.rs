//! Gradual deployment of a function alias: the traffic-shifting schedule of a
//! SAM `DeploymentPreference` `Type`, time-scaled for the rehearsal, and the
//! per-request choice between the alias's old and new version.
//!
//! The predefined types and what they do are CodeDeploy's predefined
//! deployment configurations for an AWS Lambda compute platform ("Working
//! with deployment configurations in CodeDeploy", section "Predefined
//! deployment configurations for an AWS Lambda compute platform", AWS
//! CodeDeploy User Guide): SAM's `Canary10Percent5Minutes` is
//! `CodeDeployDefault.LambdaCanary10Percent5Minutes` ("Shifts 10 percent of
//! traffic in the first increment. The remaining 90 percent is deployed five
//! minutes later"), `Linear10PercentEvery1Minute` is
//! `CodeDeployDefault.LambdaLinear10PercentEvery1Minute` ("Shifts 10 percent
//! of traffic every minute until all traffic is shifted"), and so on; SAM's
//! own page is "Deploying serverless applications gradually with AWS SAM"
//! (AWS SAM Developer Guide).
//!
//! How the rehearsal uses this module (with [`crate::alarms`]; the code is
//! [`crate::shift`] and the executor's deploy):
//!
//! 1. On an update of a stack whose function has `AutoPublishAlias` and a
//!    `DeploymentPreference`, parse its resolved `Type` with
//!    [`DeploymentType::from_str`](std::str::FromStr) and take its
//!    [`Schedule`]; map it to wall-clock time with the rehearsal's
//!    [`TimeScale`] ([`Schedule::timeline`]).
//! 2. Keep an [`AliasRouting`] per alias (old version = the processes that
//!    served before the update, new version = the ones just started) and a
//!    [`VersionChooser`] shared by the gateway, which calls
//!    [`AliasRouting::choose`] for every request to pick the process.
//! 3. At each step of the timeline, set the new weight
//!    ([`AliasRouting::with_new_weight`]); between steps, evaluate the
//!    `DeploymentPreference`'s alarms ([`crate::alarms::AlarmEvaluator`])
//!    over the samples the gateway recorded.
//! 4. An alarm in `ALARM` during the shift rolls back: [`AliasRouting::rolled_back`]
//!    (all traffic to the old version) and the deployment fails; when the
//!    last step is reached with no alarm, [`AliasRouting::promoted`] and the
//!    old processes stop.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `DeploymentPreference` `Type` values SAM accepts (and CodeDeploy
/// predefines for Lambda), in the order the CodeDeploy table lists them,
/// `AllAtOnce` last.
pub const PREDEFINED_TYPES: [&str; 9] = [
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
    "AllAtOnce",
];

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrafficError {
    /// A `DeploymentPreference` `Type` that is not one of the predefined ones.
    #[error("unknown DeploymentPreference Type {name:?}; the predefined types are {}", PREDEFINED_TYPES.join(", "))]
    UnknownType { name: String },
    /// A traffic weight outside 0.0..=1.0 (or not a number).
    #[error("traffic weight {0} is not between 0.0 and 1.0")]
    WeightOutOfRange(f64),
}

/// How CodeDeploy shifts an alias's traffic to the new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentType {
    /// All traffic at once.
    AllAtOnce,
    /// `percent` at once, the rest `minutes` later.
    Canary { percent: u32, minutes: u32 },
    /// `percent` more every `minutes` until all traffic is shifted.
    Linear { percent: u32, minutes: u32 },
}

impl FromStr for DeploymentType {
    type Err = TrafficError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let parsed = match name {
            "AllAtOnce" => DeploymentType::AllAtOnce,
            "Canary10Percent5Minutes" => Self::canary(5),
            "Canary10Percent10Minutes" => Self::canary(10),
            "Canary10Percent15Minutes" => Self::canary(15),
            "Canary10Percent30Minutes" => Self::canary(30),
            "Linear10PercentEvery1Minute" => Self::linear(1),
            "Linear10PercentEvery2Minutes" => Self::linear(2),
            "Linear10PercentEvery3Minutes" => Self::linear(3),
            "Linear10PercentEvery10Minutes" => Self::linear(10),
            _ => {
                return Err(TrafficError::UnknownType {
                    name: name.to_string(),
                });
            }
        };
        Ok(parsed)
    }
}

impl fmt::Display for DeploymentType {
    /// The SAM name (`Canary10Percent5Minutes`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DeploymentType::AllAtOnce => f.write_str("AllAtOnce"),
            DeploymentType::Canary { percent, minutes } => {
                write!(f, "Canary{percent}Percent{minutes}Minutes")
            }
            DeploymentType::Linear {
                percent,
                minutes: 1,
            } => {
                write!(f, "Linear{percent}PercentEvery1Minute")
            }
            DeploymentType::Linear { percent, minutes } => {
                write!(f, "Linear{percent}PercentEvery{minutes}Minutes")
            }
        }
    }
}

impl DeploymentType {
    fn canary(minutes: u32) -> Self {
        DeploymentType::Canary {
            percent: 10,
            minutes,
        }
    }

    fn linear(minutes: u32) -> Self {
        DeploymentType::Linear {
            percent: 10,
            minutes,
        }
    }

    /// The steps of the shift: at which minute the new version gets which
    /// share of the traffic.
    pub fn schedule(&self) -> Schedule {
        let steps = match *self {
            DeploymentType::AllAtOnce => vec![Step::new(0, 100)],
            DeploymentType::Canary { percent, minutes } => {
                vec![Step::new(0, percent), Step::new(minutes, 100)]
            }
            DeploymentType::Linear { percent, minutes } => {
                let increments = 100_u32.div_ceil(percent.max(1));
                (0..increments)
                    .map(|i| Step::new(i * minutes, ((i + 1) * percent).min(100)))
                    .collect()
            }
        };
        Schedule { steps }
    }
}

/// One traffic shift: from `at_minute` (deployment minutes since the shift
/// began) on, the new version gets `new_percent` of the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub at_minute: u32,
    pub new_percent: u32,
}

impl Step {
    fn new(at_minute: u32, new_percent: u32) -> Self {
        Self {
            at_minute,
            new_percent,
        }
    }

    /// The new version's weight, 0.0..=1.0.
    pub fn new_weight(&self) -> f64 {
        f64::from(self.new_percent) / 100.0
    }
}

/// The steps of a deployment, in time order; the last one is always 100%.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    steps: Vec<Step>,
}

impl Schedule {
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Minutes from the first shift to the last (0 for `AllAtOnce`).
    pub fn total_minutes(&self) -> u32 {
        self.steps.last().map_or(0, |s| s.at_minute)
    }

    /// The new version's weight `minutes` after the shift began.
    pub fn new_weight_at(&self, minutes: f64) -> f64 {
        self.steps
            .iter()
            .take_while(|s| f64::from(s.at_minute) <= minutes)
            .last()
            .map_or(0.0, Step::new_weight)
    }

    /// The steps in wall-clock time under `scale`: (offset from the start of
    /// the shift, new weight).
    pub fn timeline(&self, scale: TimeScale) -> Vec<(Duration, f64)> {
        self.steps
            .iter()
            .map(|s| (scale.minutes(s.at_minute), s.new_weight()))
            .collect()
    }
}

/// Maps AWS time (deployment minutes, alarm periods in seconds) to the
/// rehearsal's wall-clock time: one AWS minute lasts [`TimeScale::per_minute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeScale {
    per_minute: Duration,
}

impl Default for TimeScale {
    /// One AWS minute in one real second: `Canary10Percent5Minutes` takes
    /// 5 s, a 60-second alarm period lasts 1 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl TimeScale {
    /// One AWS minute lasts `per_minute` (a zero duration is made 1 ms, so
    /// periods never collapse to nothing).
    pub fn new(per_minute: Duration) -> Self {
        Self {
            per_minute: per_minute.max(Duration::from_millis(1)),
        }
    }

    /// The scale at which one AWS minute lasts `millis` milliseconds.
    pub fn millis_per_minute(millis: u64) -> Self {
        Self::new(Duration::from_millis(millis))
    }

    /// Real time, unscaled (for tests against AWS numbers).
    pub fn real_time() -> Self {
        Self::new(Duration::from_secs(60))
    }

    pub fn per_minute(&self) -> Duration {
        self.per_minute
    }

    /// Wall-clock duration of `minutes` AWS minutes.
    pub fn minutes(&self, minutes: u32) -> Duration {
        self.per_minute * minutes
    }

    /// Wall-clock duration of `seconds` AWS seconds (an alarm's `Period`).
    pub fn seconds(&self, seconds: u32) -> Duration {
        self.per_minute * seconds / 60
    }

    /// AWS minutes that `elapsed` wall-clock time stands for.
    pub fn minutes_in(&self, elapsed: Duration) -> f64 {
        elapsed.as_secs_f64() / self.per_minute.as_secs_f64()
    }
}

/// Which of an alias's two versions serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Old,
    New,
}

/// An alias's routing during a shift: the version it pointed to, the version
/// being deployed, and the new version's share of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasRouting<V> {
    pub old: V,
    pub new: V,
    new_weight: f64,
}

impl<V> AliasRouting<V> {
    /// A routing with `new_weight` (0.0..=1.0) of the traffic on `new`.
    pub fn new(old: V, new: V, new_weight: f64) -> Result<Self, TrafficError> {
        Ok(Self {
            old,
            new,
            new_weight: checked_weight(new_weight)?,
        })
    }

    pub fn new_weight(&self) -> f64 {
        self.new_weight
    }

    /// The same versions with another weight for the new one.
    pub fn with_new_weight(self, new_weight: f64) -> Result<Self, TrafficError> {
        Self::new(self.old, self.new, new_weight)
    }

    /// All traffic back on the old version (an alarm fired).
    pub fn rolled_back(self) -> Self {
        Self {
            new_weight: 0.0,
            ..self
        }
    }

    /// All traffic on the new version (the shift completed).
    pub fn promoted(self) -> Self {
        Self {
            new_weight: 1.0,
            ..self
        }
    }

    /// The version for the next request, as `chooser` picks it.
    pub fn choose(&self, chooser: &VersionChooser) -> (Side, &V) {
        match chooser.choose(self.new_weight) {
            Side::Old => (Side::Old, &self.old),
            Side::New => (Side::New, &self.new),
        }
    }
}

fn checked_weight(weight: f64) -> Result<f64, TrafficError> {
    if (0.0..=1.0).contains(&weight) {
        Ok(weight)
    } else {
        Err(TrafficError::WeightOutOfRange(weight))
    }
}

/// Picks a side per request so that the share of `New` follows the weight
/// closely from the first requests on, deterministically: request n goes to
/// the new version when the fractional part of n·(1/φ) (the golden-ratio
/// low-discrepancy sequence) is below the weight. Over any N consecutive
/// requests at one weight the share is off by O(log N / N), with no
/// randomness for a test to be unlucky with. Shared by all requests of an
/// alias (`&self`, atomic counter).
#[derive(Debug, Default)]
pub struct VersionChooser {
    counter: AtomicU64,
}

/// 1/φ = (√5 − 1)/2.
const INVERSE_GOLDEN_RATIO: f64 = 0.618_033_988_749_894_9;

impl VersionChooser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The side for the next request when the new version's weight is
    /// `new_weight` (0.0 never picks `New`, 1.0 always does).
    pub fn choose(&self, new_weight: f64) -> Side {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // n·(1/φ) mod 1, computed on a counter folded to keep f64 exact.
        let point = ((n % (1 << 40)) as f64 * INVERSE_GOLDEN_RATIO).fract();
        if point < new_weight {
            Side::New
        } else {
            Side::Old
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(schedule: &Schedule) -> Vec<(u32, u32)> {
        schedule
            .steps()
            .iter()
            .map(|s| (s.at_minute, s.new_percent))
            .collect()
    }

    #[test]
    fn every_predefined_type_parses_and_prints_back_to_its_name() {
        for name in PREDEFINED_TYPES {
            let parsed: DeploymentType = name.parse().unwrap();
            assert_eq!(parsed.to_string(), name);
        }
    }

    #[test]
    fn the_predefined_types_are_the_ones_app_sam_yaml_allows() {
        let template = cfn_template::Template::from_path(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../app-sam.yaml"),
        )
        .unwrap();
        let mut allowed = template
            .parameter("DeploymentType")
            .unwrap()
            .allowed_values();
        let mut ours: Vec<String> = PREDEFINED_TYPES.iter().map(|s| s.to_string()).collect();
        allowed.sort();
        ours.sort();
        assert_eq!(allowed, ours);
    }

    #[test]
    fn all_at_once_shifts_everything_at_minute_zero() {
        let schedule = DeploymentType::AllAtOnce.schedule();
        assert_eq!(weights(&schedule), [(0, 100)]);
        assert_eq!(schedule.total_minutes(), 0);
    }

    #[test]
    fn canary_shifts_ten_percent_then_the_rest_after_its_interval() {
        let schedule = "Canary10Percent15Minutes"
            .parse::<DeploymentType>()
            .unwrap()
            .schedule();
        assert_eq!(weights(&schedule), [(0, 10), (15, 100)]);
    }

    #[test]
    fn linear_shifts_ten_percent_more_every_interval_until_all() {
        let schedule = "Linear10PercentEvery3Minutes"
            .parse::<DeploymentType>()
            .unwrap()
            .schedule();
        let expected: Vec<(u32, u32)> = (0..10).map(|i| (i * 3, (i + 1) * 10)).collect();
        assert_eq!(weights(&schedule), expected);
        assert_eq!(schedule.total_minutes(), 27);
    }

    #[test]
    fn weight_at_a_time_is_the_last_step_reached() {
        let schedule = "Canary10Percent5Minutes"
            .parse::<DeploymentType>()
            .unwrap()
            .schedule();
        assert_eq!(schedule.new_weight_at(-1.0), 0.0);
        assert_eq!(schedule.new_weight_at(0.0), 0.1);
        assert_eq!(schedule.new_weight_at(4.99), 0.1);
        assert_eq!(schedule.new_weight_at(5.0), 1.0);
    }

    #[test]
    fn an_unknown_type_is_an_error_naming_the_allowed_ones() {
        let error = "Canary50Percent1Minute"
            .parse::<DeploymentType>()
            .unwrap_err();
        assert_eq!(
            error,
            TrafficError::UnknownType {
                name: "Canary50Percent1Minute".into()
            }
        );
        let message = error.to_string();
        for name in PREDEFINED_TYPES {
            assert!(message.contains(name), "{message}");
        }
    }

    #[test]
    fn the_default_time_scale_runs_canary_10_percent_5_minutes_in_5_seconds() {
        let timeline = "Canary10Percent5Minutes"
            .parse::<DeploymentType>()
            .unwrap()
            .schedule()
            .timeline(TimeScale::default());
        assert_eq!(
            timeline,
            [(Duration::ZERO, 0.1), (Duration::from_secs(5), 1.0)]
        );
    }

    #[test]
    fn a_configured_time_scale_maps_minutes_and_alarm_periods() {
        let scale = TimeScale::millis_per_minute(200);
        assert_eq!(scale.minutes(10), Duration::from_secs(2));
        assert_eq!(scale.seconds(60), Duration::from_millis(200));
        assert_eq!(scale.seconds(30), Duration::from_millis(100));
        assert_eq!(scale.minutes_in(Duration::from_millis(500)), 2.5);
        assert_eq!(TimeScale::real_time().seconds(60), Duration::from_secs(60));
    }

    fn observed_new_share(weight: f64, requests: u32) -> f64 {
        let chooser = VersionChooser::new();
        let routing = AliasRouting::new("1", "2", weight).unwrap();
        let new = (0..requests)
            .filter(|_| routing.choose(&chooser) == (Side::New, &"2"))
            .count();
        new as f64 / f64::from(requests)
    }

    /// Tolerance: ±1 percentage point over 10,000 requests.
    const TOLERANCE: f64 = 0.01;

    #[test]
    fn weight_zero_sends_no_request_to_the_new_version() {
        assert_eq!(observed_new_share(0.0, 10_000), 0.0);
    }

    #[test]
    fn weight_one_sends_every_request_to_the_new_version() {
        assert_eq!(observed_new_share(1.0, 10_000), 1.0);
    }

    #[test]
    fn weight_a_tenth_sends_a_tenth_of_10000_requests_within_one_point() {
        let share = observed_new_share(0.1, 10_000);
        assert!((share - 0.1).abs() <= TOLERANCE, "{share}");
    }

    #[test]
    fn weight_a_half_sends_half_of_10000_requests_within_one_point() {
        let share = observed_new_share(0.5, 10_000);
        assert!((share - 0.5).abs() <= TOLERANCE, "{share}");
    }

    #[test]
    fn the_share_is_already_close_over_the_first_100_requests() {
        let share = observed_new_share(0.1, 100);
        assert!((share - 0.1).abs() <= 0.02, "{share}");
    }

    #[test]
    fn a_weight_outside_zero_to_one_is_refused() {
        assert_eq!(
            AliasRouting::new("1", "2", 1.5),
            Err(TrafficError::WeightOutOfRange(1.5))
        );
        assert!(AliasRouting::new("1", "2", f64::NAN).is_err());
    }

    #[test]
    fn rolling_back_sends_everything_to_the_old_version() {
        let chooser = VersionChooser::new();
        let routing = AliasRouting::new("1", "2", 0.5).unwrap().rolled_back();
        assert!((0..1000).all(|_| routing.choose(&chooser) == (Side::Old, &"1")));
    }

    #[test]
    fn promoting_sends_everything_to_the_new_version() {
        let chooser = VersionChooser::new();
        let routing = AliasRouting::new("1", "2", 0.1).unwrap().promoted();
        assert!((0..1000).all(|_| routing.choose(&chooser) == (Side::New, &"2")));
    }
}
