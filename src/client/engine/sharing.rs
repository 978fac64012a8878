//! Changes to what we share while running: the shared directory listed
//! again (on a timer and on request) so files dropped into it are shared
//! without a restart and files removed or changed are withdrawn, and a file
//! the user stops sharing (withdrawn from the tracker, left on disk).

use super::*;
use crate::names;
use log::{debug, info};

impl Engine {
    /// Lists the shared directory again (see [`Library::rescan`]). New
    /// files are indexed in slices and announced as they become ready;
    /// vanished or changed ones are withdrawn. `asked`: the user asked, so
    /// the outcome and any skipped entry are told even when nothing
    /// changed (a timer rescan only logs skipped entries, which it would
    /// otherwise repeat every time).
    pub(super) fn rescan(&mut self, asked: bool, now: Instant) {
        let found = match self.library.rescan() {
            Ok(found) => found,
            Err(e) => {
                warn!("cannot list the shared directory again: {e}");
                if asked {
                    self.notify(Event::Warning(format!("cannot list the shared directory: {e}")));
                }
                return;
            }
        };
        for w in found.warnings {
            if asked {
                warn!("{w}");
                self.notify(Event::Warning(w));
            } else {
                debug!("{w}");
            }
        }
        let gone = found.gone.len();
        if gone > 0 {
            info!(
                "{} vanished or changed on disk; withdrawn",
                crate::client::frontend::table::count(gone, "shared file")
            );
            self.link.withdraw(found.gone, now);
        }
        if found.queued > 0 {
            info!("{} new or changed files in the shared directory", found.queued);
        }
        if asked || gone > 0 || found.queued > 0 {
            self.notify(Event::Rescanned {
                queued: found.queued,
                gone,
                asked,
            });
        }
    }

    /// Stops sharing `id`: withdrawn from the tracker, its uploads closed,
    /// the file on disk untouched (see [`Library::remove`]).
    pub(super) fn unshare(&mut self, id: FileId, now: Instant) {
        let Some(file) = self.library.remove(&id) else {
            self.notify(Event::Warning("that file is not shared any more".into()));
            return;
        };
        let name = names::escape(&file.meta.name);
        info!(
            "stopped sharing {name} (the file stays at {})",
            file.path.display()
        );
        self.link.withdraw(vec![id], now);
        let uploads: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(&c.kind, Kind::Serve(s) if s.file == Some(id)))
            .map(|(cid, _)| *cid)
            .collect();
        for cid in uploads {
            self.close(cid, ConnEnd::Finished, now);
        }
        self.notify(Event::Unshared { name });
    }
}
