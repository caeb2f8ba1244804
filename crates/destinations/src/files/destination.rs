//! The files destination: writing a table's files and the state file, and reading them back.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::arrow_rows::{SYNCED_AT, Slot, record_batch_of, require_primary_key, synced_at};
use async_trait::async_trait;
use chrono::Utc;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use pipedrive_engine::destination::columns::{DELETED, DELETED_AT};
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{
    Batch, Destination, DestinationError, Missing, Present, RunRecord, StreamState, SyncState,
    TableRef,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::Format;
use super::holdings::{Followed, Holdings};
use super::read::{file_columns, read_file, read_keys, table_files};

/// Marks a row that left its table without being deleted in Pipedrive: a record the stream's
/// `filter` now rejects, or a child its parent no longer has. Readers drop the key when its
/// latest row has it.
pub const REMOVED: &str = "_removed";

/// The state file, at the top of the directory.
pub const STATE_FILE: &str = "_pipedrive_sync_state.json";

/// One JSON line per sync run, at the top of the directory.
pub const RUNS_FILE: &str = "_sync_runs.jsonl";

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl.gz",
        }
    }
}

/// The state file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    streams: SyncState,
    /// A full-refresh swap whose state is already saved: rolled forward at open if a crash
    /// interrupted it, so the new state never pairs with the old directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replacing: Option<Replacing>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Replacing {
    staging: String,
    target: String,
    /// Where the target's old directory goes until the swap is done.
    old: String,
}

/// Held by the run writing a directory, so a second run is refused rather than interleaving
/// its files and state with the first.
pub const LOCK_FILE: &str = ".pipedrive-sync.lock";

pub struct Files {
    pub(super) dir: PathBuf,
    /// The directory's lock, released when the destination is dropped (or the process dies).
    _lock: File,
    format: Format,
    /// Names this process's files: sortable, so file names sort in write order.
    run_id: String,
    seq: u64,
    state: SyncState,
    /// Per table, what its files hold now, read from them the first time a run removes rows
    /// there and kept up to date by every write after.
    pub(super) holdings: std::collections::HashMap<String, Holdings>,
    /// Per table without holdings, whether this run followed every row written to it.
    pub(super) followed: std::collections::HashMap<String, Followed>,
}

pub(super) fn io_fail(context: String) -> impl FnOnce(std::io::Error) -> DestinationError {
    move |error| DestinationError::new(format!("files: {context}: {error}"))
}

/// Makes renames and creations inside `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), DestinationError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_fail(format!("syncing directory {}", dir.display())))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `path` through a temporary name in the same directory: readers and a crash see the
/// old file or the complete new one.
fn write_atomically(
    path: &Path,
    body: impl FnOnce(File) -> Result<File, DestinationError>,
) -> Result<(), DestinationError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = dir.join(format!(".{name}.tmp"));
    let file =
        File::create(&temporary).map_err(io_fail(format!("creating {}", temporary.display())))?;
    let file = body(file)?;
    file.sync_all()
        .map_err(io_fail(format!("syncing {}", temporary.display())))?;
    drop(file);
    std::fs::rename(&temporary, path)
        .map_err(io_fail(format!("renaming to {}", path.display())))?;
    sync_dir(dir)
}

/// Creates `dir` (and makes its entry durable) if it does not exist yet.
fn ensure_dir(dir: &Path) -> Result<(), DestinationError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io_fail(format!("creating {}", dir.display())))?;
    sync_dir(dir.parent().unwrap_or(Path::new(".")))
}

/// Takes the directory's lock, or says which run holds it.
fn lock(dir: &Path) -> Result<File, DestinationError> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_fail(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DestinationError::new(format!(
            "files: another pipedrive-sync run is writing to {} (it holds {}); wait for it to finish, or give this run another target.path",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(io_fail(format!("locking {}", path.display()))(error))
        }
    }
}

impl Files {
    /// Opens (creating it if needed) the directory, reads its state and finishes a swap a
    /// crash interrupted.
    pub fn open(dir: &Path, format: Format) -> Result<Files, DestinationError> {
        ensure_dir(dir)?;
        let lock = lock(dir)?;
        let path = dir.join(STATE_FILE);
        let file: StateFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                DestinationError::new(format!("files: {} is unreadable: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(io_fail(format!("reading {}", path.display()))(e)),
        };
        let mut files = Files {
            dir: dir.to_owned(),
            _lock: lock,
            format,
            run_id: Utc::now().format("%Y%m%dT%H%M%S%6fZ").to_string(),
            seq: 0,
            state: file.streams,
            holdings: Default::default(),
            followed: Default::default(),
        };
        if let Some(replacing) = file.replacing {
            files.finish_replace(&replacing)?;
        }
        Ok(files)
    }

    fn save_state(
        &self,
        streams: &SyncState,
        replacing: Option<&Replacing>,
    ) -> Result<(), DestinationError> {
        let json = serde_json::to_vec_pretty(&StateFile {
            streams: streams.clone(),
            replacing: replacing.cloned(),
        })
        .map_err(|e| DestinationError::new(e.to_string()))?;
        write_atomically(&self.dir.join(STATE_FILE), |mut file| {
            file.write_all(&json)
                .map_err(io_fail("writing the state file".to_owned()))?;
            Ok(file)
        })
    }

    /// Renames target → old and staging → target (each step skipped when already done),
    /// clears the intent and removes the old directory.
    fn finish_replace(&mut self, replacing: &Replacing) -> Result<(), DestinationError> {
        let staging = self.dir.join(&replacing.staging);
        let target = self.dir.join(&replacing.target);
        let old = self.dir.join(&replacing.old);
        if staging.is_dir() {
            if target.is_dir() {
                if old.exists() {
                    std::fs::remove_dir_all(&target)
                        .map_err(io_fail(format!("removing {}", target.display())))?;
                } else {
                    std::fs::rename(&target, &old)
                        .map_err(io_fail(format!("moving {} aside", target.display())))?;
                }
            }
            std::fs::rename(&staging, &target)
                .map_err(io_fail(format!("renaming {}", staging.display())))?;
            sync_dir(&self.dir)?;
        }
        self.save_state(&self.state, None)?;
        if old.exists()
            && let Err(error) = std::fs::remove_dir_all(&old)
        {
            tracing::warn!("files: cannot remove {}: {error}", old.display());
        }
        Ok(())
    }

    pub(super) fn write_batch(&mut self, batch: &Batch<'_>) -> Result<(), DestinationError> {
        let table_dir = self.dir.join(&batch.table.name);
        ensure_dir(&table_dir)?;
        let loaded: Vec<(usize, &Column)> = batch
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ty != ColumnType::Null && c.name != SYNCED_AT)
            .collect();
        if batch.is_empty() || loaded.is_empty() {
            return Ok(());
        }
        require_primary_key(batch, &loaded)?;
        self.seq += 1;
        let path = table_dir.join(format!(
            "{}-{:06}.{}",
            self.run_id,
            self.seq,
            self.format.extension()
        ));
        let synced_at = synced_at(batch)?;
        // Every file has `_removed`, so the documented read works before any row was removed.
        let removed = Column::new(REMOVED, ColumnType::Boolean);
        let has_removed = loaded.iter().any(|(_, c)| c.name == REMOVED);
        match self.format {
            Format::Parquet => {
                let slots: Vec<Slot<'_>> = loaded
                    .iter()
                    .map(|(index, column)| Slot::Row(*index, column))
                    .chain((!has_removed).then_some(Slot::Null(&removed)))
                    .chain([Slot::SyncedAt])
                    .collect();
                let record_batch = record_batch_of(batch, &slots, synced_at)?;
                write_atomically(&path, |file| {
                    let properties = WriterProperties::builder()
                        .set_compression(Compression::SNAPPY)
                        .build();
                    let fail = |e: parquet::errors::ParquetError| {
                        DestinationError::new(format!("files: writing {}: {e}", path.display()))
                    };
                    let mut writer =
                        ArrowWriter::try_new(file, record_batch.schema(), Some(properties))
                            .map_err(fail)?;
                    writer.write(&record_batch).map_err(fail)?;
                    writer.into_inner().map_err(fail)
                })
            }
            Format::Jsonl => write_atomically(&path, |file| {
                let fail = io_fail(format!("writing {}", path.display()));
                let mut encoder = flate2::write::GzEncoder::new(
                    BufWriter::new(file),
                    flate2::Compression::default(),
                );
                let mut write_rows = || -> Result<(), DestinationError> {
                    for row in 0..batch.len() {
                        let mut object = Map::new();
                        for (i, column) in &loaded {
                            object.insert(column.name.clone(), batch.value(row, *i));
                        }
                        object.entry(REMOVED.to_owned()).or_insert(Value::Null);
                        object.insert(SYNCED_AT.to_owned(), Value::String(rfc3339(synced_at)));
                        serde_json::to_writer(&mut encoder, &object)
                            .map_err(|e| DestinationError::new(e.to_string()))?;
                        encoder
                            .write_all(b"\n")
                            .map_err(io_fail("writing a row".to_owned()))?;
                    }
                    Ok(())
                };
                write_rows()?;
                encoder
                    .finish()
                    .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                    .map_err(fail)
            }),
        }
    }
}

impl Files {
    /// Appends, for each key whose latest row (as readers merge the table) is live and not in
    /// `present`, that row again marked deleted, into `into` (the table itself, or the staging
    /// directory of a full refresh). Reads each of the table's `files` once.
    fn mark_missing(
        &mut self,
        missing: &Missing<'_>,
        files: &[PathBuf],
        present: &std::collections::HashSet<String>,
        into: &TableRef,
    ) -> Result<u64, DestinationError> {
        let mut contents = Vec::with_capacity(files.len());
        let mut latest: std::collections::HashMap<String, (usize, usize)> = Default::default();
        for (file, path) in files.iter().enumerate() {
            let rows = read_file(path)?;
            for (index, row) in rows.iter().enumerate() {
                if let Some(key) = row.get(missing.key) {
                    latest.insert(key_text(key), (file, index));
                }
            }
            contents.push(rows);
        }
        // The rows to mark, by the file holding their latest version.
        let mut gone: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (key, (file, index)) in latest {
            let live = contents[file][index].get(DELETED) != Some(&Value::Bool(true));
            if live && !present.contains(&key) {
                gone.entry(file).or_default().push(index);
            }
        }
        let marked = gone.values().map(Vec::len).sum::<usize>() as u64;
        let synced_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        for (file, mut group) in gone {
            group.sort_unstable();
            let mut columns = file_columns(&files[file], &contents[file])?;
            for (name, ty) in [
                (DELETED, ColumnType::Boolean),
                (DELETED_AT, ColumnType::Timestamp),
            ] {
                if !columns.iter().any(|c| c.name == name) {
                    columns.push(Column::new(name, ty));
                }
            }
            let rows: Vec<Vec<Value>> = group
                .into_iter()
                .map(|index| {
                    let row = &contents[file][index];
                    columns
                        .iter()
                        .map(|column| match column.name.as_str() {
                            DELETED => Value::Bool(true),
                            DELETED_AT => Value::String(missing.deleted_at.to_owned()),
                            name => row.get(name).cloned().unwrap_or(Value::Null),
                        })
                        .collect()
                })
                .collect();
            let records = record_batch(&columns, &rows)?;
            self.write_batch(&Batch {
                stream: missing.stream,
                table: into,
                primary_key: &[missing.key],
                columns: &columns,
                records: &records,
                replace_parents: None,
                state: missing.state,
                synced_at: &synced_at,
                history: false,
            })?;
        }
        Ok(marked)
    }
}

pub(super) use pipedrive_engine::columnar::rfc3339;

/// Rows read back from files, as a batch to write again.
pub(super) fn record_batch(
    columns: &[Column],
    rows: &[Vec<Value>],
) -> Result<arrow::record_batch::RecordBatch, DestinationError> {
    pipedrive_engine::columnar::record_batch(columns, rows)
        .map_err(|misfit| DestinationError::new(format!("files: {misfit}")))
}

/// A key's value as text, the same whether it came from a record or a file.
pub(super) fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Destination for Files {
    fn describe(&self) -> String {
        format!("{} {}", self.format.name(), self.dir.display())
    }

    async fn read_state(&mut self) -> Result<SyncState, DestinationError> {
        Ok(self.state.clone())
    }

    async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
        tokio::task::block_in_place(|| {
            let mut state = self.state.clone();
            for batch in batches {
                self.write_with_removals(batch)?;
                state.insert(batch.stream.to_owned(), batch.state.clone());
            }
            self.save_state(&state, None)?;
            self.state = state;
            Ok(())
        })
    }

    async fn replace(
        &mut self,
        stream: &str,
        staging: &TableRef,
        target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        tokio::task::block_in_place(|| {
            ensure_dir(&self.dir.join(&staging.name))?;
            let replacing = Replacing {
                staging: staging.name.clone(),
                target: target.name.clone(),
                old: format!(".old-{}-{}", target.name, self.run_id),
            };
            let mut streams = self.state.clone();
            streams.insert(stream.to_owned(), state.clone());
            // The intent goes with the new state, so a crash mid-swap is finished at open.
            self.save_state(&streams, Some(&replacing))?;
            self.state = streams;
            self.forget(&staging.name);
            self.forget(&target.name);
            self.finish_replace(&replacing)
        })
    }

    fn keeps_deleted(&self) -> bool {
        true
    }

    /// Rows Pipedrive no longer lists are written again, marked deleted, so the documented
    /// read (the latest row per key) shows them deleted.
    async fn keep_deleted(&mut self, missing: &Missing<'_>) -> Result<u64, DestinationError> {
        tokio::task::block_in_place(|| {
            let into = match missing.present {
                Present::Keys(_) => missing.table,
                Present::Reloaded(staging) => staging,
            };
            // A table without files (a first sync) has no rows to miss.
            let files = table_files(&self.dir, &missing.table.name)?;
            let marked = if files.is_empty() {
                0
            } else {
                let present = match missing.present {
                    Present::Keys(keys) => keys.iter().map(key_text).collect(),
                    Present::Reloaded(staging) => read_keys(&self.dir, &staging.name, missing.key)?,
                };
                self.mark_missing(missing, &files, &present, into)?
            };
            if marked > 0 {
                self.lose_track(&into.name);
            }
            let mut state = self.state.clone();
            state.insert(missing.stream.to_owned(), missing.state.clone());
            self.save_state(&state, None)?;
            self.state = state;
            Ok(marked)
        })
    }

    async fn drop_table(&mut self, table: &TableRef) -> Result<(), DestinationError> {
        self.forget(&table.name);
        let dir = self.dir.join(&table.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(io_fail(format!("removing {}", dir.display())))?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    async fn record_run(&mut self, run: &RunRecord) -> Result<(), DestinationError> {
        let mut line = serde_json::to_vec(run)
            .map_err(|e| DestinationError::new(format!("the run record cannot be encoded: {e}")))?;
        line.push(b'\n');
        let path = self.dir.join(RUNS_FILE);
        tokio::task::block_in_place(|| {
            let created = !path.exists();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)
                .map_err(io_fail(format!("opening {}", path.display())))?;
            // A crash mid-append leaves a line without its end: start on a fresh line, so
            // only that torn line is lost.
            let length = file
                .metadata()
                .map_err(io_fail(format!("reading {}", path.display())))?
                .len();
            if length > 0 {
                use std::io::{Seek, SeekFrom};
                let mut last = [0u8; 1];
                file.seek(SeekFrom::Start(length - 1))
                    .and_then(|_| file.read_exact(&mut last))
                    .map_err(io_fail(format!("reading {}", path.display())))?;
                if last[0] != b'\n' {
                    line.insert(0, b'\n');
                }
            }
            file.write_all(&line)
                .and_then(|()| file.sync_all())
                .map_err(io_fail(format!("appending to {}", path.display())))?;
            if created {
                sync_dir(&self.dir)?;
            }
            Ok(())
        })
    }

    async fn read_runs(&mut self) -> Result<Vec<RunRecord>, DestinationError> {
        let path = self.dir.join(RUNS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_fail(format!("reading {}", path.display()))(e)),
        };
        let mut runs = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RunRecord>(line) {
                Ok(run) => runs.push(run),
                // A line a crash cut short: the run it began is lost, not the others.
                Err(error) if error.is_eof() => {
                    tracing::warn!(
                        "{}: line {} is incomplete; skipped",
                        path.display(),
                        number + 1
                    )
                }
                Err(error) => {
                    return Err(DestinationError::new(format!(
                        "files: {} line {} is not a run record ({error}); remove that line",
                        path.display(),
                        number + 1
                    )));
                }
            }
        }
        runs.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
        Ok(runs)
    }

    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError> {
        let mut streams = self.state.clone();
        streams.remove(stream);
        self.save_state(&streams, None)?;
        self.state = streams;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow_rows::parse_timestamp;
    use crate::files::holdings::row_key;
    use crate::files::read::read_table;
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
    use chrono::DateTime;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use serde_json::json;

    fn column(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.to_owned(),
            ty,
        }
    }

    fn state(bookmark: &str) -> StreamState {
        StreamState {
            bookmark: Some(bookmark.to_owned()),
            ..StreamState::default()
        }
    }

    fn records(columns: &[Column], rows: &[Vec<Value>]) -> arrow::record_batch::RecordBatch {
        record_batch(columns, rows).unwrap()
    }

    fn table(name: &str) -> TableRef {
        TableRef {
            schema: "pipedrive".to_owned(),
            name: name.to_owned(),
        }
    }

    fn data_files(dir: &Path, table: &str) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(table))
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    }

    fn saved_state(dir: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE)).unwrap()).unwrap()
    }

    fn deal_columns() -> Vec<Column> {
        vec![
            column("id", ColumnType::BigInt),
            column("won", ColumnType::Boolean),
            column("value", ColumnType::Double),
            column("close_date", ColumnType::Date),
            column("update_time", ColumnType::Timestamp),
            column("labels", ColumnType::Json),
            column("title", ColumnType::Text),
            column("never_set", ColumnType::Null),
        ]
    }

    fn deal_rows() -> Vec<Vec<Value>> {
        vec![
            vec![
                json!(1),
                json!(true),
                json!(10),
                json!("2024-01-02"),
                json!("2024-01-02 10:11:12"),
                json!([1, 2]),
                json!("first"),
                Value::Null,
            ],
            vec![
                json!(2),
                json!(false),
                json!(2.5),
                Value::Null,
                json!("2024-01-02T10:11:12.123Z"),
                json!({"a": 1}),
                json!(42),
                Value::Null,
            ],
            vec![
                json!(3),
                Value::Null,
                Value::Null,
                json!("1969-12-31"),
                json!("2024-01-02T12:11:12+02:00"),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                json!(4),
                Value::Null,
                Value::Null,
                Value::Null,
                json!("2024-01-02 10:11:12.5"),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                json!(5),
                Value::Null,
                Value::Null,
                Value::Null,
                json!("2024-01-02T05:41:12-0430"),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        ]
    }

    async fn write_deals(files: &mut Files) {
        let deals = table("deals");
        let columns = deal_columns();
        let rows = deal_rows();
        let state = state("2024-01-02T10:11:12Z");
        files
            .write(&[Batch {
                stream: "deals",
                table: &deals,
                primary_key: &["id"],
                columns: &columns,
                records: &records(&columns, &rows),
                replace_parents: None,
                state: &state,
                synced_at: "2024-03-04T05:06:07Z",
                history: false,
            }])
            .await
            .unwrap();
    }

    fn assert_deals(rows: &[Map<String, Value>]) {
        let ids: Vec<&Value> = rows.iter().map(|r| &r["id"]).collect();
        assert_eq!(ids, [&json!(1), &json!(2), &json!(3), &json!(4), &json!(5)]);
        assert_eq!(rows[0]["won"], json!(true));
        assert_eq!(rows[0]["value"].as_f64(), Some(10.0));
        assert_eq!(rows[1]["value"].as_f64(), Some(2.5));
        assert_eq!(rows[0]["close_date"], json!("2024-01-02"));
        assert_eq!(rows[2]["close_date"], json!("1969-12-31"));
        assert_eq!(rows[0]["update_time"], json!("2024-01-02T10:11:12Z"));
        assert_eq!(rows[1]["update_time"], json!("2024-01-02T10:11:12.123Z"));
        assert_eq!(rows[2]["update_time"], json!("2024-01-02T10:11:12Z"));
        assert_eq!(rows[3]["update_time"], json!("2024-01-02T10:11:12.500Z"));
        assert_eq!(rows[4]["update_time"], json!("2024-01-02T10:11:12Z"));
        assert_eq!(rows[0]["labels"], json!([1, 2]));
        assert_eq!(rows[1]["labels"], json!({"a": 1}));
        assert_eq!(rows[0]["title"], json!("first"));
        assert_eq!(rows[1]["title"], json!("42"));
        assert_eq!(rows[2]["title"], Value::Null);
        assert!(
            rows.iter()
                .all(|r| r["_synced_at"] == json!("2024-03-04T05:06:07Z"))
        );
        assert!(rows.iter().all(|r| !r.contains_key("never_set")));
    }

    fn run(company: &str, started_at: DateTime<Utc>) -> RunRecord {
        RunRecord {
            run_id: format!("{company}-{}", started_at.timestamp_micros()),
            company: company.to_owned(),
            started_at,
            finished_at: started_at + chrono::Duration::seconds(2),
            status: pipedrive_engine::RunStatus::Succeeded,
            error: None,
            records: 5,
            requests: 2,
            tokens: 20,
            responses_429: 0,
            burst_limit: Some(100),
            streams: Vec::new(),
            timeline: pipedrive_engine::Timeline {
                requests: vec![2],
                responses_429: vec![0],
            },
        }
    }

    /// The table as the README says to read it: the latest row per key, less removed ones.
    fn as_read(dir: &Path, table: &str, key: &[&str]) -> Vec<Map<String, Value>> {
        let mut latest: std::collections::BTreeMap<String, Map<String, Value>> = Default::default();
        for row in read_table(dir, table).unwrap() {
            latest.insert(row_key(key.iter().map(|k| row.get(*k))), row);
        }
        latest
            .into_values()
            .filter(|row| row.get(REMOVED) != Some(&Value::Bool(true)))
            .collect()
    }

    /// Deal 1 has products 10 and 11, deal 2 has 20; then deal 1 keeps 10 only, product 20
    /// moves to deal 3 (read before deal 2, which now has none). Each page in a run of its own
    /// (what the files hold is read back from them) or all in one run (the parents come back
    /// to a table this run created). Returns the table as read, and whether the one run held
    /// the table's rows before the page that replaced a parent a second time.
    async fn write_product_pages(dir: &Path, one_run: bool) -> (Vec<(Value, Value)>, bool) {
        let products = table("deal_products");
        let columns = [
            column("id", ColumnType::BigInt),
            column("deal_id", ColumnType::BigInt),
        ];
        let state = state("2024-01-02T10:11:12Z");
        let page = |rows: Vec<Vec<Value>>, parents: Vec<Value>| (rows, parents);
        let pages = [
            page(
                vec![
                    vec![json!(10), json!(1)],
                    vec![json!(11), json!(1)],
                    vec![json!(20), json!(2)],
                ],
                vec![json!(1), json!(2)],
            ),
            page(vec![vec![json!(20), json!(3)]], vec![json!(3)]),
            page(vec![vec![json!(10), json!(1)]], vec![json!(1), json!(2)]),
        ];
        let mut files = Files::open(dir, Format::Parquet).unwrap();
        let mut held_early = false;
        for (run, (rows, parents)) in pages.iter().enumerate() {
            if !one_run {
                drop(files);
                files = Files::open(dir, Format::Parquet).unwrap();
            }
            let synced_at = format!("2024-03-0{}T05:06:07Z", run + 1);
            files
                .write(&[Batch {
                    stream: "deal_products",
                    table: &products,
                    primary_key: &["id"],
                    columns: &columns,
                    records: &records(&columns, rows),
                    replace_parents: Some(("deal_id", parents)),
                    state: &state,
                    synced_at: &synced_at,
                    history: false,
                }])
                .await
                .unwrap();
            if run < 2 {
                held_early |= !files.holdings.is_empty();
            }
        }
        let read = as_read(dir, "deal_products", &["id"])
            .into_iter()
            .map(|row| (row["id"].clone(), row["deal_id"].clone()))
            .collect();
        (read, held_early)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn replaced_children_and_filtered_records_are_not_read_back() {
        let expected = [(json!(10), json!(1)), (json!(20), json!(3))];
        let dir = tempfile::tempdir().unwrap();
        let (read, _) = write_product_pages(dir.path(), false).await;
        assert_eq!(read, expected);
        let one_run = tempfile::tempdir().unwrap();
        let (read, held_early) = write_product_pages(one_run.path(), true).await;
        assert_eq!(read, expected);
        // Until a parent came back, the new table's rows were not held in memory.
        assert!(!held_early);
        let state = state("2024-01-02T10:11:12Z");

        // A record the filter now rejects: its key is named, its row goes.
        let mut files = Files::open(dir.path(), Format::Jsonl).unwrap();
        write_deals(&mut files).await;
        let deals = table("deals");
        let rejected = [json!(2)];
        files
            .write(&[Batch {
                stream: "deals",
                table: &deals,
                primary_key: &["id"],
                columns: &deal_columns(),
                records: &records(&deal_columns(), &[]),
                replace_parents: Some(("id", &rejected)),
                state: &state,
                synced_at: "2024-05-01T00:00:00Z",
                history: false,
            }])
            .await
            .unwrap();
        let ids: Vec<Value> = as_read(dir.path(), "deals", &["id"])
            .into_iter()
            .map(|row| row["id"].clone())
            .collect();
        assert_eq!(ids, [json!(1), json!(3), json!(4), json!(5)]);
    }

    #[test]
    fn a_second_run_on_one_directory_is_refused_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let first = Files::open(dir.path(), Format::Parquet).unwrap();
        let refused = Files::open(dir.path(), Format::Jsonl)
            .err()
            .expect("refused");
        assert!(
            refused
                .message
                .contains("another pipedrive-sync run is writing to"),
            "{refused}"
        );
        drop(first);
        Files::open(dir.path(), Format::Parquet).expect("the lock is released with the run");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn live_rows_missing_from_a_listing_are_written_again_marked_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), Format::Parquet).unwrap();
        write_deals(&mut files).await;
        let deals = table("deals");
        let before = read_table(dir.path(), "deals").unwrap();
        let keys: Vec<Value> = before.iter().map(|r| r["id"].clone()).collect();
        let (kept, gone) = keys.split_at(1);
        let missing = Missing {
            stream: "deals",
            table: &deals,
            key: "id",
            present: Present::Keys(kept),
            deleted_at: "2026-03-04T05:06:07Z",
            state: &state("2026-01-01T00:00:00Z"),
        };
        assert_eq!(
            files.keep_deleted(&missing).await.unwrap(),
            gone.len() as u64
        );
        // A second listing marks nothing new: the latest rows are already marked.
        assert_eq!(files.keep_deleted(&missing).await.unwrap(), 0);

        let mut latest: std::collections::BTreeMap<String, Map<String, Value>> = Default::default();
        for row in read_table(dir.path(), "deals").unwrap() {
            latest.insert(key_text(&row["id"]), row);
        }
        for row in &before {
            let now = &latest[&key_text(&row["id"])];
            if !gone.contains(&row["id"]) {
                assert_eq!(now, row, "a listed row stays as it was");
                continue;
            }
            assert_eq!(now[DELETED], json!(true));
            assert_eq!(
                now[DELETED_AT].as_str().and_then(parse_timestamp),
                parse_timestamp("2026-03-04T05:06:07Z")
            );
            // The marked row keeps the values it had.
            for (column, value) in row {
                if ![DELETED, DELETED_AT, SYNCED_AT].contains(&column.as_str()) {
                    assert_eq!(&now[column], value, "{column}");
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn run_records_append_and_survive_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), Format::Parquet).unwrap();
        assert!(files.read_runs().await.unwrap().is_empty());
        let first = run("acme", Utc::now());
        files.record_run(&first).await.unwrap();
        // A crash in the middle of the next append.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(RUNS_FILE))
            .unwrap();
        file.write_all(br#"{"run_id":"torn","comp"#).unwrap();
        drop(file);
        let second = run("acme", first.finished_at);
        files.record_run(&second).await.unwrap();
        drop(files);
        let mut reopened = Files::open(dir.path(), Format::Parquet).unwrap();
        assert_eq!(reopened.read_runs().await.unwrap(), [first, second]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn parquet_round_trip_keeps_types_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), Format::Parquet).unwrap();
        write_deals(&mut files).await;
        let paths = data_files(dir.path(), "deals");
        assert_eq!(paths.len(), 1);
        assert!(paths[0].to_str().unwrap().ends_with("-000001.parquet"));

        let reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&paths[0]).unwrap()).unwrap();
        let schema = reader.schema().clone();
        let types: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            types,
            [
                ("id", &DataType::Int64),
                ("won", &DataType::Boolean),
                ("value", &DataType::Float64),
                ("close_date", &DataType::Date32),
                ("update_time", &utc),
                ("labels", &DataType::Utf8),
                ("title", &DataType::Utf8),
                ("_removed", &DataType::Boolean),
                ("_synced_at", &utc),
            ]
        );
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        let stamps = batch.column(4).as_primitive::<TimestampMicrosecondType>();
        let base = 1_704_190_272_000_000;
        assert_eq!(
            stamps.values().to_vec(),
            [base, base + 123_000, base, base + 500_000, base]
        );
        assert_eq!(batch.column(5).as_string::<i32>().value(0), "[1,2]");
        assert_deals(&read_file(&paths[0]).unwrap());
        assert_eq!(
            saved_state(dir.path())["streams"]["deals"]["bookmark"],
            json!("2024-01-02T10:11:12Z")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn jsonl_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), Format::Jsonl).unwrap();
        assert_eq!(files.describe(), format!("jsonl {}", dir.path().display()));
        write_deals(&mut files).await;
        write_deals(&mut files).await;
        let paths = data_files(dir.path(), "deals");
        assert_eq!(paths.len(), 2);
        assert!(paths[1].to_str().unwrap().ends_with("-000002.jsonl.gz"));
        assert_deals(&read_file(&paths[0]).unwrap());
        assert_eq!(read_table(dir.path(), "deals").unwrap().len(), 10);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn state_moves_only_after_the_data_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), Format::Parquet).unwrap();
        write_deals(&mut files).await;
        // A failing batch (one without its key) leaves the state where it was.
        let deals = table("deals");
        let columns = [column("amount", ColumnType::BigInt)];
        let rows = [vec![json!(7)]];
        let later = state("2025-01-01T00:00:00Z");
        let failed = files
            .write(&[Batch {
                stream: "deals",
                table: &deals,
                primary_key: &["id"],
                columns: &columns,
                records: &records(&columns, &rows),
                replace_parents: None,
                state: &later,
                synced_at: "2025-01-01T00:00:00Z",
                history: false,
            }])
            .await;
        assert!(failed.is_err());
        let kept = json!("2024-01-02T10:11:12Z");
        assert_eq!(
            saved_state(dir.path())["streams"]["deals"]["bookmark"],
            kept
        );
        assert_eq!(
            files.read_state().await.unwrap()["deals"].bookmark,
            kept.as_str().map(str::to_owned)
        );
        // The state file's modification is not older than the data file's: data first.
        let data = std::fs::metadata(&data_files(dir.path(), "deals")[0]).unwrap();
        let state_file = std::fs::metadata(dir.path().join(STATE_FILE)).unwrap();
        assert!(state_file.modified().unwrap() >= data.modified().unwrap());
        // No temporary file is left behind, and a reopened destination reads the same state.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        let written = files.read_state().await.unwrap();
        drop(files);
        let mut reopened = Files::open(dir.path(), Format::Parquet).unwrap();
        assert_eq!(reopened.read_state().await.unwrap(), written);
        reopened.reset_state("deals").await.unwrap();
        drop(reopened);
        let mut again = Files::open(dir.path(), Format::Parquet).unwrap();
        assert!(again.read_state().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn empty_batch_writes_no_file_but_moves_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), Format::Parquet).unwrap();
        let deals = table("deals");
        let columns = deal_columns();
        let done = state("2024-05-06T00:00:00Z");
        files
            .write(&[Batch {
                stream: "deals",
                table: &deals,
                primary_key: &["id"],
                columns: &columns,
                records: &records(&columns, &[]),
                replace_parents: None,
                state: &done,
                synced_at: "2024-05-06T00:00:00Z",
                history: false,
            }])
            .await
            .unwrap();
        assert!(data_files(dir.path(), "deals").is_empty());
        assert_eq!(
            saved_state(dir.path())["streams"]["deals"]["bookmark"],
            json!("2024-05-06T00:00:00Z")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn replace_swaps_directories_and_drop_removes_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), Format::Parquet).unwrap();
        write_deals(&mut files).await;
        let deals = table("deals");
        let staging = deals.staging();
        let columns = [column("id", ColumnType::BigInt)];
        let rows = [vec![json!(9)]];
        let loading = state("2024-01-01T00:00:00Z");
        files
            .write(&[Batch {
                stream: "deals",
                table: &staging,
                primary_key: &["id"],
                columns: &columns,
                records: &records(&columns, &rows),
                replace_parents: None,
                state: &loading,
                synced_at: "2024-06-01T00:00:00Z",
                history: false,
            }])
            .await
            .unwrap();
        assert_eq!(read_table(dir.path(), "deals").unwrap().len(), 5);
        let done = state("2024-06-01T00:00:00Z");
        files
            .replace("deals", &staging, &deals, &done)
            .await
            .unwrap();
        let rows = read_table(dir.path(), "deals").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["id"], json!(9));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, [LOCK_FILE, STATE_FILE, "deals"]);
        let saved = saved_state(dir.path());
        assert_eq!(
            saved["streams"]["deals"]["bookmark"],
            json!("2024-06-01T00:00:00Z")
        );
        assert!(saved.get("replacing").is_none());

        files.drop_table(&deals).await.unwrap();
        assert!(!dir.path().join("deals").exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_swap_interrupted_after_its_intent_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), Format::Jsonl).unwrap();
        write_deals(&mut files).await;
        // The crash came after the old directory moved aside, before staging moved in.
        std::fs::create_dir(dir.path().join("_pds_staging_deals")).unwrap();
        std::fs::rename(dir.path().join("deals"), dir.path().join(".old-deals-x")).unwrap();
        let replacing = Replacing {
            staging: "_pds_staging_deals".to_owned(),
            target: "deals".to_owned(),
            old: ".old-deals-x".to_owned(),
        };
        files.save_state(&files.state, Some(&replacing)).unwrap();
        drop(files);
        Files::open(dir.path(), Format::Jsonl).unwrap();
        assert!(dir.path().join("deals").is_dir());
        assert!(!dir.path().join(".old-deals-x").exists());
        assert!(!dir.path().join("_pds_staging_deals").exists());
        assert!(saved_state(dir.path()).get("replacing").is_none());
    }

    #[test]
    fn parses_every_timestamp_shape() {
        let base = Some(1_704_190_272_000_000);
        for text in [
            "2024-01-02 10:11:12",
            "2024-01-02T10:11:12Z",
            "2024-01-02T10:11:12+00:00",
            "2024-01-02T12:11:12+02",
            "2024-01-02T12:11:12+0200",
            "2024-01-02 08:11:12-02:00",
        ] {
            assert_eq!(parse_timestamp(text), base, "{text}");
        }
        assert_eq!(
            parse_timestamp("2024-01-02 10:11:12.123"),
            base.map(|b| b + 123_000)
        );
        assert_eq!(
            parse_timestamp("2024-01-02T10:11:12.000001Z"),
            base.map(|b| b + 1)
        );
        assert_eq!(parse_timestamp("2024-01-02"), Some(1_704_153_600_000_000));
        assert_eq!(parse_timestamp("2024-01-02 lunch"), None);
        assert_eq!(parse_timestamp("2024-01-02T10:11:12+2"), None);
    }
}
