//! The table's invariants, checked at quiescence (`Rtm::verify_consistency`).

use super::*;

impl<F: Family> Table<F> {
    /// Checks the table's invariants; see `Rtm::verify_consistency`.
    pub(crate) fn verify(&self) -> Result<(), String> {
        let indexed = self
            .index
            .check()
            .map_err(|e| format!("{}: index: {e}", F::ID))?;
        let mut networks = 0;
        let mut owned: BTreeMap<ProtocolId, Vec<F::Network>> = BTreeMap::new();
        let mut previous = None;
        let mut failed = self.scan(Bound::Unbounded, |n, set| {
            networks += 1;
            if previous.is_some_and(|p| p >= n) {
                return Some(format!("{}: {n} walked after {previous:?}", F::ID));
            }
            previous = Some(n);
            self.check_set(n, set, &mut owned).err()
        });
        if let Some(e) = failed.take() {
            return Err(e);
        }
        if networks != indexed {
            return Err(format!(
                "{}: the index counts {indexed} networks, a walk finds {networks}",
                F::ID
            ));
        }
        if networks != self.network_count() {
            return Err(format!(
                "{}: network count {} but {networks} networks hold routes",
                F::ID,
                self.network_count()
            ));
        }
        for (p, nets) in &owned {
            let Some(c) = self.clients.get(p) else {
                return Err(format!(
                    "{}: routes of protocol {p}, which has no client",
                    F::ID
                ));
            };
            let indexed = c.index.networks();
            if &indexed != nets || c.index.len() != nets.len() {
                return Err(format!(
                    "{}: protocol {p} owns routes at {} networks, its index lists {}",
                    F::ID,
                    nets.len(),
                    indexed.len()
                ));
            }
        }
        for c in self.clients.iter() {
            if !owned.contains_key(c.key()) && c.index.len() != 0 {
                return Err(format!(
                    "{}: protocol {} indexes networks it has no route to",
                    F::ID,
                    c.key()
                ));
            }
        }
        Ok(())
    }

    /// One destination's invariants (see `verify`); records its protocols
    /// in `owned`.
    fn check_set(
        &self,
        n: F::Network,
        set: &Routes<F>,
        owned: &mut BTreeMap<ProtocolId, Vec<F::Network>>,
    ) -> Result<(), String> {
        if set
            .entries
            .windows(2)
            .any(|w| w[0].route.key() >= w[1].route.key())
        {
            return Err(format!(
                "{} {n}: routes not sorted or duplicate keys",
                F::ID
            ));
        }
        if set.entries.iter().any(|e| e.route.network != n) {
            return Err(format!(
                "{} {n}: a route of another network is stored here",
                F::ID
            ));
        }
        let cands: Vec<_> = set
            .entries
            .iter()
            .filter(|e| e.is_candidate(self.shared.exclude_invalid))
            .collect();
        match set.best {
            None if !cands.is_empty() => {
                return Err(format!("{} {n}: candidates but no best route", F::ID));
            }
            Some(b) => {
                let e = &set.entries[b];
                if !e.is_candidate(self.shared.exclude_invalid)
                    || cands.iter().any(|c| c.rank() < e.rank())
                {
                    return Err(format!("{} {n}: best route is not a best candidate", F::ID));
                }
            }
            None => {}
        }
        for e in &set.entries {
            let v = owned.entry(e.route.protocol).or_default();
            if v.last() != Some(&n) {
                v.push(n);
            }
        }
        Ok(())
    }
}
