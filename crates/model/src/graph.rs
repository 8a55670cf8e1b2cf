//! `graphs:` in a rules file: relationship graphs (客户关系图谱) — which records sit at
//! the centre, which linked records are drawn around them, what counts as bought, when
//! a centre record is dormant and when a product is worth offering (cross-sell).
//!
//! The engine knows none of these words: the pack names the forms, fields and flow
//! outcomes, and the server draws whatever they point at.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Duration, FieldName, Id, Text};

/// A relationship graph: centre records (e.g. customers), the records linked to them
/// through `x-link` fields, their parent records, purchases, dormancy and chances.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// The graph id, unique across loaded packs.
    pub id: Id,
    /// The graph's name, shown as the page title.
    pub title: Text,
    /// The form at the centre (e.g. `customer`).
    pub centre: Id,
    /// An `x-link` field of the centre form to the centre form itself: the parent
    /// record (e.g. a parent company). One level of parents is drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<FieldName>,
    /// Forms drawn around each centre record. Each needs an `x-link` field to the
    /// centre form (e.g. `contact`, `opportunity`).
    #[serde(default)]
    pub linked: Vec<Id>,
    /// What counts as bought: records of a linked form whose flow ended in one of the
    /// outcomes, each with a product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchases: Option<Purchases>,
    /// When a centre record that bought before counts as dormant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dormant: Option<Dormancy>,
    /// When a product a centre record has not bought is worth offering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_sell: Option<CrossSell>,
}

/// What counts as bought, and which product.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Purchases {
    /// The form of the purchases (e.g. `opportunity`); it needs an `x-link` field to
    /// the centre form.
    pub form: Id,
    /// The field that names the product (e.g. `product_line`); its `x-ui` options
    /// give the product's label.
    pub product: FieldName,
    /// Flow outcomes that count as bought (e.g. `[won]`).
    #[schemars(length(min = 1))]
    pub outcomes: Vec<Id>,
}

/// Dormancy: no activity for a while.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dormancy {
    /// How long without activity makes a centre record dormant (e.g. `180d`).
    pub after: Duration,
    /// Date fields of records linked to the centre form that record contact (e.g. the
    /// date of a visit); the latest one counts. Without them, the last time anyone
    /// worked on the centre record or its linked records counts.
    #[serde(default)]
    pub activity: Vec<ActivityDate>,
    /// Only centre records that bought something can be dormant ("old customers").
    #[serde(default)]
    pub buyers_only: bool,
}

/// A date field that records contact.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityDate {
    /// The form; it needs an `x-link` field to the centre form.
    pub form: Id,
    /// A `date` or `date-time` field of it.
    pub field: FieldName,
}

/// Cross-sell: a centre record bought X but not Y, while most similar records that
/// bought X also bought Y.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrossSell {
    /// The field of the centre form that makes records similar (e.g. `industry`).
    pub peers: FieldName,
    /// The share, in percent, of similar records that bought X and also bought Y.
    #[schemars(range(min = 1, max = 100))]
    pub min_share: u8,
    /// How many similar records must have bought X for the share to count.
    #[serde(default = "default_min_peers")]
    #[schemars(range(min = 1))]
    pub min_peers: u32,
}

fn default_min_peers() -> u32 {
    2
}
