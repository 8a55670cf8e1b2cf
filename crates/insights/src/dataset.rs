//! The records that flows drive, each with its history normalized from the event log.
//!
//! Every figure (funnel, cycle times, coverage, adoption, audit) is computed from a
//! [`Dataset`], never from the store directly, so that tests can build one by hand
//! and so that imported history counts like history lived in the engine: an
//! `imported` event carries the dates a record had in the system it came from, and
//! [`Dataset::load`] puts them in place of the engine's own creation and stage events
//! that came before it.
//!
//! Parsing is tolerant: unknown event kinds are ignored, an event whose details do
//! not parse is skipped, and a record whose document does not decode is counted in
//! [`Dataset::skipped`] rather than failing the whole load.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};
use stagecraft_model::{FlowFile, Id};
use stagecraft_pack::Definitions;
use stagecraft_runtime::Record;
use stagecraft_store::{Page, RecordId, Store, StoreError, StoredEvent};

/// How many record ids one page of a form listing asks for.
const PAGE: usize = 500;

/// Which records to load. The default loads every record of every form a flow drives.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only records owned by one of these users (`None`: everyone's, including
    /// records without an owner).
    pub owners: Option<BTreeSet<String>>,
    /// Only records driven by one of these flows (`None`: every flow).
    pub flows: Option<BTreeSet<Id>>,
}

impl Filter {
    /// Whether a record with this owner and flow passes.
    pub fn admits(&self, owner: Option<&str>, flow: Option<&Id>) -> bool {
        let owner_ok = self
            .owners
            .as_ref()
            .is_none_or(|owners| owner.is_some_and(|owner| owners.contains(owner)));
        let flow_ok =
            self.flows.as_ref().is_none_or(|flows| flow.is_some_and(|flow| flows.contains(flow)));
        owner_ok && flow_ok
    }
}

/// The records and their histories.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dataset {
    /// The records, by form and then by creation time.
    pub records: Vec<History>,
    /// Records whose stored document did not decode (left out of every figure).
    pub skipped: usize,
}

/// One record and what happened to it, oldest first in every list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct History {
    /// The record id.
    pub id: String,
    /// Its form.
    pub form: Id,
    /// The flow driving it, if one ever started.
    pub flow: Option<Id>,
    /// Its owner now.
    pub owner: Option<String>,
    /// The record whose stage started it as a sub-flow.
    pub parent: Option<String>,
    /// When it was created (for imported records: in the system it came from).
    pub created_at: i64,
    /// Who created it, when a person did.
    pub created_by: Option<String>,
    /// Its fields now.
    pub fields: Map<String, Value>,
    /// Its current stage, if a flow drives it.
    pub stage: Option<Id>,
    /// Every stage entry, in order (the initial stage first; a stage entered twice
    /// appears twice).
    pub stages: Vec<StageEntry>,
    /// How the flow ended, if it did.
    pub ended: Option<Ending>,
    /// Alerts raised.
    pub alerts: Vec<Mark>,
    /// SLA breaches: `name` is the stage, `detail` the approval for an approval's SLA.
    pub breaches: Vec<Mark>,
    /// Escalation steps run: `name` is the ladder.
    pub escalations: Vec<Mark>,
    /// Key actions done: `name` is the action.
    pub actions: Vec<Mark>,
    /// Approval decisions.
    pub decisions: Vec<DecisionMark>,
    /// Approvals requested, with the people asked (to tell a decision by someone
    /// else, in the audit).
    pub requests: Vec<RequestMark>,
    /// Approvals passed automatically: `name` is the approval, `detail` is `audited`
    /// when it was sampled for audit.
    pub auto_approvals: Vec<Mark>,
    /// Field changes, one per field per event.
    pub changes: Vec<FieldChange>,
    /// Every event, reduced to kind, time and actor (for activity figures).
    pub events: Vec<EventMark>,
    /// Where the history came from when it was imported (file or system).
    pub imported_from: Option<String>,
}

/// Entry into a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageEntry {
    /// The stage.
    pub stage: Id,
    /// When.
    pub at: i64,
    /// Who moved the record, when a person did.
    pub by: Option<String>,
}

/// The end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// The outcome of the terminal stage (`won`, `lost`, `signed`…).
    pub outcome: Id,
    /// When.
    pub at: i64,
}

/// Something named that happened at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// What (alert, stage, ladder, action, approval: see the list it is in).
    pub name: String,
    /// A second name where the list says so.
    pub detail: Option<String>,
    /// When.
    pub at: i64,
    /// Who, when a person did it.
    pub by: Option<String>,
}

/// A person's decision on an approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionMark {
    /// The approval.
    pub approval: String,
    /// Who decided.
    pub user: String,
    /// Yes or no.
    pub approve: bool,
    /// The approval's status after the decision (`pending`, `approved`, `rejected`).
    pub status: String,
    /// When.
    pub at: i64,
}

/// An approval requested from some people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestMark {
    /// The approval.
    pub approval: String,
    /// The people who may decide.
    pub approvers: Vec<String>,
    /// When.
    pub at: i64,
}

/// One field's change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// The field.
    pub field: String,
    /// Before (`null` when it was empty).
    pub before: Value,
    /// After.
    pub after: Value,
    /// When.
    pub at: i64,
    /// Who, when a person did it.
    pub by: Option<String>,
}

/// An event reduced to what activity figures need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventMark {
    /// The stored kind (`created`, `stage_changed`, …).
    pub kind: String,
    /// When.
    pub at: i64,
    /// Who, when a person ran the command.
    pub by: Option<String>,
}

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl Dataset {
    /// Loads every record of every form a flow drives, with its history, keeping
    /// those `filter` admits.
    pub fn load(
        store: &dyn Store,
        definitions: &Definitions,
        filter: &Filter,
    ) -> Result<Self, DatasetError> {
        let forms: BTreeSet<&Id> = definitions.flows.values().map(|flow| &flow.form).collect();
        let mut dataset = Dataset::default();
        for form in forms {
            let mut after: Option<RecordId> = None;
            loop {
                let page = Page { after: after.clone(), limit: PAGE };
                let ids = store.records_of_form(form.as_str(), page)?;
                for id in &ids {
                    dataset.load_record(store, definitions, id, filter)?;
                }
                if ids.len() < PAGE {
                    break;
                }
                after = ids.last().cloned();
            }
        }
        Ok(dataset)
    }

    /// Loads one record if it decodes and passes the filter.
    fn load_record(
        &mut self,
        store: &dyn Store,
        definitions: &Definitions,
        id: &RecordId,
        filter: &Filter,
    ) -> Result<(), DatasetError> {
        let Some(stored) = store.record(id)? else {
            return Ok(());
        };
        let Ok(record) = serde_json::from_value::<Record>(stored.value) else {
            self.skipped += 1;
            return Ok(());
        };
        let flow = record.flow.as_ref().map(|state| &state.flow);
        if !filter.admits(record.owner.as_deref(), flow) {
            return Ok(());
        }
        let events = store.events_of(id)?;
        let mut history = History::build(&record, &events);
        if let Some(flow) = flow.and_then(|flow| definitions.flows.get(flow)) {
            history.enter_first_stage(flow);
            history.enter_terminal_stage(flow);
        }
        self.records.push(history);
        Ok(())
    }

    /// The records driven by `flow`.
    pub fn of_flow<'a>(&'a self, flow: &'a Id) -> impl Iterator<Item = &'a History> + 'a {
        self.records.iter().filter(move |record| record.flow.as_ref() == Some(flow))
    }
}

impl History {
    /// A record's history from its document and its events (oldest first).
    pub fn build(record: &Record, events: &[StoredEvent]) -> Self {
        let mut history = History {
            id: record.id.clone(),
            form: record.form.clone(),
            flow: record.flow.as_ref().map(|state| state.flow.clone()),
            owner: record.owner.clone(),
            parent: record.parent.as_ref().map(|parent| parent.record.clone()),
            created_at: record.created_at,
            created_by: None,
            fields: record.fields.clone(),
            stage: record.flow.as_ref().map(|state| state.stage.clone()),
            stages: Vec::new(),
            ended: None,
            alerts: Vec::new(),
            breaches: Vec::new(),
            escalations: Vec::new(),
            actions: Vec::new(),
            decisions: Vec::new(),
            requests: Vec::new(),
            auto_approvals: Vec::new(),
            changes: Vec::new(),
            events: Vec::new(),
            imported_from: None,
        };
        // The engine's own creation and stage events before an import are replaced
        // by the imported history.
        let import_at = events.iter().rposition(|event| event.kind == "imported");
        for (index, event) in events.iter().enumerate() {
            let superseded = import_at.is_some_and(|at| index < at);
            history.apply(event, superseded);
        }
        history.stages.sort_by_key(|entry| entry.at);
        history
    }

    /// Takes one event into the history.
    fn apply(&mut self, event: &StoredEvent, superseded: bool) {
        let data = &event.data;
        let at = event.at_ms;
        let by = text(data, "by");
        self.events.push(EventMark { kind: event.kind.clone(), at, by: by.clone() });
        let mark = |name: &str, detail: Option<String>| Mark {
            name: text(data, name).unwrap_or_default(),
            detail,
            at,
            by: by.clone(),
        };
        match event.kind.as_str() {
            "created" if !superseded => self.created_by = by.clone(),
            "stage_changed" if !superseded => {
                if let Some(stage) = text(data, "to") {
                    self.stages.push(StageEntry { stage: Id(stage), at, by: by.clone() });
                }
            }
            "flow_ended" if !superseded => {
                if let Some(outcome) = text(data, "outcome") {
                    self.ended = Some(Ending { outcome: Id(outcome), at });
                }
            }
            "imported" => self.apply_import(data),
            "fields_changed" => self.apply_changes(data, at, by.as_deref()),
            "alert_raised" => self.alerts.push(mark("alert", None)),
            "sla_breached" => self.breaches.push(mark("stage", text(data, "approval"))),
            "escalated" => self.escalations.push(mark("ladder", None)),
            "action_done" => self.actions.push(mark("action", None)),
            "approval_auto_approved" => {
                let audited = data.get("audited").and_then(Value::as_bool) == Some(true);
                self.auto_approvals.push(mark("approval", audited.then(|| "audited".to_owned())));
            }
            "approval_requested" => {
                if let Some(approval) = text(data, "approval") {
                    let approvers = data
                        .get("approvers")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|user| user.as_str().map(str::to_owned))
                        .collect();
                    self.requests.push(RequestMark { approval, approvers, at });
                }
            }
            "approval_decided" => {
                if let (Some(approval), Some(user)) = (text(data, "approval"), text(data, "user")) {
                    self.decisions.push(DecisionMark {
                        approval,
                        user,
                        approve: data.get("approve").and_then(Value::as_bool) == Some(true),
                        status: text(data, "status").unwrap_or_default(),
                        at,
                    });
                }
            }
            _ => {}
        }
    }

    /// An `imported` event: the record's history in the system it came from.
    fn apply_import(&mut self, data: &Value) {
        self.imported_from = Some(text(data, "source").unwrap_or_default());
        if let Some(created) = data.get("created_at").and_then(Value::as_i64) {
            self.created_at = created;
        }
        self.created_by = None;
        self.stages.clear();
        self.ended = None;
        for stage in data.get("stages").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(id), Some(at)) =
                (text(stage, "stage"), stage.get("at").and_then(Value::as_i64))
            {
                self.stages.push(StageEntry { stage: Id(id), at, by: None });
            }
        }
        if let Some(ended) = data.get("ended").filter(|ended| ended.is_object()) {
            if let (Some(outcome), Some(at)) =
                (text(ended, "outcome"), ended.get("at").and_then(Value::as_i64))
            {
                self.ended = Some(Ending { outcome: Id(outcome), at });
            }
        }
    }

    /// A `fields_changed` event: one change per field in `after`.
    fn apply_changes(&mut self, data: &Value, at: i64, by: Option<&str>) {
        let Some(after) = data.get("after").and_then(Value::as_object) else {
            return;
        };
        let before = data.get("before").and_then(Value::as_object);
        for (field, value) in after {
            self.changes.push(FieldChange {
                field: field.clone(),
                before: before.and_then(|before| before.get(field)).cloned().unwrap_or(Value::Null),
                after: value.clone(),
                at,
                by: by.map(str::to_owned),
            });
        }
    }

    /// Adds the entry into the terminal stage of the record's outcome when the history
    /// ended without one: an imported record's history names its end, not always the
    /// stage it ended in, and the funnel counts that stage as reached.
    pub fn enter_terminal_stage(&mut self, flow: &FlowFile) {
        let Some(ended) = &self.ended else { return };
        let Some(terminal) =
            flow.stages.iter().find(|stage| stage.outcome.as_ref() == Some(&ended.outcome))
        else {
            return;
        };
        if !self.stages.iter().any(|entry| entry.stage == terminal.id) {
            self.stages.push(StageEntry { stage: terminal.id.clone(), at: ended.at, by: None });
        }
    }

    /// Adds the entry into the flow's first stage at the record's creation when an
    /// imported history does not name it: every record of a flow starts there, and
    /// conversions from the first stage count the record as having entered it.
    pub fn enter_first_stage(&mut self, flow: &FlowFile) {
        if self.imported_from.is_none() {
            return;
        }
        let Some(first) = flow.stages.first() else { return };
        if !self.stages.iter().any(|entry| entry.stage == first.id) {
            self.stages
                .insert(0, StageEntry { stage: first.id.clone(), at: self.created_at, by: None });
        }
    }

    /// When the record first entered `stage`.
    pub fn entered(&self, stage: &Id) -> Option<i64> {
        self.stages.iter().find(|entry| &entry.stage == stage).map(|entry| entry.at)
    }

    /// Whether the record ever entered `stage`.
    pub fn reached(&self, stage: &Id) -> bool {
        self.entered(stage).is_some()
    }

    /// A field's value as a number (numbers and numeric texts).
    pub fn number(&self, field: &str) -> Option<f64> {
        match self.fields.get(field)? {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// A field's value as text.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(Value::as_str)
    }
}

/// A text member of a JSON object.
fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}
