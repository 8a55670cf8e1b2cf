//! Relationship graphs (客户关系图谱), as a pack's `graphs:` declare them: the centre
//! records a person may see (e.g. customers), the records linked to them, one level of
//! parent records, purchases, dormancy and cross-sell chances, laid out on a grid and
//! drawn as SVG.
//!
//! Nothing here knows a form or field by name: the declaration says which form is at
//! the centre, which forms are drawn around it, which outcome counts as bought and
//! which field makes records similar. Access is the records API's: a record appears
//! only when `api::records::visible` lets the person read it. Cross-sell shares are
//! counted over every centre record, but only the counts leave this module.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate};
use serde::Serialize;
use serde_json::Value;
use stagecraft_model::{CrossSell, FieldName, Graph, Id, Text};
use stagecraft_pack::Definitions;
use stagecraft_runtime::Record;

use crate::api::records::{Access, visible};
use crate::pages::Lang;
use crate::state::AppState;

/// How many records of a form are read at most.
const SCANNED: usize = 5000;
/// How many centre records a graph draws at most.
const MAX_CENTRES: usize = 60;
/// How many linked records are drawn around one centre record at most.
const MAX_SATELLITES: usize = 10;
/// The size of one centre record's cell in the layout.
const CELL_WIDTH: f64 = 300.0;
const CELL_HEIGHT: f64 = 260.0;
/// The distance of linked records from their centre record.
const ORBIT: f64 = 95.0;
#[cfg(test)]
const MS_PER_DAY: i64 = 86_400_000;

/// Whose records a graph shows.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub(crate) struct Scope {
    /// Only records owned by this person.
    pub(crate) rep: Option<String>,
    /// Only records owned by this person or anyone who reports to them.
    pub(crate) team: Option<String>,
    /// Only records owned by people of this department or a department under it.
    pub(crate) department: Option<String>,
}

/// What a node stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NodeKind {
    /// A centre record in scope.
    Centre,
    /// A parent record of a centre record (drawn once, even when out of scope).
    Parent,
    /// A record of a linked form.
    Linked,
}

/// A product, by its stored value and its label.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Product {
    /// The stored value.
    pub(crate) value: String,
    /// The label in the asked language.
    pub(crate) label: String,
}

/// A product worth offering, and why.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Chance {
    /// The product not bought yet.
    pub(crate) product: Product,
    /// The product bought that makes it likely.
    pub(crate) because: Product,
    /// How many similar records bought `because`.
    pub(crate) peers: u32,
    /// How many of those also bought `product`.
    pub(crate) both: u32,
    /// The reason in a sentence.
    pub(crate) sentence: String,
}

/// A record in the graph.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Node {
    /// The record id.
    pub(crate) id: String,
    /// Its form.
    pub(crate) form: String,
    /// The form's title.
    pub(crate) form_title: String,
    /// What the node stands for.
    pub(crate) kind: NodeKind,
    /// The record's name.
    pub(crate) title: String,
    /// The record's page.
    pub(crate) href: String,
    /// The owner.
    pub(crate) owner: Option<String>,
    /// Where it is drawn.
    pub(crate) x: f64,
    pub(crate) y: f64,
    /// Whether it is dormant (centre records).
    pub(crate) dormant: bool,
    /// The last contact (`YYYY-MM-DD`), when known (centre records).
    pub(crate) last_contact: Option<String>,
    /// What it bought (centre records).
    pub(crate) products: Vec<Product>,
    /// Products worth offering (centre records).
    pub(crate) chances: Vec<Chance>,
}

/// A line between two records: `from`'s `field` links to `to`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Edge {
    pub(crate) from: String,
    pub(crate) to: String,
    /// The `x-link` field.
    pub(crate) field: String,
}

/// A computed graph.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GraphView {
    /// The graph id.
    pub(crate) graph: String,
    /// Its title.
    pub(crate) title: String,
    /// The centre form.
    pub(crate) centre: String,
    /// The centre form's title.
    pub(crate) centre_title: String,
    /// Whose records it shows.
    pub(crate) scope: Scope,
    /// The language of titles and sentences.
    pub(crate) lang: String,
    /// The records.
    pub(crate) nodes: Vec<Node>,
    /// The links between them.
    pub(crate) edges: Vec<Edge>,
    /// Whether records were left out (more than the graph draws).
    pub(crate) truncated: bool,
    /// The drawing's size.
    pub(crate) width: f64,
    pub(crate) height: f64,
}

/// Why a graph cannot be shown.
#[derive(Debug)]
pub(crate) enum GraphError {
    /// No loaded pack declares such a graph.
    Unknown,
}

/// The graph `id` (or the first declared) for `viewer`, within `scope`. Blocking.
pub(crate) fn build(
    state: &AppState,
    viewer: &str,
    id: Option<&str>,
    scope: Scope,
    lang: Lang,
) -> Result<GraphView, GraphError> {
    let definitions = state.engine().definitions();
    let graph = match id {
        Some(id) => definitions.graphs.iter().find(|graph| graph.id.as_str() == id),
        None => definitions.graphs.first(),
    }
    .ok_or(GraphError::Unknown)?
    .clone();
    let now = state.engine().now();
    let team: Option<BTreeSet<String>> = scope.team.as_ref().map(|manager| {
        let mut members: BTreeSet<String> =
            state.with_org(|org| org.reports_of(manager)).into_iter().collect();
        members.insert(manager.clone());
        members
    });
    let department: Option<BTreeSet<String>> = scope
        .department
        .as_ref()
        .map(|department| state.with_org(|org| in_department(org, department)));
    // Records in a pool are nobody's: no one's graph draws them.
    let pooled = definitions.forms.get(&graph.centre).is_some_and(|form| form.meta.pool.is_some());
    let in_scope = |record: &Record| {
        let owner = record.owner.as_deref();
        (!pooled || owner.is_some())
            && scope.rep.as_deref().is_none_or(|rep| owner == Some(rep))
            && team.as_ref().is_none_or(|team| owner.is_some_and(|owner| team.contains(owner)))
            && department
                .as_ref()
                .is_none_or(|people| owner.is_some_and(|owner| people.contains(owner)))
    };
    let read = Reader { state, definitions: &definitions, lang };
    let centre = graph.centre.as_str();
    let all_centres = read.all(centre);
    let centres: Vec<Record> = all_centres
        .iter()
        .filter(|record| in_scope(record))
        .filter_map(|record| visible(state, viewer, centre, &record.id, Access::Read).ok())
        .collect();
    // Purchases of every centre record, for what each bought and for the shares.
    let bought = purchases(&read, &graph);
    let peers_of: BTreeMap<String, Option<String>> = match &graph.cross_sell {
        Some(rule) => all_centres
            .iter()
            .map(|record| (record.id.clone(), text_field(record, &rule.peers)))
            .collect(),
        None => BTreeMap::new(),
    };
    let found = match &graph.cross_sell {
        Some(rule) => chances(&peers_of, &bought, rule),
        None => BTreeMap::new(),
    };
    let last_contact = last_contacts(&read, &graph);
    let flags = |record: &Record| -> (Option<i64>, bool) {
        let last = match graph.dormant.as_ref().map(|d| d.activity.is_empty()) {
            Some(true) => Some(read.last_worked(&graph, record)),
            _ => last_contact.get(&record.id).copied(),
        };
        let bought_any = bought.get(&record.id).is_some_and(|products| !products.is_empty());
        let dormant = graph.dormant.as_ref().is_some_and(|rule| {
            let after = rule.after.minutes().map_or(i64::MAX, |m| (m as i64) * 60_000);
            (!rule.buyers_only || bought_any) && is_dormant(last, now, after)
        });
        (last, dormant)
    };

    // What needs attention first: chances, then dormant records, then by name.
    let mut centres: Vec<(Record, Option<i64>, bool)> = centres
        .into_iter()
        .map(|record| {
            let (last, dormant) = flags(&record);
            (record, last, dormant)
        })
        .collect();
    centres.sort_by_cached_key(|(record, _, dormant)| {
        (!found.contains_key(&record.id), !dormant, read.title(record), record.id.clone())
    });
    let truncated = centres.len() > MAX_CENTRES;
    centres.truncate(MAX_CENTRES);

    let mut nodes: Vec<Node> = Vec::new();
    let mut edges: Vec<Edge> = Vec::new();
    let mut satellites: Vec<Vec<Node>> = Vec::new();
    let shown: BTreeSet<String> = centres.iter().map(|(record, _, _)| record.id.clone()).collect();
    let mut parents: Vec<Record> = Vec::new();
    for (record, last, dormant) in &centres {
        let (last, dormant) = (*last, *dormant);
        let products = bought.get(&record.id).cloned().unwrap_or_default();
        let mut node = read.node(record, NodeKind::Centre, lang);
        node.dormant = dormant;
        node.last_contact = last.map(day);
        node.products = products.iter().map(|value| read.product(&graph, value, lang)).collect();
        node.chances = found
            .get(&record.id)
            .map(|list| list.iter().map(|raw| read.chance(&graph, raw, lang)).collect())
            .unwrap_or_default();
        nodes.push(node);
        if let Some(field) = &graph.parent {
            if let Some(parent) = text_field(record, field) {
                edges.push(Edge {
                    from: record.id.clone(),
                    to: parent.clone(),
                    field: field.to_string(),
                });
                let known = shown.contains(&parent) || parents.iter().any(|p| p.id == parent);
                if !known {
                    if let Ok(parent) = visible(state, viewer, centre, &parent, Access::Read) {
                        parents.push(parent);
                    }
                }
            }
        }
        satellites.push(read.linked(&graph, record, viewer, lang, &mut edges));
    }
    for parent in &parents {
        nodes.push(read.node(parent, NodeKind::Parent, lang));
        satellites.push(Vec::new());
    }
    // Edges only between drawn records: a parent the person may not see is left out.
    let cells = layout(&satellites.iter().map(Vec::len).collect::<Vec<_>>());
    let mut drawn = Vec::new();
    for ((mut node, around), cell) in nodes.into_iter().zip(satellites).zip(&cells) {
        (node.x, node.y) = cell.centre;
        drawn.push(node);
        for (mut satellite, place) in around.into_iter().zip(&cell.satellites) {
            (satellite.x, satellite.y) = *place;
            drawn.push(satellite);
        }
    }
    let ids: BTreeSet<&str> = drawn.iter().map(|node| node.id.as_str()).collect();
    edges.retain(|edge| ids.contains(edge.from.as_str()) && ids.contains(edge.to.as_str()));
    let (width, height) = size(cells.len());
    Ok(GraphView {
        graph: graph.id.to_string(),
        title: lang.text(&graph.title),
        centre: centre.to_owned(),
        centre_title: form_title(&definitions, centre, lang),
        scope,
        lang: lang.code().to_owned(),
        nodes: drawn,
        edges,
        truncated,
        width,
        height,
    })
}

/// The people of a department and of the departments under it.
fn in_department(org: &stagecraft_runtime::Directory, department: &str) -> BTreeSet<String> {
    let within = |start: Option<&Id>| {
        let mut current = start.cloned();
        // Org files could make departments each other's parents; the walk stays bounded.
        for _ in 0..=org.departments().count() {
            let Some(id) = current else { return false };
            if id.as_str() == department {
                return true;
            }
            current = org.departments().find(|d| d.id == id).and_then(|d| d.parent.clone());
        }
        false
    };
    org.users()
        .filter(|user| within(user.department.as_ref()))
        .map(|user| user.id.to_string())
        .collect()
}

/// Reads records and labels for one graph.
struct Reader<'a> {
    state: &'a AppState,
    definitions: &'a Definitions,
    lang: Lang,
}

impl Reader<'_> {
    /// Every record of a form (at most [`SCANNED`]), oldest first.
    fn all(&self, form: &str) -> Vec<Record> {
        let store = self.state.engine().store();
        let mut records = Vec::new();
        let mut page = stagecraft_store::Page::first(500);
        while records.len() < SCANNED {
            let Ok(batch) = store.records_of_form(form, page.clone()) else { break };
            let Some(last) = batch.last().cloned() else { break };
            let full = batch.len() == page.limit;
            records.extend(
                batch
                    .iter()
                    .filter_map(|id| self.state.engine().record(id.as_str()).ok().flatten()),
            );
            if !full {
                break;
            }
            page = stagecraft_store::Page::after(last, 500);
        }
        records
    }

    /// The fields of `form` that link to `target`.
    fn links(&self, form: &Id, target: &Id) -> Vec<FieldName> {
        self.definitions
            .forms
            .get(form)
            .map(|compiled| {
                compiled
                    .fields
                    .iter()
                    .filter(|(_, info)| info.link.as_ref() == Some(target))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A record's name; a record whose form has no title field is named by its form.
    fn title(&self, record: &Record) -> String {
        let title = record_title(self.definitions, record);
        if title == record.id {
            form_title(self.definitions, record.form.as_str(), self.lang)
        } else {
            title
        }
    }

    fn node(&self, record: &Record, kind: NodeKind, lang: Lang) -> Node {
        Node {
            id: record.id.clone(),
            form: record.form.to_string(),
            form_title: form_title(self.definitions, record.form.as_str(), lang),
            kind,
            title: self.title(record),
            href: format!("/ui/records/{}/{}", record.form, record.id),
            owner: record.owner.clone(),
            x: 0.0,
            y: 0.0,
            dormant: false,
            last_contact: None,
            products: Vec::new(),
            chances: Vec::new(),
        }
    }

    /// The records of the linked forms that point at `record` and that `viewer` may
    /// see, at most [`MAX_SATELLITES`], taken from each form in turn so that every
    /// form shows (by title within a form); adds their edges.
    fn linked(
        &self,
        graph: &Graph,
        record: &Record,
        viewer: &str,
        lang: Lang,
        edges: &mut Vec<Edge>,
    ) -> Vec<Node> {
        let store = self.state.engine().store();
        let mut per_form: Vec<std::collections::VecDeque<(Record, FieldName)>> = Vec::new();
        for form in &graph.linked {
            let mut records: Vec<(Record, FieldName)> = Vec::new();
            for field in self.links(form, &graph.centre) {
                let value = stagecraft_store::IndexValue::from(record.id.as_str());
                let page = stagecraft_store::Page::first(MAX_SATELLITES * 4);
                let Ok(ids) = store.records_by_index(form.as_str(), field.as_str(), &value, page)
                else {
                    continue;
                };
                records.extend(
                    ids.iter()
                        .filter_map(|id| {
                            visible(self.state, viewer, form.as_str(), id.as_str(), Access::Read)
                                .ok()
                        })
                        .filter(|linked| linked.id != record.id)
                        .map(|linked| (linked, field.clone())),
                );
            }
            records.sort_by_cached_key(|(linked, _)| (self.title(linked), linked.id.clone()));
            per_form.push(records.into());
        }
        let mut found = Vec::new();
        while found.len() < MAX_SATELLITES && per_form.iter().any(|queue| !queue.is_empty()) {
            for queue in &mut per_form {
                if found.len() == MAX_SATELLITES {
                    break;
                }
                if let Some((linked, field)) = queue.pop_front() {
                    edges.push(Edge {
                        from: linked.id.clone(),
                        to: record.id.clone(),
                        field: field.to_string(),
                    });
                    found.push(self.node(&linked, NodeKind::Linked, lang));
                }
            }
        }
        // Drawn grouped by form, so that the records of a form sit side by side.
        found.sort_by_key(|node| graph.linked.iter().position(|form| form.as_str() == node.form));
        found
    }

    /// The last time anyone worked on `record` or a record of a linked form.
    fn last_worked(&self, graph: &Graph, record: &Record) -> i64 {
        let store = self.state.engine().store();
        let mut last = record.last_activity_at;
        for form in &graph.linked {
            for field in self.links(form, &graph.centre) {
                let value = stagecraft_store::IndexValue::from(record.id.as_str());
                let page = stagecraft_store::Page::first(SCANNED);
                let ids = store
                    .records_by_index(form.as_str(), field.as_str(), &value, page)
                    .unwrap_or_default();
                for id in ids {
                    if let Ok(Some(linked)) = self.state.engine().record(id.as_str()) {
                        last = last.max(linked.last_activity_at);
                    }
                }
            }
        }
        last
    }

    /// A product's label: the `x-ui` option of its value, else the value.
    fn product(&self, graph: &Graph, value: &str, lang: Lang) -> Product {
        let label = graph
            .purchases
            .as_ref()
            .and_then(|purchases| {
                let form = self.definitions.forms.get(&purchases.form)?;
                let field = form.schema.get("properties")?.get(purchases.product.as_str())?;
                option_label(field, value)
            })
            .map(|text| lang.text(&text))
            .unwrap_or_else(|| value.to_owned());
        Product { value: value.to_owned(), label }
    }

    fn chance(&self, graph: &Graph, raw: &RawChance, lang: Lang) -> Chance {
        let product = self.product(graph, &raw.product, lang);
        let because = self.product(graph, &raw.because, lang);
        let centre = form_title(self.definitions, graph.centre.as_str(), lang);
        let peers = graph
            .cross_sell
            .as_ref()
            .and_then(|rule| {
                self.definitions.forms.get(&graph.centre)?.fields.get(&rule.peers)?.label.clone()
            })
            .map(|label| lang.text(&label))
            .unwrap_or_default();
        let sentence = match lang {
            Lang::Zh => format!(
                "买了「{}」，未买「{}」；{peers}相同、买了「{}」的 {} 个{centre}中，{} 个也买了「{}」",
                because.label, product.label, because.label, raw.peers, raw.both, product.label
            ),
            Lang::En => format!(
                "Bought “{}” but not “{}”; of the {} {centre} records with the same {peers} that bought “{}”, {} also bought “{}”",
                because.label, product.label, raw.peers, because.label, raw.both, product.label
            ),
        };
        Chance { product, because, peers: raw.peers, both: raw.both, sentence }
    }
}

/// A record's name: its form's title field, else its id.
fn record_title(definitions: &Definitions, record: &Record) -> String {
    definitions
        .forms
        .get(&record.form)
        .and_then(|form| form.meta.title_field.as_ref())
        .and_then(|field| record.fields.get(field.as_str()))
        .and_then(|value| match value {
            Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| record.id.clone())
}

/// The title of a form in a language.
fn form_title(definitions: &Definitions, form: &str, lang: Lang) -> String {
    definitions
        .forms
        .get(&Id::from(form))
        .and_then(|form| form.meta.title.as_ref())
        .map(|title| lang.text(title))
        .unwrap_or_else(|| form.to_owned())
}

/// The label of an `enum` value from the field's `x-ui.options`.
fn option_label(field: &Value, value: &str) -> Option<Text> {
    let values = field.get("enum")?.as_array()?;
    let index = values.iter().position(|candidate| candidate.as_str() == Some(value))?;
    let option = field.get("x-ui")?.get("options")?.get(index)?;
    serde_json::from_value(option.clone()).ok()
}

/// A field as text, when it is a non-empty string.
fn text_field(record: &Record, field: &FieldName) -> Option<String> {
    match record.fields.get(field.as_str()) {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
        _ => None,
    }
}

/// The products each centre record bought: records of the purchase form whose flow
/// ended in one of the declared outcomes, by the centre record they link to.
fn purchases(read: &Reader<'_>, graph: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    let mut bought: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Some(purchases) = &graph.purchases else { return bought };
    let links = read.links(&purchases.form, &graph.centre);
    for record in read.all(purchases.form.as_str()) {
        let outcome = record.flow.as_ref().and_then(|flow| flow.outcome.as_ref());
        if !outcome.is_some_and(|outcome| purchases.outcomes.contains(outcome)) {
            continue;
        }
        let Some(product) = text_field(&record, &purchases.product) else { continue };
        for field in &links {
            if let Some(centre) = text_field(&record, field) {
                bought.entry(centre).or_default().insert(product.clone());
            }
        }
    }
    bought
}

/// The latest declared activity date of each centre record.
fn last_contacts(read: &Reader<'_>, graph: &Graph) -> BTreeMap<String, i64> {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let Some(dormant) = &graph.dormant else { return last };
    for date in &dormant.activity {
        let links = read.links(&date.form, &graph.centre);
        for record in read.all(date.form.as_str()) {
            let Some(at) = record.fields.get(date.field.as_str()).and_then(parse_time) else {
                continue;
            };
            for field in &links {
                if let Some(centre) = text_field(&record, field) {
                    let entry = last.entry(centre).or_insert(at);
                    *entry = (*entry).max(at);
                }
            }
        }
    }
    last
}

/// A date (`YYYY-MM-DD`, taken as midnight UTC) or an RFC 3339 date-time, in Unix
/// milliseconds.
fn parse_time(value: &Value) -> Option<i64> {
    let text = value.as_str()?;
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// A time as its day, `YYYY-MM-DD` (UTC).
fn day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|at| at.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Whether the last contact is at least `after` milliseconds ago; without any
/// contact, a record is not dormant (nothing says it ever was active).
fn is_dormant(last: Option<i64>, now: i64, after: i64) -> bool {
    last.is_some_and(|last| now.saturating_sub(last) >= after)
}

/// A cross-sell chance before labels: the product, the product bought that makes it
/// likely, and the counts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RawChance {
    product: String,
    because: String,
    peers: u32,
    both: u32,
}

/// For every centre record that bought X but not Y: Y, when at least `min_peers`
/// other records with the same `peers` value bought X and at least `min_share`
/// percent of them also bought Y. The best X per Y (highest share, then most
/// records, then by name); Ys by share, then name.
fn chances(
    peers_of: &BTreeMap<String, Option<String>>,
    bought: &BTreeMap<String, BTreeSet<String>>,
    rule: &CrossSell,
) -> BTreeMap<String, Vec<RawChance>> {
    let products: BTreeSet<&String> = bought.values().flatten().collect();
    let empty = BTreeSet::new();
    let mut found: BTreeMap<String, Vec<RawChance>> = BTreeMap::new();
    for (id, group) in peers_of {
        let Some(group) = group else { continue };
        let mine = bought.get(id).unwrap_or(&empty);
        if mine.is_empty() {
            continue;
        }
        let similar: Vec<&BTreeSet<String>> = peers_of
            .iter()
            .filter(|(other, g)| *other != id && g.as_ref() == Some(group))
            .map(|(other, _)| bought.get(other).unwrap_or(&empty))
            .collect();
        let mut list: Vec<RawChance> = Vec::new();
        for product in products.iter().filter(|product| !mine.contains(**product)) {
            let mut best: Option<RawChance> = None;
            for because in mine {
                let with_x: Vec<_> = similar.iter().filter(|set| set.contains(because)).collect();
                let peers = u32::try_from(with_x.len()).unwrap_or(u32::MAX);
                let both =
                    u32::try_from(with_x.iter().filter(|set| set.contains(*product)).count())
                        .unwrap_or(u32::MAX);
                let share_ok =
                    u64::from(both) * 100 >= u64::from(rule.min_share) * u64::from(peers);
                if peers < rule.min_peers || both == 0 || !share_ok {
                    continue;
                }
                let candidate = RawChance {
                    product: (*product).clone(),
                    because: because.clone(),
                    peers,
                    both,
                };
                if best.as_ref().is_none_or(|best| better(&candidate, best)) {
                    best = Some(candidate);
                }
            }
            list.extend(best);
        }
        list.sort_by(|a, b| {
            if better(a, b) {
                std::cmp::Ordering::Less
            } else if better(b, a) {
                std::cmp::Ordering::Greater
            } else {
                a.product.cmp(&b.product)
            }
        });
        if !list.is_empty() {
            found.insert(id.clone(), list);
        }
    }
    found
}

/// Whether `a` is a stronger chance than `b`: a higher share, then more records.
fn better(a: &RawChance, b: &RawChance) -> bool {
    let (left, right) =
        (u64::from(a.both) * u64::from(b.peers), u64::from(b.both) * u64::from(a.peers));
    left > right || (left == right && a.peers > b.peers)
}

// ----- layout ---------------------------------------------------------------------------

/// Where a centre record and its linked records are drawn.
#[derive(Clone, Debug, PartialEq)]
struct Cell {
    centre: (f64, f64),
    satellites: Vec<(f64, f64)>,
}

/// How many columns a grid of `cells` has: about square.
fn columns(cells: usize) -> usize {
    let mut columns = 1;
    while columns * columns < cells {
        columns += 1;
    }
    columns
}

/// The drawing's size for `cells` cells.
fn size(cells: usize) -> (f64, f64) {
    let columns = columns(cells.max(1));
    let rows = cells.max(1).div_ceil(columns);
    (columns as f64 * CELL_WIDTH, rows as f64 * CELL_HEIGHT)
}

/// A grid of cells, row by row; in each, the centre record in the middle and its
/// linked records evenly on a circle around it, the first at the top. The same input
/// gives the same drawing.
fn layout(satellites: &[usize]) -> Vec<Cell> {
    let columns = columns(satellites.len().max(1));
    satellites
        .iter()
        .enumerate()
        .map(|(index, count)| {
            let (row, column) = (index / columns, index % columns);
            let centre = (
                column as f64 * CELL_WIDTH + CELL_WIDTH / 2.0,
                row as f64 * CELL_HEIGHT + CELL_HEIGHT / 2.0,
            );
            let satellites = (0..*count)
                .map(|n| {
                    let angle = -std::f64::consts::FRAC_PI_2
                        + std::f64::consts::TAU * n as f64 / *count as f64;
                    (round(centre.0 + ORBIT * angle.cos()), round(centre.1 + ORBIT * angle.sin()))
                })
                .collect();
            Cell { centre, satellites }
        })
        .collect()
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

// ----- drawing ----------------------------------------------------------------------------

/// The part of the drawing to show: its centre and a zoom factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct View {
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) zoom: f64,
}

impl View {
    /// The whole drawing.
    pub(crate) fn whole(graph: &GraphView) -> View {
        View { x: graph.width / 2.0, y: graph.height / 2.0, zoom: 1.0 }
    }

    /// The SVG `viewBox`.
    fn view_box(self, graph: &GraphView) -> (f64, f64, f64, f64) {
        let (width, height) = (graph.width / self.zoom, graph.height / self.zoom);
        (self.x - width / 2.0, self.y - height / 2.0, width, height)
    }
}

/// Colours: dormant records amber, records with a chance ringed green.
const COLOUR_CENTRE: &str = "#2563eb";
const COLOUR_DORMANT: &str = "#f59e0b";
const COLOUR_CHANCE: &str = "#16a34a";
const COLOUR_PARENT: &str = "#7c3aed";
const COLOUR_LINKED: &[&str] = &["#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"];

/// The colour of linked records of a form: by the form's place among the linked forms.
pub(crate) fn linked_colour(graph: &GraphView, form: &str) -> &'static str {
    let forms: BTreeSet<&str> = graph
        .nodes
        .iter()
        .filter(|node| node.kind == NodeKind::Linked)
        .map(|node| node.form.as_str())
        .collect();
    let index = forms.iter().position(|candidate| *candidate == form).unwrap_or(0);
    COLOUR_LINKED[index % COLOUR_LINKED.len()]
}

/// Escapes text for SVG (XML) content and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max.saturating_sub(1)).chain(['…']).collect()
    }
}

/// The graph as a standalone SVG document: lines for links, circles for records
/// (squares for parent records), names under them, highlights by colour. Every text
/// is escaped; there is no script and no external reference.
pub(crate) fn svg(graph: &GraphView, view: View, legend: &[Key]) -> String {
    let (x, y, width, height) = view.view_box(graph);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"{x:.1} {y:.1} {width:.1} {height:.1}\" \
         width=\"{:.0}\" height=\"{:.0}\" font-family=\"sans-serif\" font-size=\"12\">",
        graph.width.min(1200.0),
        graph.height * graph.width.min(1200.0) / graph.width.max(1.0)
    );
    let _ = write!(out, "<title>{}</title>", escape(&graph.title));
    let _ = write!(
        out,
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"#ffffff\"/>"
    );
    let at: BTreeMap<&str, (f64, f64)> =
        graph.nodes.iter().map(|node| (node.id.as_str(), (node.x, node.y))).collect();
    let kinds: BTreeMap<&str, NodeKind> =
        graph.nodes.iter().map(|node| (node.id.as_str(), node.kind)).collect();
    let parent_links: BTreeSet<(&str, &str)> = graph
        .edges
        .iter()
        .filter(|edge| {
            kinds.get(edge.from.as_str()) == Some(&NodeKind::Centre)
                && kinds.get(edge.to.as_str()).is_some_and(|kind| *kind != NodeKind::Linked)
        })
        .map(|edge| (edge.from.as_str(), edge.to.as_str()))
        .collect();
    for edge in &graph.edges {
        let (Some(from), Some(to)) = (at.get(edge.from.as_str()), at.get(edge.to.as_str())) else {
            continue;
        };
        // A link between two centre records (a parent) is drawn dashed, in the
        // parent's colour; the others thin and grey.
        let style = if parent_links.contains(&(edge.from.as_str(), edge.to.as_str())) {
            format!("stroke=\"{COLOUR_PARENT}\" stroke-width=\"2\" stroke-dasharray=\"6 4\"")
        } else {
            "stroke=\"#cbd5e1\" stroke-width=\"1.5\"".to_owned()
        };
        let _ = write!(
            out,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" {style}/>",
            from.0, from.1, to.0, to.1
        );
    }
    for node in &graph.nodes {
        let name = escape(&short(&node.title, 14));
        let tip = escape(&format!("{}：{}", node.form_title, node.title));
        match node.kind {
            NodeKind::Linked => {
                let _ = write!(
                    out,
                    "<g><title>{tip}</title><circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"9\" fill=\"{}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#334155\">{name}</text></g>",
                    node.x,
                    node.y,
                    linked_colour(graph, &node.form),
                    node.x,
                    node.y + 21.0
                );
            }
            NodeKind::Parent => {
                let _ = write!(
                    out,
                    "<g><title>{tip}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"36\" height=\"36\" rx=\"4\" fill=\"{COLOUR_PARENT}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{name}</text></g>",
                    node.x - 18.0,
                    node.y - 18.0,
                    node.x,
                    node.y + 34.0
                );
            }
            NodeKind::Centre => {
                let fill = if node.dormant { COLOUR_DORMANT } else { COLOUR_CENTRE };
                let _ = write!(out, "<g><title>{tip}</title>");
                if !node.chances.is_empty() {
                    let _ = write!(
                        out,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"27\" fill=\"none\" stroke=\"{COLOUR_CHANCE}\" stroke-width=\"5\"/>",
                        node.x, node.y
                    );
                }
                let _ = write!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"20\" fill=\"{fill}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{name}</text></g>",
                    node.x,
                    node.y,
                    node.x,
                    node.y + 42.0
                );
            }
        }
    }
    draw_legend(&mut out, view, (x, y), legend);
    out.push_str("</svg>");
    out
}

/// An entry of the legend: its words, its colour and whether it is drawn square.
pub(crate) struct Key {
    pub(crate) label: String,
    pub(crate) colour: &'static str,
    pub(crate) square: bool,
}

/// The legend in the top left corner of the view, the same size at every zoom, so
/// that the picture opened alone explains its colours.
fn draw_legend(out: &mut String, view: View, corner: (f64, f64), legend: &[Key]) {
    if legend.is_empty() {
        return;
    }
    let height = 10.0 + 18.0 * legend.len() as f64;
    let _ = write!(
        out,
        "<g transform=\"translate({:.1} {:.1}) scale({:.4})\">\
         <rect x=\"0\" y=\"0\" width=\"210\" height=\"{height:.0}\" rx=\"4\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#e2e8f0\"/>",
        corner.0 + 6.0 / view.zoom,
        corner.1 + 6.0 / view.zoom,
        1.0 / view.zoom
    );
    for (index, key) in legend.iter().enumerate() {
        let y = 14.0 + 18.0 * index as f64;
        if key.square {
            let _ = write!(
                out,
                "<rect x=\"8\" y=\"{:.0}\" width=\"10\" height=\"10\" rx=\"2\" fill=\"{}\"/>",
                y - 5.0,
                key.colour
            );
        } else {
            let _ =
                write!(out, "<circle cx=\"13\" cy=\"{y:.0}\" r=\"5\" fill=\"{}\"/>", key.colour);
        }
        let _ = write!(
            out,
            "<text x=\"24\" y=\"{:.0}\" font-size=\"11\" fill=\"#334155\">{}</text>",
            y + 4.0,
            escape(&key.label)
        );
    }
    out.push_str("</g>");
}

/// The colours of the legend, for the page.
pub(crate) const LEGEND: &[(&str, &str)] = &[
    ("centre", COLOUR_CENTRE),
    ("dormant", COLOUR_DORMANT),
    ("chance", COLOUR_CHANCE),
    ("parent", COLOUR_PARENT),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    fn rule(min_share: u8, min_peers: u32) -> CrossSell {
        CrossSell { peers: FieldName::from("industry"), min_share, min_peers }
    }

    #[test]
    fn a_product_most_similar_buyers_took_is_a_chance_with_its_counts() {
        let peers: BTreeMap<String, Option<String>> = [
            ("me", Some("m")),
            ("a", Some("m")),
            ("b", Some("m")),
            ("c", Some("m")),
            ("other", Some("x")),
            ("none", None),
        ]
        .into_iter()
        .map(|(id, group)| (id.to_owned(), group.map(str::to_owned)))
        .collect();
        let bought: BTreeMap<String, BTreeSet<String>> = [
            ("me", set(&["machines"])),
            ("a", set(&["machines", "parts"])),
            ("b", set(&["machines", "parts"])),
            ("c", set(&["machines"])),
            ("other", set(&["machines", "service"])),
        ]
        .into_iter()
        .map(|(id, products)| (id.to_owned(), products))
        .collect();
        let found = chances(&peers, &bought, &rule(60, 2));
        let mine = found.get("me").expect("a chance for me");
        assert_eq!(
            mine,
            &vec![RawChance {
                product: "parts".into(),
                because: "machines".into(),
                peers: 3,
                both: 2
            }]
        );
        // Another industry's purchases do not count; 2 of 3 is below 70 %.
        assert!(!chances(&peers, &bought, &rule(70, 2)).contains_key("me"));
        // Too few similar records.
        assert!(!chances(&peers, &bought, &rule(10, 4)).contains_key("me"));
        // A record that bought nothing, or has no group, gets nothing.
        assert!(!found.contains_key("none"));
        // Records that already have both are not offered either.
        assert!(!found.contains_key("a"));
        // c bought machines; a and b (2 of 3 others with machines) took parts.
        assert_eq!(found.get("c").map(|list| list[0].both), Some(2));
    }

    #[test]
    fn dormant_means_a_last_contact_at_least_that_long_ago() {
        let day = MS_PER_DAY;
        assert!(is_dormant(Some(0), 200 * day, 180 * day));
        assert!(is_dormant(Some(20 * day), 200 * day, 180 * day));
        assert!(!is_dormant(Some(21 * day), 200 * day, 180 * day));
        assert!(!is_dormant(None, 200 * day, 180 * day));
    }

    #[test]
    fn dates_and_date_times_are_read() {
        assert_eq!(parse_time(&Value::from("1970-01-02")), Some(MS_PER_DAY));
        assert_eq!(parse_time(&Value::from("1970-01-02T08:00:00+08:00")), Some(MS_PER_DAY));
        assert_eq!(parse_time(&Value::from("yesterday")), None);
        assert_eq!(parse_time(&Value::from(3)), None);
        assert_eq!(day(MS_PER_DAY), "1970-01-02");
    }

    #[test]
    fn the_layout_is_a_grid_with_satellites_on_a_circle_and_repeats_exactly() {
        let cells = layout(&[4, 0, 1, 2, 3]);
        assert_eq!(cells.len(), 5);
        assert_eq!(columns(5), 3);
        assert_eq!(cells[0].centre, (150.0, 130.0));
        assert_eq!(cells[3].centre, (150.0, 390.0));
        // The first satellite sits straight above its centre record, the others around.
        assert_eq!(cells[0].satellites[0], (150.0, 35.0));
        assert_eq!(cells[0].satellites[1], (245.0, 130.0));
        assert!(cells[1].satellites.is_empty());
        assert_eq!(layout(&[4, 0, 1, 2, 3]), cells);
        assert_eq!(size(5), (900.0, 520.0));
        assert_eq!(size(0), (300.0, 260.0));
    }

    #[test]
    fn svg_text_is_escaped_and_the_view_box_follows_zoom_and_centre() {
        let node = Node {
            id: "c1".into(),
            form: "customer".into(),
            form_title: "客户".into(),
            kind: NodeKind::Centre,
            title: "<script>alert('x')</script>".into(),
            href: "/ui/records/customer/c1".into(),
            owner: None,
            x: 150.0,
            y: 130.0,
            dormant: true,
            last_contact: None,
            products: Vec::new(),
            chances: Vec::new(),
        };
        let graph = GraphView {
            graph: "g".into(),
            title: "A & B".into(),
            centre: "customer".into(),
            centre_title: "客户".into(),
            scope: Scope::default(),
            lang: "zh-CN".into(),
            nodes: vec![node],
            edges: Vec::new(),
            truncated: false,
            width: 300.0,
            height: 260.0,
        };
        let legend = [Key { label: "沉睡 <old>".into(), colour: COLOUR_DORMANT, square: false }];
        let drawing = svg(&graph, View::whole(&graph), &legend);
        assert!(drawing.contains("沉睡 &lt;old&gt;"), "{drawing}");
        assert!(!drawing.contains("<script"), "{drawing}");
        assert!(drawing.contains("&lt;script&gt;"), "{drawing}");
        assert!(drawing.contains("A &amp; B"));
        assert!(drawing.contains("viewBox=\"0.0 0.0 300.0 260.0\""));
        assert!(drawing.contains(COLOUR_DORMANT));
        let zoomed = svg(&graph, View { x: 100.0, y: 100.0, zoom: 2.0 }, &[]);
        assert!(zoomed.contains("viewBox=\"25.0 35.0 150.0 130.0\""), "{zoomed}");
    }
}
