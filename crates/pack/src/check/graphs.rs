//! Checks of the `graphs:` of rules files: the forms, fields and flow outcomes a
//! relationship graph names exist, and the forms drawn around the centre link to it.

use std::collections::{BTreeMap, BTreeSet};

use stagecraft_model::{Code, Diagnostic, FieldName, Graph, Id};

use super::{Context, Kind};
use crate::load::Content;
use crate::structure::closest;

impl Context<'_> {
    /// Checks every graph of every rules file; returns them in file order.
    pub(super) fn check_graphs(&mut self) -> Vec<Graph> {
        let workspace = self.workspace;
        let mut graphs = Vec::new();
        let mut seen: BTreeMap<Id, ()> = BTreeMap::new();
        for (file, loaded) in workspace.files.iter().enumerate() {
            let Some(Content::Rules(rules)) = &loaded.content else { continue };
            for (position, graph) in rules.graphs.iter().enumerate() {
                let pointer = format!("/graphs/{position}");
                if seen.insert(graph.id.clone(), ()).is_some() {
                    let diagnostic = Diagnostic::new(
                        Code::DuplicateId,
                        format!("graph `{}` is defined twice", graph.id),
                    )
                    .at(self.at(file, &format!("{pointer}/id")))
                    .hint("give each graph its own id");
                    self.push(diagnostic);
                }
                self.check_graph(graph, file, &pointer);
                graphs.push(graph.clone());
            }
        }
        graphs
    }

    fn check_graph(&mut self, graph: &Graph, file: usize, pointer: &str) {
        if !self.reference(Kind::Form, &graph.centre, file, &format!("{pointer}/centre")) {
            return;
        }
        let centre = &graph.centre;
        if let Some(parent) = &graph.parent {
            self.link_field(centre, parent, centre, file, &format!("{pointer}/parent"));
        }
        for (n, form) in graph.linked.iter().enumerate() {
            self.linked_form(form, centre, file, &format!("{pointer}/linked/{n}"));
        }
        if let Some(purchases) = &graph.purchases {
            let inner = format!("{pointer}/purchases");
            if self.linked_form(&purchases.form, centre, file, &format!("{inner}/form")) {
                let form = Some(&purchases.form);
                self.field(form, &purchases.product, file, &format!("{inner}/product"));
                self.outcomes(&purchases.form, &purchases.outcomes, file, &inner);
            }
        }
        if let Some(dormant) = &graph.dormant {
            let inner = format!("{pointer}/dormant");
            self.duration(&dormant.after, file, &format!("{inner}/after"));
            if dormant.buyers_only && graph.purchases.is_none() {
                let diagnostic =
                    Diagnostic::new(Code::MissingKey, "`buyers_only` needs `purchases`")
                        .at(self.key_at(file, &format!("{inner}/buyers_only")))
                        .hint("declare `purchases:` (form, product, outcomes)");
                self.push(diagnostic);
            }
            for (n, date) in dormant.activity.iter().enumerate() {
                let at = format!("{inner}/activity/{n}");
                if self.linked_form(&date.form, centre, file, &format!("{at}/form")) {
                    self.field(Some(&date.form), &date.field, file, &format!("{at}/field"));
                }
            }
        }
        if let Some(cross_sell) = &graph.cross_sell {
            let inner = format!("{pointer}/cross_sell");
            self.field(Some(centre), &cross_sell.peers, file, &format!("{inner}/peers"));
            if graph.purchases.is_none() {
                let diagnostic =
                    Diagnostic::new(Code::MissingKey, "`cross_sell` needs `purchases`")
                        .at(self.key_at(file, &inner))
                        .hint("declare `purchases:` (form, product, outcomes)");
                self.push(diagnostic);
            }
        }
    }

    /// Whether `form` is known and has an `x-link` field to `centre`; reports it when
    /// not.
    fn linked_form(&mut self, form: &Id, centre: &Id, file: usize, pointer: &str) -> bool {
        if !self.reference(Kind::Form, form, file, pointer) {
            return false;
        }
        let links = self
            .form_fields(form)
            .is_some_and(|fields| fields.values().any(|info| info.link.as_ref() == Some(centre)));
        if !links {
            let diagnostic = Diagnostic::new(
                Code::UnknownField,
                format!("form `{form}` has no `x-link` field to `{centre}`"),
            )
            .at(self.at(file, pointer))
            .hint(format!("add a field with `\"x-link\": {{\"form\": \"{centre}\"}}` to `{form}`"));
            self.push(diagnostic);
        }
        links
    }

    /// Reports a field of `form` that is missing or does not link to `target`.
    fn link_field(
        &mut self,
        form: &Id,
        field: &FieldName,
        target: &Id,
        file: usize,
        pointer: &str,
    ) {
        let Some(fields) = self.form_fields(form) else { return };
        match fields.get(field) {
            None => self.field(Some(form), field, file, pointer),
            Some(info) if info.link.as_ref() != Some(target) => {
                let diagnostic = Diagnostic::new(
                    Code::UnknownField,
                    format!("field `{field}` of `{form}` is not an `x-link` to `{target}`"),
                )
                .at(self.at(file, pointer))
                .hint(format!("name a field with `\"x-link\": {{\"form\": \"{target}\"}}`"));
                self.push(diagnostic);
            }
            Some(_) => {}
        }
    }

    /// Reports outcomes that no flow of `form` ends with.
    fn outcomes(&mut self, form: &Id, outcomes: &[Id], file: usize, pointer: &str) {
        let known: BTreeSet<Id> = self
            .flows
            .values()
            .filter(|def| &def.value.form == form)
            .flat_map(|def| def.value.stages.iter().filter_map(|stage| stage.outcome.clone()))
            .collect();
        for (n, outcome) in outcomes.iter().enumerate() {
            if known.contains(outcome) {
                continue;
            }
            let hint = match closest(outcome.as_str(), known.iter().map(Id::as_str)) {
                Some(candidate) => format!("did you mean `{candidate}`?"),
                None if known.is_empty() => format!("no flow drives form `{form}`"),
                None => format!(
                    "flows of `{form}` end with: {}",
                    known.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
                ),
            };
            let diagnostic = Diagnostic::new(
                Code::UnknownOutcome,
                format!("no flow of form `{form}` ends with outcome `{outcome}`"),
            )
            .at(self.at(file, &format!("{pointer}/outcomes/{n}")))
            .hint(hint);
            self.push(diagnostic);
        }
    }
}
