//! Uploaded files on disk, and how they travel with a backup.
//!
//! The bytes of uploaded files live in `<data>/files/<id>`; the store holds only their
//! descriptions (`_file/<id>` records), so a store backup (`Store::export`) does not
//! carry them. `stagecraft backup --out B` therefore copies the folder to `B.files/`
//! after writing `B`, and `stagecraft restore --from B` copies `B.files/` into the new
//! data folder. A file is written (and flushed) before its description is committed,
//! and stored files are never changed or deleted, so a copy made after the export
//! holds the bytes of every file the backup describes (and perhaps a few newer ones,
//! which nothing refers to).

use std::path::{Path, PathBuf};

/// The folder of a data folder that holds uploaded files.
pub const FILES_FOLDER: &str = "files";

/// Where the uploaded files of a backup file go: `<backup>.files`, beside it.
pub fn uploads_beside(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".files");
    PathBuf::from(name)
}

/// Copies the stored files of the folder `from` into `to` (created when there is
/// something to copy) and returns how many there were. Files still being written
/// (`.<id>.part`) are left out; a missing `from` holds no files.
pub fn copy_uploads(from: &Path, to: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut copied = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        std::fs::create_dir_all(to)?;
        std::fs::copy(entry.path(), to.join(&name))?;
        copied += 1;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_files_are_copied_and_half_written_ones_are_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let from = dir.path().join("data").join(FILES_FOLDER);
        let to = uploads_beside(&dir.path().join("backup.jsonl"));
        assert_eq!(to, dir.path().join("backup.jsonl.files"));
        assert_eq!(copy_uploads(&from, &to).ok(), Some(0));
        assert!(!to.exists(), "nothing to copy, no folder");
        std::fs::create_dir_all(&from).expect("folder");
        std::fs::write(from.join("0123456789abcdef0123456789abcdef"), b"%PDF-1.7").expect("file");
        std::fs::write(from.join(".fedcba9876543210fedcba9876543210.part"), b"%PD").expect("part");
        assert_eq!(copy_uploads(&from, &to).ok(), Some(1));
        assert_eq!(
            std::fs::read(to.join("0123456789abcdef0123456789abcdef")).ok().as_deref(),
            Some(&b"%PDF-1.7"[..])
        );
        assert!(!to.join(".fedcba9876543210fedcba9876543210.part").exists());
    }
}
