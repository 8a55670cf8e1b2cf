//! Small value types shared by every file kind: ids, texts in two languages,
//! durations and the ways a file can name a person.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The pattern every id in a pack follows: lowercase letters, digits, `_` and `-`,
/// starting with a letter. Ids end up in URLs, file names and rules, so they stay plain.
pub const ID_PATTERN: &str = "^[a-z][a-z0-9_-]{0,63}$";

/// Form field names are used as `record.<name>` in rules, so they must be rhai identifiers.
pub const FIELD_PATTERN: &str = "^[a-z_][a-z0-9_]{0,63}$";

/// A duration such as `30m`, `48h`, `7d` or `2w` (minutes, hours, days, weeks).
pub const DURATION_PATTERN: &str = "^[0-9]{1,6}(m|h|d|w)$";

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $description:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The text of the value as written in the file.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some($pattern))
                    .description(Some($description))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $description,
                })
            }
        }
    };
}

string_newtype!(
    /// The id of something in a pack: a stage, form, flow, rule, role, template…
    Id,
    ID_PATTERN,
    "An id: lowercase letters, digits, _ and -, starting with a letter (e.g. first_contact)."
);

string_newtype!(
    /// The name of a top-level field of a form (`amount`, `customer`) or the built-in
    /// `owner`.
    FieldName,
    FIELD_PATTERN,
    "A field name of the record's form: lowercase letters, digits and _ (e.g. expected_close_date)."
);

string_newtype!(
    /// A duration such as `48h`. Minutes `m`, hours `h`, days `d`, weeks `w`. Around
    /// the clock these are fixed lengths; on a business calendar `m` and `h` count
    /// working time, `d` counts working days and `w` calendar weeks (see the format
    /// reference).
    Duration,
    DURATION_PATTERN,
    "A duration: a number and a unit, m (minutes), h (hours), d (days) or w (weeks), e.g. 48h or 7d."
);

impl Duration {
    /// The length in minutes, or `None` when the text is not a valid duration.
    pub fn minutes(&self) -> Option<u64> {
        let text = self.0.as_str();
        let unit = text.chars().last()?;
        let number: u64 = text.get(..text.len() - 1)?.parse().ok()?;
        let factor = match unit {
            'm' => 1,
            'h' => 60,
            'd' => 60 * 24,
            'w' => 60 * 24 * 7,
            _ => return None,
        };
        number.checked_mul(factor)
    }
}

/// Text shown to people. Either one string (taken as Simplified Chinese) or one
/// string per language: `{zh-CN: 线索获取, en: Lead capture}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Text {
    /// A single text, used for every language.
    Plain(String),
    /// A text per language.
    Localized(LocalizedText),
}

/// One text per language. Chinese first; English for English-speaking users.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LocalizedText {
    /// Simplified Chinese.
    #[serde(rename = "zh-CN", default, skip_serializing_if = "Option::is_none")]
    pub zh_cn: Option<String>,
    /// English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

impl Text {
    /// The text for a language (`zh-CN` or `en`), falling back to the other one.
    pub fn get(&self, locale: &str) -> &str {
        match self {
            Text::Plain(text) => text,
            Text::Localized(texts) => {
                let (first, second) = if locale == "en" {
                    (&texts.en, &texts.zh_cn)
                } else {
                    (&texts.zh_cn, &texts.en)
                };
                first.as_deref().or(second.as_deref()).unwrap_or_default()
            }
        }
    }
}

/// Who a step concerns: an approver, the assignee of a task, the receiver of a
/// notification. Written as a one-key map, for example `{role: legal}` or
/// `{manager_of: owner}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Party {
    /// One named user, by user id.
    User(Id),
    /// Everyone holding a role declared by a pack (`legal`, `finance_bp`).
    Role(Id),
    /// The user whose id is stored in a field of the record (`owner` is built in).
    Field(FieldName),
    /// The direct manager (reporting line) of the user in a field, e.g. `manager_of: owner`.
    ManagerOf(FieldName),
    /// The head of the department of the user in a field, e.g. `department_head_of: owner`.
    DepartmentHeadOf(FieldName),
    /// The head of a named department.
    HeadOf(Id),
    /// A rhai expression that returns a user id or a list of user ids.
    Expr(String),
}
