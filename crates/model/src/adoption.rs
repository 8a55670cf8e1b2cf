//! The `adoption:` and `audit:` blocks of a flow: how the system measures that people
//! use it (records entered in time, stages updated in time, data complete, weekly
//! compliance and points) and which thresholds the process-health audit applies
//! (late entries, rushed records, rigid stages).
//!
//! Every key has a default, so `adoption: {}` measures with the defaults listed in the
//! reference page; a flow without `adoption:` is not measured for adoption, and the
//! audit uses its defaults for a flow without `audit:`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Duration, FieldName, Id};

/// How a flow's use of the system is measured per person and week.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Adoption {
    /// The field that holds when the real-world thing happened (a date or a date and
    /// time, such as the first contact). A record counts as entered in time when it
    /// was created at most `enter_within` after it. Left out, every record counts as
    /// entered in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub happened_at: Option<FieldName>,
    /// The longest allowed delay between `happened_at` and the record's creation
    /// (default `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Duration")]
    pub enter_within: Option<Duration>,
    /// A stage is updated in time when the record leaves it at most this long after
    /// entering it (default `7d`). Terminal stages need no update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Duration")]
    pub update_within: Option<Duration>,
    /// A different window for some stages, by stage id (e.g. `{negotiation: 14d}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_windows: BTreeMap<Id, Duration>,
    /// Stages whose waiting is not up to the record's owner (someone else's approval
    /// or a sub-flow): their updates are not measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt_stages: Vec<Id>,
    /// The fields that count for completeness. Left out: every field of the form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub complete: Vec<FieldName>,
    /// The shares a person's week must reach to be compliant.
    #[serde(default)]
    pub targets: AdoptionTargets,
    /// The points two compliant weeks in a row earn (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub points: Option<u32>,
}

/// The shares, between 0 and 1, a compliant week reaches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptionTargets {
    /// Records entered in time, of those created in the week (default 1: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub entry: Option<f64>,
    /// Stage updates made in time, of those due in the week (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub timeliness: Option<f64>,
    /// Filled fields, of the counted fields of the person's records (default 0: not
    /// required, only shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub completeness: Option<f64>,
}

/// The thresholds of the process-health audit for a flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditThresholds {
    /// A record created longer than this after its `adoption.happened_at` was entered
    /// after the fact (default: `adoption.enter_within`, else `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Duration")]
    pub late_entry: Option<Duration>,
    /// This many stage moves by people within `rush_within` mark a record pushed
    /// through (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 100))]
    pub rush_moves: Option<u32>,
    /// The time span of a rush (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Duration")]
    pub rush_within: Option<Duration>,
    /// Alerts that mean a record stalls in its stage (e.g. a stalled-deal alert).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stall_alerts: Vec<Id>,
    /// A record stalls in a stage it stays in longer than this (default: the stage's
    /// `adoption` window, else `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Duration")]
    pub stall_after: Option<Duration>,
    /// A stage is rigid when more than this share of the records entering it stall
    /// (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub rigid_share: Option<f64>,
    /// A stage needs at least this many records in the period to be judged rigid
    /// (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub rigid_min_records: Option<u32>,
    /// Roles whose holders count as administrators besides those that see all
    /// records (`sees: all`): their moves that skip stages are reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_roles: Vec<Id>,
}
