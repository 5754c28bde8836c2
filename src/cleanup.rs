//! What a run makes on its way to its outputs and must not leave behind if it does not finish:
//! temporary files, staging folders, folders made to hold outputs. Each is registered while it
//! exists and taken off the register when it is committed or cleaned up by its own destructor;
//! [`remove_unfinished`] removes whatever is still registered, for a run interrupted by a signal
//! (whose destructors do not run).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a registered path is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A file.
    File,
    /// A folder and everything in it.
    Tree,
    /// A folder and then each folder above it up to `up_to` (included), each only while it is
    /// empty: folders made to hold an output file.
    EmptyUpTo(PathBuf),
}

static REGISTER: Mutex<Vec<(u64, PathBuf, Removal)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

fn register_lock() -> std::sync::MutexGuard<'static, Vec<(u64, PathBuf, Removal)>> {
    REGISTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A path on the register; dropping it takes the path off (without removing anything).
#[derive(Debug)]
pub struct Registered(u64);

/// Puts `path` on the register until the returned guard is dropped.
pub fn register(path: &Path, removal: Removal) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    register_lock().push((id, path.to_path_buf(), removal));
    Registered(id)
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut register = register_lock();
        if let Some(i) = register.iter().position(|(id, _, _)| *id == self.0) {
            register.swap_remove(i);
        }
    }
}

/// Whether `path` is on the register.
#[cfg(test)]
pub(crate) fn is_registered(path: &Path) -> bool {
    register_lock().iter().any(|(_, p, _)| p == path)
}

/// Removes `dir`, then each folder above it up to `up_to` (included), stopping at the first one
/// that is not empty.
fn remove_empty_folders(dir: &Path, up_to: &Path) {
    for folder in dir.ancestors() {
        if std::fs::remove_dir(folder).is_err() || folder == up_to {
            break;
        }
    }
}

/// Removes everything still on the register: files first, then folders with their contents,
/// then folders made for outputs that are empty by then.
pub fn remove_unfinished() {
    remove_registered(|_| true);
}

/// [`remove_unfinished`] for the registered paths that `which` accepts.
pub fn remove_registered(which: impl Fn(&Path) -> bool) {
    let register = register_lock();
    let register: Vec<_> = register.iter().filter(|(_, path, _)| which(path)).collect();
    for (_, path, removal) in &register {
        if *removal == Removal::File {
            let _ = std::fs::remove_file(path);
        }
    }
    for (_, path, removal) in &register {
        if *removal == Removal::Tree {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    for (_, path, removal) in &register {
        if let Removal::EmptyUpTo(up_to) = removal {
            remove_empty_folders(path, up_to);
        }
    }
}

/// Folders a run is about to make to hold an output: `dir` and those of its parents that are
/// missing. They are on the register, to be removed while empty, until this is dropped.
#[derive(Debug)]
pub struct MadeFolders {
    dir: PathBuf,
    top: PathBuf,
    _entry: Registered,
}

impl MadeFolders {
    /// The folders that creating `dir` would make; `None` when `dir` is there already.
    pub fn before_creating(dir: &Path) -> Option<Self> {
        let top = first_missing(dir)?;
        let entry = register(dir, Removal::EmptyUpTo(top.clone()));
        Some(Self { dir: dir.to_path_buf(), top, _entry: entry })
    }

    /// Removes `dir`, then the parents made with it, each only while it is empty.
    pub fn remove_empty(&self) {
        remove_empty_folders(&self.dir, &self.top);
    }
}

/// Whether anything is at `path`: a file, a folder, or a link (to something or not).
pub fn is_there(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The topmost folder of `dir` and its parents that does not exist yet, if any: what creating
/// `dir` would make. A link counts as existing, even one to nothing.
pub fn first_missing(dir: &Path) -> Option<PathBuf> {
    let mut top = None;
    for folder in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        if is_there(folder) {
            break;
        }
        top = Some(folder.to_path_buf());
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_folders_go_up_to_the_first_made_and_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        assert_eq!(first_missing(&deep), Some(dir.path().join("a")));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(dir.path().join("a/keep.txt"), b"x").unwrap();
        remove_empty_folders(&deep, &dir.path().join("a"));
        assert!(!dir.path().join("a/b").exists());
        assert!(dir.path().join("a/keep.txt").exists(), "a folder with a file stays");
        std::fs::remove_file(dir.path().join("a/keep.txt")).unwrap();
        remove_empty_folders(&dir.path().join("a"), &dir.path().join("a"));
        assert!(!dir.path().join("a").exists() && dir.path().exists(), "stops at `up_to`");
        assert_eq!(first_missing(dir.path()), None);
    }
}
