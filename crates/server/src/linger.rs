//! The last second of a connection: after the farewell frame went out,
//! read and discard what the client still sends until it closes.
//!
//! Closing a socket with unread input makes the kernel send a reset, which
//! can destroy the farewell frame (`error`, `bye`) before the client reads
//! it. Both a served connection and a `busy` refusal end this way.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read per call while lingering before close (discarded).
const LINGER_CHUNK: usize = 4 * 1024;

/// Reads and discards what `read` still sends until it closes, `limit`
/// passes, or `stop` completes.
pub(crate) async fn linger<R: AsyncRead + Unpin>(
    mut read: R,
    limit: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut scratch = [0u8; LINGER_CHUNK];
    let drain = async {
        while let Ok(n) = read.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = drain => {}
        () = stop => {}
        () = tokio::time::sleep(limit) => {}
    }
}
