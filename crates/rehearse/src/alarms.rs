//! CloudWatch metric alarms, evaluated locally: an `AWS::CloudWatch::Alarm`'s
//! resolved properties become an [`AlarmRule`], and an [`AlarmEvaluator`]
//! computes its state (`OK`, `ALARM`, `INSUFFICIENT_DATA`) from the samples
//! recorded in [`Metrics`], with the periods time-scaled by the rehearsal's
//! [`TimeScale`].
//!
//! The semantics follow the Amazon CloudWatch User Guide, "Using Amazon
//! CloudWatch alarms":
//! - "Evaluating an alarm": each `Period` yields one datapoint (the
//!   statistic over the samples in it); the alarm looks at the most recent
//!   `EvaluationPeriods` datapoints (N) and goes to `ALARM` when at least
//!   `DatapointsToAlarm` (M, default N) of them breach the threshold, not
//!   necessarily consecutive ("M out of N"), otherwise `OK`.
//! - "Configuring how CloudWatch alarms treat missing data" and its "How
//!   alarm state is evaluated when data is missing": CloudWatch retrieves an
//!   *evaluation range* of more datapoints than N (5 for N = 3 in the
//!   page's tables; here N + 2). With at least N real datapoints in the range
//!   it evaluates the most recent N and `TreatMissingData` does not matter;
//!   with fewer, it fills only as many missing ones as needed to make N:
//!   `breaching` as breaching, `notBreaching` as not breaching; `missing`
//!   (the default) does not count them, so the state is `ALARM` with M
//!   breaching real points, `OK` with any non-breaching one, and otherwise
//!   `INSUFFICIENT_DATA` (but `ALARM` when the only, breaching, points
//!   start the range: the page's row `X - - - -`); `ignore` keeps the
//!   current state where `missing` would not decide on real points. A range
//!   with no data at all is `INSUFFICIENT_DATA` (`missing`), unchanged
//!   (`ignore`), `ALARM` (`breaching`) or `OK` (`notBreaching`). Every row of
//!   both tables on that page is a test below.
//!
//! Percentiles (`ExtendedStatistic: p99`) are computed exactly over the
//! period's samples by nearest rank (CloudWatch approximates; the local
//! sample sizes are small). `EvaluateLowSampleCountPercentile` is not
//! emulated: a percentile is always evaluated.
//!
//! How the rehearsal uses this module (see also [`crate::traffic`]; the
//! code is [`crate::shift`], `stack::Deployer::prepare` and the executor):
//! 1. When a stack deploys, build the rules of its alarms with
//!    [`alarm_rules`] (the template and the stack's resolver, which knows
//!    the functions' and APIs' local names).
//! 2. The gateway records, per request, what AWS would publish, with the
//!    dimensions the alarms use: `AWS/Lambda` `Errors` (1 for a function
//!    error, 0 otherwise, so a period with traffic and no error has a Sum of
//!    0 rather than no data) and `Duration` (milliseconds) under
//!    `FunctionName` and `Resource` = `<function>:<alias>`, and
//!    `AWS/ApiGateway` `5xx` (1 or 0) under `ApiId` and `Stage`. Timestamps
//!    are the wall-clock time since the deployment started.
//! 3. During a traffic shift (and a bake), evaluate each alarm of the
//!    `DeploymentPreference` at least once per scaled period; the first
//!    [`AlarmState::Alarm`] rolls the alias back
//!    ([`crate::traffic::AliasRouting::rolled_back`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use cfn_template::{ResolveError, Resolver, Template};
use serde_json::{Map, Value};

use crate::traffic::TimeScale;

/// Why an alarm's properties do not make a rule the rehearsal can evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmRuleError {
    #[error("alarm property {field} is required")]
    Missing { field: &'static str },
    #[error("alarm property {field} is {value}: {expected}")]
    Invalid {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("alarm property {field} = {value} is not supported by the rehearsal")]
    Unsupported { field: &'static str, value: String },
}

/// Why the alarms of a template could not all be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmsError {
    #[error("alarm {alarm}: its properties do not resolve: {source}")]
    Resolve { alarm: String, source: ResolveError },
    #[error("alarm {alarm}: {source}")]
    Rule {
        alarm: String,
        source: AlarmRuleError,
    },
}

/// A metric: namespace, name and dimensions (all must match).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricId {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

impl MetricId {
    pub fn new<'a>(
        namespace: &str,
        name: &str,
        dimensions: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            dimensions: dimensions
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// The statistic computed over each period's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    /// `pNN`: the NN-th percentile (0..=100), by nearest rank.
    Percentile(f64),
}

impl Statistic {
    /// The statistic of `values`; `None` when there are none (a missing
    /// datapoint).
    pub fn compute(&self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        Some(match *self {
            Statistic::SampleCount => n,
            Statistic::Sum => values.iter().sum(),
            Statistic::Average => values.iter().sum::<f64>() / n,
            Statistic::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
            Statistic::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Statistic::Percentile(p) => {
                let mut sorted = values.to_vec();
                sorted.sort_by(f64::total_cmp);
                let rank = ((p / 100.0) * n).ceil().max(1.0) as usize;
                sorted[rank.min(sorted.len()) - 1]
            }
        })
    }

    fn parse_extended(text: &str) -> Result<Self, AlarmRuleError> {
        let unsupported = || AlarmRuleError::Unsupported {
            field: "ExtendedStatistic",
            value: text.to_string(),
        };
        let p: f64 = text
            .strip_prefix('p')
            .ok_or_else(unsupported)?
            .parse()
            .map_err(|_| unsupported())?;
        if (0.0..=100.0).contains(&p) {
            Ok(Statistic::Percentile(p))
        } else {
            Err(AlarmRuleError::Invalid {
                field: "ExtendedStatistic",
                value: text.to_string(),
                expected: "a percentile from p0 to p100",
            })
        }
    }
}

/// `ComparisonOperator`: how the datapoint compares with the threshold to
/// breach (the anomaly-detection band operators are not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    pub fn breaches(&self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }
}

/// `TreatMissingData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TreatMissingData {
    #[default]
    Missing,
    NotBreaching,
    Breaching,
    Ignore,
}

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        })
    }
}

/// A metric alarm as the rehearsal evaluates it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRule {
    /// `AlarmName`, if set.
    pub name: Option<String>,
    pub metric: MetricId,
    pub statistic: Statistic,
    /// `Period`, in (AWS) seconds.
    pub period_seconds: u32,
    /// N.
    pub evaluation_periods: u32,
    /// M (defaults to N).
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison: Comparison,
    pub treat_missing_data: TreatMissingData,
}

impl AlarmRule {
    /// The rule of an `AWS::CloudWatch::Alarm` from its `Properties`, fully
    /// resolved (numbers may be JSON numbers or numeric strings, as
    /// parameters resolve to text).
    pub fn from_properties(properties: &Map<String, Value>) -> Result<Self, AlarmRuleError> {
        for field in ["Metrics", "ThresholdMetricId"] {
            if let Some(value) = properties.get(field) {
                return Err(AlarmRuleError::Unsupported {
                    field,
                    value: value.to_string(),
                });
            }
        }
        let namespace = required_text(properties, "Namespace")?;
        let metric_name = required_text(properties, "MetricName")?;
        let dimensions = dimensions(properties.get("Dimensions"))?;
        let statistic = match (
            optional_text(properties, "Statistic")?,
            optional_text(properties, "ExtendedStatistic")?,
        ) {
            (Some(_), Some(_)) => {
                return Err(AlarmRuleError::Invalid {
                    field: "ExtendedStatistic",
                    value: "set along with Statistic".into(),
                    expected: "either Statistic or ExtendedStatistic, not both",
                });
            }
            (None, None) => return Err(AlarmRuleError::Missing { field: "Statistic" }),
            (Some(s), None) => match s.as_str() {
                "SampleCount" => Statistic::SampleCount,
                "Average" => Statistic::Average,
                "Sum" => Statistic::Sum,
                "Minimum" => Statistic::Minimum,
                "Maximum" => Statistic::Maximum,
                _ => {
                    return Err(AlarmRuleError::Invalid {
                        field: "Statistic",
                        value: s,
                        expected: "one of SampleCount, Average, Sum, Minimum, Maximum",
                    });
                }
            },
            (None, Some(e)) => Statistic::parse_extended(&e)?,
        };
        let period_seconds = required_count(properties, "Period")?;
        let evaluation_periods = required_count(properties, "EvaluationPeriods")?;
        let datapoints_to_alarm = match properties.get("DatapointsToAlarm") {
            None => evaluation_periods,
            Some(_) => required_count(properties, "DatapointsToAlarm")?,
        };
        if datapoints_to_alarm > evaluation_periods {
            return Err(AlarmRuleError::Invalid {
                field: "DatapointsToAlarm",
                value: datapoints_to_alarm.to_string(),
                expected: "at most EvaluationPeriods",
            });
        }
        let threshold = number(properties, "Threshold")?
            .ok_or(AlarmRuleError::Missing { field: "Threshold" })?;
        let comparison_text = required_text(properties, "ComparisonOperator")?;
        let comparison = match comparison_text.as_str() {
            "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
            "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
            "LessThanThreshold" => Comparison::LessThanThreshold,
            "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
            _ => {
                return Err(AlarmRuleError::Unsupported {
                    field: "ComparisonOperator",
                    value: comparison_text,
                });
            }
        };
        let treat_missing_data = match optional_text(properties, "TreatMissingData")?.as_deref() {
            None | Some("missing") => TreatMissingData::Missing,
            Some("notBreaching") => TreatMissingData::NotBreaching,
            Some("breaching") => TreatMissingData::Breaching,
            Some("ignore") => TreatMissingData::Ignore,
            Some(other) => {
                return Err(AlarmRuleError::Invalid {
                    field: "TreatMissingData",
                    value: other.to_string(),
                    expected: "one of missing, notBreaching, breaching, ignore",
                });
            }
        };
        Ok(Self {
            name: optional_text(properties, "AlarmName")?,
            metric: MetricId {
                namespace,
                name: metric_name,
                dimensions,
            },
            statistic,
            period_seconds,
            evaluation_periods,
            datapoints_to_alarm,
            threshold,
            comparison,
            treat_missing_data,
        })
    }

    /// How many periods CloudWatch looks back over (the evaluation range).
    pub fn evaluation_range(&self) -> u32 {
        self.evaluation_periods + 2
    }

    /// The state for `datapoints`, the evaluation range's periods oldest
    /// first (`None` = missing), given the alarm's `current` state.
    pub fn state_for(&self, datapoints: &[Option<f64>], current: AlarmState) -> AlarmState {
        let n = self.evaluation_periods as usize;
        let m = self.datapoints_to_alarm as usize;
        let breaches = |v: f64| self.comparison.breaches(v, self.threshold);
        let real: Vec<bool> = datapoints.iter().flatten().map(|&v| breaches(v)).collect();
        if real.len() >= n {
            let breaching = real[real.len() - n..].iter().filter(|b| **b).count();
            return if breaching >= m {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            };
        }
        let breaching = real.iter().filter(|b| **b).count();
        let fill = n - real.len();
        match self.treat_missing_data {
            TreatMissingData::Breaching => {
                if breaching + fill >= m {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                }
            }
            TreatMissingData::NotBreaching => {
                if breaching >= m {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                }
            }
            TreatMissingData::Missing | TreatMissingData::Ignore => {
                let undecided = if self.treat_missing_data == TreatMissingData::Missing {
                    AlarmState::InsufficientData
                } else {
                    current
                };
                if real.is_empty() {
                    undecided
                } else if breaching >= m {
                    AlarmState::Alarm
                } else if breaching < real.len() {
                    AlarmState::Ok
                } else if self.treat_missing_data == TreatMissingData::Missing
                    && datapoints.first().copied().flatten().is_some()
                {
                    // Only breaching points, the oldest of the range among
                    // them: the documented row `X - - - -` is ALARM.
                    AlarmState::Alarm
                } else {
                    undecided
                }
            }
        }
    }
}

fn optional_text(
    properties: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, AlarmRuleError> {
    match properties.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(AlarmRuleError::Invalid {
            field,
            value: other.to_string(),
            expected: "a string",
        }),
    }
}

fn required_text(
    properties: &Map<String, Value>,
    field: &'static str,
) -> Result<String, AlarmRuleError> {
    optional_text(properties, field)?.ok_or(AlarmRuleError::Missing { field })
}

fn number(
    properties: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<f64>, AlarmRuleError> {
    let invalid = |value: &Value| AlarmRuleError::Invalid {
        field,
        value: value.to_string(),
        expected: "a number",
    };
    match properties.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| invalid(v)),
        Some(v @ Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| invalid(v)),
        Some(v) => Err(invalid(v)),
    }
}

fn required_count(
    properties: &Map<String, Value>,
    field: &'static str,
) -> Result<u32, AlarmRuleError> {
    let value = number(properties, field)?.ok_or(AlarmRuleError::Missing { field })?;
    if value >= 1.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX) {
        Ok(value as u32)
    } else {
        Err(AlarmRuleError::Invalid {
            field,
            value: value.to_string(),
            expected: "a whole number of at least 1",
        })
    }
}

fn dimensions(value: Option<&Value>) -> Result<BTreeMap<String, String>, AlarmRuleError> {
    let invalid = |value: &Value| AlarmRuleError::Invalid {
        field: "Dimensions",
        value: value.to_string(),
        expected: "a list of {Name, Value} strings",
    };
    let Some(value) = value else {
        return Ok(BTreeMap::new());
    };
    let items = value.as_array().ok_or_else(|| invalid(value))?;
    items
        .iter()
        .map(|item| {
            match (
                item.get("Name").and_then(Value::as_str),
                item.get("Value").and_then(Value::as_str),
            ) {
                (Some(name), Some(v)) => Ok((name.to_string(), v.to_string())),
                _ => Err(invalid(item)),
            }
        })
        .collect()
}

/// The rules of every `AWS::CloudWatch::Alarm` of `template`, by logical
/// id, with their properties resolved by `resolver`.
pub fn alarm_rules(
    template: &Template,
    resolver: &Resolver,
) -> Result<BTreeMap<String, AlarmRule>, AlarmsError> {
    let mut rules = BTreeMap::new();
    for resource in template.resources_of_type("AWS::CloudWatch::Alarm") {
        let alarm = resource.logical_id().to_string();
        let properties = Value::Object(resource.properties().clone());
        let resolved =
            resolver
                .resolve_complete(&properties)
                .map_err(|source| AlarmsError::Resolve {
                    alarm: alarm.clone(),
                    source,
                })?;
        let rule = AlarmRule::from_properties(resolved.as_object().unwrap_or(&Map::new()))
            .map_err(|source| AlarmsError::Rule {
                alarm: alarm.clone(),
                source,
            })?;
        rules.insert(alarm, rule);
    }
    Ok(rules)
}

/// Samples per metric: (time since the observation began, value).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: HashMap<MetricId, Vec<(Duration, f64)>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one sample of `metric` at `at`.
    pub fn record(&mut self, metric: &MetricId, at: Duration, value: f64) {
        self.samples
            .entry(metric.clone())
            .or_default()
            .push((at, value));
    }

    /// The samples of `metric`, in the order recorded.
    pub fn samples(&self, metric: &MetricId) -> &[(Duration, f64)] {
        self.samples.get(metric).map_or(&[], Vec::as_slice)
    }
}

/// An alarm's state over time: evaluates its rule on the complete periods
/// before a given time. Period k covers `[k·P, (k+1)·P)` with P the scaled
/// `Period`; periods before time zero are missing.
#[derive(Debug, Clone)]
pub struct AlarmEvaluator {
    rule: AlarmRule,
    period: Duration,
    state: AlarmState,
}

impl AlarmEvaluator {
    /// Starts in `INSUFFICIENT_DATA`, as a new alarm does.
    pub fn new(rule: AlarmRule, scale: TimeScale) -> Self {
        let period = scale
            .seconds(rule.period_seconds)
            .max(Duration::from_nanos(1));
        Self {
            rule,
            period,
            state: AlarmState::InsufficientData,
        }
    }

    pub fn rule(&self) -> &AlarmRule {
        &self.rule
    }

    pub fn state(&self) -> AlarmState {
        self.state
    }

    /// The wall-clock length of one period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The datapoints of the evaluation range ending with the last period
    /// complete at `now`, oldest first (`None` = missing).
    pub fn datapoints(&self, metrics: &Metrics, now: Duration) -> Vec<Option<f64>> {
        let complete = (now.as_nanos() / self.period.as_nanos()) as i128;
        let range = i128::from(self.rule.evaluation_range());
        let samples = metrics.samples(&self.rule.metric);
        (complete - range..complete)
            .map(|k| {
                if k < 0 {
                    return None;
                }
                let start = self.period.as_nanos() * k as u128;
                let end = start + self.period.as_nanos();
                let values: Vec<f64> = samples
                    .iter()
                    .filter(|(at, _)| (start..end).contains(&at.as_nanos()))
                    .map(|(_, v)| *v)
                    .collect();
                self.rule.statistic.compute(&values)
            })
            .collect()
    }

    /// Evaluates the alarm at `now` and returns (and keeps) its new state.
    pub fn evaluate(&mut self, metrics: &Metrics, now: Duration) -> AlarmState {
        let datapoints = self.datapoints(metrics, now);
        self.state = self.rule.state_for(&datapoints, self.state);
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn properties(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn base() -> Value {
        json!({
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 3,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold"
        })
    }

    /// The base rule with `changes`; an `ExtendedStatistic` replaces the
    /// base's `Statistic`.
    fn rule_with(changes: Value) -> AlarmRule {
        let mut p = properties(base());
        if changes.get("ExtendedStatistic").is_some() {
            p.remove("Statistic");
        }
        for (k, v) in changes.as_object().unwrap() {
            p.insert(k.clone(), v.clone());
        }
        AlarmRule::from_properties(&p).unwrap()
    }

    fn error_with(changes: Value, remove: &[&str]) -> AlarmRuleError {
        let mut p = properties(base());
        for (k, v) in changes.as_object().unwrap() {
            p.insert(k.clone(), v.clone());
        }
        for field in remove {
            p.remove(*field);
        }
        AlarmRule::from_properties(&p).unwrap_err()
    }

    /// Parses a row of the CloudWatch tables: `0` not breaching, `X`
    /// breaching, `-` missing (threshold 0, GreaterThanThreshold).
    fn row(text: &str) -> Vec<Option<f64>> {
        text.split_whitespace()
            .map(|c| match c {
                "0" => Some(0.0),
                "X" => Some(1.0),
                "-" => None,
                _ => panic!("bad cell {c}"),
            })
            .collect()
    }

    const TREATMENTS: [(&str, TreatMissingData); 4] = [
        ("missing", TreatMissingData::Missing),
        ("ignore", TreatMissingData::Ignore),
        ("breaching", TreatMissingData::Breaching),
        ("notBreaching", TreatMissingData::NotBreaching),
    ];

    use AlarmState::{Alarm, InsufficientData as Insufficient, Ok as Okay};

    /// Checks a table row for all four treatments (MISSING, IGNORE,
    /// BREACHING, NOT BREACHING), with `current` as the state `ignore`
    /// retains.
    fn check_row(m: u32, n: u32, points: &str, expected: [AlarmState; 4], current: AlarmState) {
        for ((name, _), want) in TREATMENTS.iter().zip(expected) {
            let rule = rule_with(json!({
                "EvaluationPeriods": n, "DatapointsToAlarm": m, "TreatMissingData": name
            }));
            assert_eq!(
                rule.state_for(&row(points), current),
                want,
                "{m} of {n}, {points}, {name}"
            );
        }
    }

    // --- building rules ---

    #[test]
    fn datapoints_to_alarm_defaults_to_evaluation_periods() {
        let rule = rule_with(json!({}));
        assert_eq!(rule.datapoints_to_alarm, 3);
        assert_eq!(rule.treat_missing_data, TreatMissingData::Missing);
    }

    #[test]
    fn numbers_given_as_text_are_read() {
        let rule = rule_with(json!({"Threshold": "2.5", "Period": "60"}));
        assert_eq!(rule.threshold, 2.5);
        assert_eq!(rule.period_seconds, 60);
    }

    #[test]
    fn a_missing_required_field_is_named() {
        for field in [
            "Namespace",
            "MetricName",
            "Period",
            "EvaluationPeriods",
            "Threshold",
            "ComparisonOperator",
        ] {
            assert_eq!(
                error_with(json!({}), &[field]),
                AlarmRuleError::Missing { field },
                "{field}"
            );
        }
        assert_eq!(
            error_with(json!({}), &["Statistic"]),
            AlarmRuleError::Missing { field: "Statistic" }
        );
    }

    #[test]
    fn an_anomaly_band_operator_is_unsupported_and_named() {
        let error = error_with(
            json!({"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}),
            &[],
        );
        assert!(matches!(
            error,
            AlarmRuleError::Unsupported {
                field: "ComparisonOperator",
                ..
            }
        ));
        assert!(error.to_string().contains("ComparisonOperator"));
    }

    #[test]
    fn metric_math_alarms_are_unsupported() {
        let error = error_with(json!({"Metrics": []}), &[]);
        assert!(matches!(
            error,
            AlarmRuleError::Unsupported {
                field: "Metrics",
                ..
            }
        ));
    }

    #[test]
    fn a_trimmed_mean_extended_statistic_is_unsupported() {
        let error = error_with(json!({"ExtendedStatistic": "tm99"}), &["Statistic"]);
        assert!(matches!(
            error,
            AlarmRuleError::Unsupported {
                field: "ExtendedStatistic",
                ..
            }
        ));
    }

    #[test]
    fn statistic_and_extended_statistic_together_are_invalid() {
        let error = error_with(json!({"ExtendedStatistic": "p99"}), &[]);
        assert!(matches!(
            error,
            AlarmRuleError::Invalid {
                field: "ExtendedStatistic",
                ..
            }
        ));
    }

    #[test]
    fn more_datapoints_to_alarm_than_evaluation_periods_is_invalid() {
        let error = error_with(json!({"DatapointsToAlarm": 4}), &[]);
        assert!(matches!(
            error,
            AlarmRuleError::Invalid {
                field: "DatapointsToAlarm",
                ..
            }
        ));
    }

    #[test]
    fn an_unknown_treat_missing_data_is_invalid() {
        let error = error_with(json!({"TreatMissingData": "zero"}), &[]);
        assert!(matches!(
            error,
            AlarmRuleError::Invalid {
                field: "TreatMissingData",
                ..
            }
        ));
    }

    // --- statistics ---

    #[test]
    fn basic_statistics_over_a_period() {
        let values = [3.0, 1.0, 2.0, 6.0];
        assert_eq!(Statistic::SampleCount.compute(&values), Some(4.0));
        assert_eq!(Statistic::Sum.compute(&values), Some(12.0));
        assert_eq!(Statistic::Average.compute(&values), Some(3.0));
        assert_eq!(Statistic::Minimum.compute(&values), Some(1.0));
        assert_eq!(Statistic::Maximum.compute(&values), Some(6.0));
        assert_eq!(Statistic::Sum.compute(&[]), None);
    }

    #[test]
    fn p99_of_1_to_100_is_99_and_of_1_to_1000_is_990() {
        let hundred: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(Statistic::Percentile(99.0).compute(&hundred), Some(99.0));
        let thousand: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(Statistic::Percentile(99.0).compute(&thousand), Some(990.0));
    }

    #[test]
    fn p99_of_few_samples_is_their_maximum() {
        assert_eq!(
            Statistic::Percentile(99.0).compute(&[5.0, 700.0, 10.0]),
            Some(700.0)
        );
    }

    #[test]
    fn extended_statistic_pnn_parses_to_that_percentile() {
        assert_eq!(
            rule_with(json!({"ExtendedStatistic": "p99"})).statistic,
            Statistic::Percentile(99.0)
        );
        assert_eq!(
            rule_with(json!({"ExtendedStatistic": "p99.9"})).statistic,
            Statistic::Percentile(99.9)
        );
    }

    // --- threshold crossing per operator ---

    #[test]
    fn greater_than_breaches_only_above() {
        let c = Comparison::GreaterThanThreshold;
        assert!(c.breaches(1.1, 1.0));
        assert!(!c.breaches(1.0, 1.0));
    }

    #[test]
    fn greater_than_or_equal_breaches_at_the_threshold() {
        let c = Comparison::GreaterThanOrEqualToThreshold;
        assert!(c.breaches(1.0, 1.0));
        assert!(!c.breaches(0.9, 1.0));
    }

    #[test]
    fn less_than_breaches_only_below() {
        let c = Comparison::LessThanThreshold;
        assert!(c.breaches(0.9, 1.0));
        assert!(!c.breaches(1.0, 1.0));
    }

    #[test]
    fn less_than_or_equal_breaches_at_the_threshold() {
        let c = Comparison::LessThanOrEqualToThreshold;
        assert!(c.breaches(1.0, 1.0));
        assert!(!c.breaches(1.1, 1.0));
    }

    #[test]
    fn each_operator_name_parses_to_its_comparison() {
        for (name, expected) in [
            ("GreaterThanThreshold", Comparison::GreaterThanThreshold),
            (
                "GreaterThanOrEqualToThreshold",
                Comparison::GreaterThanOrEqualToThreshold,
            ),
            ("LessThanThreshold", Comparison::LessThanThreshold),
            (
                "LessThanOrEqualToThreshold",
                Comparison::LessThanOrEqualToThreshold,
            ),
        ] {
            assert_eq!(
                rule_with(json!({ "ComparisonOperator": name })).comparison,
                expected
            );
        }
    }

    // --- M out of N and missing data: the CloudWatch User Guide's tables ---

    #[test]
    fn three_of_three_with_enough_real_points_ignores_the_treatment() {
        check_row(3, 3, "0 - X - X", [Okay; 4], Alarm);
        check_row(3, 3, "0 X X - X", [Alarm; 4], Okay);
    }

    #[test]
    fn three_of_three_one_good_point_and_four_missing_is_ok_for_every_treatment() {
        check_row(3, 3, "0 - - - -", [Okay; 4], Alarm);
    }

    #[test]
    fn all_missing_follows_the_treatment() {
        check_row(3, 3, "- - - - -", [Insufficient, Alarm, Alarm, Okay], Alarm);
        check_row(3, 3, "- - - - -", [Insufficient, Okay, Alarm, Okay], Okay);
    }

    #[test]
    fn three_of_three_one_recent_breach_alone_is_insufficient_when_missing() {
        check_row(3, 3, "- - - - X", [Insufficient, Okay, Alarm, Okay], Okay);
    }

    #[test]
    fn three_of_three_one_oldest_breach_alone_is_alarm_when_missing() {
        check_row(3, 3, "X - - - -", [Alarm, Okay, Alarm, Okay], Okay);
    }

    #[test]
    fn two_of_three_alarms_on_two_breaches_not_consecutive() {
        check_row(2, 3, "0 - X - X", [Alarm; 4], Okay);
        check_row(2, 3, "0 0 X 0 X", [Alarm; 4], Okay);
    }

    #[test]
    fn two_of_three_with_few_points_depends_on_the_treatment() {
        check_row(2, 3, "0 - X - -", [Okay, Okay, Alarm, Okay], Alarm);
        check_row(2, 3, "- - - - 0", [Okay, Okay, Alarm, Okay], Alarm);
        check_row(2, 3, "- - - - X", [Insufficient, Alarm, Alarm, Okay], Alarm);
    }

    #[test]
    fn m_of_n_counts_only_the_most_recent_n_real_points() {
        // 2 of 3: the two breaches are older than the last three points.
        check_row(2, 3, "X X 0 0 0", [Okay; 4], Alarm);
    }

    // --- the evaluator over time-scaled periods ---

    fn errors() -> MetricId {
        MetricId::new("AWS/Lambda", "Errors", [("FunctionName", "f")])
    }

    #[test]
    fn an_evaluator_starts_insufficient_and_alarms_on_a_breaching_period() {
        let scale = TimeScale::millis_per_minute(100);
        let rule = rule_with(json!({"EvaluationPeriods": 1, "TreatMissingData": "notBreaching"}));
        let mut evaluator = AlarmEvaluator::new(rule, scale);
        assert_eq!(evaluator.state(), Insufficient);
        let mut metrics = Metrics::new();
        metrics.record(&errors(), Duration::from_millis(10), 0.0);
        assert_eq!(
            evaluator.evaluate(&metrics, Duration::from_millis(100)),
            Okay
        );
        metrics.record(&errors(), Duration::from_millis(150), 1.0);
        // The period [100, 200) ms is not complete at 199 ms.
        assert_eq!(
            evaluator.evaluate(&metrics, Duration::from_millis(199)),
            Okay
        );
        assert_eq!(
            evaluator.evaluate(&metrics, Duration::from_millis(200)),
            Alarm
        );
        assert_eq!(evaluator.state(), Alarm);
    }

    #[test]
    fn samples_of_other_metrics_do_not_count() {
        let scale = TimeScale::millis_per_minute(100);
        let rule = rule_with(json!({"EvaluationPeriods": 1}));
        let mut evaluator = AlarmEvaluator::new(rule, scale);
        let mut metrics = Metrics::new();
        let other = MetricId::new("AWS/Lambda", "Errors", [("FunctionName", "g")]);
        metrics.record(&other, Duration::from_millis(10), 5.0);
        assert_eq!(
            evaluator.evaluate(&metrics, Duration::from_millis(100)),
            Insufficient
        );
    }

    #[test]
    fn the_statistic_is_computed_per_period() {
        let scale = TimeScale::millis_per_minute(100);
        let rule = rule_with(json!({
            "EvaluationPeriods": 2, "Statistic": "Sum", "Threshold": 2
        }));
        let evaluator = AlarmEvaluator::new(rule, scale);
        let mut metrics = Metrics::new();
        for ms in [10, 20, 30, 110] {
            metrics.record(&errors(), Duration::from_millis(ms), 1.0);
        }
        let points = evaluator.datapoints(&metrics, Duration::from_millis(200));
        assert_eq!(points, [None, None, Some(3.0), Some(1.0)]);
    }

    #[test]
    fn a_p99_latency_alarm_needs_three_slow_periods_in_a_row() {
        let scale = TimeScale::millis_per_minute(100);
        let rule = rule_with(json!({
            "MetricName": "Duration", "ExtendedStatistic": "p99",
            "Threshold": 1000, "TreatMissingData": "notBreaching"
        }));
        let mut evaluator = AlarmEvaluator::new(rule, scale);
        let duration = MetricId::new("AWS/Lambda", "Duration", [("FunctionName", "f")]);
        let mut metrics = Metrics::new();
        for period in 0..3_u64 {
            for i in 0..100_u64 {
                let slow = if i == 99 { 5000.0 } else { 10.0 };
                metrics.record(
                    &duration,
                    Duration::from_millis(period * 100) + Duration::from_micros(i * 900),
                    slow,
                );
            }
            // p99 of 99 fast samples and one slow one is fast.
        }
        assert_eq!(
            evaluator.evaluate(&metrics, Duration::from_millis(300)),
            Okay
        );
        for period in 3..6_u64 {
            for i in 0..100_u64 {
                metrics.record(
                    &duration,
                    Duration::from_millis(period * 100) + Duration::from_micros(i * 900),
                    if i >= 98 { 5000.0 } else { 10.0 },
                );
            }
        }
        assert_eq!(
            evaluator.evaluate(&metrics, Duration::from_millis(500)),
            Okay
        );
        assert_eq!(
            evaluator.evaluate(&metrics, Duration::from_millis(600)),
            Alarm
        );
    }

    // --- app-sam.yaml's alarms ---

    fn app_template() -> Template {
        Template::from_path(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../app-sam.yaml"),
        )
        .unwrap()
    }

    fn prod_resolver(template: &Template) -> Resolver {
        Resolver::for_template(
            template,
            [("Stage", "prod"), ("ServiceName", "TimeService")],
        )
        .with_ref("TimeFunction", "TimeService-prod-time")
        .with_ref("TimeApi", "abc123defg")
    }

    #[test]
    fn app_sam_yaml_has_three_alarm_rules() {
        let template = app_template();
        let rules = alarm_rules(&template, &prod_resolver(&template)).unwrap();
        assert_eq!(
            rules.keys().collect::<Vec<_>>(),
            ["Api5xxAlarm", "ErrorsAlarm", "LatencyAlarm"]
        );
    }

    #[test]
    fn app_sam_yaml_errors_alarm_is_any_error_through_the_live_alias() {
        let template = app_template();
        let rules = alarm_rules(&template, &prod_resolver(&template)).unwrap();
        let rule = &rules["ErrorsAlarm"];
        assert_eq!(rule.name.as_deref(), Some("TimeService-prod-errors"));
        assert_eq!(
            rule.metric,
            MetricId::new(
                "AWS/Lambda",
                "Errors",
                [
                    ("FunctionName", "TimeService-prod-time"),
                    ("Resource", "TimeService-prod-time:live")
                ]
            )
        );
        assert_eq!(rule.statistic, Statistic::Sum);
        assert_eq!((rule.period_seconds, rule.evaluation_periods), (60, 1));
        assert_eq!(rule.datapoints_to_alarm, 1);
        assert_eq!(rule.threshold, 0.0);
        assert_eq!(rule.comparison, Comparison::GreaterThanThreshold);
        assert_eq!(rule.treat_missing_data, TreatMissingData::NotBreaching);
    }

    #[test]
    fn app_sam_yaml_5xx_alarm_watches_the_apis_default_stage() {
        let template = app_template();
        let rules = alarm_rules(&template, &prod_resolver(&template)).unwrap();
        let rule = &rules["Api5xxAlarm"];
        assert_eq!(rule.name.as_deref(), Some("TimeService-prod-5xx"));
        assert_eq!(
            rule.metric,
            MetricId::new(
                "AWS/ApiGateway",
                "5xx",
                [("ApiId", "abc123defg"), ("Stage", "$default")]
            )
        );
        assert_eq!(rule.statistic, Statistic::Sum);
        assert_eq!(rule.threshold, 0.0);
    }

    #[test]
    fn app_sam_yaml_latency_alarm_is_p99_over_three_periods() {
        let template = app_template();
        let rules = alarm_rules(&template, &prod_resolver(&template)).unwrap();
        let rule = &rules["LatencyAlarm"];
        assert_eq!(rule.name.as_deref(), Some("TimeService-prod-latency-p99"));
        assert_eq!(rule.metric.name, "Duration");
        assert_eq!(rule.statistic, Statistic::Percentile(99.0));
        assert_eq!((rule.evaluation_periods, rule.datapoints_to_alarm), (3, 3));
        assert_eq!(rule.threshold, 1000.0);
        assert_eq!(rule.treat_missing_data, TreatMissingData::NotBreaching);
    }

    #[test]
    fn app_sam_yaml_thresholds_follow_stack_parameters() {
        let template = app_template();
        let resolver = Resolver::for_template(
            &template,
            [
                ("Stage", "prod"),
                ("ServiceName", "TimeService"),
                ("LatencyP99AlarmMs", "250"),
            ],
        )
        .with_ref("TimeFunction", "f")
        .with_ref("TimeApi", "a");
        let rules = alarm_rules(&template, &resolver).unwrap();
        assert_eq!(rules["LatencyAlarm"].threshold, 250.0);
    }

    #[test]
    fn an_alarm_whose_dimensions_do_not_resolve_is_an_error_naming_it() {
        let template = app_template();
        let resolver = Resolver::for_template(
            &template,
            [("Stage", "prod"), ("ServiceName", "TimeService")],
        );
        let error = alarm_rules(&template, &resolver).unwrap_err();
        // Every alarm's dimensions name the function or the API; whichever
        // comes first is named.
        assert!(
            matches!(&error, AlarmsError::Resolve { alarm, .. }
                if ["Api5xxAlarm", "ErrorsAlarm", "LatencyAlarm"].contains(&alarm.as_str())),
            "{error}"
        );
    }

    #[test]
    fn no_traffic_is_no_alarm_for_app_sam_yaml_alarms() {
        let template = app_template();
        let rules = alarm_rules(&template, &prod_resolver(&template)).unwrap();
        let metrics = Metrics::new();
        for (name, rule) in rules {
            let mut evaluator = AlarmEvaluator::new(rule, TimeScale::default());
            assert_eq!(
                evaluator.evaluate(&metrics, Duration::from_secs(10)),
                Okay,
                "{name}"
            );
        }
    }
}
