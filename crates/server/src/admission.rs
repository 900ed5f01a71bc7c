//! Who may take a connection slot, beyond the overall cap: strangers who
//! have not finished their handshake are capped apart (as sshd's
//! `MaxStartups`, with random early drop), and so is each address.
//!
//! Without these, anyone can hold every slot: connections that never send
//! `hello` count against `--max-connections` until their deadline, and an
//! attacker who reopens each one as it expires keeps real users at `busy`.
//! The per-user cap on sessions lives with the registry of live
//! connections (`live`), since a user is known only after the handshake.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a newcomer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many connections from its address.
    Address,
    /// Too many handshakes in progress (or the early drop before that).
    Startups,
}

/// The slots a newcomer holds besides its connection permit: released as
/// the connection goes (the address slot) or completes its handshake (the
/// startup permit).
#[derive(Debug)]
pub(crate) struct Admitted {
    /// Held until `ready`.
    pub(crate) startup: OwnedSemaphorePermit,
    /// Held until the connection ends; `None` when addresses are not capped.
    pub(crate) address: Option<AddressSlot>,
}

/// The admission limits of a server.
#[derive(Debug)]
pub(crate) struct Admission {
    startups: Arc<Semaphore>,
    max_startups: usize,
    /// Handshakes in progress from which newcomers start being dropped at
    /// random, rising to all of them at `max_startups`; `None` for no early
    /// drop.
    early_drop: Option<usize>,
    addresses: Option<Arc<Addresses>>,
}

#[derive(Debug)]
struct Addresses {
    cap: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl Addresses {
    fn counts(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // One insert, increment or removal per update: whole when poisoned.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in its address's count.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    addresses: Arc<Addresses>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.addresses.counts();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    /// At most `max_startups` handshakes at once (with random early drop
    /// from half of that, when it is below `max_connections`), and at most
    /// `max_per_address` connections from one address (`None`: no cap).
    pub(crate) fn new(
        max_startups: usize,
        max_connections: usize,
        max_per_address: Option<usize>,
    ) -> Admission {
        let max_startups = max_startups.clamp(1, max_connections.max(1));
        Admission {
            startups: Arc::new(Semaphore::new(max_startups)),
            max_startups,
            // When every slot may be a handshake, the connection cap is
            // the limit that matters; dropping early would only refuse
            // clients there is room for.
            early_drop: (max_startups < max_connections).then_some(max_startups / 2),
            addresses: max_per_address.map(|cap| {
                Arc::new(Addresses {
                    cap,
                    counts: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// Lets a newcomer from `ip` in, or says why not. `chance` draws a
    /// fresh random number for the early drop, when one is needed.
    pub(crate) fn admit(
        &self,
        ip: IpAddr,
        chance: impl FnOnce() -> u32,
    ) -> Result<Admitted, Refusal> {
        let address = match &self.addresses {
            None => None,
            Some(addresses) => {
                let mut counts = addresses.counts();
                let count = counts.entry(ip).or_insert(0);
                if *count >= addresses.cap {
                    return Err(Refusal::Address);
                }
                *count += 1;
                Some(AddressSlot {
                    addresses: addresses.clone(),
                    ip,
                })
            }
        };
        let in_progress = self.max_startups - self.startups.available_permits();
        if let Some(start) = self.early_drop
            && in_progress >= start
        {
            // The chance of a drop rises linearly from the start to the
            // maximum, as sshd's `MaxStartups start:rate:full` with rate 0.
            let span = (self.max_startups - start + 1) as u64;
            let over = (in_progress - start + 1) as u64;
            if u64::from(chance()) * span < over * u64::from(u32::MAX) {
                return Err(Refusal::Startups);
            }
        }
        let startup = self
            .startups
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Startups)?;
        Ok(Admitted { startup, address })
    }
}

/// A random number for the early drop. Randomness failing only makes the
/// drop never happen, not the server fail.
pub(crate) fn chance() -> u32 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes),
        Err(_) => u32::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn an_address_holds_at_most_its_cap_and_gets_slots_back() {
        let admission = Admission::new(100, 100, Some(2));
        let a = admission.admit(ip(1), || 0).unwrap();
        let _b = admission.admit(ip(1), || 0).unwrap();
        assert_eq!(admission.admit(ip(1), || 0).unwrap_err(), Refusal::Address);
        assert!(admission.admit(ip(2), || 0).is_ok(), "another address");
        drop(a);
        assert!(admission.admit(ip(1), || 0).is_ok(), "a slot came back");
    }

    #[test]
    fn handshakes_are_capped_and_dropped_early_at_random_past_half() {
        let admission = Admission::new(4, 100, None);
        // Below half: never dropped, even on the unluckiest draw.
        let held: Vec<_> = (0..2)
            .map(|_| admission.admit(ip(1), || 0).unwrap())
            .collect();
        // Past half: a low draw is dropped, a high one is let in.
        assert_eq!(admission.admit(ip(1), || 0).unwrap_err(), Refusal::Startups);
        let third = admission.admit(ip(1), || u32::MAX).unwrap();
        let fourth = admission.admit(ip(1), || u32::MAX).unwrap();
        // Full: refused whatever the draw.
        assert_eq!(
            admission.admit(ip(1), || u32::MAX).unwrap_err(),
            Refusal::Startups
        );
        drop((held, third, fourth));
        assert!(admission.admit(ip(1), || 0).is_ok());
    }

    #[test]
    fn no_early_drop_when_every_slot_may_be_a_handshake() {
        let admission = Admission::new(256, 4, None);
        let held: Vec<_> = (0..4)
            .map(|_| admission.admit(ip(1), || 0).unwrap())
            .collect();
        assert_eq!(admission.admit(ip(1), || 0).unwrap_err(), Refusal::Startups);
        drop(held);
    }
}
