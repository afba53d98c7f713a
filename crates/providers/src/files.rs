//! The file store: product media (and later digital goods) under `<data-dir>/files` by default, or
//! in any S3-compatible bucket (AWS, Cloudflare R2, MinIO, Aliyun OSS, ...) when one is configured.
//! Both go through `object_store`, so the code path is one; keys are `/`-separated relative paths.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload};

/// Where files go when a bucket is configured.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub bucket: String,
    /// e.g. `https://s3.us-east-1.amazonaws.com`, `https://<account>.r2.cloudflarestorage.com`,
    /// `http://127.0.0.1:9000`; empty = AWS for the region.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Prepended to every key (`shop1/` keeps several shops in one bucket).
    pub prefix: String,
}

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("no such file")]
    NotFound,
    #[error("invalid file key")]
    BadKey,
    #[error("file store: {0}")]
    Store(String),
}

impl From<object_store::Error> for FilesError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => FilesError::NotFound,
            object_store::Error::InvalidPath { .. } => FilesError::BadKey,
            e => FilesError::Store(e.to_string()),
        }
    }
}

/// A file read back: its bytes (or the requested range of them) and its full size.
#[derive(Debug)]
pub struct Read {
    pub bytes: Bytes,
    pub total: u64,
    /// The byte range served, when a range was asked for.
    pub range: Option<std::ops::Range<u64>>,
}

/// The file store. Cheap to clone.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    description: String,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Files {
    /// Files under a local directory (created when missing).
    pub fn local(dir: &Path) -> Result<Self, FilesError> {
        std::fs::create_dir_all(dir).map_err(|e| FilesError::Store(e.to_string()))?;
        let fs = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(Files {
            store: Arc::new(fs),
            prefix: String::new(),
            description: format!("files in {}", dir.display()),
        })
    }

    /// Files in an S3-compatible bucket.
    pub fn s3(s: &S3Settings) -> Result<Self, FilesError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(if s.region.is_empty() {
                "us-east-1"
            } else {
                &s.region
            })
            .with_access_key_id(&s.access_key_id)
            .with_secret_access_key(&s.secret_access_key);
        if !s.endpoint.is_empty() {
            b = b
                .with_endpoint(s.endpoint.trim_end_matches('/'))
                .with_allow_http(s.endpoint.starts_with("http://"));
        }
        let store = b.build()?;
        let prefix = s.prefix.trim_matches('/');
        Ok(Files {
            store: Arc::new(store),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            description: format!("files in bucket {}", s.bucket),
        })
    }

    fn key(&self, key: &str) -> Result<Key, FilesError> {
        if key.is_empty()
            || key
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(FilesError::BadKey);
        }
        Key::parse(format!("{}{key}", self.prefix)).map_err(|_| FilesError::BadKey)
    }

    /// Write a whole file (replacing one at the same key).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), FilesError> {
        let k = self.key(key)?;
        self.store.put(&k, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Read a file, or a byte range of it: `(start, Some(end))` is `start..end` (end exclusive),
    /// `(start, None)` from `start` to the end.
    pub async fn get(
        &self,
        key: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Read, FilesError> {
        let k = self.key(key)?;
        let opts = GetOptions {
            range: range.map(|r| match r {
                (start, Some(end)) => GetRange::Bounded(start..end),
                (start, None) => GetRange::Offset(start),
            }),
            ..Default::default()
        };
        let r = self.store.get_opts(&k, opts).await?;
        let total = r.meta.size;
        let served = r.range.clone();
        let bytes = r.bytes().await?;
        Ok(Read {
            bytes,
            total,
            range: range.map(|_| served),
        })
    }

    /// Delete a file; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), FilesError> {
        let k = self.key(key)?;
        match self.store.delete(&k).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a file exists.
    pub async fn exists(&self, key: &str) -> Result<bool, FilesError> {
        let k = self.key(key)?;
        match self.store.head(&k).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
