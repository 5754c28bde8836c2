//! Writing results atomically: everything goes to a temporary file beside the destination, which
//! is renamed over it only once complete, so a failed run leaves no half-written file.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::cleanup::{MadeFolders, Registered, Removal, first_missing, is_there, register};

/// What went wrong while writing output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The file or its temporary sibling cannot be created, written or renamed.
    #[error("cannot write `{path}`")]
    Io {
        /// Destination.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The destination's extension says nothing we can write.
    #[error("cannot tell the output format of `{path}` from its extension; use {expected}")]
    UnknownFormat {
        /// Destination.
        path: PathBuf,
        /// Extensions accepted.
        expected: String,
    },
}

/// Creates a hidden temporary file in the folder of `dest` (creating the folder if needed), to
/// be renamed over `dest` once complete.
///
/// On Unix it gets the permissions of an ordinary new file (`0666` less the umask) rather than
/// the owner-only mode of a temporary file, so results can be shared like any other file.
///
/// # Errors
/// Fails when the folder cannot be created or written.
pub fn temp_beside(dest: &Path) -> std::io::Result<NamedTempFile> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".habitlens-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(&dir)
}

/// A file being written under a temporary name; [`AtomicFile::commit`] renames it into place.
/// Dropped without a commit, the temporary file is removed, and so are the folders made to hold
/// it; both are registered for [`crate::cleanup::remove_unfinished`] meanwhile.
pub struct AtomicFile {
    /// `None` once committed.
    writer: Option<BufWriter<NamedTempFile>>,
    dest: PathBuf,
    /// The folders made for the file.
    made: Option<MadeFolders>,
    _temp: Registered,
}

impl AtomicFile {
    /// Creates a temporary file in the destination's folder (creating the folder if needed).
    ///
    /// # Errors
    /// Fails when the folder cannot be created or written.
    pub fn create(dest: &Path) -> Result<Self, OutputError> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let made = MadeFolders::before_creating(&parent);
        let tmp = match temp_beside(dest) {
            Ok(tmp) => tmp,
            Err(source) => {
                made.iter().for_each(MadeFolders::remove_empty);
                return Err(OutputError::Io { path: dest.to_path_buf(), source });
            }
        };
        let temp = register(tmp.path(), Removal::File);
        Ok(Self {
            writer: Some(BufWriter::with_capacity(1 << 16, tmp)),
            dest: dest.to_path_buf(),
            made,
            _temp: temp,
        })
    }

    fn writer(&mut self) -> &mut BufWriter<NamedTempFile> {
        self.writer.as_mut().expect("an atomic file is written to only before its commit")
    }

    /// Where the file will end up.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes and renames the file into place.
    ///
    /// # Errors
    /// Fails when flushing or renaming fails; the temporary file is removed then.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let dest = self.dest.clone();
        let io_err = |source| OutputError::Io { path: dest.clone(), source };
        let writer = self.writer.take().expect("an atomic file is committed once");
        let tmp = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(&dest).map_err(|e| io_err(e.error))?;
        // The folders now hold the file.
        self.made = None;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // The temporary file first (dropping it removes it), then the folders made for it.
        drop(self.writer.take());
        self.made.iter().for_each(MadeFolders::remove_empty);
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.writer().seek(pos)
    }
}

/// Writes JSON to `path` atomically, pretty-printed.
///
/// # Errors
/// Fails when the file cannot be written.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let mut file = AtomicFile::create(path)?;
    serde_json::to_writer_pretty(&mut file, value)
        .map_err(|e| OutputError::Io { path: path.to_path_buf(), source: e.into() })?;
    file.write_all(b"\n").map_err(|source| OutputError::Io { path: path.to_path_buf(), source })?;
    file.commit()
}

/// Writes `bytes` to `path` atomically, with the permissions of an ordinary new file.
///
/// # Errors
/// Fails when the file cannot be written or renamed into place.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).map_err(|source| OutputError::Io { path: path.to_path_buf(), source })?;
    file.commit()
}

/// Size of the `.npy` header we write: fixed, so it can be rewritten with the final row count.
const NPY_HEADER_LEN: usize = 128;

/// Streams a float32 matrix into NumPy's `.npy` format (version 1.0) without knowing the
/// number of rows in advance: the header is written with room to spare and rewritten with the
/// final shape by [`NpyWriter::finish`].
pub struct NpyWriter<W: Write + Seek> {
    out: W,
    columns: usize,
    rows: usize,
}

impl<W: Write + Seek> NpyWriter<W> {
    /// Starts a matrix of `columns` float32 columns.
    ///
    /// # Errors
    /// Fails when writing fails.
    pub fn new(mut out: W, columns: usize) -> std::io::Result<Self> {
        out.write_all(&npy_header(0, columns))?;
        Ok(Self { out, columns, rows: 0 })
    }

    /// Appends one row.
    ///
    /// # Errors
    /// Fails when writing fails or the row has the wrong length.
    pub fn write_row(&mut self, row: &[f32]) -> std::io::Result<()> {
        if row.len() != self.columns {
            return Err(std::io::Error::other(format!(
                "row of {} values in a matrix of {} columns",
                row.len(),
                self.columns
            )));
        }
        for value in row {
            self.out.write_all(&value.to_le_bytes())?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Rewrites the header with the final shape and returns the writer.
    ///
    /// # Errors
    /// Fails when seeking or writing fails.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&npy_header(self.rows, self.columns))?;
        self.out.seek(SeekFrom::End(0))?;
        Ok(self.out)
    }
}

fn npy_header(rows: usize, columns: usize) -> Vec<u8> {
    let dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    let len = (NPY_HEADER_LEN - 10) as u16;
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header.resize(NPY_HEADER_LEN - 1, b' ');
    header.push(b'\n');
    header
}

/// Opens `path` for writing, or standard output for `-`.
///
/// # Errors
/// Fails when the file cannot be created.
pub fn open_text_output(path: &Path) -> Result<TextOutput, OutputError> {
    if path.as_os_str() == "-" {
        Ok(TextOutput::Stdout(std::io::stdout().lock()))
    } else {
        Ok(TextOutput::File(AtomicFile::create(path)?))
    }
}

/// A destination for text results: an atomic file or standard output.
pub enum TextOutput {
    /// Standard output.
    Stdout(std::io::StdoutLock<'static>),
    /// A file written atomically.
    File(AtomicFile),
}

impl TextOutput {
    /// Flushes standard output or commits the file.
    ///
    /// # Errors
    /// Fails when flushing or renaming fails.
    pub fn finish(self) -> Result<(), OutputError> {
        match self {
            Self::Stdout(mut out) => out
                .flush()
                .map_err(|source| OutputError::Io { path: PathBuf::from("<stdout>"), source }),
            Self::File(file) => file.commit(),
        }
    }
}

impl Write for TextOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Stdout(out) => out.write(buf),
            Self::File(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => out.flush(),
            Self::File(file) => file.flush(),
        }
    }
}

/// Checks that `path` can be created by creating and removing an empty file, so a run fails
/// before its long work rather than after.
///
/// # Errors
/// Fails when the folder does not exist and cannot be created, or is not writable.
pub fn check_writable(path: &Path) -> Result<(), OutputError> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    AtomicFile::create(path).map(drop)
}

/// A folder a command writes its results into, claimed before the work starts: checked
/// writable without being made (a temporary file is created and removed in the folder, or in its
/// nearest existing parent when it does not exist yet), so a run that is interrupted before it
/// writes leaves nothing behind.
///
/// A run that fails leaves no trace: dropped without [`OutputFolder::keep`], the folders the run
/// made for it (the folder itself and any missing parents) are removed with whatever the run had
/// put in them. A folder that existed before is left as it is (files already written into it were
/// each written atomically).
#[derive(Debug)]
pub struct OutputFolder {
    /// When the folder did not exist at the claim: the folder, the topmost of the folders the
    /// run makes for it (the folder itself or a missing parent), and their registrations for
    /// [`crate::cleanup::remove_unfinished`].
    made: Option<Made>,
    kept: bool,
}

/// A folder made for a run's outputs, removed with its contents, and the missing parents made
/// with it, removed only while empty (another run may have written beside the folder).
#[derive(Debug)]
struct Made {
    dir: PathBuf,
    _entry: Registered,
    parents: Option<MadeFolders>,
}

impl Made {
    fn register(dir: &Path) -> Self {
        let parents = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .and_then(MadeFolders::before_creating);
        Self { dir: dir.to_path_buf(), _entry: register(dir, Removal::Tree), parents }
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.parents.iter().for_each(MadeFolders::remove_empty);
    }
}

impl OutputFolder {
    /// Claims `dir`, checking that a file such as `dir/probe` could be written.
    ///
    /// # Errors
    /// Fails when the folder, or its nearest existing parent, cannot be written.
    pub fn claim(dir: &Path, probe: &str) -> Result<Self, OutputError> {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let io_err = |source| OutputError::Io { path: dir.join(probe), source };
        let not_a_folder = |path: &Path| {
            io_err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("`{}` is not a folder", path.display()),
            ))
        };
        if dir.is_dir() {
            check_writable(&dir.join(probe))?;
            return Ok(Self { made: None, kept: false });
        }
        if is_there(dir) {
            // A file, or a link to nothing: not the run's to make or remove.
            return Err(not_a_folder(dir));
        }
        // The topmost missing folder, and the existing one above it.
        let top = first_missing(dir).unwrap_or_else(|| dir.to_path_buf());
        let existing = match top.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !existing.is_dir() {
            return Err(not_a_folder(&existing));
        }
        tempfile::Builder::new().prefix(".habitlens-").tempfile_in(&existing).map_err(io_err)?;
        Ok(Self { made: Some(Made::register(dir)), kept: false })
    }

    /// The run succeeded: the folder stays.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for OutputFolder {
    fn drop(&mut self) {
        if let (Some(made), false) = (&self.made, self.kept) {
            made.remove();
        }
    }
}

/// A folder's files written first into a hidden temporary folder and moved into place by
/// [`StagedFolder::commit`] only once every one is written, so a run that fails while writing (a
/// full disk, a lost mount) leaves the destination as it was: never half of a new model beside
/// half of an old one. A destination that does not exist yet is staged beside it and renamed into
/// place in one step; an existing one is staged inside itself, and each file is then renamed over
/// its namesake (files of the folder that the run does not write stay). Dropped without a commit,
/// the staged files are removed.
#[derive(Debug)]
pub struct StagedFolder {
    dest: PathBuf,
    staged: tempfile::TempDir,
    /// The staging folder's registration for [`crate::cleanup::remove_unfinished`].
    _staged_entry: Registered,
    /// Folders made above the staging folder (a new destination's missing parents), removed
    /// again when nothing is committed.
    made: Option<MadeFolders>,
    committed: bool,
}

impl StagedFolder {
    /// Makes the temporary folder: inside `dest` when it is a folder already, else beside it
    /// (creating `dest`'s parent folders if needed).
    ///
    /// # Errors
    /// Fails when that folder cannot be created or written.
    pub fn new(dest: &Path) -> Result<Self, OutputError> {
        let io_err = |source| OutputError::Io { path: dest.to_path_buf(), source };
        let parent = if dest.is_dir() {
            dest.to_path_buf()
        } else {
            match dest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        let made = MadeFolders::before_creating(&parent);
        if let Err(e) = std::fs::create_dir_all(&parent) {
            made.iter().for_each(MadeFolders::remove_empty);
            return Err(io_err(e));
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(".habitlens-").suffix(".tmp");
        // An ordinary new folder's permissions (0777 less the umask), not a temporary folder's
        // owner-only mode, since a new destination is this very folder renamed.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o777));
        }
        let staged = match builder.tempdir_in(&parent) {
            Ok(staged) => staged,
            Err(e) => {
                made.iter().for_each(MadeFolders::remove_empty);
                return Err(io_err(e));
            }
        };
        let entry = register(staged.path(), Removal::Tree);
        Ok(Self { dest: dest.to_path_buf(), staged, _staged_entry: entry, made, committed: false })
    }

    /// The folder to write into.
    pub fn path(&self) -> &Path {
        self.staged.path()
    }

    /// Where the files end up.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Moves the staged files into the destination.
    ///
    /// # Errors
    /// Fails when a file cannot be moved; what was staged and not moved is removed then.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OutputError::Io { path, source }
        };
        if !self.dest.exists() {
            let staged = self.staged.path().to_path_buf();
            std::fs::rename(&staged, &self.dest).map_err(io_err(&self.dest))?;
            self.committed = true;
            return Ok(());
        }
        // From here on files land in the destination, which keeps the folders above it.
        self.committed = true;
        // Folders first, so that the renames below are all that can be left half done.
        let mut files = Vec::new();
        let mut pending = vec![PathBuf::new()];
        while let Some(rel) = pending.pop() {
            let from = self.staged.path().join(&rel);
            std::fs::create_dir_all(self.dest.join(&rel)).map_err(io_err(&self.dest.join(&rel)))?;
            for entry in std::fs::read_dir(&from).map_err(io_err(&from))? {
                let entry = entry.map_err(io_err(&from))?;
                let rel = rel.join(entry.file_name());
                if entry.file_type().map_err(io_err(&entry.path()))?.is_dir() {
                    pending.push(rel);
                } else {
                    files.push(rel);
                }
            }
        }
        for rel in files {
            let to = self.dest.join(&rel);
            std::fs::rename(self.staged.path().join(&rel), &to).map_err(io_err(&to))?;
        }
        Ok(())
    }
}

impl Drop for StagedFolder {
    fn drop(&mut self) {
        // The `TempDir` removes the staging folder (if it was not renamed into place) after
        // this; the folders made above it go only when nothing was committed.
        if let (Some(made), false) = (&self.made, self.committed) {
            let _ = std::fs::remove_dir_all(self.staged.path());
            made.remove_empty();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The staging tests run one at a time.
    static STAGING_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_staged_folder_becomes_a_new_destination_in_one_rename() {
        let _serial = STAGING_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("deeper").join("model");
        let staged = StagedFolder::new(&dest).unwrap();
        std::fs::create_dir(staged.path().join("sub")).unwrap();
        write_bytes(&staged.path().join("a.bin"), b"a").unwrap();
        write_bytes(&staged.path().join("sub/b.json"), b"b").unwrap();
        assert!(!dest.exists(), "nothing is visible before the commit");
        staged.commit().unwrap();
        assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), b"a");
        assert_eq!(std::fs::read(dest.join("sub/b.json")).unwrap(), b"b");
        let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "the staged folder is gone: {left:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let plain = dir.path().join("plain");
            std::fs::create_dir(&plain).unwrap();
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dest), mode(&plain));
        }
    }

    #[test]
    fn a_staged_folder_replaces_its_files_in_an_existing_folder_and_keeps_the_others() {
        let _serial = STAGING_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model");
        std::fs::create_dir_all(dest.join("sub")).unwrap();
        std::fs::write(dest.join("a.bin"), "old").unwrap();
        std::fs::write(dest.join("notes.txt"), "mine").unwrap();
        let staged = StagedFolder::new(&dest).unwrap();
        std::fs::create_dir(staged.path().join("sub")).unwrap();
        write_bytes(&staged.path().join("a.bin"), b"new").unwrap();
        write_bytes(&staged.path().join("sub/b.json"), b"b").unwrap();
        assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), b"old");
        staged.commit().unwrap();
        assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), b"new");
        assert_eq!(std::fs::read(dest.join("sub/b.json")).unwrap(), b"b");
        assert_eq!(std::fs::read(dest.join("notes.txt")).unwrap(), b"mine");
        let names: std::collections::BTreeSet<_> =
            std::fs::read_dir(&dest).unwrap().map(|e| e.unwrap().file_name()).collect();
        let expected = ["a.bin", "notes.txt", "sub"].map(std::ffi::OsString::from).into();
        assert_eq!(names, expected, "the staged folder is gone");
    }

    #[test]
    fn an_interrupted_run_removes_its_staged_folders_temporary_files_and_made_folders() {
        let _serial = STAGING_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap();
        let staged = StagedFolder::new(&dir.path().join("model")).unwrap();
        write_bytes(&staged.path().join("a.bin"), b"a").unwrap();
        let other = StagedFolder::new(&dir.path().join("other")).unwrap();
        let other_path = other.path().to_path_buf();
        drop(other);
        assert!(!crate::cleanup::is_registered(&other_path), "a dropped folder is unlisted");
        // What a signal handler does, for this test's folder only (other tests write in parallel).
        let new_output = dir.path().join("made/for/it/out.csv");
        let mut file = AtomicFile::create(&new_output).unwrap();
        file.write_all(b"half").unwrap();
        crate::cleanup::remove_registered(|p| p.starts_with(dir.path()));
        assert!(!staged.path().exists(), "the staged folder is removed");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "and the output's folders");
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_staged_folder_dropped_without_a_commit_leaves_nothing() {
        let _serial = STAGING_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model");
        let staged = StagedFolder::new(&dest).unwrap();
        write_bytes(&staged.path().join("a.bin"), b"a").unwrap();
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn committed_files_get_the_mode_of_an_ordinary_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "x").unwrap();
        let atomic = dir.path().join("atomic.txt");
        let mut file = AtomicFile::create(&atomic).unwrap();
        file.write_all(b"x").unwrap();
        file.commit().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }

    #[test]
    fn a_claimed_folder_goes_unless_kept_and_an_old_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        let folder = OutputFolder::claim(&new.join("deeper"), "x.json").unwrap();
        assert!(!new.exists(), "the claim makes nothing");
        std::fs::create_dir_all(new.join("deeper")).unwrap();
        std::fs::write(new.join("deeper/partial.bin"), "x").unwrap();
        drop(folder);
        assert!(!new.exists(), "a failed run left the folders it made");
        assert!(dir.path().is_dir());

        let folder = OutputFolder::claim(&new, "x.json").unwrap();
        std::fs::create_dir(&new).unwrap();
        folder.keep();
        assert!(new.is_dir());
        std::fs::write(new.join("earlier.txt"), "x").unwrap();
        drop(OutputFolder::claim(&new, "x.json").unwrap());
        assert!(new.join("earlier.txt").is_file(), "a folder that was there before was touched");
        let file = new.join("earlier.txt");
        assert!(OutputFolder::claim(&file, "x.json").is_err(), "a file is no folder");
        assert!(OutputFolder::claim(&file.join("below"), "x.json").is_err());
        assert!(file.is_file());
    }

    #[test]
    fn a_failed_or_interrupted_run_leaves_what_another_run_wrote_beside_its_folder() {
        let _serial = STAGING_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        let (a, b) = (results.join("a"), results.join("b"));
        // Run a claims results/a before results/ exists; run b finishes results/b meanwhile.
        let failed = OutputFolder::claim(&a, "x.json").unwrap();
        let interrupted = OutputFolder::claim(&results.join("c"), "x.json").unwrap();
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(results.join("c")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("model.bin"), "x").unwrap();
        drop(failed);
        assert!(!a.exists() && b.join("model.bin").is_file(), "only its own folder goes");
        crate::cleanup::remove_registered(|p| p.starts_with(dir.path()));
        assert!(!results.join("c").exists() && b.join("model.bin").is_file());
        drop(interrupted);

        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
            assert!(
                OutputFolder::claim(&link, "x.json").is_err(),
                "a link to nothing is no folder"
            );
            assert!(std::fs::symlink_metadata(&link).is_ok(), "and it stays");
        }
    }
    #[test]
    fn npy_round_trips_through_candle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        let mut file = AtomicFile::create(&path).unwrap();
        {
            let mut npy = NpyWriter::new(&mut file, 3).unwrap();
            npy.write_row(&[1.0, 2.0, 3.0]).unwrap();
            npy.write_row(&[4.0, 5.0, -6.5]).unwrap();
            npy.finish().unwrap();
        }
        file.commit().unwrap();
        let t = candle_core::Tensor::read_npy(&path).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, -6.5]]);
    }

    #[test]
    fn uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
