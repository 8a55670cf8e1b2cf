//! Cross-file checks: ids unique, every reference resolved (with the pack that
//! defines it required), every script and template compiled, flows sound. Produces
//! the [`Definitions`] when nothing is wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use stagecraft_model::{
    Action, Approval, ApprovalPolicy, CalendarFile, Code, Condition, DateEntry, Diagnostic, Effect,
    EscalationLadder, FieldName, FlowFile, Gate, HoursSpan, Id, Location, OrgFile, PackManifest,
    Party, Report as ScheduledReport, RoleDecl, RulesFile, Sla, Stage, TaskEffect, TriggerEvent,
};
use stagecraft_rules::{CompiledRule, Limits, NoHost, RuleErrorKind, Sandbox};

use crate::definitions::{Calendar, Definitions, ScriptKey, TemplateSet};
use crate::discover::FileKind;
use crate::forms::{self, FormDraft};
use crate::load::{Content, Workspace};
use crate::schedule::parse_schedule;
use crate::structure::closest;
use crate::tree::ScalarKind;

mod adoption;
mod graphs;
mod measures;

/// Something defined somewhere: which file, and its value.
struct Def<T> {
    file: usize,
    value: T,
}

/// The kinds of things that have ids, for messages and lookups.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Form,
    Flow,
    Gate,
    Template,
    Role,
    Calendar,
    Escalation,
    Alert,
    Report,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Form => "form",
            Kind::Flow => "flow",
            Kind::Gate => "rule",
            Kind::Template => "template",
            Kind::Role => "role",
            Kind::Calendar => "calendar",
            Kind::Escalation => "escalation ladder",
            Kind::Alert => "alert",
            Kind::Report => "report",
        }
    }

    fn unknown_code(self) -> Code {
        match self {
            Kind::Form => Code::UnknownForm,
            Kind::Flow => Code::UnknownFlow,
            Kind::Gate => Code::UnknownRule,
            Kind::Template => Code::UnknownTemplate,
            Kind::Role => Code::UnknownRole,
            Kind::Calendar => Code::UnknownCalendar,
            Kind::Escalation => Code::UnknownEscalation,
            Kind::Alert | Kind::Report => Code::UnknownRule,
        }
    }
}

struct Context<'a> {
    workspace: &'a Workspace,
    diagnostics: Vec<Diagnostic>,
    sandbox: Arc<Sandbox>,
    scripts: BTreeMap<ScriptKey, CompiledRule>,
    /// Kind → id → (file, pointer of the id).
    ids: HashMap<(u8, Id), (usize, String)>,
    forms: BTreeMap<Id, Def<FormDraft>>,
    flows: BTreeMap<Id, Def<FlowFile>>,
    gates: BTreeMap<Id, Def<Gate>>,
    escalations: BTreeMap<Id, Def<EscalationLadder>>,
    calendars: BTreeMap<Id, Def<Calendar>>,
    templates: BTreeMap<Id, Def<TemplateSet>>,
    roles: BTreeMap<Id, Def<RoleDecl>>,
    org: OrgFile,
    org_files: Vec<usize>,
    /// Pack index → names of the packs it requires.
    requires: HashMap<usize, BTreeSet<String>>,
    /// (template id, locale) → file, to point at the first of two copies.
    template_files: HashMap<(Id, String), usize>,
    /// Where each compiled script sits, to place what `check_queries` finds.
    script_places: Vec<(ScriptKey, usize, Option<String>)>,
    /// Ids defined more than once.
    duplicated: BTreeSet<(u8, Id)>,
    /// Gates whose `file:` is missing; a stray script of the same name is the likely
    /// intended one and is not reported again as a duplicate.
    gates_without_script: BTreeSet<Id>,
    /// Second copies of a pack: reported once, their files not read again.
    ignored_packs: BTreeSet<usize>,
}

pub(crate) fn resolve(workspace: &mut Workspace) -> Option<Definitions> {
    let sandbox = Arc::new(Sandbox::new(Limits::default(), Arc::new(NoHost)));
    let mut cx = Context {
        workspace,
        diagnostics: Vec::new(),
        sandbox: sandbox.clone(),
        scripts: BTreeMap::new(),
        ids: HashMap::new(),
        forms: BTreeMap::new(),
        flows: BTreeMap::new(),
        gates: BTreeMap::new(),
        escalations: BTreeMap::new(),
        calendars: BTreeMap::new(),
        templates: BTreeMap::new(),
        roles: BTreeMap::new(),
        org: OrgFile::default(),
        org_files: Vec::new(),
        requires: HashMap::new(),
        ignored_packs: BTreeSet::new(),
        template_files: HashMap::new(),
        gates_without_script: BTreeSet::new(),
        duplicated: BTreeSet::new(),
        script_places: Vec::new(),
    };
    cx.manifests();
    cx.collect();
    cx.check_org();
    cx.check_forms();
    let mut alerts = Vec::new();
    let mut reports = Vec::new();
    cx.check_rules_files(&mut alerts, &mut reports);
    let graphs = cx.check_graphs();
    let flow_ids: Vec<Id> = cx.flows.keys().cloned().collect();
    for id in &flow_ids {
        cx.check_flow(id);
    }
    cx.check_all_measures();
    cx.check_targets();
    cx.check_subflow_cycles();
    cx.check_queries();
    let Context {
        diagnostics,
        scripts,
        forms,
        flows,
        gates,
        escalations,
        calendars,
        templates,
        roles,
        org,
        ..
    } = cx;
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    workspace.diagnostics.extend(diagnostics);
    if failed {
        return None;
    }
    Some(Definitions {
        packs: Vec::new(),
        forms: forms.into_iter().map(|(id, def)| (id, def.value.form)).collect(),
        flows: flows.into_iter().map(|(id, def)| (id, def.value)).collect(),
        gates: gates.into_iter().map(|(id, def)| (id, def.value)).collect(),
        alerts,
        escalations: escalations.into_iter().map(|(id, def)| (id, def.value)).collect(),
        reports,
        graphs,
        calendars: calendars.into_iter().map(|(id, def)| (id, def.value)).collect(),
        templates: templates.into_iter().map(|(id, def)| (id, def.value)).collect(),
        roles: roles.into_iter().map(|(id, def)| (id, def.value)).collect(),
        org,
        scripts,
        sandbox,
    })
}

impl Context<'_> {
    // ----- places and messages -------------------------------------------------

    fn at(&self, file: usize, pointer: &str) -> Option<Location> {
        let loaded = &self.workspace.files[file];
        match loaded.document.as_ref() {
            Some(document) => Some(loaded.source.location(document.value_range(pointer))),
            // Scripts and templates have no tree: the file's first line stands for them.
            None => Some(loaded.source.start_location()),
        }
    }

    fn key_at(&self, file: usize, pointer: &str) -> Option<Location> {
        let loaded = &self.workspace.files[file];
        let document = loaded.document.as_ref()?;
        Some(loaded.source.location(document.key_range(pointer)))
    }

    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn pack_of(&self, file: usize) -> Option<usize> {
        self.workspace.files[file].pack
    }

    fn pack_name(&self, pack: usize) -> Option<String> {
        let manifest = self.workspace.packs.get(pack)?.manifest_file;
        match &self.workspace.files[manifest].content {
            Some(Content::Manifest(manifest)) => Some(manifest.name.to_string()),
            _ => None,
        }
    }

    /// Registers an id; reports a duplicate with the first definition.
    fn register(&mut self, kind: Kind, id: &Id, file: usize, pointer: &str) -> bool {
        let key = (kind as u8, id.clone());
        if let Some((first_file, first_pointer)) = self.ids.get(&key).cloned() {
            self.duplicated.insert(key.clone());
            let related = self.at(first_file, &first_pointer);
            let diagnostic = Diagnostic::new(
                Code::DuplicateId,
                format!("{} `{id}` is defined twice", kind.word()),
            )
            .at(self.at(file, pointer))
            .related("first defined here", related)
            .hint(format!("give each {} its own id", kind.word()));
            self.push(diagnostic);
            return false;
        }
        self.ids.insert(key, (file, pointer.to_owned()));
        true
    }

    /// Looks up a reference and reports it when unknown, or when it comes from a pack
    /// the referring pack does not require.
    fn reference(&mut self, kind: Kind, id: &Id, file: usize, pointer: &str) -> bool {
        let key = (kind as u8, id.clone());
        let Some((defining_file, _)) = self.ids.get(&key).cloned() else {
            let candidates: Vec<String> = self
                .ids
                .keys()
                .filter(|(k, _)| *k == kind as u8)
                .map(|(_, id)| id.to_string())
                .collect();
            let hint = match closest(id.as_str(), candidates.iter().map(String::as_str)) {
                Some(candidate) => format!("did you mean `{candidate}`?"),
                None if candidates.is_empty() => {
                    format!("no {} is loaded; check the pack's `contents`", kind.word())
                }
                None => {
                    let mut sorted = candidates.clone();
                    sorted.sort();
                    sorted.truncate(12);
                    format!(
                        "known {}s: {}",
                        kind.word(),
                        sorted.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                    )
                }
            };
            let diagnostic =
                Diagnostic::new(kind.unknown_code(), format!("unknown {} `{id}`", kind.word()))
                    .at(self.at(file, pointer))
                    .hint(hint);
            self.push(diagnostic);
            return false;
        };
        // With two definitions, which one is meant is unknown; the duplicate is reported.
        let duplicated = self.duplicated.contains(&key);
        if let (false, Some(from), Some(to)) =
            (duplicated, self.pack_of(file), self.pack_of(defining_file))
        {
            // A pack whose manifest has mistakes cannot say what it requires.
            if from != to && self.pack_name(from).is_some() && self.pack_name(to).is_some() {
                let to_name = self.pack_name(to).unwrap_or_default();
                let required =
                    self.requires.get(&from).is_some_and(|names| names.contains(&to_name));
                if !required {
                    let from_name = self.pack_name(from).unwrap_or_default();
                    let diagnostic = Diagnostic::new(
                        Code::MissingPack,
                        format!("{} `{id}` comes from pack `{to_name}`, which pack `{from_name}` does not require", kind.word()),
                    )
                    .at(self.at(file, pointer))
                    .hint(format!("add `- pack: {to_name}` under `requires:` in {from_name}'s pack.yaml"));
                    self.push(diagnostic);
                    return false;
                }
            }
        }
        true
    }

    // ----- manifests -------------------------------------------------------------

    fn manifests(&mut self) {
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut versions: BTreeMap<String, semver::Version> = BTreeMap::new();
        let packs: Vec<(usize, usize)> = self
            .workspace
            .packs
            .iter()
            .enumerate()
            .map(|(index, pack)| (index, pack.manifest_file))
            .collect();
        for &(pack, file) in &packs {
            let Some(Content::Manifest(manifest)) = &self.workspace.files[file].content else {
                // A manifest with mistakes (reported already) still names its pack, so
                // packs that require it are not told it is missing.
                let document = self.workspace.files[file].document.as_ref();
                if let Some(name) =
                    document.and_then(|d| d.value.get("name")).and_then(|n| n.as_str())
                {
                    names.entry(name.to_owned()).or_insert(file);
                }
                continue;
            };
            let name = manifest.name.to_string();
            if let Some(first) = names.get(&name).copied() {
                self.ignored_packs.insert(pack);
                let diagnostic =
                    Diagnostic::new(Code::DuplicatePack, format!("pack `{name}` is loaded twice"))
                        .at(self.at(file, "/name"))
                        .related("first loaded from here", self.at(first, "/name"))
                        .hint("check only one copy of each pack, or rename one");
                self.push(diagnostic);
                continue;
            }
            names.insert(name.clone(), file);
            match semver::Version::parse(&manifest.version) {
                Ok(version) => {
                    versions.insert(name, version);
                }
                Err(error) => {
                    let diagnostic = Diagnostic::new(
                        Code::InvalidVersion,
                        format!("`{}` is not a version: {error}", manifest.version),
                    )
                    .at(self.at(file, "/version"))
                    .hint("write MAJOR.MINOR.PATCH, e.g. `1.0.0`");
                    self.push(diagnostic);
                }
            }
        }
        for &(pack, file) in &packs {
            let Some(Content::Manifest(manifest)) = &self.workspace.files[file].content else {
                continue;
            };
            if self.ignored_packs.contains(&pack) {
                continue;
            }
            let manifest: &PackManifest = manifest;
            let mut required = BTreeSet::new();
            for (position, requirement) in manifest.requires.iter().enumerate() {
                let pointer = format!("/requires/{position}");
                let name = requirement.pack.to_string();
                required.insert(name.clone());
                let wanted = match requirement.version.as_deref().map(semver::VersionReq::parse) {
                    None => None,
                    Some(Ok(wanted)) => Some(wanted),
                    Some(Err(error)) => {
                        let diagnostic = Diagnostic::new(
                            Code::InvalidVersion,
                            format!(
                                "`{}` is not a version requirement: {error}",
                                requirement.version.as_deref().unwrap_or_default()
                            ),
                        )
                        .at(self.at(file, &format!("{pointer}/version")))
                        .hint("write a requirement like `^1.0` or `>=1.2, <2`");
                        self.push(diagnostic);
                        continue;
                    }
                };
                match (versions.get(&name), names.contains_key(&name)) {
                    (_, false) => {
                        let diagnostic = Diagnostic::new(
                            Code::MissingPack,
                            format!("pack `{name}` is required but not loaded"),
                        )
                        .at(self.at(file, &format!("{pointer}/pack")))
                        .hint(format!("pass the folder of pack `{name}` to the command as well"));
                        self.push(diagnostic);
                    }
                    (Some(version), true) => {
                        if let Some(wanted) = wanted.filter(|wanted| !wanted.matches(version)) {
                            let diagnostic = Diagnostic::new(
                                Code::MissingPack,
                                format!(
                                    "pack `{name}` {version} is loaded, but `{wanted}` is required"
                                ),
                            )
                            .at(self.at(file, &format!("{pointer}/version")))
                            .hint("load a matching version, or change the requirement");
                            self.push(diagnostic);
                        }
                    }
                    (None, true) => {}
                }
            }
            self.requires.insert(pack, required);
            let roles = manifest.roles.clone();
            for (position, role) in roles.into_iter().enumerate() {
                let pointer = format!("/roles/{position}/id");
                if self.register(Kind::Role, &role.id, file, &pointer) {
                    self.roles.insert(role.id.clone(), Def { file, value: role });
                }
            }
        }
    }

    // ----- ids across files --------------------------------------------------------

    fn collect(&mut self) {
        let workspace = self.workspace;
        // Scripts referenced by a gate's `file:` belong to that gate.
        let mut claimed_scripts = BTreeSet::new();
        for loaded in &workspace.files {
            if let Some(Content::Rules(rules)) = &loaded.content {
                let dir = loaded.source.path.parent().map(Path::to_path_buf).unwrap_or_default();
                for gate in &rules.gates {
                    if let Some(file) = &gate.file {
                        claimed_scripts.insert(crate::discover::canonical(&dir.join(file)));
                    }
                }
            }
        }
        let ignored = |loaded: &crate::load::Loaded| {
            loaded.pack.is_some_and(|pack| self.ignored_packs.contains(&pack))
        };
        let skipped: BTreeSet<usize> = workspace
            .files
            .iter()
            .enumerate()
            .filter(|(_, loaded)| ignored(loaded))
            .map(|(index, _)| index)
            .collect();
        for (index, loaded) in workspace.files.iter().enumerate() {
            if loaded.kind != FileKind::FormatSchema && !skipped.contains(&index) {
                self.texts_without_chinese(index);
            }
        }
        let mut unclaimed_scripts = Vec::new();
        for (index, loaded) in workspace.files.iter().enumerate() {
            if skipped.contains(&index) {
                continue;
            }
            match (&loaded.content, loaded.kind) {
                (Some(Content::Form), _) => self.collect_form(index),
                (Some(Content::FormatSchema), _) => {
                    if let Some(document) = &loaded.document {
                        forms::check_format_schema(&loaded.source, document, &mut self.diagnostics);
                    }
                }
                (Some(Content::Template), _) => self.collect_template(index),
                (Some(Content::Script), _)
                    if !claimed_scripts
                        .contains(&crate::discover::canonical(&loaded.source.path)) =>
                {
                    // After the rules files, which may name scripts by `file:`.
                    unclaimed_scripts.push(index);
                }
                (Some(Content::Flow(flow)), _)
                    if self.register(Kind::Flow, &flow.id, index, "/id") =>
                {
                    self.flows.insert(flow.id.clone(), Def { file: index, value: flow.clone() });
                }
                (Some(Content::Calendar(calendar)), _) => self.collect_calendar(index, calendar),
                (Some(Content::Org(org)), _) => {
                    self.org_files.push(index);
                    self.org.departments.extend(org.departments.iter().cloned());
                    self.org.users.extend(org.users.iter().cloned());
                    self.org.targets.extend(org.targets.iter().cloned());
                }
                (Some(Content::Rules(rules)), _) => self.collect_rules(index, rules),
                (None, kind) => self.remember_ids_of_broken_file(index, kind),
                _ => {}
            }
        }
        for index in unclaimed_scripts {
            self.collect_script_gate(index);
        }
    }

    /// A file that failed its format check still names things (a flow's id, a
    /// ladder's id). Knowing them keeps one mistake from being reported again at every
    /// place that refers to them.
    fn remember_ids_of_broken_file(&mut self, file: usize, kind: FileKind) {
        fn id(value: &serde_json::Value) -> Option<&str> {
            value.get("id").and_then(serde_json::Value::as_str)
        }
        let loaded = &self.workspace.files[file];
        if kind == FileKind::Form {
            if let Some(stem) = loaded.source.path.file_name().and_then(|name| name.to_str()) {
                let id = loaded
                    .document
                    .as_ref()
                    .and_then(|document| document.value.pointer("/x-form/id"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(stem.trim_end_matches(".json"))
                    .to_owned();
                self.ids.entry((Kind::Form as u8, Id(id))).or_insert((file, String::new()));
            }
            return;
        }
        let Some(document) = &loaded.document else {
            // Not even YAML: a top-level `id:` line still says which flow or calendar
            // the file meant to define.
            let kind = match kind {
                FileKind::Flow => Kind::Flow,
                FileKind::Calendar => Kind::Calendar,
                _ => return,
            };
            let id = loaded.source.text.lines().find_map(|line| {
                let value = line.strip_prefix("id:")?.trim().trim_matches(['"', '\'']);
                valid_id(value).then(|| value.to_owned())
            });
            if let Some(id) = id {
                self.ids.entry((kind as u8, Id(id))).or_insert((file, String::new()));
            }
            return;
        };
        let value = &document.value;
        let mut names: Vec<(Kind, &str)> = Vec::new();
        match kind {
            FileKind::Manifest => {
                if let Some(roles) = value.get("roles").and_then(serde_json::Value::as_array) {
                    names.extend(roles.iter().filter_map(id).map(|id| (Kind::Role, id)));
                }
            }
            FileKind::Flow => names.extend(id(value).map(|id| (Kind::Flow, id))),
            FileKind::Calendar => names.extend(id(value).map(|id| (Kind::Calendar, id))),
            FileKind::Rules => {
                for (section, kind) in [("gates", Kind::Gate), ("escalations", Kind::Escalation)] {
                    if let Some(items) = value.get(section).and_then(serde_json::Value::as_array) {
                        names.extend(items.iter().filter_map(id).map(|id| (kind, id)));
                    }
                }
            }
            _ => {}
        }
        for (kind, name) in names {
            self.ids.entry((kind as u8, Id(name.to_owned()))).or_insert((file, String::new()));
        }
    }

    /// Warns about texts that have an English version but no Chinese one.
    fn texts_without_chinese(&mut self, file: usize) {
        let Some(document) = &self.workspace.files[file].document else { return };
        let mut found = Vec::new();
        let mut pending = vec![(&document.value, String::new())];
        while let Some((value, pointer)) = pending.pop() {
            match value {
                serde_json::Value::Object(map) => {
                    let is_text =
                        !map.is_empty() && map.keys().all(|key| key == "zh-CN" || key == "en");
                    if is_text && !map.contains_key("zh-CN") {
                        found.push(pointer);
                        continue;
                    }
                    for (key, child) in map {
                        pending.push((
                            child,
                            format!("{pointer}/{}", crate::tree::pointer_segment(key)),
                        ));
                    }
                }
                serde_json::Value::Array(items) => {
                    for (position, child) in items.iter().enumerate() {
                        pending.push((child, format!("{pointer}/{position}")));
                    }
                }
                _ => {}
            }
        }
        found.sort();
        for pointer in found {
            let diagnostic =
                Diagnostic::new(Code::MissingTranslation, "this text has English but no Chinese")
                    .at(self.at(file, &pointer))
                    .hint("add `zh-CN: …`; the product speaks Chinese first");
            self.push(diagnostic);
        }
    }

    fn collect_form(&mut self, file: usize) {
        let loaded = &self.workspace.files[file];
        let Some(document) = &loaded.document else { return };
        let stem = loaded
            .source
            .path
            .file_name()
            .and_then(|name| name.to_str())
            .map(|name| name.trim_end_matches(".json").to_owned())
            .unwrap_or_default();
        let pack = loaded.pack.and_then(|pack| self.pack_name(pack));
        let Some(draft) =
            forms::compile(&loaded.source, document, &stem, pack, &mut self.diagnostics)
        else {
            // Keep the id known, so that a broken form is reported once and not again
            // at every place that uses it.
            let id =
                document.value.pointer("/x-form/id").and_then(|id| id.as_str()).unwrap_or(&stem);
            self.ids.entry((Kind::Form as u8, Id(id.to_owned()))).or_insert((file, String::new()));
            return;
        };
        let id = draft.form.id.clone();
        let pointer = if draft.form.meta.id.is_some() { "/x-form/id" } else { "" };
        if self.register(Kind::Form, &id, file, pointer) {
            self.forms.insert(id, Def { file, value: draft });
        }
    }

    fn collect_template(&mut self, file: usize) {
        let loaded = &self.workspace.files[file];
        let source = &loaded.source;
        let name = source.path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        let stem = name.trim_end_matches(".hbs");
        let (id, locale) = match stem.rsplit_once('.') {
            Some((id, locale)) => (id, locale),
            None => (stem, "zh-CN"),
        };
        if !matches!(locale, "zh-CN" | "en")
            || Id(id.to_owned()).as_str().is_empty()
            || !valid_id(id)
        {
            self.push(
                Diagnostic::new(Code::TemplateName, format!("`{name}` is not a valid template file name"))
                    .at(Some(source.start_location()))
                    .hint("name templates `<id>.zh-CN.hbs` or `<id>.en.hbs`, e.g. `task_assigned.zh-CN.hbs`"),
            );
            return;
        }
        let mut ok = true;
        for (offset, _) in source.text.match_indices("{{{").chain(source.text.match_indices("{{&"))
        {
            ok = false;
            let diagnostic =
                Diagnostic::new(Code::UnescapedOutput, "this prints a value without escaping it")
                    .at(Some(source.location(offset..offset + 3)))
                    .hint(
                        "use `{{ value }}`: values come from what users typed and must be escaped",
                    );
            self.push(diagnostic);
        }
        if let Some((range, message, hint)) = unbalanced_block(&source.text) {
            ok = false;
            self.push(
                Diagnostic::new(Code::TemplateSyntax, message)
                    .at(Some(source.location(range)))
                    .hint(hint),
            );
        } else if let Err(error) = handlebars::Template::compile(&source.text) {
            ok = false;
            let location = error.pos().map(|(line, column)| {
                let offset = source.offset(line, column.saturating_sub(1));
                source.location(offset..offset)
            });
            // The parser's own message lists grammar tokens; its first line is enough.
            let reason = error.reason().to_string();
            let reason = reason.lines().next().unwrap_or_default().trim_end_matches([':', '.']);
            self.push(
                Diagnostic::new(Code::TemplateSyntax, lowercase_first(reason))
                    .at(location.or_else(|| Some(source.start_location())))
                    .hint("check that every `{{#if}}`/`{{#each}}` has its `{{/if}}`/`{{/each}}` and every `{{` its `}}`"),
            );
        }
        let id = Id(id.to_owned());
        if !ok {
            // Known, so that its users are not told it is missing as well.
            self.ids.entry((Kind::Template as u8, id)).or_insert((file, String::new()));
            return;
        }
        self.template_files.entry((id.clone(), locale.to_owned())).or_insert(file);
        let text = source.text.clone();
        match self.templates.get_mut(&id) {
            Some(existing) => {
                if existing.value.sources.contains_key(locale) {
                    let first = self
                        .template_files
                        .get(&(id.clone(), locale.to_owned()))
                        .copied()
                        .unwrap_or(existing.file);
                    let diagnostic = Diagnostic::new(
                        Code::DuplicateId,
                        format!("template `{id}` in {locale} is defined twice"),
                    )
                    .at(Some(source.start_location()))
                    .related(
                        "first defined here",
                        Some(self.workspace.files[first].source.start_location()),
                    )
                    .hint("`<id>.hbs` and `<id>.zh-CN.hbs` are both Chinese; keep one of them");
                    self.push(diagnostic);
                } else {
                    existing.value.sources.insert(locale.to_owned(), text);
                }
            }
            None => {
                self.ids.insert((Kind::Template as u8, id.clone()), (file, String::new()));
                let mut set = TemplateSet::default();
                set.sources.insert(locale.to_owned(), text);
                self.templates.insert(id, Def { file, value: set });
            }
        }
    }

    fn collect_script_gate(&mut self, file: usize) {
        let loaded = &self.workspace.files[file];
        let stem = loaded
            .source
            .path
            .file_name()
            .and_then(|name| name.to_str())
            .map(|name| name.trim_end_matches(".rhai").to_owned())
            .unwrap_or_default();
        if !valid_id(&stem) {
            let diagnostic = Diagnostic::new(
                Code::MalformedValue,
                format!("the file name `{stem}` is not a valid rule id"),
            )
            .at(Some(loaded.source.start_location()))
            .hint(
                "rename the file: lowercase letters, digits, `_` and `-`, e.g. `needs_survey.rhai`",
            );
            self.push(diagnostic);
            return;
        }
        let id = Id(stem);
        if self.gates_without_script.contains(&id) {
            return;
        }
        let text = loaded.source.text.clone();
        self.compile_file_script(file, &text, ScriptKey::new(format!("gate:{id}"), ""));
        if self.register(Kind::Gate, &id, file, "") {
            let gate =
                Gate { id: id.clone(), title: None, script: Some(text), file: None, reason: None };
            self.gates.insert(id, Def { file, value: gate });
        }
    }

    fn collect_calendar(&mut self, file: usize, calendar: &CalendarFile) {
        if !self.register(Kind::Calendar, &calendar.id, file, "/id") {
            return;
        }
        let mut ok = true;
        let offset = parse_offset(&calendar.utc_offset);
        let mut spans =
            |hours: &[HoursSpan], pointer: String, this: &mut Self| -> Vec<(u16, u16)> {
                let mut out = Vec::new();
                for (position, span) in hours.iter().enumerate() {
                    match parse_span(&span.0) {
                        Some((start, end)) if start < end => out.push((start, end)),
                        _ => {
                            ok = false;
                            let diagnostic = Diagnostic::new(
                            Code::InvalidDate,
                            format!("`{}` is not a span of working hours", span.0),
                        )
                        .at(this.at(file, &format!("{pointer}/{position}")))
                        .hint(
                            "write `HH:MM-HH:MM` with the start before the end, e.g. `09:00-12:00`",
                        );
                            this.push(diagnostic);
                        }
                    }
                }
                out.sort_unstable();
                out
            };
        let days = [
            ("monday", &calendar.week.monday),
            ("tuesday", &calendar.week.tuesday),
            ("wednesday", &calendar.week.wednesday),
            ("thursday", &calendar.week.thursday),
            ("friday", &calendar.week.friday),
            ("saturday", &calendar.week.saturday),
            ("sunday", &calendar.week.sunday),
        ];
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for (index, (day, hours)) in days.iter().enumerate() {
            week[index] = spans(hours, format!("/week/{day}"), self);
        }
        let makeup_hours = spans(&calendar.makeup_hours, "/makeup_hours".into(), self);
        let holidays = self.dates(file, "/holidays", &calendar.holidays, &mut ok);
        let makeup_workdays =
            self.dates(file, "/makeup_workdays", &calendar.makeup_workdays, &mut ok);
        if let Some(day) = holidays.intersection(&makeup_workdays).next() {
            ok = false;
            let day_text = day.format("%Y-%m-%d").to_string();
            let entry = calendar.makeup_workdays.iter().position(|entry| {
                entry.date.as_deref() == Some(day_text.as_str())
                    || entry.range.as_ref().is_some_and(|range| {
                        range.from.as_str() <= day_text.as_str()
                            && day_text.as_str() <= range.to.as_str()
                    })
            });
            let pointer = entry
                .map_or("/makeup_workdays".to_owned(), |index| format!("/makeup_workdays/{index}"));
            let diagnostic = Diagnostic::new(
                Code::InvalidDate,
                format!("{day} is both a holiday and a make-up working day"),
            )
            .at(self.at(file, &pointer))
            .hint("remove it from one of the two lists");
            self.push(diagnostic);
        }
        if ok {
            let value = Calendar {
                id: calendar.id.clone(),
                utc_offset_minutes: offset.unwrap_or_default(),
                week,
                holidays,
                makeup_workdays,
                makeup_hours,
            };
            self.calendars.insert(calendar.id.clone(), Def { file, value });
        }
    }

    fn dates(
        &mut self,
        file: usize,
        list: &str,
        entries: &[DateEntry],
        ok: &mut bool,
    ) -> BTreeSet<NaiveDate> {
        let mut out = BTreeSet::new();
        for (position, entry) in entries.iter().enumerate() {
            let pointer = format!("{list}/{position}");
            let parse = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
            let mut bad = |this: &mut Self, pointer: String, message: String| {
                *ok = false;
                let diagnostic = Diagnostic::new(Code::InvalidDate, message)
                    .at(this.at(file, &pointer))
                    .hint("write dates as YYYY-MM-DD; a range needs `from` before `to`");
                this.push(diagnostic);
            };
            match (&entry.date, &entry.range) {
                (Some(date), None) => match parse(date) {
                    Some(day) => {
                        out.insert(day);
                    }
                    None => bad(self, format!("{pointer}/date"), format!("`{date}` is not a date")),
                },
                (None, Some(range)) => match (parse(&range.from), parse(&range.to)) {
                    (Some(from), Some(to)) if from <= to && (to - from).num_days() <= 366 => {
                        let mut day = from;
                        while day <= to {
                            out.insert(day);
                            day = day.succ_opt().unwrap_or(to);
                            if day == to {
                                out.insert(to);
                                break;
                            }
                        }
                    }
                    (Some(_), Some(_)) => bad(
                        self,
                        format!("{pointer}/range"),
                        format!(
                            "the range {}..{} is backwards or longer than a year",
                            range.from, range.to
                        ),
                    ),
                    (None, _) => bad(
                        self,
                        format!("{pointer}/range/from"),
                        format!("`{}` is not a date", range.from),
                    ),
                    (_, None) => bad(
                        self,
                        format!("{pointer}/range/to"),
                        format!("`{}` is not a date", range.to),
                    ),
                },
                _ => {
                    *ok = false;
                    let diagnostic = Diagnostic::new(Code::ConflictingKeys, "give either `date` or `range`")
                        .at(self.at(file, &pointer))
                        .hint("`- {date: 2026-10-01, name: 国庆节}` or `- {range: {from: …, to: …}, name: …}`");
                    self.push(diagnostic);
                }
            }
        }
        out
    }

    fn collect_rules(&mut self, file: usize, rules: &RulesFile) {
        for (position, gate) in rules.gates.iter().enumerate() {
            let pointer = format!("/gates/{position}");
            if let Some(relative) = &gate.file {
                if self.script_file(file, relative).is_none() {
                    self.missing_script(file, &pointer, relative, &gate.id);
                    // Known, so that its users are not told it is missing too.
                    self.ids
                        .entry((Kind::Gate as u8, gate.id.clone()))
                        .or_insert((file, pointer.clone()));
                    self.gates_without_script.insert(gate.id.clone());
                    continue;
                }
            }
            if !self.register(Kind::Gate, &gate.id, file, &format!("{pointer}/id")) {
                continue;
            }
            let owner = format!("gate:{}", gate.id);
            let mut value = gate.clone();
            match (&gate.script, &gate.file) {
                (Some(script), None) => {
                    self.compile_inline(
                        file,
                        &format!("{pointer}/script"),
                        script,
                        ScriptKey::new(owner, ""),
                    );
                }
                (None, Some(relative)) => match self.script_file(file, relative) {
                    Some(script_file) => {
                        let text = self.workspace.files[script_file].source.text.clone();
                        self.compile_file_script(script_file, &text, ScriptKey::new(owner, ""));
                        value.script = Some(text);
                    }
                    None => {
                        let diagnostic = Diagnostic::new(Code::PathNotFound, format!("the script `{relative}` is not part of the pack"))
                                .at(self.at(file, &format!("{pointer}/file")))
                                .hint("the path is relative to this file, and the script must be inside the pack's `contents`");
                        self.push(diagnostic);
                    }
                },
                _ => {
                    let diagnostic = Diagnostic::new(Code::ConflictingKeys, format!("gate `{}` needs exactly one of `script` or `file`", gate.id))
                        .at(self.key_at(file, &pointer))
                        .hint("write the rhai inline under `script: |`, or name a `.rhai` file with `file:`");
                    self.push(diagnostic);
                }
            }
            self.gates.insert(gate.id.clone(), Def { file, value });
        }
        for (position, ladder) in rules.escalations.iter().enumerate() {
            let pointer = format!("/escalations/{position}/id");
            if self.register(Kind::Escalation, &ladder.id, file, &pointer) {
                self.escalations.insert(ladder.id.clone(), Def { file, value: ladder.clone() });
            }
        }
        for (position, alert) in rules.alerts.iter().enumerate() {
            self.register(Kind::Alert, &alert.id, file, &format!("/alerts/{position}/id"));
        }
        for (position, report) in rules.reports.iter().enumerate() {
            self.register(Kind::Report, &report.id, file, &format!("/reports/{position}/id"));
        }
    }

    /// The `.rhai` file a gate's `file:` names, relative to the rules file.
    fn script_file(&self, file: usize, relative: &str) -> Option<usize> {
        let dir = self.workspace.files[file]
            .source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = crate::discover::canonical(&dir.join(relative));
        self.workspace.files.iter().position(|loaded| {
            loaded.kind == FileKind::Script
                && crate::discover::canonical(&loaded.source.path) == path
        })
    }

    fn missing_script(&mut self, file: usize, pointer: &str, relative: &str, gate: &Id) {
        let wanted = Path::new(relative).file_name().map(|name| name.to_owned());
        let same_name = self.workspace.files.iter().find(|loaded| {
            loaded.kind == FileKind::Script
                && loaded.source.path.file_name().map(|n| n.to_owned()) == wanted
        });
        let hint = match same_name {
            Some(loaded) => format!(
                "`{}` exists; the path is relative to this file",
                loaded.source.name
            ),
            None => "the path is relative to this file, and the script must be inside the pack's `contents`".to_owned(),
        };
        let diagnostic = Diagnostic::new(
            Code::PathNotFound,
            format!("the script `{relative}` of gate `{gate}` is not part of the pack"),
        )
        .at(self.at(file, &format!("{pointer}/file")))
        .hint(hint);
        self.push(diagnostic);
    }

    // ----- scripts ---------------------------------------------------------------

    /// Compiles a script embedded in a YAML value and maps its errors into the file.
    fn compile_inline(&mut self, file: usize, pointer: &str, script: &str, key: ScriptKey) {
        self.compile_script(file, Some(pointer), script, key);
    }

    /// Compiles a whole `.rhai` file.
    fn compile_file_script(&mut self, file: usize, text: &str, key: ScriptKey) {
        self.compile_script(file, None, text, key);
    }

    fn compile_script(&mut self, file: usize, pointer: Option<&str>, script: &str, key: ScriptKey) {
        let name = format!("{}{}", key.owner, key.pointer);
        match self.sandbox.compile(&name, script) {
            Ok(rule) => {
                self.script_places.push((key.clone(), file, pointer.map(str::to_owned)));
                self.scripts.insert(key, rule);
            }
            Err(errors) => {
                for error in errors {
                    let location = self.script_location(
                        file,
                        pointer,
                        (error.line, error.column),
                        error.length,
                    );
                    let mut diagnostic =
                        Diagnostic::new(rule_code(&error.kind), error.message).at(location);
                    if let Some(hint) = error.hint {
                        diagnostic = diagnostic.hint(hint);
                    }
                    self.push(diagnostic);
                }
            }
        }
    }

    /// Where a (line, column) inside a script is in its file. A `.rhai` file maps
    /// directly. In YAML, a block scalar's range starts at its content and a quoted one
    /// at its opening quote; later lines of a plain or quoted scalar are placed at
    /// their own indentation.
    fn script_location(
        &self,
        file: usize,
        pointer: Option<&str>,
        (line, column): (usize, usize),
        length: usize,
    ) -> Option<Location> {
        let loaded = &self.workspace.files[file];
        let source = &loaded.source;
        let column = column.saturating_sub(1);
        let offset = match (pointer, &loaded.document) {
            (None, _) => source.offset(line, column),
            (Some(_), None) => return Some(source.start_location()),
            (Some(pointer), Some(document)) => {
                let range = document.value_range(pointer);
                let style = document.scalar_info(pointer).map(|info| info.style);
                let (start_line, start_column) = source.line_column(range.start);
                let (start_line, start_column) = (start_line as usize, start_column as usize - 1);
                let offset = if line <= 1 {
                    let skip = usize::from(style == Some(ScalarKind::Quoted));
                    source.offset(start_line, start_column + skip + column)
                } else {
                    let file_line = start_line + line - 1;
                    let indent = if style == Some(ScalarKind::Block) {
                        start_column
                    } else {
                        let line_start = source.offset(file_line, 0);
                        source.text[line_start..].chars().take_while(|c| *c == ' ').count()
                    };
                    source.offset(file_line, indent + column)
                };
                offset.clamp(range.start, range.end.max(range.start))
            }
        };
        Some(source.location(offset..char_end(&source.text, offset, length)))
    }

    /// Checks `find("form", #{key: …})` and `count(…)` in every compiled script: the
    /// form exists and each filter key is an indexed field (or a key with a meaning of
    /// its own), so that a typo fails at check time, not when the rule runs.
    fn check_queries(&mut self) {
        let places = std::mem::take(&mut self.script_places);
        for (key, file, pointer) in &places {
            let Some(rule) = self.scripts.get(key) else { continue };
            let uses = rule.queries().to_vec();
            for query in uses {
                let form = Id(query.form.clone());
                let Some(def) = self.forms.get(&form) else {
                    if !self.ids.contains_key(&(Kind::Form as u8, form.clone())) {
                        let names: Vec<String> = self.forms.keys().map(Id::to_string).collect();
                        let hint = match closest(&query.form, names.iter().map(String::as_str)) {
                            Some(candidate) => format!("did you mean `{candidate}`?"),
                            None => "`find` and `count` take a form id as their first argument"
                                .to_owned(),
                        };
                        let location = self.script_location(
                            *file,
                            pointer.as_deref(),
                            query.form_at,
                            query.form.chars().count() + 2,
                        );
                        self.push(
                            Diagnostic::new(
                                Code::UnknownForm,
                                format!("unknown form `{}` in a query", query.form),
                            )
                            .at(location)
                            .hint(hint),
                        );
                    }
                    continue;
                };
                let indexed: Vec<String> = def
                    .value
                    .form
                    .fields
                    .iter()
                    .filter(|(_, field)| field.indexed)
                    .map(|(name, _)| name.to_string())
                    .chain(["owner".to_owned()])
                    .collect();
                let fields: BTreeSet<String> =
                    def.value.form.fields.keys().map(FieldName::to_string).collect();
                for (name, at) in &query.keys {
                    if indexed.contains(name)
                        || stagecraft_rules::QUERY_KEYS.contains(&name.as_str())
                    {
                        continue;
                    }
                    let known = indexed
                        .iter()
                        .map(String::as_str)
                        .chain(stagecraft_rules::QUERY_KEYS.iter().copied());
                    let unindexed = closest(name, fields.iter().map(String::as_str))
                        .filter(|candidate| !indexed.iter().any(|f| f == candidate));
                    let hint = match (closest(name, known), unindexed) {
                        (Some(candidate), _) => format!("did you mean `{candidate}`?"),
                        (None, Some(candidate)) if candidate != name => format!(
                            "did you mean `{candidate}`? queries filter on indexed fields, so add it to `x-form.indexes` of form `{form}` too"
                        ),
                        (None, _) if fields.contains(name) => format!(
                            "queries filter on indexed fields; add `{name}` to `x-form.indexes` of form `{form}`"
                        ),
                        (None, _) => format!(
                            "filter on indexed fields of `{form}` ({}), `created_within` or `exclude`",
                            indexed.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    let location =
                        self.script_location(*file, pointer.as_deref(), *at, name.chars().count());
                    self.push(
                        Diagnostic::new(
                            Code::UnknownField,
                            format!("`{name}` is not an indexed field of form `{form}`"),
                        )
                        .at(location)
                        .hint(hint),
                    );
                }
            }
        }
    }

    // ----- org ---------------------------------------------------------------------

    fn check_org(&mut self) {
        let files = self.org_files.clone();
        let mut departments: BTreeMap<Id, (usize, String)> = BTreeMap::new();
        let mut users: BTreeMap<Id, (usize, String)> = BTreeMap::new();
        for &file in &files {
            let Some(Content::Org(org)) = &self.workspace.files[file].content else { continue };
            for (position, department) in org.departments.iter().enumerate() {
                let pointer = format!("/departments/{position}/id");
                if let Some((first_file, first_pointer)) =
                    departments.insert(department.id.clone(), (file, pointer.clone()))
                {
                    let diagnostic = Diagnostic::new(
                        Code::DuplicateId,
                        format!("department `{}` is defined twice", department.id),
                    )
                    .at(self.at(file, &pointer))
                    .related("first defined here", self.at(first_file, &first_pointer));
                    self.push(diagnostic);
                }
            }
            for (position, user) in org.users.iter().enumerate() {
                let pointer = format!("/users/{position}/id");
                if let Some((first_file, first_pointer)) =
                    users.insert(user.id.clone(), (file, pointer.clone()))
                {
                    let diagnostic = Diagnostic::new(
                        Code::DuplicateId,
                        format!("user `{}` is defined twice", user.id),
                    )
                    .at(self.at(file, &pointer))
                    .related("first defined here", self.at(first_file, &first_pointer));
                    self.push(diagnostic);
                }
            }
        }
        let unknown = |this: &mut Self,
                       file: usize,
                       pointer: String,
                       what: &str,
                       id: &Id,
                       known: &BTreeMap<Id, (usize, String)>| {
            let hint = match closest(id.as_str(), known.keys().map(Id::as_str)) {
                Some(candidate) => format!("did you mean `{candidate}`?"),
                None => format!("declare the {what} in an org file"),
            };
            let diagnostic =
                Diagnostic::new(Code::UnknownOrgEntry, format!("unknown {what} `{id}`"))
                    .at(this.at(file, &pointer))
                    .hint(hint);
            this.push(diagnostic);
        };
        for &file in &files {
            let Some(Content::Org(org)) = &self.workspace.files[file].content else { continue };
            for (position, department) in org.departments.iter().enumerate() {
                if let Some(parent) = &department.parent {
                    if !departments.contains_key(parent) {
                        unknown(
                            self,
                            file,
                            format!("/departments/{position}/parent"),
                            "department",
                            parent,
                            &departments,
                        );
                    }
                }
                if let Some(head) = &department.head {
                    if !users.contains_key(head) {
                        unknown(
                            self,
                            file,
                            format!("/departments/{position}/head"),
                            "user",
                            head,
                            &users,
                        );
                    }
                }
            }
            for (position, user) in org.users.iter().enumerate() {
                if let Some(department) = &user.department {
                    if !departments.contains_key(department) {
                        unknown(
                            self,
                            file,
                            format!("/users/{position}/department"),
                            "department",
                            department,
                            &departments,
                        );
                    }
                }
                if let Some(manager) = &user.manager {
                    if !users.contains_key(manager) {
                        unknown(
                            self,
                            file,
                            format!("/users/{position}/manager"),
                            "user",
                            manager,
                            &users,
                        );
                    }
                }
                for (index, role) in user.roles.iter().enumerate() {
                    self.reference(
                        Kind::Role,
                        role,
                        file,
                        &format!("/users/{position}/roles/{index}"),
                    );
                }
            }
        }
        // Reporting lines must end.
        let managers: BTreeMap<&Id, &Id> = self
            .org
            .users
            .iter()
            .filter_map(|user| user.manager.as_ref().map(|manager| (&user.id, manager)))
            .collect();
        let mut reported = BTreeSet::new();
        let mut cycles = Vec::new();
        for start in managers.keys() {
            let mut seen = vec![*start];
            let mut current = *start;
            while let Some(next) = managers.get(current) {
                if *next == *start {
                    let mut members: Vec<String> = seen.iter().map(|id| id.to_string()).collect();
                    members.sort();
                    if reported.insert(members.clone()) {
                        cycles.push((
                            (*start).clone(),
                            seen.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
                        ));
                    }
                    break;
                }
                if seen.contains(next) {
                    break;
                }
                seen.push(next);
                current = next;
            }
        }
        for (start, members) in cycles {
            let place = users.get(&start).cloned();
            let diagnostic = Diagnostic::new(
                Code::ReportingCycle,
                format!("reporting lines form a cycle: {} → {}", members.join(" → "), start),
            )
            .at(place.and_then(|(file, pointer)| self.at(file, &pointer)))
            .hint("someone in the chain must have no manager (or a manager outside it)");
            self.push(diagnostic);
        }
    }

    fn user_known(&self, id: &Id) -> bool {
        self.org.users.iter().any(|user| &user.id == id)
    }

    // ----- forms -------------------------------------------------------------------

    fn check_forms(&mut self) {
        let mut problems = Vec::new();
        for def in self.forms.values() {
            for extension in &def.value.extensions {
                if let Some(link) = &extension.link {
                    let pointer = format!("{}/x-link/form", extension.pointer);
                    problems.push((def.file, pointer, Kind::Form, link.form.clone()));
                    if let Some(target) = self.forms.get(&link.form) {
                        for (index, field) in link.search.iter().enumerate() {
                            if !target.value.form.fields.contains_key(field) {
                                let diagnostic = Diagnostic::new(
                                    Code::UnknownField,
                                    format!(
                                        "form `{}` has no field `{field}` to search",
                                        link.form
                                    ),
                                )
                                .at(self.at(
                                    def.file,
                                    &format!("{}/x-link/search/{index}", extension.pointer),
                                ))
                                .hint(field_hint(field, &target.value.form.fields));
                                self.diagnostics.push(diagnostic);
                            }
                        }
                    }
                }
                if let Some(role) = extension.user.as_ref().and_then(|user| user.role.clone()) {
                    problems.push((
                        def.file,
                        format!("{}/x-user/role", extension.pointer),
                        Kind::Role,
                        role,
                    ));
                }
            }
        }
        for def in self.forms.values() {
            let meta = &def.value.form.meta;
            if let Some(pool) = &meta.pool {
                if let Some(calendar) = &pool.calendar {
                    let pointer = "/x-form/pool/calendar".to_owned();
                    problems.push((def.file, pointer, Kind::Calendar, calendar.clone()));
                }
                if let Some(template) = &pool.notify {
                    let pointer = "/x-form/pool/notify".to_owned();
                    problems.push((def.file, pointer, Kind::Template, template.clone()));
                }
            }
            for (index, role) in meta.feedback.iter().flat_map(|f| f.handlers.iter()).enumerate() {
                let pointer = format!("/x-form/feedback/handlers/{index}");
                problems.push((def.file, pointer, Kind::Role, role.clone()));
            }
        }
        for (file, pointer, kind, id) in problems {
            self.reference(kind, &id, file, &pointer);
        }
    }

    fn form_fields(
        &self,
        form: &Id,
    ) -> Option<&BTreeMap<FieldName, crate::definitions::FieldInfo>> {
        self.forms.get(form).map(|def| &def.value.form.fields)
    }

    /// Reports a field that the form does not have (`owner` always exists).
    fn field(&mut self, form: Option<&Id>, field: &FieldName, file: usize, pointer: &str) {
        let Some(form) = form else { return };
        let Some(fields) = self.form_fields(form) else { return };
        if field.as_str() == "owner" || fields.contains_key(field) {
            return;
        }
        let hint =
            match closest(field.as_str(), fields.keys().map(FieldName::as_str).chain(["owner"])) {
                Some(candidate) => format!("did you mean `{candidate}`?"),
                None => format!(
                    "the fields of `{form}` are: {}",
                    fields.keys().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                ),
            };
        let diagnostic =
            Diagnostic::new(Code::UnknownField, format!("form `{form}` has no field `{field}`"))
                .at(self.at(file, pointer))
                .hint(hint);
        self.push(diagnostic);
    }

    // ----- shared pieces -----------------------------------------------------------

    fn party(&mut self, party: &Party, form: Option<&Id>, file: usize, pointer: &str, owner: &str) {
        match party {
            Party::User(user) => {
                if !self.org_files.is_empty() && !self.user_known(user) {
                    let diagnostic =
                        Diagnostic::new(Code::UnknownOrgEntry, format!("unknown user `{user}`"))
                            .at(self.at(file, &format!("{pointer}/user")))
                            .hint("name a user from the org file, or use a role");
                    self.push(diagnostic);
                }
            }
            Party::Role(role) => {
                self.reference(Kind::Role, role, file, &format!("{pointer}/role"));
            }
            Party::Field(field) => self.field(form, field, file, &format!("{pointer}/field")),
            Party::ManagerOf(field) => {
                self.field(form, field, file, &format!("{pointer}/manager_of"))
            }
            Party::DepartmentHeadOf(field) => {
                self.field(form, field, file, &format!("{pointer}/department_head_of"))
            }
            Party::HeadOf(department) => {
                if !self.org_files.is_empty()
                    && !self.org.departments.iter().any(|d| &d.id == department)
                {
                    let diagnostic = Diagnostic::new(
                        Code::UnknownOrgEntry,
                        format!("unknown department `{department}`"),
                    )
                    .at(self.at(file, &format!("{pointer}/head_of")));
                    self.push(diagnostic);
                }
            }
            Party::Expr(expr) => {
                let inner = format!("{pointer}/expr");
                self.compile_inline(file, &inner, expr, ScriptKey::new(owner, inner.clone()));
            }
        }
    }

    fn duration(&mut self, text: &stagecraft_model::Duration, file: usize, pointer: &str) {
        if text.minutes().is_none() {
            let diagnostic =
                Diagnostic::new(Code::InvalidDuration, format!("`{text}` is too long a duration"))
                    .at(self.at(file, pointer))
                    .hint("use a larger unit, e.g. `30d` instead of minutes");
            self.push(diagnostic);
        }
    }

    fn schedule(&mut self, text: &str, file: usize, pointer: &str) {
        if let Err(message) = parse_schedule(text) {
            let diagnostic =
                Diagnostic::new(Code::InvalidCron, message).at(self.at(file, pointer)).hint(
                    "five fields: minute hour day-of-month month day-of-week, e.g. `0 9 * * MON`",
                );
            self.push(diagnostic);
        }
    }

    fn task(
        &mut self,
        task: &TaskEffect,
        form: Option<&Id>,
        file: usize,
        pointer: &str,
        owner: &str,
    ) {
        self.party(&task.assignee, form, file, &format!("{pointer}/assignee"), owner);
        if let Some(task_form) = &task.form {
            self.reference(Kind::Form, task_form, file, &format!("{pointer}/form"));
        }
        if let Some(due) = &task.due {
            self.duration(due, file, &format!("{pointer}/due"));
        }
        if let Some(calendar) = &task.calendar {
            self.reference(Kind::Calendar, calendar, file, &format!("{pointer}/calendar"));
        }
    }

    fn sla(&mut self, sla: &Sla, file: usize, pointer: &str) {
        self.duration(&sla.within, file, &format!("{pointer}/within"));
        if let Some(calendar) = &sla.calendar {
            self.reference(Kind::Calendar, calendar, file, &format!("{pointer}/calendar"));
        }
        if let Some(ladder) = &sla.escalation {
            self.reference(Kind::Escalation, ladder, file, &format!("{pointer}/escalation"));
        }
    }

    fn condition(&mut self, condition: &Condition, file: usize, pointer: &str, owner: &str) {
        match (&condition.rule, &condition.check) {
            (Some(rule), None) => {
                self.reference(Kind::Gate, rule, file, &format!("{pointer}/rule"));
            }
            (None, Some(check)) => {
                let inner = format!("{pointer}/check");
                self.compile_inline(file, &inner, check, ScriptKey::new(owner, inner.clone()));
                if condition.reason.is_none() {
                    let diagnostic = Diagnostic::new(
                        Code::MissingKey,
                        "an inline `check` needs a `reason` to show when it stops a record",
                    )
                    .at(self.key_at(file, &inner))
                    .hint("add `reason: {zh-CN: …, en: …}`");
                    self.push(diagnostic);
                }
            }
            _ => {
                let diagnostic = Diagnostic::new(Code::ConflictingKeys, "a condition needs exactly one of `rule` or `check`")
                    .at(self.at(file, pointer))
                    .hint("`- rule: needs_survey_uploaded` or `- check: \"record.amount > 0\"` with a `reason`");
                self.push(diagnostic);
            }
        }
    }

    fn effects(
        &mut self,
        effects: &[Effect],
        form: Option<&Id>,
        file: usize,
        pointer: &str,
        owner: &str,
    ) {
        for (position, effect) in effects.iter().enumerate() {
            let base = format!("{pointer}/{position}");
            match effect {
                Effect::Task(task) => self.task(task, form, file, &format!("{base}/task"), owner),
                Effect::Notify(notify) => {
                    for (index, party) in notify.to.iter().enumerate() {
                        self.party(party, form, file, &format!("{base}/notify/to/{index}"), owner);
                    }
                    self.reference(
                        Kind::Template,
                        &notify.template,
                        file,
                        &format!("{base}/notify/template"),
                    );
                }
                Effect::Set(set) => {
                    self.field(form, &set.field, file, &format!("{base}/set/field"));
                    match (&set.value, &set.expr) {
                        (Some(_), None) => {}
                        (None, Some(expr)) => {
                            let inner = format!("{base}/set/expr");
                            self.compile_inline(
                                file,
                                &inner,
                                expr,
                                ScriptKey::new(owner, inner.clone()),
                            );
                        }
                        _ => {
                            let diagnostic = Diagnostic::new(
                                Code::ConflictingKeys,
                                "`set` needs exactly one of `value` or `expr`",
                            )
                            .at(self.at(file, &format!("{base}/set")))
                            .hint("`value:` for a fixed value, `expr:` for a rhai expression");
                            self.push(diagnostic);
                        }
                    }
                }
                Effect::StartFlow(start) => {
                    let inner = format!("{base}/start_flow");
                    self.child_fields(&start.flow, &start.set, file, &inner, owner);
                }
            }
        }
    }

    /// Checks a flow started from another (sub-flow or `start_flow`): the flow exists
    /// and the fields set on its new record exist in its form.
    fn child_fields(
        &mut self,
        flow: &Id,
        set: &BTreeMap<FieldName, String>,
        file: usize,
        pointer: &str,
        owner: &str,
    ) {
        if !self.reference(Kind::Flow, flow, file, &format!("{pointer}/flow")) {
            return;
        }
        let child_form = self.flows.get(flow).map(|def| def.value.form.clone());
        for (field, expr) in set {
            let inner = format!("{pointer}/set/{}", crate::tree::pointer_segment(field.as_str()));
            if let Some(child_form) = &child_form {
                let has_field = self
                    .form_fields(child_form)
                    .is_none_or(|fields| field.as_str() == "owner" || fields.contains_key(field));
                if !has_field {
                    let diagnostic = Diagnostic::new(
                        Code::UnknownField,
                        format!("form `{child_form}` of flow `{flow}` has no field `{field}`"),
                    )
                    .at(self.key_at(file, &inner))
                    .hint(
                        self.form_fields(child_form)
                            .map(|fields| field_hint(field, fields))
                            .unwrap_or_default(),
                    );
                    self.push(diagnostic);
                }
            }
            self.compile_inline(file, &inner, expr, ScriptKey::new(owner, inner.clone()));
        }
    }

    // ----- rules files -------------------------------------------------------------

    fn check_rules_files(
        &mut self,
        alerts: &mut Vec<stagecraft_model::Alert>,
        reports: &mut Vec<ScheduledReport>,
    ) {
        let workspace = self.workspace;
        for (file, loaded) in workspace.files.iter().enumerate() {
            let Some(Content::Rules(rules)) = &loaded.content else { continue };
            for (position, alert) in rules.alerts.iter().enumerate() {
                let pointer = format!("/alerts/{position}");
                let owner = format!("alert:{}", alert.id);
                let form_ok =
                    self.reference(Kind::Form, &alert.form, file, &format!("{pointer}/form"));
                let form = form_ok.then_some(&alert.form);
                let trigger = &alert.trigger;
                let tp = format!("{pointer}/trigger");
                match (&trigger.event, &trigger.schedule) {
                    (Some(event), None) => {
                        match event {
                            TriggerEvent::FieldChanged => match &trigger.field {
                                Some(field) => {
                                    self.field(form, field, file, &format!("{tp}/field"))
                                }
                                None => {
                                    let diagnostic = Diagnostic::new(
                                        Code::MissingKey,
                                        "`event: field_changed` needs the `field` to watch",
                                    )
                                    .at(self.key_at(file, &tp))
                                    .hint("add `field: amount`");
                                    self.push(diagnostic);
                                }
                            },
                            TriggerEvent::StageChanged => {
                                if let Some(flow) = &trigger.flow {
                                    self.reference(Kind::Flow, flow, file, &format!("{tp}/flow"));
                                }
                            }
                            TriggerEvent::Created => {}
                        }
                        if trigger.field.is_some() && *event != TriggerEvent::FieldChanged {
                            let diagnostic = Diagnostic::new(
                                Code::ConflictingKeys,
                                "`field` only applies to `event: field_changed`",
                            )
                            .at(self.key_at(file, &format!("{tp}/field")))
                            .hint("remove `field`, or set `event: field_changed`");
                            self.push(diagnostic);
                        }
                    }
                    (None, Some(schedule)) => {
                        self.schedule(schedule, file, &format!("{tp}/schedule"))
                    }
                    _ => {
                        let diagnostic = Diagnostic::new(Code::ConflictingKeys, "a trigger needs exactly one of `event` or `schedule`")
                            .at(self.at(file, &tp))
                            .hint("`trigger: {event: field_changed, field: amount}` or `trigger: {schedule: \"0 9 * * *\"}`");
                        self.push(diagnostic);
                    }
                }
                if let Some(calendar) = &trigger.calendar {
                    self.reference(Kind::Calendar, calendar, file, &format!("{tp}/calendar"));
                }
                if let Some(when) = &alert.when {
                    let inner = format!("{pointer}/when");
                    self.compile_inline(file, &inner, when, ScriptKey::new(owner.clone(), "/when"));
                }
                if let Some(notify) = &alert.notify {
                    for (index, party) in notify.to.iter().enumerate() {
                        self.party(
                            party,
                            form,
                            file,
                            &format!("{pointer}/notify/to/{index}"),
                            &owner,
                        );
                    }
                    self.reference(
                        Kind::Template,
                        &notify.template,
                        file,
                        &format!("{pointer}/notify/template"),
                    );
                }
                if let Some(task) = &alert.task {
                    self.task(task, form, file, &format!("{pointer}/task"), &owner);
                }
                if let stagecraft_model::AlertRepeat::Every(every) = &alert.repeat {
                    self.duration(every, file, &format!("{pointer}/repeat/every"));
                }
                if alert.notify.is_none() && alert.task.is_none() {
                    let diagnostic = Diagnostic::new(
                        Code::MissingKey,
                        format!("alert `{}` neither notifies anyone nor opens a task", alert.id),
                    )
                    .at(self.key_at(file, &pointer))
                    .hint("add `notify:` or `task:`");
                    self.push(diagnostic);
                }
                alerts.push(alert.clone());
            }
            for (position, ladder) in rules.escalations.iter().enumerate() {
                let owner = format!("escalation:{}", ladder.id);
                let mut previous: Option<u64> = None;
                for (index, step) in ladder.steps.iter().enumerate() {
                    let pointer = format!("/escalations/{position}/steps/{index}");
                    self.duration(&step.after, file, &format!("{pointer}/after"));
                    if let (Some(before), Some(now)) = (previous, step.after.minutes()) {
                        if now <= before {
                            let diagnostic = Diagnostic::new(
                                Code::InvalidDuration,
                                "each escalation step must come later than the one before",
                            )
                            .at(self.at(file, &format!("{pointer}/after")))
                            .hint("order the steps by `after`, growing");
                            self.push(diagnostic);
                        }
                    }
                    previous = step.after.minutes();
                    for (n, party) in step.notify.iter().enumerate() {
                        self.party(party, None, file, &format!("{pointer}/notify/{n}"), &owner);
                    }
                    if let Some(template) = &step.template {
                        self.reference(
                            Kind::Template,
                            template,
                            file,
                            &format!("{pointer}/template"),
                        );
                    } else if !step.notify.is_empty() {
                        let diagnostic = Diagnostic::new(
                            Code::MissingKey,
                            "a step that notifies needs a `template`",
                        )
                        .at(self.key_at(file, &format!("{pointer}/notify")))
                        .hint("add `template: <id>`, naming a file `templates/<id>.zh-CN.hbs`");
                        self.push(diagnostic);
                    }
                    if let Some(reassign) = &step.reassign {
                        self.party(reassign, None, file, &format!("{pointer}/reassign"), &owner);
                    }
                    if step.notify.is_empty() && step.reassign.is_none() {
                        let diagnostic = Diagnostic::new(
                            Code::MissingKey,
                            "an escalation step must notify someone or reassign the task",
                        )
                        .at(self.key_at(file, &pointer));
                        self.push(diagnostic);
                    }
                }
            }
            for (position, report) in rules.reports.iter().enumerate() {
                let pointer = format!("/reports/{position}");
                let owner = format!("report:{}", report.id);
                self.schedule(&report.schedule, file, &format!("{pointer}/schedule"));
                if let Some(calendar) = &report.calendar {
                    self.reference(Kind::Calendar, calendar, file, &format!("{pointer}/calendar"));
                }
                for (index, party) in report.to.iter().enumerate() {
                    self.party(party, None, file, &format!("{pointer}/to/{index}"), &owner);
                }
                self.reference(
                    Kind::Template,
                    &report.template,
                    file,
                    &format!("{pointer}/template"),
                );
                if let Some(flow) = &report.flow {
                    self.reference(Kind::Flow, flow, file, &format!("{pointer}/flow"));
                }
                if let Some(period) = &report.period {
                    self.duration(period, file, &format!("{pointer}/period"));
                }
                reports.push(report.clone());
            }
        }
    }

    // ----- flows -------------------------------------------------------------------

    fn check_flow(&mut self, id: &Id) {
        let Some(def) = self.flows.get(id) else { return };
        let file = def.file;
        let errors_before = self.diagnostics.iter().filter(|d| d.is_error()).count();
        let flow = def.value.clone();
        let owner = format!("flow:{id}");
        let form_ok = self.reference(Kind::Form, &flow.form, file, "/form");
        let form = form_ok.then_some(&flow.form);
        if let Some(calendar) = &flow.calendar {
            self.reference(Kind::Calendar, calendar, file, "/calendar");
        }

        let mut stages: BTreeMap<Id, usize> = BTreeMap::new();
        let mut action_ids = BTreeMap::new();
        let mut approval_ids = BTreeMap::new();
        for (index, stage) in flow.stages.iter().enumerate() {
            let pointer = format!("/stages/{index}/id");
            if let Some(first) = stages.insert(stage.id.clone(), index) {
                let diagnostic = Diagnostic::new(
                    Code::DuplicateId,
                    format!("stage `{}` is defined twice", stage.id),
                )
                .at(self.at(file, &pointer))
                .related("first defined here", self.at(file, &format!("/stages/{first}/id")));
                self.push(diagnostic);
            }
            for (n, action) in stage.actions.iter().enumerate() {
                let pointer = format!("/stages/{index}/actions/{n}/id");
                if let Some(first) = action_ids.insert(action.id.clone(), pointer.clone()) {
                    let diagnostic = Diagnostic::new(
                        Code::DuplicateId,
                        format!("key action `{}` is defined twice in this flow", action.id),
                    )
                    .at(self.at(file, &pointer))
                    .related("first defined here", self.at(file, &first));
                    self.push(diagnostic);
                }
            }
            for (n, approval) in stage.approvals.iter().enumerate() {
                let pointer = format!("/stages/{index}/approvals/{n}/id");
                if let Some(first) = approval_ids.insert(approval.id.clone(), pointer.clone()) {
                    let diagnostic = Diagnostic::new(
                        Code::DuplicateId,
                        format!("approval `{}` is defined twice in this flow", approval.id),
                    )
                    .at(self.at(file, &pointer))
                    .related("first defined here", self.at(file, &first));
                    self.push(diagnostic);
                }
            }
        }
        let stage_names: Vec<String> = stages.keys().map(Id::to_string).collect();
        let unknown_stage = |this: &mut Self, name: &str, pointer: &str| {
            let hint = match closest(name, stage_names.iter().map(String::as_str)) {
                Some(candidate) => format!("did you mean `{candidate}`?"),
                None => format!(
                    "the stages of this flow are: {}",
                    stage_names.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                ),
            };
            let diagnostic = Diagnostic::new(Code::UnknownStage, format!("unknown stage `{name}`"))
                .at(this.at(file, pointer))
                .hint(hint);
            this.push(diagnostic);
        };

        // The initial stage.
        let initial = flow.initial.clone().unwrap_or_else(|| flow.stages[0].id.clone());
        match stages.get(&initial) {
            None => unknown_stage(self, initial.as_str(), "/initial"),
            Some(&index) if flow.stages[index].outcome.is_some() => {
                let diagnostic = Diagnostic::new(
                    Code::NoStages,
                    format!("the initial stage `{initial}` is terminal, so no record could move"),
                )
                .at(self.at(
                    file,
                    if flow.initial.is_some() { "/initial" } else { "/stages/0/outcome" },
                ))
                .hint("start the flow at a stage without `outcome`");
                self.push(diagnostic);
            }
            Some(_) => {}
        }

        for (index, stage) in flow.stages.iter().enumerate() {
            self.check_stage(stage, index, form, file, &owner, &unknown_stage, &stages, &flow);
        }
        self.check_adoption(&flow, form, file, &unknown_stage, &stages);

        // Transitions.
        let mut edges: BTreeMap<Id, BTreeSet<Id>> = BTreeMap::new();
        for (index, transition) in flow.transitions.iter().enumerate() {
            let pointer = format!("/transitions/{index}");
            let from_all = transition.from == "*";
            if !from_all && !stages.contains_key(&Id(transition.from.clone())) {
                unknown_stage(self, &transition.from, &format!("{pointer}/from"));
            }
            if !stages.contains_key(&transition.to) {
                unknown_stage(self, transition.to.as_str(), &format!("{pointer}/to"));
            }
            for (n, condition) in transition.gate.iter().enumerate() {
                self.condition(condition, file, &format!("{pointer}/gate/{n}"), &owner);
            }
            for (n, field) in transition.requires.iter().enumerate() {
                self.field(form, field, file, &format!("{pointer}/requires/{n}"));
            }
            for (n, role) in transition.roles.iter().enumerate() {
                self.reference(Kind::Role, role, file, &format!("{pointer}/roles/{n}"));
            }
            let sources: Vec<Id> = if from_all {
                flow.stages
                    .iter()
                    .filter(|stage| stage.outcome.is_none())
                    .map(|stage| stage.id.clone())
                    .collect()
            } else {
                vec![Id(transition.from.clone())]
            };
            for source in sources {
                if source != transition.to {
                    edges.entry(source).or_default().insert(transition.to.clone());
                }
            }
            if !from_all {
                if let Some(&from) = stages.get(&Id(transition.from.clone())) {
                    if flow.stages[from].outcome.is_some() {
                        let diagnostic = Diagnostic::new(
                            Code::TerminalWithExit,
                            format!("stage `{}` ends the flow (outcome `{}`), yet this transition leaves it", transition.from, flow.stages[from].outcome.as_ref().map(Id::as_str).unwrap_or_default()),
                        )
                        .at(self.at(file, &format!("{pointer}/from")))
                        .hint("remove the `outcome` if records may go on from there");
                        self.push(diagnostic);
                    }
                }
            }
        }
        // Sub-flows that advance the parent are transitions too.
        for stage in &flow.stages {
            if let Some(subflow) = &stage.subflow {
                for outcome in &subflow.when_done {
                    edges.entry(stage.id.clone()).or_default().insert(outcome.advance.clone());
                }
            }
        }

        // Reachability and dead ends: only once the flow has no errors, since an
        // unknown stage or a broken transition would make every stage after it look
        // unreachable.
        if self.diagnostics.iter().filter(|d| d.is_error()).count() > errors_before {
            return;
        }
        let mut reachable = BTreeSet::new();
        let mut pending = vec![initial.clone()];
        while let Some(stage) = pending.pop() {
            if reachable.insert(stage.clone()) {
                if let Some(targets) = edges.get(&stage) {
                    pending.extend(targets.iter().cloned());
                }
            }
        }
        for (index, stage) in flow.stages.iter().enumerate() {
            let pointer = format!("/stages/{index}/id");
            if stages.contains_key(&initial) && !reachable.contains(&stage.id) {
                let diagnostic = Diagnostic::new(
                    Code::UnreachableStage,
                    format!("no transition leads to stage `{}` from `{initial}`", stage.id),
                )
                .at(self.at(file, &pointer))
                .hint(format!("add a transition `to: {}`, or remove the stage", stage.id));
                self.push(diagnostic);
            }
            if stage.outcome.is_none() && edges.get(&stage.id).is_none_or(BTreeSet::is_empty) {
                let diagnostic = Diagnostic::new(
                    Code::StuckStage,
                    format!("records in stage `{}` can never leave it", stage.id),
                )
                .at(self.at(file, &pointer))
                .hint(format!(
                    "add a transition `from: {}`, or mark it terminal with `outcome:`",
                    stage.id
                ));
                self.push(diagnostic);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_stage(
        &mut self,
        stage: &Stage,
        index: usize,
        form: Option<&Id>,
        file: usize,
        owner: &str,
        unknown_stage: &dyn Fn(&mut Self, &str, &str),
        stages: &BTreeMap<Id, usize>,
        flow: &FlowFile,
    ) {
        let base = format!("/stages/{index}");
        for (n, field) in stage.requires.iter().enumerate() {
            self.field(form, field, file, &format!("{base}/requires/{n}"));
        }
        for (n, condition) in stage.entry.iter().enumerate() {
            self.condition(condition, file, &format!("{base}/entry/{n}"), owner);
        }
        for (n, condition) in stage.exit.iter().enumerate() {
            self.condition(condition, file, &format!("{base}/exit/{n}"), owner);
        }
        self.actions(&stage.actions, form, file, &base, owner);
        for (n, approval) in stage.approvals.iter().enumerate() {
            self.approval(approval, form, file, &format!("{base}/approvals/{n}"), owner);
        }
        if let Some(sla) = &stage.sla {
            self.sla(sla, file, &format!("{base}/sla"));
            if sla.calendar.is_none() && flow.calendar.is_none() {
                // Around-the-clock time is allowed; nothing to report.
            }
        }
        self.effects(&stage.on_enter, form, file, &format!("{base}/on_enter"), owner);
        self.effects(&stage.on_exit, form, file, &format!("{base}/on_exit"), owner);
        if let Some(subflow) = &stage.subflow {
            let pointer = format!("{base}/subflow");
            self.child_fields(&subflow.flow, &subflow.set, file, &pointer, owner);
            let outcomes: BTreeSet<Id> = self
                .flows
                .get(&subflow.flow)
                .map(|def| {
                    def.value.stages.iter().filter_map(|stage| stage.outcome.clone()).collect()
                })
                .unwrap_or_default();
            let child_known = self.flows.contains_key(&subflow.flow);
            for (n, reaction) in subflow.when_done.iter().enumerate() {
                let inner = format!("{pointer}/when_done/{n}");
                if child_known && !outcomes.contains(&reaction.outcome) {
                    let hint =
                        match closest(reaction.outcome.as_str(), outcomes.iter().map(Id::as_str)) {
                            Some(candidate) => format!("did you mean `{candidate}`?"),
                            None => format!(
                                "flow `{}` ends with: {}",
                                subflow.flow,
                                outcomes
                                    .iter()
                                    .map(|o| format!("`{o}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        };
                    let diagnostic = Diagnostic::new(
                        Code::UnknownOutcome,
                        format!("flow `{}` has no outcome `{}`", subflow.flow, reaction.outcome),
                    )
                    .at(self.at(file, &format!("{inner}/outcome")))
                    .hint(hint);
                    self.push(diagnostic);
                }
                if !stages.contains_key(&reaction.advance) {
                    unknown_stage(self, reaction.advance.as_str(), &format!("{inner}/advance"));
                }
            }
        }
    }

    fn actions(
        &mut self,
        actions: &[Action],
        form: Option<&Id>,
        file: usize,
        base: &str,
        owner: &str,
    ) {
        let ids: BTreeMap<&Id, usize> =
            actions.iter().enumerate().map(|(n, action)| (&action.id, n)).collect();
        for (n, action) in actions.iter().enumerate() {
            let pointer = format!("{base}/actions/{n}");
            let mut done_by = 0;
            if let Some(action_form) = &action.form {
                done_by += 1;
                self.reference(Kind::Form, action_form, file, &format!("{pointer}/form"));
            }
            if !action.fields.is_empty() {
                done_by += 1;
            }
            for (m, field) in action.fields.iter().enumerate() {
                self.field(form, field, file, &format!("{pointer}/fields/{m}"));
            }
            if let Some(done_when) = &action.done_when {
                done_by += 1;
                let inner = format!("{pointer}/done_when");
                self.compile_inline(file, &inner, done_when, ScriptKey::new(owner, inner.clone()));
            }
            if done_by == 0 {
                let diagnostic = Diagnostic::new(Code::MissingKey, format!("key action `{}` has no way to be done", action.id))
                    .at(self.key_at(file, &pointer))
                    .hint("add `form:` (a form to fill), `fields:` (fields to fill) or `done_when:` (a rule)");
                self.push(diagnostic);
            }
            for (m, after) in action.after.iter().enumerate() {
                if !ids.contains_key(after) {
                    let hint = match closest(after.as_str(), ids.keys().map(|id| id.as_str())) {
                        Some(candidate) => format!("did you mean `{candidate}`?"),
                        None => "`after` names key actions of the same stage".to_owned(),
                    };
                    let diagnostic = Diagnostic::new(
                        Code::UnknownAction,
                        format!("unknown key action `{after}` in this stage"),
                    )
                    .at(self.at(file, &format!("{pointer}/after/{m}")))
                    .hint(hint);
                    self.push(diagnostic);
                }
            }
        }
        // The order must be a partial order: no cycles.
        let mut state: BTreeMap<usize, u8> = BTreeMap::new();
        fn visit(
            node: usize,
            actions: &[Action],
            ids: &BTreeMap<&Id, usize>,
            state: &mut BTreeMap<usize, u8>,
            path: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            match state.get(&node) {
                Some(2) => return None,
                Some(1) => {
                    let start = path.iter().position(|n| *n == node).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                _ => {}
            }
            state.insert(node, 1);
            path.push(node);
            for after in &actions[node].after {
                if let Some(&next) = ids.get(after) {
                    if let Some(cycle) = visit(next, actions, ids, state, path) {
                        return Some(cycle);
                    }
                }
            }
            path.pop();
            state.insert(node, 2);
            None
        }
        for node in 0..actions.len() {
            let mut path = Vec::new();
            if let Some(cycle) = visit(node, actions, &ids, &mut state, &mut path) {
                let names: Vec<String> = cycle.iter().map(|n| actions[*n].id.to_string()).collect();
                let diagnostic = Diagnostic::new(
                    Code::ActionOrderCycle,
                    format!(
                        "key actions wait for each other: {} → {}",
                        names.join(" → "),
                        names[0]
                    ),
                )
                .at(self.at(file, &format!("{base}/actions/{}/after", cycle[0])))
                .hint("remove one `after` so that some action can be done first");
                self.push(diagnostic);
                break;
            }
        }
    }

    fn approval(
        &mut self,
        approval: &Approval,
        form: Option<&Id>,
        file: usize,
        pointer: &str,
        owner: &str,
    ) {
        for (n, party) in approval.approvers.iter().enumerate() {
            self.party(party, form, file, &format!("{pointer}/approvers/{n}"), owner);
        }
        match (approval.policy, &approval.audit) {
            (ApprovalPolicy::AutoApprove, None) => {
                let diagnostic = Diagnostic::new(Code::PolicyMismatch, format!("approval `{}` is auto-approved but says nothing of the audit", approval.id))
                    .at(self.at(file, &format!("{pointer}/policy")))
                    .hint("add `audit: {rate: 0.2, auditor: {manager_of: owner}}` (use `rate: 0` for no audit)");
                self.push(diagnostic);
            }
            (ApprovalPolicy::AutoApprove, Some(audit)) => {
                self.party(&audit.auditor, form, file, &format!("{pointer}/audit/auditor"), owner);
                if let Some(due) = &audit.due {
                    self.duration(due, file, &format!("{pointer}/audit/due"));
                }
            }
            (_, Some(_)) => {
                let diagnostic = Diagnostic::new(
                    Code::PolicyMismatch,
                    "`audit` only applies to `policy: auto_approve`",
                )
                .at(self.key_at(file, &format!("{pointer}/audit")))
                .hint("remove `audit`, or set `policy: auto_approve`");
                self.push(diagnostic);
            }
            (_, None) => {}
        }
        if let Some(approval_form) = &approval.form {
            self.reference(Kind::Form, approval_form, file, &format!("{pointer}/form"));
        }
        if let Some(sla) = &approval.sla {
            self.sla(sla, file, &format!("{pointer}/sla"));
        }
    }

    fn check_subflow_cycles(&mut self) {
        let edges: BTreeMap<Id, Vec<(Id, String)>> = self
            .flows
            .iter()
            .map(|(id, def)| {
                let children = def
                    .value
                    .stages
                    .iter()
                    .enumerate()
                    .filter_map(|(index, stage)| {
                        stage.subflow.as_ref().filter(|subflow| subflow.wait).map(|subflow| {
                            (subflow.flow.clone(), format!("/stages/{index}/subflow/flow"))
                        })
                    })
                    .collect();
                (id.clone(), children)
            })
            .collect();
        let mut reported = BTreeSet::new();
        for start in edges.keys() {
            let mut pending: Vec<(Id, Vec<Id>)> = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((current, path)) = pending.pop() {
                for (child, _) in edges.get(&current).into_iter().flatten() {
                    if child == start {
                        let mut members: Vec<String> = path.iter().map(Id::to_string).collect();
                        members.sort();
                        if reported.insert(members) {
                            let (file, pointer) = self
                                .flows
                                .get(start)
                                .map(|def| {
                                    let pointer = edges[start]
                                        .first()
                                        .map(|(_, pointer)| pointer.clone())
                                        .unwrap_or_default();
                                    (def.file, pointer)
                                })
                                .unwrap_or_default();
                            let names: Vec<String> = path.iter().map(Id::to_string).collect();
                            let diagnostic = Diagnostic::new(
                                Code::SubflowCycle,
                                format!(
                                    "flows wait for each other: {} → {start}",
                                    names.join(" → ")
                                ),
                            )
                            .at(self.at(file, &pointer))
                            .hint("set `wait: false` on one of the sub-flows, or remove it");
                            self.push(diagnostic);
                        }
                    } else if seen.insert(child.clone()) {
                        let mut next = path.clone();
                        next.push(child.clone());
                        pending.push((child.clone(), next));
                    }
                }
            }
        }
    }
}

/// "did you mean …?", or the list of the form's fields.
fn field_hint(
    field: &FieldName,
    fields: &BTreeMap<FieldName, crate::definitions::FieldInfo>,
) -> String {
    match closest(field.as_str(), fields.keys().map(FieldName::as_str)) {
        Some(candidate) => format!("did you mean `{candidate}`?"),
        None => format!(
            "the fields are: {}",
            fields.keys().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn rule_code(kind: &RuleErrorKind) -> Code {
    match kind {
        RuleErrorKind::Syntax => Code::RhaiSyntax,
        RuleErrorKind::UnknownVariable => Code::UnknownVariable,
        RuleErrorKind::UnknownFunction => Code::UnknownFunction,
        RuleErrorKind::Limit => Code::RuleLimit,
    }
}

/// Finds a block helper that is opened and never closed (`{{#if}}` without `{{/if}}`),
/// or closed without being opened, and says where. The handlebars parser only notices
/// at the end of the file, far from the mistake.
fn unbalanced_block(text: &str) -> Option<(std::ops::Range<usize>, String, String)> {
    let mut open: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find("{{") {
        let start = rest + found;
        let Some(length) = text[start..].find("}}") else { break };
        let end = start + length + 2;
        let inner = text[start + 2..start + length].trim_start_matches('~').trim();
        rest = end;
        if inner.starts_with('!') {
            // A comment may contain anything, including `}}` inside `{{!-- --}}`.
            if inner.starts_with("!--") {
                if let Some(close) = text[start..].find("--}}") {
                    rest = start + close + 4;
                }
            }
            continue;
        }
        let name_of = |tag: &str| tag.split_whitespace().next().unwrap_or_default().to_owned();
        if let Some(tag) = inner.strip_prefix('#').or_else(|| inner.strip_prefix('^')) {
            let tag = tag.strip_prefix('*').unwrap_or(tag);
            let tag = tag.strip_prefix('>').unwrap_or(tag);
            open.push((name_of(tag), start..end));
        } else if let Some(tag) = inner.strip_prefix('/') {
            let name = name_of(tag);
            match open.pop() {
                Some((opened, _)) if opened == name => {}
                Some((opened, range)) => {
                    return Some((
                        range,
                        format!("`{{{{#{opened}}}}}` is closed by `{{{{/{name}}}}}`"),
                        format!("close it with `{{{{/{opened}}}}}` before `{{{{/{name}}}}}`"),
                    ));
                }
                None => {
                    return Some((
                        start..end,
                        format!("`{{{{/{name}}}}}` closes a block that was never opened"),
                        format!("remove it, or open the block with `{{{{#{name} …}}}}`"),
                    ));
                }
            }
        }
    }
    open.pop().map(|(name, range)| {
        (
            range,
            format!("`{{{{#{name}}}}}` is never closed"),
            format!("add `{{{{/{name}}}}}` where the block ends"),
        )
    })
}

/// The byte offset `count` characters after `offset`.
fn char_end(text: &str, offset: usize, count: usize) -> usize {
    text.get(offset..)
        .and_then(|rest| rest.char_indices().nth(count.max(1)).map(|(index, _)| offset + index))
        .unwrap_or(text.len())
}

fn valid_id(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && text.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn parse_offset(text: &str) -> Option<i32> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let (hours, minutes) = text.get(1..)?.split_once(':')?;
    Some(sign * (hours.parse::<i32>().ok()? * 60 + minutes.parse::<i32>().ok()?))
}

fn parse_span(text: &str) -> Option<(u16, u16)> {
    let (start, end) = text.split_once('-')?;
    let minutes = |time: &str| -> Option<u16> {
        let (hours, minutes) = time.split_once(':')?;
        let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
        (hours <= 24 && minutes < 60 && hours * 60 + minutes <= 24 * 60)
            .then_some(hours * 60 + minutes)
    };
    Some((minutes(start)?, minutes(end)?))
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
