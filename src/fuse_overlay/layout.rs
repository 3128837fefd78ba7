//! The overlay rules with no I/O in them: which layer a name comes from, which layers a
//! directory merges, and what a merged directory lists. The filesystem feeds them what it
//! finds on disk; the unit tests feed them tables.
//!
//! Layers are numbered top first: 0 is the upper (writable) layer, 1.. the image layers from
//! the top of the image down.

use std::collections::HashSet;
use std::ffi::OsString;

/// What one layer holds at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Missing,
    /// A 0:0 character device: the name is deleted from every layer below.
    Whiteout,
    /// A file, symlink, FIFO, socket or device.
    NonDir,
    /// A directory; an opaque one (`user.overlay.opaque=y`) hides what the layers below hold.
    Dir {
        opaque: bool,
    },
}

/// Where a name of the merged tree lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The topmost layer holding it.
    pub top: usize,
    pub is_dir: bool,
    /// For a directory: the layers whose copies of it merge, top first (starts with `top`).
    pub dirs: Vec<usize>,
}

/// Resolve a path over `layers` (top first; the layers where its parent directory exists).
/// `probe(layer, more_below)` says what the layer holds; `more_below` is false for the last
/// layer, where whether a directory is opaque does not matter.
pub fn resolve<E>(
    layers: &[usize],
    mut probe: impl FnMut(usize, bool) -> Result<Probe, E>,
) -> Result<Option<Resolved>, E> {
    let mut rest = layers.iter().enumerate();
    let mut found = None;
    for (i, &l) in rest.by_ref() {
        match probe(l, i + 1 < layers.len())? {
            Probe::Missing => continue,
            Probe::Whiteout => return Ok(None),
            Probe::NonDir => {
                return Ok(Some(Resolved {
                    top: l,
                    is_dir: false,
                    dirs: Vec::new(),
                }));
            }
            Probe::Dir { opaque } => {
                let r = Resolved {
                    top: l,
                    is_dir: true,
                    dirs: vec![l],
                };
                if opaque {
                    return Ok(Some(r));
                }
                found = Some(r);
                break;
            }
        }
    }
    let Some(mut r) = found else {
        return Ok(None);
    };
    for (i, &l) in rest {
        match probe(l, i + 1 < layers.len())? {
            Probe::Missing => continue,
            Probe::Whiteout | Probe::NonDir => break,
            Probe::Dir { opaque } => {
                r.dirs.push(l);
                if opaque {
                    break;
                }
            }
        }
    }
    Ok(Some(r))
}

/// Whether a name is visible in `layers` (top first) at all: removing it from the layer above
/// them then needs a whiteout. Stops at the first layer that says anything about the name.
pub fn visible_in<E>(
    layers: &[usize],
    mut probe: impl FnMut(usize) -> Result<Probe, E>,
) -> Result<bool, E> {
    for &l in layers {
        match probe(l)? {
            Probe::Missing => continue,
            Probe::Whiteout => return Ok(false),
            Probe::NonDir | Probe::Dir { .. } => return Ok(true),
        }
    }
    Ok(false)
}

/// The kind of one entry of one layer's directory listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Whiteout,
    Dir,
    /// Anything else, with its `S_IFMT` bits.
    Other(u32),
}

/// One entry of one layer's directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub name: OsString,
    pub kind: EntryKind,
    /// The inode number in that layer.
    pub ino: u64,
}

/// Merge the listings of a directory's layers (top first): every name once, from the topmost
/// layer that has it, and no name that a whiteout in a higher layer deletes. Whiteouts
/// themselves are never listed. `.` and `..` must not be in the input.
pub fn merge_listing(listings: Vec<(usize, Vec<ListEntry>)>) -> Vec<(usize, ListEntry)> {
    let mut seen: HashSet<OsString> = HashSet::new();
    let mut out = Vec::new();
    for (layer, entries) in listings {
        for e in entries {
            if seen.contains(&e.name) {
                continue;
            }
            seen.insert(e.name.clone());
            if e.kind != EntryKind::Whiteout {
                out.push((layer, e));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(usize, Probe)]) -> impl FnMut(usize, bool) -> Result<Probe, ()> + '_ {
        move |l, _| {
            Ok(rows
                .iter()
                .find(|(k, _)| *k == l)
                .map_or(Probe::Missing, |(_, p)| *p))
        }
    }

    const DIR: Probe = Probe::Dir { opaque: false };
    const OPAQUE: Probe = Probe::Dir { opaque: true };

    #[test]
    fn topmost_file_wins() {
        let rows = [(1, Probe::NonDir), (2, Probe::NonDir)];
        let r = resolve(&[0, 1, 2], table(&rows)).unwrap().unwrap();
        assert_eq!((r.top, r.is_dir), (1, false));
    }

    #[test]
    fn whiteout_hides_lower_layers() {
        let rows = [(0, Probe::Whiteout), (1, Probe::NonDir)];
        assert_eq!(resolve(&[0, 1], table(&rows)).unwrap(), None);
        let rows = [(1, Probe::Whiteout), (2, DIR)];
        assert_eq!(resolve(&[0, 1, 2], table(&rows)).unwrap(), None);
    }

    #[test]
    fn directories_merge_until_opaque_whiteout_or_file() {
        let rows = [(0, DIR), (1, DIR), (3, DIR)];
        assert_eq!(
            resolve(&[0, 1, 2, 3], table(&rows)).unwrap().unwrap().dirs,
            vec![0, 1, 3]
        );
        let rows = [(0, DIR), (1, OPAQUE), (2, DIR)];
        assert_eq!(
            resolve(&[0, 1, 2], table(&rows)).unwrap().unwrap().dirs,
            vec![0, 1]
        );
        let rows = [(0, OPAQUE), (1, DIR)];
        assert_eq!(
            resolve(&[0, 1], table(&rows)).unwrap().unwrap().dirs,
            vec![0]
        );
        let rows = [(0, DIR), (1, Probe::Whiteout), (2, DIR)];
        assert_eq!(
            resolve(&[0, 1, 2], table(&rows)).unwrap().unwrap().dirs,
            vec![0]
        );
        // A file below a directory ends the merge: the directory hides it.
        let rows = [(0, DIR), (1, Probe::NonDir), (2, DIR)];
        assert_eq!(
            resolve(&[0, 1, 2], table(&rows)).unwrap().unwrap().dirs,
            vec![0]
        );
    }

    #[test]
    fn only_the_parents_layers_are_searched() {
        // The parent is opaque in layer 0: layer 1's copy of the name is not seen.
        let rows = [(1, Probe::NonDir)];
        assert_eq!(resolve(&[0], table(&rows)).unwrap(), None);
    }

    #[test]
    fn opacity_is_not_asked_of_the_last_layer() {
        let mut asked = Vec::new();
        let _ = resolve::<()>(&[0, 1], |l, more| {
            asked.push((l, more));
            Ok(DIR)
        });
        assert_eq!(asked, vec![(0, true), (1, false)]);
    }

    #[test]
    fn visibility_below_decides_whiteouts() {
        let probe = |rows: &'static [(usize, Probe)]| {
            move |l: usize| -> Result<Probe, ()> {
                Ok(rows
                    .iter()
                    .find(|(k, _)| *k == l)
                    .map_or(Probe::Missing, |(_, p)| *p))
            }
        };
        assert!(!visible_in(&[1, 2], probe(&[])).unwrap());
        assert!(visible_in(&[1, 2], probe(&[(2, Probe::NonDir)])).unwrap());
        assert!(!visible_in(&[1, 2], probe(&[(1, Probe::Whiteout), (2, DIR)])).unwrap());
    }

    fn e(name: &str, kind: EntryKind) -> ListEntry {
        ListEntry {
            name: name.into(),
            kind,
            ino: 0,
        }
    }

    #[test]
    fn listing_merges_and_drops_whiteouts() {
        let f = EntryKind::Other(libc::S_IFREG);
        let merged = merge_listing(vec![
            (
                0,
                vec![e("new", f), e("gone", EntryKind::Whiteout), e("both", f)],
            ),
            (
                1,
                vec![
                    e("gone", f),
                    e("both", EntryKind::Dir),
                    e("old", EntryKind::Dir),
                ],
            ),
            (2, vec![e("old", f), e("deep", f)]),
        ]);
        let names: Vec<(usize, &str, EntryKind)> = merged
            .iter()
            .map(|(l, e)| (*l, e.name.to_str().unwrap(), e.kind))
            .collect();
        assert_eq!(
            names,
            vec![
                (0, "new", f),
                (0, "both", f),
                (1, "old", EntryKind::Dir),
                (2, "deep", f)
            ]
        );
    }
}
