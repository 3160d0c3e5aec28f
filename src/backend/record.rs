//! Which legacy calls a SCIM request caused, for its audit entry.
//!
//! The audit layer opens a [`CallLog`] around each request it audits; [`Backend::call`]
//! (crate::backend::Backend::call) appends to the log of the task it runs in. A task-local
//! keeps the pipeline's signatures free of audit plumbing, and calls made outside an audited
//! request (lookup refreshes, readiness probes) are simply not recorded.

use crate::store::BackendCall;
use std::sync::{Arc, Mutex, PoisonError};

tokio::task_local! {
    static CALLS: CallLog;
}

/// The backend calls of one request, in the order they completed, and the name of the
/// resource it was about (userName / displayName) when the pipeline learnt it.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Logged>>);

#[derive(Debug, Default)]
struct Logged {
    calls: Vec<BackendCall>,
    label: Option<String>,
}

impl CallLog {
    /// Runs `fut` with this log collecting the backend calls it makes.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        CALLS.scope(self.clone(), fut).await
    }

    /// The calls recorded so far, leaving the log empty.
    pub fn take(&self) -> Vec<BackendCall> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner).calls)
    }

    /// How many calls were recorded so far.
    pub fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .calls
            .len()
    }

    /// Whether no call was recorded so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resource's name as the pipeline noted it ([`note_label`]), if it did.
    pub fn label(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .label
            .clone()
    }

    fn push(&self, call: BackendCall) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .calls
            .push(call);
    }
}

/// Notes the name (userName / displayName) of the resource the current request is about,
/// for its audit entry; the first name noted stays. Nothing outside an audited request.
pub fn note_label(label: Option<String>) {
    let Some(label) = label else {
        return;
    };
    let _ = CALLS.try_with(|log| {
        let mut l = log.0.lock().unwrap_or_else(PoisonError::into_inner);
        if l.label.is_none() {
            l.label = Some(label);
        }
    });
}

/// Appends `call` to the current request's log, if the current task has one.
pub(crate) fn record(call: BackendCall) {
    let _ = CALLS.try_with(|log| log.push(call));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(path: &str) -> BackendCall {
        BackendCall {
            method: "GET".into(),
            path: path.into(),
            status: 200,
            ms: 1,
        }
    }

    #[tokio::test]
    async fn records_only_inside_a_scope() {
        record(call("/outside"));
        let log = CallLog::default();
        log.scope(async {
            record(call("/a"));
            record(call("/b"));
        })
        .await;
        record(call("/after"));
        let paths: Vec<String> = log.take().into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["/a", "/b"]);
        assert!(log.take().is_empty());
    }
}
