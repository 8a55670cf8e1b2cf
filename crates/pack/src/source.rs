//! Source files as read from disk: the text, where each line starts, and how a byte
//! range becomes a `file:line:column` location. Reading is bounded: a file that is
//! too large, not UTF-8 or unreadable becomes a diagnostic, never a panic.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use stagecraft_model::{Code, Diagnostic, Location};

/// The largest pack file read. Real pack files are a few kilobytes; the limit stops a
/// stray data dump from stalling a reload.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One file's text with its line index.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as the user named it, used in messages.
    pub name: String,
    /// The path on disk.
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// A source from text already in memory.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        SourceFile { name: name.into(), path: path.into(), text, line_starts }
    }

    /// Reads a file, or explains why it could not be read.
    pub fn read(path: &Path) -> Result<Self, Diagnostic> {
        let name = display_path(path);
        let whole_file = || {
            Some(Location {
                file: name.clone(),
                line: 1,
                column: 1,
                end_line: 1,
                end_column: 1,
                start: 0,
                end: 0,
            })
        };
        let file = std::fs::File::open(path).map_err(|error| {
            Diagnostic::new(Code::Unreadable, format!("cannot read {name}: {}", io_reason(&error)))
                .at(whole_file())
        })?;
        let metadata = file.metadata().map_err(|error| {
            Diagnostic::new(Code::Unreadable, format!("cannot read {name}: {}", io_reason(&error)))
                .at(whole_file())
        })?;
        if metadata.len() > MAX_FILE_BYTES {
            return Err(Diagnostic::new(
                Code::TooLarge,
                format!(
                    "{name} is {} bytes; pack files may be at most {} bytes",
                    metadata.len(),
                    MAX_FILE_BYTES
                ),
            )
            .at(whole_file())
            .hint("pack files describe forms, flows and rules; keep data out of the pack folder"));
        }
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        // `take` guards against a file that grows between the size check and the read.
        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|error| {
            Diagnostic::new(Code::Unreadable, format!("cannot read {name}: {}", io_reason(&error)))
                .at(whole_file())
        })?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Diagnostic::new(
                Code::TooLarge,
                format!("{name} is larger than {MAX_FILE_BYTES} bytes"),
            )
            .at(whole_file()));
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SourceFile::new(name, path, text)),
            Err(error) => {
                let valid_up_to = error.utf8_error().valid_up_to();
                let prefix = String::from_utf8_lossy(&error.as_bytes()[..valid_up_to]).into_owned();
                let source = SourceFile::new(name.clone(), path, prefix);
                let location = source.location(valid_up_to..valid_up_to);
                Err(Diagnostic::new(
                    Code::NotUtf8,
                    format!("the file is not UTF-8: invalid byte at offset {valid_up_to}"),
                )
                .at(Some(location))
                .hint("save the file as UTF-8 (editors on Windows may default to GBK)"))
            }
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next - 1,
        };
        let line_start = self.line_starts[line];
        let column = self.text.get(line_start..offset).map_or(0, |text| text.chars().count());
        (line as u32 + 1, column as u32 + 1)
    }

    /// The byte offset of a 1-based line and a 0-based column counted in characters.
    pub fn offset(&self, line: usize, column_chars: usize) -> usize {
        let Some(&line_start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[line_start..];
        let within = rest.char_indices().nth(column_chars).map_or(rest.len(), |(index, _)| index);
        line_start + within
    }

    /// The location of a byte range.
    pub fn location(&self, range: Range<usize>) -> Location {
        let start = floor_char_boundary(&self.text, range.start);
        let end = floor_char_boundary(&self.text, range.end.max(start));
        let (line, column) = self.line_column(start);
        let (end_line, end_column) = self.line_column(end);
        Location { file: self.name.clone(), line, column, end_line, end_column, start, end }
    }

    /// The location of the whole file's first line, for problems with the file as a whole.
    pub fn start_location(&self) -> Location {
        let first_line_end = self.text.find('\n').unwrap_or(self.text.len());
        self.location(0..first_line_end)
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// The path as people expect to read it: relative paths stay relative, with `/`.
pub(crate) fn display_path(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}

fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let source = SourceFile::new("t", "t", "名称: 商机\nb: x\n".to_owned());
        let offset = source.text.find('商').expect("present");
        assert_eq!(source.line_column(offset), (1, 5));
        assert_eq!(source.offset(1, 4), offset);
        assert_eq!(source.line_column(source.text.find('b').expect("present")), (2, 1));
    }

    #[test]
    fn a_folder_read_as_a_file_is_an_unreadable_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = SourceFile::read(dir.path()).expect_err("a folder is not a file");
        assert_eq!(error.code, Code::Unreadable);
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.flow.yaml");
        std::fs::write(&path, b"ok: 1\nbad: \xff\n").expect("write");
        let error = SourceFile::read(&path).expect_err("not utf-8");
        assert_eq!(error.code, Code::NotUtf8);
        let location = error.location.expect("placed");
        assert_eq!((location.line, location.column), (2, 6));
    }
}
