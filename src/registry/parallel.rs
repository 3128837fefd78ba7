//! Blob transfers run a few at a time; the first failure stops the others.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::Result;

/// Run `job` for every item on up to `threads` threads. When a job fails, no new job starts,
/// the flag handed to running jobs turns true (a long transfer checks it to give up early),
/// and that first error is returned.
pub fn for_each<T: Sync>(
    items: &[T],
    threads: usize,
    job: impl Fn(&T, &AtomicBool) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                while !cancel.load(Ordering::Relaxed) {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        return;
                    };
                    if let Err(e) = job(item, &cancel) {
                        let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        if !cancel.swap(true, Ordering::SeqCst) {
                            *slot = Some(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryError;

    #[test]
    fn every_item_runs_once() {
        let items: Vec<usize> = (0..50).collect();
        let seen = Mutex::new(Vec::new());
        for_each(&items, 4, |&i, _| {
            seen.lock().unwrap().push(i);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, items);
    }

    #[test]
    fn the_first_error_stops_the_rest_and_is_returned() {
        let items: Vec<usize> = (0..1000).collect();
        let ran = AtomicUsize::new(0);
        let err = for_each(&items, 2, |&i, cancel| {
            ran.fetch_add(1, Ordering::SeqCst);
            if i == 3 {
                return Err(RegistryError::Other("boom".into()));
            }
            // A long job sees the cancellation.
            while i == 0 && !cancel.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert!(ran.load(Ordering::SeqCst) < items.len());
    }
}
