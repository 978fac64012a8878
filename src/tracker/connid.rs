//! Stateless connection ids, in the spirit of BEP 15: the id a `Connect`
//! returns is a keyed SHA-256 of the peer's address and the current time
//! window, so the tracker stores nothing per handshake and a spoofer, who
//! never sees the reply, cannot produce a valid id.
//!
//! Invariant: an id issued in window `w` is accepted in windows `w` and
//! `w + 1`, so it stays valid for at least one full `lifetime` after it was
//! issued and never for more than two.
//!
//! BEP 15 ids come from a second instance ([`ConnIds::new_bep15`]) with its
//! own key and the top bit of the first byte set: a BEP 15 request starts
//! with its id, so it can never start with the project's `PYT\x01` (whose
//! first byte has the top bit clear), and an id from one protocol is never
//! valid in the other. BEP 15 ids are bound to the sender's IP alone, not
//! its port, as other BEP 15 trackers do: libtorrent shares one id among all
//! the sessions of a process, each with its own socket. The IP is what the
//! id has to prove (the tracker cannot be made to answer an address that
//! did not ask).

use crate::wire::tracker::ConnId;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};

/// Issues and checks connection ids with one secret key.
#[derive(Clone)]
pub struct ConnIds {
    key: [u8; 32],
    lifetime_secs: u32,
    /// Set the top bit of every id (BEP 15).
    tagged: bool,
}

impl ConnIds {
    /// `lifetime_secs` must be at least 1.
    pub fn new(key: [u8; 32], lifetime_secs: u32) -> ConnIds {
        ConnIds {
            key,
            lifetime_secs: lifetime_secs.max(1),
            tagged: false,
        }
    }

    /// Ids for BEP 15: the top bit always set (see the module header). Give
    /// it a key of its own.
    pub fn new_bep15(key: [u8; 32], lifetime_secs: u32) -> ConnIds {
        ConnIds {
            tagged: true,
            ..ConnIds::new(key, lifetime_secs)
        }
    }

    /// Seconds an id is valid for, at least.
    pub fn lifetime_secs(&self) -> u32 {
        self.lifetime_secs
    }

    /// The id for `addr` at time `now` (seconds since the tracker started).
    pub fn issue(&self, addr: SocketAddr, now: u32) -> ConnId {
        self.id_for(addr, now / self.lifetime_secs)
    }

    /// Whether `id` is one this tracker issued to `addr` recently enough.
    pub fn check(&self, id: &ConnId, addr: SocketAddr, now: u32) -> bool {
        let window = now / self.lifetime_secs;
        // Compare without early exit: the id is a secret-derived value.
        let same = |a: &ConnId, b: &ConnId| a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        same(id, &self.id_for(addr, window)) || (window > 0 && same(id, &self.id_for(addr, window - 1)))
    }

    fn id_for(&self, addr: SocketAddr, window: u32) -> ConnId {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let digest = Sha256::new()
            .chain_update(self.key)
            .chain_update(window.to_be_bytes())
            .chain_update(ip)
            .chain_update(if self.tagged {
                [0; 2]
            } else {
                addr.port().to_be_bytes()
            })
            .finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        if self.tagged {
            id[0] |= 0x80;
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bound_to_address_key_and_time() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let ids = ConnIds::new([1; 32], 120);
        let id = ids.issue(a, 130); // window 1
        assert!(ids.check(&id, a, 130));
        assert!(ids.check(&id, a, 239)); // still window 1
        assert!(ids.check(&id, a, 359)); // window 2: previous window accepted
        assert!(!ids.check(&id, a, 360)); // window 3: expired
        assert!(!ids.check(&id, b, 130)); // other address
        assert!(!ConnIds::new([2; 32], 120).check(&id, a, 130)); // other key
        let mut forged = id;
        forged[7] ^= 1;
        assert!(!ids.check(&forged, a, 130));
        assert!(!ids.check(&[0; 8], a, 0));
    }

    #[test]
    fn bep15_ids_have_the_top_bit_and_do_not_cross_over() {
        let a: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
        let bt = ConnIds::new_bep15([3; 32], 120);
        for port in 0..200 {
            let from = SocketAddr::new(a.ip(), port);
            let id = bt.issue(from, 5);
            assert!(id[0] & 0x80 != 0);
            assert!(bt.check(&id, from, 5));
            let mut untagged = id;
            untagged[0] &= 0x7f;
            assert!(!bt.check(&untagged, from, 5));
            // Bound to the IP only: any port of that host may use it.
            assert!(bt.check(&id, SocketAddr::new(a.ip(), 1), 5));
            assert!(!bt.check(&id, "[2001:db8::2]:6881".parse().unwrap(), 5));
        }
    }
}
