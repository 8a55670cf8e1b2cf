//! What the packs define, for clients that build pages from it: forms (with their JSON
//! Schema as written, `x-` hints included) and flows (stages, key actions, gates,
//! approvals, transitions). Readable by anyone signed in.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;
use stagecraft_model::{FlowFile, Gate, Id, Text};
use stagecraft_pack::{CompiledForm, Definitions};

use super::list::filterable;
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// A text in both languages (a text written in one language is given in both).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Label {
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    zh_cn: String,
    /// English.
    en: String,
}

impl Label {
    pub(crate) fn of(text: &Text) -> Label {
        Label { zh_cn: text.get("zh-CN").to_owned(), en: text.get("en").to_owned() }
    }

    fn or_id(text: Option<&Text>, id: &str) -> Label {
        text.map_or_else(|| Label { zh_cn: id.to_owned(), en: id.to_owned() }, Label::of)
    }
}

/// A form, in short.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FormSummary {
    /// The form id.
    id: String,
    /// Its name (the id when the form has none).
    title: Label,
    /// What it is for.
    description: Option<Label>,
    /// The pack it comes from.
    pack: Option<String>,
    /// The flows that drive its records.
    flows: Vec<String>,
}

fn form_summary(definitions: &Definitions, form: &CompiledForm) -> FormSummary {
    FormSummary {
        id: form.id.to_string(),
        title: Label::or_id(form.meta.title.as_ref(), form.id.as_str()),
        description: form.meta.description.as_ref().map(Label::of),
        pack: form.pack.clone(),
        flows: definitions
            .flows
            .values()
            .filter(|flow| flow.form == form.id)
            .map(|flow| flow.id.to_string())
            .collect(),
    }
}

/// The forms.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FormList {
    /// Every form of the loaded packs, by id.
    forms: Vec<FormSummary>,
}

/// Every form of the loaded packs.
#[utoipa::path(get, path = "/api/forms", tag = "definitions",
    responses(
        (status = 200, description = "The forms, by id", body = FormList),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn forms(State(state): State<AppState>, _caller: Caller) -> Json<FormList> {
    let definitions = state.engine().definitions();
    let forms = definitions.forms.values().map(|form| form_summary(&definitions, form)).collect();
    Json(FormList { forms })
}

/// What the engine knows about one field.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FieldSummary {
    /// The JSON types the schema declares (empty when it declares none).
    types: Vec<String>,
    /// The label (`x-ui.label`).
    label: Option<Label>,
    /// The linked form, for `x-link` fields.
    link: Option<String>,
    /// Whether it holds uploaded files: a file id, or a list of them for `array` fields.
    file: bool,
    /// Whether it holds a user id.
    user: bool,
    /// Whether the form indexes it (`x-form.indexes`).
    indexed: bool,
    /// Whether `GET /api/records/{form}` can filter on it.
    filterable: bool,
    /// Whether every record must have it from the start.
    required: bool,
}

/// A form in full.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FormDetail {
    /// The form id.
    id: String,
    /// Its name.
    title: Label,
    /// What it is for.
    description: Option<Label>,
    /// The pack it comes from.
    pack: Option<String>,
    /// The flows that drive its records.
    flows: Vec<String>,
    /// The JSON Schema (2020-12) as written in the pack, with its `x-form`, `x-ui`,
    /// `x-link`, `x-file` and `x-user` hints.
    #[schema(value_type = Object)]
    schema: Value,
    /// The top-level fields, by name.
    fields: BTreeMap<String, FieldSummary>,
    /// What a listing of the form's records can filter on (fields, `owner`, `stage`).
    filterable: Vec<String>,
}

/// A form: its JSON Schema as written (with the `x-` hints) and what the engine knows
/// about each field.
#[utoipa::path(get, path = "/api/forms/{form}", tag = "definitions",
    params(("form" = String, Path, description = "The form id")),
    responses(
        (status = 200, description = "The form", body = FormDetail),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn form(
    State(state): State<AppState>,
    _caller: Caller,
    Path(form): Path<String>,
) -> Result<Json<FormDetail>, Problem> {
    let definitions = state.engine().definitions();
    let compiled = definitions
        .forms
        .get(&Id::from(form.as_str()))
        .ok_or_else(|| Problem::not_found(format!("there is no form `{form}`")))?;
    let filterable = filterable(&definitions, compiled);
    let fields = compiled
        .fields
        .iter()
        .map(|(name, info)| {
            let summary = FieldSummary {
                types: info.types.clone(),
                label: info.label.as_ref().map(Label::of),
                link: info.link.as_ref().map(Id::to_string),
                file: info.file,
                user: info.user,
                indexed: info.indexed,
                filterable: filterable.iter().any(|field| field == name.as_str()),
                required: compiled.required.contains(name),
            };
            (name.as_str().to_owned(), summary)
        })
        .collect();
    let summary = form_summary(&definitions, compiled);
    Ok(Json(FormDetail {
        id: summary.id,
        title: summary.title,
        description: summary.description,
        pack: summary.pack,
        flows: summary.flows,
        schema: compiled.schema.clone(),
        fields,
        filterable,
    }))
}

/// A stage, in short.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StageSummary {
    /// The stage id.
    id: String,
    /// Its name.
    title: Label,
    /// The outcome, for a terminal stage (`won`, `lost`, …).
    outcome: Option<String>,
}

/// A flow, in short.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FlowSummary {
    /// The flow id.
    id: String,
    /// Its name.
    title: Label,
    /// What it is for.
    description: Option<Label>,
    /// The form whose records it drives.
    form: String,
    /// Its stages, in order.
    stages: Vec<StageSummary>,
}

fn flow_summary(flow: &FlowFile) -> FlowSummary {
    FlowSummary {
        id: flow.id.to_string(),
        title: Label::of(&flow.title),
        description: flow.description.as_ref().map(Label::of),
        form: flow.form.to_string(),
        stages: flow
            .stages
            .iter()
            .map(|stage| StageSummary {
                id: stage.id.to_string(),
                title: Label::of(&stage.title),
                outcome: stage.outcome.as_ref().map(Id::to_string),
            })
            .collect(),
    }
}

/// The flows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FlowList {
    /// Every flow of the loaded packs, by id.
    flows: Vec<FlowSummary>,
}

/// Every flow of the loaded packs, with its stages.
#[utoipa::path(get, path = "/api/flows", tag = "definitions",
    responses(
        (status = 200, description = "The flows, by id", body = FlowList),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn flows(State(state): State<AppState>, _caller: Caller) -> Json<FlowList> {
    let definitions = state.engine().definitions();
    Json(FlowList { flows: definitions.flows.values().map(flow_summary).collect() })
}

/// A flow in full.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FlowDetail {
    /// The flow id.
    id: String,
    /// Its name.
    title: Label,
    /// The form whose records it drives.
    form: String,
    /// The flow as its file defines it (the pack format's `FlowFile`): stages with
    /// their titles, entry and exit conditions, key actions, approvals, SLAs and
    /// effects, and the transitions. Texts are as written: one string, or one per
    /// language.
    #[schema(value_type = Object)]
    definition: FlowFile,
    /// The gate rules its conditions name, by id (the pack format's `Gate`).
    #[schema(value_type = Object)]
    gates: BTreeMap<String, Gate>,
}

/// A flow: its stages, key actions, gates, approvals and transitions, as the pack
/// defines them.
#[utoipa::path(get, path = "/api/flows/{flow}", tag = "definitions",
    params(("flow" = String, Path, description = "The flow id")),
    responses(
        (status = 200, description = "The flow", body = FlowDetail),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such flow", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn flow(
    State(state): State<AppState>,
    _caller: Caller,
    Path(flow): Path<String>,
) -> Result<Json<FlowDetail>, Problem> {
    let definitions = state.engine().definitions();
    let found = definitions
        .flows
        .get(&Id::from(flow.as_str()))
        .ok_or_else(|| Problem::not_found(format!("there is no flow `{flow}`")))?;
    let gates = found
        .stages
        .iter()
        .flat_map(|stage| stage.entry.iter().chain(&stage.exit))
        .chain(found.transitions.iter().flat_map(|transition| &transition.gate))
        .filter_map(|condition| condition.rule.as_ref())
        .filter_map(|rule| definitions.gates.get(rule))
        .map(|gate| (gate.id.to_string(), gate.clone()))
        .collect();
    Ok(Json(FlowDetail {
        id: found.id.to_string(),
        title: Label::of(&found.title),
        form: found.form.to_string(),
        definition: found.clone(),
        gates,
    }))
}
