//! The client `pytorrent`: one thread, one mio poll loop that seeds the
//! shared files over TCP and downloads files in verified chunks from
//! several peers at once.
//!
//! - [`library`]: the shared files, indexed in slices and cached.

pub mod library;
