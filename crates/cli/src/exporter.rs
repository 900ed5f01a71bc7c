//! `porter serve --metrics ADDR`: the Prometheus exporter. The server
//! library records through the `metrics` facade only
//! (`porter_server::metrics` names everything it records); this installs
//! the recorder those calls reach, with its own small HTTP listener, so
//! that a scrape never competes with clients for the server's port.

use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use porter_server::metrics::{DURATION_BUCKETS, DURATION_SUFFIX};

/// Installs the global recorder and serves its text format at `addr` (any
/// path answers). Durations are Prometheus histograms with
/// [`DURATION_BUCKETS`], not summaries, so that they can be aggregated.
/// Must run inside the tokio runtime, which the listener then runs on.
///
/// # Errors
/// When `addr` cannot be bound, or a recorder is installed already.
pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix(DURATION_SUFFIX.into()), DURATION_BUCKETS)
        .context("invalid histogram buckets")?
        .install()
        .with_context(|| format!("cannot serve metrics on {addr}"))
}
