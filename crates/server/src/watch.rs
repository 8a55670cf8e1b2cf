//! Watching the pack files. Every [`POLL`] the server lists the files under the pack
//! folders with their size and modification time; when the list changed and then
//! stayed the same for one more poll (an editor saving several files, a `git pull`),
//! it loads the packs again. Loaded without errors, they serve new records at once
//! (records already in a flow keep the pack version they started on); with errors,
//! the diagnostics are printed and the running definitions stay.
//!
//! Polling rather than file-system notifications: a few hundred small files cost
//! microseconds to list, and polling works the same on every file system (network
//! shares and container mounts included), where notifications do not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the pack files are looked at.
pub(crate) const POLL: Duration = Duration::from_secs(2);
/// The deepest folder nesting followed (packs are shallow; links could loop).
const MAX_DEPTH: usize = 16;

/// What the pack files look like now: each file's size and modification time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot(BTreeMap<PathBuf, (u64, Option<SystemTime>)>);

impl Snapshot {
    /// Lists the files under `paths` (files or folders). Unreadable entries are left
    /// out: loading will name them.
    pub(crate) fn take(paths: &[PathBuf]) -> Snapshot {
        let mut files = BTreeMap::new();
        for path in paths {
            collect(path, 0, &mut files);
        }
        Snapshot(files)
    }
}

fn collect(path: &Path, depth: usize, files: &mut BTreeMap<PathBuf, (u64, Option<SystemTime>)>) {
    let Ok(metadata) = std::fs::metadata(path) else { return };
    if metadata.is_file() {
        files.insert(path.to_owned(), (metadata.len(), metadata.modified().ok()));
        return;
    }
    if !metadata.is_dir() || depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else { return };
    for entry in entries.flatten() {
        // Editors' swap and backup files are not pack files.
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        collect(&entry.path(), depth + 1, files);
    }
}

/// Decides when to reload, from one snapshot per poll.
#[derive(Debug)]
pub(crate) struct Watcher {
    /// What the loaded definitions were read from.
    loaded: Snapshot,
    /// A change seen at the last poll, waiting to settle.
    pending: Option<Snapshot>,
}

impl Watcher {
    /// A watcher for packs loaded from what `loaded` lists.
    pub(crate) fn new(loaded: Snapshot) -> Self {
        Watcher { loaded, pending: None }
    }

    /// Takes the poll's snapshot; `true` when it is time to load the packs again.
    pub(crate) fn poll(&mut self, now: Snapshot) -> bool {
        if now == self.loaded {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() == Some(&now) {
            self.pending = None;
            self.loaded = now;
            return true;
        }
        self.pending = Some(now);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reloads_once_it_has_settled_and_only_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pack.yaml");
        std::fs::write(&file, "name: a\n").expect("write");
        std::fs::write(dir.path().join(".pack.yaml.swp"), "x").expect("write");
        let paths = vec![dir.path().to_owned()];
        let first = Snapshot::take(&paths);
        assert_eq!(first.0.len(), 1, "hidden files are not pack files: {first:?}");
        let mut watcher = Watcher::new(first);
        assert!(!watcher.poll(Snapshot::take(&paths)), "nothing changed");

        std::fs::write(&file, "name: ab\n").expect("write");
        assert!(!watcher.poll(Snapshot::take(&paths)), "a change waits one poll");
        assert!(watcher.poll(Snapshot::take(&paths)), "then reloads");
        assert!(!watcher.poll(Snapshot::take(&paths)), "and only once");

        std::fs::write(&file, "name: abc\n").expect("write");
        assert!(!watcher.poll(Snapshot::take(&paths)));
        std::fs::write(dir.path().join("more.flow.yaml"), "id: x\n").expect("write");
        assert!(!watcher.poll(Snapshot::take(&paths)), "still changing: wait");
        assert!(watcher.poll(Snapshot::take(&paths)));
    }
}
