//! The admin commands' word to a cluster's bus: after recording an operator
//! action in the store (a kick, a revoked session, a removed user), they
//! publish on the bus's control subject, so that every instance reads the
//! action at once instead of at its next poll (within 2 seconds anyway).
//!
//! Without `--bus` nothing is published; a bus that cannot be reached is a
//! warning, never a failure: the action is recorded and will be obeyed.

use std::time::Duration;

use clap::Args;

/// How long the admin command gives the bus.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(3);

/// The bus of the servers an admin command acts for.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The servers' NATS bus (their --bus): tell every instance at once
    /// that an operator acted [default: they read the database within 2 s]
    #[arg(
        long,
        value_name = "URL",
        env = "PORTER_BUS",
        global = true,
        hide_env_values = true
    )]
    bus: Option<String>,

    /// The servers' --bus-prefix
    #[arg(long, value_name = "PREFIX", env = "PORTER_BUS_PREFIX", global = true,
          default_value = porter_server::DEFAULT_BUS_PREFIX)]
    bus_prefix: String,
}

impl ControlArgs {
    /// Tells the instances on the bus, if one is given, that an operator
    /// acted; a failure is printed as a warning.
    pub fn nudge(&self) {
        let Some(url) = &self.bus else {
            return;
        };
        let subject = porter_server::control_subject(&self.bus_prefix);
        let sent = crate::runtime().and_then(|runtime| {
            let sent = runtime.block_on(async {
                tokio::time::timeout(CONTROL_TIMEOUT, async {
                    let client = async_nats::connect(url.as_str()).await?;
                    client.publish(subject, "operator action".into()).await?;
                    client.flush().await?;
                    Ok::<(), async_nats::Error>(())
                })
                .await
            });
            runtime.shutdown_timeout(crate::RUNTIME_SHUTDOWN_TIMEOUT);
            match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(anyhow::anyhow!("{err}")),
                Err(_) => Err(anyhow::anyhow!("no answer")),
            }
        });
        if let Err(err) = sent {
            eprintln!(
                "porter: warning: could not tell the bus at {} ({err:#}); the servers read the action from the database within 2 seconds",
                porter_server::redact_url(url)
            );
        }
    }
}
