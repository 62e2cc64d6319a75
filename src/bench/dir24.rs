//! A static DIR-24-8 table (Gupta, Lin, McKeown 1998; DPDK's rte_lpm): the
//! speed yardstick. One access into a 2^24-entry table (64 MiB) for every
//! prefix up to /24, two for longer ones. Built once, never updated.

use std::net::Ipv4Addr;

use crate::prefix::Ipv4Prefix;

const GROUP_FLAG: u32 = 0x8000_0000;

/// DIR-24-8 over values `1..2^31` (0 means no route).
#[derive(Debug)]
pub struct Dir24_8 {
    tbl24: Vec<u32>,
    tbl8: Vec<u32>,
}

impl Dir24_8 {
    /// Builds the table; later entries win among equal prefixes.
    pub fn build(routes: &[(Ipv4Prefix, u32)]) -> Self {
        let mut sorted: Vec<&(Ipv4Prefix, u32)> = routes.iter().collect();
        sorted.sort_by_key(|(p, _)| p.len());
        let mut tbl24 = vec![0u32; 1 << 24];
        let mut tbl8: Vec<u32> = Vec::new();
        for (p, v) in sorted {
            let v = *v & !GROUP_FLAG;
            let a = u32::from(p.addr());
            if p.len() <= 24 {
                let first = (a >> 8) as usize;
                tbl24[first..first + (1usize << (24 - p.len()))].fill(v);
            } else {
                let i = (a >> 8) as usize;
                if tbl24[i] & GROUP_FLAG == 0 {
                    let g = tbl8.len() / 256;
                    tbl8.extend(std::iter::repeat_n(tbl24[i], 256));
                    tbl24[i] = GROUP_FLAG | g as u32;
                }
                let base = (tbl24[i] & !GROUP_FLAG) as usize * 256;
                let first = base + (a & 0xff) as usize;
                tbl8[first..first + (1usize << (32 - p.len()))].fill(v);
            }
        }
        Dir24_8 { tbl24, tbl8 }
    }

    /// The value of the longest match (0: none).
    #[inline(always)]
    pub fn lookup(&self, addr: Ipv4Addr) -> u32 {
        let a = u32::from(addr);
        let e = self.tbl24[(a >> 8) as usize];
        if e & GROUP_FLAG == 0 {
            e
        } else {
            self.tbl8[(e & !GROUP_FLAG) as usize * 256 + (a & 0xff) as usize]
        }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        (self.tbl24.len() + self.tbl8.len()) * 4
    }
}
