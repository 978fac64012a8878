//! The client `pytorrent`: one thread, one mio poll loop that seeds the
//! shared files over TCP and downloads files in verified chunks from
//! several peers at once.
//!
//! - [`tracker_link`]: the client's side of the tracker protocol, a pure
//!   state machine the loop drives with datagrams and timeouts.

pub mod tracker_link;
