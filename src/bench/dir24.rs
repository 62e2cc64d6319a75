//! A static DIR-24-8 table (Gupta, Lin, McKeown 1998; DPDK's rte_lpm): the
//! speed yardstick. One access into a 2^24-entry table (64 MiB) for every
//! prefix up to /24, two for longer ones. Built once, never updated.
//!
//! It gets what rtm's FIB gets: its arrays come from the same huge-page
//! allocator (`fib::pages`), and besides the scalar lookup it has a batch
//! lookup in DPDK's `rte_lpm_lookup_bulk` pattern with rtm's prefetch
//! depth (groups of 32, top level prefetched three groups ahead).

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

use crate::fib::pages::ZeroedWords;
use crate::fib::prefetch;
use crate::prefix::Ipv4Prefix;

const GROUP_FLAG: u32 = 0x8000_0000;

/// Addresses per batch group, and how many groups ahead the top level is
/// prefetched: rtm's `lookup_batch` pipeline's figures.
const GROUP: usize = 32;
const AHEAD: usize = 3;

/// DIR-24-8 over values `1..2^31` (0 means no route). The words are
/// atomics only because the huge-page array hands them out so; every
/// access is a Relaxed load or store, a plain `mov` (built once, read only).
pub struct Dir24_8 {
    tbl24: ZeroedWords,
    tbl8: ZeroedWords,
}

impl std::fmt::Debug for Dir24_8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dir24_8")
            .field("bytes", &self.memory_bytes())
            .finish_non_exhaustive()
    }
}

impl Dir24_8 {
    /// Builds the table; later entries win among equal prefixes.
    pub fn build(routes: &[(Ipv4Prefix, u32)]) -> Self {
        let mut sorted: Vec<&(Ipv4Prefix, u32)> = routes.iter().collect();
        sorted.sort_by_key(|(p, _)| p.len());
        let tbl24 = ZeroedWords::new(1 << 24);
        let mut tbl8: Vec<u32> = Vec::new();
        for (p, v) in sorted {
            let v = *v & !GROUP_FLAG;
            let a = u32::from(p.addr());
            if p.len() <= 24 {
                let first = (a >> 8) as usize;
                for w in &tbl24[first..first + (1usize << (24 - p.len()))] {
                    w.store(v, Relaxed);
                }
            } else {
                let slot = &tbl24[(a >> 8) as usize];
                if slot.load(Relaxed) & GROUP_FLAG == 0 {
                    let g = tbl8.len() / 256;
                    tbl8.extend(std::iter::repeat_n(slot.load(Relaxed), 256));
                    slot.store(GROUP_FLAG | g as u32, Relaxed);
                }
                let base = (slot.load(Relaxed) & !GROUP_FLAG) as usize * 256;
                let first = base + (a & 0xff) as usize;
                tbl8[first..first + (1usize << (32 - p.len()))].fill(v);
            }
        }
        let groups = ZeroedWords::new(tbl8.len());
        for (w, v) in groups.iter().zip(tbl8) {
            w.store(v, Relaxed);
        }
        Dir24_8 {
            tbl24,
            tbl8: groups,
        }
    }

    /// The value of the longest match (0: none).
    #[inline(always)]
    pub fn lookup(&self, addr: Ipv4Addr) -> u32 {
        let a = u32::from(addr);
        self.resolve(a, self.tbl24[(a >> 8) as usize].load(Relaxed))
    }

    /// The value for `a` given its top-level entry `e`.
    #[inline(always)]
    fn resolve(&self, a: u32, e: u32) -> u32 {
        if e & GROUP_FLAG == 0 {
            e
        } else {
            self.tbl8[(e & !GROUP_FLAG) as usize * 256 + (a & 0xff) as usize].load(Relaxed)
        }
    }

    /// Looks up every address of `addrs` into `out` (as many as the shorter
    /// holds; returns that count): top-level lines prefetched `AHEAD`
    /// groups ahead, a group's second-level lines prefetched a group ahead.
    pub fn lookup_batch(&self, addrs: &[Ipv4Addr], out: &mut [u32]) -> usize {
        let n = addrs.len().min(out.len());
        let group = |g: usize| &addrs[(g * GROUP).min(n)..((g + 1) * GROUP).min(n)];
        let prefetch = |w: &std::sync::atomic::AtomicU32| prefetch(w.as_ptr().cast());
        for g in 0..AHEAD {
            group(g)
                .iter()
                .for_each(|a| prefetch(&self.tbl24[(u32::from(*a) >> 8) as usize]));
        }
        // The top-level entries of the group about to be resolved.
        let mut tops = [[0u32; GROUP]; 2];
        let load = |g: usize, tops: &mut [u32; GROUP]| {
            for (t, a) in tops.iter_mut().zip(group(g)) {
                let a = u32::from(*a);
                *t = self.tbl24[(a >> 8) as usize].load(Relaxed);
                if *t & GROUP_FLAG != 0 {
                    prefetch(&self.tbl8[(*t & !GROUP_FLAG) as usize * 256 + (a & 0xff) as usize]);
                }
            }
        };
        load(0, &mut tops[0]);
        for g in 0..n.div_ceil(GROUP) {
            group(g + AHEAD)
                .iter()
                .for_each(|a| prefetch(&self.tbl24[(u32::from(*a) >> 8) as usize]));
            let (now, next) = tops.split_at_mut(1);
            let (now, next) = if g % 2 == 0 {
                (&mut now[0], &mut next[0])
            } else {
                (&mut next[0], &mut now[0])
            };
            load(g + 1, next);
            let base = g * GROUP;
            for (i, a) in group(g).iter().enumerate() {
                out[base + i] = self.resolve(u32::from(*a), now[i]);
            }
        }
        n
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.tbl24.bytes() + self.tbl8.bytes()
    }
}
