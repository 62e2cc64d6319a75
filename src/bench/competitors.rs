//! The structures `rtm bench lpm` runs side by side, behind one trait.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use ip_network_table_deps_treebitmap::IpLookupTable;
use prefix_trie::PrefixMap;

use super::dir24::Dir24_8;
use crate::engine_family::IpFamily;
use crate::fib::{FibReader, LpmFib, NextHopId};
use crate::prefix::{IpAddress, Prefix};
use crate::route::ProtocolId;

/// A longest-prefix-match structure under test. Values are `u32`, 0 = no
/// route; every path answers each address with its value, written to an
/// output slice (a forwarding loop stores each packet's answer), so every
/// structure returns the same type the same way.
pub trait Lpm<A: IpAddress>: Send + Sync {
    /// One lookup.
    ///
    /// Every implementation is `#[inline(always)]`, so that the default
    /// [`scalar`](Self::scalar) loop inlines it as rtm's own loops do: a
    /// call per lookup would handicap the structure that has no loop of its
    /// own (DIR-24-8 paid one until 2026-12-08).
    fn lookup(&self, a: A) -> u32;

    /// One address per call, in order: `out[i]` gets `addrs[i]`'s value.
    fn scalar(&self, addrs: &[A], out: &mut [u32]) {
        for (o, a) in out.iter_mut().zip(addrs) {
            *o = self.lookup(*a);
        }
    }

    /// The structure's batched lookup, if it has one, answering as
    /// [`scalar`](Self::scalar); `false` (and `out` untouched) if none.
    fn batch(&self, _addrs: &[A], _out: &mut [u32]) -> bool {
        false
    }

    /// Looks up a chain where each address depends on the previous result:
    /// measures latency rather than throughput.
    fn run_dependent(&self, addrs: &[A]) -> u64 {
        let mask = std::hint::black_box(0u128);
        let mut x = 0u32;
        let mut sum = 0u64;
        for a in addrs {
            x = self.lookup(A::from_bits(a.to_bits() ^ (x as u128 & mask)));
            sum += x as u64;
        }
        sum
    }
}

/// rtm's FIB through a registered reader ([`LpmFib::reader`]): scalar
/// `FibReader::lookup`, batched `FibReader::lookup_batch`.
pub struct RtmFib<F: IpFamily>(pub LpmFib<F>);

/// rtm's FIB without a reader of the caller's own: `LpmFib::lookup` (what
/// `Rtm::lookup` runs: online and offline through the thread's slot per
/// call) and `LpmFib::lookup_batch` (online once per batch).
pub struct RtmFibPerCall<F: IpFamily>(pub LpmFib<F>);

/// rtm's FIB through a registered reader's next-hop-id lookups
/// ([`FibReader::lookup_id`](crate::FibReader::lookup_id),
/// `lookup_batch_ids`): each id becomes the benchmark's value through an
/// adjacency table indexed by id, filled the first time an id is seen from
/// [`NextHopId::resolve`] (a router's own next-hop table after its FIB).
pub struct RtmFibIds<F: IpFamily> {
    fib: LpmFib<F>,
    adjacency: Vec<AtomicU32>,
}

impl<F: IpFamily> RtmFibIds<F> {
    /// The FIB, with an adjacency table for the ids it holds.
    pub fn new(fib: LpmFib<F>) -> Self {
        let adjacency = (0..=fib.next_hops()).map(|_| AtomicU32::new(0)).collect();
        RtmFibIds { fib, adjacency }
    }

    /// The value for `id`: its adjacency entry, filled from the FIB once.
    #[inline(always)]
    fn adjacent(&self, id: NextHopId<'_, F>) -> u32 {
        // Relaxed: a memo of a value that never changes while the
        // benchmark runs (no writer); racing threads store the same one.
        match self.adjacency.get(id.raw() as usize) {
            Some(slot) => match slot.load(Ordering::Relaxed) {
                0 => {
                    let v = id.resolve().interface;
                    slot.store(v, Ordering::Relaxed);
                    v
                }
                v => v,
            },
            None => id.resolve().interface,
        }
    }
}

impl<F: IpFamily> Lpm<F::Addr> for RtmFibIds<F> {
    #[inline(always)]
    fn lookup(&self, a: F::Addr) -> u32 {
        self.fib
            .reader()
            .lookup_id(a)
            .map_or(0, |id| self.adjacent(id))
    }

    fn scalar(&self, addrs: &[F::Addr], out: &mut [u32]) {
        let mut reader = self.fib.reader();
        for (addrs, out) in addrs.chunks(REPORT_EVERY).zip(out.chunks_mut(REPORT_EVERY)) {
            for (o, a) in out.iter_mut().zip(addrs) {
                *o = reader.lookup_id(*a).map_or(0, |id| self.adjacent(id));
            }
            reader.quiescent();
        }
    }

    fn batch(&self, addrs: &[F::Addr], out: &mut [u32]) -> bool {
        let mut reader = self.fib.reader();
        for (addrs, out) in addrs.chunks(REPORT_EVERY).zip(out.chunks_mut(REPORT_EVERY)) {
            {
                // The ids borrow the reader: dropped before it reports.
                let mut ids = [None; RTM_BATCH];
                for (addrs, out) in addrs.chunks(RTM_BATCH).zip(out.chunks_mut(RTM_BATCH)) {
                    let n = reader.lookup_batch_ids(addrs, &mut ids);
                    for (o, id) in out.iter_mut().zip(&ids[..n]) {
                        *o = id.map_or(0, |id| self.adjacent(id));
                    }
                }
            }
            reader.quiescent();
        }
        true
    }

    fn run_dependent(&self, addrs: &[F::Addr]) -> u64 {
        reader_chain(&self.fib, addrs, |r, a| {
            r.lookup_id(a).map_or(0, |id| self.adjacent(id))
        })
    }
}

/// Addresses per `lookup_batch` call in the batch rows.
const RTM_BATCH: usize = 256;

/// Lookups between a registered reader's quiescent reports.
const REPORT_EVERY: usize = 4096;

/// A dependent chain (see [`Lpm::run_dependent`]) through one registered
/// reader of `fib`, `look` answering each address, reporting a quiescent
/// state every [`REPORT_EVERY`] lookups.
fn reader_chain<F: IpFamily>(
    fib: &LpmFib<F>,
    addrs: &[F::Addr],
    look: impl Fn(&FibReader<'_, F>, F::Addr) -> u32,
) -> u64 {
    let mask = std::hint::black_box(0u128);
    let mut reader = fib.reader();
    let mut x = 0u32;
    let mut sum = 0u64;
    for (i, a) in addrs.iter().enumerate() {
        x = look(
            &reader,
            <F::Addr as IpAddress>::from_bits(a.to_bits() ^ (x as u128 & mask)),
        );
        sum += x as u64;
        if i % REPORT_EVERY == REPORT_EVERY - 1 {
            reader.quiescent();
        }
    }
    sum
}

/// The benchmark's value of an rtm answer: the interface it carries.
fn value<F: IpFamily>(e: Option<crate::fib::FibEntry<F>>) -> u32 {
    e.map_or(0, |e| e.interface)
}

/// Next hop carrying `value`, so every structure stores the same answer.
fn next_hop<A: IpAddress>(value: u32) -> A {
    A::from_bits(value as u128 | 1 << (A::BITS as u32 - 2))
}

/// Builds rtm's FIB from (prefix, value) pairs; the value is the interface.
pub fn build_rtm<F: IpFamily>(routes: &[(Prefix<F::Addr>, u32)]) -> LpmFib<F> {
    let fib = LpmFib::<F>::new();
    for (p, v) in routes {
        set_rtm(&fib, *p, *v);
    }
    fib
}

/// Sets `p` to `value` in rtm's FIB, as [`build_rtm`] does.
pub(crate) fn set_rtm<F: IpFamily>(fib: &LpmFib<F>, p: Prefix<F::Addr>, value: u32) {
    fib.insert(p, next_hop(value), value, ProtocolId(1));
}

impl<F: IpFamily> Lpm<F::Addr> for RtmFib<F> {
    #[inline(always)]
    fn lookup(&self, a: F::Addr) -> u32 {
        value(self.0.reader().lookup(a))
    }

    fn scalar(&self, addrs: &[F::Addr], out: &mut [u32]) {
        let mut reader = self.0.reader();
        for (addrs, out) in addrs.chunks(REPORT_EVERY).zip(out.chunks_mut(REPORT_EVERY)) {
            for (o, a) in out.iter_mut().zip(addrs) {
                *o = value(reader.lookup(*a));
            }
            reader.quiescent();
        }
    }

    fn batch(&self, addrs: &[F::Addr], out: &mut [u32]) -> bool {
        let mut reader = self.0.reader();
        let mut entries = [None; RTM_BATCH];
        for (i, (addrs, out)) in addrs
            .chunks(RTM_BATCH)
            .zip(out.chunks_mut(RTM_BATCH))
            .enumerate()
        {
            let n = reader.lookup_batch(addrs, &mut entries);
            for (o, e) in out.iter_mut().zip(&entries[..n]) {
                *o = value(*e);
            }
            if i % (REPORT_EVERY / RTM_BATCH) == 0 {
                reader.quiescent();
            }
        }
        true
    }

    fn run_dependent(&self, addrs: &[F::Addr]) -> u64 {
        reader_chain(&self.0, addrs, |r, a| value(r.lookup(a)))
    }
}

impl<F: IpFamily> Lpm<F::Addr> for RtmFibPerCall<F> {
    #[inline(always)]
    fn lookup(&self, a: F::Addr) -> u32 {
        value(self.0.lookup(a))
    }

    fn batch(&self, addrs: &[F::Addr], out: &mut [u32]) -> bool {
        let mut entries = [None; RTM_BATCH];
        for (addrs, out) in addrs.chunks(RTM_BATCH).zip(out.chunks_mut(RTM_BATCH)) {
            let n = self.0.lookup_batch(addrs, &mut entries);
            for (o, e) in out.iter_mut().zip(&entries[..n]) {
                *o = value(*e);
            }
        }
        true
    }
}

impl Lpm<Ipv4Addr> for Dir24_8 {
    #[inline(always)]
    fn lookup(&self, a: Ipv4Addr) -> u32 {
        Dir24_8::lookup(self, a)
    }

    fn batch(&self, addrs: &[Ipv4Addr], out: &mut [u32]) -> bool {
        self.lookup_batch(addrs, out);
        true
    }
}
/// prefix-trie's `PrefixMap` with `(bits, len)` keys, through `get_lpm`.
pub struct PrefixTrie<R: prefix_trie::Prefix>(pub PrefixMap<R, u32>);

impl Lpm<Ipv4Addr> for PrefixTrie<(u32, u8)> {
    #[inline(always)]
    fn lookup(&self, a: Ipv4Addr) -> u32 {
        self.0.get_lpm(&(u32::from(a), 32)).map_or(0, |(_, v)| *v)
    }
}

impl Lpm<Ipv6Addr> for PrefixTrie<(u128, u8)> {
    #[inline(always)]
    fn lookup(&self, a: Ipv6Addr) -> u32 {
        self.0.get_lpm(&(u128::from(a), 128)).map_or(0, |(_, v)| *v)
    }
}

/// Builds a prefix-trie map for IPv4.
pub fn build_prefix_trie_v4(routes: &[(Prefix<Ipv4Addr>, u32)]) -> PrefixTrie<(u32, u8)> {
    let mut m = PrefixMap::new();
    for (p, v) in routes {
        m.insert((u32::from(p.addr()), p.len()), *v);
    }
    PrefixTrie(m)
}

/// Builds a prefix-trie map for IPv6.
pub fn build_prefix_trie_v6(routes: &[(Prefix<Ipv6Addr>, u32)]) -> PrefixTrie<(u128, u8)> {
    let mut m = PrefixMap::new();
    for (p, v) in routes {
        m.insert((u128::from(p.addr()), p.len()), *v);
    }
    PrefixTrie(m)
}

/// ip_network_table-deps-treebitmap's `IpLookupTable`, through `longest_match`.
pub struct TreeBitmap<A>(pub IpLookupTable<A, u32>);

/// Builds a treebitmap table.
pub fn build_treebitmap<A>(routes: &[(Prefix<A>, u32)]) -> TreeBitmap<A>
where
    A: IpAddress + ip_network_table_deps_treebitmap::address::Address,
{
    let mut t = IpLookupTable::new();
    for (p, v) in routes {
        t.insert(p.addr(), p.len() as u32, *v);
    }
    TreeBitmap(t)
}

impl<A> Lpm<A> for TreeBitmap<A>
where
    A: IpAddress + ip_network_table_deps_treebitmap::address::Address,
    IpLookupTable<A, u32>: Send + Sync,
{
    #[inline(always)]
    fn lookup(&self, a: A) -> u32 {
        self.0.longest_match(a).map_or(0, |(_, _, v)| *v)
    }
}
