//! One evaluation pass: a batch of events in, executions and evaluator state out.
//!
//! The store runs [`EventEvaluator::evaluate`] inside the transaction that also advances the
//! evaluator's cursor. Everything this module reads and writes goes through that transaction,
//! and the rules themselves live in `herald_core::evaluate`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::automation::{ActionSpec, EventSpec, RunMetricEvent};
use herald_core::evaluate::{Crossing, Decision, MetricPoint, MetricWindowState, evaluate_threshold};
use herald_core::filter::{RunFields, run_document};
use herald_core::ids::{AutomationId, ExecutionId, ProjectId, RunId};
use herald_core::metric::{format_number, metric_in_row};
use herald_core::model::{ExecutionState, RunState};
use herald_core::template::{MAX_RENDERED_BYTES, PayloadTemplate, TemplateVariables};
use herald_store::{
    Automation, BatchEvaluator, EvaluationReport, EvaluationTx, EventKind, HistoryRow, NewExecution, RunContext,
    StoreError, StoreResult, StoredEvent,
};
use serde_json::{Map, Value};

/// How many history rows one read fetches while seeding a window from older history.
const SEED_CHUNK_ROWS: usize = 256;

/// The maximum number of history rows read to seed one window. A metric logged rarely among many other
/// rows may therefore start with a partial window, which fills from new rows.
const SEED_MAX_ROWS: usize = 10_000;

/// Settings that shape what executions contain.
#[derive(Clone, Debug)]
pub struct EvaluatorSettings {
    /// The URL people use to reach Herald, for `${run_url}`. No trailing slash.
    pub public_url: String,
}

/// Evaluates events against automations. It keeps no state between passes, because all
/// evaluation state is in the store.
#[derive(Clone, Debug)]
pub struct EventEvaluator {
    settings: EvaluatorSettings,
}

impl EventEvaluator {
    /// Creates an evaluator.
    pub fn new(settings: EvaluatorSettings) -> Self {
        Self { settings }
    }
}

/// The data one pass has loaded so far, so that a batch of events for the same run reads each
/// automation list, run and window state once.
#[derive(Default)]
struct PassCache {
    automations: HashMap<ProjectId, Arc<Vec<Automation>>>,
    runs: HashMap<RunId, Option<Arc<RunContext>>>,
    states: HashMap<(AutomationId, RunId), MetricWindowState>,
}

#[async_trait]
impl BatchEvaluator for EventEvaluator {
    async fn evaluate(&self, tx: &mut dyn EvaluationTx, events: &[StoredEvent]) -> StoreResult<EvaluationReport> {
        let mut cache = PassCache::default();
        let mut report = EvaluationReport { events: events.len(), ..EvaluationReport::default() };

        for event in events {
            match event.kind {
                EventKind::RunHistory => self.evaluate_history(tx, event, &mut cache, &mut report).await?,
                // Run-state automations are not evaluated yet; the events are kept so that
                // they can be.
                EventKind::RunState => {}
            }
        }

        for ((automation, run), state) in &cache.states {
            tx.save_window_state(*automation, *run, state).await?;
        }
        Ok(report)
    }
}

impl EventEvaluator {
    async fn evaluate_history(
        &self,
        tx: &mut dyn EvaluationTx,
        event: &StoredEvent,
        cache: &mut PassCache,
        report: &mut EvaluationReport,
    ) -> StoreResult<()> {
        let Some(run_id) = event.run_id else {
            return Err(StoreError::Corrupt(format!("history event {} has no run", event.seq)));
        };
        let (first_line, last_line) = line_range(event)?;

        let automations = match cache.automations.entry(event.project_id) {
            Entry::Occupied(entry) => entry.into_mut().clone(),
            Entry::Vacant(entry) => {
                let automations = tx.active_automations(event.project_id, "RUN_METRIC").await?;
                entry.insert(Arc::new(automations)).clone()
            }
        };
        if automations.is_empty() {
            return Ok(());
        }

        let run = match cache.runs.entry(run_id) {
            Entry::Occupied(entry) => entry.into_mut().clone(),
            Entry::Vacant(entry) => entry.insert(tx.run_context(run_id).await?.map(Arc::new)).clone(),
        };
        let Some(run) = run else {
            return Ok(());
        };
        let run = run_as_logged(&run, event);
        let document = run_filter_document(&run);
        let rows = parse_rows(tx.history_rows(run_id, first_line, last_line).await?);

        for automation in automations.iter() {
            let EventSpec::RunMetric(metric_event) = &automation.spec.event;
            if let Some(filter) = &metric_event.run_filter
                && !filter.matches(&document)
            {
                continue;
            }
            let threshold = &metric_event.threshold;
            let points = metric_points(&rows, &threshold.metric);

            let key = (automation.id, run_id);
            let stored = match cache.states.remove(&key) {
                Some(state) => Some(state),
                None => tx.window_state(automation.id, run_id).await?,
            };
            let mut state = match stored {
                // Nothing to remember until the run logs the metric.
                None if points.is_empty() => continue,
                Some(state) => state,
                None => {
                    let history = seed_points(tx, run_id, &threshold.metric, first_line, threshold.window_size).await?;
                    MetricWindowState::seeded(threshold, &history)
                }
            };
            if !state.fits(threshold) || state.misses_rows_before(first_line) {
                let history = seed_points(tx, run_id, &threshold.metric, first_line, threshold.window_size).await?;
                state.reseed(threshold, &history);
            }
            state.last_line = Some(state.last_line.map_or(last_line, |seen| seen.max(last_line)));

            let cooldown = Duration::from_secs(automation.spec.cooldown_seconds);
            let plain_points: Vec<MetricPoint> = points.iter().map(|(_, point)| *point).collect();
            let crossings = evaluate_threshold(threshold, &mut state, &plain_points, event.created_at, cooldown);
            cache.states.insert(key, state);

            for crossing in crossings {
                let line = points.iter().find(|(_, point)| point.step == crossing.step).map(|(line, _)| *line);
                let execution = self.execution_for(automation, metric_event, &run, event, line, &crossing);
                tx.insert_execution(&execution).await?;
                report.executions += 1;
                if execution.state == ExecutionState::Pending {
                    report.deliveries += 1;
                }
            }
        }
        Ok(())
    }

    fn execution_for(
        &self,
        automation: &Automation,
        metric_event: &RunMetricEvent,
        run: &RunContext,
        event: &StoredEvent,
        line: Option<i64>,
        crossing: &Crossing,
    ) -> NewExecution {
        let variables = self.run_metric_variables(automation, metric_event, run, crossing);

        let mut error = None;
        let (state, request_body, skip_reason) = match (crossing.decision, &automation.spec.action) {
            (Decision::SkipCooldown { until }, _) => {
                (ExecutionState::Skipped, None, Some(format!("inside the cooldown, which ends at {until}")))
            }
            (Decision::Fire, ActionSpec::NoOp) => (ExecutionState::Succeeded, None, None),
            (Decision::Fire, ActionSpec::GenericWebhook { payload, .. }) => {
                let body = match payload {
                    Some(template) => template.render(&variables),
                    None => default_run_metric_payload().render(&variables),
                };
                if body.len() > MAX_RENDERED_BYTES {
                    tracing::warn!(automation.id = %automation.id, bytes = body.len(), "rendered payload over the limit");
                    error = Some(format!(
                        "the rendered payload is {} bytes, over the limit of {MAX_RENDERED_BYTES} bytes; \
                         use fewer or shorter variables, such as ${{metric_value}} instead of ${{metric_values}}",
                        body.len()
                    ));
                    (ExecutionState::Failed, None, None)
                } else {
                    (ExecutionState::Pending, Some(body), None)
                }
            }
        };

        NewExecution {
            id: ExecutionId::new(),
            automation_id: automation.id,
            automation_name: automation.spec.name.clone(),
            revision: automation.revision,
            event_seq: event.seq,
            event_line: line,
            event_type: "RUN_METRIC".to_owned(),
            run_id: Some(run.run.id),
            state,
            action_type: automation.spec.action.action_type().to_owned(),
            integration_id: automation.spec.action.integration_id(),
            request_body,
            event_data: Value::Object(
                variables.0.into_iter().map(|(name, value)| (name, Value::String(value))).collect(),
            ),
            skip_reason,
            error,
            created_at: event.created_at,
        }
    }

    fn run_metric_variables(
        &self,
        automation: &Automation,
        metric_event: &RunMetricEvent,
        run: &RunContext,
        crossing: &Crossing,
    ) -> TemplateVariables {
        let window: Vec<Value> = crossing.window.iter().map(|value| value.map_or(Value::Null, Value::from)).collect();

        let mut variables = TemplateVariables::default();
        variables.set("event_type", "RUN_METRIC");
        variables.set("event_author", run.user_name.as_str());
        variables.set("entity_name", run.entity_name.as_str());
        variables.set("project_name", run.project_name.as_str());
        variables.set("automation_name", automation.spec.name.as_str());
        variables.set("run_id", run.run.name.as_str());
        variables.set("run_name", run.run.display_name.as_str());
        variables.set("run_url", self.run_url(run));
        variables.set("run_status", run.run.state.as_str());
        variables.set("metric_name", metric_event.threshold.metric.as_str());
        variables.set("metric_value", format_number(crossing.value));
        variables.set("metric_values", Value::Array(window).to_string());
        variables.set("threshold", format_number(metric_event.threshold.threshold));
        variables.set("step", crossing.step.to_string());
        variables
    }

    fn run_url(&self, run: &RunContext) -> String {
        let Ok(mut url) = url::Url::parse(&self.settings.public_url) else {
            return String::new();
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([&run.entity_name, &run.project_name, "runs", &run.run.name]);
        }
        url.to_string()
    }
}

/// Returns the payload sent when an automation has no template: every run-metric variable.
fn default_run_metric_payload() -> PayloadTemplate {
    let names = [
        "event_type",
        "automation_name",
        "event_author",
        "entity_name",
        "project_name",
        "run_id",
        "run_name",
        "run_url",
        "metric_name",
        "metric_value",
        "metric_values",
        "threshold",
        "step",
    ];
    let document: Map<String, Value> =
        names.iter().map(|name| ((*name).to_owned(), Value::String(format!("${{{name}}}")))).collect();
    PayloadTemplate::from_document(Value::Object(document), "default payload").expect("every name is a known variable")
}

fn line_range(event: &StoredEvent) -> StoreResult<(i64, i64)> {
    let first = event.data.get("first_line").and_then(Value::as_i64);
    let last = event.data.get("last_line").and_then(Value::as_i64);
    match (first, last) {
        (Some(first), Some(last)) if first <= last => Ok((first, last)),
        _ => Err(StoreError::Corrupt(format!("history event {} has no valid line range: {}", event.seq, event.data))),
    }
}

/// Returns the run as it was when the event's rows were logged. The request that carries a
/// run's last rows also ends it, and the store applies both before evaluation, so without this
/// a filter on `state: RUNNING` would never see those rows.
fn run_as_logged(run: &Arc<RunContext>, event: &StoredEvent) -> Arc<RunContext> {
    let logged_state = event.data.get("run_state").and_then(Value::as_str).and_then(RunState::parse);
    match logged_state {
        Some(state) if state != run.run.state => {
            let mut as_logged = RunContext::clone(run);
            as_logged.run.state = state;
            Arc::new(as_logged)
        }
        _ => run.clone(),
    }
}

fn run_filter_document(run: &RunContext) -> Value {
    run_document(RunFields {
        name: &run.run.name,
        display_name: &run.run.display_name,
        state: run.run.state.as_str(),
        tags: &run.run.tags,
        username: &run.user_name,
        group: run.run.group.as_deref(),
        job_type: run.run.job_type.as_deref(),
        notes: run.run.notes.as_deref(),
        config: run.run.config.as_ref(),
    })
}

/// A history row parsed once for every automation that reads it.
struct ParsedRow {
    line: i64,
    step: i64,
    data: Map<String, Value>,
}

/// Parses rows and sorts them by step, because windows follow step order, not the order in
/// which lines arrived. Rows that are not JSON objects are skipped; the API stores only
/// objects, so such a row means a hand-edited database.
fn parse_rows(rows: Vec<HistoryRow>) -> Vec<ParsedRow> {
    let mut parsed: Vec<ParsedRow> = rows
        .into_iter()
        .filter_map(|row| match serde_json::from_str::<Value>(&row.data) {
            Ok(Value::Object(data)) => Some(ParsedRow { line: row.line, step: row.step, data }),
            _ => {
                tracing::warn!(line = row.line, "skipping a history row that is not a JSON object");
                None
            }
        })
        .collect();
    parsed.sort_by_key(|row| (row.step, row.line));
    parsed
}

/// Returns the rows' values of `metric` with their line indexes, in step order.
fn metric_points(rows: &[ParsedRow], metric: &str) -> Vec<(i64, MetricPoint)> {
    rows.iter()
        .filter_map(|row| {
            metric_in_row(&row.data, metric).map(|value| (row.line, MetricPoint { step: row.step, value }))
        })
        .collect()
}

/// Reads the last `count` values of `metric` logged before `before_line`, in step order.
async fn seed_points(
    tx: &mut dyn EvaluationTx,
    run: RunId,
    metric: &str,
    before_line: i64,
    count: usize,
) -> StoreResult<Vec<MetricPoint>> {
    let mut newest_first = Vec::with_capacity(count);
    let mut cursor = before_line;
    let mut scanned = 0;

    while newest_first.len() < count && scanned < SEED_MAX_ROWS {
        let rows = tx.history_rows_before(run, cursor, SEED_CHUNK_ROWS).await?;
        let Some(oldest) = rows.last() else {
            break;
        };
        cursor = oldest.line;
        scanned += rows.len();
        for row in parse_rows(rows).into_iter().rev() {
            if let Some(value) = metric_in_row(&row.data, metric) {
                newest_first.push(MetricPoint { step: row.step, value });
            }
        }
    }

    newest_first.truncate(count);
    newest_first.reverse();
    Ok(newest_first)
}
