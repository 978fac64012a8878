//! Why a peer connection ended, and what that says about the peer: the one
//! place that turns an ending into a verdict ([`Verdict`]) the peer set
//! applies. Normal completion is not an error.

use crate::wire::peer::Refusal;
use crate::wire::DecodeError;
use std::io;

/// How a connection ended.
#[derive(Debug)]
pub enum ConnEnd {
    /// Nothing left to do on it: the download finished or failed, or we
    /// are leaving the network.
    Finished,
    /// The peer closed its side.
    Eof {
        /// Requests of ours it left unanswered.
        in_flight: usize,
    },
    Io(io::Error),
    /// The connect did not complete in time.
    ConnectTimeout,
    /// The peer broke the protocol.
    Protocol(DecodeError),
    Unexpected(&'static str),
    /// The peer refused a request.
    Refused(Refusal),
    /// The peer sent bad data too often, or metadata that is not the file.
    BadPeer(&'static str),
    /// No progress within the request timeout.
    Stalled,
    /// An inbound connection with nothing to do for the idle timeout.
    Idle,
    /// A shared file changed on disk in the middle of a chunk.
    FileChanged,
    /// The metadata the peer started to send does not fit in what is left
    /// of the downloads' metadata budget now: not its fault, ask later.
    NoRoom,
}

/// What an ending means for the peer's next connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Normal: connect again when there is reason to.
    Retry,
    /// A failure: wait longer after each one in a row.
    BackOff,
    /// Never again for this file.
    Ban,
}

impl ConnEnd {
    pub fn verdict(&self) -> Verdict {
        match self {
            ConnEnd::Finished | ConnEnd::Eof { in_flight: 0 } | ConnEnd::NoRoom => Verdict::Retry,
            ConnEnd::BadPeer(_) | ConnEnd::Refused(Refusal::NoSuchFile | Refusal::NoSuchChunk) => {
                Verdict::Ban
            }
            _ => Verdict::BackOff,
        }
    }

    /// Whether this is worth a warning (a failure, not churn).
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            ConnEnd::Finished | ConnEnd::Eof { in_flight: 0 } | ConnEnd::NoRoom
        )
    }
}

impl From<io::Error> for ConnEnd {
    fn from(e: io::Error) -> Self {
        ConnEnd::Io(e)
    }
}

impl std::fmt::Display for ConnEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnEnd::Finished => write!(f, "no longer needed"),
            ConnEnd::Eof { .. } => write!(f, "closed by the peer"),
            ConnEnd::Io(e) => write!(f, "{e}"),
            ConnEnd::ConnectTimeout => write!(f, "connect timed out"),
            ConnEnd::Protocol(e) => write!(f, "protocol error: {e}"),
            ConnEnd::Unexpected(what) => write!(f, "protocol error: {what}"),
            ConnEnd::Refused(r) => write!(f, "refused: {r}"),
            ConnEnd::BadPeer(why) => write!(f, "dropped: {why}"),
            ConnEnd::Stalled => write!(f, "stalled: no data within the request timeout"),
            ConnEnd::Idle => write!(f, "idle timeout"),
            ConnEnd::FileChanged => write!(f, "the shared file changed on disk while a chunk was being sent"),
            ConnEnd::NoRoom => write!(f, "no room for more metadata now; asking again later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(ConnEnd::Finished.verdict(), Verdict::Retry);
        assert_eq!(ConnEnd::Eof { in_flight: 0 }.verdict(), Verdict::Retry);
        assert_eq!(ConnEnd::Eof { in_flight: 2 }.verdict(), Verdict::BackOff);
        assert_eq!(ConnEnd::Stalled.verdict(), Verdict::BackOff);
        assert_eq!(ConnEnd::Refused(Refusal::NoSuchFile).verdict(), Verdict::Ban);
        assert_eq!(ConnEnd::Refused(Refusal::Unavailable).verdict(), Verdict::BackOff);
        assert_eq!(ConnEnd::BadPeer("x").verdict(), Verdict::Ban);
        assert!(!ConnEnd::Finished.is_failure());
        assert!(ConnEnd::Idle.is_failure());
    }
}
