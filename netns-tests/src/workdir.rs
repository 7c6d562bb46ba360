//! A private temporary directory per topology (configs, logs, pid files), removed on drop.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A directory under the system temp dir, removed with its contents when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `$TMPDIR/{name}` afresh (an old one of the same name is removed first).
    pub fn create(name: &str) -> Result<WorkDir> {
        let path = std::env::temp_dir().join(name.trim_end_matches('-'));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", path.display())))?;
        Ok(WorkDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, created if missing.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", p.display())))?;
        Ok(p)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
