//! Aging: expiring routes whose time has come, as one bulk walk over the
//! networks that have due routes, then the graceful-restart holds that
//! have ended.

use super::*;

impl<F: Family> Table<F> {
    /// Removes every route whose expiry is at or before `now`; returns how many.
    pub(crate) fn sweep(&self, now: Timestamp) -> Result<usize, RtmError> {
        let due: Vec<F::Network> = {
            let mut expiries = lock(&self.expiries);
            let later = expiries.split_off(&Timestamp(now.0.saturating_add(1)));
            let due = std::mem::replace(&mut *expiries, later);
            let mut v: Vec<F::Network> = due.into_values().flatten().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut ctx = WriteCtx::system();
        let aged = self.bulk(&due, &mut ctx, |w| Ok(w.remove_where(|e| e.is_due(now))))?;
        // Then the graceful-restart holds that ended (`clients`).
        Ok(aged + self.expire_holds(now)?)
    }
}
