//! Polling a rarely ready future only when it has woken the task.
//!
//! A connection waits on its client and, beside it, on things that almost
//! never happen: a stop signal (three `CancellationToken`s, each poll of
//! which takes two locks), the timer, the room's queue on an echo server.
//! `tokio::select!` polls every branch each time the task wakes, so at one
//! request in flight these polls were about 700 of the server's 3,700
//! instructions per echoed message (callgrind).
//!
//! A [`WakeFlag`] gives the futures it guards a waker of its own, which
//! raises the flag and then wakes the task. It polls them only while the
//! flag is up: at first, after they woke the task, and for as long as they
//! keep answering `Ready` (a queue with more in it). Once they answer
//! `Pending` they hold the flag's waker, so they cannot be missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// See the module docs. One per group of futures polled together.
pub(crate) struct WakeFlag {
    woken: Arc<Woken>,
    /// The flag's waker, handed to the guarded futures.
    waker: Waker,
}

/// What the flag's waker reaches.
struct Woken {
    /// Up: the guarded futures must be polled.
    flag: AtomicBool,
    /// The task that polls them, woken after the flag is raised.
    task: AtomicWaker,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl WakeFlag {
    /// A flag that is up: the first poll goes through.
    pub(crate) fn new() -> WakeFlag {
        let woken = Arc::new(Woken {
            flag: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(woken.clone());
        WakeFlag { woken, waker }
    }

    /// Raises the flag: the next [`WakeFlag::poll`] polls. For a guarded
    /// future changed from outside, such as a timer reset to a new
    /// deadline.
    pub(crate) fn raise(&self) {
        self.woken.flag.store(true, Ordering::Release);
    }

    /// `poll` with the flag's waker if the flag is up; `Pending` otherwise,
    /// with the task registered to be woken when a guarded future wakes.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // Registered before the flag is read: a wake in between either
        // shows in the flag or wakes the waker registered here.
        self.woken.task.register(cx.waker());
        if !self.woken.flag.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let polled = poll(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            // A future that answered holds no waker now: it is polled
            // again next time, until it answers `Pending`.
            self.raise();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn a_guarded_future_that_fires_later_wakes_the_task() {
        let token = CancellationToken::new();
        let flag = WakeFlag::new();
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        let canceller = {
            let token = token.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                token.cancel();
            })
        };
        tokio::time::timeout(
            Duration::from_secs(10),
            poll_fn(|cx| flag.poll(cx, |cx| cancelled.as_mut().poll(cx))),
        )
        .await
        .expect("the cancellation was missed");
        canceller.await.unwrap();
    }

    #[tokio::test]
    async fn it_is_not_polled_until_it_wakes_the_task() {
        let flag = WakeFlag::new();
        let polls = std::cell::Cell::new(0);
        let poll_never = |_: &mut Context<'_>| {
            polls.set(polls.get() + 1);
            Poll::<()>::Pending
        };
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(flag.poll(&mut cx, poll_never).is_pending());
        assert!(flag.poll(&mut cx, poll_never).is_pending());
        assert_eq!(polls.get(), 1, "polled again without a wake");
        flag.waker.wake_by_ref();
        assert!(flag.poll(&mut cx, poll_never).is_pending());
        assert_eq!(polls.get(), 2, "not polled after a wake");
    }

    #[tokio::test]
    async fn a_queue_is_drained_however_many_it_holds_and_woken_for_more() {
        let (tx, mut rx) = mpsc::channel(8);
        let flag = WakeFlag::new();
        for i in 0..3 {
            tx.send(i).await.unwrap();
        }
        for i in 0..3 {
            let got = poll_fn(|cx| flag.poll(cx, |cx| rx.poll_recv(cx))).await;
            assert_eq!(got, Some(i));
        }
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(3).await.unwrap();
        });
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            poll_fn(|cx| flag.poll(cx, |cx| rx.poll_recv(cx))),
        )
        .await
        .expect("a frame sent later was missed");
        assert_eq!(got, Some(3));
        sender.await.unwrap();
    }
}
