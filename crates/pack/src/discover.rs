//! Finding pack files: manifests under the paths given, the files each manifest's
//! `contents` brings in, and loose files that belong to no pack.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What a file is, told by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// `pack.yaml`.
    Manifest,
    /// `*.flow.yaml`.
    Flow,
    /// `*.rules.yaml`.
    Rules,
    /// `*.calendar.yaml`.
    Calendar,
    /// `*.org.yaml` or `org.yaml`.
    Org,
    /// `*.rhai`.
    Script,
    /// `*.hbs`.
    Template,
    /// `*.json` other than format schemas.
    Form,
    /// `*.schema.json`: a format schema (checked as JSON Schema only).
    FormatSchema,
    /// A `.yaml`/`.yml` file whose name says nothing of its kind.
    UnknownYaml,
}

/// Classifies a file by name; `None` for files that are not pack files at all
/// (documentation, images, and `*.mapping.yaml`: column mappings of CSV imports that
/// may sit beside the files they import), which are skipped silently.
pub fn classify(path: &Path) -> Option<FileKind> {
    let name = path.file_name()?.to_str()?;
    let lower = name.to_ascii_lowercase();
    let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
    let stem = lower.trim_end_matches(".yaml").trim_end_matches(".yml");
    if yaml && stem.ends_with(".mapping") {
        return None;
    }
    Some(if lower == "pack.yaml" || lower == "pack.yml" {
        FileKind::Manifest
    } else if yaml && stem.ends_with(".flow") {
        FileKind::Flow
    } else if yaml && stem.ends_with(".rules") {
        FileKind::Rules
    } else if yaml && stem.ends_with(".calendar") {
        FileKind::Calendar
    } else if yaml && (stem == "org" || stem.ends_with(".org")) {
        FileKind::Org
    } else if yaml {
        FileKind::UnknownYaml
    } else if lower.ends_with(".rhai") {
        FileKind::Script
    } else if lower.ends_with(".hbs") {
        FileKind::Template
    } else if lower.ends_with(".schema.json") {
        FileKind::FormatSchema
    } else if lower.ends_with(".json") {
        FileKind::Form
    } else {
        return None;
    })
}

/// Folders never searched: version control, build output, editor settings.
fn skipped_dir(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.') || name == "target" || name == "node_modules")
}

/// Every file under a path (the path itself when it is a file), sorted, skipping
/// hidden and build folders. Symbolic links to folders are not followed, so a link
/// loop cannot trap the walk.
pub(crate) fn walk(path: &Path) -> Vec<PathBuf> {
    let mut files = BTreeSet::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&next) else {
            continue;
        };
        if metadata.is_dir() {
            if next != path && skipped_dir(&next) {
                continue;
            }
            if let Ok(entries) = std::fs::read_dir(&next) {
                for entry in entries.flatten() {
                    pending.push(entry.path());
                }
            }
        } else if metadata.is_file() || (metadata.file_type().is_symlink() && next.is_file()) {
            files.insert(next);
        }
    }
    files.into_iter().collect()
}

/// The `pack.yaml` of the pack a file belongs to, searching its folder and the
/// folders above it.
pub(crate) fn enclosing_manifest(file: &Path) -> Option<PathBuf> {
    let mut dir = file.parent();
    while let Some(current) = dir {
        let candidate = current.join("pack.yaml");
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = current.parent();
    }
    None
}

/// A path made comparable with others: absolute and without `.`/`..` where possible.
pub(crate) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Joins a relative path to a folder without leaving `.` or `a/..` in the result,
/// so that messages name files the way people wrote them.
pub(crate) fn join_clean(dir: &Path, relative: &str) -> PathBuf {
    clean(&dir.join(relative))
}

/// A path without `.` components and with `a/..` folded (lexically; links are not
/// followed, which is what people reading the path expect).
pub(crate) fn clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}
