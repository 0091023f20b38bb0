//! Body files. A body is streamed to `tmp/<id>`, fsynced, renamed to `blobs/<xx>/<id>` and the
//! directory fsynced before the index may reference it. Ids are random, never derived from
//! object keys, so no key can name a path outside the data directory.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use crate::error::StoreError;

/// Size of the buffer bodies are gathered in before each write to disk.
const WRITE_CHUNK: usize = 1 << 20;

/// A body file made durable.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file id.
    pub id: String,
    /// Bytes written.
    pub size: u64,
    /// MD5 of the bytes (all zero when not computed).
    pub md5: [u8; 16],
}

/// Why writing a body failed; the temp file is gone either way.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The request body stream failed (client gone, bad chunk signature, SHA-256 mismatch).
    #[error("request body: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    /// The disk failed.
    #[error("writing body file: {0}")]
    Io(#[from] std::io::Error),
}

/// A slice of an existing body file to copy.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file id.
    pub id: String,
    /// First byte.
    pub offset: u64,
    /// Byte count.
    pub len: u64,
}

/// The body file directory.
#[derive(Debug)]
pub struct BlobStore {
    tmp: PathBuf,
    blobs: PathBuf,
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn is_id(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl BlobStore {
    /// Creates the directory layout under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<BlobStore, StoreError> {
        let tmp = data_dir.join("tmp");
        let blobs = data_dir.join("blobs");
        let mkdir = |p: &Path| {
            std::fs::create_dir_all(p)
                .map_err(|e| StoreError::io(format!("creating {}", p.display()), e))
        };
        mkdir(&tmp)?;
        for i in 0..=255u8 {
            mkdir(&blobs.join(format!("{i:02x}")))?;
        }
        for dir in [data_dir, blobs.as_path()] {
            fsync_dir(dir).map_err(|e| StoreError::io(format!("syncing {}", dir.display()), e))?;
        }
        Ok(BlobStore { tmp, blobs })
    }

    fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// The directory of temporary files (emptied when the store opens).
    #[must_use]
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Where the body file `id` lives.
    #[must_use]
    pub fn path(&self, id: &str) -> PathBuf {
        let fan = id.get(..2).unwrap_or("00");
        self.blobs.join(fan).join(id)
    }

    /// Streams `body` into a new durable body file, computing its MD5.
    pub async fn write<S, E>(&self, mut body: S) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let id = Self::new_id();
        let tmp = self.tmp.join(&id);
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut md5 = Md5::new();
            let mut size = 0u64;
            let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| WriteError::Body(e.into()))?;
                md5.update(&chunk);
                size += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
                if buf.len() >= WRITE_CHUNK {
                    file.write_all(&buf).await?;
                    buf.clear();
                }
            }
            file.write_all(&buf).await?;
            file.flush().await?;
            file.sync_all().await?;
            Ok::<_, WriteError>((size, md5.finalize().into()))
        }
        .await;
        match result {
            Ok((size, md5)) => {
                self.publish(&id).await?;
                Ok(Written { id, size, md5 })
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// Moves `tmp/<id>` into place and makes the rename durable.
    async fn publish(&self, id: &str) -> std::io::Result<()> {
        let tmp = self.tmp.join(id);
        let dest = self.path(id);
        let result = async {
            tokio::fs::rename(&tmp, &dest).await?;
            let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            tokio::task::spawn_blocking(move || fsync_dir(&dir))
                .await
                .map_err(std::io::Error::other)?
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
            let _ = tokio::fs::remove_file(&dest).await;
        }
        result
    }

    /// Concatenates slices of existing body files into a new durable one, hashing the bytes
    /// when `hash` is set. Runs on the blocking pool; nothing is held in memory beyond a
    /// fixed buffer.
    pub async fn copy(&self, sources: Vec<Source>, hash: bool) -> Result<Written, WriteError> {
        let id = Self::new_id();
        let tmp = self.tmp.join(&id);
        let paths: Vec<(PathBuf, Source)> =
            sources.into_iter().map(|s| (self.path(&s.id), s)).collect();
        let tmp2 = tmp.clone();
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, [u8; 16])> {
            let mut out = std::fs::File::create(&tmp2)?;
            let mut md5 = Md5::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; WRITE_CHUNK];
            for (path, source) in paths {
                let mut file = std::fs::File::open(&path)?;
                file.seek(SeekFrom::Start(source.offset))?;
                let mut part = file.take(source.len);
                let copied = if hash {
                    let mut n = 0u64;
                    loop {
                        let read = part.read(&mut buf)?;
                        if read == 0 {
                            break;
                        }
                        md5.update(&buf[..read]);
                        out.write_all(&buf[..read])?;
                        n += read as u64;
                    }
                    n
                } else {
                    std::io::copy(&mut part, &mut out)?
                };
                if copied != source.len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "body file shorter than recorded",
                    ));
                }
                size += copied;
            }
            out.sync_all()?;
            Ok((size, md5.finalize().into()))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match result {
            Ok((size, md5)) => {
                self.publish(&id).await?;
                Ok(Written { id, size, md5 })
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e.into())
            }
        }
    }

    /// Opens a body file for reading.
    pub async fn open_read(&self, id: &str) -> std::io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.path(id)).await
    }

    /// Deletes body files the index no longer references (best effort; leftovers are swept at
    /// the next open).
    pub async fn remove(&self, ids: Vec<String>) {
        for id in ids {
            let path = self.path(&id);
            if let Err(e) = tokio::fs::remove_file(&path).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, path = %path.display(), "could not delete body file");
            }
        }
    }

    /// Crash recovery: deletes every temp file and every body file not in `keep`.
    /// Returns how many files were removed.
    pub fn sweep(&self, keep: &HashSet<String>) -> Result<usize, StoreError> {
        let mut removed = 0;
        let io = |p: &Path, e| StoreError::io(format!("sweeping {}", p.display()), e);
        for entry in std::fs::read_dir(&self.tmp).map_err(|e| io(&self.tmp, e))? {
            let path = entry.map_err(|e| io(&self.tmp, e))?.path();
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            removed += 1;
        }
        for fan in std::fs::read_dir(&self.blobs).map_err(|e| io(&self.blobs, e))? {
            let fan = fan.map_err(|e| io(&self.blobs, e))?.path();
            if !fan.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&fan).map_err(|e| io(&fan, e))? {
                let entry = entry.map_err(|e| io(&fan, e))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if is_id(&name) && keep.contains(name.as_ref()) {
                    continue;
                }
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_copy_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let chunks = vec![
            Ok::<_, std::io::Error>(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ];
        let a = store.write(futures::stream::iter(chunks)).await.unwrap();
        assert_eq!(a.size, 11);
        assert_eq!(hex::encode(a.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let b = store
            .copy(
                vec![
                    Source {
                        id: a.id.clone(),
                        offset: 6,
                        len: 5,
                    },
                    Source {
                        id: a.id.clone(),
                        offset: 0,
                        len: 5,
                    },
                ],
                true,
            )
            .await
            .unwrap();
        assert_eq!(std::fs::read(store.path(&b.id)).unwrap(), b"worldhello");
        assert!(
            store
                .copy(
                    vec![Source {
                        id: a.id.clone(),
                        offset: 6,
                        len: 50
                    }],
                    false
                )
                .await
                .is_err()
        );

        std::fs::write(dir.path().join("tmp/leftover"), b"x").unwrap();
        let keep: HashSet<String> = [a.id.clone()].into();
        assert_eq!(store.sweep(&keep).unwrap(), 2);
        assert!(store.path(&a.id).exists());
        assert!(!store.path(&b.id).exists());
    }

    #[tokio::test]
    async fn failed_body_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let chunks = vec![
            Ok(Bytes::from_static(b"x")),
            Err(std::io::Error::other("client went away")),
        ];
        assert!(matches!(
            store.write(futures::stream::iter(chunks)).await,
            Err(WriteError::Body(_))
        ));
        assert_eq!(store.sweep(&HashSet::new()).unwrap(), 0);
    }
}
