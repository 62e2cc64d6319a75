//! A deterministic synthetic routing table shaped like a real BGP table.
//!
//! Used by the demo, the tests and the benchmarks when the real RIS tables
//! of `../shared/routing-data/` are absent. Prefix lengths follow the
//! distribution of a 2026 full table (about 60% /24 in IPv4, about 45% /48
//! in IPv6), and about half of the prefixes are carved out of an earlier,
//! shorter one, so the nesting is realistic for longest-prefix matching.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::prefix::{IpAddress, Prefix};

/// A small, fast, seedable PRNG (SplitMix64): reproducible across platforms,
/// so a seed names a table.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// (length, weight per mille) for IPv4, after the RIS table of 2026-05-11.
const V4_LENGTHS: &[(u8, u32)] = &[
    (8, 1),
    (9, 1),
    (10, 1),
    (11, 2),
    (12, 3),
    (13, 5),
    (14, 8),
    (15, 12),
    (16, 30),
    (17, 15),
    (18, 25),
    (19, 35),
    (20, 50),
    (21, 60),
    (22, 110),
    (23, 100),
    (24, 542),
];

/// (length, weight per mille) for IPv6.
const V6_LENGTHS: &[(u8, u32)] = &[
    (16, 1),
    (20, 1),
    (24, 2),
    (28, 10),
    (29, 60),
    (30, 10),
    (32, 110),
    (33, 10),
    (34, 10),
    (35, 5),
    (36, 40),
    (40, 70),
    (42, 15),
    (44, 110),
    (45, 10),
    (46, 20),
    (47, 20),
    (48, 496),
];

fn pick_len(rng: &mut SplitMix64, table: &[(u8, u32)]) -> u8 {
    let total: u32 = table.iter().map(|t| t.1).sum();
    let mut x = rng.below(total as u64) as u32;
    for &(len, w) in table {
        if x < w {
            return len;
        }
        x -= w;
    }
    table[table.len() - 1].0
}

fn generate<A: IpAddress>(
    count: usize,
    seed: u64,
    lengths: &[(u8, u32)],
    random_addr: impl Fn(&mut SplitMix64) -> u128,
) -> Vec<Prefix<A>> {
    let mut rng = SplitMix64::new(seed);
    let mut seen = HashSet::with_capacity(count);
    let mut out: Vec<Prefix<A>> = Vec::with_capacity(count);
    while out.len() < count {
        let len = pick_len(&mut rng, lengths);
        // Half the time, carve the new prefix out of an earlier shorter one.
        let base = if !out.is_empty() && rng.below(2) == 0 {
            let parent = out[rng.below(out.len() as u64) as usize];
            if parent.len() < len {
                let host_bits = A::BITS - parent.len();
                let noise = random_addr(&mut rng)
                    & if host_bits >= 128 {
                        u128::MAX
                    } else {
                        (1u128 << host_bits) - 1
                    };
                parent.addr().to_bits() | noise
            } else {
                random_addr(&mut rng)
            }
        } else {
            random_addr(&mut rng)
        };
        let p = Prefix::truncating(A::from_bits(base), len);
        if seen.insert(p) {
            out.push(p);
        }
    }
    out
}

/// `count` distinct IPv4 prefixes (unicast space 1.0.0.0 - 223.255.255.255).
///
/// ```
/// let t = rtm::synth::ipv4_table(1000, 7);
/// assert_eq!(t.len(), 1000);
/// assert_eq!(t, rtm::synth::ipv4_table(1000, 7)); // deterministic
/// ```
pub fn ipv4_table(count: usize, seed: u64) -> Vec<Prefix<Ipv4Addr>> {
    generate(count, seed, V4_LENGTHS, |rng| {
        let first = 1 + rng.below(223) as u32;
        ((first << 24) | (rng.next_u64() as u32 & 0x00FF_FFFF)) as u128
    })
}

/// `count` distinct IPv6 prefixes inside 2000::/3.
pub fn ipv6_table(count: usize, seed: u64) -> Vec<Prefix<Ipv6Addr>> {
    generate(count, seed ^ 0x6666, V6_LENGTHS, |rng| {
        let hi = (rng.next_u64() & 0x1FFF_FFFF_FFFF_FFFF) | 0x2000_0000_0000_0000;
        ((hi as u128) << 64) | rng.next_u64() as u128
    })
}
