//! `auth: ip`: clients are known by their address. A known address is
//! greeted by the name given from it; an unknown one is asked its name once,
//! and the name is stored (durably, before the server replies) for next time.
//! A name another address holds, or one that looks like it (the store judges
//! on `porter_store::name_key`), is refused as taken and asked again.

use std::net::{IpAddr, SocketAddr};

use porter_store::{SharedStore, StoreErrorKind};
use porter_wire::{AuthMode, ErrorCode, ServerMessage};
use tracing::info;

use super::{MAX_INVALID_ANSWERS, check_chat_name, server_failed};
use crate::clock::Clock;
use crate::close::Reason;
use crate::handshake::{Authenticator, Dialog, Ended, Hello, Identity};
use crate::names::SERVER_NAME;
use crate::peer::PeerInfo;

/// The text of `invalid_answer` for a name another address holds, or one
/// that looks like it. It does not say which.
const NAME_TAKEN_TEXT: &str = "that name is taken";

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
            Some(name) => {
                // Records the visit (`last_seen`); an address keeping its
                // name is never refused.
                if let Err(err) = self
                    .store
                    .remember_name(addr, &name, self.clock.now())
                    .await
                {
                    return Err(server_failed(dialog, peer, "remember_name", &err));
                }
                (name, "known address")
            }
            None => (self.ask_name(dialog, peer, addr).await?, "new name"),
        };
        info!(peer = %peer, user = %name, result, "identified");
        dialog.send(&ServerMessage::say(format!("Hello, {name}!"), SERVER_NAME))?;
        Ok(Identity {
            user: name,
            session: None,
        })
    }
}

impl IpAuth {
    /// Asks for a name until one passes the policy and is free, a bounded
    /// number of times, and stores it: the durable write that must precede
    /// the greeting.
    async fn ask_name<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        addr: IpAddr,
    ) -> Result<String, Ended> {
        for _ in 0..MAX_INVALID_ANSWERS {
            let answer = dialog.ask("name", "What is your name?", false).await?;
            let why = match check_chat_name(answer.expose()) {
                Ok(name) => match self
                    .store
                    .remember_name(addr, &name, self.clock.now())
                    .await
                {
                    Ok(()) => return Ok(name),
                    Err(err) if err.kind() == StoreErrorKind::NameTaken => NAME_TAKEN_TEXT.into(),
                    Err(err) => return Err(server_failed(dialog, peer, "remember_name", &err)),
                },
                Err(why) => why.to_string(),
            };
            info!(peer = %peer, reason = %why, "name refused");
            dialog.send(&ServerMessage::error(ErrorCode::InvalidAnswer, why))?;
        }
        info!(peer = %peer, result = "too many invalid names", "identification failed");
        dialog.send(&ServerMessage::Bye {
            text: "too many invalid answers".into(),
        })?;
        Err(Reason::Refused("too many invalid names"))
    }
}
