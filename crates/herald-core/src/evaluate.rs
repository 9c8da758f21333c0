//! Evaluation of run-metric conditions, one (automation, run) pair at a time.
//!
//! The evaluator keeps a [`MetricWindowState`] per pair: the last `window_size` logged
//! values, whether the condition held at the last full window, and when the pair last fired.
//! The store saves this state in the same transaction as the executions it produces, so a
//! restart neither loses a crossing nor fires one twice.
//!
//! Rules:
//! - A condition is evaluated only once the window is full. A window without a finite
//!   value has no data, and a condition on no data is false.
//! - The automation fires when the condition turns from false to true (a crossing), not on
//!   every row while it stays true.
//! - A crossing inside the cooldown after the pair's last firing is recorded as skipped.
//! - Points at or before the last evaluated step are ignored, so a client that re-sends
//!   history lines after a retry or a resume does not count them twice.
//! - Time comes from the event, never from the wall clock, so re-evaluating the same
//!   events gives the same result.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::automation::ThresholdFilter;
use crate::timestamp::Timestamp;

/// One logged value of a metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricPoint {
    /// The history row's `_step`.
    pub step: i64,
    /// The value, `None` when it is not a finite number.
    pub value: Option<f64>,
}

/// The evaluator's state of one (automation, run) pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricWindowState {
    /// The metric the window holds.
    pub metric: String,
    /// The window size the values were collected for.
    pub window_size: usize,
    /// The most recent logged values, oldest first; `null` stands for a non-finite value.
    pub values: VecDeque<Option<f64>>,
    /// The step of the newest value taken into the window.
    pub last_step: Option<i64>,
    /// Whether the condition held at the last full window.
    pub condition_true: bool,
    /// When the pair last fired, in milliseconds since the epoch.
    pub last_fired_at: Option<Timestamp>,
    /// The last history line the evaluator looked at for the pair. A later event that starts
    /// after the next line means rows went by unseen, for example while the automation was
    /// disabled, and the window is filled again from history.
    #[serde(default)]
    pub last_line: Option<i64>,
}

/// The outcome of a crossing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The automation acts.
    Fire,
    /// The crossing falls inside the cooldown; it is recorded but does not act.
    SkipCooldown {
        /// When the cooldown ends.
        until: Timestamp,
    },
}

/// A false-to-true transition of a condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Crossing {
    /// The step of the row that completed the crossing window.
    pub step: i64,
    /// The aggregated value that crossed.
    pub value: f64,
    /// The window's values, oldest first.
    pub window: Vec<Option<f64>>,
    /// Whether the automation acts.
    pub decision: Decision,
}

impl MetricWindowState {
    /// Starts the state for a pair from the run's last logged values of the metric, which
    /// the caller reads from the stored history. `history` is in step order; only its last
    /// `window_size` points are kept.
    pub fn seeded(filter: &ThresholdFilter, history: &[MetricPoint]) -> Self {
        let keep_from = history.len().saturating_sub(filter.window_size);
        let kept = &history[keep_from..];
        Self {
            metric: filter.metric.clone(),
            window_size: filter.window_size,
            values: kept.iter().map(|point| point.value).collect(),
            last_step: kept.last().map(|point| point.step),
            condition_true: false,
            last_fired_at: None,
            last_line: None,
        }
    }

    /// Returns true if and only if the window was collected for the filter's metric and
    /// window size. After an edit that changes either, the caller seeds a new window from
    /// history with [`MetricWindowState::reseed`].
    pub fn fits(&self, filter: &ThresholdFilter) -> bool {
        self.metric == filter.metric && self.window_size == filter.window_size
    }

    /// Returns true if and only if rows before `first_line` went by without the evaluator
    /// seeing them, so the window misses values.
    pub fn misses_rows_before(&self, first_line: i64) -> bool {
        self.last_line.is_some_and(|last| first_line > last.saturating_add(1))
    }

    /// Replaces the window from history after an edit or a gap. The crossing state and the
    /// cooldown are kept, so that an edit that keeps the condition true does not fire again.
    /// A different metric is a different condition, so its crossing state starts false.
    pub fn reseed(&mut self, filter: &ThresholdFilter, history: &[MetricPoint]) {
        let fresh = Self::seeded(filter, history);
        if self.metric != fresh.metric {
            self.condition_true = false;
        }
        self.metric = fresh.metric;
        self.window_size = fresh.window_size;
        self.values = fresh.values;
        self.last_step = fresh.last_step;
    }
}

/// Feeds new points into the window and returns the crossings they cause.
///
/// `points` must be in step order. `event_time` is when the store recorded the event that
/// carried them; `cooldown` is the automation's cooldown.
pub fn evaluate_threshold(
    filter: &ThresholdFilter,
    state: &mut MetricWindowState,
    points: &[MetricPoint],
    event_time: Timestamp,
    cooldown: Duration,
) -> Vec<Crossing> {
    let mut crossings = Vec::new();

    for point in points {
        if state.last_step.is_some_and(|last| point.step <= last) {
            continue;
        }
        state.last_step = Some(point.step);
        state.values.push_back(point.value);
        while state.values.len() > filter.window_size {
            state.values.pop_front();
        }
        if state.values.len() < filter.window_size {
            continue;
        }

        let window: Vec<Option<f64>> = state.values.iter().copied().collect();
        let aggregated = filter.aggregation.apply(&window);
        let holds = aggregated.is_some_and(|value| filter.comparison.holds(value, filter.threshold));
        let crossed = holds && !state.condition_true;
        state.condition_true = holds;
        let Some(value) = aggregated.filter(|_| crossed) else {
            continue;
        };

        let decision = match state.last_fired_at {
            Some(fired_at) if event_time < fired_at.plus(cooldown) => {
                Decision::SkipCooldown { until: fired_at.plus(cooldown) }
            }
            _ => {
                state.last_fired_at = Some(event_time);
                Decision::Fire
            }
        };
        crossings.push(Crossing { step: point.step, value, window, decision });
    }
    crossings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{Aggregation, Comparison};

    fn filter(aggregation: Aggregation, window_size: usize, comparison: Comparison, threshold: f64) -> ThresholdFilter {
        ThresholdFilter { metric: "loss".into(), aggregation, window_size, comparison, threshold }
    }

    fn points(values: &[Option<f64>]) -> Vec<MetricPoint> {
        values.iter().enumerate().map(|(step, value)| MetricPoint { step: step as i64, value: *value }).collect()
    }

    fn finite(values: &[f64]) -> Vec<Option<f64>> {
        values.iter().copied().map(Some).collect()
    }

    /// Feeds the values one event at a time and returns the steps that fired.
    #[track_caller]
    fn fired_steps(filter: &ThresholdFilter, values: &[Option<f64>], cooldown: Duration) -> Vec<i64> {
        let mut state = MetricWindowState::seeded(filter, &[]);
        let mut fired = Vec::new();
        for (index, point) in points(values).iter().enumerate() {
            let event_time = Timestamp(index as i64 * 1_000);
            for crossing in evaluate_threshold(filter, &mut state, std::slice::from_ref(point), event_time, cooldown) {
                if crossing.decision == Decision::Fire {
                    fired.push(crossing.step);
                }
            }
        }
        fired
    }

    #[test]
    fn average_crossing_fires_once() {
        let filter = filter(Aggregation::Average, 3, Comparison::Lt, 0.2);
        let values = finite(&[1.0, 0.5, 0.3, 0.1, 0.05, 0.02, 0.01]);
        assert_eq!(fired_steps(&filter, &values, Duration::ZERO), vec![4]);
    }

    #[test]
    fn crossing_reports_value_and_window() {
        let filter = filter(Aggregation::Average, 3, Comparison::Lt, 0.2);
        let mut state = MetricWindowState::seeded(&filter, &[]);
        let crossings = evaluate_threshold(
            &filter,
            &mut state,
            &points(&finite(&[1.0, 0.5, 0.3, 0.1, 0.05])),
            Timestamp(0),
            Duration::ZERO,
        );
        assert_eq!(crossings.len(), 1);
        assert_eq!(crossings[0].value, (0.3 + 0.1 + 0.05) / 3.0);
        assert_eq!(crossings[0].window, finite(&[0.3, 0.1, 0.05]));
    }

    #[test]
    fn partial_window_never_fires() {
        let filter = filter(Aggregation::Latest, 5, Comparison::Gt, 0.0);
        assert_eq!(fired_steps(&filter, &finite(&[1.0, 2.0, 3.0, 4.0]), Duration::ZERO), Vec::<i64>::new());
    }

    #[test]
    fn refires_after_condition_turns_false_without_cooldown() {
        let filter = filter(Aggregation::Latest, 1, Comparison::Gt, 1.0);
        let values = finite(&[2.0, 3.0, 0.0, 5.0, 6.0]);
        assert_eq!(fired_steps(&filter, &values, Duration::ZERO), vec![0, 3]);
    }

    #[test]
    fn cooldown_skips_second_crossing() {
        let filter = filter(Aggregation::Latest, 1, Comparison::Gt, 1.0);
        let values = finite(&[2.0, 0.0, 2.0, 0.0, 2.0]);
        // Events are one second apart: the crossing at 2 s is inside a 3 s cooldown, the one
        // at 4 s is not.
        assert_eq!(fired_steps(&filter, &values, Duration::from_secs(3)), vec![0, 4]);
    }

    #[test]
    fn skipped_crossing_is_reported() {
        let filter = filter(Aggregation::Latest, 1, Comparison::Gt, 1.0);
        let mut state = MetricWindowState::seeded(&filter, &[]);
        state.last_fired_at = Some(Timestamp(0));
        let crossings =
            evaluate_threshold(&filter, &mut state, &points(&finite(&[5.0])), Timestamp(10), Duration::from_secs(1));
        assert_eq!(crossings[0].decision, Decision::SkipCooldown { until: Timestamp(1_000) });
        assert!(state.condition_true);
        assert_eq!(state.last_fired_at, Some(Timestamp(0)));
    }

    #[test]
    fn non_finite_values_are_skipped_by_aggregation() {
        let filter = filter(Aggregation::Average, 3, Comparison::Lt, 0.2);
        // [NaN, 0.1, 0.1] averages the finite values to 0.1 at step 2.
        assert_eq!(fired_steps(&filter, &[None, Some(0.1), Some(0.1)], Duration::ZERO), vec![2]);
    }

    #[test]
    fn window_without_finite_values_is_false() {
        let filter = filter(Aggregation::Max, 2, Comparison::Lt, 10.0);
        assert_eq!(fired_steps(&filter, &[None, None, None], Duration::ZERO), Vec::<i64>::new());
        // No data turns the condition false, so a later finite window crosses again.
        let values = [Some(1.0), Some(1.0), None, None, Some(1.0), Some(1.0)];
        assert_eq!(fired_steps(&filter, &values, Duration::ZERO), vec![1, 4]);
    }

    #[test]
    fn latest_reads_last_finite_value() {
        let filter = filter(Aggregation::Latest, 2, Comparison::Gt, 1.0);
        assert_eq!(fired_steps(&filter, &[Some(5.0), None], Duration::ZERO), vec![1]);
    }

    #[test]
    fn resent_points_are_ignored() {
        let filter = filter(Aggregation::Latest, 1, Comparison::Gt, 1.0);
        let mut state = MetricWindowState::seeded(&filter, &[]);
        let batch = points(&finite(&[0.0, 5.0]));
        assert_eq!(evaluate_threshold(&filter, &mut state, &batch, Timestamp(0), Duration::ZERO).len(), 1);
        let after_first = state.clone();
        assert!(evaluate_threshold(&filter, &mut state, &batch, Timestamp(0), Duration::ZERO).is_empty());
        assert_eq!(state, after_first);
    }

    #[test]
    fn seeded_window_comes_from_history() {
        let filter = filter(Aggregation::Average, 2, Comparison::Lt, 1.0);
        let history = points(&finite(&[9.0, 0.5]));
        let mut state = MetricWindowState::seeded(&filter, &history);
        let next = [MetricPoint { step: 2, value: Some(0.5) }];
        let crossings = evaluate_threshold(&filter, &mut state, &next, Timestamp(0), Duration::ZERO);
        assert_eq!(crossings.len(), 1);
        assert_eq!(crossings[0].window, finite(&[0.5, 0.5]));
    }

    #[test]
    fn reseed_keeps_crossing_state() {
        let old = filter(Aggregation::Latest, 1, Comparison::Gt, 1.0);
        let mut state = MetricWindowState::seeded(&old, &[]);
        evaluate_threshold(&old, &mut state, &points(&finite(&[5.0])), Timestamp(0), Duration::ZERO);
        assert!(state.condition_true);

        let edited = filter(Aggregation::Max, 2, Comparison::Gt, 2.0);
        assert!(!state.fits(&edited));
        state.reseed(&edited, &points(&finite(&[5.0])));
        let next = [MetricPoint { step: 1, value: Some(6.0) }];
        assert!(evaluate_threshold(&edited, &mut state, &next, Timestamp(0), Duration::ZERO).is_empty());
    }

    #[test]
    fn reseed_for_another_metric_resets_crossing() {
        let loss = filter(Aggregation::Latest, 1, Comparison::Lt, 1.0);
        let mut state = MetricWindowState::seeded(&loss, &[]);
        evaluate_threshold(&loss, &mut state, &points(&finite(&[0.5])), Timestamp(0), Duration::ZERO);
        assert!(state.condition_true);

        let accuracy = ThresholdFilter { metric: "acc".into(), ..loss };
        state.reseed(&accuracy, &[]);
        let next = [MetricPoint { step: 1, value: Some(0.5) }];
        let crossings = evaluate_threshold(&accuracy, &mut state, &next, Timestamp(0), Duration::ZERO);
        assert_eq!(crossings.len(), 1);
    }

    #[test]
    fn gap_in_lines_is_detected() {
        let filter = filter(Aggregation::Latest, 1, Comparison::Lt, 1.0);
        let mut state = MetricWindowState::seeded(&filter, &[]);
        assert!(!state.misses_rows_before(10));
        state.last_line = Some(4);
        assert!(!state.misses_rows_before(5));
        assert!(!state.misses_rows_before(3));
        assert!(state.misses_rows_before(6));
    }

    #[test]
    fn state_without_last_line_still_reads() {
        let text = r#"{"metric":"loss","window_size":1,"values":[1.0],"last_step":0,"condition_true":false,"last_fired_at":null}"#;
        let state: MetricWindowState = serde_json::from_str(text).unwrap();
        assert_eq!(state.last_line, None);
    }

    #[test]
    fn state_survives_serialization() {
        let filter = filter(Aggregation::Average, 2, Comparison::Lt, 1.0);
        let mut state = MetricWindowState::seeded(&filter, &points(&[None, Some(0.5)]));
        state.last_fired_at = Some(Timestamp(42));
        let text = serde_json::to_string(&state).unwrap();
        let back: MetricWindowState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
    }
}
