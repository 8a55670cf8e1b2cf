//! `*.org.yaml`: departments, users, their roles and reporting lines.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Id, Text};

/// An organisation: who works where, holds which role and reports to whom.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgFile {
    /// Departments and teams, which may nest.
    #[serde(default)]
    pub departments: Vec<Department>,
    /// The people.
    #[serde(default)]
    pub users: Vec<User>,
    /// Targets per person or department and period, for the dashboard's coverage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
}

/// An amount a person or a department should reach in a period on one flow's
/// records (the flow's `measures.amount`), e.g. a sales rep's revenue for a quarter.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The flow whose records count (it must declare `measures.amount`).
    pub flow: Id,
    /// The person the target is for (give `user` or `department`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Id>,
    /// The department the target is for, its sub-departments included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<Id>,
    /// The period: a month (`2026-11`) or a quarter (`2026-Q4`).
    // No schema pattern: the pack check reports a bad period with the forms expected.
    pub period: String,
    /// The amount to reach.
    #[schemars(range(min = 0.0))]
    pub amount: f64,
}

/// A department or team.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// The department id (e.g. `sales-east`).
    pub id: Id,
    /// Its name.
    pub title: Text,
    /// The department it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// The user who heads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Id>,
}

/// A person.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user id, also the login name (e.g. `rep01`).
    pub id: Id,
    /// The person's name.
    pub name: String,
    /// E-mail address for notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(email)]
    pub email: Option<String>,
    /// Mobile phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The department the person works in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<Id>,
    /// The person they report to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Id>,
    /// Roles the person holds.
    #[serde(default)]
    pub roles: Vec<Id>,
    /// Preferred language (`zh-CN` or `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

/// A language the product speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Locale {
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    ZhCn,
    /// English.
    #[serde(rename = "en")]
    En,
}
