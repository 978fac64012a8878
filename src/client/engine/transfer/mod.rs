//! What a download is, whatever protocol its peers speak: the pieces of a
//! file and which are verified ([`bitmap`]), which piece to ask whom for
//! ([`picker`]), whom to connect to and whom to ban ([`peer_set`], with the
//! verdicts of [`conn_end`]), where the bytes live ([`storage`]) and the
//! record that lets a download resume ([`resume`]), and the bounded buffers
//! connections read and write through ([`buf`]).
//!
//! Invariant: nothing here knows a protocol; `native` and `bittorrent`
//! import from here, never from each other.

pub mod bitmap;
pub mod buf;
pub mod conn_end;
pub mod peer_set;
pub mod picker;
pub mod resume;
pub mod storage;
