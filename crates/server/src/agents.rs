//! What the server keeps in memory for its agents: the job-signing key, the
//! CA that agents pin, a short-lived cache of endpoint credentials, which
//! endpoints have open jobs, and check-in times waiting to be written.
//!
//! A check-in with an unchanged inventory is answered from memory: one
//! SHA-256 of the credential, one map look-up, one hash compare. The caches
//! expire after `CACHE_SECONDS`, so a revocation or a job issued by another
//! server sharing the database is seen within that time. Check-in times are
//! written in batches by the sweep (`work::sweep`), at most `CACHE_SECONDS`
//! after they happened.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use jiff::{SignedDuration, Timestamp};
use patchwarden_protocol::JobKey;
use patchwarden_store::{EndpointAuth, Store};

use crate::error::ApiError;
use crate::secrets;

/// How long a cached credential or open-jobs answer is trusted.
pub const CACHE_SECONDS: i64 = 5;

/// The agents' side of the server's state.
#[derive(Debug)]
pub struct Agents {
    pub job_key: JobKey,
    /// The Patchwarden CA (PEM) when the server speaks HTTPS.
    pub ca_pem: Option<String>,
    pub ca_fingerprint: Option<String>,
    /// Seconds between check-ins, before the agent's jitter.
    pub interval_seconds: u32,
    /// Hours an enrolment token stays valid.
    pub enrolment_hours: u32,
    credentials: RwLock<HashMap<String, Cached>>,
    open_jobs: RwLock<OpenJobs>,
    seen: Mutex<HashMap<i64, (Timestamp, i64)>>,
}

#[derive(Clone, Debug)]
struct Cached {
    endpoint: EndpointAuth,
    checked_at: Timestamp,
}

#[derive(Debug, Default)]
struct OpenJobs {
    endpoints: HashSet<i64>,
    loaded_at: Option<Timestamp>,
}

impl Agents {
    pub fn new(
        job_key: JobKey,
        ca_pem: Option<String>,
        ca_fingerprint: Option<String>,
        interval_seconds: u32,
        enrolment_hours: u32,
    ) -> Self {
        Self {
            job_key,
            ca_pem,
            ca_fingerprint,
            interval_seconds,
            enrolment_hours,
            credentials: RwLock::new(HashMap::new()),
            open_jobs: RwLock::new(OpenJobs::default()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint holding `credential`, or 401.
    pub async fn authenticate(
        &self,
        store: &Store,
        credential: &str,
        now: Timestamp,
    ) -> Result<EndpointAuth, ApiError> {
        let hash = secrets::digest(credential);
        let fresh = now - SignedDuration::from_secs(CACHE_SECONDS);
        if let Some(cached) = read(&self.credentials).get(&hash)
            && cached.checked_at > fresh
        {
            return Ok(cached.endpoint.clone());
        }
        let Some(endpoint) = store.endpoint_by_credential(&hash).await? else {
            write(&self.credentials).remove(&hash);
            return Err(ApiError::Unauthenticated(
                "the endpoint's credential is unknown or revoked: enrol the agent again".to_owned(),
            ));
        };
        write(&self.credentials)
            .insert(hash, Cached { endpoint: endpoint.clone(), checked_at: now });
        Ok(endpoint)
    }

    /// Forgets an endpoint's cached credential (after a revocation).
    pub fn forget(&self, endpoint: i64) {
        write(&self.credentials).retain(|_, cached| cached.endpoint.id != endpoint);
    }

    /// Notes the inventory hash an endpoint's cached credential should compare with.
    pub fn note_inventory(&self, endpoint: i64, hash: &str) {
        for cached in write(&self.credentials).values_mut() {
            if cached.endpoint.id == endpoint {
                cached.endpoint.inventory_hash = hash.to_owned();
            }
        }
    }

    /// Whether `endpoint` may have open jobs; reloads the set when it is stale.
    pub async fn may_have_jobs(
        &self,
        store: &Store,
        endpoint: i64,
        now: Timestamp,
    ) -> Result<bool, ApiError> {
        let fresh = now - SignedDuration::from_secs(CACHE_SECONDS);
        {
            let open = read(&self.open_jobs);
            if open.loaded_at.is_some_and(|at| at > fresh) {
                return Ok(open.endpoints.contains(&endpoint));
            }
        }
        let endpoints = store.endpoints_with_open_jobs().await?;
        let found = endpoints.contains(&endpoint);
        *write(&self.open_jobs) = OpenJobs { endpoints, loaded_at: Some(now) };
        Ok(found)
    }

    /// Notes that `endpoint` has an open job now.
    pub fn note_open_job(&self, endpoint: i64) {
        write(&self.open_jobs).endpoints.insert(endpoint);
    }

    /// Notes a check-in, to be written by `flush_seen`.
    pub fn saw(&self, endpoint: i64, at: Timestamp, clock_offset_ms: i64) {
        lock(&self.seen).insert(endpoint, (at, clock_offset_ms));
    }

    /// Writes the check-ins noted since the last flush.
    pub async fn flush_seen(&self, store: &Store) -> Result<usize, ApiError> {
        let batch: Vec<(i64, Timestamp, i64)> =
            lock(&self.seen).drain().map(|(id, (at, offset))| (id, at, offset)).collect();
        store.record_last_seen(&batch).await?;
        Ok(batch.len())
    }
}

// A poisoned lock only means another request panicked while holding it; the
// maps stay usable, so their contents are taken as they are.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
