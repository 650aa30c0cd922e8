//! What wakes the reconcilers besides their own objects' changes, with no trigger lost:
//! "look at everything again" requests (key changes, takeover), which coalesce, and the
//! deletions of managed Secrets, queued losslessly to their scope's controller.

use crate::api::SealedSecret;
use futures::Stream;
use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{broadcast, watch};

/// The triggers the watchers pull (each holds a clone).
#[derive(Clone)]
pub struct Triggers {
    pub all: All,
    keys: watch::Sender<()>,
    usage: watch::Sender<()>,
}

impl Triggers {
    pub fn new() -> Self {
        Self {
            all: All::new(16),
            keys: watch::Sender::new(()),
            usage: watch::Sender::new(()),
        }
    }

    /// A key Secret or SealingKey changed: every object may open (or re-wrap) differently,
    /// and the key manager has work.
    pub fn keys_changed(&self) {
        self.all.ask();
        self.keys.send_replace(());
    }

    /// A SealedSecret changed: key usage counts may have.
    pub fn usage_changed(&self) {
        self.usage.send_replace(());
    }

    /// What wakes the key manager from now on: key changes, and usage changes.
    pub fn key_manager_wakes(&self) -> (watch::Receiver<()>, watch::Receiver<()>) {
        (self.keys.subscribe(), self.usage.subscribe())
    }
}

/// "Reconcile all" requests, to every scope's controller. Requests coalesce: a controller
/// that fell behind sees one request for all it missed.
#[derive(Clone)]
pub struct All(broadcast::Sender<()>);

impl All {
    /// Up to `capacity` requests are kept for a slow receiver before they coalesce.
    pub fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity).0)
    }

    /// Ask every controller subscribed so far to look at every object.
    pub fn ask(&self) {
        let _ = self.0.send(()); // no subscriber yet: nobody to ask
    }

    /// The requests made from now on, as a stream for `Controller::reconcile_all_on`.
    pub fn requests(&self) -> impl Stream<Item = ()> + Send + use<> {
        requests(self.0.subscribe())
    }
}

/// A broadcast receiver of requests as a stream. Each item stands for every request made
/// until it is yielded (they all ask the same thing): requests waiting in the buffer are
/// taken with it, and a lagged receiver yields one item for all it missed, never nothing.
fn requests(rx: broadcast::Receiver<()>) -> impl Stream<Item = ()> + Send {
    use broadcast::error::{RecvError, TryRecvError};
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(()) | Err(RecvError::Lagged(_)) => {
                while let Ok(()) | Err(TryRecvError::Lagged(_)) = rx.try_recv() {}
                Some(((), rx))
            }
            Err(RecvError::Closed) => None,
        }
    })
}

/// Where one scope's managed-Secret watcher sends the owners of deleted Secrets: queued
/// without bound or loss while this replica leads; dropped while it stands by (takeover
/// reconciles every object anyway, and an idle standby must not grow a queue).
pub struct Deletions {
    tx: mpsc::UnboundedSender<ObjectRef<SealedSecret>>,
    leading: watch::Receiver<bool>,
}

impl Deletions {
    /// A sender and the stream of owners for the scope's controller.
    pub fn channel(
        leading: watch::Receiver<bool>,
    ) -> (Self, mpsc::UnboundedReceiver<ObjectRef<SealedSecret>>) {
        let (tx, rx) = mpsc::unbounded();
        (Self { tx, leading }, rx)
    }

    /// The Secret that `owner` controls was deleted.
    pub fn deleted(&self, owner: ObjectRef<SealedSecret>) {
        if *self.leading.borrow() {
            // Fails only once the controller is gone, and with it this process's reconciles.
            let _ = self.tx.unbounded_send(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::time::Duration;

    /// Requests yielded within 50 ms of each other.
    async fn yielded(requests: &mut (impl Stream<Item = ()> + Unpin)) -> usize {
        let mut n = 0;
        while let Ok(Some(())) =
            tokio::time::timeout(Duration::from_millis(50), requests.next()).await
        {
            n += 1;
        }
        n
    }

    #[tokio::test]
    async fn a_lagged_receiver_sees_one_request_for_all_it_missed() {
        let all = All::new(2);
        let mut requests = std::pin::pin!(all.requests());
        for _ in 0..5 {
            all.ask(); // overflows the two-slot channel: the receiver lags
        }
        assert_eq!(
            yielded(&mut requests).await,
            1,
            "lag and the rest: one request"
        );
        all.ask();
        assert_eq!(
            yielded(&mut requests).await,
            1,
            "a later request still arrives"
        );
        all.ask();
        all.ask();
        assert_eq!(yielded(&mut requests).await, 1, "queued requests coalesce");
    }

    #[tokio::test]
    async fn requests_end_when_every_sender_is_gone() {
        let all = All::new(4);
        let requests = all.requests();
        drop(all);
        assert_eq!(requests.collect::<Vec<_>>().await, Vec::<()>::new());
    }

    #[tokio::test]
    async fn deletions_are_all_queued_while_leading_and_none_while_standing_by() {
        let (leading_tx, leading) = watch::channel(false);
        let (deletions, mut owners) = Deletions::channel(leading);
        deletions.deleted(ObjectRef::new("while-standby").within("ns"));
        leading_tx.send_replace(true);
        for i in 0..10_000 {
            deletions.deleted(ObjectRef::new(&format!("s{i}")).within("ns"));
        }
        drop(deletions);
        let mut got = Vec::new();
        while let Some(owner) = owners.next().await {
            got.push(owner.name);
        }
        assert_eq!(got.len(), 10_000, "none lost");
        assert_eq!(got[0], "s0");
        assert_eq!(got[9_999], "s9999");
        assert!(!got.iter().any(|n| n == "while-standby"));
    }
}
