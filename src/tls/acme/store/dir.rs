//! The ACME state in a local directory (`acme.cache_dir`), for a single PoP: one file per key,
//! written to a temporary file and renamed, so readers never see half a file.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{BoxFuture, CertStateStore, Listed, StoreError, Stored, Write, short_hash, valid_key};

/// A directory of small files.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    /// Serializes conditional writes and deletes within this process (the directory is not
    /// shared between PoPs; `IfAbsent` is atomic across processes anyway, by `link`).
    write_lock: Arc<Mutex<()>>,
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl DirStore {
    /// A store under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore {
            root: root.into(),
            write_lock: Arc::new(Mutex::new(())),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if !valid_key(key) {
            return Err(StoreError::Key(key.to_owned()));
        }
        Ok(self.root.join(key))
    }

    /// Runs blocking file work off the async threads.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(DirStore) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, StoreError>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(this))
                .await
                .unwrap_or_else(|e| {
                    Err(StoreError::Io {
                        path: "(blocking task)".to_owned(),
                        source: std::io::Error::other(e.to_string()),
                    })
                })
        })
    }
}

fn etag_of(body: &[u8]) -> String {
    short_hash(body)
}

fn read(path: &Path) -> Result<Option<Stored>, StoreError> {
    match std::fs::read(path) {
        Ok(body) => Ok(Some(Stored {
            etag: etag_of(&body),
            body: Bytes::from(body),
        })),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Writes `body` to a new temporary file next to `path` and returns its path.
fn write_temp(path: &Path, body: &[u8]) -> Result<PathBuf, StoreError> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Key(path.display().to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let temp = dir.join(format!(".tmp-{}-{nanos}", std::process::id()));
    let mut file = std::fs::File::create(&temp).map_err(|e| io_err(&temp, e))?;
    file.write_all(body).map_err(|e| io_err(&temp, e))?;
    file.sync_all().map_err(|e| io_err(&temp, e))?;
    Ok(temp)
}

impl CertStateStore for DirStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        let path = match self.path(key) {
            Ok(path) => path,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        self.blocking(move |_| read(&path))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        when: Write,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let path = match self.path(key) {
            Ok(path) => path,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        self.blocking(move |this| {
            let _guard = this.write_lock.lock().unwrap_or_else(|p| p.into_inner());
            let temp = write_temp(&path, &body)?;
            let done = match &when {
                Write::Always => true,
                Write::IfAbsent => match std::fs::hard_link(&temp, &path) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&temp);
                        return Ok(Some(etag_of(&body)));
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
                    Err(e) => {
                        let _ = std::fs::remove_file(&temp);
                        return Err(io_err(&path, e));
                    }
                },
                Write::IfMatch(etag) => read(&path)?.is_some_and(|current| &current.etag == etag),
            };
            if !done {
                let _ = std::fs::remove_file(&temp);
                return Ok(None);
            }
            std::fs::rename(&temp, &path).map_err(|e| io_err(&path, e))?;
            Ok(Some(etag_of(&body)))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let path = match self.path(key) {
            Ok(path) => path,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        self.blocking(move |this| {
            let _guard = this.write_lock.lock().unwrap_or_else(|p| p.into_inner());
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(&path, e)),
            }
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, StoreError>> {
        let dir_key = prefix.trim_end_matches('/').to_owned();
        let path = match self.path(&dir_key) {
            Ok(path) => path,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        self.blocking(move |_| {
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_err(&path, e)),
            };
            let mut listed = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_err(&path, e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                if let Some(stored) = read(&entry.path())? {
                    listed.push(Listed {
                        key: format!("{dir_key}/{name}"),
                        etag: stored.etag,
                    });
                }
            }
            listed.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(listed)
        })
    }
}
