//! Configuration reload: who asks for one, how they are serialised, and what the last one
//! did.
//!
//! Three triggers ask for a reload: SIGHUP, a change to the configuration's files (polled;
//! a burst of writes, or a Kubernetes ConfigMap's symlink swap, gives one reload once the
//! files are still), and the admin page's button. They all go through one task
//! ([`spawn`]), so reloads never overlap; each request for one gets the [`ReloadReport`]
//! of the reload it caused. What a reload does is the caller's `apply` (see
//! `app::start_gateway`): load and check the files exactly as at startup, then swap.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// A configuration, profile or script file changed.
    FileChange,
    /// The admin page's "Reload configuration" button.
    Admin,
    /// A direct call (tests, embedding).
    Call,
}

impl Trigger {
    /// The name in logs and on the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::FileChange => "file change",
            Trigger::Admin => "admin page",
            Trigger::Call => "call",
        }
    }
}

/// How one reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// What asked for it.
    pub trigger: Trigger,
    /// `Ok`: the new configuration serves; its items name changed settings that apply only
    /// after a restart (and keep their running values). `Err`: refused, every problem found;
    /// the running configuration stays.
    pub outcome: Result<Vec<String>, Vec<String>>,
}

/// A boxed future, as the `apply` callback returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

type Request = (Trigger, oneshot::Sender<ReloadReport>);

/// Asks the reload task for a reload, and tells what the last one did. Cheap to clone.
#[derive(Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Request>,
    last: Arc<Mutex<Option<ReloadReport>>>,
}

impl ReloadHandle {
    /// Reloads now (after any reload already running) and returns how it ended.
    pub async fn reload(&self, trigger: Trigger) -> ReloadReport {
        let (tx, rx) = oneshot::channel();
        let stopped = || ReloadReport {
            at: Utc::now(),
            trigger,
            outcome: Err(vec!["the gateway is stopping".into()]),
        };
        if self.tx.send((trigger, tx)).await.is_err() {
            return stopped();
        }
        rx.await.unwrap_or_else(|_| stopped())
    }

    /// The last reload's report; `None` before the first.
    pub fn last(&self) -> Option<ReloadReport> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Starts the reload task: every request runs `apply` in turn, its report is logged, kept
/// for [`ReloadHandle::last`] and returned to the asker. With `watch`, the task also polls
/// the files `watch.files()` names every `watch.every` and reloads when their content
/// changed and then stayed the same for one more poll.
pub fn spawn(
    apply: impl Fn(Trigger) -> BoxFuture<ReloadReport> + Send + Sync + 'static,
    watch: Option<Watch>,
) -> (ReloadHandle, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Request>(16);
    let last = Arc::new(Mutex::new(None));
    let handle = ReloadHandle {
        tx,
        last: last.clone(),
    };
    let task = tokio::spawn(async move {
        let mut watch = match watch {
            Some(w) => {
                let first = look(&w).await;
                if first.is_none() {
                    tracing::error!(
                        "could not look at the configuration files; they are not watched for changes"
                    );
                }
                first.map(|seen| (w, seen, None::<u64>))
            }
            None => None,
        };
        let every = watch
            .as_ref()
            .map_or(Duration::from_secs(3600), |(w, _, _)| w.every);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let (trigger, reply) = tokio::select! {
                req = rx.recv() => match req {
                    Some((t, reply)) => (t, Some(reply)),
                    None => return,
                },
                _ = tick.tick(), if watch.is_some() => {
                    let Some((w, seen, pending)) = watch.as_mut() else { continue };
                    let Some(now) = look(w).await else { continue };
                    if now == *seen {
                        *pending = None;
                        continue;
                    }
                    // Still being written (an editor's save, a ConfigMap update): wait until
                    // two polls agree.
                    if *pending != Some(now) {
                        *pending = Some(now);
                        continue;
                    }
                    (Trigger::FileChange, None)
                }
            };
            // The files as this reload reads them: an edit made while it runs is a change
            // for the next look. Whatever the outcome, a refused edit is not retried until
            // the files change again.
            let before = match watch.as_ref() {
                Some((w, _, _)) => look(w).await,
                None => None,
            };
            let report = apply(trigger).await;
            if let (Some((_, seen, pending)), Some(before)) = (watch.as_mut(), before) {
                *seen = before;
                *pending = None;
            }
            log(&report);
            *last.lock().unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
            if let Some(reply) = reply {
                let _ = reply.send(report);
            }
        }
    });
    (handle, task)
}

/// [`Watch::fingerprint`] on the blocking pool: it reads every watched file and, with
/// `relist`, parses the whole configuration (about 2M instructions a poll, callgrind), which
/// must not hold up a worker that serves requests. `None` if the look panicked (the poll is
/// skipped).
async fn look(w: &Watch) -> Option<u64> {
    let w = w.clone();
    tokio::task::spawn_blocking(move || w.fingerprint())
        .await
        .ok()
}

fn log(report: &ReloadReport) {
    let trigger = report.trigger.as_str();
    match &report.outcome {
        Ok(restart) if restart.is_empty() => {
            tracing::info!(target: crate::logging::LIFECYCLE, trigger, "configuration reloaded")
        }
        Ok(restart) => {
            tracing::info!(target: crate::logging::LIFECYCLE, trigger, "configuration reloaded");
            for setting in restart {
                tracing::warn!(trigger, %setting, "changed setting needs a restart; its running value stays");
            }
        }
        Err(problems) => {
            for problem in problems {
                tracing::error!(trigger, %problem, "configuration reload refused; the running configuration stays");
            }
        }
    }
}

/// Names the files and directories of the configuration as it is on disk now.
pub type Relist = Arc<dyn Fn() -> Option<(Vec<PathBuf>, Vec<PathBuf>)> + Send + Sync>;

/// The files a configuration is made of, polled for changes.
#[derive(Clone)]
pub struct Watch {
    /// Single files (the main configuration, the profile).
    pub files: Vec<PathBuf>,
    /// Directories whose files (not subdirectories) count too (the profile's scripts).
    pub dirs: Vec<PathBuf>,
    /// How often to look.
    pub every: Duration,
    /// Names the files again at each look (`None`: `files` and `dirs` stay): a profile
    /// directory reached through a symlink that is replaced (a Kubernetes ConfigMap's
    /// `..data`) resolves to a new place after each update.
    pub relist: Option<Relist>,
}

impl Watch {
    /// A hash of the files' names and contents; a missing file counts as empty. Reading
    /// follows symlinks, so a ConfigMap's `..data` swap is a change.
    pub fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let (mut files, dirs) = self
            .relist
            .as_ref()
            .and_then(|r| r())
            .unwrap_or_else(|| (self.files.clone(), self.dirs.clone()));
        for dir in &dirs {
            if let Ok(entries) = std::fs::read_dir(dir) {
                files.extend(
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_file() && !is_hidden(p)),
                );
            }
        }
        files.sort();
        for f in files {
            f.hash(&mut h);
            std::fs::read(&f).unwrap_or_default().hash(&mut h);
        }
        h.finish()
    }
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ok(trigger: Trigger) -> ReloadReport {
        ReloadReport {
            at: Utc::now(),
            trigger,
            outcome: Ok(Vec::new()),
        }
    }

    /// A file edit reloads once, after the files stopped changing; an unchanged poll does
    /// nothing; a call reloads at once and reports.
    #[tokio::test]
    async fn a_file_change_reloads_once_when_the_files_are_still() {
        let dir = std::env::temp_dir().join(format!("scimgate-reload-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        let main = dir.join("scimgate.toml");
        std::fs::write(&main, "a = 1\n").unwrap();
        std::fs::write(dir.join("scripts/user.rhai"), "1").unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let (handle, task) = spawn(
            move |t| {
                c.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move { ok(t) })
            },
            Some(Watch {
                files: vec![main.clone()],
                dirs: vec![dir.join("scripts")],
                every: Duration::from_millis(40),
                relist: None,
            }),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(count.load(Ordering::SeqCst), 0, "nothing changed");
        std::fs::write(dir.join("scripts/user.rhai"), "2").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "one reload for the edit");
        assert_eq!(handle.last().unwrap().trigger, Trigger::FileChange);
        let r = handle.reload(Trigger::Admin).await;
        assert_eq!(r.trigger, Trigger::Admin);
        assert_eq!(count.load(Ordering::SeqCst), 2);
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Looking at the files (which, with `relist`, parses the whole configuration every
    /// poll) runs off the runtime's workers: a slow look does not hold up requests. On a
    /// runtime with one thread, a task that wakes every 10 ms keeps waking while a look takes
    /// 300 ms.
    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_look_at_the_files_does_not_hold_up_the_runtime() {
        let looked = Arc::new(AtomicUsize::new(0));
        let l = looked.clone();
        let (_handle, task) = spawn(
            |t| Box::pin(async move { ok(t) }),
            Some(Watch {
                files: Vec::new(),
                dirs: Vec::new(),
                every: Duration::from_millis(20),
                relist: Some(Arc::new(move || {
                    l.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(300));
                    Some((Vec::new(), Vec::new()))
                })),
            }),
        );
        let started = std::time::Instant::now();
        let mut longest = Duration::ZERO;
        let mut last = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(1200) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            longest = longest.max(last.elapsed());
            last = std::time::Instant::now();
        }
        task.abort();
        assert!(
            looked.load(Ordering::SeqCst) >= 2,
            "the files were looked at"
        );
        assert!(
            longest < Duration::from_millis(150),
            "the runtime stalled for {longest:?} while the files were looked at"
        );
    }
}
