//! `auth: ip`: clients are known by their address. A known address is
//! greeted by the name given from it; an unknown one is asked its name once,
//! and the name is stored (durably, before the server replies) for next time.

use std::net::SocketAddr;

use porter_store::SharedStore;
use porter_wire::{AuthMode, ErrorCode, ServerMessage};
use tracing::info;

use super::{MAX_INVALID_ANSWERS, check_chat_name, server_failed};
use crate::clock::Clock;
use crate::close::Reason;
use crate::handshake::{Authenticator, Dialog, Ended, Hello, Identity};
use crate::names::SERVER_NAME;
use crate::peer::PeerInfo;

/// The `ip` authenticator.
#[derive(Clone)]
pub(crate) struct IpAuth {
    /// Where names by address are kept.
    store: SharedStore,
    /// "Now" for `first_seen`/`last_seen`.
    clock: Clock,
}

impl IpAuth {
    pub(crate) fn new(store: SharedStore, clock: Clock) -> IpAuth {
        IpAuth { store, clock }
    }
}

impl std::fmt::Debug for IpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpAuth").finish_non_exhaustive()
    }
}

impl Authenticator for IpAuth {
    fn mode(&self) -> AuthMode {
        AuthMode::Ip
    }

    async fn authenticate<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: &PeerInfo,
        _hello: Hello,
    ) -> Result<Identity, Ended> {
        let addr = peer.ip();
        let peer = peer.addr;
        let known = match self.store.name_for_addr(addr).await {
            Ok(known) => known,
            Err(err) => return Err(server_failed(dialog, peer, "name_for_addr", &err)),
        };
        let (name, result) = match known {
            Some(name) => (name, "known address"),
            None => (self.ask_name(dialog, peer).await?, "new name"),
        };
        // For a known address this records the visit (`last_seen`); for a
        // new one it is the durable write that must precede the greeting.
        if let Err(err) = self
            .store
            .remember_name(addr, &name, self.clock.now())
            .await
        {
            return Err(server_failed(dialog, peer, "remember_name", &err));
        }
        info!(peer = %peer, user = %name, result, "identified");
        dialog.send(&ServerMessage::say(format!("Hello, {name}!"), SERVER_NAME))?;
        Ok(Identity {
            user: name,
            session: None,
        })
    }
}

impl IpAuth {
    /// Asks for a name until one passes the policy, a bounded number of times.
    async fn ask_name<D: Dialog>(&self, dialog: &mut D, peer: SocketAddr) -> Result<String, Ended> {
        for _ in 0..MAX_INVALID_ANSWERS {
            let answer = dialog.ask("name", "What is your name?", false).await?;
            match check_chat_name(answer.expose()) {
                Ok(name) => return Ok(name.to_owned()),
                Err(why) => {
                    info!(peer = %peer, reason = %why, "name refused");
                    dialog.send(&ServerMessage::error(
                        ErrorCode::InvalidAnswer,
                        why.to_string(),
                    ))?;
                }
            }
        }
        info!(peer = %peer, result = "too many invalid names", "identification failed");
        dialog.send(&ServerMessage::Bye {
            text: "too many invalid answers".into(),
        })?;
        Err(Reason::Refused("too many invalid names"))
    }
}
