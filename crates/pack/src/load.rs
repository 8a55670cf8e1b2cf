//! Reading: which files to read (packs found under the paths, the files their
//! manifests list, loose files), reading each within limits, parsing it and checking
//! it against its format. The cross-file checks follow in `check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;
use stagecraft_model::{
    CalendarFile, Code, Diagnostic, FORMAT_VERSION, FlowFile, OrgFile, PackManifest, RulesFile,
};

use crate::Report;
use crate::check;
use crate::definitions::{Definitions, PackInfo};
use crate::discover::{self, FileKind};
use crate::source::{SourceFile, display_path};
use crate::structure::{self, Format};
use crate::tree::{self, Document};

/// A file's content once parsed and found well-formed.
#[derive(Debug)]
pub(crate) enum Content {
    Manifest(PackManifest),
    Flow(FlowFile),
    Rules(RulesFile),
    Calendar(CalendarFile),
    Org(OrgFile),
    Script,
    Template,
    Form,
    FormatSchema,
}

/// One file read.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) source: SourceFile,
    pub(crate) kind: FileKind,
    /// The index of the pack (in `Workspace::packs`) this file belongs to.
    pub(crate) pack: Option<usize>,
    pub(crate) document: Option<Document>,
    /// `None` when the file could not be parsed or did not fit its format.
    pub(crate) content: Option<Content>,
}

/// A pack found: its manifest file.
#[derive(Debug)]
pub(crate) struct FoundPack {
    pub(crate) manifest_file: usize,
}

/// Everything read, ready for the cross-file checks.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    pub(crate) files: Vec<Loaded>,
    pub(crate) packs: Vec<FoundPack>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

pub(crate) fn run(paths: &[PathBuf]) -> (Option<Definitions>, Report) {
    let mut workspace = Workspace::default();
    workspace.read(paths);
    let definitions = check::resolve(&mut workspace);
    let packs: Vec<PackInfo> = workspace
        .packs
        .iter()
        .filter_map(|pack| {
            let file = &workspace.files[pack.manifest_file];
            match &file.content {
                Some(Content::Manifest(manifest)) => Some(PackInfo {
                    name: manifest.name.to_string(),
                    version: manifest.version.clone(),
                    manifest: file.source.name.clone(),
                }),
                _ => None,
            }
        })
        .collect();
    let mut definitions = definitions;
    if let Some(definitions) = definitions.as_mut() {
        definitions.packs = packs.clone();
    }
    let mut diagnostics = std::mem::take(&mut workspace.diagnostics);
    sort(&mut diagnostics, &workspace.files);
    let sources = workspace.files.into_iter().map(|file| file.source).collect();
    (definitions, Report { diagnostics, sources, packs })
}

/// Orders problems by file (in reading order), then position, then code.
fn sort(diagnostics: &mut [Diagnostic], files: &[Loaded]) {
    let order: BTreeMap<&str, usize> =
        files.iter().enumerate().map(|(index, file)| (file.source.name.as_str(), index)).collect();
    diagnostics.sort_by_key(|diagnostic| {
        let location = diagnostic.location.as_ref();
        (
            location.map_or(0, |location| {
                order.get(location.file.as_str()).map_or(usize::MAX, |index| index + 1)
            }),
            location.map_or(0, |location| location.start),
            diagnostic.code,
        )
    });
}

impl Workspace {
    fn read(&mut self, paths: &[PathBuf]) {
        // Manifests first, so that every file a pack lists is read as part of it.
        let mut manifests: Vec<PathBuf> = Vec::new();
        let mut loose: Vec<PathBuf> = Vec::new();
        for path in paths {
            let path = &discover::clean(path);
            if !path.exists() {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::PathNotFound,
                        format!("`{}` does not exist", display_path(path)),
                    )
                    .hint("check the path; `stagecraft check` takes files and folders"),
                );
                continue;
            }
            if path.is_file() {
                match (discover::classify(path), discover::enclosing_manifest(path)) {
                    (Some(FileKind::Manifest), _) => manifests.push(path.clone()),
                    (_, Some(manifest)) => manifests.push(manifest),
                    _ => loose.push(path.clone()),
                }
                continue;
            }
            let files = discover::walk(path);
            let mut found_any = false;
            for file in files {
                match discover::classify(&file) {
                    Some(FileKind::Manifest) => {
                        manifests.push(file);
                        found_any = true;
                    }
                    Some(_) => {
                        loose.push(file);
                        found_any = true;
                    }
                    None => {}
                }
            }
            if !found_any {
                self.diagnostics.push(Diagnostic::new(
                    Code::NoPackFound,
                    format!("`{}` holds no pack files", display_path(path)),
                ));
            }
        }

        let mut claimed: BTreeSet<PathBuf> = BTreeSet::new();
        let mut seen_manifests = BTreeSet::new();
        for manifest in manifests {
            if !seen_manifests.insert(discover::canonical(&manifest)) {
                continue;
            }
            self.read_pack(&manifest, &mut claimed);
        }
        self.read_required_siblings(&mut seen_manifests, &mut claimed);
        for file in loose {
            let canonical = discover::canonical(&file);
            if claimed.contains(&canonical) {
                continue;
            }
            claimed.insert(canonical);
            self.read_file(&file, None, None);
        }
    }

    /// Packs are usually checked one folder at a time; a pack they require that sits
    /// beside them (`flows/base` next to `flows/sales`) is read too, so that checking
    /// one pack does not fail for want of its neighbours.
    fn read_required_siblings(
        &mut self,
        seen: &mut BTreeSet<PathBuf>,
        claimed: &mut BTreeSet<PathBuf>,
    ) {
        loop {
            let loaded: BTreeSet<String> =
                self.manifests().map(|(_, manifest)| manifest.name.to_string()).collect();
            let mut wanted: Vec<PathBuf> = Vec::new();
            for (file, manifest) in self.manifests() {
                let Some(parent) = self.files[file].source.path.parent().and_then(Path::parent)
                else {
                    continue;
                };
                for requirement in &manifest.requires {
                    let candidate = parent.join(requirement.pack.as_str()).join("pack.yaml");
                    if !loaded.contains(requirement.pack.as_str()) && candidate.is_file() {
                        wanted.push(candidate);
                    }
                }
            }
            let before = self.files.len();
            for manifest in wanted {
                if seen.insert(discover::canonical(&manifest)) {
                    self.read_pack(&manifest, claimed);
                }
            }
            if self.files.len() == before {
                break;
            }
        }
    }

    fn manifests(&self) -> impl Iterator<Item = (usize, &PackManifest)> {
        self.packs.iter().filter_map(|pack| match &self.files[pack.manifest_file].content {
            Some(Content::Manifest(manifest)) => Some((pack.manifest_file, manifest)),
            _ => None,
        })
    }

    fn read_pack(&mut self, manifest_path: &Path, claimed: &mut BTreeSet<PathBuf>) {
        claimed.insert(discover::canonical(manifest_path));
        let Some(index) = self.read_file(manifest_path, None, Some(FileKind::Manifest)) else {
            return;
        };
        let pack = self.packs.len();
        let dir = manifest_path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.packs.push(FoundPack { manifest_file: index });
        self.files[index].pack = Some(pack);
        let Some(Content::Manifest(manifest)) = &self.files[index].content else {
            return;
        };
        let contents = manifest.contents.clone();
        for (position, entry) in contents.iter().enumerate() {
            let path = discover::join_clean(&dir, entry);
            if !path.exists() {
                let location = self.files[index].document.as_ref().map(|document| {
                    self.files[index]
                        .source
                        .location(document.value_range(&format!("/contents/{position}")))
                });
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::PathNotFound,
                        format!("`{entry}` listed in `contents` does not exist"),
                    )
                    .at(location)
                    .hint("paths in `contents` are relative to the folder of pack.yaml"),
                );
                continue;
            }
            let explicit_file = path.is_file();
            for file in discover::walk(&path) {
                let kind = discover::classify(&file);
                if kind == Some(FileKind::Manifest) {
                    // Another pack's manifest inside this one's folder: a separate pack.
                    continue;
                }
                if kind.is_none() && !explicit_file {
                    continue;
                }
                if !claimed.insert(discover::canonical(&file)) {
                    continue;
                }
                self.read_file(&file, Some(pack), None);
            }
        }
    }

    /// Reads, parses and checks the format of one file; returns its index.
    fn read_file(
        &mut self,
        path: &Path,
        pack: Option<usize>,
        kind: Option<FileKind>,
    ) -> Option<usize> {
        let kind = kind.or_else(|| discover::classify(path));
        let source = match SourceFile::read(path) {
            Ok(source) => source,
            Err(diagnostic) => {
                self.diagnostics.push(diagnostic);
                return None;
            }
        };
        let index = self.files.len();
        let Some(kind) = kind else {
            self.diagnostics.push(unknown_kind(&source));
            return None;
        };
        let (document, content) = match kind {
            FileKind::UnknownYaml => {
                self.diagnostics.push(unknown_kind(&source));
                (None, None)
            }
            FileKind::Script => (None, Some(Content::Script)),
            FileKind::Template => (None, Some(Content::Template)),
            FileKind::Form | FileKind::FormatSchema => match tree::parse_json(&source) {
                Ok(document) => {
                    let content =
                        if kind == FileKind::Form { Content::Form } else { Content::FormatSchema };
                    (Some(document), Some(content))
                }
                Err(diagnostic) => {
                    self.diagnostics.push(diagnostic);
                    (None, None)
                }
            },
            FileKind::Manifest
            | FileKind::Flow
            | FileKind::Rules
            | FileKind::Calendar
            | FileKind::Org => match tree::parse_yaml(&source) {
                Ok(document) => {
                    let content = self.typed(&source, &document, kind);
                    (Some(document), content)
                }
                Err(diagnostic) => {
                    self.diagnostics.push(diagnostic);
                    (None, None)
                }
            },
        };
        self.files.push(Loaded { source, kind, pack, document, content });
        Some(index)
    }

    /// Checks a YAML document against its format and turns it into the raw type.
    fn typed(
        &mut self,
        source: &SourceFile,
        document: &Document,
        kind: FileKind,
    ) -> Option<Content> {
        let format = match kind {
            FileKind::Manifest => Format::Manifest,
            FileKind::Flow => Format::Flow,
            FileKind::Rules => Format::Rules,
            FileKind::Calendar => Format::Calendar,
            FileKind::Org => Format::Org,
            _ => return None,
        };
        if kind == FileKind::Manifest {
            // The format version decides how the rest is read: check it first.
            match document.value.get("stagecraft") {
                Some(Value::Number(number))
                    if number.as_u64() != Some(u64::from(FORMAT_VERSION)) =>
                {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::FormatVersion,
                            format!("pack format version {number} is not supported; this build reads version {FORMAT_VERSION}"),
                        )
                        .at(Some(source.location(document.value_range("/stagecraft"))))
                        .hint(format!("write `stagecraft: {FORMAT_VERSION}`, or use a newer stagecraft")),
                    );
                    return None;
                }
                _ => {}
            }
        }
        let problems = structure::validate(source, document, format);
        let only_unknown_keys = problems.iter().all(|problem| problem.code == Code::UnknownKey);
        let had_problems = !problems.is_empty();
        self.diagnostics.extend(problems);
        if had_problems && !only_unknown_keys {
            return None;
        }
        // Unknown keys are reported above; without them the file still says enough to
        // check its references, so that one pass reports those problems too.
        let value = if had_problems {
            let stripped = structure::without_unknown_keys(&document.value, format);
            // Removing a key can leave a value incomplete (an empty text); then the
            // problems above already say what to fix.
            if !structure::is_valid(&stripped, format) {
                return None;
            }
            stripped
        } else {
            document.value.clone()
        };
        let content = match kind {
            FileKind::Manifest => deserialize(source, value).map(Content::Manifest),
            FileKind::Flow => deserialize(source, value).map(Content::Flow),
            FileKind::Rules => deserialize(source, value).map(Content::Rules),
            FileKind::Calendar => deserialize(source, value).map(Content::Calendar),
            FileKind::Org => deserialize(source, value).map(Content::Org),
            _ => return None,
        };
        match content {
            Ok(content) => Some(content),
            Err(diagnostic) => {
                self.diagnostics.push(diagnostic);
                None
            }
        }
    }
}

fn unknown_kind(source: &SourceFile) -> Diagnostic {
    Diagnostic::new(Code::UnknownFileKind, format!("cannot tell what kind of pack file `{}` is", source.name))
        .at(Some(source.start_location()))
        .hint("name it `pack.yaml`, `<name>.flow.yaml`, `<name>.rules.yaml`, `<name>.calendar.yaml`, `<name>.org.yaml`, `<name>.rhai`, `<name>.hbs` or `<form>.json`")
}

/// The format schema accepted the value, so this only fails if the schema and the
/// types disagree; that is still reported as a diagnostic, never a panic.
fn deserialize<T: DeserializeOwned>(source: &SourceFile, value: Value) -> Result<T, Diagnostic> {
    serde_json::from_value(value).map_err(|error| {
        Diagnostic::new(Code::WrongType, format!("the file does not fit its format: {error}"))
            .at(Some(source.start_location()))
    })
}
