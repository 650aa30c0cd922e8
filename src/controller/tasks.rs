//! Supervision of the controller's long-lived tasks: each runs in one `JoinSet` under a name,
//! none is expected to end while the process runs, so the first that returns, fails or
//! panics ends `run` with an error naming it (and the Pod restarts). Dropping the set aborts
//! every task.

use std::collections::HashMap;
use std::future::Future;
use tokio::task::{Id, JoinSet};

/// What a task's return value says about why it ended.
pub trait Outcome: Send + 'static {
    /// The task's own error, if it returned one.
    fn into_error(self) -> Option<anyhow::Error>;
}

impl Outcome for () {
    fn into_error(self) -> Option<anyhow::Error> {
        None
    }
}

impl<E: Into<anyhow::Error> + Send + 'static> Outcome for Result<(), E> {
    fn into_error(self) -> Option<anyhow::Error> {
        self.err().map(Into::into)
    }
}

/// Named tasks, none of which may end.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<Option<anyhow::Error>>,
    names: HashMap<Id, String>,
}

impl Tasks {
    /// Run `task` until the set is dropped; `name` says what it is ("the HTTP endpoint").
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future + Send + 'static,
        F::Output: Outcome,
    {
        let handle = self.set.spawn(async move { task.await.into_error() });
        self.names.insert(handle.id(), name.into());
    }

    /// Wait until any task ends and say which and why. Never returns while all run; with no
    /// tasks at all, waits forever.
    pub async fn ended(&mut self) -> anyhow::Error {
        let Some(joined) = self.set.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, why) = match joined {
            Ok((id, None)) => (id, "ended".to_string()),
            Ok((id, Some(e))) => (id, format!("failed: {e:#}")),
            Err(e) if e.is_panic() => (e.id(), "panicked".to_string()),
            Err(e) => (e.id(), "was cancelled".to_string()),
        };
        let name = self.names.remove(&id).unwrap_or_else(|| "a task".into());
        anyhow::anyhow!("{name} {why}")
    }

    /// Abort every task and wait until all have stopped.
    pub async fn shutdown(&mut self) {
        self.set.shutdown().await;
        self.names.clear();
    }

    /// Run `work` while watching the tasks: its output, or the error of the first task that
    /// ended meanwhile.
    pub async fn supervise<T>(&mut self, work: impl Future<Output = T>) -> anyhow::Result<T> {
        tokio::select! {
            out = work => Ok(out),
            e = self.ended() => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_task_that_returns_is_named() {
        let mut tasks = Tasks::default();
        tasks.spawn("the forever task", std::future::pending::<()>());
        tasks.spawn("the SealedSecret watcher (all namespaces)", async {});
        let e = tasks.ended().await;
        assert_eq!(
            e.to_string(),
            "the SealedSecret watcher (all namespaces) ended"
        );
    }

    #[tokio::test]
    async fn a_task_that_fails_is_named_with_its_error() {
        let mut tasks = Tasks::default();
        tasks.spawn("the HTTP endpoint", async {
            Err::<(), _>(std::io::Error::other("address in use"))
        });
        let e = tasks.ended().await;
        assert_eq!(e.to_string(), "the HTTP endpoint failed: address in use");
    }

    #[tokio::test]
    async fn a_panicking_task_is_an_error() {
        let mut tasks = Tasks::default();
        tasks.spawn("the forever task", std::future::pending::<()>());
        tasks.spawn("the key manager", async {
            if true {
                panic!("boom");
            }
        });
        let e = tasks.ended().await;
        assert_eq!(e.to_string(), "the key manager panicked");
    }

    #[tokio::test]
    async fn supervise_returns_the_work_or_the_first_task_that_ended() {
        let mut tasks = Tasks::default();
        tasks.spawn("the forever task", std::future::pending::<()>());
        assert_eq!(tasks.supervise(async { 7 }).await.unwrap(), 7);
        tasks.spawn("the status writer", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
        });
        let e = tasks
            .supervise(std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "the status writer ended");
    }

    #[tokio::test]
    async fn dropping_the_set_aborts_its_tasks() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut tasks = Tasks::default();
        tasks.spawn("the holder", async move {
            let _tx = tx; // dropped when the task is aborted
            std::future::pending::<()>().await
        });
        drop(tasks);
        let closed = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(
            closed,
            Ok(None),
            "the task was aborted and dropped its sender"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_returns_once_every_task_has_stopped() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut tasks = Tasks::default();
        for _ in 0..4 {
            let tx = tx.clone();
            tasks.spawn("a writer", async move {
                let _tx = tx;
                std::future::pending::<()>().await
            });
        }
        drop(tx);
        tasks.shutdown().await;
        assert_eq!(
            rx.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
        );
    }
}
