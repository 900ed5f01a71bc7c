//! The progress bar: ticked from the run's atomic message counter ten times
//! a second, never once per message, so it costs the hot path nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Limit;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// A running progress bar; [`finish`](Self::finish) clears it.
pub(crate) struct Progress {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Progress {
    /// Draws a bar for `limit`: messages done out of the total, or seconds
    /// elapsed out of the duration (with the message count alongside).
    pub(crate) fn start(limit: Limit, counter: Arc<AtomicU64>) -> Progress {
        let (stop, mut stopped) = oneshot::channel();
        let (len, template) = match limit {
            Limit::Messages(total) => (total, "{elapsed_precise} [{bar:40}] {pos}/{len} messages"),
            Limit::Duration(duration) => (
                u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                "{elapsed_precise} [{bar:40}] {msg}",
            ),
        };
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let done = counter.load(Ordering::Relaxed);
                match limit {
                    Limit::Messages(_) => bar.set_position(done),
                    Limit::Duration(_) => {
                        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        bar.set_position(ms.min(len));
                        bar.set_message(format!("{done} messages"));
                    }
                }
            }
            bar.finish_and_clear();
        });
        Progress { stop, task }
    }

    /// Stops and clears the bar.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
