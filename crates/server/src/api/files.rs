//! Uploaded files: the needs survey, the scanned contract, photos of a broken machine.
//!
//! A file is stored under a generated random id in `<data>/files/<id>` (written to a
//! temporary file, flushed to disk, then renamed, so a file is either whole or not
//! there) and described by an internal record `_file/<id>` (uploader, name, content
//! type, size, SHA-256, time), written through the store like credentials are. Only
//! the kinds in [`KINDS`] are accepted, and the first bytes must match the declared
//! kind (a "PDF" that is really a web page is refused), up to [`MAX_UPLOAD_BYTES`].
//!
//! Records hold files through their `x-file` fields: one file id, or a list of ids
//! for a field whose `items` carry `x-file`. The engine indexes those ids, so the
//! records holding a file are found at once. A file can be put in a field, and
//! downloaded, by its uploader and by whoever may read a record that holds it
//! ([`may_see`]); to everyone else it does not exist (404), like a record they may not
//! see.
//!
//! [`store_upload`] is the one way files come in: `POST /api/files` streams the raw
//! body into it, and HTML forms can stream a multipart field into it the same way.

use std::fmt::Display;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path as FsPath, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{
    CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_core::Stream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use stagecraft_model::{FieldName, FileUpload, Id};
use stagecraft_pack::CompiledForm;
use stagecraft_runtime::{FieldProblem, Record};
use stagecraft_store::{Commit, IndexValue, Page, RecordId, RecordWrite};

use super::{blocking, field_problem, query};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// The largest file accepted: 50 MiB, the largest `x-file.max_size` of the shipped
/// packs (a scanned contract). A field may set a smaller limit of its own.
pub(crate) const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;
/// The internal form of file descriptions; no pack's form, so never served as a record.
pub(crate) const FILE_FORM: &str = "_file";
/// The longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Bytes gathered before a write to disk.
const WRITE_BATCH: usize = 256 * 1024;
/// Bytes read from disk at a time when a file is downloaded.
const READ_CHUNK: usize = 64 * 1024;
/// The field limit when `x-file` names none (as the pack format says).
const DEFAULT_FIELD_LIMIT: &str = "20MB";

// ----- kinds of files ---------------------------------------------------------------

/// How the first bytes of a kind of file look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Looks {
    Pdf,
    Png,
    Jpeg,
    Webp,
    /// ZIP archives, and the Office formats that are ZIP archives (docx, xlsx, pptx).
    Zip,
    /// UTF-8 text without NUL bytes.
    Text,
}

/// A kind of file that may be uploaded.
#[derive(Debug)]
pub(crate) struct Kind {
    /// The content type, as stored and served.
    pub(crate) content_type: &'static str,
    /// What people call it.
    label: &'static str,
    /// The usual file name extension, for files sent without a name.
    extension: &'static str,
    looks: Looks,
}

/// Every kind of file accepted.
pub(crate) const KINDS: &[Kind] = &[
    Kind { content_type: "application/pdf", label: "PDF", extension: "pdf", looks: Looks::Pdf },
    Kind { content_type: "image/png", label: "PNG image", extension: "png", looks: Looks::Png },
    Kind { content_type: "image/jpeg", label: "JPEG image", extension: "jpg", looks: Looks::Jpeg },
    Kind { content_type: "image/webp", label: "WebP image", extension: "webp", looks: Looks::Webp },
    Kind { content_type: "text/plain", label: "plain text", extension: "txt", looks: Looks::Text },
    Kind { content_type: "text/csv", label: "CSV", extension: "csv", looks: Looks::Text },
    Kind {
        content_type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        label: "Word document (.docx)",
        extension: "docx",
        looks: Looks::Zip,
    },
    Kind {
        content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        label: "Excel workbook (.xlsx)",
        extension: "xlsx",
        looks: Looks::Zip,
    },
    Kind {
        content_type: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        label: "PowerPoint presentation (.pptx)",
        extension: "pptx",
        looks: Looks::Zip,
    },
    Kind {
        content_type: "application/zip",
        label: "ZIP archive",
        extension: "zip",
        looks: Looks::Zip,
    },
];

/// Other names clients use for accepted kinds.
const ALIASES: &[(&str, &str)] = &[
    ("image/jpg", "image/jpeg"),
    ("image/pjpeg", "image/jpeg"),
    ("application/x-pdf", "application/pdf"),
    ("application/x-zip-compressed", "application/zip"),
];

fn accepted_list() -> String {
    KINDS.iter().map(|kind| kind.content_type).collect::<Vec<_>>().join(", ")
}

/// The kind a `Content-Type` declares, or why it is refused (415).
pub(crate) fn declared_kind(content_type: Option<&str>) -> Result<&'static Kind, Problem> {
    let Some(content_type) = content_type.map(str::trim).filter(|text| !text.is_empty()) else {
        return Err(Problem::unsupported_file(format!(
            "send the file's type as the content type, one of: {}",
            accepted_list()
        )));
    };
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let essence = ALIASES
        .iter()
        .find(|(alias, _)| *alias == essence)
        .map_or(essence.as_str(), |(_, canonical)| canonical);
    let Some(kind) = KINDS.iter().find(|kind| kind.content_type == essence) else {
        return Err(Problem::unsupported_file(format!(
            "files of type `{essence}` are not accepted; send one of: {}",
            accepted_list()
        )));
    };
    if kind.looks == Looks::Text {
        for parameter in parts {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            let value = value.trim().trim_matches('"').to_ascii_lowercase();
            if name.trim().eq_ignore_ascii_case("charset")
                && !matches!(value.as_str(), "utf-8" | "utf8" | "us-ascii")
            {
                return Err(Problem::unsupported_file(format!(
                    "text files are kept as UTF-8, and this one says `charset={value}`; save it as \
                     UTF-8 (in Excel: \"CSV UTF-8\") and send it again"
                )));
            }
        }
    }
    Ok(kind)
}

/// What the first bytes of a file say it is, if they say anything.
fn looks_of(head: &[u8]) -> Option<Looks> {
    if head.starts_with(b"%PDF-") {
        Some(Looks::Pdf)
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Looks::Png)
    } else if head.starts_with(b"\xFF\xD8\xFF") {
        Some(Looks::Jpeg)
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some(Looks::Webp)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Looks::Zip)
    } else {
        None
    }
}

/// The bytes [`looks_of`] needs.
const HEAD_BYTES: usize = 12;

/// Checks, while a file streams in, that it is what it was declared to be.
#[derive(Debug)]
struct Sniffer {
    kind: &'static Kind,
    head: Vec<u8>,
    /// The start of a UTF-8 character cut by the end of the last chunk.
    carry: Vec<u8>,
    /// The offset of the first byte after those checked as text.
    offset: u64,
    /// Where the text stopped being UTF-8 without NUL bytes.
    not_text_at: Option<u64>,
}

impl Sniffer {
    fn new(kind: &'static Kind) -> Self {
        Sniffer { kind, head: Vec::new(), carry: Vec::new(), offset: 0, not_text_at: None }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.head.len() < HEAD_BYTES {
            let wanted = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..wanted]);
        }
        if self.kind.looks != Looks::Text || self.not_text_at.is_some() {
            return;
        }
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let (valid, cut) = match std::str::from_utf8(&data) {
            Ok(_) => (data.len(), false),
            Err(error) => (error.valid_up_to(), error.error_len().is_none()),
        };
        if let Some(nul) = data[..valid].iter().position(|byte| *byte == 0) {
            self.not_text_at = Some(self.offset + nul as u64);
        } else if valid < data.len() && !cut {
            self.not_text_at = Some(self.offset + valid as u64);
        } else {
            self.carry = data[valid..].to_vec();
            self.offset += valid as u64;
        }
    }

    /// Whether the whole file was what it was declared to be; the message says why
    /// not, and what it looks like instead.
    fn finish(self) -> Result<(), String> {
        let kind = self.kind;
        let seen = looks_of(&self.head)
            .and_then(|looks| KINDS.iter().find(|other| other.looks == looks))
            .map(|other| format!("it looks like a {} (`{}`)", other.label, other.content_type));
        if kind.looks == Looks::Text {
            let not_text_at =
                self.not_text_at.or_else(|| (!self.carry.is_empty()).then_some(self.offset));
            return match not_text_at {
                None => Ok(()),
                Some(at) => Err(format!(
                    "the file was sent as `{}` but is not UTF-8 text (byte {at}){}; save it as \
                     UTF-8 (in Excel: \"CSV UTF-8\"), or send its real content type",
                    kind.content_type,
                    seen.map(|seen| format!("; {seen}")).unwrap_or_default(),
                )),
            };
        }
        if looks_of(&self.head) == Some(kind.looks) {
            return Ok(());
        }
        Err(format!(
            "the file was sent as `{}` ({}) but its first bytes are not those of a {}; {}",
            kind.content_type,
            kind.label,
            kind.label,
            match seen {
                Some(seen) => format!("{seen}: send that content type"),
                None => format!("it is none of the accepted kinds ({})", accepted_list()),
            }
        ))
    }
}

// ----- storing --------------------------------------------------------------------------

/// A stored file, as `POST /api/files` answers it and as its `_file` record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct FileInfo {
    /// The generated id (32 hexadecimal digits): put it in a file field of a record.
    pub(crate) id: String,
    /// The file name, as given (without folders), or `upload.<extension>`.
    pub(crate) name: String,
    /// The content type, checked against the file's first bytes.
    pub(crate) content_type: String,
    /// The size in bytes.
    pub(crate) size: u64,
    /// The SHA-256 of the content, as 64 hexadecimal digits.
    pub(crate) sha256: String,
    /// Who uploaded it.
    pub(crate) uploader: String,
    /// When (Unix milliseconds, on the engine's clock).
    pub(crate) uploaded_at: i64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// 16 random bytes from the operating system, as 32 hexadecimal digits.
fn new_file_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Whether `id` has the shape of a generated file id (so it is safe in a path).
fn is_file_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

fn file_record_id(id: &str) -> RecordId {
    RecordId::new(format!("{FILE_FORM}/{id}"))
}

/// The name to keep: the last part of a path, without control characters, trimmed.
fn clean_name(given: Option<&str>, kind: &Kind) -> Result<String, Problem> {
    let given = given.unwrap_or_default();
    let last = given.rsplit(['/', '\\']).next().unwrap_or_default();
    let name: String = last.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Problem::bad_request(format!(
            "the file name is longer than {MAX_NAME_CHARS} characters; shorten it"
        )));
    }
    if name.is_empty() || name == "." || name == ".." {
        return Ok(format!("upload.{}", kind.extension));
    }
    Ok(name.to_owned())
}

/// A file being written: removed again unless it was kept.
#[derive(Debug)]
struct Pending {
    file: File,
    temporary: PathBuf,
    kept: bool,
}

impl Pending {
    fn create(folder: &FsPath, id: &str) -> Result<Pending, Problem> {
        std::fs::create_dir_all(folder).map_err(|error| {
            Problem::failure(&format!("cannot create {}: {error}", folder.display()))
        })?;
        let temporary = folder.join(format!(".{id}.part"));
        let file =
            File::options().write(true).create_new(true).open(&temporary).map_err(|error| {
                Problem::failure(&format!("cannot create {}: {error}", temporary.display()))
            })?;
        Ok(Pending { file, temporary, kept: false })
    }

    fn write(mut self, bytes: &[u8]) -> Result<Pending, Problem> {
        self.file.write_all(bytes).map_err(|error| {
            Problem::failure(&format!("cannot write {}: {error}", self.temporary.display()))
        })?;
        Ok(self)
    }

    /// Flushes the file to disk and gives it its final name (durably: the folder is
    /// flushed too, where the system allows).
    fn keep(mut self, destination: &FsPath) -> Result<(), Problem> {
        let failed = |error: std::io::Error| {
            Problem::failure(&format!("cannot store {}: {error}", destination.display()))
        };
        self.file.sync_all().map_err(failed)?;
        std::fs::rename(&self.temporary, destination).map_err(failed)?;
        self.kept = true;
        #[cfg(unix)]
        if let Some(folder) = destination.parent() {
            File::open(folder).and_then(|folder| folder.sync_all()).map_err(failed)?;
        }
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.kept {
            // Best effort: a leftover `.part` file is never served and can be deleted.
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// The next item of a stream.
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// Stores an uploaded file and its description, and returns the description.
///
/// `content_type` is what the client declared (a `Content-Type` header or the type of
/// a multipart part) and must name one of [`KINDS`]; `name` is the client's file name
/// (folders are dropped); `body` streams the bytes (an axum body's data stream, or a
/// multipart field, which is a stream of the same kind). Nothing is kept unless the
/// whole file arrived, is at most [`MAX_UPLOAD_BYTES`], is not empty and matches the
/// declared kind. Answers 413, 415 or 400 problems for the caller's mistakes.
pub(crate) async fn store_upload<S, E>(
    state: &AppState,
    uploader: &str,
    name: Option<&str>,
    content_type: Option<&str>,
    mut body: S,
) -> Result<FileInfo, Problem>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let kind = declared_kind(content_type)?;
    let name = clean_name(name, kind)?;
    let id = new_file_id();
    let folder = state.files_dir().to_owned();
    let mut pending = {
        let (folder, id) = (folder.clone(), id.clone());
        blocking(move || Pending::create(&folder, &id)).await?
    };
    let mut hasher = Sha256::new();
    let mut sniffer = Sniffer::new(kind);
    let mut size: u64 = 0;
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    while let Some(chunk) = next(&mut body).await {
        let chunk = chunk.map_err(|error| {
            Problem::bad_request(format!("the upload could not be read to its end: {error}"))
        })?;
        size += chunk.len() as u64;
        if size > MAX_UPLOAD_BYTES as u64 {
            return Err(Problem::too_large(MAX_UPLOAD_BYTES));
        }
        hasher.update(&chunk);
        sniffer.feed(&chunk);
        batch.extend_from_slice(&chunk);
        if batch.len() >= WRITE_BATCH {
            let bytes = std::mem::replace(&mut batch, Vec::with_capacity(WRITE_BATCH));
            pending = blocking(move || pending.write(&bytes)).await?;
        }
    }
    if size == 0 {
        return Err(Problem::bad_request("the file is empty; send its content as the body"));
    }
    sniffer.finish().map_err(Problem::unsupported_file)?;
    let info = FileInfo {
        id: id.clone(),
        name,
        content_type: kind.content_type.to_owned(),
        size,
        sha256: hex(&hasher.finalize()),
        uploader: uploader.to_owned(),
        uploaded_at: state.engine().now(),
    };
    let state = state.clone();
    let stored = info.clone();
    blocking(move || {
        let destination = folder.join(&id);
        pending.write(&batch)?.keep(&destination)?;
        let value = serde_json::to_value(&stored).map_err(|error| Problem::failure(&error))?;
        let mut commit = Commit::at(stored.uploaded_at);
        commit.records.push(
            RecordWrite::create(file_record_id(&id), FILE_FORM, value)
                .indexed("uploader", stored.uploader.as_str()),
        );
        if let Err(error) = state.engine().store().commit(commit) {
            // Without its description the file is unreachable; do not keep it.
            let _ = std::fs::remove_file(&destination);
            return Err(Problem::failure(&error));
        }
        Ok(())
    })
    .await?;
    Ok(info)
}

// ----- who may see a file ------------------------------------------------------------

/// The description of file `id`, if there is one. Blocking.
pub(crate) fn file_info(state: &AppState, id: &str) -> Result<Option<FileInfo>, Problem> {
    if !is_file_id(id) {
        return Ok(None);
    }
    let Some(stored) = state
        .engine()
        .store()
        .record(&file_record_id(id))
        .map_err(|error| Problem::failure(&error))?
        .filter(|stored| stored.form == FILE_FORM)
    else {
        return Ok(None);
    };
    serde_json::from_value(stored.value)
        .map(Some)
        .map_err(|error| Problem::failure(&format!("the description of file {id}: {error}")))
}

/// Whether `user` may see a file: they uploaded it, or they may read a record that
/// holds it in a file field. Blocking.
pub(crate) fn may_see(state: &AppState, user: &str, file: &FileInfo) -> Result<bool, Problem> {
    if file.uploader == user {
        return Ok(true);
    }
    let store = state.engine().store();
    let definitions = state.engine().definitions();
    let value = IndexValue::from(file.id.as_str());
    for (form, compiled) in &definitions.forms {
        for (field, info) in &compiled.fields {
            if !info.file {
                continue;
            }
            let mut page = Page::first(100);
            loop {
                let ids = store
                    .records_by_index(form.as_str(), field.as_str(), &value, page.clone())
                    .map_err(|error| Problem::failure(&error))?;
                for id in &ids {
                    let Some(stored) =
                        store.record(id).map_err(|error| Problem::failure(&error))?
                    else {
                        continue;
                    };
                    let Ok(record) = serde_json::from_value::<Record>(stored.value) else {
                        continue;
                    };
                    if state.may_read(user, &record) {
                        return Ok(true);
                    }
                }
                match ids.last() {
                    Some(last) if ids.len() == page.limit => {
                        page = Page::after(last.clone(), page.limit);
                    }
                    _ => break,
                }
            }
        }
    }
    Ok(false)
}

/// The file `id` if `user` may see it; else the same 404 as for no file at all.
fn visible_file(state: &AppState, user: &str, id: &str) -> Result<FileInfo, Problem> {
    let missing = || Problem::not_found(format!("there is no file {id}"));
    let file = file_info(state, id)?.ok_or_else(missing)?;
    if may_see(state, user, &file)? { Ok(file) } else { Err(missing()) }
}

// ----- file fields of records -----------------------------------------------------------

/// The `x-file` settings of a field (on the field, or on its `items`).
fn field_rules(form: &CompiledForm, field: &str) -> Option<(FileUpload, bool)> {
    let property = form.schema.get("properties")?.get(field)?;
    if let Some(rules) = property.get("x-file") {
        return serde_json::from_value(rules.clone()).ok().map(|rules| (rules, false));
    }
    let rules = property.get("items")?.get("x-file")?;
    serde_json::from_value(rules.clone()).ok().map(|rules| (rules, true))
}

/// `20MB`, `500KB` in bytes (KB and MB of 1024).
fn size_limit(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let number: u64 = number.parse().ok()?;
    match unit {
        "KB" => number.checked_mul(1024),
        "MB" => number.checked_mul(1024 * 1024),
        _ => None,
    }
}

/// Whether a content type is in an `accept` list (`image/*` takes every image).
fn accepts(accept: &[String], content_type: &str) -> bool {
    accept.is_empty()
        || accept.iter().any(|pattern| match pattern.strip_suffix("/*") {
            Some(prefix) => content_type.split('/').next() == Some(prefix),
            None => pattern.eq_ignore_ascii_case(content_type),
        })
}

/// What is wrong with the file fields of a new or changed record: each id must name
/// a file the caller may see (else it reads as no file at all), of a type the field
/// accepts and within the field's size limit. `null` clears a field and is left to the
/// form. Blocking.
pub(crate) fn file_problems(
    state: &AppState,
    user: &str,
    form: &str,
    fields: &Map<String, Value>,
) -> Vec<FieldProblem> {
    let definitions = state.engine().definitions();
    let Some(compiled) = definitions.forms.get(&Id::from(form)) else { return Vec::new() };
    let mut problems = Vec::new();
    for (field, value) in fields {
        let is_file = compiled.fields.get(&FieldName(field.clone())).is_some_and(|info| info.file);
        let Some((rules, many)) = is_file.then(|| field_rules(compiled, field)).flatten() else {
            continue;
        };
        let pointer = format!("/{field}");
        let ids: Vec<(String, &Value)> = match (value, many) {
            (Value::Null, _) => continue,
            (Value::Array(items), true) => items
                .iter()
                .enumerate()
                .map(|(position, item)| (format!("{pointer}/{position}"), item))
                .collect(),
            (_, true) => {
                problems.push(field_problem(
                    &pointer,
                    "此栏应为已上传文件编号的列表（先用 POST /api/files 上传文件）",
                    "this field holds a list of ids of uploaded files (upload each with POST /api/files first)",
                ));
                continue;
            }
            (_, false) => vec![(pointer, value)],
        };
        for (pointer, item) in ids {
            if let Some(problem) = file_problem(state, user, &rules, &pointer, item) {
                problems.push(problem);
            }
        }
    }
    problems
}

fn file_problem(
    state: &AppState,
    user: &str,
    rules: &FileUpload,
    pointer: &str,
    value: &Value,
) -> Option<FieldProblem> {
    let Value::String(id) = value else {
        return Some(field_problem(
            pointer,
            "此栏应为已上传文件的编号（先用 POST /api/files 上传文件）",
            "this field holds the id of an uploaded file (upload it with POST /api/files first)",
        ));
    };
    let file = match visible_file(state, user, id) {
        Ok(file) => file,
        Err(_) => {
            return Some(field_problem(
                pointer,
                format!("找不到该文件（{id}），请重新上传"),
                format!("there is no file {id}; upload it again"),
            ));
        }
    };
    if !accepts(&rules.accept, &file.content_type) {
        let accepted = rules.accept.join(", ");
        return Some(field_problem(
            pointer,
            format!("此栏只接受以下类型的文件：{accepted}；该文件是 {}", file.content_type),
            format!("this field takes files of type {accepted}; this one is {}", file.content_type),
        ));
    }
    let limit_text = rules.max_size.as_deref().unwrap_or(DEFAULT_FIELD_LIMIT);
    if size_limit(limit_text).is_some_and(|limit| file.size > limit) {
        return Some(field_problem(
            pointer,
            format!("文件超过此栏的大小上限 {limit_text}"),
            format!("the file is larger than this field's limit of {limit_text}"),
        ));
    }
    None
}

// ----- endpoints ----------------------------------------------------------------------------

/// The query of `POST /api/files`.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// The file name (folders are dropped; at most 200 characters); without it the file
    /// is called `upload.<extension>`.
    name: Option<String>,
}

impl UploadQuery {
    fn parse(raw: Option<&str>) -> Result<Self, Problem> {
        let mut query = UploadQuery::default();
        for (key, value) in query::pairs(raw)? {
            match key.as_str() {
                "name" if query.name.is_none() => query.name = Some(value),
                "name" => return Err(Problem::bad_request("give the parameter `name` once")),
                other => {
                    return Err(Problem::bad_request(format!(
                        "`{other}` is not a parameter of this endpoint; it takes `name`"
                    )));
                }
            }
        }
        Ok(query)
    }
}

/// Uploads a file: the raw bytes as the body, with the file's own `Content-Type`.
/// Accepted: PDF, PNG, JPEG, WebP, UTF-8 plain text and CSV, Word, Excel and
/// PowerPoint (docx, xlsx, pptx) and ZIP, up to 50 MiB; the first bytes must match
/// the declared type. Put the answered `id` in a file field of a record.
#[utoipa::path(post, path = "/api/files", tag = "files",
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/pdf",
        description = "The file's bytes, sent with the file's own content type (any accepted type, not only PDF)"),
    responses(
        (status = 201, description = "Stored; `Location` names the download", body = FileInfo),
        (status = 400, description = "An empty file, a bad name or parameter, or a body that broke off", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 50 MiB", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "A type that is not accepted, or content that does not match the declared type", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let query = UploadQuery::parse(raw.as_deref())?;
    let declared_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_UPLOAD_BYTES as u64) {
        return Err(Problem::too_large(MAX_UPLOAD_BYTES));
    }
    let content_type = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok());
    let info = store_upload(
        &state,
        &caller.user,
        query.name.as_deref(),
        content_type,
        body.into_data_stream(),
    )
    .await?;
    let location = format!("/api/files/{}", info.id);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(info)).into_response())
}

/// The description of a file (name, type, size, checksum, uploader), for its uploader
/// and for whoever may read a record that holds it.
#[utoipa::path(get, path = "/api/files/{id}/info", tag = "files",
    params(("id" = String, Path, description = "The file id")),
    responses(
        (status = 200, description = "The description", body = FileInfo),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such file that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FileInfo>, Problem> {
    blocking(move || visible_file(&state, &caller.user, &id).map(Json)).await
}

/// The bytes of a downloaded file.
struct Chunks(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// `attachment` with the name: an ASCII stand-in for old clients, and the real name
/// percent-encoded as UTF-8 (RFC 6266, RFC 8187).
fn content_disposition(name: &str) -> HeaderValue {
    /// RFC 8187 `attr-char` keeps letters, digits and ``!#$&+-.^_`|~``.
    const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let value = format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ENCODED)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Downloads a file, as an attachment with its stored type; for its uploader and for
/// whoever may read a record that holds it. Everyone else gets 404.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files",
    params(("id" = String, Path, description = "The file id")),
    responses(
        (status = 200, description = "The file's bytes, with `Content-Disposition: attachment`", content_type = "application/octet-stream"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such file that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (file, opened) = blocking(move || {
        let file = visible_file(&state, &caller.user, &id)?;
        let path = state.files_dir().join(&file.id);
        let opened = File::open(&path).map_err(|error| {
            Problem::failure(&format!(
                "the content of file {} ({}): {error}",
                file.id,
                path.display()
            ))
        })?;
        Ok((file, opened))
    })
    .await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut opened = opened;
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            match opened.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    let chunk = Bytes::copy_from_slice(&buffer[..read]);
                    // A closed channel means the client went away.
                    if sender.blocking_send(Ok(chunk)).is_err() {
                        break;
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    break;
                }
            }
        }
    });
    let content_type = if file.content_type.starts_with("text/") {
        format!("{}; charset=utf-8", file.content_type)
    } else {
        file.content_type.clone()
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(file.size));
    headers.insert(CONTENT_DISPOSITION, content_disposition(&file.name));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok((headers, Body::from_stream(Chunks(receiver))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(content_type: &str, chunks: &[&[u8]]) -> Result<(), String> {
        let kind = declared_kind(Some(content_type)).expect("an accepted type");
        let mut sniffer = Sniffer::new(kind);
        for chunk in chunks {
            sniffer.feed(chunk);
        }
        sniffer.finish()
    }

    #[test]
    fn first_bytes_must_match_the_declared_type() {
        assert_eq!(sniff("application/pdf", &[b"%PDF-1.7\n", b"rest"]), Ok(()));
        assert_eq!(sniff("application/pdf", &[b"%P", b"DF-1.4"]), Ok(()), "split head");
        assert_eq!(sniff("image/png", &[b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"]), Ok(()));
        assert_eq!(sniff("image/jpg", &[b"\xFF\xD8\xFF\xE0\0\x10JFIF"]), Ok(()));
        assert_eq!(sniff("image/webp", &[b"RIFF\x24\0\0\0WEBPVP8 "]), Ok(()));
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        assert_eq!(sniff(docx, &[b"PK\x03\x04\x14\0"]), Ok(()));
        assert_eq!(sniff("application/zip; name=x.zip", &[b"PK\x05\x06"]), Ok(()));
        let html = sniff("application/pdf", &[b"<html><script>alert(1)</script>"]);
        assert!(html.is_err_and(|why| why.contains("none of the accepted kinds")));
        let png_as_pdf = sniff("application/pdf", &[b"\x89PNG\r\n\x1a\n"]).unwrap_err();
        assert!(png_as_pdf.contains("`image/png`"), "{png_as_pdf}");
        assert!(sniff("image/png", &[b"PK\x03\x04"]).is_err());
        assert!(sniff("image/webp", &[b"RIFF\x24\0\0\0WAVEfmt "]).is_err());
    }

    #[test]
    fn text_must_be_utf8_without_nul_bytes() {
        let csv = "客户,金额\n苏州精工,1200000\n".as_bytes();
        assert_eq!(sniff("text/csv", &[csv]), Ok(()));
        // A character cut between two chunks is fine; one cut at the end is not.
        assert_eq!(sniff("text/csv; charset=UTF-8", &[&csv[..1], &csv[1..4], &csv[4..]]), Ok(()));
        assert!(sniff("text/plain", &[&csv[..2]]).is_err());
        let gbk: &[u8] = b"\xbf\xcd\xbb\xa7,1\n";
        let why = sniff("text/csv", &[b"name,amount\n", gbk]).unwrap_err();
        assert!(why.contains("byte 12") && why.contains("CSV UTF-8"), "{why}");
        assert!(sniff("text/plain", &[b"abc\0def"]).is_err());
        assert!(sniff("text/plain", &[b"%PDF-1.4 \xff\xfe"]).unwrap_err().contains("PDF"));
    }

    #[test]
    fn only_accepted_types_are_declared() {
        for refused in [
            None,
            Some(""),
            Some("text/html"),
            Some("image/svg+xml"),
            Some("application/octet-stream"),
        ] {
            assert!(declared_kind(refused).is_err(), "{refused:?}");
        }
        assert!(declared_kind(Some("text/csv; charset=gbk")).is_err());
        assert!(declared_kind(Some("TEXT/PLAIN; charset=\"utf-8\"")).is_ok());
        assert_eq!(
            declared_kind(Some("application/x-zip-compressed")).map(|kind| kind.content_type).ok(),
            Some("application/zip")
        );
    }

    #[test]
    fn names_lose_folders_and_control_characters() {
        let pdf = &KINDS[0];
        assert_eq!(clean_name(Some("C:\\扫描\\合同.pdf"), pdf).ok().as_deref(), Some("合同.pdf"));
        assert_eq!(clean_name(Some("../../etc/passwd"), pdf).ok().as_deref(), Some("passwd"));
        assert_eq!(clean_name(Some(" a\r\nb.pdf "), pdf).ok().as_deref(), Some("ab.pdf"));
        assert_eq!(clean_name(None, pdf).ok().as_deref(), Some("upload.pdf"));
        assert_eq!(clean_name(Some("dir/"), pdf).ok().as_deref(), Some("upload.pdf"));
        assert!(clean_name(Some(&"名".repeat(201)), pdf).is_err());
    }

    #[test]
    fn field_rules_read_sizes_and_wildcards() {
        assert_eq!(size_limit("20MB"), Some(20 * 1024 * 1024));
        assert_eq!(size_limit("500KB"), Some(500 * 1024));
        assert_eq!(size_limit("MB"), None);
        assert_eq!(size_limit("5GB"), None);
        let accept = vec!["application/pdf".to_owned(), "image/*".to_owned()];
        assert!(accepts(&accept, "image/webp"));
        assert!(accepts(&accept, "application/pdf"));
        assert!(!accepts(&accept, "text/plain"));
        assert!(accepts(&[], "text/plain"));
    }

    #[test]
    fn file_names_are_sent_in_both_forms() {
        let header = content_disposition("合同 \"终版\".pdf");
        assert_eq!(
            header.to_str().ok(),
            Some(
                "attachment; filename=\"__ ____.pdf\"; filename*=UTF-8''%E5%90%88%E5%90%8C%20%22%E7%BB%88%E7%89%88%22.pdf"
            )
        );
        assert!(is_file_id(&new_file_id()));
        assert!(!is_file_id("../../../../etc/passwd"));
    }
}
