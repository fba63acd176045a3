//! Block extents: coalesced sets of blocks, and a first-save-wins index of where the old
//! contents of changed blocks are (memory per extent, not per block).

use super::journal::format::{Header, Kind};
use super::journal::{BLOCK, Loc};
use std::collections::{BTreeMap, HashMap};

/// Where the data of saved blocks is: in a journal (the data of the extent's first block),
/// or nowhere (they were zeros).
pub type BlockSrc = Option<Loc>;

fn advance(src: BlockSrc, blocks: u64) -> BlockSrc {
    src.map(|l| Loc {
        data: l.data + blocks * BLOCK,
        ..l
    })
}

/// Disjoint, coalesced extents `[start, end)` of block numbers.
#[derive(Debug, Default, Clone)]
pub struct Extents(BTreeMap<u64, u64>);

impl Extents {
    /// The parts of `[start, end)` not covered.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = start;
        let first = self.0.range(..=start).next_back().map(|(&s, &e)| (s, e));
        for (s, e) in first
            .into_iter()
            .chain(self.0.range(start + 1..end).map(|(&s, &e)| (s, e)))
        {
            if e <= pos {
                continue;
            }
            if s > pos {
                out.push((pos, s.min(end)));
            }
            pos = pos.max(e);
            if pos >= end {
                return out;
            }
        }
        if pos < end {
            out.push((pos, end));
        }
        out
    }

    /// Adds `[start, end)`, merging with touching extents.
    pub fn insert(&mut self, start: u64, end: u64) {
        let (mut lo, mut hi) = (start, end);
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=end)
            .rev()
            .take_while(|&(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.0.remove(&s);
            lo = lo.min(s);
            hi = hi.max(e);
        }
        self.0.insert(lo, hi);
    }

    /// Marks `[start, end)` and returns the parts that were not marked before.
    pub fn take_unsaved(&mut self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let gaps = self.gaps(start, end);
        if !gaps.is_empty() {
            self.insert(start, end);
        }
        gaps
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(&s, &e)| (s, e))
    }
}

/// For blocks of several disks: where their contents (at some point) are. The first source
/// added for a block wins, so adding undo records oldest first after a point gives the
/// contents at that point.
#[derive(Debug, Default)]
pub struct Index {
    cover: HashMap<usize, Extents>,
    /// (disk, first block) → (end block, source of the first block)
    map: BTreeMap<(usize, u64), (u64, BlockSrc)>,
}

impl Index {
    /// Blocks `[start, end)` of `disk` held what `src` holds, unless known already.
    pub fn add(&mut self, disk: usize, start: u64, end: u64, src: BlockSrc) {
        for (s, e) in self.cover.entry(disk).or_default().take_unsaved(start, end) {
            self.map.insert((disk, s), (e, advance(src, s - start)));
        }
    }

    /// Blocks of `disk` saved by the record of header `h` (found at `loc` by a scan), unless
    /// known already; records other than undo save nothing.
    pub fn add_undo(&mut self, disk: usize, h: &Header, loc: Loc) {
        if matches!(h.kind, Kind::Undo | Kind::UndoZero) {
            // Undo records start on a block boundary; a disk's last block may be partial.
            let (start, end) = (h.offset / BLOCK, (h.offset + h.length).div_ceil(BLOCK));
            self.add(disk, start, end, (h.kind == Kind::Undo).then_some(loc));
        }
    }

    /// The known extent holding block `b`: its end, and the source of block `b`.
    pub fn find(&self, disk: usize, b: u64) -> Option<(u64, BlockSrc)> {
        let (&(d, s), &(e, src)) = self.map.range(..=(disk, b)).next_back()?;
        (d == disk && b < e).then(|| (e, advance(src, b - s)))
    }

    /// Every journal place the index takes contents from.
    pub fn sources(&self) -> impl Iterator<Item = Loc> + '_ {
        self.map.values().filter_map(|&(_, src)| src)
    }

    /// The first known block at or after `b`, if any.
    pub fn next_start(&self, disk: usize, b: u64) -> Option<u64> {
        self.map
            .range((disk, b)..(disk, u64::MAX))
            .next()
            .map(|(&(_, s), _)| s)
    }

    /// The covered blocks per disk.
    pub fn cover(&self) -> impl Iterator<Item = (usize, &Extents)> {
        self.cover.iter().map(|(&d, e)| (d, e))
    }

    pub fn gaps(&self, disk: usize, start: u64, end: u64) -> Vec<(u64, u64)> {
        match self.cover.get(&disk) {
            Some(c) => c.gaps(start, end),
            None => vec![(start, end)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_save_each_block_once() {
        let mut s = Extents::default();
        assert_eq!(s.take_unsaved(10, 20), [(10, 20)]);
        assert_eq!(s.take_unsaved(12, 15), []);
        assert_eq!(s.take_unsaved(5, 25), [(5, 10), (20, 25)]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.take_unsaved(30, 31), [(30, 31)]);
        assert_eq!(s.take_unsaved(26, 40), [(26, 30), (31, 40)]);
        assert_eq!(s.take_unsaved(0, 50), [(0, 5), (25, 26), (40, 50)]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [(0, 50)]);
    }

    #[test]
    fn index_first_source_wins_per_block() {
        let at = |data| {
            Some(Loc {
                segment: 1,
                record: 0,
                data,
            })
        };
        let mut ix = Index::default();
        ix.add(0, 10, 20, at(0));
        ix.add(0, 5, 25, at(100_000)); // only 5..10 and 20..25 are new
        ix.add(1, 10, 12, None);
        assert_eq!(ix.find(0, 12), Some((20, at(2 * BLOCK))));
        assert_eq!(ix.find(0, 7), Some((10, at(100_000 + 2 * BLOCK))));
        assert_eq!(ix.find(0, 21), Some((25, at(100_000 + 16 * BLOCK))));
        assert_eq!(ix.find(0, 25), None);
        assert_eq!(ix.find(1, 11), Some((12, None)));
        assert_eq!(ix.find(1, 9), None);
        assert_eq!(ix.next_start(0, 11), Some(20));
        assert_eq!(ix.next_start(1, 12), None);
        assert_eq!(ix.gaps(0, 0, 30), [(0, 5), (25, 30)]);
    }
}
