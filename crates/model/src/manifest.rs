//! `pack.yaml`: the manifest that names a pack, lists what it contains and what it
//! needs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Id, Text};

/// A pack manifest.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    /// The pack format version this pack is written in. Always `1` for now.
    pub stagecraft: u32,
    /// The pack's id (e.g. `sales`).
    pub name: Id,
    /// The pack's version, as semantic versioning `MAJOR.MINOR.PATCH` (e.g. `1.2.0`).
    pub version: String,
    /// The pack's name as people see it.
    pub title: Text,
    /// What the pack does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
    /// Files and folders of the pack, relative to this manifest. A folder brings in
    /// every pack file under it, recognised by name: `*.flow.yaml`, `*.rules.yaml`,
    /// `*.calendar.yaml`, `*.org.yaml`, `*.rhai`, `*.hbs` and form schemas `*.json`.
    /// Defaults to the manifest's own folder.
    #[serde(default = "default_contents")]
    pub contents: Vec<String>,
    /// Other packs this pack uses (their forms, rules, templates, calendars, roles).
    #[serde(default)]
    pub requires: Vec<PackRequirement>,
    /// Roles the pack's flows and rules refer to; the org assigns people to them.
    #[serde(default)]
    pub roles: Vec<RoleDecl>,
}

fn default_contents() -> Vec<String> {
    vec![".".to_owned()]
}

/// Another pack that must be loaded alongside.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackRequirement {
    /// The other pack's name.
    pub pack: Id,
    /// The versions accepted, as a semantic-versioning requirement (e.g. `^1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A role a pack refers to (e.g. `legal`, `finance_bp`, `regional_manager`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDecl {
    /// The role id.
    pub id: Id,
    /// The role's name.
    pub title: Text,
    /// Which records holders of the role see besides their own, their team's and
    /// those routed to them: `all` for every record (an administrator, a sales
    /// director). Left out, the role adds nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sees: Option<RoleSees>,
}

/// What a role lets its holders see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleSees {
    /// Every record of every form.
    All,
}
