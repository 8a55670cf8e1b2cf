//! Forms are JSON Schema 2020-12 documents (`schemas/<pack>/<form>.json`). The
//! keywords defined here extend them: `x-form` at the root, and `x-ui`, `x-link`,
//! `x-file`, `x-user` on any property. JSON Schema ignores unknown keywords, so a
//! form stays a valid schema for any other tool.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Duration, FieldName, Id, Text};

/// `x-form`: what the engine needs to know about a form besides its fields.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormMeta {
    /// The form id; defaults to the file name without `.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// The form's name (e.g. `{zh-CN: 商机, en: Opportunity}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Text>,
    /// What the form is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
    /// The field that names a record in lists and links (e.g. `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_field: Option<FieldName>,
    /// Fields to index, so lists can filter on them and rules can query them.
    #[serde(default)]
    pub indexes: Vec<FieldName>,
    /// Sections that group fields on the generated page, in order.
    #[serde(default)]
    pub sections: Vec<FormSection>,
    /// Link fields whose linked record counts as active when a record of this form
    /// is created or changed (an interaction log keeps its customer from going silent).
    #[serde(default)]
    pub touches: Vec<FieldName>,
    /// Whether records have an owner who sees and edits them (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned: Option<bool>,
    /// Customer-pool rules for records without an owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolRules>,
    /// Records of this form are feedback for the whole company (suggestions, ideas):
    /// everyone may read them, and the feedback page lists them with their status and
    /// the handlers' reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackRules>,
}

/// How a feedback form is handled: the field that says where an item stands, the
/// field the handlers answer in, and who handles them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRules {
    /// The field that says where an item stands (an `enum` field, e.g. `status`).
    pub status: FieldName,
    /// The text field the handlers reply in.
    pub reply: FieldName,
    /// The roles that handle the items: they may reply and change the status of
    /// every item, not only of items they own.
    pub handlers: Vec<Id>,
}

/// A section of a generated form page.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormSection {
    /// The section id, which fields name in `x-ui.section`.
    pub id: Id,
    /// The section heading.
    pub title: Text,
    /// Help text under the heading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<Text>,
    /// Whether the section starts folded.
    #[serde(default)]
    pub collapsed: bool,
}

/// Customer-pool rules: records without an owner can be claimed; idle ones return.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolRules {
    /// An owned record with no activity for this long returns to the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_after: Option<Duration>,
    /// The most records one person may own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_per_owner: Option<u32>,
    /// The calendar `return_after` counts on (`30d`: 30 working days); without
    /// one it runs around the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<Id>,
    /// The message template that tells the former owner a record went back to the
    /// pool; without one nobody is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Id>,
}

/// `x-ui`: how a field looks on a generated page.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UiHints {
    /// The field label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Text>,
    /// Help text shown under the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<Text>,
    /// Placeholder text inside an empty input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Text>,
    /// The input to use; by default it follows the field's type and format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget: Option<Widget>,
    /// The position among the fields (smaller first; default: as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// The section the field belongs to (an id from `x-form.sections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<Id>,
    /// Labels for the values of an `enum`, in the same order.
    #[serde(default)]
    pub options: Vec<Text>,
    /// For money: the currency (default `CNY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub currency: Option<String>,
    /// The field is shown but cannot be edited.
    #[serde(default)]
    pub readonly: bool,
    /// The field is kept but not shown.
    #[serde(default)]
    pub hidden: bool,
}

/// The inputs a generated form can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Widget {
    /// One line of text.
    Text,
    /// Several lines of text.
    Textarea,
    /// A number.
    Number,
    /// An amount of money.
    Money,
    /// A date.
    Date,
    /// A date and time.
    Datetime,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// A drop-down list (for `enum`).
    Select,
    /// Radio buttons (for `enum`).
    Radio,
    /// Tick boxes (for an array of `enum`).
    Checkboxes,
    /// An on/off switch (for booleans).
    Switch,
    /// A file upload (with `x-file`).
    File,
    /// A searchable link to another record (with `x-link`).
    Link,
    /// A person picker (with `x-user`).
    User,
    /// Repeatable rows (for an array of objects).
    Rows,
}

/// `x-link`: the field holds the id of a record of another form.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The linked form.
    pub form: Id,
    /// Fields of the linked form searched when picking a record (default: its title field).
    #[serde(default)]
    pub search: Vec<FieldName>,
}

/// `x-file`: the field holds an uploaded file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUpload {
    /// Accepted content types, e.g. `application/pdf` or `image/*`.
    #[serde(default)]
    pub accept: Vec<String>,
    /// The largest file accepted, e.g. `20MB` (default 20MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[0-9]{1,6}(KB|MB)$"))]
    pub max_size: Option<String>,
}

/// `x-user`: the field holds a user id.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPick {
    /// Only people holding this role can be picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Id>,
}
